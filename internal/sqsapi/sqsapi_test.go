package sqsapi

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/kappa-run/kappa/internal/async"
	"github.com/kappa-run/kappa/internal/leakcheck"
	"github.com/kappa-run/kappa/internal/store/jetstream"
)

// TestMain fails the package when goroutines outlive the tests.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }

const account = "000000000000"

// fixture is the handler on a real embedded JetStream, and the SDK's SQS
// client talking to it over loopback.
type fixture struct {
	queues *async.Queues
	client *sqs.Client
	url    string
	clock  *atomic.Int64 // the handler's clock, in Unix nanoseconds
}

// advance moves the handler's clock on by d.
func (f *fixture) advance(d time.Duration) { f.clock.Add(int64(d)) }

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := jetstream.Open(ctx, jetstream.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	bucket, err := st.Bucket(ctx, "sqs")
	if err != nil {
		t.Fatal(err)
	}
	queues := async.NewQueues(st.JetStream(), "us-east-1", account)
	clock := &atomic.Int64{}
	clock.Store(time.Now().UnixNano())
	srv := httptest.NewServer(New(Options{Queues: queues, Bucket: bucket, Region: "us-east-1", Account: account,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }}))
	t.Cleanup(srv.Close)
	c := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")})
	return &fixture{queues: queues, client: c, url: srv.URL, clock: clock}
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return fmt.Sprint(err)
}

// TestSendReachesTheQueue: what SendMessage and SendMessageBatch send is in
// the Kappa queue, with the MD5 the SDK checks and the message id an event
// source mapping will show.
func TestSendReachesTheQueue(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	created, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("orders")})
	if err != nil {
		t.Fatal(err)
	}
	url := aws.ToString(created.QueueUrl)
	if url != f.url+"/"+account+"/orders" {
		t.Errorf("QueueUrl %s", url)
	}
	got, err := f.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("orders")})
	if err != nil || aws.ToString(got.QueueUrl) != url {
		t.Errorf("GetQueueUrl = %v, %v", got, err)
	}
	one, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(`{"order":1}`)})
	if err != nil {
		t.Fatal(err) // the SDK checks MD5OfMessageBody itself
	}
	batch, err := f.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: &url, Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("a"), MessageBody: aws.String("two")},
		{Id: aws.String("b"), MessageBody: aws.String("three")},
		{Id: aws.String("c"), MessageBody: aws.String("late"), DelaySeconds: 5},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Successful) != 2 || len(batch.Failed) != 1 || aws.ToString(batch.Failed[0].Id) != "c" || !batch.Failed[0].SenderFault {
		t.Errorf("batch: %d sent, failed %+v; want a and b sent and c refused (DelaySeconds)", len(batch.Successful), batch.Failed)
	}
	msgs, err := f.queues.Read(ctx, "orders", 0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, m := range msgs {
		bodies = append(bodies, string(m.Body))
	}
	if strings.Join(bodies, "|") != `{"order":1}|two|three` {
		t.Errorf("queue holds %v", bodies)
	}
	if want := async.MessageID("orders", msgs[0].Seq, msgs[0].Time); aws.ToString(one.MessageId) != want {
		t.Errorf("MessageId %s, want the one a mapping shows, %s", aws.ToString(one.MessageId), want)
	}
	sum := md5.Sum([]byte("two"))
	if aws.ToString(batch.Successful[0].MD5OfMessageBody) != hex.EncodeToString(sum[:]) {
		t.Errorf("MD5 of a batch entry %s", aws.ToString(batch.Successful[0].MD5OfMessageBody))
	}
	attrs, err := f.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll}})
	if err != nil || attrs.Attributes["ApproximateNumberOfMessages"] != "3" || attrs.Attributes["QueueArn"] != "arn:aws:sqs:us-east-1:"+account+":orders" ||
		attrs.Attributes["VisibilityTimeout"] != "30" {
		t.Errorf("GetQueueAttributes = %v, %v", attrs, err)
	}
	if _, err := f.client.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: &url}); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := f.queues.Read(ctx, "orders", 0, 10, 0); len(msgs) != 0 {
		t.Errorf("%d messages after PurgeQueue", len(msgs))
	}
}

