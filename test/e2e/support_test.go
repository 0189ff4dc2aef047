package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// This file holds what the tests beyond invoke_test.go share: a server that
// also removes its run directory, raw HTTP access to the API, a view of SDK
// errors as they came off the wire, and the leftover check run after a
// server stopped.

// newServer starts a server as startServer does and, once it has stopped,
// removes its run directory (startServer leaves it under /run).
func newServer(t *testing.T, extra ...string) *server {
	t.Helper()
	var s *server
	// Registered before startServer's own cleanup, so it runs after the
	// server has stopped.
	t.Cleanup(func() {
		if s != nil {
			os.RemoveAll(s.runDir)
		}
	})
	s = startServer(t, extra...)
	return s
}

// rawResponse is an HTTP response read to its end.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to the server without the SDK (no signing: Kappa does
// not check signatures) and reads the whole response.
func (s *server) do(t *testing.T, method, path string, body []byte, header map[string]string) rawResponse {
	t.Helper()
	req, err := http.NewRequest(method, s.URL(path), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

// wireError is an SDK error as the server sent it.
type wireError struct {
	code      string // the code the SDK settled on
	message   string
	status    int
	errorType string // the X-Amzn-ErrorType header
	requestID string // the x-amzn-RequestId header
}

// asWireError unpacks an SDK error; it fails the test when err is nil or did
// not come from an HTTP response.
func asWireError(t *testing.T, err error) wireError {
	t.Helper()
	if err == nil {
		t.Fatal("call succeeded, want an error")
	}
	var w wireError
	var ae smithy.APIError
	if errors.As(err, &ae) {
		w.code, w.message = ae.ErrorCode(), ae.ErrorMessage()
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error did not come from an HTTP response: %v", err)
	}
	w.status = re.HTTPStatusCode()
	w.requestID = re.ServiceRequestID()
	if re.Response != nil {
		w.errorType = re.Response.Header.Get("X-Amzn-ErrorType")
	}
	return w
}

// check compares an error with the AWS error type and HTTP status it must
// have, and requires a request id.
func (w wireError) check(t *testing.T, what string, status int, typ string) {
	t.Helper()
	if w.status != status || w.code != typ || w.errorType != typ {
		t.Errorf("%s: HTTP %d, code %q, X-Amzn-ErrorType %q (%s); want HTTP %d %s",
			what, w.status, w.code, w.errorType, w.message, status, typ)
	}
	if w.requestID == "" {
		t.Errorf("%s: error response has no x-amzn-RequestId", what)
	}
}

// requestIDOf returns the x-amzn-RequestId of a successful SDK call.
func requestIDOf(md middleware.Metadata) string {
	id, _ := awsmw.GetRequestIDMetadata(md)
	return id
}

// createPending sends CreateFunction and returns its answer without waiting
// for the function to leave Pending.
func (s *server) createPending(t *testing.T, fname, image string, mutate ...func(*lambda.CreateFunctionInput)) *lambda.CreateFunctionOutput {
	t.Helper()
	in := &lambda.CreateFunctionInput{
		FunctionName: aws.String(fname),
		PackageType:  types.PackageTypeImage,
		Code:         &types.FunctionCode{ImageUri: aws.String(image)},
		Role:         aws.String(testRole),
		Timeout:      aws.Int32(10),
	}
	for _, m := range mutate {
		m(in)
	}
	out, err := s.Lambda.CreateFunction(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateFunction %s: %v", fname, err)
	}
	return out
}

// mustInvoke invokes fname and fails the test unless it answered 200 with
// no function error.
func mustInvoke(t *testing.T, s *server, fname string, payload any, opts ...func(*lambda.InvokeInput)) map[string]any {
	t.Helper()
	out, res := invoke(t, s, fname, payload, opts...)
	if out.StatusCode != 200 || out.FunctionError != nil {
		t.Fatalf("Invoke %s: HTTP %d, function error %q: %s", fname, out.StatusCode, aws.ToString(out.FunctionError), out.Payload)
	}
	return res
}

// functionErrorOf invokes fname, requires a function error (HTTP 200 with
// X-Amz-Function-Error Unhandled) and returns the error document.
func functionErrorOf(t *testing.T, s *server, fname string, payload any, opts ...func(*lambda.InvokeInput)) (errorType, errorMessage string, out *lambda.InvokeOutput) {
	t.Helper()
	out, res := invoke(t, s, fname, payload, opts...)
	if out.StatusCode != 200 || aws.ToString(out.FunctionError) != "Unhandled" {
		t.Errorf("Invoke %s: HTTP %d, X-Amz-Function-Error %q; want 200 and Unhandled (payload %.300s)",
			fname, out.StatusCode, aws.ToString(out.FunctionError), out.Payload)
	}
	errorType, _ = res["errorType"].(string)
	errorMessage, _ = res["errorMessage"].(string)
	if errorType == "" || errorMessage == "" {
		t.Errorf("Invoke %s: error document lacks errorType or errorMessage: %.300s", fname, out.Payload)
	}
	return errorType, errorMessage, out
}

// hostListener listens on a free loopback port of the host; it is closed
// when the test ends.
func hostListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}

// freeLoopbackAddr returns a loopback address on which nothing listens.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// eventually polls cond until it holds or timeout passes. It orders steps
// of a test; it asserts nothing about speed.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proc is a host process as seen through /proc.
type proc struct {
	pid, ppid int
	cmdline   string
	cgroups   []string // cgroup paths from /proc/<pid>/cgroup
}

func scanProcs() []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + e.Name()
		cmd, err := os.ReadFile(dir + "/cmdline")
		if err != nil {
			continue
		}
		p := proc{pid: pid, cmdline: strings.TrimRight(strings.ReplaceAll(string(cmd), "\x00", " "), " ")}
		if st, err := os.ReadFile(dir + "/status"); err == nil {
			for _, line := range strings.Split(string(st), "\n") {
				if v, ok := strings.CutPrefix(line, "PPid:"); ok {
					p.ppid, _ = strconv.Atoi(strings.TrimSpace(v))
				}
			}
		}
		if cg, err := os.ReadFile(dir + "/cgroup"); err == nil {
			for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
				// hierarchy-ID:controllers:path
				if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && !slices.Contains(p.cgroups, parts[2]) {
					p.cgroups = append(p.cgroups, parts[2])
				}
			}
		}
		out = append(out, p)
	}
	return out
}

