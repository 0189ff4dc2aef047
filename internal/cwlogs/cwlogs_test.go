package cwlogs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/smithy-go"

	"github.com/kappa-run/kappa/internal/leakcheck"
	"github.com/kappa-run/kappa/internal/logs"
)

// TestMain fails the package when goroutines outlive the tests.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

type staticGroups map[string][]string

func (g staticGroups) LogGroups(context.Context) (map[string][]string, error) { return g, nil }

// fixture is a log store with lines written by three functions: "a" in
// its default group, "b" and "c" sharing "/shared"; and an SDK client
// talking to the handler over loopback.
type fixture struct {
	store  *logs.Store
	client *cloudwatchlogs.Client
	url    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := logs.Open(logs.Options{Dir: t.TempDir(), PruneInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := New(Options{Store: st, Region: "us-east-1", Account: "000000000000",
		Groups: staticGroups{"/aws/lambda/a": {"a"}, "/shared": {"b", "c"}, "/aws/lambda/quiet": {"quiet"}}})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := cloudwatchlogs.New(cloudwatchlogs.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""),
	})
	return &fixture{store: st, client: c, url: srv.URL}
}

// write writes lines to a stream of fn, one at a time so that each gets
// its own time stamp.
func (f *fixture) write(t *testing.T, fn, stream string, lines ...string) {
	t.Helper()
	s, err := f.store.Stream(fn, stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		s.WriteLine([]byte(l))
		time.Sleep(2 * time.Millisecond) // distinct milliseconds, for readable failures
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return fmt.Sprint(err)
}

func messages[T any](evs []T, msg func(T) *string) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, aws.ToString(msg(e)))
	}
	return out
}

const (
	s1 = "2026/11/27/[$LATEST]00000000000000000000000000000001"
	s2 = "2026/11/27/[$LATEST]00000000000000000000000000000002"
	s3 = "2026/11/27/[1]00000000000000000000000000000003"
)

func TestDescribe(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.write(t, "a", s1, "one", "two")
	f.write(t, "a", s2, "three")
	f.write(t, "b", s3, "bee")

	groups, err := f.client.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range groups.LogGroups {
		names = append(names, aws.ToString(g.LogGroupName))
	}
	if !slices.Equal(names, []string{"/aws/lambda/a", "/aws/lambda/quiet", "/shared"}) {
		t.Errorf("log groups %v", names)
	}
	if g := groups.LogGroups[0]; aws.ToString(g.LogGroupArn) != "arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/a" || aws.ToInt64(g.StoredBytes) == 0 {
		t.Errorf("group a: arn %s, %d bytes", aws.ToString(g.LogGroupArn), aws.ToInt64(g.StoredBytes))
	}
	// Paged one at a time with the SDK's paginator.
	names = nil
	p := cloudwatchlogs.NewDescribeLogGroupsPaginator(f.client, &cloudwatchlogs.DescribeLogGroupsInput{
		LogGroupNamePrefix: aws.String("/aws/"), Limit: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range page.LogGroups {
			names = append(names, aws.ToString(g.LogGroupName))
		}
	}
	if !slices.Equal(names, []string{"/aws/lambda/a", "/aws/lambda/quiet"}) {
		t.Errorf("paged groups with prefix /aws/: %v", names)
	}

	streams, err := f.client.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("/aws/lambda/a")})
	if err != nil {
		t.Fatal(err)
	}
	names = nil
	for _, s := range streams.LogStreams {
		names = append(names, aws.ToString(s.LogStreamName))
	}
	if !slices.Equal(names, []string{s1, s2}) {
		t.Errorf("streams of a %v", names)
	}
	// A stream was created with its first event and last written with
	// its last.
	evs, err := f.client.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"),
		LogStreamName: aws.String(s1), StartFromHead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Events) != 2 || len(streams.LogStreams) != 2 {
		t.Fatalf("%d events in %s, %d streams", len(evs.Events), s1, len(streams.LogStreams))
	}
	firstEv, lastEv := aws.ToInt64(evs.Events[0].Timestamp), aws.ToInt64(evs.Events[1].Timestamp)
	// The group came into being with its first line: s1's first.
	if got := aws.ToInt64(groups.LogGroups[0].CreationTime); got != firstEv {
		t.Errorf("group a created at %d, want its first event's time %d", got, firstEv)
	}
	if st := streams.LogStreams[0]; aws.ToInt64(st.CreationTime) != firstEv || aws.ToInt64(st.FirstEventTimestamp) != firstEv ||
		aws.ToInt64(st.LastEventTimestamp) < lastEv || firstEv >= lastEv {
		t.Errorf("stream %s: creationTime %d, firstEventTimestamp %d, lastEventTimestamp %d; its events at %d and %d",
			s1, aws.ToInt64(st.CreationTime), aws.ToInt64(st.FirstEventTimestamp), aws.ToInt64(st.LastEventTimestamp), firstEv, lastEv)
	}
	newest, err := f.client.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("/aws/lambda/a"),
		OrderBy: types.OrderByLastEventTime, Descending: aws.Bool(true), Limit: aws.Int32(1)})
	if err != nil || len(newest.LogStreams) != 1 || aws.ToString(newest.LogStreams[0].LogStreamName) != s2 || newest.NextToken == nil {
		t.Errorf("newest stream of a: %+v, %v; want %s and a next token", newest, err, s2)
	}
	shared, err := f.client.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("/shared")})
	if err != nil || len(shared.LogStreams) != 1 || aws.ToString(shared.LogStreams[0].LogStreamName) != s3 {
		t.Errorf("streams of /shared: %+v, %v", shared, err)
	}
	for _, tt := range []struct {
		name string
		in   *cloudwatchlogs.DescribeLogStreamsInput
		code string
	}{
		{"unknown group", &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("/nope")}, "ResourceNotFoundException"},
		{"limit over 50", &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("/shared"), Limit: aws.Int32(51)}, "InvalidParameterException"},
		{"bad token", &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("/shared"), NextToken: aws.String("x")}, "InvalidParameterException"},
		{"order by time with a prefix", &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String("/shared"),
			OrderBy: types.OrderByLastEventTime, LogStreamNamePrefix: aws.String("2026")}, "InvalidParameterException"},
	} {
		if _, err := f.client.DescribeLogStreams(ctx, tt.in); apiCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
}

