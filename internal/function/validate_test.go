package function

import (
	"errors"
	"strings"
	"testing"

	"github.com/kappa-run/kappa/internal/apierr"
)

func ptr[T any](v T) *T { return &v }

func validInput() CreateInput {
	return CreateInput{
		FunctionName: "hello",
		Role:         "arn:aws:iam::000000000000:role/x",
		PackageType:  "Image",
		ImageURI:     "localhost:9070/hello:v1",
	}
}

func TestCreateInputValidation(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*CreateInput)
		wantKind apierr.Kind
		wantMsg  string
	}{
		{name: "valid", mutate: func(*CreateInput) {}},
		{name: "memory too big", mutate: func(in *CreateInput) { in.MemorySize = ptr(10241) }, wantKind: apierr.Validation,
			wantMsg: "1 validation error detected: Value '10241' at 'memorySize' failed to satisfy constraint: Member must have value less than or equal to 10240"},
		{name: "memory too small", mutate: func(in *CreateInput) { in.MemorySize = ptr(127) }, wantKind: apierr.Validation, wantMsg: "greater than or equal to 128"},
		{name: "timeout 901", mutate: func(in *CreateInput) { in.Timeout = ptr(901) }, wantKind: apierr.Validation, wantMsg: "Value '901' at 'timeout'"},
		{name: "two errors", mutate: func(in *CreateInput) { in.Timeout = ptr(0); in.MemorySize = ptr(1) }, wantKind: apierr.Validation, wantMsg: "2 validation errors detected"},
		{name: "ephemeral", mutate: func(in *CreateInput) { in.EphemeralStorage = ptr(511) }, wantKind: apierr.Validation, wantMsg: "ephemeralStorage.size"},
		{name: "bad name", mutate: func(in *CreateInput) { in.FunctionName = "bad name!" }, wantKind: apierr.Validation, wantMsg: "at 'functionName'"},
		{name: "long name", mutate: func(in *CreateInput) { in.FunctionName = strings.Repeat("a", 65) }, wantKind: apierr.Validation, wantMsg: "less than or equal to 64"},
		{name: "qualified name", mutate: func(in *CreateInput) { in.FunctionName = "hello:1" }, wantKind: apierr.InvalidParameter},
		{name: "no role", mutate: func(in *CreateInput) { in.Role = "" }, wantKind: apierr.Validation, wantMsg: "Value null at 'role'"},
		{name: "bad role", mutate: func(in *CreateInput) { in.Role = "admin" }, wantKind: apierr.Validation, wantMsg: "at 'role'"},
		{name: "zip", mutate: func(in *CreateInput) { in.PackageType = "" }, wantKind: apierr.InvalidParameter, wantMsg: "PackageType"},
		{name: "no image", mutate: func(in *CreateInput) { in.ImageURI = "" }, wantKind: apierr.InvalidParameter, wantMsg: "ImageUri"},
		{name: "runtime with image", mutate: func(in *CreateInput) { in.Runtime = "go1.x" }, wantKind: apierr.InvalidParameter},
		{name: "layers with image", mutate: func(in *CreateInput) { in.Layers = []string{"x"} }, wantKind: apierr.InvalidParameter},
		{name: "reserved env", mutate: func(in *CreateInput) { in.Environment = map[string]string{"AWS_REGION": "x"} },
			wantKind: apierr.InvalidParameter, wantMsg: "Reserved keys used in this request: AWS_REGION"},
		{name: "bad env key", mutate: func(in *CreateInput) { in.Environment = map[string]string{"1X": "x"} }, wantKind: apierr.Validation},
		{name: "env too big", mutate: func(in *CreateInput) { in.Environment = map[string]string{"BIG": strings.Repeat("x", 4100)} },
			wantKind: apierr.InvalidParameter, wantMsg: "4KB"},
		{name: "two archs", mutate: func(in *CreateInput) { in.Architectures = []string{"x86_64", "arm64"} }, wantKind: apierr.Validation},
		{name: "bad arch", mutate: func(in *CreateInput) { in.Architectures = []string{"riscv"} }, wantKind: apierr.Validation},
		{name: "relative workdir", mutate: func(in *CreateInput) { in.ImageConfig = &ImageConfig{WorkingDirectory: "task"} }, wantKind: apierr.InvalidParameter},
		{name: "log level without json", mutate: func(in *CreateInput) { in.LoggingConfig = &LoggingConfig{ApplicationLogLevel: "INFO"} }, wantKind: apierr.InvalidParameter},
		{name: "snapstart none", mutate: func(in *CreateInput) { in.SnapStartApplyOn = "None" }},
		{name: "snapstart published versions", mutate: func(in *CreateInput) { in.SnapStartApplyOn = "PublishedVersions" }},
		{name: "snapstart bad value", mutate: func(in *CreateInput) { in.SnapStartApplyOn = "Always" }, wantKind: apierr.Validation,
			wantMsg: "Value 'Always' at 'snapStart.applyOn' failed to satisfy constraint: Member must satisfy enum value set: [PublishedVersions, None]"},
		{name: "description too long", mutate: func(in *CreateInput) { in.Description = ptr(strings.Repeat("d", 257)) }, wantKind: apierr.Validation},
		// Characters, not bytes: 256 of them in 768 bytes of UTF-8.
		{name: "description of 256 characters", mutate: func(in *CreateInput) { in.Description = ptr(strings.Repeat("関", 256)) }},
		{name: "description of 257 characters", mutate: func(in *CreateInput) { in.Description = ptr(strings.Repeat("関", 257)) }, wantKind: apierr.Validation},
		{name: "sns dead-letter target", mutate: func(in *CreateInput) { in.DeadLetterTarget = ptr("arn:aws:sns:us-east-1:000000000000:t") },
			wantKind: apierr.InvalidParameter, wantMsg: "a dead-letter target is a Kappa queue"},
		{name: "fifo dead-letter target", mutate: func(in *CreateInput) { in.DeadLetterTarget = ptr("arn:aws:sqs:us-east-1:000000000000:q.fifo") },
			wantKind: apierr.InvalidParameter},
		{name: "queue dead-letter target", mutate: func(in *CreateInput) { in.DeadLetterTarget = ptr("arn:aws:sqs:us-east-1:000000000000:dead") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := validInput()
			tt.mutate(&in)
			cfg, err := in.config()
			if tt.wantKind == "" {
				if err != nil {
					t.Fatalf("config() = %v", err)
				}
				if cfg.MemorySize != 128 || cfg.Timeout != 3 || cfg.EphemeralStorage != 512 || cfg.Architectures[0] != "x86_64" {
					t.Errorf("defaults = %+v", cfg)
				}
				return
			}
			if !errors.Is(err, tt.wantKind) {
				t.Fatalf("config() = %v, want kind %s", err, tt.wantKind)
			}
			if !strings.Contains(apierr.As(err).Message, tt.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", apierr.As(err).Message, tt.wantMsg)
			}
		})
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		in       string
		want     Ref
		wantKind apierr.Kind
	}{
		{in: "hello", want: Ref{Name: "hello"}},
		{in: "hello:$LATEST", want: Ref{Name: "hello", Qualifier: "$LATEST"}},
		{in: "hello:prod", want: Ref{Name: "hello", Qualifier: "prod"}},
		{in: "000000000000:function:hello", want: Ref{Name: "hello"}},
		{in: "arn:aws:lambda:us-east-1:000000000000:function:hello:7", want: Ref{Name: "hello", Qualifier: "7"}},
		{in: "arn:aws:lambda:eu-west-1:000000000000:function:hello", wantKind: apierr.InvalidParameter},
		{in: "arn:aws:lambda:us-east-1:111111111111:function:hello", wantKind: apierr.NotFound},
		{in: "", wantKind: apierr.Validation},
		{in: "a/b", wantKind: apierr.Validation},
		{in: "../etc", wantKind: apierr.Validation},
		{in: strings.Repeat("x", 65), wantKind: apierr.Validation},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRef(tt.in, "us-east-1", "000000000000")
			if tt.wantKind != "" {
				if !errors.Is(err, tt.wantKind) {
					t.Fatalf("ParseRef(%q) = %v, %v; want kind %s", tt.in, got, err, tt.wantKind)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRef(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"hello", "a:1", "arn:aws:lambda:us-east-1:000000000000:function:x:$LATEST", "::", "000000000000:function:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseRef(s, "us-east-1", "000000000000")
		if err != nil {
			if apierr.As(err) == nil {
				t.Fatalf("ParseRef(%q) returned a non-API error %v", s, err)
			}
			return
		}
		if !bareNameRE.MatchString(ref.Name) {
			t.Fatalf("ParseRef(%q) accepted name %q", s, ref.Name)
		}
	})
}
