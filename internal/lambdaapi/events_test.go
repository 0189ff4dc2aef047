package lambdaapi

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
	"github.com/kappa-run/kappa/internal/async"
	"github.com/kappa-run/kappa/internal/function"
	"github.com/kappa-run/kappa/internal/funcurl"
	"github.com/kappa-run/kappa/internal/schedule"
	"github.com/kappa-run/kappa/internal/store/jetstream"
	"github.com/kappa-run/kappa/internal/store/memstore"
)

// activeFunctions is the real function service whose functions count as
// Active for invocations (images never finish pulling in these tests).
type activeFunctions struct{ *function.Service }

func (a activeFunctions) Resolve(ctx context.Context, ref function.Ref) (function.Target, error) {
	c, err := a.Service.Config(ctx, ref)
	c.State = function.StateActive
	return function.Target{Config: c}, err
}

// recordingAsync wraps the real async service and remembers what was
// queued.
type recordingAsync struct {
	*async.Service
	mu     sync.Mutex
	events []async.Event
}

func (r *recordingAsync) Enqueue(ctx context.Context, ev *async.Event) error {
	err := r.Service.Enqueue(ctx, ev)
	r.mu.Lock()
	r.events = append(r.events, *ev)
	r.mu.Unlock()
	return err
}

type noopScheduleInvoker struct{}

func (noopScheduleInvoker) InvokeAsync(context.Context, string, string, []byte) error { return nil }

type eventsRig struct {
	api   *API
	async *recordingAsync
}

