//go:build linux && cgo

// exec's namespace stage. It runs as a constructor, before the Go runtime
// starts its threads, because setns(CLONE_NEWUSER) is refused to a process
// with more than one thread (and setns(CLONE_NEWNS) to one that shares its
// fs with another). Asked by _SANDBOX_OCI_NSENTER=PID:START (the
// container's init and its start time), with the sync socket's fd in
// _SANDBOX_OCI_SYNC, it:
//   - writes _SANDBOX_OCI_OOM to its oom_score_adj while that file is still
//     its own to write, then turns itself non-dumpable (nothing in the
//     container may ptrace it or open its /proc files until execve);
//   - waits for the parent's go (the parent has moved it into the
//     container's cgroup, so that its child is born there);
//   - opens the init's namespaces, checks that the pid is still that init,
//     joins each one that differs from its own: user first (it then holds
//     every capability over the others), then ipc, uts, net, pid, cgroup,
//     time, mnt last;
//   - forks once with CLONE_PARENT, so that the child is inside the pid
//     namespace and a child of the exec command itself, which reaps it;
//   - reports "pid N" (the child's pid as the host sees it) and exits.
// The child returns from here into the Go runtime (execChild).

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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define NSENTER_ENV "_SANDBOX_OCI_NSENTER"
#define SYNC_ENV "_SANDBOX_OCI_SYNC"
#define OOM_ENV "_SANDBOX_OCI_OOM"

static int sync_fd = -1;

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	ssize_t w;
	do
		w = write(sync_fd, buf, n);
	while (w < 0 && errno == EINTR);
}

static void fail(const char *what, int err)
{
	say("fail %s: %s", what, strerror(err));
	_exit(1);
}

// parse_num reads a decimal number that ends at end (a char or '\0').
static int parse_num(const char *s, char end, unsigned long long *v, const char **rest)
{
	char *e;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &e, 10);
	if (errno || *e != end)
		return -1;
	if (rest)
		*rest = e;
	return 0;
}

// start_time is field 22 of /proc/PID/stat, 0 when unreadable.
static unsigned long long start_time(int pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	// The name (field 2) may hold anything: count from its last ')'.
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	// p is at the space before field 3: on to the one before field 22.
	for (int field = 3; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return 0;
	return strtoull(p + 1, NULL, 10);
}

static const struct {
	const char *name;
	int flag;
} nss[] = {
	{"user", CLONE_NEWUSER}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
	{"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID}, {"cgroup", CLONE_NEWCGROUP},
	{"time", CLONE_NEWTIME}, {"mnt", CLONE_NEWNS},
};
#define NNS (sizeof nss / sizeof nss[0])

__attribute__((constructor)) static void sandbox_oci_nsenter(void)
{
	const char *spec = getenv(NSENTER_ENV);
	if (!spec)
		return;
	const char *fds = getenv(SYNC_ENV);
	unsigned long long v;
	if (!fds || parse_num(fds, 0, &v, NULL) || v < 3 || v > 1 << 20) {
		fprintf(stderr, "sandbox-oci: exec stage: %s is not set or not a file descriptor\n", SYNC_ENV);
		_exit(1);
	}
	sync_fd = (int)v;

	const char *oom = getenv(OOM_ENV);
	if (oom && *oom) {
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			fail("process.oomScoreAdj: opening /proc/self/oom_score_adj", errno);
		if (write(fd, oom, strlen(oom)) < 0)
			fail("process.oomScoreAdj", errno);
		close(fd);
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		fail("prctl(PR_SET_DUMPABLE)", errno);

	char go;
	ssize_t r;
	do
		r = read(sync_fd, &go, 1);
	while (r < 0 && errno == EINTR);
	if (r != 1 || go != 'g')
		fail("waiting for the parent", r < 0 ? errno : EPIPE);

	const char *rest;
	unsigned long long pid, start;
	if (parse_num(spec, ':', &pid, &rest) || pid < 1 || pid > 1 << 22 ||
	    parse_num(rest + 1, 0, &start, NULL))
		fail(NSENTER_ENV " is not PID:START", EINVAL);

	// The pidfd holds the process: if it is alive after the namespaces
	// are open and its start time is the one recorded, they are its own.
	int pidfd = syscall(SYS_pidfd_open, (int)pid, 0);
	if (pidfd < 0)
		fail("the container's process is gone", errno);
	int fd[NNS];
	for (size_t i = 0; i < NNS; i++) {
		char path[64];
		struct stat theirs, ours;
		fd[i] = -1;
		snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)pid, nss[i].name);
		int f = open(path, O_RDONLY | O_CLOEXEC);
		if (f < 0) {
			if (errno == ENOENT && nss[i].flag == CLONE_NEWTIME)
				continue; // a kernel without time namespaces
			fail(path, errno);
		}
		snprintf(path, sizeof path, "/proc/self/ns/%s", nss[i].name);
		if (fstat(f, &theirs) == 0 && stat(path, &ours) == 0 &&
		    theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino) {
			close(f);
			continue;
		}
		fd[i] = f;
	}
	if (start_time((int)pid) != start || syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0))
		fail("the container's process is gone", ESRCH);
	close(pidfd);
	for (size_t i = 0; i < NNS; i++) {
		if (fd[i] < 0)
			continue;
		if (setns(fd[i], nss[i].flag)) {
			char what[64];
			snprintf(what, sizeof what, "joining the container's %s namespace", nss[i].name);
			fail(what, errno);
		}
		close(fd[i]);
	}

	// The child of our parent, born in the joined pid namespace.
	long child = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (child < 0)
		fail("fork into the container", errno);
	if (child == 0)
		return; // on into the Go runtime, inside every namespace
	say("pid %ld", child);
	_exit(0);
}
