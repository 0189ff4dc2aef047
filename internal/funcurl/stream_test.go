package funcurl

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// A streaming runtime is outside input: its prelude may be missing, cut
// short or endless.
func TestReadPrelude(t *testing.T) {
	nul8 := string(make([]byte, 8))
	tests := []struct {
		name, in, prelude, rest string
		wantErr                 bool
	}{
		{name: "prelude then body", in: `{"statusCode":201}` + nul8 + "body", prelude: `{"statusCode":201}`, rest: "body"},
		{name: "empty body", in: `{}` + nul8, prelude: `{}`},
		{name: "seven NULs are not the end", in: `{}` + nul8[:7], wantErr: true},
		{name: "no terminator", in: `{"statusCode":200}`, wantErr: true},
		{name: "endless prelude", in: strings.Repeat("x", maxPrelude+100) + nul8, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tt.in))
			got, err := readPrelude(r)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("readPrelude = %q, want an error", got)
				}
				return
			}
			var rest bytes.Buffer
			rest.ReadFrom(r)
			if err != nil || string(got) != tt.prelude || rest.String() != tt.rest {
				t.Fatalf("readPrelude = %q, %v, rest %q", got, err, rest.String())
			}
		})
	}
}
