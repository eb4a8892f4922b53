// Command sandbox-stage is init's stage (see package holder and
// userns.startStaged): a small static C program, embedded in sandbox and
// run from a sealed memfd, single-threaded because setns(CLONE_NEWUSER) is
// refused to a process with more threads (so it cannot be Go). Asked by
// SANDBOX_STAGE, it joins the holder's user namespace and checks that
// namespace's maps (or, with "-" for the holder's fd, stays in the
// caller's, for maps the caller may write itself: its own ids alone, or
// any as root), creates the sandbox's namespaces with init as the
// caller's own child (CLONE_PARENT: in its cgroup, with its confinement,
// rlimits and fds), writes init's maps (it is root of the holder's
// namespace, the parent of init's; or it has the caller's credentials,
// denying setgroups first when asked, as the kernel requires of a writer
// without CAP_SETGID there; or, given none without a holder, leaves them
// to the caller's newuidmap and newgidmap), makes the sandbox's tap when asked
// (SANDBOX_STAGE_TAP: persistent, in init's network namespace, for
// slirp4netns to attach to before init is even running), reports init's
// pid once init's exec succeeded, and exits. The child executes init from
// init's memfd (execveat, AT_EMPTY_PATH) with argv[1..] and the
// environment without the stage's variables; nothing of the stage (the
// holder's namespace, the report pipe, init's memfd) stays open in it.
//
// It has no C library (-nostdlib -ffreestanding; system calls for amd64
// and arm64 below): a static glibc's start alone costs ~1 ms per run on
// the machines this was measured on, as much as the rest of the stage.

#include <asm/unistd.h>
#include <asm/errno.h>
#include <linux/capability.h>
#include <linux/fcntl.h>
#include <linux/ioctl.h>
#include <linux/if_tun.h>
#include <linux/prctl.h>
#include <linux/sched.h>

#define SIGKILL 9
#define SIGCHLD 17

#define STAGE_ENV "SANDBOX_STAGE"
#define UIDMAP_ENV "SANDBOX_STAGE_UIDMAP"
#define GIDMAP_ENV "SANDBOX_STAGE_GIDMAP"
#define HOLDER_UIDMAP_ENV "SANDBOX_STAGE_HOLDER_UIDMAP"
#define HOLDER_GIDMAP_ENV "SANDBOX_STAGE_HOLDER_GIDMAP"
#define TAP_ENV "SANDBOX_STAGE_TAP"
#define SETGROUPS_ENV "SANDBOX_STAGE_SETGROUPS"

// At most this many numbers in a map (the kernel allows 340 lines of 3).
#define MAX_NUMS (340 * 3)
// At most this many variables in init's environment (sandbox gives it a few).
#define MAX_ENV 1024

typedef unsigned long size_t;

// ------------------------------------------------------------ system calls

#if defined(__x86_64__)
static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
// The kernel starts us with argc at the stack pointer, argv and envp above.
__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	xor %rbp, %rbp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call stage_main\n"
	"	hlt\n");
#elif defined(__aarch64__)
static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
}
__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	mov x29, #0\n"
	"	mov x30, #0\n"
	"	mov x0, sp\n"
	"	bl stage_main\n"
	"	brk #0\n");
#else
#error "sandbox-stage: system calls for this architecture are not written (scripts/build.sh then embeds no stage)"
#endif

#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

// The compiler may call these for plain assignments and loops.
void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

static __attribute__((noreturn)) void sys_exit(int code)
{
	for (;;)
		sys1(__NR_exit_group, code);
}

static long write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		long w = sys3(__NR_write, fd, s, n);
		if (w == -EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? w : -EIO;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

// ------------------------------------------------------------------ strings

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

// prefix says whether s starts with p.
static int prefix(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return 1;
}

// buf is a bounded string being built.
struct buf {
	char s[1024];
	size_t n;
};

static void put(struct buf *b, const char *s)
{
	while (*s && b->n < sizeof b->s - 2)
		b->s[b->n++] = *s++;
	b->s[b->n] = 0;
}

static void put_num(struct buf *b, long v)
{
	char d[24];
	int i = sizeof d - 1;
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
	d[i] = 0;
	do
		d[--i] = (char)('0' + u % 10);
	while ((u /= 10) && i > 1);
	if (v < 0)
		d[--i] = '-';
	put(b, d + i);
}

static const char *get_env(char **envp, const char *name)
{
	size_t n = slen(name);
	for (; *envp; envp++)
		if (prefix(*envp, name) && (*envp)[n] == '=')
			return *envp + n + 1;
	return 0;
}

// num reads a decimal number of at most max at *s, advancing *s; -1 if none.
static long num(const char **s, unsigned long max)
{
	const char *p = *s;
	unsigned long v = 0;
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (unsigned long)(*p++ - '0');
		if (v > max)
			return -1;
	}
	*s = p;
	return (long)v;
}

