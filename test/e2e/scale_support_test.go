package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// This file holds what the scaling, versioning, lifecycle and leak tests
// share: the server's health document, its containers and cgroups as the
// host sees them, and small SDK conveniences.

// health is the JSON document GET /healthz returns.
type health struct {
	Status       string `json:"status"`
	Goroutines   int    `json:"goroutines"`
	Environments struct {
		Live int `json:"live"`
		Idle int `json:"idle"`
	} `json:"environments"`
}

func (s *server) health(t testing.TB) health {
	t.Helper()
	code, body := get(t, s.URL("/healthz"))
	var h health
	if code != 200 || json.Unmarshal([]byte(body), &h) != nil {
		t.Fatalf("GET /healthz: %d %q", code, body)
	}
	return h
}

// containers lists the containers of this server in the crun and runc
// state roots under its run directory.
func (s *server) containers(t testing.TB) []string {
	t.Helper()
	var ids []string
	for _, c := range s.containerStates(t, false) {
		ids = append(ids, c.ID)
	}
	return ids
}

// startedContainers lists the containers of this server that were started
// (running, paused or stopped): containers minus the spares, which are
// created but not started until an invocation takes them.
func (s *server) startedContainers(t testing.TB) []string {
	t.Helper()
	var ids []string
	for _, c := range s.containerStates(t, true) {
		if c.Status != "created" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

type containerState struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// listContainers runs `<rt> --root root list args…` and returns its
// standard output (its standard error too when it fails). crun 1.8 reads
// each container's status file even for `list -q`, and fails when a
// container is being created or deleted at that moment (its directory
// there, its status file not); such a listing is taken again, a few times.
// runc warns of such a container on standard error and lists the others.
func listContainers(rt, root string, args ...string) ([]byte, error) {
	var out []byte
	var err error
	for range 5 {
		var stderr bytes.Buffer
		cmd := exec.Command(rt, append([]string{"--root", root, "list"}, args...)...)
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if err == nil {
			return out, nil
		}
		out = append(out, stderr.Bytes()...)
		if !bytes.Contains(out, []byte("No such file or directory")) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out, err
}

// containerStates asks crun and runc for the containers in their state
// roots under this server's run directory: ids only (`list -q`, which
// reads no container's state and so cannot trip over one being deleted),
// or with their status (`list --format json`).
func (s *server) containerStates(t testing.TB, status bool) []containerState {
	t.Helper()
	var all []containerState
	for _, rt := range []string{"crun", "runc"} {
		root := filepath.Join(s.runDir, rt)
		if _, err := os.Stat(root); err != nil {
			continue
		}
		if _, err := exec.LookPath(rt); err != nil {
			continue
		}
		if !status {
			out, err := listContainers(rt, root, "-q")
			if err != nil {
				t.Fatalf("%s --root %s list: %v: %s", rt, root, err, out)
			}
			for _, id := range strings.Fields(string(out)) {
				all = append(all, containerState{ID: id})
			}
			continue
		}
		out, err := listContainers(rt, root, "--format", "json")
		if err != nil {
			t.Fatalf("%s --root %s list: %v: %s", rt, root, err, out)
		}
		var list []containerState
		if trimmed := bytes.TrimSpace(out); len(trimmed) > 0 && string(trimmed) != "null" {
			if err := json.Unmarshal(trimmed, &list); err != nil {
				t.Fatalf("%s list --format json: %v: %s", rt, err, out)
			}
		}
		all = append(all, list...)
	}
	return all
}

// cgroupParent is the cgroup under which this server's environments live,
// relative to each hierarchy's root: kappa/<8 hex of sha256(run dir)>.
func (s *server) cgroupParent() string {
	sum := sha256.Sum256([]byte(s.runDir))
	return "kappa/" + hex.EncodeToString(sum[:4])
}

// cgroupChildren returns the cgroup directories under this server's
// cgroup parent, in every hierarchy (v1 controllers and the v2 tree).
func (s *server) cgroupChildren(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, m := range cgroupMounts(t) {
		filepath.WalkDir(filepath.Join(m, s.cgroupParent()), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() && p != filepath.Join(m, s.cgroupParent()) {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// freezerState reports whether the cgroup of container id is frozen:
// "FROZEN", "FREEZING" or "THAWED" from the v1 freezer, or from cgroup.events
// of the v2 tree when there is no v1 freezer. "" means no such cgroup.
func (s *server) freezerState(t *testing.T, id string) string {
	t.Helper()
	rel := filepath.Join(s.cgroupParent(), id)
	for _, m := range cgroupMounts(t) {
		if b, err := os.ReadFile(filepath.Join(m, rel, "freezer.state")); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	for _, m := range cgroupMounts(t) {
		if b, err := os.ReadFile(filepath.Join(m, rel, "cgroup.events")); err == nil {
			if n, ok := flatValue(string(b), "frozen"); ok && n == 1 {
				return "FROZEN"
			}
			return "THAWED"
		}
	}
	return ""
}

// cpuUsage returns the CPU time the cgroup of container id has used, in
// nanoseconds (v1 cpuacct.usage or v2 cpu.stat usage_usec).
func (s *server) cpuUsage(t *testing.T, id string) (uint64, bool) {
	t.Helper()
	rel := filepath.Join(s.cgroupParent(), id)
	for _, m := range cgroupMounts(t) {
		if b, err := os.ReadFile(filepath.Join(m, rel, "cpuacct.usage")); err == nil {
			n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			return n, err == nil
		}
	}
	for _, m := range cgroupMounts(t) {
		if b, err := os.ReadFile(filepath.Join(m, rel, "cpu.stat")); err == nil {
			n, ok := flatValue(string(b), "usage_usec")
			return n * 1000, ok
		}
	}
	return 0, false
}

func flatValue(data, key string) (uint64, bool) {
	for _, line := range strings.Split(data, "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// sandboxIDs returns the distinct sandbox ids the server's log names.
func (s *server) sandboxIDs() map[string]bool {
	ids := map[string]bool{}
	for _, m := range sandboxIDRE.FindAllStringSubmatch(s.Log(), -1) {
		ids[m[1]] = true
	}
	return ids
}

// throttleOf returns the TooManyRequestsException an SDK call failed with,
// or nil.
func throttleOf(err error) *types.TooManyRequestsException {
	var tm *types.TooManyRequestsException
	if errors.As(err, &tm) {
		return tm
	}
	return nil
}

// publish publishes $LATEST of fname and returns the new version's
// configuration.
func publish(t *testing.T, s *server, fname string, mutate ...func(*lambda.PublishVersionInput)) *lambda.PublishVersionOutput {
	t.Helper()
	in := &lambda.PublishVersionInput{FunctionName: aws.String(fname)}
	for _, m := range mutate {
		m(in)
	}
	out, err := s.Lambda.PublishVersion(context.Background(), in)
	if err != nil {
		t.Fatalf("PublishVersion %s: %v", fname, err)
	}
	return out
}

// setEnv replaces the function's environment variables and waits until the
// update is done.
func setEnv(t *testing.T, s *server, fname string, vars map[string]string) {
	t.Helper()
	_, err := s.Lambda.UpdateFunctionConfiguration(context.Background(), &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String(fname),
		Environment:  &types.Environment{Variables: vars},
	})
	if err != nil {
		t.Fatalf("UpdateFunctionConfiguration %s: %v", fname, err)
	}
	waitUpdated(t, s, fname)
}

// withQualifier invokes a version or alias.
func withQualifier(q string) func(*lambda.InvokeInput) {
	return func(in *lambda.InvokeInput) { in.Qualifier = aws.String(q) }
}

// testARN is the ARN of a function of the test account, qualified when q is
// not empty.
func testARN(fname, q string) string {
	arn := "arn:aws:lambda:us-east-1:000000000000:function:" + fname
	if q != "" {
		arn += ":" + q
	}
	return arn
}

// binomialInterval returns the smallest k range [lo, hi] holding at least
// conf of the probability mass of Binomial(n, p), cutting both tails
// equally.
func binomialInterval(n int, p, conf float64) (lo, hi int) {
	pmf := func(k int) float64 {
		lg := func(x float64) float64 { v, _ := math.Lgamma(x); return v }
		return math.Exp(lg(float64(n+1)) - lg(float64(k+1)) - lg(float64(n-k+1)) +
			float64(k)*math.Log(p) + float64(n-k)*math.Log(1-p))
	}
	tail := (1 - conf) / 2
	acc := 0.0
	for lo = 0; lo < n; lo++ {
		if acc+pmf(lo) > tail {
			break
		}
		acc += pmf(lo)
	}
	acc = 0
	for hi = n; hi > 0; hi-- {
		if acc+pmf(hi) > tail {
			break
		}
		acc += pmf(hi)
	}
	return lo, hi
}

// waitFor polls cond until it holds, failing the test with what after
// timeout. It orders steps; it asserts nothing about speed.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !eventually(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// tryInvoke is invoke for goroutines other than the test's: it returns the
// error instead of failing the test.
func tryInvoke(s *server, fname string, payload any, opts ...func(*lambda.InvokeInput)) (*lambda.InvokeOutput, map[string]any, error) {
	b, _ := json.Marshal(payload)
	in := &lambda.InvokeInput{FunctionName: aws.String(fname), Payload: b}
	for _, o := range opts {
		o(in)
	}
	out, err := s.Lambda.Invoke(context.Background(), in)
	if err != nil {
		return nil, nil, err
	}
	var m map[string]any
	json.Unmarshal(out.Payload, &m)
	return out, m, nil
}
