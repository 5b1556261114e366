// The child side of a sandbox spawn. It runs after clone(CLONE_VM | CLONE_VFORK), like posix_spawn: on a
// stack of its own, sharing faasbox's memory (no page tables copied) while faasbox's calling thread waits
// for the exec. So: only async-signal-safe calls, no malloc, no stdio, no locks, and no writes to any
// memory but its own stack.
#define _GNU_SOURCE
#include "cspawn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

static void report_and_exit(int fd, int stage, int err) {
    struct fb_report r = {.stage = stage, .err = err};
    ssize_t n;
    do { n = write(fd, &r, sizeof r); } while (n < 0 && errno == EINTR);
    _exit(127);
}

#define CHECK(stage, expr)                                  \
    do {                                                    \
        if ((expr) < 0) report_and_exit(report_fd, (stage), errno); \
    } while (0)

static int write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int fb_loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) { close(s); return -1; }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    int rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    int e = errno;
    close(s);
    errno = e;
    return rc;
}

static int do_pivot(const char *root) {
    if (chdir(root) < 0) return -1;
    if (syscall(SYS_pivot_root, ".", ".") < 0) return -1;
    if (umount2(".", MNT_DETACH) < 0) return -1;
    return chdir("/");
}

static int mask_path(const char *path) {
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -1;
    if (S_ISDIR(st.st_mode))
        return mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,nr_inodes=1");
    return mount("/dev/null", path, NULL, MS_BIND, NULL);
}

static int run_step(const struct fb_step *s) {
    int fd;
    switch (s->op) {
    case FB_OP_MOUNT:
        return mount(s->a, s->b, s->fstype, s->flags, s->data);
    case FB_OP_MKDIR:
        return (mkdir(s->b, s->mode) < 0 && errno != EEXIST) ? -1 : 0;
    case FB_OP_TOUCH:
        fd = open(s->b, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, s->mode ? s->mode : 0644);
        if (fd < 0) return errno == EEXIST ? 0 : -1;
        close(fd);
        return 0;
    case FB_OP_SYMLINK:
        return (symlink(s->a, s->b) < 0 && errno != EEXIST) ? -1 : 0;
    case FB_OP_PIVOT:
        return do_pivot(s->b);
    case FB_OP_REMOUNT:
        return mount(NULL, s->b, NULL, MS_REMOUNT | MS_BIND | s->flags, NULL);
    case FB_OP_MASK_PATH:
        return mask_path(s->b);
    case FB_OP_MOVE_MOUNT:
        // MOVE_MOUNT_F_EMPTY_PATH (4): the source is the descriptor itself.
        return (int)syscall(SYS_move_mount, (int)s->flags, "", AT_FDCWD, s->b, 4);
    case FB_OP_READONLY_PATH:
        if (mount(s->b, s->b, NULL, MS_BIND | MS_REC, NULL) < 0) return errno == ENOENT ? 0 : -1;
        return mount(NULL, s->b, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    default:
        errno = EINVAL;
        return -1;
    }
}

static void reset_signals(void) {
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &sa, NULL);
}

static int drop_bounding(uint64_t keep) {
    for (int cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL) break;  // past the kernel's last capability
            return -1;
        }
    }
    return 0;
}

static int set_caps(uint64_t keep) {
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    for (int i = 0; i < 2; i++) {
        uint32_t bits = (uint32_t)(keep >> (32 * i));
        data[i].effective = bits;
        data[i].permitted = bits;
        data[i].inheritable = bits;
    }
    return (int)syscall(SYS_capset, &hdr, data);
}

static int set_ambient(uint64_t keep) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    for (int cap = 0; cap < 64; cap++) {
        if (!(keep & (1ULL << cap))) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) return -1;
    }
    return 0;
}

// execve, tried again for a while on ETXTBSY (a process still holding the file open for writing).
static void execve_retrying(const char *path, char *const *argv, char *const *envp) {
    for (int attempt = 0; attempt < 100; attempt++) {
        execve(path, argv, envp);
        if (errno != ETXTBSY) return;
        usleep(1000);
    }
}

static void exec_program(const struct fb_spawn_config *cfg) {
    if (strchr(cfg->file, '/') || cfg->search_path == NULL) {
        execve_retrying(cfg->file, cfg->argv, cfg->envp);
        return;
    }
    char buf[4096];
    size_t flen = strlen(cfg->file);
    const char *p = cfg->search_path;
    int saved = ENOENT;
    while (*p) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        if (dlen + 1 + flen + 1 <= sizeof buf) {
            if (dlen == 0) { memcpy(buf, ".", 1); dlen = 1; }
            else memcpy(buf, p, dlen);
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, cfg->file, flen + 1);
            execve_retrying(buf, cfg->argv, cfg->envp);
            if (errno != ENOENT && errno != ENOTDIR) saved = errno;
        }
        if (!end) break;
        p = end + 1;
    }
    errno = saved;
}

// The report pipe and faasbox-init get fixed numbers in the child; every other inherited fd is closed.
#define CHILD_REPORT_FD 3
#define CHILD_INIT_FD 4