// ------------------------------------------------------------------ report

static int report_fd = -1;

static void report(const struct buf *b)
{
	if (report_fd < 0)
		return;
	char line[sizeof b->s];
	size_t n = b->n;
	memcpy(line, b->s, n);
	line[n++] = '\n';
	write_all(report_fd, line, n);
}

// fail reports why nothing was started (or pid, killed, was) and exits:
// "fail PID what: errno N" (userns.readStage reads the errno).
static __attribute__((noreturn)) void fail(long pid, const char *what, long err)
{
	if (pid > 0)
		sys2(__NR_kill, pid, SIGKILL);
	struct buf b = {.n = 0};
	put(&b, "fail ");
	put_num(&b, pid);
	put(&b, " ");
	put(&b, what);
	put(&b, ": errno ");
	put_num(&b, err < 0 ? -err : err);
	report(&b);
	sys_exit(1);
}

// usage says on stderr that the stage was not started as sandbox starts it.
static __attribute__((noreturn)) void usage(const char *why)
{
	struct buf b = {.n = 0};
	put(&b, "sandbox-stage: ");
	put(&b, why);
	put(&b, "\n");
	write_all(2, b.s, b.n);
	sys_exit(125);
}

// -------------------------------------------------------------------- maps

// parse_map reads the numbers of a uid_map/gid_map text into v; it returns
// how many, or -1 if the text is not lines of three numbers.
static int parse_map(const char *s, unsigned long *v)
{
	int n = 0;
	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (!*s)
			break;
		if (n == MAX_NUMS)
			return -1;
		long x = num(&s, 0xffffffffUL);
		if (x < 0)
			return -1;
		v[n++] = (unsigned long)x;
	}
	return n % 3 == 0 ? n : -1;
}

