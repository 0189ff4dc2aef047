package seccompbpf

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"testing"

	"golang.org/x/net/bpf"
)

const (
	archX8664   = 0xC000003E
	archI386    = 0x40000003
	archAArch64 = 0xC00000B7
)

// data is a struct seccomp_data laid out for golang.org/x/net/bpf, whose VM
// loads words big-endian: each native 32-bit field is stored big-endian so
// that the VM reads the value the kernel would.
func data(nr, arch uint32, ip uint64, args [6]uint64) []byte {
	b := make([]byte, dataLength)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], arch)
	// A u64 field is two native words: low first on little-endian hosts.
	put64 := func(off int, v uint64) {
		binary.BigEndian.PutUint32(b[off:], uint32(v))
		binary.BigEndian.PutUint32(b[off+4:], uint32(v>>32))
	}
	put64(8, ip)
	for i, a := range args {
		put64(16+8*i, a)
	}
	return b
}

// newVM loads prog into golang.org/x/net/bpf's interpreter, independent
// of this package's emulator; an error means the VM cannot run it.
func newVM(prog []byte) (*bpf.VM, error) {
	p, err := decode(prog)
	if err != nil {
		return nil, err
	}
	raw := make([]bpf.RawInstruction, len(p))
	for i, in := range p {
		raw[i] = bpf.RawInstruction{Op: in.code, Jt: in.jt, Jf: in.jf, K: in.k}
	}
	insns, ok := bpf.Disassemble(raw)
	if !ok {
		return nil, errors.New("x/net/bpf cannot decode the program")
	}
	return bpf.NewVM(insns)
}

// vm returns prog's outcome for a seccomp_data in x/net/bpf's VM.
func vm(t testing.TB, prog []byte) func([]byte) uint32 {
	t.Helper()
	m, err := newVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	return func(d []byte) uint32 {
		v, err := m.Run(d)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(v)
	}
}

// checkEquivalent compares the two programs on every architecture of
// interest, every syscall number in [0, 1100) and a sample beyond, each
// with argument vectors that hit the profile's argument checks.
func checkEquivalent(t *testing.T, orig, opt []byte) {
	t.Helper()
	a, b := vm(t, orig), vm(t, opt)
	rng := rand.New(rand.NewPCG(1, 2))
	argSets := [][6]uint64{
		{},
		{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)},
		{0x8, 0x20000, 0x20008, 0xffffffff},  // personality values
		{0x7E020000, 0x10000000, 0x40000000}, // clone flag bits
		{1, 2, 3, 4, 5, 6},
	}
	for range 4 {
		var r [6]uint64
		for i := range r {
			r[i] = rng.Uint64()
		}
		argSets = append(argSets, r)
	}
	nrs := []uint32{0x40000000, 0x40000001, 0x400000c8, 0x7fffffff, 0xfffffffe, 0xffffffff}
	for nr := uint32(0); nr < 1100; nr++ {
		nrs = append(nrs, nr)
	}
	diffs := 0
	for _, arch := range []uint32{archX8664, archI386, archAArch64, 0, 0xffffffff} {
		for _, nr := range nrs {
			for _, args := range argSets {
				for _, ip := range []uint64{0, 0x401000} {
					d := data(nr, arch, ip, args)
					if x, y := a(d), b(d); x != y {
						if diffs++; diffs <= 10 {
							t.Errorf("arch %#x nr %d args %x: original %#x, dispatched %#x", arch, nr, args, x, y)
						}
					}
				}
			}
		}
	}
}