// TestQueueManagement: attributes and tags as set are read back (as
// Terraform does), an existing name is idempotent only with the same
// attributes, and delete removes the queue.
func TestQueueManagement(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in := &sqs.CreateQueueInput{QueueName: aws.String("jobs"),
		Attributes: map[string]string{"VisibilityTimeout": "60", "MessageRetentionPeriod": "86400"},
		Tags:       map[string]string{"team": "kappa"}}
	created, err := f.client.CreateQueue(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	url := created.QueueUrl
	if _, err := f.client.CreateQueue(ctx, in); err != nil {
		t.Errorf("CreateQueue again with the same attributes: %v", err)
	}
	_, err = f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("jobs"), Attributes: map[string]string{"VisibilityTimeout": "61"}})
	if code(err) != "QueueNameExists" && code(err) != "QueueAlreadyExists" {
		t.Errorf("CreateQueue with other attributes: %v", err)
	}
	if _, err := f.client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: url, Attributes: map[string]string{"VisibilityTimeout": "90"}}); err != nil {
		t.Fatal(err)
	}
	attrs, err := f.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout, types.QueueAttributeNameMessageRetentionPeriod}})
	if err != nil || len(attrs.Attributes) != 2 || attrs.Attributes["VisibilityTimeout"] != "90" || attrs.Attributes["MessageRetentionPeriod"] != "86400" {
		t.Errorf("attributes %v, %v", attrs, err)
	}
	if _, err := f.client.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: url, Tags: map[string]string{"env": "dev"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.UntagQueue(ctx, &sqs.UntagQueueInput{QueueUrl: url, TagKeys: []string{"team"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := f.client.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: url})
	if err != nil || len(tags.Tags) != 1 || tags.Tags["env"] != "dev" {
		t.Errorf("tags %v, %v", tags, err)
	}
	for _, name := range []string{"a-1", "a-2", "b-1"} {
		if _, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
	}
	var urls []string
	p := sqs.NewListQueuesPaginator(f.client, &sqs.ListQueuesInput{QueueNamePrefix: aws.String("a-"), MaxResults: aws.Int32(1)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, page.QueueUrls...)
	}
	if len(urls) != 2 || !strings.HasSuffix(urls[0], "/a-1") || !strings.HasSuffix(urls[1], "/a-2") {
		t.Errorf("paged list of a-: %v", urls)
	}
	if _, err := f.client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: url}); err != nil {
		t.Fatal(err)
	}
	// As with SQS, the SDK gives the typed error and the legacy query code.
	_, err = f.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("jobs")})
	var gone *types.QueueDoesNotExist
	if !errors.As(err, &gone) || code(err) != "AWS.SimpleQueueService.NonExistentQueue" {
		t.Errorf("GetQueueUrl after DeleteQueue: %v", err)
	}
	// As SQS: its name is free again only 60 seconds later.
	again := &sqs.CreateQueueInput{QueueName: aws.String("jobs")}
	var recently *types.QueueDeletedRecently
	if _, err := f.client.CreateQueue(ctx, again); !errors.As(err, &recently) || code(err) != "AWS.SimpleQueueService.QueueDeletedRecently" {
		t.Errorf("CreateQueue right after DeleteQueue: %v, want QueueDeletedRecently", err)
	}
	f.advance(61 * time.Second)
	if _, err := f.client.CreateQueue(ctx, again); err != nil {
		t.Errorf("CreateQueue 61 s after DeleteQueue: %v", err)
	}
}