func newEventsAPI(t *testing.T) *eventsRig {
	t.Helper()
	ctx := context.Background()
	b, _ := memstore.New().Bucket(ctx, "f")
	svc := function.NewService(function.Options{Bucket: b, Images: pendingImages{}, Region: "us-east-1", Account: "000000000000"})
	t.Cleanup(svc.Close)
	fns := activeFunctions{svc}
	for _, n := range []string{"f", "g"} {
		if _, err := svc.Create(ctx, function.CreateInput{FunctionName: n, Role: "arn:aws:iam::000000000000:role/r", PackageType: "Image", ImageURI: "localhost:1/x:1"}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := jetstream.Open(ctx, jetstream.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := st.Bucket(ctx, "async")
	inv := &fakeInvoker{}
	as := async.New(async.Options{JetStream: st.JetStream(), Bucket: ab, Functions: fns, Invoker: inv, Region: "us-east-1", Account: "000000000000"})
	if err := as.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ub, _ := memstore.New().Bucket(ctx, "urls")
	urls := funcurl.NewConfigs(ub, fns, func(id string) string { return "http://" + id + ".lambda-url.us-east-1.localhost:9070/" }, nil)
	sb, _ := memstore.New().Bucket(ctx, "sched")
	sched := schedule.New(schedule.Options{Bucket: sb, Invoker: noopScheduleInvoker{}, Region: "us-east-1", Account: "000000000000"})
	if err := sched.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sched.Close()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		as.Close(cctx)
		st.Close()
	})
	rec := &recordingAsync{Service: as}
	api := New(Options{Functions: fns, Invoker: inv, Region: "us-east-1", Account: "000000000000", MaxConcurrency: 10,
		Async: rec, URLs: urls, Queues: as.Queues(), Schedules: sched})
	return &eventsRig{api: api, async: rec}
}

func TestEventInvoke(t *testing.T) {
	r := newEventsAPI(t)
	rec := do(t, r.api, "POST", "/2015-03-31/functions/f/invocations?Qualifier=$LATEST", `{"a":1}`,
		"X-Amz-Invocation-Type", "Event", "X-Amzn-Trace-Id", "Root=1-00000000-000000000000000000000001")
	if rec.Code != 202 || rec.Body.Len() != 0 {
		t.Fatalf("Event invoke = %d %q", rec.Code, rec.Body)
	}
	ev := r.async.events[0]
	if ev.RequestID != rec.Header().Get("X-Amzn-Requestid") || ev.Function != "f" || ev.Qualifier != "$LATEST" ||
		string(ev.Payload) != `{"a":1}` || ev.TraceID != "Root=1-00000000-000000000000000000000001" || ev.Accepted.IsZero() {
		t.Errorf("queued %+v", ev)
	}
	exact := `"` + strings.Repeat("x", async.MaxPayload-2) + `"`
	if rec := do(t, r.api, "POST", "/2015-03-31/functions/f/invocations", exact, "X-Amz-Invocation-Type", "Event"); rec.Code != 202 {
		t.Errorf("1 MB event = %d %s", rec.Code, rec.Body)
	}
	rec = do(t, r.api, "POST", "/2015-03-31/functions/f/invocations", exact+" ", "X-Amz-Invocation-Type", "Event")
	if rec.Code != 413 || rec.Header().Get("X-Amzn-ErrorType") != "RequestTooLargeException" || !strings.Contains(rec.Body.String(), "1048576") {
		t.Errorf("1 MB + 1 event = %d %s %s", rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Body)
	}
	if rec := do(t, r.api, "POST", "/2015-03-31/functions/nope/invocations", `{}`, "X-Amz-Invocation-Type", "Event"); rec.Code != 404 {
		t.Errorf("Event to a missing function = %d", rec.Code)
	}
	rec = do(t, r.api, "POST", "/2014-11-13/functions/f/invoke-async/", `{"old":true}`)
	if rec.Code != 202 || strings.TrimSpace(rec.Body.String()) != `{"Status":202}` {
		t.Errorf("InvokeAsync = %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, r.api, "POST", "/2014-11-13/functions/f/invoke-async/", `{"old":`); rec.Code != 400 {
		t.Errorf("InvokeAsync with bad JSON = %d", rec.Code)
	}
}

func TestEventInvokeConfigAPI(t *testing.T) {
	r := newEventsAPI(t)
	base := "/2019-09-25/functions/f/event-invoke-config"
	tests := []struct {
		name, method, path, body string
		status                   int
		typ                      string
		check                    func(t *testing.T, m map[string]any)
	}{
		{name: "get before put", method: "GET", path: base, status: 404, typ: "ResourceNotFoundException"},
		{name: "put", method: "PUT", path: base, body: `{"MaximumRetryAttempts":1,"DestinationConfig":{"OnFailure":{"Destination":"arn:aws:sqs:us-east-1:000000000000:dlq"}}}`, status: 200,
			check: func(t *testing.T, m map[string]any) {
				if m["FunctionArn"] != "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST" || m["MaximumRetryAttempts"] != 1.0 || m["MaximumEventAgeInSeconds"] != nil {
					t.Errorf("put = %v", m)
				}
				lm, _ := m["LastModified"].(float64)
				if time.Since(time.Unix(int64(lm), 0)) > time.Minute {
					t.Errorf("LastModified %v is not epoch seconds of now", m["LastModified"])
				}
				dc := m["DestinationConfig"].(map[string]any)
				if dc["OnFailure"].(map[string]any)["Destination"] != "arn:aws:sqs:us-east-1:000000000000:dlq" || len(dc["OnSuccess"].(map[string]any)) != 0 {
					t.Errorf("DestinationConfig = %v", dc)
				}
			}},
		{name: "update keeps", method: "POST", path: base, body: `{"MaximumEventAgeInSeconds":300}`, status: 200,
			check: func(t *testing.T, m map[string]any) {
				if m["MaximumRetryAttempts"] != 1.0 || m["MaximumEventAgeInSeconds"] != 300.0 {
					t.Errorf("update = %v", m)
				}
			}},
		{name: "retries out of range", method: "PUT", path: base, body: `{"MaximumRetryAttempts":3}`, status: 400, typ: "ValidationException"},
		{name: "age out of range", method: "PUT", path: base, body: `{"MaximumEventAgeInSeconds":59}`, status: 400, typ: "ValidationException"},
		{name: "sns destination", method: "PUT", path: base, body: `{"DestinationConfig":{"OnSuccess":{"Destination":"arn:aws:sns:us-east-1:000000000000:t"}}}`, status: 400, typ: "InvalidParameterValueException"},
		{name: "not json", method: "PUT", path: base, body: `{"MaximumRetryAttempts":`, status: 400, typ: "InvalidRequestContentException"},
		{name: "missing function", method: "PUT", path: "/2019-09-25/functions/nope/event-invoke-config", body: `{}`, status: 404, typ: "ResourceNotFoundException"},
		{name: "list", method: "GET", path: base + "/list", status: 200,
			check: func(t *testing.T, m map[string]any) {
				if l := m["FunctionEventInvokeConfigs"].([]any); len(l) != 1 {
					t.Errorf("list = %v", m)
				}
			}},
		{name: "delete", method: "DELETE", path: base, status: 204},
		{name: "delete again", method: "DELETE", path: base, status: 404, typ: "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, r.api, tt.method, tt.path, tt.body)
			if rec.Code != tt.status || rec.Header().Get("X-Amzn-ErrorType") != tt.typ {
				t.Fatalf("= %d %q %s; want %d %q", rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Body, tt.status, tt.typ)
			}
			if tt.check != nil {
				var m map[string]any
				json.Unmarshal(rec.Body.Bytes(), &m)
				tt.check(t, m)
			}
		})
	}
}

func TestURLConfigAPI(t *testing.T) {
	r := newEventsAPI(t)
	base := "/2021-10-31/functions/f/url"
	rec := do(t, r.api, "POST", base, `{"AuthType":"NONE","Cors":{"AllowOrigins":["*"],"MaxAge":60}}`)
	if rec.Code != 201 {
		t.Fatalf("create = %d %s", rec.Code, rec.Body)
	}
	var c map[string]any
	json.Unmarshal(rec.Body.Bytes(), &c)
	u, _ := c["FunctionUrl"].(string)
	if !strings.HasPrefix(u, "http://") || !strings.HasSuffix(u, ".lambda-url.us-east-1.localhost:9070/") || c["FunctionArn"] != "arn:aws:lambda:us-east-1:000000000000:function:f" ||
		c["InvokeMode"] != "BUFFERED" || c["AuthType"] != "NONE" || c["LastModifiedTime"] != nil {
		t.Errorf("create = %v", c)
	}
	if _, err := time.Parse(urlTime, c["CreationTime"].(string)); err != nil {
		t.Errorf("CreationTime %v: %v", c["CreationTime"], err)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		typ                      string
	}{
		{"again", "POST", base, `{"AuthType":"NONE"}`, 409, "ResourceConflictException"},
		{"no auth type", "POST", "/2021-10-31/functions/g/url", `{}`, 400, "ValidationException"},
		{"bad auth type", "POST", "/2021-10-31/functions/g/url", `{"AuthType":"OPEN"}`, 400, "ValidationException"},
		{"version qualifier", "POST", "/2021-10-31/functions/g/url?Qualifier=1", `{"AuthType":"NONE"}`, 400, "ValidationException"},
		{"get", "GET", base, "", 200, ""},
		{"update", "PUT", base, `{"AuthType":"AWS_IAM","InvokeMode":"RESPONSE_STREAM"}`, 200, ""},
		{"list", "GET", "/2021-10-31/functions/f/urls", "", 200, ""},
		{"get missing", "GET", "/2021-10-31/functions/g/url", "", 404, "ResourceNotFoundException"},
		{"delete", "DELETE", base, "", 204, ""},
		{"delete again", "DELETE", base, "", 404, "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, r.api, tt.method, tt.path, tt.body)
			if rec.Code != tt.status || rec.Header().Get("X-Amzn-ErrorType") != tt.typ {
				t.Fatalf("= %d %q %s; want %d %q", rec.Code, rec.Header().Get("X-Amzn-ErrorType"), rec.Body, tt.status, tt.typ)
			}
			if tt.name == "update" && (!strings.Contains(rec.Body.String(), `"AuthType":"AWS_IAM"`) || !strings.Contains(rec.Body.String(), `"LastModifiedTime"`) || !strings.Contains(rec.Body.String(), `"MaxAge":60`)) {
				t.Errorf("update = %s", rec.Body)
			}
			if tt.name == "list" && strings.Count(rec.Body.String(), "FunctionUrl\"") != 1 {
				t.Errorf("list = %s", rec.Body)
			}
		})
	}
}

