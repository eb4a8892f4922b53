package seccomp

// The sandbox's default profile.
//
// It is a deny-list: everything is allowed except what a sandboxed build or
// test has no business doing and what widens the kernel's attack surface
// for no gain inside the sandbox. Unlike Docker's and podman's allow-lists,
// a deny-list does not break programs that use a system call newer than the
// profile; the price is that a new dangerous system call is allowed until
// it is listed here. Most entries would fail anyway for root in a user
// namespace (they check a capability in the initial namespace); denying
// them here means the kernel code behind them is never reached.
//
// Denied calls fail with EPERM (ENOSYS for clone3 and io_uring, see below:
// callers take ENOSYS as "not there" and fall back); nothing is
// killed, so a program that probes a feature gets an error it can handle.

// DefaultOptions tunes the default profile.
type DefaultOptions struct {
	// AllowNestedUserns allows new user namespaces (unshare and clone
	// with CLONE_NEWUSER, clone3) and setns: for payloads that run a
	// sandbox or container tool themselves. The mount calls are then
	// allowed too unless the payload has CAP_SYS_ADMIN (see mountCalls).
	AllowNestedUserns bool
	// DenyPtrace denies ptrace and the calls with the same power over
	// another process (process_vm_readv, process_vm_writev). They are
	// allowed by default, see defaultPtrace.
	DenyPtrace bool
}

// Argument values the default profile checks.
const (
	cloneNewUser = 0x10000000 // CLONE_NEWUSER
	ioctlTIOCSTI = 0x5412     // TIOCSTI: push a byte into a terminal's input
	ioctlTIOCLNX = 0x541c     // TIOCLINUX: console selection/paste, among others
)