// TestRefusals: what a Kappa queue cannot do is refused with SQS's errors,
// never dropped silently.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	created, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("q")})
	if err != nil {
		t.Fatal(err)
	}
	url := created.QueueUrl
	missing := aws.String(f.url + "/" + account + "/none")
	for _, tt := range []struct {
		name string
		call func() error
		code string
	}{
		{"FIFO queue", func() error {
			_, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("q.fifo"), Attributes: map[string]string{"FifoQueue": "true"}})
			return err
		}, "InvalidParameterValue"},
		{"bad name", func() error {
			_, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("a/../b")})
			return err
		}, "InvalidParameterValue"},
		{"unknown attribute", func() error {
			_, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("x"), Attributes: map[string]string{"Colour": "red"}})
			return err
		}, "InvalidAttributeName"},
		{"visibility out of range", func() error {
			_, err := f.client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: url, Attributes: map[string]string{"VisibilityTimeout": "50000"}})
			return err
		}, "InvalidAttributeValue"},
		{"a number not in canonical form", func() error {
			_, err := f.client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: url, Attributes: map[string]string{"VisibilityTimeout": "030"}})
			return err
		}, "InvalidAttributeValue"},
		{"a policy over 64 KB", func() error {
			_, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("big"), Attributes: map[string]string{"Policy": `{"a":"` + strings.Repeat("x", 70<<10) + `"}`}})
			return err
		}, "InvalidAttributeValue"},
		{"an empty tag key", func() error {
			_, err := f.client.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: url, Tags: map[string]string{"": "v"}})
			return err
		}, "InvalidParameterValue"},
		{"a reserved tag key", func() error {
			_, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("t"), Tags: map[string]string{"aws:owner": "v"}})
			return err
		}, "InvalidParameterValue"},
		{"a long tag value", func() error {
			_, err := f.client.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: url, Tags: map[string]string{"k": strings.Repeat("v", 257)}})
			return err
		}, "InvalidParameterValue"},
		{"a NUL in the body", func() error {
			_, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("a\x00b")})
			return err
		}, "InvalidMessageContents"},
		{"U+FFFF in the body", func() error {
			_, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("a\uffffb")})
			return err
		}, "InvalidMessageContents"},
		{"a deduplication id on a standard queue", func() error {
			_, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("x"), MessageDeduplicationId: aws.String("d")})
			return err
		}, "InvalidParameterValue"},
		{"an operation Kappa does not serve", func() error {
			_, err := f.client.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: aws.String("arn:aws:sqs:us-east-1:000000000000:q")})
			return err
		}, "AWS.SimpleQueueService.UnsupportedOperation"},
		{"send to a missing queue", func() error {
			_, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: missing, MessageBody: aws.String("x")})
			return err
		}, "AWS.SimpleQueueService.NonExistentQueue"},
		{"another account's queue", func() error {
			_, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(f.url + "/111111111111/q"), MessageBody: aws.String("x")})
			return err
		}, "AWS.SimpleQueueService.NonExistentQueue"},
		{"empty body", func() error {
			_, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("")})
			return err
		}, "InvalidParameterValue"},
		{"message attributes", func() error {
			_, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("x"),
				MessageAttributes: map[string]types.MessageAttributeValue{"k": {DataType: aws.String("String"), StringValue: aws.String("v")}}})
			return err
		}, "InvalidParameterValue"},
		{"delay", func() error {
			_, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("x"), DelaySeconds: 3})
			return err
		}, "InvalidParameterValue"},
		{"eleven in a batch", func() error {
			var es []types.SendMessageBatchRequestEntry
			for i := range 11 {
				es = append(es, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint("e", i)), MessageBody: aws.String("x")})
			}
			_, err := f.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: url, Entries: es})
			return err
		}, "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"},
		{"repeated batch ids", func() error {
			_, err := f.client.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: url, Entries: []types.SendMessageBatchRequestEntry{
				{Id: aws.String("a"), MessageBody: aws.String("x")}, {Id: aws.String("a"), MessageBody: aws.String("y")}}})
			return err
		}, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"},
		{"ReceiveMessage", func() error {
			_, err := f.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url})
			return err
		}, "AWS.SimpleQueueService.UnsupportedOperation"},
	} {
		if err := tt.call(); code(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	if msgs, _ := f.queues.Read(ctx, "q", 0, 10, 0); len(msgs) != 0 {
		t.Errorf("refused sends left %d messages", len(msgs))
	}
	if _, err := f.queues.Get(ctx, "big"); err == nil {
		t.Error("a refused CreateQueue left its queue")
	}
}

// TestBodies: the characters and sizes SQS takes are taken, whatever the
// JSON escaping; what it does not is refused, even where JSON decoding
// would hide it (raw invalid UTF-8, an unpaired surrogate escape).
func TestBodies(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	created, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("b")})
	if err != nil {
		t.Fatal(err)
	}
	url := created.QueueUrl
	for _, body := range []string{
		"tab\tnewline\ncr\r", "emoji 🎉 and \U0001F600", `text that says \ud800 literally`,
		strings.Repeat("д", 360_000), // 720,000 bytes, ~2.2 MB once the CLI escapes each as \uXXXX
	} {
		if _, err := f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String(body)}); err != nil {
			t.Errorf("body %.40q: %v", body, err)
		}
	}
	escaped := `{"QueueUrl":"` + f.url + `/` + account + `/b","MessageBody":"` + strings.Repeat(`\u0434`, 360_000) + `"}`
	if code, status := rawPost(t, f.url, "SendMessage", escaped); status != 200 {
		t.Errorf("720,000 bytes of Cyrillic escaped as \\uXXXX: %d %s", status, code)
	}
	for name, raw := range map[string]string{
		"lone high surrogate": `{"QueueUrl":"` + f.url + `/` + account + `/b","MessageBody":"a\ud800b"}`,
		"lone low surrogate":  `{"QueueUrl":"` + f.url + `/` + account + `/b","MessageBody":"a\udc00b"}`,
		"invalid UTF-8":       `{"QueueUrl":"` + f.url + `/` + account + `/b","MessageBody":"a` + "\xff\xfe" + `b"}`,
	} {
		if code, status := rawPost(t, f.url, "SendMessage", raw); status != 400 || code != "com.amazonaws.sqs#InvalidMessageContents" {
			t.Errorf("%s: %d %s, want 400 InvalidMessageContents", name, status, code)
		}
	}
	pair := `{"QueueUrl":"` + f.url + `/` + account + `/b","MessageBody":"a\ud83d\ude00b"}`
	if code, status := rawPost(t, f.url, "SendMessage", pair); status != 200 {
		t.Errorf("a surrogate pair: %d %s", status, code)
	}
}

