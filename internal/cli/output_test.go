package cli

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"ok", nil, 0},
		{"usage", usageError{errors.New("bad flag")}, 2},
		{"wrapped usage", fmt.Errorf("x: %w", usageError{errors.New("y")}), 2},
		{"function error", functionError{kind: "Unhandled"}, 3},
		{"cobra unknown command", errors.New(`unknown command "x" for "kappa"`), 2},
		{"cobra required flag", errors.New(`required flag(s) "image" not set`), 2},
		{"other", errors.New("boom"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exitCode(tt.err); got != tt.want {
				t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestExplain(t *testing.T) {
	refused := fmt.Errorf("operation error Lambda: ListFunctions: dial tcp: %w", syscall.ECONNREFUSED)
	if got := explain(refused); !strings.Contains(got, "is `kappa server` running?") || !strings.Contains(got, "connection refused") {
		t.Errorf("explain(connection refused) = %q", got)
	}
	if got := explain(errors.New("plain")); got != "plain" {
		t.Errorf("explain(plain) = %q", got)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false}, {"1024", 1024, false}, {"4MiB", 4 << 20, false}, {"512k", 512 << 10, false},
		{"1.5G", 3 << 29, false}, {"2 mb", 2 << 20, false}, {"-1", 0, true}, {"lots", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v", tt.in, got, err)
		}
	}
	if s := formatSize(4 << 20); s != "4MiB" {
		t.Errorf("formatSize = %q", s)
	}
}

func TestInvokePayload(t *testing.T) {
	tests := []struct {
		name, payload, stdin string
		want                 string
		usage                bool
	}{
		{"flag", `{"a":1}`, "", `{"a":1}`, false},
		{"stdin", "", `{"b":2}`, `{"b":2}`, false},
		{"empty stdin is {}", "", "", `{}`, false},
		{"not json", "{x", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := &cobra.Command{}
			cmd.SetIn(strings.NewReader(tt.stdin))
			got, err := invokePayload(cmd, tt.payload, "")
			var ue usageError
			if tt.usage != errors.As(err, &ue) || string(got) != tt.want && !tt.usage {
				t.Errorf("invokePayload = %q, %v", got, err)
			}
		})
	}
}
