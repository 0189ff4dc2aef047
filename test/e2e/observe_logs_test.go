package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

var streamNameRE = regexp.MustCompile(`^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}$`)

// TestObserveLogs covers issue 7's logs: every line with START/END/REPORT
// stored per function and stream and attributed to its request, the JSON
// format and its level filters, live tails, `kappa logs`, a chatty
// function that neither slows others nor grows memory, and survival of a
// restart.
func TestObserveLogs(t *testing.T) {
	s := newServer(t, "--log-rate-limit", "1MiB")
	img := s.pushProbe(t, "probe:logs")
	s.createFunction(t, "logtext", img)
	s.createFunction(t, "logjson", img, func(in *lambda.CreateFunctionInput) {
		in.LoggingConfig = &types.LoggingConfig{LogFormat: types.LogFormatJson,
			ApplicationLogLevel: types.ApplicationLogLevelWarn, SystemLogLevel: types.SystemLogLevelInfo}
	})

	var textReq string
	t.Run("text lines attributed to their request and stream", func(t *testing.T) {
		res := mustInvoke(t, s, "logtext", map[string]any{"op": "env", "log": "hello from the function"})
		textReq = res["requestId"].(string)
		stream := environ(res)["AWS_LAMBDA_LOG_STREAM_NAME"]
		if !streamNameRE.MatchString(stream) {
			t.Errorf("AWS_LAMBDA_LOG_STREAM_NAME = %q, want YYYY/MM/DD/[$LATEST]<32 hex>", stream)
		}
		// The function's line may reach Kappa before END or, racing the
		// runtime's answer, after REPORT: it belongs to the request anyway.
		evs := s.waitLogs(t, "logtext", url.Values{"request": {textReq}}, "all four lines", func(evs []logEvent) bool {
			return len(evs) == 4
		})
		byPrefix := map[string]logEvent{}
		for _, e := range evs {
			if e.Stream != stream || e.RequestID != textReq {
				t.Errorf("line %+v, want stream %s and request %s", e, stream, textReq)
			}
			byPrefix[strings.SplitN(e.Message, " ", 2)[0]] = e
		}
		if !strings.HasPrefix(evs[0].Message, "START RequestId: "+textReq+" Version: $LATEST") || evs[0].Type != "platform" {
			t.Errorf("first line %+v, want START", evs[0])
		}
		if e := byPrefix["hello"]; e.Message != "hello from the function" || e.Type != "function" {
			t.Errorf("the function's line: %+v", e)
		}
		if e := byPrefix["END"]; e.Message != "END RequestId: "+textReq {
			t.Errorf("END line: %+v", e)
		}
		if e := byPrefix["REPORT"]; !strings.Contains(e.Message, "\tDuration: ") || !strings.Contains(e.Message, "Init Duration: ") {
			t.Errorf("REPORT line of a cold start: %+v", e)
		}
		all := s.logs(t, "logtext", url.Values{"since": {"10m"}})
		if len(all) == 0 || !strings.HasPrefix(all[0].Message, "probe init ") || all[0].RequestID != "" {
			t.Errorf("the init output should come first, attributed to no request:\n%s", eventLines(all))
		}
		if got := s.logs(t, "logtext", url.Values{"filter": {"hello from"}}); len(got) != 1 {
			t.Errorf("filter found %d lines", len(got))
		}
	})

	t.Run("json format and level filters", func(t *testing.T) {
		lines := `{"level":"DEBUG","message":"debug line"}` + "\n" + `{"level":"ERROR","message":"error line","n":1}` + "\nplain text line"
		out, res := invoke(t, s, "logjson", map[string]any{"op": "log", "text": lines}, withTail)
		req := res["requestId"].(string)
		evs := s.waitLogs(t, "logjson", url.Values{"request": {req}}, "platform.report and the ERROR line", func(evs []logEvent) bool {
			return strings.Contains(eventLines(evs), `"platform.report"`) && strings.Contains(eventLines(evs), "error line")
		})
		var msgs []string
		var report string
		for _, e := range evs {
			msgs = append(msgs, e.Message)
			if strings.Contains(e.Message, `"platform.report"`) {
				report = e.Message
			}
		}
		joined := strings.Join(msgs, "\n")
		if strings.Contains(joined, "debug line") || strings.Contains(joined, "plain text line") {
			t.Errorf("lines below ApplicationLogLevel WARN were kept:\n%s", joined)
		}
		if !strings.Contains(joined, `{"level":"ERROR","message":"error line","n":1}`) {
			t.Errorf("the ERROR JSON line is not kept byte for byte:\n%s", joined)
		}
		var start struct {
			Time   string         `json:"time"`
			Type   string         `json:"type"`
			Record map[string]any `json:"record"`
		}
		if err := json.Unmarshal([]byte(msgs[0]), &start); err != nil || start.Type != "platform.start" ||
			start.Record["requestId"] != req || start.Record["version"] != "$LATEST" {
			t.Errorf("first line %q, want a platform.start record", msgs[0])
		}
		var rep struct {
			Type   string `json:"type"`
			Record struct {
				RequestID string             `json:"requestId"`
				Status    string             `json:"status"`
				Metrics   map[string]float64 `json:"metrics"`
			} `json:"record"`
		}
		if err := json.Unmarshal([]byte(report), &rep); err != nil || rep.Record.RequestID != req ||
			rep.Record.Metrics["billedDurationMs"] < 1 || rep.Record.Metrics["memorySizeMB"] != 128 || rep.Record.Status != "success" {
			t.Errorf("platform.report %q, want a record with metrics", report)
		}
		if tail := tailOf(t, out); !strings.Contains(tail, `"platform.start"`) || strings.Contains(tail, "debug line") {
			t.Errorf("X-Amz-Log-Result in JSON format:\n%s", tail)
		}
	})

	t.Run("follow streams new lines", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL("/kappa/logs/logtext?follow=1&filter=followed"), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got := make(chan logEvent, 10)
		go func() {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var e logEvent
				json.Unmarshal(sc.Bytes(), &e)
				got <- e
			}
			close(got)
		}()
		res := mustInvoke(t, s, "logtext", map[string]any{"op": "echo", "log": "followed line"})
		select {
		case e := <-got:
			if e.Message != "followed line" || e.RequestID != res["requestId"] {
				t.Errorf("followed %+v", e)
			}
		case <-ctx.Done():
			t.Fatal("no followed line within 20 s")
		}
	})

	t.Run("kappa logs", func(t *testing.T) {
		out, errOut, code := s.kappa(t, "", "logs", "logtext", "--since", "10m", "--filter", "hello from")
		if code != 0 || !strings.Contains(out, "hello from the function") || strings.Count(out, "\n") != 1 {
			t.Errorf("kappa logs = %d %q %q", code, out, errOut)
		}
		out, _, code = s.kappa(t, "", "logs", "logtext", "--request", textReq, "--output", "json")
		var e logEvent
		if code != 0 || strings.Count(out, "\n") != 4 || json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &e) != nil || e.RequestID != textReq {
			t.Errorf("kappa logs --output json = %d %q", code, out)
		}
		_, errOut, code = s.kappa(t, "", "logs", "logtext", "--since", "yesterday")
		if code != 2 || !strings.Contains(errOut, "--since") {
			t.Errorf("bad --since: exit %d %q, want 2 and a hint", code, errOut)
		}
	})

	t.Run("kappa logs --follow", func(t *testing.T) {
		cmd := exec.Command(kappaBin, "logs", "logtext", "--follow", "--filter", "cli-followed", "--output", "raw")
		cmd.Env = append(os.Environ(), "KAPPA_ENDPOINT=http://"+s.addr)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 10)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		time.Sleep(300 * time.Millisecond) // let it connect
		mustInvoke(t, s, "logtext", map[string]any{"op": "echo", "log": "cli-followed line"})
		select {
		case l := <-lines:
			if l != "cli-followed line" {
				t.Errorf("kappa logs --follow printed %q", l)
			}
		case <-time.After(10 * time.Second):
			t.Error("kappa logs --follow printed nothing in 10 s")
		}
		cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Errorf("kappa logs --follow after Ctrl-C: %v, want exit 0", err)
		}
	})

	t.Run("chatty function", func(t *testing.T) {
		// A full vCPU (1,769 MB), so the function can write 10 MB/s.
		s.createFunction(t, "chatty", img, func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(1769) })
		// Baseline latency of a quiet function.
		quiet := func(n int) time.Duration {
			var ds []time.Duration
			for range n {
				t0 := time.Now()
				mustInvoke(t, s, "logtext", map[string]any{"op": "echo", "log": "quiet"})
				ds = append(ds, time.Since(t0))
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			return ds[len(ds)/2]
		}
		base := quiet(20)
		rss0 := rssOf(t, s)
		// About 10 MB/s for three seconds: each invocation prints ~1 MB to
		// stdout and again to stderr, five a second.
		line := strings.Repeat("chatty output that nobody reads ", 3) + "\n"
		text := strings.Repeat(line, 1<<20/len(line))
		var sent atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		chattyStart := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next := time.Now(); ; next = next.Add(200 * time.Millisecond) {
				select {
				case <-stop:
					return
				case <-time.After(time.Until(next)):
				}
				if out, _, err := tryInvoke(s, "chatty", map[string]any{"op": "log", "text": text}); err == nil && out.FunctionError == nil {
					sent.Add(2 << 20)
				}
			}
		}()
		time.Sleep(500 * time.Millisecond)
		var ds []time.Duration
		for t0 := time.Now(); time.Since(t0) < 2*time.Second; {
			t1 := time.Now()
			mustInvoke(t, s, "logtext", map[string]any{"op": "echo", "log": "quiet"})
			ds = append(ds, time.Since(t1))
			time.Sleep(5 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		chattyFor := time.Since(chattyStart)
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		during := ds[len(ds)/2]
		rss1 := rssOf(t, s)
		t.Logf("quiet p50 %v alone, %v (p90 %v) next to a chatty function (%d MB written in %v); server RSS %d → %d MB",
			base, during, ds[len(ds)*9/10], sent.Load()>>20, chattyFor.Round(time.Millisecond), rss0>>20, rss1>>20)
		// At most what the store keeps at 1 MiB/s with a 2 MiB burst, plus
		// the records' own overhead (time, request id: about 60 bytes on
		// these 100-byte lines).
		limit := int64((chattyFor.Seconds() + 3) * 1.7 * (1 << 20))
		// Chatty enough to matter: more than that limit keeps (a loaded
		// machine runs fewer of its invocations than five a second, so
		// the floor is not the ~10 MB/s aimed at).
		if sent.Load() <= limit {
			t.Errorf("the chatty function wrote only %d MB in %v, no more than its log limit keeps", sent.Load()>>20, chattyFor.Round(time.Millisecond))
		}
		// Quiet invocations waiting on the chatty function's logs would
		// take many times as long; a busy machine only slows them some.
		if during > 10*base+200*time.Millisecond {
			t.Errorf("quiet invocations slowed from %v to %v next to a chatty function", base, during)
		}
		if rss1 > rss0+150<<20 {
			t.Errorf("server memory grew from %d to %d MB", rss0>>20, rss1>>20)
		}
		evs := s.waitLogs(t, "chatty", url.Values{"filter": {"logsDropped"}}, "a logsDropped record", func(evs []logEvent) bool {
			return len(evs) > 0
		})
		if !strings.Contains(evs[0].Message, "Dropped Records: ") || evs[0].RequestID == "" || evs[0].Type != "platform" {
			t.Errorf("logsDropped record %+v", evs[0])
		}
		var stored int64
		for _, st := range s.logStreams(t, "chatty") {
			stored += st.Bytes
		}
		if stored > limit || stored >= sent.Load() {
			t.Errorf("stored %d MB of %d MB written in %v at a 1 MiB/s limit", stored>>20, sent.Load()>>20, chattyFor)
		}
	})

	t.Run("logs survive a restart", func(t *testing.T) {
		s.restart()
		evs := s.logs(t, "logtext", url.Values{"request": {textReq}})
		if len(evs) != 4 {
			t.Errorf("after a restart the request has %d lines:\n%s", len(evs), eventLines(evs))
		}
	})
}

type logStream struct {
	Name  string `json:"name"`
	Bytes int64  `json:"storedBytes"`
}

func (s *server) logStreams(t testing.TB, fname string) []logStream {
	t.Helper()
	code, body := get(t, s.URL("/kappa/logs/"+fname+"/streams"))
	var v struct {
		Streams []logStream `json:"streams"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("GET streams: %d %s", code, body)
	}
	return v.Streams
}

// rssOf reads the server's resident memory in bytes.
func rssOf(t testing.TB, s *server) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