// rawPost sends an SQS request as bytes and returns its error type and
// status.
func rawPost(t *testing.T, url, op, body string) (string, int) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", TargetPrefix+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
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

// TestConcurrentChanges: parallel changes to one queue's attributes and
// tags all land (Terraform applies a queue's policies in parallel), a send
// racing DeleteQueue never brings the queue back, and a queue deleted by
// Kappa's own API and made again starts with no attributes or tags.
func TestConcurrentChanges(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	created, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("c")})
	if err != nil {
		t.Fatal(err)
	}
	url := created.QueueUrl
	changes := []func() error{
		func() error {
			_, err := f.client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: url, Attributes: map[string]string{"Policy": `{"p":1}`}})
			return err
		},
		func() error {
			_, err := f.client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: url, Attributes: map[string]string{"RedrivePolicy": `{"r":1}`}})
			return err
		},
		func() error {
			_, err := f.client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: url, Attributes: map[string]string{"VisibilityTimeout": "45"}})
			return err
		},
		func() error {
			_, err := f.client.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: url, Tags: map[string]string{"t": "1"}})
			return err
		},
	}
	errs := make(chan error, len(changes))
	for _, c := range changes {
		go func() { errs <- c() }()
	}
	for range changes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	attrs, _ := f.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: url, AttributeNames: []types.QueueAttributeName{"All"}})
	tags, _ := f.client.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: url})
	if attrs.Attributes["Policy"] != `{"p":1}` || attrs.Attributes["RedrivePolicy"] != `{"r":1}` || attrs.Attributes["VisibilityTimeout"] != "45" || tags.Tags["t"] != "1" {
		t.Errorf("after parallel changes: attributes %v, tags %v; want all four changes", attrs.Attributes, tags.Tags)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("x")})
			}
		}
	}()
	if _, err := f.client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: url}); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		f.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("y")})
	}
	close(stop)
	<-done
	if _, err := f.queues.Get(ctx, "c"); err == nil {
		t.Error("sends after DeleteQueue brought the queue back")
	}

	if _, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("re"), Tags: map[string]string{"owner": "old"},
		Attributes: map[string]string{"VisibilityTimeout": "99"}}); err != nil {
		t.Fatal(err)
	}
	if err := f.queues.Delete(ctx, "re"); err != nil { // Kappa's own API, not DeleteQueue
		t.Fatal(err)
	}
	if _, err := f.queues.Create(ctx, "re"); err != nil {
		t.Fatal(err)
	}
	reURL := aws.String(f.url + "/" + account + "/re")
	attrs, _ = f.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: reURL, AttributeNames: []types.QueueAttributeName{"VisibilityTimeout"}})
	tags, _ = f.client.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: reURL})
	if attrs.Attributes["VisibilityTimeout"] != "30" || len(tags.Tags) != 0 {
		t.Errorf("a queue made again kept its predecessor's attributes %v and tags %v", attrs.Attributes, tags.Tags)
	}
	// FifoQueue=false is a standard queue: creating it again is fine.
	in := &sqs.CreateQueueInput{QueueName: aws.String("re"), Attributes: map[string]string{"FifoQueue": "false"}}
	if _, err := f.client.CreateQueue(ctx, in); err != nil {
		t.Errorf("CreateQueue with FifoQueue=false of an existing queue: %v", err)
	}
}

