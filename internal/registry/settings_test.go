package registry

import (
	"context"
	"errors"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kappa-run/kappa/internal/apierr"
)

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    string
		wantErr string
	}{
		{name: "immutable", body: `{"tagMutability":"IMMUTABLE"}`, want: TagImmutable},
		{name: "mutable", body: ` {"tagMutability":"MUTABLE"} `, want: TagMutable},
		{name: "lower case", body: `{"tagMutability":"immutable"}`, wantErr: "must be"},
		{name: "missing", body: `{}`, wantErr: "required"},
		{name: "null", body: `{"tagMutability":null}`, wantErr: "required"},
		{name: "number", body: `{"tagMutability":1}`, wantErr: "valid JSON"},
		{name: "unknown field", body: `{"tagMutability":"MUTABLE","scanOnPush":true}`, wantErr: "valid JSON"},
		{name: "trailing object", body: `{"tagMutability":"MUTABLE"}{}`, wantErr: "trailing"},
		{name: "trailing garbage", body: `{"tagMutability":"MUTABLE"}x`, wantErr: "trailing"},
		{name: "array", body: `[]`, wantErr: "valid JSON"},
		{name: "empty", body: ``, wantErr: "valid JSON"},
		{name: "too large", body: `{"tagMutability":"MUTABLE"` + strings.Repeat(" ", maxSettingsBody) + `}`, wantErr: "larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSettings([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, apierr.InvalidParameter) {
					t.Fatalf("ParseSettings = %v, %v; want an InvalidParameter error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.TagMutability != tt.want {
				t.Fatalf("ParseSettings = %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestTagImmutability(t *testing.T) {
	ts := newTestServer(t)
	ctx := context.Background()
	a := newTestImage(t, "a", nil)
	b := newTestImage(t, "b", nil)
	ts.pushImage("imm", "v1", a).expect(t, 201, "")
	if s, err := ts.reg.Settings(ctx, "imm"); err != nil || s.Immutable() {
		t.Fatalf("default settings %v, %v", s, err)
	}
	if err := ts.reg.SetSettings(ctx, "imm", RepositorySettings{TagMutability: TagImmutable}); err != nil {
		t.Fatal(err)
	}
	put := func(ref string, img testImage, query string) response {
		ts.pushBlob("imm", img.config)
		ts.pushBlob("imm", img.layer)
		return ts.do("PUT", "/v2/imm/manifests/"+ref+query, img.manifest, "Content-Type", ocispec.MediaTypeImageManifest)
	}
	tests := []struct {
		name   string
		ref    string
		img    testImage
		query  string
		status int
		code   string
	}{
		{name: "same manifest again", ref: "v1", img: a, status: 201},
		{name: "other manifest on existing tag", ref: "v1", img: b, status: 400, code: "TAG_INVALID"},
		{name: "new tag", ref: "v2", img: b, status: 201},
		{name: "by digest", ref: b.digest.String(), img: b, status: 201},
		{name: "by digest with existing tag param", ref: b.digest.String(), img: b, query: "?tag=v1", status: 400, code: "TAG_INVALID"},
		{name: "by digest with new tag param", ref: b.digest.String(), img: b, query: "?tag=v3", status: 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := put(tt.ref, tt.img, tt.query)
			r.expect(t, tt.status, tt.code)
			if tt.code == "TAG_INVALID" && !strings.Contains(string(r.body), "cannot be overwritten because the tag is immutable") {
				t.Fatalf("message %s", r.body)
			}
		})
	}
	if d, err := ts.reg.store.tagDigest("imm", "v1"); err != nil || d != a.digest {
		t.Fatalf("v1 moved to %s (%v)", d, err)
	}
	// A deleted tag can be pushed again, as in ECR.
	ts.do("DELETE", "/v2/imm/manifests/v1", nil).expect(t, 202, "")
	put("v1", b, "").expect(t, 201, "")
	// Mutable again: tags move.
	if err := ts.reg.SetSettings(ctx, "imm", RepositorySettings{TagMutability: TagMutable}); err != nil {
		t.Fatal(err)
	}
	put("v1", a, "").expect(t, 201, "")
	// Settings files never show up as repositories.
	if err := ts.reg.SetSettings(ctx, "ahead/of/time", RepositorySettings{TagMutability: TagImmutable}); err != nil {
		t.Fatal(err)
	}
	r := ts.do("GET", "/v2/_catalog", nil)
	if strings.Contains(string(r.body), "ahead") {
		t.Fatalf("catalog lists a repository that only has settings: %s", r.body)
	}
	for _, bad := range []string{"", "UP", "a//b", "../x", "_x"} {
		if err := ts.reg.SetSettings(ctx, bad, RepositorySettings{TagMutability: TagImmutable}); !errors.Is(err, apierr.InvalidParameter) {
			t.Errorf("SetSettings(%q) = %v", bad, err)
		}
	}
	if err := ts.reg.SetSettings(ctx, "x", RepositorySettings{TagMutability: "SOMETIMES"}); !errors.Is(err, apierr.InvalidParameter) {
		t.Errorf("SetSettings(SOMETIMES) = %v", err)
	}
}
