package invoker

import (
	"strings"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/function"
)

// TestEnvironmentSnapStart: Lambda gives SnapStart runtimes no log group or
// stream variable (one snapshot serves environments with streams of their
// own); every other initialisation type has both.
func TestEnvironmentSnapStart(t *testing.T) {
	c := function.Config{Name: "f", Version: "1", MemorySize: 128}
	c.LoggingConfig.LogGroup = "/aws/lambda/f"
	for _, tc := range []struct {
		initType string
		want     bool
	}{{"on-demand", true}, {"provisioned-concurrency", true}, {initSnapStart, false}} {
		vars := map[string]string{}
		for _, kv := range environment(c, "us-east-1", "2026/11/27/[1]abc", tc.initType) {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		_, group := vars["AWS_LAMBDA_LOG_GROUP_NAME"]
		_, stream := vars["AWS_LAMBDA_LOG_STREAM_NAME"]
		if group != tc.want || stream != tc.want {
			t.Errorf("%s: log group set %v, stream set %v; want %v", tc.initType, group, stream, tc.want)
		}
		if vars["AWS_LAMBDA_INITIALIZATION_TYPE"] != tc.initType {
			t.Errorf("%s: AWS_LAMBDA_INITIALIZATION_TYPE=%q", tc.initType, vars["AWS_LAMBDA_INITIALIZATION_TYPE"])
		}
	}
}

// TestEnvironmentTZ: TZ is :UTC unless the image or the function sets its
// own (Lambda does not reserve it); a reserved variable the image sets is
// still Lambda's.
func TestEnvironmentTZ(t *testing.T) {
	vars := func(c function.Config) map[string]string {
		m := map[string]string{}
		for _, kv := range environment(c, "us-east-1", "s", "on-demand") {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return m
	}
	c := function.Config{Name: "f", Version: "$LATEST", MemorySize: 128}
	if tz := vars(c)["TZ"]; tz != ":UTC" {
		t.Errorf("default TZ = %q", tz)
	}
	c.Code.Env = []string{"TZ=Europe/Paris", "AWS_REGION=mars-1"}
	if v := vars(c); v["TZ"] != "Europe/Paris" || v["AWS_REGION"] != "us-east-1" {
		t.Errorf("image TZ, AWS_REGION = %q, %q", v["TZ"], v["AWS_REGION"])
	}
	c.Environment = map[string]string{"TZ": "Asia/Tokyo"}
	if tz := vars(c)["TZ"]; tz != "Asia/Tokyo" {
		t.Errorf("function TZ = %q", tz)
	}
}

// TestReportLineBilledIncludesInit: a cold start of an image function is
// billed for its init too (Duration 1.54 ms + Init 164.27 ms → 166 ms);
// a warm one for its duration; a restore apart, as Billed Restore Duration.
func TestReportLineBilledIncludesInit(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for _, tt := range []struct {
		cold, restored bool
		want           string
	}{
		{true, false, "Billed Duration: 166 ms"},
		{false, false, "Billed Duration: 2 ms"},
		{true, true, "Billed Duration: 2 ms"},
	} {
		line := reportLine("r", ms(1.54), 128, 0, ms(164.27), tt.cold, tt.restored)
		if !strings.Contains(line, tt.want+"\t") {
			t.Errorf("cold %v restored %v: %q, want %q", tt.cold, tt.restored, line, tt.want)
		}
	}
}
