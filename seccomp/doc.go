// Package seccomp compiles seccomp profiles in the OCI runtime-spec /
// Docker JSON format into classic BPF programs and installs them, without
// cgo or libseccomp.
//
// The flow is Parse (or Default) → Compile → Install, or Load for the
// usual cases ("default", "unconfined", or a JSON file):
//
//	prog, err := seccomp.Load(spec, seccomp.Options{Caps: caps}, seccomp.DefaultOptions{})
//	...
//	seccomp.SetNoNewPrivs()   // or prctl on the thread that calls Install
//	seccomp.Install(prog)     // every thread of the process (TSYNC)
//
// The compiled program and its installation are package seccomp/bpf's
// (Program, Install, SetNoNewPrivs here are aliases and forwards): a
// process that only applies a filter (the sandbox's PID 1) imports that
// small package, not the compiler, its tables and encoding/json.
//
// # Semantics
//
// A profile has a default action and rules. A rule names system calls, an
// action and up to six argument conditions. All conditions of one rule
// must hold (AND); several rules for the same system call are alternatives
// (OR). When several rules of one system call match, the most restrictive
// action wins, whatever their order in the profile, the way the kernel
// combines stacked filters: KILL_PROCESS > KILL_THREAD > TRAP > ERRNO (and
// TRACE, compiled as ERRNO) > LOG > ALLOW; among rules of equal rank, the
// first in the profile wins (this only matters for ERRNO rules with
// different errno values). When no rule matches, the default action
// applies.
//
// Arguments are compared as the 64-bit values of struct seccomp_data, both
// 32-bit halves (classic BPF is 32-bit), unsigned, as libseccomp does. For
// i386 system calls the kernel zero-extends the 32-bit registers, so the
// upper half is known to be 0 and only the lower half is checked (a
// comparison with a value above 0xffffffff is decided at compile time).
// An argument declared as int or unsigned int in the kernel (an ioctl
// request, unshare's flags) may carry garbage in its upper half on x86_64:
// compare such arguments with SCMP_CMP_MASKED_EQ and a mask of 0xffffffff.
//
// # Architectures
//
// Filters compile for amd64, 386, arm64, arm, riscv64, ppc64le, ppc64,
// s390x and loong64 (SupportedArchs; the tables in ztables.go are
// generated from golang.org/x/sys, see mktables.go). The program first
// checks seccomp_data.arch: each architecture the profile enables gets its
// own section with that architecture's numbers, and any other value gets
// Options.BadArchAction (default SCMP_ACT_KILL_PROCESS). Enabled are the
// native architecture, those in "architectures", and the
// subArchitectures of the native one's "archMap" entry, as far as the
// native kernel can report them: x86_64 and i386 (an i386 call is
// reachable from any x86_64 process), aarch64 and arm (arm64's compat
// ABI, for 32-bit binaries the payload executes); the others have one
// ABI each here. Compat ABIs without a table (ppc64's 32-bit ppc, s390x's
// 31-bit s390, riscv64's rv32) always get the bad-arch action. x32 system
// calls (AUDIT_ARCH_X86_64 with bit 30 set in the number: 0x40000000 to
// 0x7fffffff) always fail with ENOSYS: they have their own numbers and
// table, which this package does not carry, and most kernels are built
// without x32. Arguments are read at the halves the architecture's byte
// order puts them (s390x and ppc64 are big endian); on 32-bit ABIs only
// the lower half is checked. Other architectures named in a profile are
// accepted and ignored, as is a rule's system-call name that exists only
// on another architecture; a name that exists on no Linux architecture is
// an error. A native architecture without tables (mips*) is an
// *UnsupportedError.
//
// # Profile fields
//
// Rules may carry "includes" and "excludes" as in Docker's profiles:
// "arches" is matched against the native architecture (the GOARCH the
// program runs as: amd64 matches "amd64", "x86_64" and "SCMP_ARCH_X86_64";
// 386 matches "386", "x86", "i386" and "SCMP_ARCH_X86"; arm64 "arm64",
// "aarch64" and "SCMP_ARCH_AARCH64"), for the compat sections too, as
// Docker does; "caps" against Options.Caps (the capabilities the payload
// will have; a capability not listed there is absent), "minKernel" against
// Options.Kernel or the running kernel. A rule is used when every capability and the arch of
// "includes" is present, and none of "excludes" is.
//
// Actions: SCMP_ACT_ALLOW, SCMP_ACT_ERRNO (errnoRet, default EPERM, or
// defaultErrnoRet for the default action), SCMP_ACT_KILL and
// SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_LOG,
// and SCMP_ACT_TRACE, compiled as ERRNO(ENOSYS): that is what the kernel
// returns for TRACE when no tracer is attached, and compiling it so keeps a
// tracer from turning a denied call into an allowed one. SCMP_ACT_NOTIFY
// and "listenerPath" are rejected (no supervisor). "flags" may hold
// SECCOMP_FILTER_FLAG_TSYNC (always used), SECCOMP_FILTER_FLAG_LOG and
// SECCOMP_FILTER_FLAG_SPEC_ALLOW. Unknown JSON fields are errors, so that a
// misspelt key does not silently weaken a profile.
//
// On i386, socket calls may go through the multiplexer socketcall(2) and
// IPC calls through ipc(2); a rule on "socket" or "semop" does not see
// those (libseccomp does rewrite them). Rules meant for i386 should name
// "socketcall" and "ipc" too.
package seccomp