func TestQueueAPI(t *testing.T) {
	r := newEventsAPI(t)
	steps := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"PUT", "/kappa/queues/jobs", "", 200, `"Arn":"arn:aws:sqs:us-east-1:000000000000:jobs"`},
		{"POST", "/kappa/queues/jobs/messages", `{"n":1}`, 200, `"Sequence":1`},
		{"POST", "/kappa/queues/jobs/messages", `plain`, 200, `"Sequence":2`},
		{"GET", "/kappa/queues/jobs/messages?after=0", "", 200, `"Body":{"n":1}`},
		{"GET", "/kappa/queues/jobs/messages?after=1&max=1", "", 200, `"Body":"plain"}],"LastSequence":2`},
		{"GET", "/kappa/queues/jobs/messages?after=2&wait=0.1", "", 200, `"Messages":[],"LastSequence":2`},
		{"GET", "/kappa/queues/jobs/messages?after=-1", "", 400, "ValidationException"},
		{"GET", "/kappa/queues", "", 200, `"Messages":2`},
		{"GET", "/kappa/queues/jobs", "", 200, `"LastSequence":2`},
		{"DELETE", "/kappa/queues/jobs", "", 204, ""},
		{"GET", "/kappa/queues/jobs", "", 404, "ResourceNotFoundException"},
		{"PUT", "/kappa/queues/bad.name", "", 400, "ValidationException"},
	}
	for _, s := range steps {
		rec := do(t, r.api, s.method, s.path, s.body)
		if rec.Code != s.status || !strings.Contains(rec.Body.String()+rec.Header().Get("X-Amzn-ErrorType"), s.want) {
			t.Errorf("%s %s = %d %s; want %d with %s", s.method, s.path, rec.Code, rec.Body, s.status, s.want)
		}
	}
}

