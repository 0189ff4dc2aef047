// Command telemetry is an external Lambda extension that subscribes to the
// Telemetry API (or, with KAPPA_TEST_LOGS_API=1, the legacy Logs API) and
// records what it receives. KAPPA_TEST_PROTOCOL picks the destination,
// HTTP (default) or TCP. It registers for SHUTDOWN only; on SHUTDOWN it
// waits until it has seen a platform.report for every platform.start (or
// up to 1.5 s), writes every event it received as JSON to
// $KAPPA_TEST_RECORD_DIR/<name>.json (with KAPPA_TEST_RECORD_STDOUT=1, also
// one line listing the event types to stdout) and exits.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event is one telemetry event.
type Event struct {
	Time   string          `json:"time"`
	Type   string          `json:"type"`
	Record json.RawMessage `json:"record"`
}

// Record is the file the extension writes.
type Record struct {
	Name      string          `json:"name"`
	Subscribe json.RawMessage `json:"subscribe"`
	Batches   int             `json:"batches"`
	Events    []Event         `json:"events"`
}

var (
	mu      sync.Mutex
	rec     Record
	changed = make(chan struct{}, 1)
)

func add(evs []Event) {
	mu.Lock()
	rec.Batches++
	rec.Events = append(rec.Events, evs...)
	mu.Unlock()
	select {
	case changed <- struct{}{}:
	default:
	}
}

func main() {
	name := filepath.Base(os.Args[0])
	rec.Name = name
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	base := "http://" + api + "/2020-01-01/extension"

	req, _ := http.NewRequest(http.MethodPost, base+"/register", bytes.NewReader([]byte(`{"events":["SHUTDOWN"]}`)))
	req.Header.Set("Lambda-Extension-Name", name)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		fail("register: %v %v", err, resp)
	}
	resp.Body.Close()
	id := resp.Header.Get("Lambda-Extension-Identifier")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("listen: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	var dest string
	if os.Getenv("KAPPA_TEST_PROTOCOL") == "TCP" {
		go serveTCP(ln)
		dest = `{"protocol":"TCP","port":` + strconv.Itoa(port) + `}`
	} else {
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var evs []Event
			if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			add(evs)
		}))
		dest = `{"protocol":"HTTP","URI":"http://sandbox.localdomain:` + strconv.Itoa(port) + `/telemetry"}`
	}
	path, body := "/2022-07-01/telemetry", `{"schemaVersion":"2022-12-13","types":["platform","function","extension"],"buffering":{"timeoutMs":25},"destination":`+dest+`}`
	if os.Getenv("KAPPA_TEST_LOGS_API") == "1" {
		path, body = "/2020-08-15/logs", `{"types":["platform","function"],"buffering":{"timeoutMs":25},"destination":`+dest+`}`
	}
	req, _ = http.NewRequest(http.MethodPut, "http://"+api+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Lambda-Extension-Identifier", id)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		fail("subscribe: %v", err)
	}
	sub, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fail("subscribe: %d %s", resp.StatusCode, sub)
	}
	rec.Subscribe = sub

	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/event/next", nil)
		req.Header.Set("Lambda-Extension-Identifier", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fail("next: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var ev struct {
			EventType string `json:"eventType"`
		}
		_ = json.Unmarshal(body, &ev)
		if ev.EventType == "SHUTDOWN" {
			drain()
			write()
			return
		}
	}
}

func serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			sc := bufio.NewScanner(c)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var ev Event
				if json.Unmarshal(sc.Bytes(), &ev) == nil {
					add([]Event{ev})
				}
			}
		}()
	}
}

// drain waits until every platform.start has its platform.report.
func drain() {
	deadline := time.After(1500 * time.Millisecond)
	for {
		mu.Lock()
		starts, reports := 0, 0
		for _, e := range rec.Events {
			switch e.Type {
			case "platform.start":
				starts++
			case "platform.report":
				reports++
			}
		}
		mu.Unlock()
		if reports >= starts {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			return
		}
	}
}

func write() {
	if os.Getenv("KAPPA_TEST_RECORD_STDOUT") == "1" {
		// One line naming every event type in order, for environments
		// whose files vanish with them (a server's containers).
		mu.Lock()
		types := make([]string, len(rec.Events))
		for i, e := range rec.Events {
			types[i] = e.Type
		}
		mu.Unlock()
		fmt.Printf("[%s] telemetry events: %s\n", rec.Name, strings.Join(types, ","))
	}
	dir := os.Getenv("KAPPA_TEST_RECORD_DIR")
	if dir == "" {
		return
	}
	mu.Lock()
	b, _ := json.MarshalIndent(rec, "", "  ")
	mu.Unlock()
	tmp := filepath.Join(dir, rec.Name+".json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		_ = os.Rename(tmp, filepath.Join(dir, rec.Name+".json"))
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}
