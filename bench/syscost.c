/* Per-call cost of a few syscalls, for `make bench` (bench/run.sh).
 *
 * Usage: syscost FILE
 *   FILE is opened and closed in the open+close loop (the script passes this binary's own
 *   path, which the bench profile binds and grants to Landlock).
 *
 * The same binary runs on the host and inside lasagna with seccomp and/or Landlock on or
 * off, so that the differences between runs are the cost of the layer. Each loop runs
 * REPS times; the best (lowest) ns/op is printed, one "name ns" line per loop, then a
 * "check" line per loop saying what the call returned, so that a loop the filter denied
 * (EPERM: a cheap refusal, not the real call) is never mistaken for a fast one.
 *
 * Loops:
 *   getppid        allow-listed, no argument checks (seccomp's constant-action cache)
 *   ioctl_fionread ioctl(pipe, FIONREAD): allowed after the cmd checks (TIOCSTI, TIOCLINUX)
 *   clone_einval   clone(CLONE_SIGHAND) without CLONE_VM: EINVAL from the kernel after the
 *                  filter's CLONE_NEW* flag check, so no process is created
 *   socket_einval  socket(AF_UNIX, type 15): EINVAL from the kernel after the filter's
 *                  family (and protocol) checks: the filter's cost without socket's own
 *   socket_close   socket(AF_UNIX, SOCK_DGRAM) + close: the same checks on a real socket
 *                  (two calls, about 2 us, so its filter share is within the noise)
 *   open_close     open(FILE, O_RDONLY) + close: Landlock's path walk
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define REPS 5

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int pipe_rd = -1;
static const char *file;

/* One call of each loop; returns 0 when the call did what it does without a filter. */
static int one_getppid(void) { return syscall(SYS_getppid) > 0 ? 0 : -1; }

static int one_ioctl(void)
{
    int n = 0;
    return ioctl(pipe_rd, FIONREAD, &n);
}

static int one_clone(void)
{
    long r = syscall(SYS_clone, (unsigned long)CLONE_SIGHAND, 0UL, 0UL, 0UL, 0UL);
    if (r == 0)
        _exit(0); /* cannot happen (EINVAL), but never let a child run the loop */
    return (r == -1 && errno == EINVAL) ? 0 : -1;
}

static int one_socket_einval(void)
{
    return (socket(AF_UNIX, 15, 0) == -1 && errno == EINVAL) ? 0 : -1;
}

static int one_socket(void)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    return close(fd);
}

static int one_open(void)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    return close(fd);
}

static void bench(const char *name, int (*fn)(void), long iters)
{
    errno = 0;
    if (fn() != 0) {
        printf("check %s FAILED: %s\n", name, strerror(errno));
        return;
    }
    printf("check %s ok\n", name);
    double best = 1e300;
    for (int r = 0; r < REPS; r++) {
        double t = now_ns();
        for (long i = 0; i < iters; i++)
            fn();
        double ns = (now_ns() - t) / (double)iters;
        if (ns < best)
            best = ns;
    }
    printf("%s %.1f\n", name, best);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    file = argv[1];
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        return 1;
    }
    pipe_rd = p[0];
    bench("getppid", one_getppid, 300000);
    bench("ioctl_fionread", one_ioctl, 300000);
    bench("clone_einval", one_clone, 200000);
    bench("socket_einval", one_socket_einval, 300000);
    bench("socket_close", one_socket, 50000);
    bench("open_close", one_open, 50000);
    return 0;
}