// The descriptors the child keeps, at fixed numbers: 3 report pipe, 4 faasbox-init, 5-7 stdin/stdout/stderr,
// 8... the cgroup files. All close on exec.
struct child_fds {
    int in, out, err;
    int cgroup[8];
    int n_cgroup;
};

// Everything else the child inherited is closed first, before the slow setup: holding a descriptor of a file
// that another thread of faasbox is writing (a layer being unpacked, a test's copy of a binary) would make an
// exec of that file elsewhere fail with ETXTBSY for as long as this child holds it.
static int compact_fds(const struct fb_spawn_config *cfg, struct child_fds *f) {
    int wanted[16 + FB_MAX_KEEP_FDS];
    int n = 0;
    wanted[n++] = cfg->report_fd;
    wanted[n++] = cfg->init_fd;
    wanted[n++] = cfg->stdin_fd;
    wanted[n++] = cfg->stdout_fd;
    wanted[n++] = cfg->stderr_fd;
    f->n_cgroup = cfg->n_cgroup_proc_fds < 8 ? cfg->n_cgroup_proc_fds : 8;
    for (int i = 0; i < f->n_cgroup; i++) wanted[n++] = cfg->cgroup_proc_fds[i];
    int n_keep = cfg->n_keep_fds < FB_MAX_KEEP_FDS ? cfg->n_keep_fds : FB_MAX_KEEP_FDS;
    for (int i = 0; i < n_keep; i++) wanted[n++] = cfg->keep_fds[i];
    int high[16 + FB_MAX_KEEP_FDS];
    for (int i = 0; i < n; i++) {
        high[i] = wanted[i] >= 0 ? fcntl(wanted[i], F_DUPFD_CLOEXEC, 64) : -1;
        if (wanted[i] >= 0 && high[i] < 0) return -1;
    }
    for (int i = 0; i < n; i++)
        if (high[i] >= 0 && dup3(high[i], CHILD_REPORT_FD + i, O_CLOEXEC) < 0) return -1;
    syscall(SYS_close_range, CHILD_REPORT_FD + n, ~0U, 0);
    f->in = cfg->stdin_fd >= 0 ? 5 : -1;
    f->out = cfg->stdout_fd >= 0 ? 6 : -1;
    f->err = cfg->stderr_fd >= 0 ? 7 : -1;
    for (int i = 0; i < f->n_cgroup; i++) f->cgroup[i] = 8 + i;
    return 0;
}

// In a new user namespace: wait until the parent has written the id maps (one byte), or gave up (EOF).
static int wait_for_id_maps(const struct fb_spawn_config *cfg) {
    close(cfg->userns_sync_write_fd);
    char byte;
    ssize_t n;
    do { n = read(cfg->userns_sync_read_fd, &byte, 1); } while (n < 0 && errno == EINTR);
    close(cfg->userns_sync_read_fd);
    if (n == 0) errno = ECANCELED;
    if (n != 1) return -1;
    // Become root of the namespace (its uid 0, mapped): files created from now on (the /dev nodes' mount
    // points in a tmpfs of this namespace) need an owner that the namespace can name.
    if (syscall(SYS_setresgid, 0, 0, 0) < 0) return -1;
    return (int)syscall(SYS_setresuid, 0, 0, 0);
}

