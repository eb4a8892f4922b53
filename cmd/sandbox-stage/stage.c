// Command sandbox-stage is the holder stage (see package holder and
// userns.startStaged): a small static C program, embedded in sandbox and
// run from a sealed memfd, single-threaded because setns(CLONE_NEWUSER) is
// refused to a process with more threads (so it cannot be Go). Asked by
// SANDBOX_STAGE, it joins the holder's user namespace, checks that
// namespace's maps, creates the sandbox's namespaces with init as the
// caller's own child (CLONE_PARENT: in its cgroup, with its confinement,
// rlimits and fds), writes init's maps (it is root of the holder's
// namespace, the parent of init's), reports init's pid and exits. The
// child executes init from init's memfd (execveat, AT_EMPTY_PATH) with
// argv[1..] and the environment without the stage's variables; nothing of
// the stage (the holder's namespace, the report pipe, init's memfd) stays
// open in it.

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

#define STAGE_ENV "SANDBOX_STAGE"
#define UIDMAP_ENV "SANDBOX_STAGE_UIDMAP"
#define GIDMAP_ENV "SANDBOX_STAGE_GIDMAP"
#define HOLDER_UIDMAP_ENV "SANDBOX_STAGE_HOLDER_UIDMAP"
#define HOLDER_GIDMAP_ENV "SANDBOX_STAGE_HOLDER_GIDMAP"

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

// ambient keeps capabilities 0..last across init's exec, as the caller's
// AmbientCaps does for an init it starts itself.
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

// init_env is envp without the stage's variables (SANDBOX_STAGE and
// SANDBOX_STAGE_*), or NULL if there is no memory for it.
static char **init_env(char **envp)
{
	size_t n = 0;
	while (envp[n])
		n++;
	char **env = calloc(n + 1, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	const size_t len = strlen(STAGE_ENV);
	for (size_t i = 0; i < n; i++) {
		if (strncmp(envp[i], STAGE_ENV, len) == 0 && (envp[i][len] == '=' || envp[i][len] == '_'))
			continue;
		env[k++] = envp[i];
	}
	return env;
}

// exec_init is the child's part: it becomes init, or writes why not
// (an errno) on fd errw and exits.
static void exec_init(int init_fd, int errw, int last_cap, char **argv, char **envp)
{
	int err;
	// Its parent is the caller's thread that started the stage; the
	// signal survives the exec (same credentials, no set-id file).
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
		err = errno;
		goto out;
	}
	setsid();
	ambient(last_cap);
	char **env = init_env(envp);
	if (!env) {
		err = ENOMEM;
		goto out;
	}
	// Nothing of the stage crosses the exec: init's memfd is close-on-exec
	// too (execveat reads it before closing it).
	if (fcntl(init_fd, F_SETFD, FD_CLOEXEC) != 0) {
		err = errno;
		goto out;
	}
	syscall(SYS_execveat, init_fd, "", argv, env, AT_EMPTY_PATH);
	err = errno;
out:
	while (write(errw, &err, sizeof err) < 0 && errno == EINTR)
		;
	_exit(127);
}

// fd_arg says whether fd is a descriptor the caller passed (above stdio).
static int fd_arg(int fd) { return fd > 2 && fcntl(fd, F_GETFD) >= 0; }

int main(int argc, char **argv, char **envp)
{
	const char *stage = getenv(STAGE_ENV);
	if (!stage || argc < 2) {
		fprintf(stderr, "sandbox-stage: only sandbox runs this (%s and init's argv are missing)\n", STAGE_ENV);
		return 125;
	}
	int ns_fd, rep_fd, init_fd, last_cap, end = 0;
	unsigned long flags;
	if (sscanf(stage, "%d %d %d %lu %d%n", &ns_fd, &rep_fd, &init_fd, &flags, &last_cap, &end) != 5 ||
	    stage[end] != 0 || !fd_arg(ns_fd) || !fd_arg(rep_fd) || !fd_arg(init_fd)) {
		fprintf(stderr, "sandbox-stage: %s=%s is not \"NSFD REPORTFD INITFD FLAGS LASTCAP\" with open fds\n",
			STAGE_ENV, stage);
		return 125;
	}
	report_fd = rep_fd;
	// Neither crosses any exec (the child closes them before its own).
	fcntl(ns_fd, F_SETFD, FD_CLOEXEC);
	fcntl(report_fd, F_SETFD, FD_CLOEXEC);
	const char *uid_map = getenv(UIDMAP_ENV), *gid_map = getenv(GIDMAP_ENV);
	const char *holder_uid = getenv(HOLDER_UIDMAP_ENV), *holder_gid = getenv(HOLDER_GIDMAP_ENV);
	if (!uid_map || !gid_map || !holder_uid || !holder_gid)
		fail(0, "the stage's maps are missing", EINVAL);
	if (setns(ns_fd, CLONE_NEWUSER) != 0)
		fail(0, "joining the holder's user namespace", errno);
	// The holder's word checked against the kernel's.
	if (!same_map("/proc/self/uid_map", holder_uid) || !same_map("/proc/self/gid_map", holder_gid))
		fail(0, "the holder's namespace does not have the maps it claimed", EPERM);
	// The child's exec failure comes back on this pipe; a successful exec
	// closes the child's end (close-on-exec).
	int errp[2];
	if (pipe2(errp, O_CLOEXEC) != 0)
		fail(0, "a pipe for init's exec", errno);
	// Fork-like (no new stack: the child runs on its copy of this one);
	// CLONE_PARENT makes init the caller's child, not ours.
	long pid = syscall(SYS_clone, (flags & ~0xffUL) | CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		fail(0, "creating the sandbox's namespaces", errno);
	if (pid == 0) {
		// init: the holder's namespace and the report are not its own.
		close(ns_fd);
		close(report_fd);
		close(errp[0]);
		exec_init(init_fd, errp[1], last_cap, argv + 1, envp);
	}
	close(errp[1]);
	// As newgidmap does for a caller with CAP_SETGID over the parent
	// namespace, setgroups stays allowed.
	if (write_map(pid, "uid_map", uid_map) != 0)
		fail(pid, "writing the uid map", errno);
	if (write_map(pid, "gid_map", gid_map) != 0)
		fail(pid, "writing the gid map", errno);
	int err;
	ssize_t n;
	do
		n = read(errp[0], &err, sizeof err);
	while (n < 0 && errno == EINTR);
	if (n != 0)
		fail(pid, "starting init from its memfd", n == (ssize_t)sizeof err ? err : EIO);
	report("ok %ld", pid);
	return 0;
}