func TestGetLogEvents(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.write(t, "a", s1, "l1", "l2", "l3", "l4", "l5")
	f.write(t, "a", s2, "other stream")
	msg := func(e types.OutputLogEvent) *string { return e.Message }
	get := func(in cloudwatchlogs.GetLogEventsInput) *cloudwatchlogs.GetLogEventsOutput {
		t.Helper()
		in.LogGroupName, in.LogStreamName = aws.String("/aws/lambda/a"), aws.String(s1)
		out, err := f.client.GetLogEvents(ctx, &in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	// Without a token: the newest events.
	newest := get(cloudwatchlogs.GetLogEventsInput{Limit: aws.Int32(2)})
	if got := messages(newest.Events, msg); !slices.Equal(got, []string{"l4", "l5"}) {
		t.Errorf("newest two: %v", got)
	}
	// Backward from there.
	back := get(cloudwatchlogs.GetLogEventsInput{Limit: aws.Int32(2), NextToken: newest.NextBackwardToken})
	if got := messages(back.Events, msg); !slices.Equal(got, []string{"l2", "l3"}) {
		t.Errorf("the two before: %v", got)
	}
	// From the head, forward in pages, as `aws logs get-log-events
	// --start-from-head` does.
	var all []string
	in := cloudwatchlogs.GetLogEventsInput{Limit: aws.Int32(2), StartFromHead: aws.Bool(true)}
	for range 10 {
		out := get(in)
		all = append(all, messages(out.Events, msg)...)
		if in.NextToken != nil && aws.ToString(out.NextForwardToken) == *in.NextToken {
			break // the same token: nothing more, as CloudWatch signals the end
		}
		in.NextToken = out.NextForwardToken
	}
	if !slices.Equal(all, []string{"l1", "l2", "l3", "l4", "l5"}) {
		t.Errorf("forward from the head: %v", all)
	}
	// A new line shows up on the last forward token.
	last := get(cloudwatchlogs.GetLogEventsInput{StartFromHead: aws.Bool(true)})
	f.write(t, "a", s1, "l6")
	if got := messages(get(cloudwatchlogs.GetLogEventsInput{NextToken: last.NextForwardToken}).Events, msg); !slices.Equal(got, []string{"l6"}) {
		t.Errorf("after the forward token: %v, want the new line", got)
	}
	for _, tt := range []struct {
		name string
		in   *cloudwatchlogs.GetLogEventsInput
		code string
	}{
		{"unknown stream", &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"), LogStreamName: aws.String("nope")}, "ResourceNotFoundException"},
		{"stream of another group", &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/shared"), LogStreamName: aws.String(s1)}, "ResourceNotFoundException"},
		{"bad token", &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"), LogStreamName: aws.String(s1), NextToken: aws.String("f/x")}, "InvalidParameterException"},
		{"limit 0", &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"), LogStreamName: aws.String(s1), Limit: aws.Int32(0)}, "InvalidParameterException"},
	} {
		if _, err := f.client.GetLogEvents(ctx, tt.in); apiCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
}

func TestFilterLogEvents(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.write(t, "b", s1, "START b", "error: disk full", "done")
	f.write(t, "c", s2, "START c", "warning: slow disk", "error: timeout")
	msg := func(e types.FilteredLogEvent) *string { return e.Message }
	filter := func(pattern string) []string {
		t.Helper()
		out, err := f.client.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/shared"), FilterPattern: aws.String(pattern)})
		if err != nil {
			t.Fatalf("pattern %q: %v", pattern, err)
		}
		return messages(out.Events, msg)
	}
	for _, tt := range []struct {
		pattern string
		want    []string
	}{
		{"", []string{"START b", "error: disk full", "done", "START c", "warning: slow disk", "error: timeout"}},
		{"error", []string{"error: disk full", "error: timeout"}},
		{"error disk", []string{"error: disk full"}},
		{`"slow disk"`, []string{"warning: slow disk"}},
		{"?timeout ?done", []string{"done", "error: timeout"}},
		{"ERROR", []string{}},
	} {
		if got := filter(tt.pattern); !slices.Equal(got, tt.want) {
			t.Errorf("pattern %q: %v, want %v", tt.pattern, got, tt.want)
		}
	}
	// Paged two at a time with the SDK's paginator, one stream only.
	var got []string
	p := cloudwatchlogs.NewFilterLogEventsPaginator(f.client, &cloudwatchlogs.FilterLogEventsInput{
		LogGroupName: aws.String("/shared"), LogStreamNames: []string{s2}, Limit: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Events {
			if aws.ToString(e.LogStreamName) != s2 {
				t.Errorf("event of stream %s", aws.ToString(e.LogStreamName))
			}
			got = append(got, aws.ToString(e.Message))
		}
	}
	if !slices.Equal(got, []string{"START c", "warning: slow disk", "error: timeout"}) {
		t.Errorf("paged: %v", got)
	}
	for _, tt := range []struct {
		name string
		in   *cloudwatchlogs.FilterLogEventsInput
		code string
	}{
		{"JSON pattern", &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/shared"), FilterPattern: aws.String(`{ $.level = "error" }`)}, "InvalidParameterException"},
		{"unterminated phrase", &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/shared"), FilterPattern: aws.String(`"disk`)}, "InvalidParameterException"},
		{"mixed ?terms", &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/shared"), FilterPattern: aws.String(`?a b`)}, "InvalidParameterException"},
		{"names and prefix", &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/shared"), LogStreamNames: []string{s1}, LogStreamNamePrefix: aws.String("2026")}, "InvalidParameterException"},
		{"unknown group", &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/none")}, "ResourceNotFoundException"},
		{"bad token", &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/shared"), NextToken: aws.String("!!")}, "InvalidParameterException"},
	} {
		if _, err := f.client.FilterLogEvents(ctx, tt.in); apiCode(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
}

// TestMalformedRequests: bodies and operations the SDK would never send
// get CloudWatch-shaped 400s.
func TestMalformedRequests(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		name, op, body, code string
	}{
		{"not JSON", "FilterLogEvents", `{"logGroupName":`, "SerializationException"},
		{"wrong type", "GetLogEvents", `{"limit":"ten"}`, "SerializationException"},
		{"unknown operation", "PutLogEvents", `{}`, "UnknownOperationException"},
		{"no group", "FilterLogEvents", `{}`, "InvalidParameterException"},
		{"huge body", "FilterLogEvents", `{"filterPattern":"` + strings.Repeat("a", maxBody) + `"}`, "InvalidParameterException"},
		{"101 stream names", "FilterLogEvents", `{"logGroupName":"/aws/lambda/a","logStreamNames":[` + strings.Repeat(`"s",`, 100) + `"s"]}`, "InvalidParameterException"},
		{"a pattern over 1024 characters", "FilterLogEvents", `{"logGroupName":"/aws/lambda/a","filterPattern":"` + strings.Repeat("a ", 513) + `"}`, "InvalidParameterException"},
		{"a group identifier of another account", "DescribeLogStreams", `{"logGroupIdentifier":"arn:aws:logs:us-east-1:111111111111:log-group:/aws/lambda/a"}`, "ResourceNotFoundException"},
	} {
		code, status := post(t, f.url, tt.op, tt.body)
		if status != 400 || code != tt.code {
			t.Errorf("%s: %d %s, want 400 %s", tt.name, status, code, tt.code)
		}
	}
}

// post sends a raw CloudWatch Logs request and returns the error type and
// status.
func post(t testing.TB, url, op, body string) (string, int) {
	req, _ := http.NewRequest("POST", url+"/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", TargetPrefix+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Type string `json:"__type"`
	}
	json.NewDecoder(resp.Body).Decode(&e)
	return e.Type, resp.StatusCode
}

// FuzzRequests sends arbitrary bodies to every operation: the answer is a
// 200 or a 400 with an error type, never a server error.
func FuzzRequests(f *testing.F) {
	for _, s := range []string{
		`{"logGroupName":"/aws/lambda/a","logStreamName":"` + s1 + `","nextToken":"b/5","limit":3}`,
		`{"logGroupName":"/aws/lambda/a","filterPattern":"?\"x y\" ?z","nextToken":"a2FwcGE6MTA"}`,
		`{"logGroupIdentifier":"arn:aws:logs:us-east-1:000000000000:log-group:/aws/lambda/a:*","orderBy":"LastEventTime","descending":true}`,
		`{"logGroupNamePrefix":"/","limit":1,"nextToken":"/aws"}`,
	} {
		for op := range 4 {
			f.Add(uint8(op), []byte(s))
		}
	}
	ops := []string{"DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents"}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		st, err := logs.Open(logs.Options{Dir: t.TempDir(), PruneInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s, _ := st.Stream("a", s1)
		s.WriteLine([]byte("a line"))
		s.Close()
		h := New(Options{Store: st, Groups: staticGroups{"/aws/lambda/a": {"a"}}, Region: "us-east-1", Account: "000000000000"})
		req := httptest.NewRequest("POST", "/", strings.NewReader(string(body)))
		req.Header.Set("X-Amz-Target", TargetPrefix+ops[int(op)%len(ops)])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var e struct {
			Type string `json:"__type"`
		}
		if rec.Code != 200 && (rec.Code != 400 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Type == "") {
			t.Fatalf("%s %q = %d %s", ops[int(op)%len(ops)], body, rec.Code, rec.Body)
		}
	})
}

// TestPagesAreBounded: pages stop at 1 MB of messages however large the
// limit, in both directions of GetLogEvents and in FilterLogEvents, and
// the tokens then lead through every event exactly once.
func TestPagesAreBounded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	big := strings.Repeat("x", 200<<10)
	var lines []string
	for i := range 12 {
		lines = append(lines, fmt.Sprintf("%02d %s", i, big))
	}
	f.write(t, "a", s1, lines...)
	msg := func(e types.OutputLogEvent) *string { return e.Message }
	pageBytes := func(ms []string) (n int) {
		for _, m := range ms {
			n += len(m)
		}
		return n
	}

	newest, err := f.client.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"), LogStreamName: aws.String(s1)})
	if err != nil {
		t.Fatal(err)
	}
	got := messages(newest.Events, msg)
	if len(got) == 0 || len(got) == 12 || pageBytes(got) > maxPage || got[len(got)-1][:2] != "11" {
		t.Errorf("newest page: %d events, %d bytes; want the newest ones under 1 MB", len(got), pageBytes(got))
	}
	var all []string
	in := &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"), LogStreamName: aws.String(s1), StartFromHead: aws.Bool(true)}
	for range 20 {
		out, err := f.client.GetLogEvents(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		page := messages(out.Events, msg)
		if pageBytes(page) > maxPage {
			t.Errorf("a forward page of %d bytes", pageBytes(page))
		}
		all = append(all, page...)
		if in.NextToken != nil && aws.ToString(out.NextForwardToken) == *in.NextToken {
			break
		}
		in.NextToken = out.NextForwardToken
	}
	if len(all) != 12 || all[0][:2] != "00" || all[11][:2] != "11" {
		t.Errorf("forward through the stream: %d events", len(all))
	}

	var filtered []string
	p := cloudwatchlogs.NewFilterLogEventsPaginator(f.client, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/aws/lambda/a")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ms := messages(page.Events, func(e types.FilteredLogEvent) *string { return e.Message })
		if pageBytes(ms) > maxPage {
			t.Errorf("a filter page of %d bytes", pageBytes(ms))
		}
		filtered = append(filtered, ms...)
	}
	if len(filtered) != 12 {
		t.Errorf("FilterLogEvents pages: %d events, want all 12 once", len(filtered))
	}
}

// TestFilterAcrossFunctions: a group written by two functions pages in
// time order at a small limit, every event once.
func TestFilterAcrossFunctions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.write(t, "b", s1, "b1", "b2", "b3")
	f.write(t, "c", s2, "c1", "c2", "c3")
	f.write(t, "b", s1, "b4")
	var got []string
	p := cloudwatchlogs.NewFilterLogEventsPaginator(f.client, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/shared"), Limit: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, messages(page.Events, func(e types.FilteredLogEvent) *string { return e.Message })...)
	}
	if !slices.Equal(got, []string{"b1", "b2", "b3", "c1", "c2", "c3", "b4"}) {
		t.Errorf("paged across functions: %v", got)
	}
}

// TestPatternsAndTimes: -term excludes; FilterLogEvents' endTime includes
// its millisecond (GetLogEvents' excludes it); out-of-range times and
// tokens are refused rather than wrapping around.
func TestPatternsAndTimes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.write(t, "a", s1, "[ERROR] boom", "Exiting with ERRORCODE: -1", "fine")
	out, err := f.client.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"), FilterPattern: aws.String("ERROR -Exiting")})
	if err != nil {
		t.Fatal(err)
	}
	if got := messages(out.Events, func(e types.FilteredLogEvent) *string { return e.Message }); !slices.Equal(got, []string{"[ERROR] boom"}) {
		t.Errorf("ERROR -Exiting: %v", got)
	}
	first := aws.ToInt64(out.Events[0].Timestamp)
	at, err := f.client.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"),
		StartTime: aws.Int64(first), EndTime: aws.Int64(first), FilterPattern: aws.String("boom")})
	if err != nil || len(at.Events) != 1 {
		t.Errorf("FilterLogEvents with startTime = endTime = the event's time: %v, %v; want the event", at, err)
	}
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"negative startTime", func() error {
			_, err := f.client.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"), StartTime: aws.Int64(-1)})
			return err
		}},
		{"endTime past 2262", func() error {
			_, err := f.client.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"), LogStreamName: aws.String(s1), EndTime: aws.Int64(math.MaxInt64)})
			return err
		}},
		{"largest forward token", func() error {
			_, err := f.client.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"), LogStreamName: aws.String(s1),
				NextToken: aws.String(fmt.Sprintf("f/%d", int64(math.MaxInt64)))})
			return err
		}},
		{"largest filter token", func() error {
			_, err := f.client.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/aws/lambda/a"),
				NextToken: aws.String(filterToken(math.MaxInt64))})
			return err
		}},
	} {
		if err := tt.call(); apiCode(err) != "InvalidParameterException" {
			t.Errorf("%s: %v, want InvalidParameterException", tt.name, err)
		}
	}
}