// defaultDenied are denied with EPERM, whatever their arguments. Names that
// do not exist on an architecture (stime, vm86 on x86_64) are skipped there.
var defaultDenied = []struct {
	why   string
	names []string
}{
	{"the kernel keyring is not namespaced: a uid's user keyring is shared with every other session of that uid on the host (and keyctl is a large, often buggy, kernel interface)",
		[]string{"keyctl", "add_key", "request_key"}},
	{"loading a new kernel or kernel modules",
		[]string{"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
			"create_module", "get_kernel_syms", "query_module"}},
	{"eBPF, perf events and userfaultfd: large kernel attack surfaces, the source of many privilege escalations; userfaultfd also makes kernel races easy to win",
		[]string{"bpf", "perf_event_open", "userfaultfd", "lookup_dcookie"}},
	{"file handles bypass path-based checks: open_by_handle_at can open any file of a mounted file system (the 'shocker' container escape); name_to_handle_at is its pair",
		[]string{"open_by_handle_at", "name_to_handle_at"}},
	{"host-wide settings: process accounting, swap, reboot (from the sandbox's PID namespace it would kill the whole sandbox)",
		[]string{"acct", "swapon", "swapoff", "reboot"}},
	{"the system clock is not namespaced (time namespaces only offset the monotonic and boot clocks); the *64 variants are i386's",
		[]string{"settimeofday", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64", "adjtimex", "stime"}},
	{"raw I/O port access and the i386 virtual-8086 mode",
		[]string{"iopl", "ioperm", "vm86", "vm86old"}},
	{"obsolete interfaces nothing current uses, kept out as attack surface",
		[]string{"nfsservctl", "uselib", "ustat", "sysfs", "_sysctl"}},
	{"disk quotas are host-wide",
		[]string{"quotactl", "quotactl_fd"}},
	{"kcmp compares kernel objects of other processes (and leaks their order)",
		[]string{"kcmp"}},
	{"the kernel log is the host's",
		[]string{"syslog"}},
	{"fanotify watches whole mounts or file systems; Linux Security Module attributes are not for the payload to change",
		[]string{"fanotify_init", "lsm_set_self_attr"}},
	{"the mount table is built by the sandbox before the payload starts and stays as it is: no mount, unmount, pivot_root, nor the new mount API (chroot stays allowed: without mount it cannot reach anything new)",
		[]string{"mount", "umount", "umount2", "pivot_root",
			"fsopen", "fsconfig", "fsmount", "fspick", "open_tree", "open_tree_attr", "move_mount", "mount_setattr"}},
}

// mountCalls names the defaultDenied entry of the mount calls.
const mountCalls = "mount"

// defaultNotBuilt are denied with ENOSYS, the answer of a kernel built
// without them, which programs take as "use the fallback" (libuv, Tokio
// and liburing users fall back to epoll and thread pools). io_uring runs
// its operations (open, read, connect, ...) from a kernel context that
// seccomp never sees, so it could step around any argument rule, and it
// has been a large source of kernel exploits: Docker (since 25.0),
// containerd 2.0 and podman deny it too.
var defaultNotBuilt = []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}

// defaultPtrace: ptrace is allowed by default. The sandbox has its own PID
// namespace, so the payload can only trace its own processes, which it
// could as well run under its own control; builds and tests need strace
// and gdb. Since Linux 4.8 a traced process can no longer bypass seccomp
// (the filter runs again after the tracer changes a system call), which
// is why Docker allows it on such kernels. process_vm_readv and
// process_vm_writev need the same permission as ptrace (and strace uses
// them), kcmp stays denied above.
var defaultPtrace = []string{"ptrace", "process_vm_readv", "process_vm_writev"}

// defaultNestedUserns are denied unless DefaultOptions.AllowNestedUserns:
// a new user namespace gives the payload every capability again over new
// namespaces, which opens much kernel code (mount of some file systems,
// netfilter, ...) that is otherwise out of an unprivileged user's reach.
var defaultNestedUserns = []string{"setns"}

// dockerPersonalities are the personality(2) values Docker allows: Linux
// (0x0), PER_LINUX32 (0x8), UNAME26 (0x20000), PER_LINUX32|UNAME26 and the
// query 0xffffffff. Others (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ...)
// weaken the payload's own exploit mitigations.
var dockerPersonalities = []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// Default returns the sandbox's default profile. Its default action is
// SCMP_ACT_ALLOW; see the lists in default.go for what it denies and why.
func Default(opts DefaultOptions) *Profile {
	eperm := uint(errnoEPERM)
	enosys := uint(errnoENOSYS)
	p := &Profile{
		DefaultAction: ActAllow,
		// Every architecture with a table: Compile keeps those the native
		// one's kernel can report (x86_64 and i386; aarch64 and arm; ...).
		Architectures: make([]Arch, 0, len(archInfos)),
	}
	for _, ai := range archInfos {
		p.Architectures = append(p.Architectures, ai.arch)
	}
	deny := func(comment string, names []string, args ...Arg) {
		p.Syscalls = append(p.Syscalls, Syscall{
			Names:    names,
			Action:   ActErrno,
			ErrnoRet: &eperm,
			Args:     args,
			Comment:  comment,
		})
	}
	for _, d := range defaultDenied {
		if opts.AllowNestedUserns && d.names[0] == mountCalls {
			// A nested sandbox or container mounts in the mount namespace
			// of its own user namespace; the kernel lets nothing there
			// change the sandbox's mounts, which come in locked. Without
			// CAP_SYS_ADMIN in the sandbox's own namespace the payload can
			// mount nowhere else; with it, mounts stay denied.
			p.Syscalls = append(p.Syscalls, Syscall{
				Names: d.names, Action: ActErrno, ErrnoRet: &eperm, Comment: d.why,
				Includes: &Filter{Caps: []string{"CAP_SYS_ADMIN"}},
			})
			continue
		}
		deny(d.why, d.names)
	}
	p.Syscalls = append(p.Syscalls, Syscall{
		Names:    defaultNotBuilt,
		Action:   ActErrno,
		ErrnoRet: &enosys,
		Comment:  "io_uring: operations invisible to seccomp, large attack surface; ENOSYS makes callers fall back",
	})
	if opts.DenyPtrace {
		deny("DefaultOptions.DenyPtrace", defaultPtrace)
	}

	// personality: EPERM unless the argument is one of Docker's values
	// (all conditions of a rule must hold: arg0 differs from each).
	var notListed []Arg
	for _, v := range dockerPersonalities {
		notListed = append(notListed, Arg{Index: 0, Value: v, Op: OpNotEqual})
	}
	deny("personality: only the values Docker allows", []string{"personality"}, notListed...)

	// ioctl: TIOCSTI types into the terminal the sandbox shares with the
	// user, whose shell runs the input after the sandbox exits; TIOCLINUX
	// can do the same through a virtual console's selection. The request
	// is an unsigned int: the kernel ignores the upper half of the
	// register, so only the lower 32 bits are compared.
	for _, req := range []uint64{ioctlTIOCSTI, ioctlTIOCLNX} {
		deny("ioctl: TIOCSTI and TIOCLINUX inject terminal input", []string{"ioctl"},
			Arg{Index: 1, Value: 0xffffffff, ValueTwo: req, Op: OpMaskedEqual})
	}

	if !opts.AllowNestedUserns {
		deny("setns: joining other namespaces", defaultNestedUserns)
		// unshare(flags), and clone(flags, ...) everywhere but on s390x,
		// whose clone takes (stack, flags, ...) (CLONE_BACKWARDS2).
		newUser := func(idx uint) Arg {
			return Arg{Index: idx, Value: cloneNewUser, ValueTwo: cloneNewUser, Op: OpMaskedEqual}
		}
		const why = "unshare and clone with CLONE_NEWUSER: no nested user namespace"
		deny(why, []string{"unshare"}, newUser(0))
		deny(why, []string{"clone"}, newUser(0))
		p.Syscalls[len(p.Syscalls)-1].Excludes = &Filter{Arches: []string{"s390x"}}
		deny(why, []string{"clone"}, newUser(1))
		p.Syscalls[len(p.Syscalls)-1].Includes = &Filter{Arches: []string{"s390x"}}
		// clone3 passes its flags in memory, which a filter cannot read:
		// ENOSYS makes glibc and Go fall back to clone, whose flags it
		// checks.
		p.Syscalls = append(p.Syscalls, Syscall{
			Names:    []string{"clone3"},
			Action:   ActErrno,
			ErrnoRet: &enosys,
			Comment:  "clone3: flags unreadable by the filter; ENOSYS makes callers fall back to clone",
		})
	}
	return p
}
