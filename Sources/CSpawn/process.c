#define _GNU_SOURCE
#include "cspawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int fb_socket_in_netns(int pidfd, int domain, int type) {
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) return -errno;
    if (setns(pidfd, CLONE_NEWNET) < 0) {
        int e = errno;
        close(self);
        return -e;
    }
    int s = socket(domain, type | SOCK_CLOEXEC, 0);
    int e = errno;
    if (setns(self, CLONE_NEWNET) < 0) {
        // A thread stuck in a function's namespace must not go back to the pool.
        abort();
    }
    close(self);
    return s < 0 ? -e : s;
}

int fb_netns_create(void) {
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) return -errno;
    int ns = -1;
    int e = 0;
    if (unshare(CLONE_NEWNET) < 0) {
        e = errno;
        close(self);
        return -e;
    }
    ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (ns < 0) e = errno;
    else if (fb_loopback_up() < 0) {
        e = errno;
        close(ns);
        ns = -1;
    }
    if (setns(self, CLONE_NEWNET) < 0) abort();  // a thread stuck in a function's namespace must not go back to the pool
    close(self);
    return ns < 0 ? -e : ns;
}

int fb_waitid_pidfd(int pidfd, int options, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc;
    do { rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, options); } while (rc < 0 && errno == EINTR);
    if (rc < 0) return -errno;
    *code = info.si_code;
    *status = info.si_status;
    return info.si_pid == 0 ? 1 : 0;
}

int fb_pidfd_send_signal(int pidfd, int sig) {
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

static int userns_helper(void *arg) {
    const int *sync = arg;
    close(sync[1]);  // its copy of the write end: EOF comes when the parent closes its own
    char byte;
    while (read(sync[0], &byte, 1) < 0 && errno == EINTR) {}
    _exit(0);
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = w == (ssize_t)n ? 0 : (w < 0 ? errno : EIO);
    close(fd);
    return -e;
}

int fb_userns_create(const char *map_line) {
    int sync[2];
    if (pipe2(sync, O_CLOEXEC) < 0) return -errno;
    size_t stack_size = 64 * 1024;
    char *stack = malloc(stack_size);
    if (!stack) {
        close(sync[0]);
        close(sync[1]);
        return -ENOMEM;
    }
    int fds[2] = {sync[0], sync[1]};
    pid_t pid = clone(userns_helper, stack + stack_size, CLONE_VM | CLONE_NEWUSER | SIGCHLD, fds);
    int e = pid < 0 ? errno : 0;
    int ns = -1;
    if (pid > 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
        int rc = write_file(path, map_line);
        if (rc == 0) {
            snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
            rc = write_file(path, map_line);
        }
        if (rc == 0) {
            snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
            ns = open(path, O_RDONLY | O_CLOEXEC);
            if (ns < 0) rc = -errno;
        }
        e = -rc;
        close(sync[1]);
        sync[1] = -1;
        while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR) {}
    }
    close(sync[0]);
    if (sync[1] >= 0) close(sync[1]);
    free(stack);
    return ns >= 0 ? ns : -e;
}
