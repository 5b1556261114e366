// The isolation probe: run as the program of a default faasbox sandbox, it tries what a hostile function
// would try and prints one line per property: "HELD <name>: <detail>" or "BROKEN <name>: <detail>".
// Environment: PROBE_MARKER, a file on the host that must be invisible; PROBE_PORT, a TCP port listening on
// the host's 127.0.0.1 that must be unreachable.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int broken = 0;

static void result(int held, const char *name, const char *detail) {
    printf("%s %s: %s\n", held ? "HELD" : "BROKEN", name, detail);
    if (!held) broken = 1;
    fflush(stdout);
}

// A call that must fail with EPERM (or another refusal listed).
static void denied(const char *name, long rc, int err) {
    char detail[128];
    snprintf(detail, sizeof detail, rc < 0 ? "refused (%s)" : "succeeded", strerror(err));
    result(rc < 0 && (err == EPERM || err == EACCES || err == EROFS), name, detail);
}

static int status_field(const char *field, char *out, size_t size) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    size_t n = strlen(field);
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            char *v = line + n + 1;
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(out, size, "%s", v);
            found = 0;
        }
    }
    fclose(f);
    return found;
}

static void check_status(void) {
    const char *caps[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
    int all_zero = 1;
    char v[64], detail[256] = "";
    for (int i = 0; i < 5; i++) {
        if (status_field(caps[i], v, sizeof v) != 0 || strcmp(v, "0000000000000000") != 0) all_zero = 0;
        strncat(detail, caps[i], sizeof detail - strlen(detail) - 1);
        strncat(detail, "=", sizeof detail - strlen(detail) - 1);
        strncat(detail, v, sizeof detail - strlen(detail) - 1);
        strncat(detail, " ", sizeof detail - strlen(detail) - 1);
    }
    result(all_zero, "capabilities empty", detail);
    status_field("NoNewPrivs", v, sizeof v);
    result(strcmp(v, "1") == 0, "no_new_privs", v);
    status_field("Seccomp", v, sizeof v);
    result(strcmp(v, "2") == 0, "seccomp in filter mode", v);
    char uid[64];
    status_field("Uid", uid, sizeof uid);
    if (getuid() != 0) {
        result(1, "not host root", uid);
    } else {
        // Root inside: held only in a user namespace whose 0 is an unprivileged host id.
        unsigned long inside = 1, outside = 0, count = 0;
        FILE *map = fopen("/proc/self/uid_map", "r");
        if (map) {
            if (fscanf(map, "%lu %lu %lu", &inside, &outside, &count) != 3) inside = 1;
            fclose(map);
        }
        char detail[128];
        snprintf(detail, sizeof detail, "uid 0 inside is host uid %lu (%lu ids mapped)", outside, count);
        result(inside == 0 && outside != 0 && count < 4294967295UL, "not host root", detail);
    }
}

static void check_pid_namespace(void) {
    DIR *d = opendir("/proc");
    int count = 0, max = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid > 0) { count++; if (pid > max) max = pid; }
    }
    if (d) closedir(d);
    char detail[128];
    snprintf(detail, sizeof detail, "%d processes visible, highest pid %d, own pid %d", count, max, getpid());
    result(count <= 3 && getpid() <= 3, "pid namespace", detail);
}

static void check_filesystem(void) {
    int fd = open("/probe-write-test", O_CREAT | O_WRONLY, 0644);
    denied("read-only rootfs", fd, errno);
    const char *marker = getenv("PROBE_MARKER");
    struct stat st;
    int visible = marker && stat(marker, &st) == 0;
    result(marker && !visible, "host files invisible", marker ? marker : "PROBE_MARKER unset");
    fd = open("/proc/sys/kernel/hostname", O_WRONLY);
    long rc = fd < 0 ? -1 : write(fd, "x", 1);
    denied("/proc/sys read-only", rc, errno);
    fd = open("/proc/sysrq-trigger", O_WRONLY);
    if (fd < 0 && errno == ENOENT) {
        result(1, "/proc/sysrq-trigger protected", "absent (no magic SysRq in this kernel)");
    } else {
        rc = fd < 0 ? -1 : write(fd, "h", 1);
        denied("/proc/sysrq-trigger protected", rc, errno);
    }
    char buf[16];
    fd = open("/proc/kcore", O_RDONLY);
    rc = fd < 0 ? 0 : read(fd, buf, sizeof buf);
    result(rc <= 0, "/proc/kcore masked", rc <= 0 ? "empty" : "readable");
    rc = stat("/sys/kernel", &st) == 0;
    int sys_writable = access("/sys", W_OK) == 0 && rc;
    result(!rc || !sys_writable, "/sys absent or read-only", rc ? "present, read-only" : "absent");
}

