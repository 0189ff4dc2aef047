package seccompbpf

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Classic BPF opcodes used by seccomp filters (linux/filter.h).
const (
	ldWAbs = 0x20 // A = *(u32 *)(data + k)
	ldWLen = 0x80 // A = len(data)
	ldImm  = 0x00 // A = k
	ldxImm = 0x01 // X = k
	ldMem  = 0x60 // A = M[k]
	ldxMem = 0x61 // X = M[k]
	st     = 0x02 // M[k] = A
	stx    = 0x03 // M[k] = X
	ja     = 0x05 // pc += k
	jeqK   = 0x15
	jeqX   = 0x1d
	jgtK   = 0x25
	jgtX   = 0x2d
	jgeK   = 0x35
	jgeX   = 0x3d
	jsetK  = 0x45
	jsetX  = 0x4d
	retK   = 0x06
	retA   = 0x16
	tax    = 0x07
	txa    = 0x87

	aluClass = 0x04
	aluSrcX  = 0x08
)

// Offsets of struct seccomp_data.
const (
	offNR      = 0
	offArch    = 4
	dataLength = 64 // nr, arch, instruction_pointer, args[6]
)

// maxInsns is the kernel's BPF_MAXINSNS: a longer filter is refused.
const maxInsns = 4096

// memWords is the size of the scratch memory M[].
const memWords = 16

// insn is one classic BPF instruction (struct sock_filter).
type insn struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

// ErrMalformed: the input is not a sequence of 8-byte instructions.
var ErrMalformed = errors.New("malformed bpf program")

func decode(b []byte) ([]insn, error) {
	if len(b) == 0 || len(b)%8 != 0 {
		return nil, fmt.Errorf("%d bytes: %w", len(b), ErrMalformed)
	}
	p := make([]insn, len(b)/8)
	for i := range p {
		w := b[i*8:]
		p[i] = insn{code: binary.LittleEndian.Uint16(w), jt: w[2], jf: w[3], k: binary.LittleEndian.Uint32(w[4:])}
	}
	return p, nil
}

func encode(p []insn) []byte {
	b := make([]byte, len(p)*8)
	for i, in := range p {
		w := b[i*8:]
		binary.LittleEndian.PutUint16(w, in.code)
		w[2], w[3] = in.jt, in.jf
		binary.LittleEndian.PutUint32(w[4:], in.k)
	}
	return b
}

// emulate runs p for a syscall of the given architecture and number. ok is
// false when the outcome may depend on anything else (the program reads
// the instruction pointer or the arguments), or when p does something the
// emulator does not model or that is invalid (reading scratch memory never
// written, dividing by zero, jumping out of the program).
func emulate(p []insn, arch, nr uint32) (ret uint32, ok bool) {
	var a, x uint32
	var mem [memWords]uint32
	var written uint16
	for pc := 0; pc < len(p); pc++ {
		in := p[pc]
		switch in.code {
		case ldWAbs:
			switch in.k {
			case offNR:
				a = nr
			case offArch:
				a = arch
			default:
				return 0, false
			}
		case ldWLen:
			a = dataLength
		case ldImm:
			a = in.k
		case ldxImm:
			x = in.k
		case ldMem, ldxMem:
			if in.k >= memWords || written&(1<<in.k) == 0 {
				return 0, false
			}
			if in.code == ldMem {
				a = mem[in.k]
			} else {
				x = mem[in.k]
			}
		case st, stx:
			if in.k >= memWords {
				return 0, false
			}
			if in.code == st {
				mem[in.k] = a
			} else {
				mem[in.k] = x
			}
			written |= 1 << in.k
		case tax:
			x = a
		case txa:
			a = x
		case ja:
			if in.k >= uint32(len(p)) {
				return 0, false // out of the program (and of int on 32-bit)
			}
			pc += int(in.k)
		case jeqK, jeqX, jgtK, jgtX, jgeK, jgeX, jsetK, jsetX:
			v := in.k
			if in.code&aluSrcX != 0 {
				v = x
			}
			var taken bool
			switch in.code &^ aluSrcX {
			case jeqK:
				taken = a == v
			case jgtK:
				taken = a > v
			case jgeK:
				taken = a >= v
			case jsetK:
				taken = a&v != 0
			}
			if taken {
				pc += int(in.jt)
			} else {
				pc += int(in.jf)
			}
		case retK:
			return in.k, true
		case retA:
			return a, true
		default:
			if in.code&0x07 != aluClass {
				return 0, false
			}
			v := in.k
			if in.code&aluSrcX != 0 {
				v = x
			}
			var good bool
			if a, good = alu(in.code&^aluSrcX&0xf0, a, v); !good {
				return 0, false
			}
		}
	}
	return 0, false // ran off the end: not a valid program
}