// mobyDefault returns the moby default profile as crun 1.8 compiles it for
// x86-64, and its dispatched form.
func mobyDefault(t *testing.T) (orig, opt []byte) {
	t.Helper()
	orig, err := os.ReadFile("testdata/moby-default-amd64.bpf")
	if err != nil {
		t.Fatal(err)
	}
	opt, err = Dispatch(orig, []uint32{archX8664, archI386}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return orig, opt
}

// TestDispatchMobyDefault: the moby default profile as crun 1.8 compiles
// it for x86-64 is answered the same by the dispatched program, which is
// far shorter to run for an allowed syscall.
func TestDispatchMobyDefault(t *testing.T) {
	orig, opt := mobyDefault(t)
	checkEquivalent(t, orig, opt)

	p, _ := decode(orig)
	q, _ := decode(opt)
	steps := func(p []insn, nr uint32) int {
		n := 0
		for pc := 0; pc < len(p); pc++ {
			n++
			switch in := p[pc]; {
			case in.code == ja:
				pc += int(in.k)
			case in.code&0x07 == 0x05:
				if a := nr; (in.code == jeqK && a == in.k) || (in.code == jgeK && a >= in.k) || (in.code == jgtK && a > in.k) {
					pc += int(in.jt)
				} else {
					pc += int(in.jf)
				}
			case in.code == retK:
				return n
			}
		}
		return n
	}
	// read(2), 0, is allowed early in both; the last allowed numbers
	// show the linear chain's cost.
	t.Logf("instructions: original %d, dispatched %d; steps for syscall 435 (clone3): %d → %d",
		len(p), len(q), steps(p, 435), steps(q, 435))
}

// TestDispatchSynthetic covers what libseccomp's output does not: scratch
// memory, ALU operations, jset, X comparisons, ret A, an argument check in
// the middle of the number checks, and the instruction pointer.
func TestDispatchSynthetic(t *testing.T) {
	const (
		allow = 0x7fff0000
		errno = 0x00050001
		kill  = 0x80000000
	)
	prog := []insn{
		{code: ldWAbs, k: offArch},                  // 0
		{code: jeqK, jt: 1, jf: 0, k: archX8664},    // 1
		{code: retK, k: kill},                       // 2
		{code: ldWAbs, k: offNR},                    // 3
		{code: st, k: 3},                            // 4: M[3] = nr
		{code: jgeK, jt: 0, jf: 2, k: 500},          // 5
		{code: ldWAbs, k: 8},                        // 6: ip low word
		{code: retA},                                // 7: ret ip
		{code: ldMem, k: 3},                         // 8
		{code: aluClass | 0x50, k: 0xfff0},          // 9: A &= 0xfff0
		{code: jeqK, jt: 0, jf: 3, k: 0x10},         // 10: nr in [16,32)
		{code: ldWAbs, k: 16},                       // 11: args[0] low
		{code: jsetK, jt: 5, jf: 0, k: 1},           // 12: odd → errno
		{code: retK, k: allow},                      // 13
		{code: ldxImm, k: 7},                        // 14
		{code: ldMem, k: 3},                         // 15
		{code: aluClass | 0x90 | aluSrcX},           // 16: A %= X
		{code: jeqX, jt: 0, jf: 2},                  // 17: A == X (nr%7 == 7 never)
		{code: retK, k: errno},                      // 18
		{code: retK, k: errno},                      // 19
		{code: jsetK, jt: 0, jf: 1, k: 1},           // 20: nr%7 odd
		{code: retK, k: allow},                      // 21
		{code: tax},                                 // 22
		{code: txa},                                 // 23
		{code: aluClass | 0x00, k: 1 << 16},         // 24: A += 0x10000
		{code: aluClass | 0x40, k: errno &^ 0xffff}, // 25
		{code: retA},                                // 26
	}
	orig := encode(prog)
	opt, err := Dispatch(orig, []uint32{archX8664, archI386}, 1024)
	if err != nil {
		t.Fatal(err)
	}
	checkEquivalent(t, orig, opt)
	// Numbers that read an argument or the instruction pointer fall back:
	// emulate must refuse them.
	for _, nr := range []uint32{16, 31, 500, 1000} {
		if _, ok := emulate(prog, archX8664, nr); ok {
			t.Errorf("nr %d reads arguments or ip, but emulate answered", nr)
		}
	}
	if ret, ok := emulate(prog, archI386, 16); !ok || ret != kill {
		t.Errorf("i386 = %#x, %v; want kill", ret, ok)
	}
}

func TestDispatchMalformed(t *testing.T) {
	tests := []struct {
		name string
		prog []byte
	}{
		{"empty", nil},
		{"partial instruction", make([]byte, 12)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Dispatch(tc.prog, []uint32{archX8664}, 1024); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Dispatch = %v, want ErrMalformed", err)
			}
		})
	}
	// A program too long to dispatch: every number gets its own action.
	var long []insn
	long = append(long, insn{code: ldWAbs, k: offNR})
	for nr := range uint32(1500) {
		long = append(long, insn{code: jeqK, jt: 0, jf: 1, k: nr}, insn{code: retK, k: nr})
	}
	long = append(long, insn{code: retK})
	if _, err := Dispatch(encode(long), []uint32{archX8664}, 1024); err == nil {
		t.Fatal("Dispatch of a program that would exceed 4096 instructions succeeded")
	}
}

// FuzzDispatch: any input either is refused or yields a program the VM
// answers exactly as it answers the input, wherever the VM accepts the
// input at all.
func FuzzDispatch(f *testing.F) {
	if orig, err := os.ReadFile("testdata/moby-default-amd64.bpf"); err == nil {
		f.Add(orig[:min(len(orig), 800)], uint32(3), uint32(archX8664))
	}
	f.Add(encode([]insn{{code: ldWAbs, k: offNR}, {code: jeqK, jt: 0, jf: 1, k: 3}, {code: retK, k: 1}, {code: retK, k: 2}}), uint32(3), uint32(archX8664))
	f.Fuzz(func(t *testing.T, prog []byte, nr, arch uint32) {
		opt, err := Dispatch(prog, []uint32{archX8664, arch}, 64)
		if err != nil {
			return
		}
		a, err := newVM(prog)
		if err != nil {
			return // not a program the VM runs; nothing to compare
		}
		b, err := newVM(opt)
		if err != nil {
			t.Fatalf("the VM runs the original but not the dispatched program: %v", err)
		}
		for _, ar := range []uint32{archX8664, arch} {
			for _, n := range []uint32{nr, nr % 64, nr % 70} {
				d := data(n, ar, uint64(nr)*7, [6]uint64{uint64(n), uint64(ar)})
				x, errA := a.Run(d)
				if errA != nil {
					continue // the VM gives up on this path of the original
				}
				y, errB := b.Run(d)
				if errB != nil || x != y {
					t.Fatalf("arch %#x nr %d: original %#x, dispatched %#x (%v)", ar, n, x, y, errB)
				}
			}
		}
	})
}
