package async

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/apierr"
)

func TestConfigAPI(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.svc.GetConfig(ctx, "f", ""); !isKind(err, apierr.NotFound) {
		t.Errorf("Get before Put: %v, want NotFound", err)
	}
	c, err := h.svc.PutConfig(ctx, "f", "", ConfigInput{MaximumRetryAttempts: ptr(1), OnFailure: queueARN("q1")})
	if err != nil || c.Qualifier != "$LATEST" || c.Retries() != 1 || c.MaxAge() != 6*time.Hour {
		t.Fatalf("Put = %+v, %v", c, err)
	}
	c, err = h.svc.UpdateConfig(ctx, "f", "$LATEST", ConfigInput{MaximumEventAgeInSeconds: ptr(120)})
	if err != nil || c.Retries() != 1 || c.MaxAge() != 2*time.Minute || c.Destinations.OnFailure != *queueARN("q1") {
		t.Fatalf("Update kept = %+v, %v", c, err)
	}
	c, err = h.svc.PutConfig(ctx, "f", "", ConfigInput{MaximumEventAgeInSeconds: ptr(120)})
	if err != nil || c.MaximumRetryAttempts != nil || c.Destinations.OnFailure != "" {
		t.Fatalf("Put did not reset the other fields: %+v, %v", c, err)
	}
	if _, err := h.svc.PutConfig(ctx, "f", "live", ConfigInput{}); err != nil {
		t.Fatal(err)
	}
	list, err := h.svc.ListConfigs(ctx, "f")
	if err != nil || len(list) != 2 || list[0].Qualifier != "$LATEST" || list[1].Qualifier != "live" {
		t.Fatalf("List = %v, %v", list, err)
	}
	if _, err := h.svc.PutConfig(ctx, "f", "7", ConfigInput{}); !isKind(err, apierr.NotFound) {
		t.Errorf("Put on a missing version: %v, want NotFound", err)
	}
	if _, err := h.svc.PutConfig(ctx, "nope", "", ConfigInput{}); !isKind(err, apierr.NotFound) {
		t.Errorf("Put on a missing function: %v, want NotFound", err)
	}
	if err := h.svc.DeleteConfig(ctx, "f", ""); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.DeleteConfig(ctx, "f", ""); !isKind(err, apierr.NotFound) {
		t.Errorf("second Delete: %v, want NotFound", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		in   ConfigInput
		want string // "" = valid
	}{
		{"empty", ConfigInput{}, ""},
		{"bounds", ConfigInput{MaximumRetryAttempts: ptr(0), MaximumEventAgeInSeconds: ptr(60)}, ""},
		{"upper bounds", ConfigInput{MaximumRetryAttempts: ptr(2), MaximumEventAgeInSeconds: ptr(21600)}, ""},
		{"retries 3", ConfigInput{MaximumRetryAttempts: ptr(3)}, "Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value less than or equal to 2"},
		{"retries -1", ConfigInput{MaximumRetryAttempts: ptr(-1)}, "greater than or equal to 0"},
		{"age 59", ConfigInput{MaximumEventAgeInSeconds: ptr(59)}, "Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60"},
		{"age 21601", ConfigInput{MaximumEventAgeInSeconds: ptr(21601)}, "less than or equal to 21600"},
		{"two errors", ConfigInput{MaximumRetryAttempts: ptr(9), MaximumEventAgeInSeconds: ptr(1)}, "2 validation errors detected"},
		{"not an arn", ConfigInput{OnSuccess: ptr("queue")}, "destinationConfig.onSuccess.destination"},
		{"long arn", ConfigInput{OnFailure: ptr("arn:aws:sqs:us-east-1:000000000000:" + strings.Repeat("q", 400))}, "length less than or equal to 350"},
		{"empty arn removes", ConfigInput{OnFailure: ptr("")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !isKind(err, apierr.Validation) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ValidationException with %q", err, tt.want)
			}
		})
	}
}

func TestParseDestination(t *testing.T) {
	tests := []struct {
		arn  string
		want Destination
		err  string
	}{
		{arn: "arn:aws:lambda:us-east-1:000000000000:function:g", want: Destination{Function: "g"}},
		{arn: "arn:aws:lambda:us-east-1:000000000000:function:g:live", want: Destination{Function: "g", Qualifier: "live"}},
		{arn: "arn:aws:sqs:us-east-1:000000000000:my-queue_1", want: Destination{Queue: "my-queue_1"}},
		{arn: "arn:aws:sqs:eu-west-1:000000000000:q", err: "only region"},
		{arn: "arn:aws:sqs:us-east-1:111111111111:q", err: "only region"},
		{arn: "arn:aws:sns:us-east-1:000000000000:topic", err: "not to sns"},
		{arn: "arn:aws:lambda:us-east-1:000000000000:layer:x", err: "function ARN"},
		{arn: "arn:aws:sqs:us-east-1:000000000000:bad.name", err: "queue name"},
		{arn: "nonsense", err: "not an ARN"},
	}
	for _, tt := range tests {
		t.Run(tt.arn, func(t *testing.T) {
			d, err := ParseDestination(tt.arn, region, account)
			if tt.err != "" {
				if !isKind(err, apierr.InvalidParameter) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want InvalidParameterValue with %q", err, tt.err)
				}
				return
			}
			tt.want.ARN = tt.arn
			if err != nil || d != tt.want {
				t.Fatalf("= %+v, %v; want %+v", d, err, tt.want)
			}
		})
	}
}

func FuzzParseDestination(f *testing.F) {
	for _, s := range []string{"arn:aws:lambda:us-east-1:000000000000:function:g:1", "arn:aws:sqs:us-east-1:000000000000:q", "arn:aws:sqs:::", "arn:aws:lambda:us-east-1:000000000000:function::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arn string) {
		d, err := ParseDestination(arn, region, account)
		if err != nil {
			return
		}
		if (d.Function == "") == (d.Queue == "") {
			t.Fatalf("%q parsed to %+v: want exactly one target", arn, d)
		}
		if d.Queue != "" && !ValidQueueName(d.Queue) {
			t.Fatalf("%q: queue name %q", arn, d.Queue)
		}
	})
}
