// Command lifecycle is an external Lambda extension for the extension
// tests. It registers for INVOKE and SHUTDOWN under its file name, waits
// KAPPA_TEST_INIT_MS milliseconds before its first /event/next (init must
// wait for it), and KAPPA_TEST_INVOKE_MS after each INVOKE before calling
// next again (the invocation must wait for it). It prints one line per
// event and, on SHUTDOWN, writes what it saw as JSON to
// $KAPPA_TEST_RECORD_DIR/<name>.json and exits.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Record is the JSON file the extension writes.
type Record struct {
	Name         string          `json:"name"`
	RegisteredAt int64           `json:"registeredAtMs"`
	Register     json.RawMessage `json:"register"`
	Events       []Event         `json:"events"`
}

// Event is one event the extension received.
type Event struct {
	At    int64           `json:"atMs"`
	Event json.RawMessage `json:"event"`
}

func main() {
	name := filepath.Base(os.Args[0])
	base := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2020-01-01/extension"
	rec := Record{Name: name}

	req, _ := http.NewRequest(http.MethodPost, base+"/register", bytes.NewReader([]byte(`{"events":["INVOKE","SHUTDOWN"]}`)))
	req.Header.Set("Lambda-Extension-Name", name)
	req.Header.Set("Lambda-Extension-Accept-Feature", "accountId")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fail("register: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fail("register: %d %s", resp.StatusCode, body)
	}
	id := resp.Header.Get("Lambda-Extension-Identifier")
	rec.RegisteredAt = time.Now().UnixMilli()
	rec.Register = body
	fmt.Printf("[%s] registered %s\n", name, body)

	time.Sleep(envMs("KAPPA_TEST_INIT_MS"))
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/event/next", nil)
		req.Header.Set("Lambda-Extension-Identifier", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fail("next: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			fail("next: %d %s", resp.StatusCode, body)
		}
		rec.Events = append(rec.Events, Event{At: time.Now().UnixMilli(), Event: body})
		var ev struct {
			EventType string `json:"eventType"`
			RequestID string `json:"requestId"`
		}
		_ = json.Unmarshal(body, &ev)
		fmt.Printf("[%s] event %s %s\n", name, ev.EventType, ev.RequestID)
		if ev.EventType == "SHUTDOWN" {
			write(rec)
			return
		}
		time.Sleep(envMs("KAPPA_TEST_INVOKE_MS"))
	}
}

func envMs(key string) time.Duration {
	n, _ := strconv.Atoi(os.Getenv(key))
	return time.Duration(n) * time.Millisecond
}

func write(rec Record) {
	dir := os.Getenv("KAPPA_TEST_RECORD_DIR")
	if dir == "" {
		return
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	tmp := filepath.Join(dir, rec.Name+".json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		_ = os.Rename(tmp, filepath.Join(dir, rec.Name+".json"))
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}