static void check_network(void) {
    FILE *f = fopen("/proc/net/dev", "r");
    char line[256], names[256] = "";
    int others = 0, lines = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (++lines <= 2) continue;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = 0;
        char *name = line;
        while (*name == ' ') name++;
        strncat(names, name, sizeof names - strlen(names) - 2);
        strcat(names, " ");
        if (strcmp(name, "lo") != 0) others++;
    }
    if (f) fclose(f);
    result(others == 0 && lines > 2, "only lo present", names);
    const char *port = getenv("PROBE_PORT");
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port ? atoi(port) : 1), .sin_addr.s_addr = htonl(0x7f000001)};
    int rc = connect(s, (struct sockaddr *)&a, sizeof a);
    char detail[64];
    snprintf(detail, sizeof detail, "127.0.0.1:%s %s", port ? port : "?", rc == 0 ? "connected" : strerror(errno));
    result(port && rc != 0, "host loopback ports unreachable", detail);
    close(s);
    s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    denied("raw sockets denied", s, errno);
    // vsock ignores network namespaces: on a VM guest the host is one connect away.
    denied("vsock sockets denied", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0), errno);
    denied("packet sockets denied", socket(17 /* AF_PACKET */, SOCK_RAW, 0), errno);
    denied("AF_ALG sockets denied", socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0), errno);
}

static void check_syscalls(void) {
    denied("mount denied", mount("none", "/tmp", "tmpfs", 0, ""), errno);
    denied("unshare denied", unshare(CLONE_NEWUSER), errno);
    int ns = open("/proc/self/ns/uts", O_RDONLY);
    denied("setns denied", setns(ns, 0), errno);
    denied("chroot denied", chroot("/tmp"), errno);
    denied("mknod of a device denied", mknod("/tmp/null", S_IFCHR | 0666, makedev(1, 3)), errno);
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    denied("bpf denied", syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof attr), errno);
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.size = sizeof pe;
    pe.type = PERF_TYPE_SOFTWARE;
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    pe.exclude_kernel = 1;
    denied("perf_event_open denied", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0), errno);
    denied("keyctl denied", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0), errno);
    denied("kexec denied", syscall(SYS_kexec_load, 0, 0, NULL, 0), errno);
    denied("module loading denied", syscall(SYS_finit_module, -1, "", 0), errno);
    struct timespec ts = {0, 0};
    denied("clock setting denied", clock_settime(CLOCK_REALTIME, &ts), errno);
    denied("swapon denied", syscall(SYS_swapon, "/tmp/swap", 0), errno);
    denied("reboot denied", syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, NULL), errno);
    denied("personality ADDR_NO_RANDOMIZE denied", syscall(SYS_personality, 0x0040000), errno);
    denied("ptrace denied", syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0), errno);
    denied("userfaultfd denied", syscall(SYS_userfaultfd, 0), errno);
    denied("io_uring denied", syscall(425 /* io_uring_setup */, 1, NULL), errno);
    denied("open_by_handle_at denied", syscall(SYS_open_by_handle_at, -1, NULL, 0), errno);
}

static void check_fork_bomb(void) {
    int started = 0;
    pid_t pids[4096];
    for (; started < 4096; started++) {
        pid_t p = fork();
        if (p < 0) break;
        if (p == 0) { pause(); _exit(0); }
        pids[started] = p;
    }
    for (int i = 0; i < started; i++) kill(pids[i], SIGKILL);
    for (int i = 0; i < started; i++) waitpid(pids[i], NULL, 0);
    char detail[64];
    snprintf(detail, sizeof detail, "fork failed after %d children", started);
    result(started < 4096, "pids limit stops a fork bomb", detail);
}

static void check_tmp(void) {
    int fd = open("/tmp/fill", O_CREAT | O_WRONLY, 0600);
    static char block[1 << 20];
    memset(block, 'x', sizeof block);
    long long total = 0;
    int err = 0;
    for (;;) {
        ssize_t n = write(fd, block, sizeof block);
        if (n <= 0) { err = errno; break; }
        total += n;
        if (total > (2LL << 30)) break;
    }
    close(fd);
    unlink("/tmp/fill");
    char detail[96];
    snprintf(detail, sizeof detail, "%lld MiB written, then %s", total >> 20, strerror(err));
    result(err == ENOSPC && total <= (512LL << 20) && total >= (500LL << 20), "/tmp capped at 512 MB", detail);
}

static void check_memory_bomb(void) {
    pid_t p = fork();
    if (p == 0) {
        for (;;) {
            char *m = malloc(16 << 20);
            if (!m) _exit(3);
            memset(m, 1, 16 << 20);
        }
    }
    int status = 0;
    waitpid(p, &status, 0);
    char detail[64];
    snprintf(detail, sizeof detail, WIFSIGNALED(status) ? "killed by signal %d" : "exited %d",
             WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    result(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "memory limit stops a memory bomb", detail);
}

static void check_environment(void) {
    extern char **environ;
    const char *allowed[] = {"PATH=", "PROBE_MARKER=", "PROBE_PORT=", "HOME=", NULL};
    for (char **e = environ; *e; e++) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++) if (strncmp(*e, allowed[i], strlen(allowed[i])) == 0) ok = 1;
        if (!ok) { result(0, "no host environment variable leaks", *e); return; }
    }
    result(1, "no host environment variable leaks", "only PATH and the probe's own");
}

int main(void) {
    check_status();
    check_pid_namespace();
    check_filesystem();
    check_network();
    check_syscalls();
    check_environment();
    check_fork_bomb();
    check_tmp();
    check_memory_bomb();
    return broken;
}