func TestScheduleAPI(t *testing.T) {
	r := newEventsAPI(t)
	body := `{"ScheduleExpression":"cron(0 9 ? * MON-FRI *)","ScheduleExpressionTimezone":"Europe/Paris","FlexibleTimeWindow":{"Mode":"OFF"},` +
		`"Target":{"Arn":"arn:aws:lambda:us-east-1:000000000000:function:f","RoleArn":"arn:aws:iam::000000000000:role/s","Input":"{\"k\":1}"},"StartDate":1700000000}`
	steps := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/schedules/daily", body, 200, `{"ScheduleArn":"arn:aws:scheduler:us-east-1:000000000000:schedule/default/daily"}`},
		{"POST", "/schedules/daily", body, 409, "ResourceConflictException"},
		{"GET", "/schedules/daily", "", 200, `"ScheduleExpressionTimezone":"Europe/Paris","StartDate":1700000000,"State":"ENABLED"`},
		{"GET", "/schedules/daily", "", 200, `"NextFireTime":`},
		{"POST", "/schedules/bad", `{"ScheduleExpression":"rate(1 minutes)","Target":{"Arn":"arn:aws:lambda:us-east-1:000000000000:function:f"}}`, 400, "ValidationException"},
		{"POST", "/schedules/bad", `{"ScheduleExpression":`, 400, "ValidationException"},
		{"PUT", "/schedules/daily", strings.Replace(body, `"Target"`, `"State":"DISABLED","Target"`, 1), 200, "ScheduleArn"},
		{"GET", "/schedules?State=DISABLED", "", 200, `"Name":"daily"`},
		{"GET", "/schedules?NamePrefix=x", "", 200, `{"Schedules":[]}`},
		{"GET", "/schedules?State=ON", "", 400, "ValidationException"},
		{"DELETE", "/schedules/daily", "", 200, `{}`},
		{"GET", "/schedules/daily", "", 404, "ResourceNotFoundException"},
	}
	for _, s := range steps {
		rec := do(t, r.api, s.method, s.path, s.body)
		if rec.Code != s.status || !strings.Contains(rec.Body.String()+rec.Header().Get("X-Amzn-ErrorType"), s.want) {
			t.Errorf("%s %s = %d %s; want %d with %s", s.method, s.path, rec.Code, rec.Body, s.status, s.want)
		}
	}
}