// TestConcurrentCreates: of CreateQueues of one new name with different
// attributes at once, one wins and the others are refused, as if they had
// come after it; the queue has the winner's attributes.
func TestConcurrentCreates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const n = 6
	for round := range 4 {
		name := fmt.Sprintf("race-%d", round)
		type result struct {
			timeout string
			err     error
		}
		results := make(chan result, n)
		for i := range n {
			go func() {
				v := strconv.Itoa(30 + i)
				_, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name),
					Attributes: map[string]string{"VisibilityTimeout": v}})
				results <- result{v, err}
			}()
		}
		var won []string
		for range n {
			r := <-results
			switch {
			case r.err == nil:
				won = append(won, r.timeout)
			case code(r.err) != "QueueNameExists" && code(r.err) != "QueueAlreadyExists":
				t.Errorf("%s: CreateQueue: %v", name, r.err)
			}
		}
		attrs, err := f.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(f.url + "/" + account + "/" + name),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout}})
		if err != nil {
			t.Fatal(err)
		}
		if len(won) != 1 || attrs.Attributes["VisibilityTimeout"] != won[0] {
			t.Errorf("%s: CreateQueues that succeeded with VisibilityTimeout %v; the queue has %s; want exactly one, the queue's",
				name, won, attrs.Attributes["VisibilityTimeout"])
		}
	}
}

// FuzzRequests sends arbitrary bodies to every operation: the answer is a
// 200 or an SQS-shaped 400, never a server error.
func FuzzRequests(f *testing.F) {
	ops := []string{"CreateQueue", "GetQueueUrl", "ListQueues", "DeleteQueue", "PurgeQueue", "GetQueueAttributes",
		"SetQueueAttributes", "SendMessage", "SendMessageBatch", "TagQueue", "UntagQueue", "ListQueueTags", "ReceiveMessage"}
	for i := range ops {
		f.Add(uint8(i), []byte(`{"QueueName":"q","QueueUrl":"http://h/000000000000/q","MessageBody":"x","Entries":[{"Id":"a","MessageBody":"b"}],"Attributes":{"VisibilityTimeout":"10"},"Tags":{"a":"b"},"TagKeys":["a"],"AttributeNames":["All"]}`))
	}
	f.Add(uint8(7), []byte(`{"QueueUrl":"http://h/000000000000/../../x","MessageBody":"\u0000"}`))
	fx := newFixture(f)
	if _, err := fx.client.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String("q")}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		req, _ := http.NewRequest("POST", fx.url+"/", strings.NewReader(string(body)))
		req.Header.Set("X-Amz-Target", TargetPrefix+ops[int(op)%len(ops)])
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Type string `json:"__type"`
		}
		if resp.StatusCode != 200 && (resp.StatusCode != 400 || json.NewDecoder(resp.Body).Decode(&e) != nil ||
			!strings.HasPrefix(e.Type, "com.amazonaws.sqs#") || resp.Header.Get("X-Amzn-Query-Error") == "") {
			t.Fatalf("%s %q = %d %s", ops[int(op)%len(ops)], body, resp.StatusCode, e.Type)
		}
	})
}

