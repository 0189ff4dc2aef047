package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// TestControlPlaneErrors checks that invalid control-plane requests fail
// with the AWS error type (SDK code and X-Amzn-ErrorType header), HTTP
// status and message Lambda uses, and that no function is created by them.
func TestControlPlaneErrors(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	img := s.pushProbe(t, "probe:cp")
	s.createFunction(t, "exists", img)

	create := func(name string, mutate func(*lambda.CreateFunctionInput)) func() error {
		return func() error {
			in := &lambda.CreateFunctionInput{
				FunctionName: aws.String(name),
				PackageType:  types.PackageTypeImage,
				Code:         &types.FunctionCode{ImageUri: aws.String(img)},
				Role:         aws.String(testRole),
			}
			if mutate != nil {
				mutate(in)
			}
			_, err := s.Lambda.CreateFunction(ctx, in)
			return err
		}
	}
	const missing = "missing-fn"
	notFound := "Function not found: arn:aws:lambda:us-east-1:000000000000:function:" + missing

	tests := []struct {
		name    string
		call    func() error
		status  int
		typ     string
		message string // a substring of the error message
		// created is a function the call must not have created.
		created string
	}{
		{
			name:    "memory over 10240",
			call:    create("mem-big", func(in *lambda.CreateFunctionInput) { in.MemorySize = aws.Int32(10241) }),
			status:  400,
			typ:     "ValidationException",
			message: "Value '10241' at 'memorySize' failed to satisfy constraint",
			created: "mem-big",
		},
		{
			name:    "timeout over 900",
			call:    create("timeout-big", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(901) }),
			status:  400,
			typ:     "ValidationException",
			message: "Value '901' at 'timeout' failed to satisfy constraint",
			created: "timeout-big",
		},
		{
			name: "ephemeral storage under 512",
			call: create("tmp-small", func(in *lambda.CreateFunctionInput) {
				in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(511)}
			}),
			status:  400,
			typ:     "ValidationException",
			message: "Value '511' at 'ephemeralStorage.size' failed to satisfy constraint",
			created: "tmp-small",
		},
		{
			name:    "bad function name on create",
			call:    create("bad name!", nil),
			status:  400,
			typ:     "ValidationException",
			message: "at 'functionName' failed to satisfy constraint",
		},
		{
			name: "bad function name on get",
			call: func() error {
				_, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("bad!name")})
				return err
			},
			status:  400,
			typ:     "ValidationException",
			message: "at 'functionName' failed to satisfy constraint",
		},
		{
			name:    "duplicate",
			call:    create("exists", nil),
			status:  409,
			typ:     "ResourceConflictException",
			message: "exists",
		},
		{
			name: "reserved environment key",
			call: create("reserved-env", func(in *lambda.CreateFunctionInput) {
				in.Environment = &types.Environment{Variables: map[string]string{"AWS_REGION": "eu-west-1", "OK": "1"}}
			}),
			status:  400,
			typ:     "InvalidParameterValueException",
			message: "AWS_REGION",
			created: "reserved-env",
		},
		{
			name: "zip package",
			call: create("zip-fn", func(in *lambda.CreateFunctionInput) {
				in.PackageType = types.PackageTypeZip
				in.Code = &types.FunctionCode{ZipFile: []byte("PK\x05\x06" + strings.Repeat("\x00", 18))}
				in.Runtime = types.RuntimeProvidedal2023
				in.Handler = aws.String("bootstrap")
			}),
			status:  400,
			typ:     "InvalidParameterValueException",
			created: "zip-fn",
		},
		{
			name: "SnapStart value outside the enum on update",
			call: func() error {
				_, err := s.Lambda.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
					FunctionName: aws.String("exists"), SnapStart: &types.SnapStart{ApplyOn: "Always"},
				})
				return err
			},
			status:  400,
			typ:     "ValidationException",
			message: "Value 'Always' at 'snapStart.applyOn'",
		},
		{
			name: "memory over 10240 on update",
			call: func() error {
				_, err := s.Lambda.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
					FunctionName: aws.String("exists"), MemorySize: aws.Int32(10241),
				})
				return err
			},
			status:  400,
			typ:     "ValidationException",
			message: "Value '10241' at 'memorySize' failed to satisfy constraint",
		},
		{
			name: "get unknown",
			call: func() error {
				_, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(missing)})
				return err
			},
			status: 404, typ: "ResourceNotFoundException", message: notFound,
		},
		{
			name: "get configuration of unknown",
			call: func() error {
				_, err := s.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(missing)})
				return err
			},
			status: 404, typ: "ResourceNotFoundException", message: notFound,
		},
		{
			name: "invoke unknown",
			call: func() error {
				_, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(missing), Payload: []byte(`{}`)})
				return err
			},
			status: 404, typ: "ResourceNotFoundException", message: notFound,
		},
		{
			name: "delete unknown",
			call: func() error {
				_, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(missing)})
				return err
			},
			status: 404, typ: "ResourceNotFoundException", message: notFound,
		},
		{
			name: "update configuration of unknown",
			call: func() error {
				_, err := s.Lambda.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
					FunctionName: aws.String(missing), Timeout: aws.Int32(5),
				})
				return err
			},
			status: 404, typ: "ResourceNotFoundException", message: notFound,
		},
		{
			name: "update code of unknown",
			call: func() error {
				_, err := s.Lambda.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{
					FunctionName: aws.String(missing), ImageUri: aws.String(img),
				})
				return err
			},
			status: 404, typ: "ResourceNotFoundException", message: notFound,
		},
		{
			name: "unknown function by ARN",
			call: func() error {
				_, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{
					FunctionName: aws.String("arn:aws:lambda:us-east-1:000000000000:function:" + missing),
				})
				return err
			},
			status: 404, typ: "ResourceNotFoundException", message: notFound,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := asWireError(t, tc.call())
			w.check(t, tc.name, tc.status, tc.typ)
			if tc.typ == "ResourceNotFoundException" && w.message != tc.message {
				t.Errorf("message = %q, want %q", w.message, tc.message)
			} else if !strings.Contains(w.message, tc.message) {
				t.Errorf("message = %q, want it to contain %q", w.message, tc.message)
			}
			if tc.created != "" {
				_, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(tc.created)})
				if w := asWireError(t, err); w.status != 404 {
					t.Errorf("after a refused create, GetFunction %s = HTTP %d, want 404", tc.created, w.status)
				}
			}
		})
	}

	t.Run("malformed JSON body", func(t *testing.T) {
		r := s.do(t, "POST", "/2015-03-31/functions", []byte(`{"FunctionName": "x",`), nil)
		if r.status != 400 || r.header.Get("X-Amzn-ErrorType") != "InvalidRequestContentException" {
			t.Errorf("HTTP %d X-Amzn-ErrorType %q: %s; want 400 InvalidRequestContentException",
				r.status, r.header.Get("X-Amzn-ErrorType"), r.body)
		}
		if r.header.Get("X-Amzn-RequestId") == "" {
			t.Error("no x-amzn-RequestId")
		}
		var body struct{ Type, Message string }
		if err := json.Unmarshal(r.body, &body); err != nil || body.Type != "User" || body.Message == "" {
			t.Errorf("error body = %s, want {\"Type\":\"User\",\"Message\":…}", r.body)
		}
	})

	t.Run("request ids on success", func(t *testing.T) {
		created := s.createPending(t, "request-ids", img)
		get, err := s.Lambda.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("exists")})
		if err != nil {
			t.Fatal(err)
		}
		list, err := s.Lambda.ListFunctions(ctx, &lambda.ListFunctionsInput{})
		if err != nil {
			t.Fatal(err)
		}
		inv, err := s.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("exists"), Payload: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		del, err := s.Lambda.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("exists")})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]string{
			"CreateFunction": requestIDOf(created.ResultMetadata),
			"GetFunction":    requestIDOf(get.ResultMetadata),
			"ListFunctions":  requestIDOf(list.ResultMetadata),
			"Invoke":         requestIDOf(inv.ResultMetadata),
			"DeleteFunction": requestIDOf(del.ResultMetadata),
		}
		seen := map[string]bool{}
		for op, id := range ids {
			if id == "" {
				t.Errorf("%s: no x-amzn-RequestId", op)
			} else if seen[id] {
				t.Errorf("%s: request id %s reused", op, id)
			}
			seen[id] = true
		}
		if r := s.do(t, "GET", "/2015-03-31/no-such-operation", nil, nil); r.header.Get("X-Amzn-RequestId") == "" {
			t.Errorf("unknown operation (HTTP %d): no x-amzn-RequestId", r.status)
		}
	})
}
