package oci

import (
	"bytes"
	"fmt"
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/kappa-run/kappa/internal/sandbox"
	"github.com/kappa-run/kappa/internal/sandbox/sandboxtest"
)

func TestScratch(t *testing.T) {
	rootfs := sandboxtest.BuildRootFS(t)
	os.WriteFile(rootfs+"/bin/script", []byte("#!/bin/nonexistent\n"), 0o755)
	for _, rt := range []string{"crun", "runc"} {
		t.Run(rt, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			r, err := New(ctx, Options{Runtime: rt, StateDir: dir + "/s", RunDir: dir + "/r", CgroupParent: "kappatest", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ args []string; cwd string }{
				{[]string{"/bin/probe", "echo", "hi"}, "/"},
				{[]string{"/bin/nope"}, "/"},
				{[]string{"/bin/noexec"}, "/"},
				{[]string{"/bin"}, "/"},
				{[]string{"/bin/probe", "echo"}, "/nonexist"},
				{[]string{"/bin/probe", "echo"}, "/bin/probe"},
				{[]string{"/etc/hosts"}, "/"},
				{[]string{"/bin/script"}, "/"},
				{[]string{"/bin/probe", "sleep"}, "/"},
			} {
				var out bytes.Buffer
				t0 := time.Now()
				sb, err := r.Create(ctx, sandbox.Spec{ID: "scr", RootFS: rootfs, Args: c.args, Cwd: c.cwd, MemoryMB: 128, TmpMB: 8, Hostname: "h", Stdout: &out, Stderr: &out})
				t.Logf("%v cwd=%s create err=%v (%v)", c.args, c.cwd, err, time.Since(t0))
				if err != nil {
					continue
				}
				pid := sb.(*Sandbox).init.pid
				c1, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
				e1, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
				t.Logf("pre comm %q exe %q", c1, e1)
				err = sb.Start(ctx)
				time.Sleep(10*time.Millisecond)
				c1, _ = os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
				e1, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
				t.Logf("post comm %q exe %q", c1, e1)
				t.Logf("start err=%v (%v)", err, time.Since(t0))
				select {
				case <-sb.Done():
				case <-time.After(1 * time.Second):
					t.Log("timeout")
				}
				t.Logf("exit=%v out=%q (%v)", sb.Exit(), out.String(), time.Since(t0))
				t.Log(sb.Destroy(ctx))
			}
		})
	}
}
