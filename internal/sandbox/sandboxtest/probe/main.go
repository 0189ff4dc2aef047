// Command probe runs inside an execution environment under test and reports
// what it can see and do. sandboxtest builds it statically and places it at
// /bin/probe of a test root filesystem.
//
// Usage: probe <check> [args...]. A check prints "OK <detail>" and exits 0,
// or prints "FAIL <reason>" and exits 1. Some subcommands never return on
// their own (sleep, alloc, spawn) and exist to be stopped by the test.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe <check> [args...]")
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "noop":
		return
	case "echo":
		fmt.Println(strings.Join(args, " "))
		fmt.Fprintln(os.Stderr, "stderr:"+strings.Join(args, " "))
		return
	case "exit":
		code, _ := strconv.Atoi(arg(args, 0))
		os.Exit(code)
	case "rofs":
		err = checkReadOnlyRoot()
	case "tmp":
		err = checkTmp(arg(args, 0))
	case "ids":
		err = checkIDs()
	case "pidns":
		err = checkPIDNamespace()
	case "caps":
		err = checkCaps()
	case "rlimits":
		err = checkRlimits()
	case "hostname":
		err = checkHostname(arg(args, 0))
	case "hosts":
		err = checkHosts()
	case "proc":
		err = checkProc()
	case "dev":
		err = checkDev()
	case "net":
		err = checkNet(args)
	case "get":
		err = get(arg(args, 0))
	case "ticker":
		err = ticker()
	case "alloc":
		err = alloc(arg(args, 0))
	case "sleep":
		sleepForever()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("OK ignoring SIGTERM")
		sleepForever()
	case "cat":
		data, rerr := os.ReadFile(arg(args, 0))
		os.Stdout.Write(data)
		err = rerr
	case "trap":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		fmt.Println("OK trapping")
		<-ch
		fmt.Println("OK got SIGTERM")
		return
	case "spawn":
		err = spawn(arg(args, 0))
	default:
		fail("unknown check " + os.Args[1])
	}
	if err != nil {
		fail(err.Error())
	}
	fmt.Println("OK")
}

func arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

func fail(msg string) {
	fmt.Println("FAIL " + msg)
	os.Exit(1)
}

// checkReadOnlyRoot: the root filesystem, and the files mounted from the
// host, refuse writes.
func checkReadOnlyRoot() error {
	for _, p := range []string{"/probe-write", "/bin/probe-write", "/etc/probe-write"} {
		err := os.WriteFile(p, []byte("x"), 0o644)
		if !errors.Is(err, syscall.EROFS) {
			return fmt.Errorf("write %s: got %v, want EROFS", p, err)
		}
	}
	if f, err := os.OpenFile("/etc/hosts", os.O_WRONLY|os.O_APPEND, 0); err == nil {
		f.Close()
		return errors.New("/etc/hosts is writable")
	}
	return nil
}

// checkTmp: /tmp is writable up to sizeMB and no further, and is mounted
// nosuid,nodev.
func checkTmp(sizeMB string) error {
	if err := os.WriteFile("/tmp/small", []byte("hello"), 0o600); err != nil {
		return fmt.Errorf("write /tmp: %w", err)
	}
	mb, err := strconv.Atoi(sizeMB)
	if err != nil {
		return fmt.Errorf("size %q: %w", sizeMB, err)
	}
	f, err := os.Create("/tmp/big")
	if err != nil {
		return err
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	written := 0
	for ; written <= mb+1; written++ {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("wrote %d MiB into a %d MiB /tmp, last error %v", written, mb, err)
	}
	if written < mb/2 {
		return fmt.Errorf("only %d MiB fit into a %d MiB /tmp", written, mb)
	}
	opts, err := mountOptions("/tmp")
	if err != nil {
		return err
	}
	for _, want := range []string{"nosuid", "nodev"} {
		if !opts[want] {
			return fmt.Errorf("/tmp not mounted %s", want)
		}
	}
	return nil
}

func mountOptions(target string) (map[string]bool, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var opts map[string]bool
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[4] != target {
			continue
		}
		opts = map[string]bool{}
		for _, o := range strings.Split(f[5], ",") {
			opts[o] = true
		}
	}
	if opts == nil {
		return nil, fmt.Errorf("%s is not a mount point", target)
	}
	return opts, nil
}

func checkIDs() error {
	if u, g, eu, eg := os.Getuid(), os.Getgid(), os.Geteuid(), os.Getegid(); u != 993 || eu != 993 || g != 990 || eg != 990 {
		return fmt.Errorf("uid %d euid %d gid %d egid %d, want 993/990", u, eu, g, eg)
	}
	groups, err := os.Getgroups()
	if err != nil {
		return err
	}
	for _, g := range groups {
		if g == 0 {
			return fmt.Errorf("supplementary groups %v include root", groups)
		}
	}
	return nil
}

// checkPIDNamespace: the probe is pid 1 and /proc shows no other process.
func checkPIDNamespace() error {
	if pid := os.Getpid(); pid != 1 {
		return fmt.Errorf("pid %d, want 1", pid)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var pids []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, e.Name())
		}
	}
	if len(pids) != 1 {
		return fmt.Errorf("/proc lists pids %v, want only 1", pids)
	}
	return nil
}

