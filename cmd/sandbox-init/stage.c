//go:build linux && cgo

// The holder stage of sandbox-init (see package holder and userns.Start):
// it runs before the Go runtime starts, while the process has one thread,
// because setns(CLONE_NEWUSER) is refused to a process with more. Asked by
// SANDBOX_INIT_STAGE, it joins the holder's user namespace, checks that
// namespace's maps, creates the sandbox's namespaces with init as the
// caller's own child (CLONE_PARENT: in its cgroup, with its confinement,
// rlimits and fds), writes init's maps (it is root of the holder's
// namespace, the parent of init's), reports init's pid and exits. Init
// returns from here into the Go runtime.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#define STAGE_ENV "SANDBOX_INIT_STAGE"
#define UIDMAP_ENV "SANDBOX_INIT_UIDMAP"
#define GIDMAP_ENV "SANDBOX_INIT_GIDMAP"
#define HOLDER_UIDMAP_ENV "SANDBOX_INIT_HOLDER_UIDMAP"
#define HOLDER_GIDMAP_ENV "SANDBOX_INIT_HOLDER_GIDMAP"

// At most this many numbers in a map (the kernel allows 340 lines of 3).
#define MAX_NUMS (340 * 3)

static int report_fd = -1;

// report writes one line for the parent: "ok PID" or "fail PID why".
static void report(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	if (report_fd >= 0) {
		ssize_t w;
		do
			w = write(report_fd, buf, n);
		while (w < 0 && errno == EINTR);
	}
}

// fail reports why nothing was started (or pid, killed, was) and exits.
static void fail(int pid, const char *what, int err)
{
	if (pid > 0)
		kill(pid, SIGKILL);
	report("fail %d %s: %s", pid, what, strerror(err));
	_exit(1);
}

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
		if (*s < '0' || *s > '9' || n == MAX_NUMS)
			return -1;
		char *end;
		errno = 0;
		unsigned long x = strtoul(s, &end, 10);
		if (errno || x > 0xffffffffUL)
			return -1;
		v[n++] = x;
		s = end;
	}
	return n % 3 == 0 ? n : -1;
}

// same_map says whether the map in file path has exactly the lines of want.
static int same_map(const char *path, const char *want)
{
	static char buf[16384];
	static unsigned long a[MAX_NUMS], b[MAX_NUMS];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	int na = parse_map(buf, a), nb = parse_map(want, b);
	if (na <= 0 || na != nb)
		return 0;
	return memcmp(a, b, na * sizeof a[0]) == 0;
}

// write_map writes text to /proc/PID/name in one write, as the kernel requires.
static int write_map(int pid, const char *name, const char *text)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/%s", pid, name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = strlen(text);
	ssize_t w = write(fd, text, len);
	int err = errno;
	close(fd);
	if (w != (ssize_t)len) {
		errno = w < 0 ? err : EIO;
		return -1;
	}
	return 0;
}

// ambient keeps capabilities 0..last across init's execs, as the
// caller's AmbientCaps did for an init it started itself.
static void ambient(int last)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) != 0)
		return;
	d[0].inheritable = d[0].permitted;
	d[1].inheritable = d[1].permitted;
	if (syscall(SYS_capset, &h, d) != 0)
		return;
	for (int c = 0; c <= last && c < 64; c++)
		prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
}

// holder_fds: the holder (argv[0] "sandbox-holder", package holder) keeps
// no fd its starter had open without close-on-exec: only stdio, which is
// /dev/null. Done here, before the Go runtime opens its own.
static void holder_fds(const char *arg0)
{
	const char *base = strrchr(arg0, '/');
	base = base ? base + 1 : arg0;
	if (strcmp(base, "sandbox-holder") == 0 || strcmp(base, "sandbox-holder-pin") == 0)
		syscall(SYS_close_range, 3U, ~0U, 0U);
}

__attribute__((constructor)) static void sandbox_init_stage(int argc, char **argv, char **envp)
{
	(void)envp;
	if (argc > 0 && argv && argv[0])
		holder_fds(argv[0]);
	const char *stage = getenv(STAGE_ENV);
	if (!stage)
		return;
	int ns_fd, last_cap;
	unsigned long flags;
	if (sscanf(stage, "%d %d %lu %d", &ns_fd, &report_fd, &flags, &last_cap) != 4) {
		report_fd = -1;
		fprintf(stderr, "sandbox-init: %s=%s is not \"NSFD REPORTFD FLAGS LASTCAP\"\n", STAGE_ENV, stage);
		_exit(125);
	}
	const char *uid_map = getenv(UIDMAP_ENV), *gid_map = getenv(GIDMAP_ENV);
	const char *holder_uid = getenv(HOLDER_UIDMAP_ENV), *holder_gid = getenv(HOLDER_GIDMAP_ENV);
	if (!uid_map || !gid_map || !holder_uid || !holder_gid)
		fail(0, "the stage's maps are missing", EINVAL);
	if (setns(ns_fd, CLONE_NEWUSER) != 0)
		fail(0, "joining the holder's user namespace", errno);
	// The holder's word checked against the kernel's.
	if (!same_map("/proc/self/uid_map", holder_uid) || !same_map("/proc/self/gid_map", holder_gid))
		fail(0, "the holder's namespace does not have the maps it claimed", EPERM);
	// Fork-like (no new stack: the child runs on its copy of this one);
	// CLONE_PARENT makes init the caller's child, not ours.
	long pid = syscall(SYS_clone, (flags & ~0xffUL) | CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		fail(0, "creating the sandbox's namespaces", errno);
	if (pid == 0) {
		// init: the holder's namespace and the report are not its own.
		close(ns_fd);
		close(report_fd);
		// Its parent is the caller's thread that started us.
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setsid();
		ambient(last_cap);
		unsetenv(STAGE_ENV);
		unsetenv(UIDMAP_ENV);
		unsetenv(GIDMAP_ENV);
		unsetenv(HOLDER_UIDMAP_ENV);
		unsetenv(HOLDER_GIDMAP_ENV);
		return;
	}
	// As newgidmap does for a caller with CAP_SETGID over the parent
	// namespace, setgroups stays allowed.
	if (write_map(pid, "uid_map", uid_map) != 0)
		fail(pid, "writing the uid map", errno);
	if (write_map(pid, "gid_map", gid_map) != 0)
		fail(pid, "writing the gid map", errno);
	report("ok %ld", pid);
	_exit(0);
}