func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// environmentProcs returns the processes running in this server's
// execution environments: its descendants (it is their subreaper) that
// live in a cgroup under /kappa.
func (s *server) environmentProcs() []proc {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	all := scanProcs()
	children := map[int][]proc{}
	for _, p := range all {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []proc
	queue := []int{s.cmd.Process.Pid}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			queue = append(queue, c.pid)
			if slices.ContainsFunc(c.cgroups, func(cg string) bool { return under(cg, "/kappa") }) {
				out = append(out, c)
			}
		}
	}
	return out
}

var sandboxIDRE = regexp.MustCompile(`\bid=(k[0-9a-f]{20})\b`)

// sandboxCgroups returns the cgroup paths (relative to a hierarchy root,
// e.g. /kappa/k0123…) of this server's environments: those of its
// environment processes now, and those of every sandbox id its log names.
// Call it while the environments still exist.
func (s *server) sandboxCgroups() []string {
	set := map[string]bool{}
	for _, p := range s.environmentProcs() {
		for _, cg := range p.cgroups {
			if under(cg, "/kappa") && cg != "/kappa" {
				set[cg] = true
			}
		}
	}
	for _, m := range sandboxIDRE.FindAllStringSubmatch(s.Log(), -1) {
		set["/kappa/"+m[1]] = true
	}
	var out []string
	for cg := range set {
		out = append(out, cg)
	}
	slices.Sort(out)
	return out
}

// cgroupMounts returns the mount points of every cgroup hierarchy.
func cgroupMounts(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, m := range mountinfo(t) {
		if m.fstype == "cgroup" || m.fstype == "cgroup2" {
			out = append(out, m.point)
		}
	}
	return out
}

type mountEntry struct{ point, fstype string }

func mountinfo(t *testing.T) []mountEntry {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []mountEntry
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 5 || len(f) < sep+2 {
			continue
		}
		out = append(out, mountEntry{point: unescapeOctal(f[4]), fstype: f[sep+1]})
	}
	return out
}

func unescapeOctal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// assertNoLeftovers checks, after the server stopped, that nothing of it is
// left on the host: no mount under its data or run directory, no container
// in the crun or runc state roots under its run directory, none of the
// cgroups (as returned by sandboxCgroups before the stop), no network
// namespace pin, and no process in one of those cgroups or whose command
// line names the probe's bootstrap on the host or the server's directories.
// Cgroups are checked by id, not by listing /sys/fs/cgroup/*/kappa: other
// kappa servers on the host share that parent.
func (s *server) assertNoLeftovers(t *testing.T, cgroups []string) {
	t.Helper()
	if s.cmd != nil {
		t.Fatal("assertNoLeftovers needs a stopped server")
	}
	for _, m := range mountinfo(t) {
		if under(m.point, s.dataDir) || under(m.point, s.runDir) {
			t.Errorf("leftover %s mount at %s", m.fstype, m.point)
		}
	}
	if ids := s.containers(t); len(ids) > 0 {
		t.Errorf("leftover containers under %s: %v", s.runDir, ids)
	}
	if netns, _ := os.ReadDir(filepath.Join(s.runDir, "netns")); len(netns) > 0 {
		t.Errorf("leftover network namespace pins in %s/netns: %d", s.runDir, len(netns))
	}
	mounts := cgroupMounts(t)
	for _, cg := range cgroups {
		for _, m := range mounts {
			if _, err := os.Stat(filepath.Join(m, cg)); err == nil {
				t.Errorf("leftover cgroup %s", filepath.Join(m, cg))
			}
		}
	}
	ours := map[string]bool{}
	for _, cg := range cgroups {
		ours[cg] = true
	}
	for _, p := range scanProcs() {
		mine := strings.Contains(p.cmdline, probeDir) ||
			strings.Contains(p.cmdline, s.runDir) || strings.Contains(p.cmdline, s.dataDir)
		for _, cg := range p.cgroups {
			mine = mine || ours[cg]
		}
		if mine {
			t.Errorf("leftover process %d %q (cgroups %v)", p.pid, p.cmdline, p.cgroups)
		}
	}
}
