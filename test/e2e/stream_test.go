package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kappa-run/kappa/internal/imagebuild"
)

// pushStreamFunction builds testdata/functions/stream into an image.
func pushStreamFunction(t *testing.T, s *server, repoTag string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "var", "task"), 0o755)
	if out, err := goBuild(filepath.Join(dir, "bootstrap"), "./testdata/functions/stream", true); err != nil {
		t.Fatalf("build stream function: %v\n%s", err, out)
	}
	layer, err := imagebuild.DirLayer(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := mutate.AppendLayers(empty.Image, layer)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/bootstrap"}
	img, _ = mutate.ConfigFile(img, cf)
	ref := s.registry() + "/" + repoTag
	r, _ := name.ParseReference(ref)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

type streamResult struct {
	chunks    []string
	firstAt   time.Duration
	total     time.Duration
	complete  *types.InvokeWithResponseStreamCompleteEvent
	requestOK bool
}

func invokeStream(t *testing.T, s *server, fn string, payload any, tail bool) streamResult {
	t.Helper()
	b, _ := json.Marshal(payload)
	in := &lambda.InvokeWithResponseStreamInput{FunctionName: aws.String(fn), Payload: b}
	if tail {
		in.LogType = types.LogTypeTail
	}
	start := time.Now()
	out, err := s.Lambda.InvokeWithResponseStream(context.Background(), in)
	if err != nil {
		t.Fatalf("InvokeWithResponseStream: %v", err)
	}
	defer out.GetStream().Close()
	var res streamResult
	res.requestOK = out.StatusCode == 200
	for ev := range out.GetStream().Events() {
		switch v := ev.(type) {
		case *types.InvokeWithResponseStreamResponseEventMemberPayloadChunk:
			if res.chunks == nil {
				res.firstAt = time.Since(start)
			}
			res.chunks = append(res.chunks, string(v.Value.Payload))
		case *types.InvokeWithResponseStreamResponseEventMemberInvokeComplete:
			c := v.Value
			res.complete = &c
		}
	}
	if err := out.GetStream().Err(); err != nil {
		t.Fatalf("event stream: %v", err)
	}
	res.total = time.Since(start)
	return res
}

func TestInvokeWithResponseStream(t *testing.T) {
	s := startServer(t)
	img := pushStreamFunction(t, s, "stream:v1")
	s.createFunction(t, "streamer", img)

	t.Run("slow stream arrives in pieces", func(t *testing.T) {
		res := invokeStream(t, s, "streamer", map[string]any{"op": "stream", "n": 5, "ms": 600}, true)
		body := strings.Join(res.chunks, "")
		if body != "chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\n" {
			t.Fatalf("streamed body = %q", body)
		}
		if res.complete == nil || aws.ToString(res.complete.ErrorCode) != "" {
			t.Fatalf("InvokeComplete = %+v", res.complete)
		}
		// The function takes ≥2.4 s; its first chunk must not wait for that.
		if res.firstAt >= res.total-time.Second {
			t.Errorf("first chunk after %v of %v: the response was not streamed", res.firstAt, res.total)
		}
		if len(res.chunks) < 2 {
			t.Errorf("%d PayloadChunk events, want several", len(res.chunks))
		}
		logs, _ := base64.StdEncoding.DecodeString(aws.ToString(res.complete.LogResult))
		if !strings.Contains(string(logs), "REPORT RequestId:") {
			t.Errorf("LogResult lacks REPORT: %q", logs)
		}
	})
	t.Run("mid-stream failure in InvokeComplete", func(t *testing.T) {
		res := invokeStream(t, s, "streamer", map[string]any{"op": "streamfail", "n": 2, "ms": 10}, false)
		if !strings.HasPrefix(strings.Join(res.chunks, ""), "chunk-0\nchunk-1\n") {
			t.Errorf("chunks before the failure = %q", res.chunks)
		}
		if res.complete == nil || aws.ToString(res.complete.ErrorCode) == "" {
			t.Fatalf("InvokeComplete = %+v, want an ErrorCode", res.complete)
		}
	})
	t.Run("buffered result streams as one chunk", func(t *testing.T) {
		res := invokeStream(t, s, "streamer", map[string]any{"op": "echo", "data": "hi"}, false)
		if got := strings.Join(res.chunks, ""); !strings.Contains(got, `"data":"hi"`) {
			t.Errorf("body = %q", got)
		}
	})
	t.Run("crash in InvokeComplete", func(t *testing.T) {
		res := invokeStream(t, s, "streamer", map[string]any{"op": "exit"}, false)
		if res.complete == nil || aws.ToString(res.complete.ErrorCode) != "Runtime.ExitError" {
			t.Fatalf("InvokeComplete = %+v, want Runtime.ExitError", res.complete)
		}
	})
	t.Run("timeout in InvokeComplete", func(t *testing.T) {
		ctx := context.Background()
		if _, err := s.Lambda.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String("streamer"), Timeout: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
		w := lambda.NewFunctionUpdatedV2Waiter(s.Lambda, func(o *lambda.FunctionUpdatedV2WaiterOptions) { o.MinDelay = 50 * time.Millisecond })
		w.Wait(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("streamer")}, time.Minute)
		res := invokeStream(t, s, "streamer", map[string]any{"op": "stream", "n": 10, "ms": 400}, false)
		if res.complete == nil || aws.ToString(res.complete.ErrorCode) != "Sandbox.Timedout" {
			t.Fatalf("InvokeComplete = %+v, want Sandbox.Timedout", res.complete)
		}
		if len(res.chunks) == 0 {
			t.Errorf("no chunk before the timeout")
		}
	})
}

// TestFunctionURLResponseStream: a RESPONSE_STREAM function URL sends the
// function's prelude (status, headers) and then its body as it is made.
func TestFunctionURLResponseStream(t *testing.T) {
	s := startServer(t)
	img := pushStreamFunction(t, s, "stream:url")
	s.createFunction(t, "urlstream", img)
	created, err := s.Lambda.CreateFunctionUrlConfig(context.Background(), &lambda.CreateFunctionUrlConfigInput{
		FunctionName: aws.String("urlstream"), AuthType: types.FunctionUrlAuthTypeNone, InvokeMode: types.InvokeModeResponseStream,
	})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(aws.ToString(created.FunctionUrl))
	id := strings.Split(u.Hostname(), ".")[0]
	start := time.Now()
	resp, err := http.Post(s.URL("/lambda-url/"+id+"/"), "application/json", strings.NewReader(`{"op":"stream","n":4,"ms":300}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("X-Streamed") != "yes" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("status %d, headers %v: want the prelude's 201, X-Streamed and text/plain", resp.StatusCode, resp.Header)
	}
	first := make([]byte, 8)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	firstAt := time.Since(start)
	rest, _ := io.ReadAll(resp.Body)
	total := time.Since(start)
	if got := string(first) + string(rest); got != "chunk-0\nchunk-1\nchunk-2\nchunk-3\n" {
		t.Errorf("body = %q", got)
	}
	if firstAt >= total-600*time.Millisecond {
		t.Errorf("first bytes after %v of %v: the URL response was not streamed", firstAt, total)
	}
}