// TestHugeListsAreCapped: a request whose 4 MiB hold a million batch
// entries or tag keys is answered from its count, without decoding them all
// (which took hundreds of MB).
func TestHugeListsAreCapped(t *testing.T) {
	const n = 1_000_000
	body := []byte(`{"Entries":[` + strings.Repeat(`{},`, n-1) + `{}],"TagKeys":[` + strings.Repeat(`"",`, n-1) + `""]}`)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var in request
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if in.Entries.n != n || len(in.Entries.items) != maxListItems || in.TagKeys.n != n || len(in.TagKeys.items) != maxListItems {
		t.Fatalf("entries %d (%d kept), tag keys %d (%d kept)", in.Entries.n, len(in.Entries.items), in.TagKeys.n, len(in.TagKeys.items))
	}
	// The input is 7 MB; each list's decoder copies its part once.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("decoding allocated %d MB", alloc>>20)
	}

	f := newFixture(t)
	ctx := context.Background()
	created, err := f.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("huge")})
	if err != nil {
		t.Fatal(err)
	}
	batch := `{"QueueUrl":"` + aws.ToString(created.QueueUrl) + `","Entries":[` + strings.Repeat(`{},`, 600_000) + `{}]}`
	if typ, status := rawPost(t, f.url, "SendMessageBatch", batch); typ != "com.amazonaws.sqs#TooManyEntriesInBatchRequest" || status != 400 {
		t.Errorf("SendMessageBatch of 600,001 entries: %s %d", typ, status)
	}
	untag := `{"QueueUrl":"` + aws.ToString(created.QueueUrl) + `","TagKeys":[` + strings.Repeat(`"",`, 600_000) + `""]}`
	if typ, status := rawPost(t, f.url, "UntagQueue", untag); typ != "com.amazonaws.sqs#InvalidParameterValue" || status != 400 {
		t.Errorf("UntagQueue of 600,001 keys: %s %d", typ, status)
	}
}

// TestCappedCountsTheRest: the elements past the cap are counted right
// whatever they hold: commas and brackets in strings, escaped quotes,
// nested values.
func TestCappedCountsTheRest(t *testing.T) {
	kept := strings.Repeat(`{"Id":"x"},`, maxListItems)
	tests := []struct {
		name string
		rest []string
	}{
		{"none", nil},
		{"plain", []string{`{}`, `{"Id":"y"}`}},
		{"commas and brackets in strings", []string{`{"Id":"a,]}[{,"}`, `{"MessageBody":"\",\\"}`}},
		{"nested", []string{`{"MessageAttributes":{"a":[1,2,{"b":","}]}}`, `[1,[2,3]]`, `"s,t"`, `7`, `null`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.TrimSuffix(kept, ",")
			if len(tc.rest) > 0 {
				body += "," + strings.Join(tc.rest, " , ")
			}
			var c capped[entry]
			if err := json.Unmarshal([]byte("["+body+"]"), &c); err != nil {
				t.Fatal(err)
			}
			if want := maxListItems + len(tc.rest); c.n != want || len(c.items) != maxListItems || c.items[0].ID != "x" {
				t.Errorf("n = %d (want %d), %d kept", c.n, want, len(c.items))
			}
		})
	}
	var c capped[entry]
	if err := json.Unmarshal([]byte(`{"Id":"x"}`), &c); err == nil {
		t.Error("an object where an array belongs decoded without an error")
	}
}