// alu applies the ALU operation op (BPF_OP bits) to a and v.
func alu(op uint16, a, v uint32) (uint32, bool) {
	switch op {
	case 0x00:
		return a + v, true
	case 0x10:
		return a - v, true
	case 0x20:
		return a * v, true
	case 0x30:
		if v == 0 {
			return 0, false
		}
		return a / v, true
	case 0x40:
		return a | v, true
	case 0x50:
		return a & v, true
	case 0x60:
		if v >= 32 {
			return 0, false
		}
		return a << v, true
	case 0x70:
		if v >= 32 {
			return 0, false
		}
		return a >> v, true
	case 0x80:
		return -a, true
	case 0x90:
		if v == 0 {
			return 0, false
		}
		return a % v, true
	case 0xa0:
		return a ^ v, true
	}
	return 0, false
}

// leaf is what a range of syscall numbers does: return action, or run the
// original program (fallback).
type leaf struct {
	fallback bool
	action   uint32
}

// span is the syscall numbers [lo, next span's lo) sharing one leaf.
type span struct {
	lo   uint32
	leaf leaf
}

// spans classifies the numbers [0, maxNR) of arch; every number from maxNR
// up falls back.
func spans(p []insn, arch, maxNR uint32) []span {
	var out []span
	for nr := uint32(0); nr <= maxNR; nr++ {
		l := leaf{fallback: true}
		if nr < maxNR {
			if ret, ok := emulate(p, arch, nr); ok {
				l = leaf{action: ret}
			}
		}
		if len(out) == 0 || out[len(out)-1].leaf != l {
			out = append(out, span{lo: nr, leaf: l})
		}
	}
	return out
}

// builder emits instructions whose forward jumps are resolved at the end.
type builder struct {
	p      []insn
	labels map[int]int   // label → pc
	fixups map[int][]int // label → pcs of ja instructions to it
	next   int
}

func (b *builder) label() int { b.next++; return b.next }

func (b *builder) mark(l int) { b.labels[l] = len(b.p) }

func (b *builder) emit(in insn) { b.p = append(b.p, in) }

func (b *builder) jump(l int) {
	b.fixups[l] = append(b.fixups[l], len(b.p))
	b.emit(insn{code: ja})
}

// tree emits a binary search over ss, with the syscall number in A.
func (b *builder) tree(ss []span, original int) {
	if len(ss) == 1 {
		if ss[0].leaf.fallback {
			b.jump(original)
		} else {
			b.emit(insn{code: retK, k: ss[0].leaf.action})
		}
		return
	}
	mid := len(ss) / 2
	right := b.label()
	// nr >= ss[mid].lo: the next instruction jumps right; else skip it.
	b.emit(insn{code: jgeK, jt: 0, jf: 1, k: ss[mid].lo})
	b.jump(right)
	b.tree(ss[:mid], original)
	b.mark(right)
	b.tree(ss[mid:], original)
}

// Dispatch returns prog with a binary search on the syscall number in
// front, for each of arches (AUDIT_ARCH_* values) over the numbers
// [0, maxNR); see the package documentation. It returns an error wrapping
// ErrMalformed for input that is not a BPF program, and one when the
// result would exceed the kernel's 4096 instructions; callers then keep
// prog.
func Dispatch(prog []byte, arches []uint32, maxNR uint32) ([]byte, error) {
	p, err := decode(prog)
	if err != nil {
		return nil, err
	}
	if maxNR > maxInsns*16 {
		return nil, fmt.Errorf("dispatch: %d syscall numbers is past any architecture's", maxNR)
	}
	b := &builder{labels: map[int]int{}, fixups: map[int][]int{}}
	original := b.label()
	trees := make([]int, len(arches))
	b.emit(insn{code: ldWAbs, k: offArch})
	for i, arch := range arches {
		trees[i] = b.label()
		b.emit(insn{code: jeqK, jt: 0, jf: 1, k: arch})
		b.jump(trees[i])
	}
	b.jump(original)
	for i, arch := range arches {
		b.mark(trees[i])
		b.emit(insn{code: ldWAbs, k: offNR})
		b.tree(spans(p, arch, maxNR), original)
	}
	// The original runs as if from the start: A and X are zero then (the
	// kernel clears them; a program may rely on it). Scratch memory is
	// untouched: the prefix never stores.
	b.mark(original)
	b.emit(insn{code: ldImm, k: 0})
	b.emit(insn{code: ldxImm, k: 0})
	b.p = append(b.p, p...)
	if len(b.p) > maxInsns {
		return nil, fmt.Errorf("dispatch: %d instructions, more than the kernel's %d", len(b.p), maxInsns)
	}
	for l, pcs := range b.fixups {
		to := b.labels[l]
		for _, pc := range pcs {
			b.p[pc].k = uint32(to - pc - 1)
		}
	}
	return encode(b.p), nil
}
