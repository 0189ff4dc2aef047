package lambdaapi

import (
	"testing"

	"github.com/kappa-run/kappa/internal/function"
)

// TestVersionsAfter: a marker names the last version a page returned; the
// next page starts after it even when versions before it were deleted
// (positions would skip one) or it was deleted itself.
func TestVersionsAfter(t *testing.T) {
	vs := []function.Config{{Version: "$LATEST"}, {Version: "1"}, {Version: "2"}, {Version: "5"}, {Version: "7"}}
	for _, tt := range []struct {
		marker string
		want   int
		ok     bool
	}{
		{"$LATEST", 1, true},
		{"1", 2, true},
		{"2", 3, true},
		{"3", 3, true}, // deleted since: the next one
		{"5", 4, true},
		{"7", 5, true},
		{"9", 5, true},
		{"0", 0, false},
		{"-1", 0, false},
		{"01", 0, false},
		{"x", 0, false},
		{"1.5", 0, false},
		{"99999999999999999999", 0, false},
	} {
		got, ok := versionsAfter(vs, tt.marker)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("versionsAfter(%q) = %d, %v; want %d, %v", tt.marker, got, ok, tt.want, tt.ok)
		}
	}
	if got, ok := versionsAfter(vs[:1], "$LATEST"); !ok || got != 1 {
		t.Errorf("after $LATEST alone = %d, %v", got, ok)
	}
}
