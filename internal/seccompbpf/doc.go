// Package seccompbpf owns the rewriting of compiled seccomp filters
// (classic BPF programs over struct seccomp_data) into equivalent ones that
// the kernel loads and runs faster.
//
// libseccomp compiles a container's profile into one linear chain of
// comparisons on the syscall number, about a thousand instructions for the
// moby default profile. Attaching such a filter is slow: since Linux 5.11
// the kernel emulates it once per syscall number and architecture to build
// its cache of always-allowed syscalls, which on the 2-core development
// host costs about 0.8 ms of every container start, on the cold-start path
// after the container is released. Dispatch puts a binary search in front
// of the unchanged program:
//
//	ld arch; for each known arch: jeq → its tree
//	tree:    ld nr; binary search over ranges of syscall numbers → ret <action>
//	         (a range whose action depends on anything but arch and number
//	          falls through to the original)
//	A = 0, X = 0 (as at the start); the original program, verbatim
//
// Equivalence is by construction: a syscall number answered by the tree is
// one for which running the original program with that architecture and
// number never read the arguments or the instruction pointer, so the
// original returns that same action whatever they are; every other input
// runs the original program itself. Instructions the emulator does not know
// make the number fall through too, so an unfamiliar program is only made
// no faster, never different.
package seccompbpf