static void child_main(const struct fb_spawn_config *cfg) {
    // Where failures go (used by CHECK): the report pipe, at CHILD_REPORT_FD once the descriptors are compact.
    int report_fd = cfg->report_fd;
    if (cfg->userns_sync_read_fd >= 0) CHECK(FB_STAGE_USERNS, wait_for_id_maps(cfg));
    struct child_fds fds;
    if (compact_fds(cfg, &fds) < 0) report_and_exit(report_fd, FB_STAGE_STDIO, errno);
    report_fd = CHILD_REPORT_FD;
    reset_signals();
    for (int i = 0; i < fds.n_cgroup; i++) {
        CHECK(FB_STAGE_CGROUP, write_all(fds.cgroup[i], "0", 1));
        close(fds.cgroup[i]);
    }
    if (cfg->new_cgroup_ns) CHECK(FB_STAGE_CGROUP_NS, unshare(CLONE_NEWCGROUP));
    if (cfg->hostname) CHECK(FB_STAGE_HOSTNAME, sethostname(cfg->hostname, strlen(cfg->hostname)));
    if (cfg->clone_flags & CLONE_NEWNS)
        CHECK(FB_STAGE_MOUNT_PRIVATE, mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL));
    if (cfg->loopback_up) CHECK(FB_STAGE_LOOPBACK, fb_loopback_up());
    for (int i = 0; i < cfg->n_steps; i++) CHECK(FB_STAGE_STEPS + i, run_step(&cfg->steps[i]));
    for (int i = 0; i < cfg->n_rlimits; i++) {
        struct rlimit rl = {.rlim_cur = cfg->rlimits[i].soft, .rlim_max = cfg->rlimits[i].hard};
        CHECK(FB_STAGE_RLIMIT, setrlimit(cfg->rlimits[i].resource, &rl));
    }
    int devnull = -1;
    if (fds.in < 0 || fds.out < 0 || fds.err < 0) CHECK(FB_STAGE_STDIO, devnull = open("/dev/null", O_RDWR | O_CLOEXEC));
    CHECK(FB_STAGE_STDIO, dup2(fds.in >= 0 ? fds.in : devnull, 0));
    CHECK(FB_STAGE_STDIO, dup2(fds.out >= 0 ? fds.out : devnull, 1));
    CHECK(FB_STAGE_STDIO, dup2(fds.err >= 0 ? fds.err : devnull, 2));
    if (cfg->drop_caps) {
        CHECK(FB_STAGE_SECUREBITS, prctl(PR_SET_SECUREBITS,
            SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED |
            SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, 0, 0, 0));
        CHECK(FB_STAGE_BOUNDING, drop_bounding(cfg->cap_keep));
    }
    if (cfg->set_ids) {
        // Raw syscalls: glibc's set*id wrappers signal every thread the parent had and wait for them (or
        // for a lock one of them held at clone time), which in this single-threaded copy can hang forever.
        CHECK(FB_STAGE_SETGROUPS, syscall(SYS_setgroups, (size_t)cfg->n_groups, cfg->groups));
        CHECK(FB_STAGE_SETGID, syscall(SYS_setresgid, cfg->gid, cfg->gid, cfg->gid));
        CHECK(FB_STAGE_SETUID, syscall(SYS_setresuid, cfg->uid, cfg->uid, cfg->uid));
    }
    if (cfg->drop_caps) {
        CHECK(FB_STAGE_CAPSET, set_caps(cfg->cap_keep));
        CHECK(FB_STAGE_AMBIENT, set_ambient(cfg->cap_keep));
    }
    if (cfg->no_new_privs) CHECK(FB_STAGE_NO_NEW_PRIVS, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    if (cfg->cwd) CHECK(FB_STAGE_CHDIR, chdir(cfg->cwd));
    if (cfg->seccomp_filter) {
        struct sock_fprog prog = {.len = cfg->seccomp_len, .filter = (struct sock_filter *)cfg->seccomp_filter};
        unsigned int flags = cfg->seccomp_log ? SECCOMP_FILTER_FLAG_LOG : 0;
        CHECK(FB_STAGE_SECCOMP, syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog));
    }
    if (cfg->init_fd >= 0) {
        // faasbox-init inherits the report pipe (it reports the program's exec) and becomes pid 1.
        fcntl(CHILD_REPORT_FD, F_SETFD, 0);
        for (int i = 0; cfg->init_inherit_fd >= 0 && i < cfg->n_init_inherit_fds; i++)
            fcntl(cfg->init_inherit_fd + i, F_SETFD, 0);
        syscall(SYS_execveat, CHILD_INIT_FD, "", cfg->init_argv, cfg->envp, AT_EMPTY_PATH);
        int err = errno;
        fcntl(CHILD_REPORT_FD, F_SETFD, FD_CLOEXEC);
        report_and_exit(report_fd, FB_STAGE_INIT, err);
    }
    exec_program(cfg);
    report_and_exit(report_fd, FB_STAGE_EXEC, errno);
}

static int child_entry(void *arg) {
    child_main((const struct fb_spawn_config *)arg);
    _exit(127);
}

pid_t fb_spawn(const struct fb_spawn_config *cfg, int *pidfd_out) {
    const size_t stack_size = 256 * 1024;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -errno;
    int pidfd = -1;
    int flags = (int)(cfg->clone_flags & ~(unsigned long)CLONE_NEWCGROUP) | CLONE_PIDFD | SIGCHLD;
    // Sharing memory and pausing this thread until the exec is what makes a spawn cheap. A child in a new user
    // namespace must wait for the parent to write its id maps, so it gets a copy of the memory instead.
    if (!(cfg->clone_flags & CLONE_NEWUSER)) flags |= CLONE_VM | CLONE_VFORK;
    // Joining a network namespace made beforehand: this thread enters it for the clone, so that the child
    // (also one in a user namespace of its own, which could not setns there) starts inside it.
    int own_netns = -1;
    if (cfg->netns_fd >= 0) {
        own_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (own_netns < 0 || setns(cfg->netns_fd, CLONE_NEWNET) < 0) {
            int e = errno;
            if (own_netns >= 0) close(own_netns);
            munmap(stack, stack_size);
            return -e;
        }
    }
    // The pidfd is stored through the parent_tid argument.
    pid_t pid = clone(child_entry, (char *)stack + stack_size, flags, (void *)cfg, &pidfd);
    int err = errno;
    if (own_netns >= 0) {
        if (setns(own_netns, CLONE_NEWNET) < 0) abort();  // never hand a thread in a function's netns back
        close(own_netns);
    }
    munmap(stack, stack_size);
    if (pid < 0) return -err;
    *pidfd_out = pidfd;
    return pid;
}