func FuzzEventInvokeConfigBody(f *testing.F) {
	f.Add([]byte(`{"MaximumRetryAttempts":1,"MaximumEventAgeInSeconds":60,"DestinationConfig":{"OnSuccess":{"Destination":"arn:aws:sqs:us-east-1:000000000000:q"},"OnFailure":{}}}`))
	f.Add([]byte(`{"DestinationConfig":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := parseEventInvokeConfig(body)
		if err != nil {
			if apierr.As(err) == nil {
				t.Fatalf("non-API error %v", err)
			}
			return
		}
		if p := in.MaximumRetryAttempts; p != nil && (*p < 0 || *p > 2) {
			t.Fatalf("accepted MaximumRetryAttempts %d", *p)
		}
		if p := in.MaximumEventAgeInSeconds; p != nil && (*p < 60 || *p > 21600) {
			t.Fatalf("accepted MaximumEventAgeInSeconds %d", *p)
		}
	})
}

func FuzzURLConfigBody(f *testing.F) {
	f.Add([]byte(`{"AuthType":"NONE","Cors":{"AllowOrigins":["*"],"AllowMethods":["GET"],"MaxAge":10},"InvokeMode":"BUFFERED"}`), true)
	f.Add([]byte(`{"Cors":{"MaxAge":-1}}`), false)
	f.Fuzz(func(t *testing.T, body []byte, create bool) {
		in, err := parseURLConfig(body, create)
		if err != nil {
			if apierr.As(err) == nil {
				t.Fatalf("non-API error %v", err)
			}
			return
		}
		if create && in.AuthType == nil {
			t.Fatal("accepted a create without AuthType")
		}
		if in.AuthType != nil && *in.AuthType != "NONE" && *in.AuthType != "AWS_IAM" {
			t.Fatalf("accepted AuthType %q", *in.AuthType)
		}
		if in.Cors != nil && (in.Cors.MaxAge < 0 || in.Cors.MaxAge > 86400 || len(in.Cors.AllowMethods) > 6) {
			t.Fatalf("accepted Cors %+v", in.Cors)
		}
	})
}

func FuzzScheduleBody(f *testing.F) {
	f.Add([]byte(`{"ScheduleExpression":"rate(5 minutes)","StartDate":1.7e9,"EndDate":"2030-01-01T00:00:00Z","Target":{"Arn":"arn:aws:lambda:us-east-1:000000000000:function:f","Input":"{}"}}`))
	f.Add([]byte(`{"StartDate":1e300}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := parseScheduleRequest(body)
		if err != nil {
			if apierr.As(err) == nil {
				t.Fatalf("non-API error %v", err)
			}
			return
		}
		if in.StartDate != nil && in.StartDate.Year() > 5000 {
			t.Fatalf("accepted StartDate %v", in.StartDate)
		}
	})
}

func FuzzQueueReadParams(f *testing.F) {
	f.Add("after=5&max=10&wait=0.5")
	f.Add("wait=NaN&max=-1")
	f.Add("wait=1e300")
	f.Add("wait=Inf")
	f.Fuzz(func(t *testing.T, query string) {
		r := httptest.NewRequest("GET", "/kappa/queues/q/messages", nil)
		r.URL.RawQuery = query
		_, max, wait, err := readQueueParams(r)
		if err != nil {
			return
		}
		if max < 1 || max > maxQueueRead || wait < 0 || wait > maxQueueWait {
			t.Fatalf("%q → max %d wait %v", query, max, wait)
		}
	})
}
