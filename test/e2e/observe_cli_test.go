package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestObserveCLI drives the kappa CLI against a real server: fn, alias,
// invoke and the global behaviour (tables and --output json, completion,
// exit codes, errors that say what to do next).
func TestObserveCLI(t *testing.T) {
	s := newServer(t)
	img := s.pushProbe(t, "probe:cli")
	type step struct {
		name  string
		stdin string
		args  []string
		code  int
		// out and errOut must be contained in stdout and stderr; notOut
		// must not be in stdout.
		out, errOut, notOut []string
	}
	payload := filepath.Join(t.TempDir(), "event.json")
	os.WriteFile(payload, []byte(`{"op":"echo","text":"from a file"}`), 0o644)
	steps := []step{
		{name: "version", args: []string{"version"}, out: []string{"kappa "}},
		{name: "completion bash", args: []string{"completion", "bash"}, out: []string{"__start_kappa"}},
		{name: "completion zsh", args: []string{"completion", "zsh"}, out: []string{"#compdef kappa"}},
		{name: "completion fish", args: []string{"completion", "fish"}, out: []string{"complete -c kappa"}},
		{name: "create", args: []string{"fn", "create", "clifn", "--image", img, "--wait", "--log-format", "JSON"},
			out: []string{"Name:", "clifn", "Active", "Memory:", "128 MB", "Logging:", "JSON"}},
		{name: "list", args: []string{"fn", "list"}, out: []string{"NAME", "STATE", "clifn", "Active", "128 MB"}},
		{name: "update", args: []string{"fn", "update", "clifn", "--memory", "256", "--env", "STAGE=b", "--wait"},
			out: []string{"256 MB", "Successful", "STAGE=b"}},
		{name: "publish", args: []string{"fn", "publish", "clifn"}, out: []string{"published clifn version 1"}},
		{name: "versions", args: []string{"fn", "versions", "clifn"}, out: []string{"VERSION", "$LATEST", "1 "}},
		{name: "alias create", args: []string{"alias", "create", "clifn", "live", "--version", "1", "--description", "prod"},
			out: []string{"Name:", "live", "Function version: 1"}},
		{name: "alias update", args: []string{"alias", "update", "clifn", "live", "--description", "<b>new</b>"},
			out: []string{"<b>new</b>"}},
		{name: "update again", args: []string{"fn", "update", "clifn", "--memory", "320", "--wait"}, out: []string{"320 MB"}},
		{name: "publish 2", args: []string{"fn", "publish", "clifn"}, out: []string{"published clifn version 2"}},
		{name: "alias weight", args: []string{"alias", "update", "clifn", "live", "--weight", "2=0.25", "-o", "json"},
			out: []string{`"2": 0.25`}},
		{name: "alias clear weights", args: []string{"alias", "update", "clifn", "live", "--clear-weights", "-o", "json"},
			out: []string{`"FunctionVersion": "1"`}, notOut: []string{`"2": 0.25`}},
		{name: "alias list", args: []string{"alias", "list", "clifn"}, out: []string{"ALIAS", "live", "1"}},
		{name: "invoke flag", args: []string{"invoke", "clifn", "--payload", `{"op":"echo","text":"hi"}`}, out: []string{`"text":"hi"`}},
		{name: "invoke stdin", stdin: `{"op":"echo","text":"piped"}`, args: []string{"invoke", "clifn", "-q", "live"}, out: []string{`"text":"piped"`}},
		{name: "invoke file", args: []string{"invoke", "clifn", "--payload-file", payload}, out: []string{"from a file"}},
		{name: "invoke tail", args: []string{"invoke", "clifn", "--payload", `{"op":"echo","log":"tailed line"}`, "--tail"},
			errOut: []string{`"platform.start"`, "tailed line", `"platform.report"`}},
		{name: "function error exits 3", args: []string{"invoke", "clifn", "--payload", `{"op":"error","text":"boom"}`}, code: 3,
			out: []string{"errorString", "boom"}, errOut: []string{"the function failed (Unhandled: errorString)"}},
		{name: "invoke json", args: []string{"invoke", "clifn", "-o", "json", "--payload", `{"op":"echo","text":"j"}`},
			out: []string{`"StatusCode": 200`, `"ExecutedVersion": "$LATEST"`}},
		{name: "missing argument exits 2", args: []string{"fn", "get"}, code: 2, errOut: []string{"accepts 1 arg(s)", "usage: kappa fn get NAME"}},
		{name: "unknown command exits 2", args: []string{"fn", "frobnicate"}, code: 2, errOut: []string{"unknown command"}},
		{name: "bad payload exits 2", args: []string{"invoke", "clifn", "--payload", "{nope"}, code: 2, errOut: []string{"not valid JSON"}},
		{name: "bad output exits 2", args: []string{"fn", "list", "-o", "yaml"}, code: 2, errOut: []string{"--output"}},
		{name: "not found hints", args: []string{"fn", "get", "nosuch"}, code: 1,
			errOut: []string{"ResourceNotFoundException", "kappa fn list"}},
		{name: "no server hints", args: []string{"fn", "list", "--endpoint", "http://127.0.0.1:1"}, code: 1,
			errOut: []string{"is `kappa server` running?", "connection refused"}},
		{name: "alias delete", args: []string{"alias", "delete", "clifn", "live"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			out, errOut, code := s.kappa(t, st.stdin, st.args...)
			if code != st.code {
				t.Fatalf("kappa %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(st.args, " "), code, st.code, out, errOut)
			}
			for _, w := range st.out {
				if !strings.Contains(out, w) {
					t.Errorf("kappa %s: stdout lacks %q:\n%s", strings.Join(st.args, " "), w, out)
				}
			}
			for _, w := range st.notOut {
				if strings.Contains(out, w) {
					t.Errorf("kappa %s: stdout has %q:\n%s", strings.Join(st.args, " "), w, out)
				}
			}
			for _, w := range st.errOut {
				if !strings.Contains(errOut, w) {
					t.Errorf("kappa %s: stderr lacks %q:\n%s", strings.Join(st.args, " "), w, errOut)
				}
			}
		})
	}

	t.Run("json output", func(t *testing.T) {
		out, _, code := s.kappa(t, "", "fn", "list", "--output", "json")
		var fns []struct{ FunctionName string }
		if code != 0 || json.Unmarshal([]byte(out), &fns) != nil || len(fns) != 1 || fns[0].FunctionName != "clifn" {
			t.Errorf("fn list --output json = %d %s", code, out)
		}
		out, _, code = s.kappa(t, "", "alias", "list", "clifn", "-o", "json")
		if code != 0 || strings.TrimSpace(out) != "[]" {
			t.Errorf("alias list of a function without aliases = %d %s", code, out)
		}
		out, _, code = s.kappa(t, "", "fn", "get", "clifn", "-o", "json")
		var got struct{ Configuration struct{ MemorySize int } }
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Configuration.MemorySize != 320 { // after "update again"
			t.Errorf("fn get --output json = %d %s", code, out)
		}
	})

	t.Run("completes function names", func(t *testing.T) {
		out, _, code := s.kappa(t, "", "__complete", "invoke", "cl")
		if code != 0 || !strings.HasPrefix(out, "clifn\n") {
			t.Errorf("completion of invoke cl = %d %q", code, out)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if _, errOut, code := s.kappa(t, "", "fn", "delete", "clifn"); code != 0 {
			t.Fatalf("fn delete: %d %s", code, errOut)
		}
		if out, _, _ := s.kappa(t, "", "fn", "list"); strings.Contains(out, "clifn") {
			t.Errorf("deleted function still listed:\n%s", out)
		}
	})
}