func procStatus() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

func checkCaps() error {
	st, err := procStatus()
	if err != nil {
		return err
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if v := st[k]; strings.Trim(v, "0") != "" || v == "" {
			return fmt.Errorf("%s = %q, want 0", k, v)
		}
	}
	if st["NoNewPrivs"] != "1" {
		return fmt.Errorf("NoNewPrivs = %q, want 1", st["NoNewPrivs"])
	}
	if st["Seccomp"] != "2" {
		return fmt.Errorf("Seccomp = %q, want 2 (filter)", st["Seccomp"])
	}
	return checkSeccompProfile()
}

func checkHostname(want string) error {
	h, err := os.Hostname()
	if err != nil {
		return err
	}
	if h != want {
		return fmt.Errorf("hostname %q, want %q", h, want)
	}
	return nil
}

func checkHosts() error {
	for _, name := range []string{"localhost", "sandbox.localdomain"} {
		addrs, err := net.LookupHost(name)
		if err != nil {
			return err
		}
		found := false
		for _, a := range addrs {
			found = found || a == "127.0.0.1"
		}
		if !found {
			return fmt.Errorf("%s resolves to %v, want 127.0.0.1", name, addrs)
		}
	}
	return nil
}

// checkProc: sensitive /proc and /sys paths are masked or read-only.
func checkProc() error {
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list"} {
		data, err := os.ReadFile(p)
		if err == nil && len(data) > 0 {
			return fmt.Errorf("%s readable (%d bytes)", p, len(data))
		}
	}
	if entries, err := os.ReadDir("/sys/firmware"); err == nil && len(entries) > 0 {
		return fmt.Errorf("/sys/firmware lists %d entries", len(entries))
	}
	for _, p := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"} {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			continue // not in this kernel
		}
		opts, err := mountOptions(p)
		if err != nil {
			return err
		}
		if !opts["ro"] {
			return fmt.Errorf("%s not mounted read-only", p)
		}
	}
	sysOpts, err := mountOptions("/sys")
	if err != nil {
		return err
	}
	if !sysOpts["ro"] {
		return errors.New("/sys not mounted read-only")
	}
	return nil
}

// checkDev: the standard devices work, /dev/shm is writable.
func checkDev() error {
	for _, p := range []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"} {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeCharDevice == 0 {
			return fmt.Errorf("%s is not a character device", p)
		}
	}
	buf := make([]byte, 16)
	f, err := os.Open("/dev/urandom")
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.ReadFull(f, buf); err != nil {
		return err
	}
	if err := os.WriteFile("/dev/null", buf, 0); err != nil {
		return err
	}
	if err := os.WriteFile("/dev/shm/x", buf, 0o600); err != nil {
		return fmt.Errorf("write /dev/shm: %w", err)
	}
	for _, p := range []string{"/dev/pts", "/dev/mqueue"} {
		if _, err := mountOptions(p); err != nil {
			return err
		}
	}
	// No block devices or other host devices.
	entries, err := os.ReadDir("/dev")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type()&os.ModeDevice != 0 && e.Type()&os.ModeCharDevice == 0 {
			return fmt.Errorf("block device /dev/%s present", e.Name())
		}
	}
	return nil
}

// checkNet: the Runtime API answers with want; only loopback exists; each
// of the other addresses refuses connections.
func checkNet(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: net <want-body> [unreachable-addr...]")
	}
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api != "127.0.0.1:9001" {
		return fmt.Errorf("AWS_LAMBDA_RUNTIME_API = %q", api)
	}
	body, err := fetch("http://" + api + "/")
	if err != nil {
		return err
	}
	if body != args[0] {
		return fmt.Errorf("runtime API answered %q, want %q", body, args[0])
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	if len(ifs) != 1 || ifs[0].Name != "lo" {
		return fmt.Errorf("interfaces %v, want only lo", ifs)
	}
	for _, addr := range args[1:] {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("%s reachable", addr)
		}
	}
	return nil
}

func fetch(url string) (string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// get fetches path from the Runtime API once.
func get(path string) error {
	_, err := fetch("http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + path)
	return err
}

// ticker fetches /tick from the Runtime API in a loop until it fails.
func ticker() error {
	for {
		if err := get("/tick"); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// alloc touches mb MiB of memory, then sleeps.
func alloc(mb string) error {
	n, err := strconv.Atoi(mb)
	if err != nil {
		return err
	}
	var keep [][]byte
	for i := 0; i < n; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(j)
		}
		keep = append(keep, b)
	}
	fmt.Printf("OK allocated %d MiB\n", len(keep))
	defer runtime.KeepAlive(keep)
	sleepForever()
	return nil
}

// spawn starts n children that sleep forever, reports, then sleeps itself.
func spawn(n string) error {
	count, err := strconv.Atoi(n)
	if err != nil {
		return err
	}
	for i := 0; i < count; i++ {
		cmd := exec.Command("/proc/self/exe", "sleep")
		if err := cmd.Start(); err != nil {
			return err
		}
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(w, "OK spawned %d\n", count)
	w.Flush()
	sleepForever()
	return nil
}

// sleepForever blocks without tripping the runtime's deadlock detector.
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}
