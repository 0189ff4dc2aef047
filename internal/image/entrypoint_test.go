package image

import (
	"errors"
	"strings"
	"testing"
)

func TestResolveEntrypoint(t *testing.T) {
	requireRoot(t) // whiteouts in the image
	host := newRegistry(t, nil)
	s := newTestStore(t, Options{})
	img := pullLayers(t, s, host, "ep:v1",
		gzLayer(t,
			dir("usr/"), dir("usr/bin/"),
			withMode(file("usr/bin/python3.12", "ELF"), 0o755),
			symlink("usr/bin/python3", "python3.12"),
			symlink("bin", "usr/bin"),
			withMode(file("lambda-entrypoint.sh", "#!/bin/sh"), 0o755),
			withMode(file("noexec.sh", "#!/bin/sh"), 0o644),
			withMode(file("ownerexec", "x"), 0o700),
			withOwner(withMode(file("mine", "x"), 0o700), functionUID, 0),
			withOwner(withMode(file("ours", "x"), 0o710), 0, functionGID),
			dir("var/"), dir("var/task/"),
			withMode(file("var/task/bootstrap", "x"), 0o755),
			symlink("escape", "../../../../../../bin/sh"),
			symlink("abs", "/usr/bin/python3"),
			symlink("loop", "loop"),
			withMode(dir("locked/"), 0o700), withMode(file("locked/run", "x"), 0o755),
			withMode(file("gone", "x"), 0o755),
		),
		gzLayer(t, file(".wh.gone", "")),
	)
	d := img.Digest

	for _, tt := range []struct {
		name, argv0, wd string
		env             []string
		want            string // "" means an ErrInvalidEntrypoint
	}{
		{name: "absolute", argv0: "/lambda-entrypoint.sh", want: "/lambda-entrypoint.sh"},
		{name: "PATH from env through symlinks", argv0: "python3", env: []string{"PATH=/nope", "PATH=/bin"}, want: "/bin/python3"},
		{name: "PATH from the image", argv0: "python3", want: "/usr/bin/python3"},
		{name: "relative to the working dir", argv0: "./bootstrap", wd: "/var/task", want: "/var/task/bootstrap"},
		{name: "empty PATH element is the working dir", argv0: "bootstrap", wd: "/var/task", env: []string{"PATH=/usr/bin:"}, want: "/var/task/bootstrap"},
		{name: "absolute symlink stays in the image", argv0: "/abs", want: "/abs"},
		{name: "owned by the function user", argv0: "/mine", want: "/mine"},
		{name: "owned by the function group", argv0: "/ours", want: "/ours"},
		{name: "not executable", argv0: "/noexec.sh"},
		{name: "executable by owner only", argv0: "/ownerexec"},
		{name: "directory", argv0: "/var/task"},
		{name: "symlink escaping the root resolves inside it", argv0: "/escape"},
		{name: "symlink loop", argv0: "/loop"},
		{name: "unsearchable directory", argv0: "/locked/run"},
		{name: "whited out", argv0: "/gone"},
		{name: "missing", argv0: "/nope"},
		{name: "not in PATH", argv0: "sh", env: []string{"PATH=/usr/bin"}},
		{name: "empty", argv0: ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ResolveEntrypoint(d, tt.argv0, tt.wd, tt.env)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidEntrypoint) {
					t.Fatalf("ResolveEntrypoint(%q) = %q, %v; want ErrInvalidEntrypoint", tt.argv0, got, err)
				}
				t.Logf("err: %v", err)
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ResolveEntrypoint(%q) = %q, %v; want %q", tt.argv0, got, err, tt.want)
			}
		})
	}

	for _, tt := range []struct {
		dir string
		ok  bool
	}{
		{"", true}, {"/", true}, {"/var/task", true}, {"/var/task/", true}, {"/bin", true},
		{"/tmp", true}, // from the skeleton
		{"/nope", false}, {"var/task", false}, {"/lambda-entrypoint.sh", false}, {"/locked", false}, {"/gone", false},
	} {
		err := s.ValidateWorkingDir(d, tt.dir)
		if tt.ok && err != nil {
			t.Errorf("ValidateWorkingDir(%q) = %v", tt.dir, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidWorkingDir) {
			t.Errorf("ValidateWorkingDir(%q) = %v, want ErrInvalidWorkingDir", tt.dir, err)
		}
	}

	unknown := "sha256:" + strings.Repeat("9", 64)
	if _, err := s.ResolveEntrypoint(unknown, "/x", "", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown image: %v", err)
	}
	if err := s.ValidateWorkingDir(unknown, "/"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown image: %v", err)
	}
}
