package registry

import "testing"

func TestParseContentRange(t *testing.T) {
	for _, tt := range []struct {
		in         string
		start, end int64
		ok         bool
	}{
		{"0-9", 0, 9, true},
		{"bytes 10-19/*", 10, 19, true},
		{"bytes=10-19", 10, 19, true},
		{"5-5", 5, 5, true},
		{"9-0", 0, 0, false},
		{"-1-5", 0, 0, false},
		{"0-", 0, 0, false},
		{"abc", 0, 0, false},
		{"0-9223372036854775807", 0, 0, false}, // its length would overflow
		{"0-9223372036854775808", 0, 0, false},
		{"0-9223372036854775806", 0, 9223372036854775806, true},
	} {
		start, end, ok := parseContentRange(tt.in)
		if ok != tt.ok || (ok && (start != tt.start || end != tt.end)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v; want %d, %d, %v", tt.in, start, end, ok, tt.start, tt.end, tt.ok)
		}
	}
}

// FuzzParseContentRange: whatever a client sends, an accepted range is
// non-negative, ordered and has a length that fits an int64.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-9", "bytes 10-19/*", "bytes=1-2", "0-9223372036854775807", "-", "1-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, ok := parseContentRange(s)
		if ok && (start < 0 || end < start || end-start+1 <= 0) {
			t.Fatalf("parseContentRange(%q) = %d, %d: not a range", s, start, end)
		}
	})
}