// same_map says whether the map in file path has exactly the lines of want.
static int same_map(const char *path, const char *want)
{
	static char text[16384];
	static unsigned long a[MAX_NUMS], b[MAX_NUMS];
	long fd = sys3(__NR_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	long n = sys3(__NR_read, fd, text, sizeof text - 1);
	sys1(__NR_close, fd);
	if (n <= 0)
		return 0;
	text[n] = 0;
	int na = parse_map(text, a), nb = parse_map(want, b);
	if (na <= 0 || na != nb)
		return 0;
	for (int i = 0; i < na; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

// write_map writes text to /proc/PID/name in one write, as the kernel
// requires; it returns 0 or -errno.
static long write_map(long pid, const char *name, const char *text)
{
	struct buf path = {.n = 0};
	put(&path, "/proc/");
	put_num(&path, pid);
	put(&path, "/");
	put(&path, name);
	long fd = sys3(__NR_openat, AT_FDCWD, path.s, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fd;
	size_t len = slen(text);
	long w = sys3(__NR_write, fd, text, len);
	sys1(__NR_close, fd);
	if (w < 0)
		return w;
	return w == (long)len ? 0 : -EIO;
}

// join enters pid's namespace of type (its name in /proc/PID/ns); it
// returns 0 or -errno.
static long join(long pid, const char *name, long type)
{
	struct buf path = {.n = 0};
	put(&path, "/proc/");
	put_num(&path, pid);
	put(&path, "/ns/");
	put(&path, name);
	long ns = sys3(__NR_openat, AT_FDCWD, path.s, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		return ns;
	long r = sys2(__NR_setns, ns, type);
	sys1(__NR_close, ns);
	return r;
}

// make_tap creates the persistent tap name in the network namespace of
// pid (after its maps, so that the device's files in /sys belong to root
// inside); it returns 0 or -errno. Joining that namespace takes
// CAP_SYS_ADMIN over it and over our own user namespace: the stage has
// both as root of the holder's namespace, which owns init's; without a
// holder it first joins init's user namespace, which it owns (the last
// thing it does there: it only reports after).
static long make_tap(long pid, const char *name, int holder)
{
	long r;
	if (!holder && (r = join(pid, "user", CLONE_NEWUSER)) != 0)
		return r;
	if ((r = join(pid, "net", CLONE_NEWNET)) != 0)
		return r;
	long fd = sys3(__NR_openat, AT_FDCWD, "/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fd;
	// struct ifreq: the name in its first 16 bytes, the flags after.
	union {
		char b[40];
		struct {
			char name[16];
			short flags;
		} f;
	} ifr = {.b = {0}};
	size_t n = slen(name);
	if (n >= sizeof ifr.f.name) {
		sys1(__NR_close, fd);
		return -EINVAL;
	}
	memcpy(ifr.f.name, name, n);
	ifr.f.flags = IFF_TAP | IFF_NO_PI;
	r = sys3(__NR_ioctl, fd, TUNSETIFF, &ifr);
	if (r == 0)
		r = sys3(__NR_ioctl, fd, TUNSETPERSIST, 1);
	sys1(__NR_close, fd);
	return r;
}

// -------------------------------------------------------------------- init

// ambient keeps capabilities 0..last across init's exec, as the caller's
// AmbientCaps does for an init it starts itself.
static void ambient(long last)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	if (sys2(__NR_capget, &h, d) != 0)
		return;
	d[0].inheritable = d[0].permitted;
	d[1].inheritable = d[1].permitted;
	if (sys2(__NR_capset, &h, d) != 0)
		return;
	for (long c = 0; c <= last && c < 64; c++)
		sys5(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
}

// exec_init is the child's part: it becomes init, or writes why not (an
// errno) on fd errw and exits.
static __attribute__((noreturn)) void exec_init(long init_fd, long errw, long last_cap, char **argv, char **envp)
{
	static char *env[MAX_ENV + 1];
	size_t k = 0;
	int err;
	// Its parent is the caller's thread that started the stage; the
	// signal survives the exec (same credentials, no set-id file).
	long r = sys2(__NR_prctl, PR_SET_PDEATHSIG, SIGKILL);
	if (r != 0)
		goto out;
	sys0(__NR_setsid);
	ambient(last_cap);
	// The environment without the stage's variables.
	for (; *envp; envp++) {
		if (prefix(*envp, STAGE_ENV) && ((*envp)[slen(STAGE_ENV)] == '=' || (*envp)[slen(STAGE_ENV)] == '_'))
			continue;
		if (k == MAX_ENV) {
			r = -E2BIG;
			goto out;
		}
		env[k++] = *envp;
	}
	env[k] = 0;
	// Nothing of the stage crosses the exec: init's memfd is close-on-exec
	// too (execveat reads it before closing it).
	r = sys3(__NR_fcntl, init_fd, F_SETFD, FD_CLOEXEC);
	if (r != 0)
		goto out;
	r = sys5(__NR_execveat, init_fd, "", argv, env, AT_EMPTY_PATH);
out:
	err = (int)-r;
	write_all(errw, (const char *)&err, sizeof err);
	sys_exit(127);
}

// fd_arg reads an fd the caller passed (above stdio, open) at *s.
static long fd_arg(const char **s)
{
	long fd = num(s, 1 << 30);
	if (fd < 3 || sys2(__NR_fcntl, fd, F_GETFD) < 0)
		return -1;
	return fd;
}

__attribute__((used, noreturn)) void stage_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1), **envp = argv + argc + 1;
	const char *stage = get_env(envp, STAGE_ENV);
	if (!stage || argc < 2)
		usage("only sandbox runs this (" STAGE_ENV " and init's argv are missing)");
	// "NSFD REPORTFD INITFD FLAGS LASTCAP"; NSFD "-": no holder.
	const char *p = stage;
	int holder = *p != '-';
	long ns_fd = holder ? fd_arg(&p) : (p++, -1), rep_fd = -1, init_fd = -1, flags = -1, last_cap = -1;
	if ((ns_fd >= 0 || !holder) && *p++ == ' ')
		rep_fd = fd_arg(&p);
	if (rep_fd >= 0 && *p++ == ' ')
		init_fd = fd_arg(&p);
	if (init_fd >= 0 && *p++ == ' ')
		flags = num(&p, 0xffffffffUL);
	if (flags >= 0 && *p++ == ' ')
		last_cap = num(&p, 63);
	if (last_cap < 0 || *p)
		usage(STAGE_ENV " is not \"NSFD REPORTFD INITFD FLAGS LASTCAP\" with open fds (NSFD may be -)");
	report_fd = (int)rep_fd;
	// Neither crosses any exec (the child closes them before its own).
	if (holder)
		sys3(__NR_fcntl, ns_fd, F_SETFD, FD_CLOEXEC);
	sys3(__NR_fcntl, report_fd, F_SETFD, FD_CLOEXEC);
	const char *uid_map = get_env(envp, UIDMAP_ENV), *gid_map = get_env(envp, GIDMAP_ENV);
	if (!uid_map || !gid_map)
		fail(0, "the stage's maps are missing", EINVAL);
	// Both empty, without a holder: the caller has the helpers
	// (newuidmap, newgidmap) write them once it knows init's pid; init
	// waits for its configuration, which follows them. Never with a
	// holder, whose namespace the maps must come from.
	int caller_maps = !*uid_map && !*gid_map;
	if (caller_maps && holder)
		fail(0, "the stage's maps are missing", EINVAL);
	const char *setgroups = get_env(envp, SETGROUPS_ENV), *tap = get_env(envp, TAP_ENV);
	// setgroups stays as newgidmap needs it; a tap is made in a mapped
	// namespace only.
	if (caller_maps && ((setgroups && *setgroups) || (tap && *tap)))
		fail(0, "setgroups and a tap are for maps the stage writes", EINVAL);
	long r;
	if (holder) {
		const char *holder_uid = get_env(envp, HOLDER_UIDMAP_ENV), *holder_gid = get_env(envp, HOLDER_GIDMAP_ENV);
		if (!holder_uid || !holder_gid)
			fail(0, "the stage's maps are missing", EINVAL);
		r = sys2(__NR_setns, ns_fd, CLONE_NEWUSER);
		if (r != 0)
			fail(0, "joining the holder's user namespace", r);
		// The holder's word checked against the kernel's.
		if (!same_map("/proc/self/uid_map", holder_uid) || !same_map("/proc/self/gid_map", holder_gid))
			fail(0, "the holder's namespace does not have the maps it claimed", EPERM);
	}
	// The child's exec failure comes back on this pipe; a successful exec
	// closes the child's end (close-on-exec).
	int errp[2];
	r = sys2(__NR_pipe2, errp, O_CLOEXEC);
	if (r != 0)
		fail(0, "a pipe for init's exec", r);
	// Fork-like (no new stack: the child runs on its copy of this one);
	// CLONE_PARENT makes init the caller's child, not ours.
	long pid = sys5(__NR_clone, ((unsigned long)flags & ~0xffUL) | CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		fail(0, "creating the sandbox's namespaces", pid);
	if (pid == 0) {
		// init: the holder's namespace and the report are not its own.
		if (holder)
			sys1(__NR_close, ns_fd);
		sys1(__NR_close, report_fd);
		sys1(__NR_close, errp[0]);
		exec_init(init_fd, errp[1], last_cap, argv + 1, envp);
	}
	sys1(__NR_close, errp[1]);
	// As newgidmap does for a caller with CAP_SETGID over the parent
	// namespace, setgroups stays allowed; a writer without it must deny
	// it first (a kernel before 3.19 has neither the file nor the rule).
	if (!caller_maps) {
		if (setgroups && *setgroups && (r = write_map(pid, "setgroups", setgroups)) != 0 && r != -ENOENT)
			fail(pid, "denying setgroups", r);
		if ((r = write_map(pid, "uid_map", uid_map)) != 0)
			fail(pid, "writing the uid map", r);
		if ((r = write_map(pid, "gid_map", gid_map)) != 0)
			fail(pid, "writing the gid map", r);
		if (tap && *tap && (r = make_tap(pid, tap, holder)) != 0)
			fail(pid, "creating the network interface", r);
	}
	int err;
	long n;
	do
		n = sys3(__NR_read, errp[0], &err, sizeof err);
	while (n == -EINTR);
	if (n != 0)
		fail(pid, "starting init from its memfd", n == (long)sizeof err ? err : EIO);
	struct buf ok = {.n = 0};
	put(&ok, "ok ");
	put_num(&ok, pid);
	report(&ok);
	sys_exit(0);
}
