// faasbox-init: pid 1 of a sandbox. A tiny static program (not a copy of faasbox, so it costs almost no
// memory and the OOM killer never prefers it): it starts the function's program, forwards signals to it,
// reaps every orphan, and exits with the program's status (which ends the whole pid namespace).
//
//   faasbox-init REPORT_FD [--lifeline FD] [--freezer JOIN_FD STATE_FD] -- PROGRAM [ARG]...
//                                                                   (environment: the program's)
//
// REPORT_FD is the sandbox's report pipe: a failed exec of PROGRAM is written there as {stage, errno};
// it closes on a successful exec, which tells faasbox that the function has started. FD (the lifeline) is
// the read end of a pipe whose write end only faasbox holds: when faasbox dies, however it dies, the pipe
// ends, the kernel sends SIGIO, and faasbox-init exits — which kills everything in the sandbox.
// --freezer: the program runs in a cgroup of its own below the sandbox's (it joins through JOIN_FD, the
// cgroup's tasks or cgroup.procs file), which faasbox freezes while the instance is idle; faasbox-init stays
// out of it, so it still sees the lifeline end, and thaws the program's cgroup through STATE_FD
// (freezer.state or cgroup.freeze) before it kills it: a v1-frozen task dies only once thawed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define STAGE_FORK 18
#define STAGE_EXEC 19
#define STAGE_FREEZER 22

static volatile pid_t program = 0;

static void forward(int sig) {
    if (program > 0) kill(program, sig);
}

static int lifeline = -1;
static int freezer_join = -1, freezer_state = -1;

// Thaws the program's cgroup: "THAWED" on a v1 freezer, "0" on cgroup v2 (each refuses the other's word).
static void thaw(void) {
    if (freezer_state < 0) return;
    if (pwrite(freezer_state, "THAWED", 6, 0) < 0) (void)!pwrite(freezer_state, "0", 1, 0);
}

// SIGIO on the lifeline: at its end (faasbox is gone), take the sandbox down.
static void on_lifeline(int sig) {
    (void)sig;
    char byte;
    ssize_t n = read(lifeline, &byte, 1);
    if (n == 0) {
        kill(-1, SIGKILL);
        thaw();
        _exit(137);
    }
}

static void watch_lifeline(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_lifeline;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGIO, &sa, NULL);
    fcntl(lifeline, F_SETOWN, getpid());
    fcntl(lifeline, F_SETFL, fcntl(lifeline, F_GETFL) | O_NONBLOCK | O_ASYNC);
    on_lifeline(SIGIO);  // faasbox may have died before the handler was in place
}

static void report(int fd, int32_t stage, int32_t err) {
    int32_t record[2] = {stage, err};
    ssize_t n;
    do { n = write(fd, record, sizeof record); } while (n < 0 && errno == EINTR);
}

int main(int argc, char **argv, char **envp) {
    if (argc < 4) return 127;
    int fd = atoi(argv[1]);
    for (;;) {
        if (strcmp(argv[2], "--lifeline") == 0 && argc >= 6) {
            lifeline = atoi(argv[3]);
            argv += 2;
            argc -= 2;
        } else if (strcmp(argv[2], "--freezer") == 0 && argc >= 7) {
            freezer_join = atoi(argv[3]);
            freezer_state = atoi(argv[4]);
            argv += 3;
            argc -= 3;
        } else {
            break;
        }
    }
    if (strcmp(argv[2], "--") != 0) return 127;
    // Not the program's.
    if (lifeline >= 0) fcntl(lifeline, F_SETFD, FD_CLOEXEC);
    if (freezer_join >= 0) fcntl(freezer_join, F_SETFD, FD_CLOEXEC);
    if (freezer_state >= 0) fcntl(freezer_state, F_SETFD, FD_CLOEXEC);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    pid_t child = vfork();
    if (child < 0) {
        report(fd, STAGE_FORK, errno);
        return 127;
    }
    if (child == 0) {
        // Into the cgroup faasbox freezes (this thread alone is the process: it has not started any other).
        if (freezer_join >= 0 && write(freezer_join, "0", 1) != 1) {
            report(fd, STAGE_FREEZER, errno);
            _exit(127);
        }
        // ETXTBSY: another process still holds the file open for writing (briefly, e.g. a sandbox being
        // set up elsewhere inherited it); try again for up to ~100 ms.
        for (int attempt = 0; attempt < 100; attempt++) {
            execvpe(argv[3], argv + 3, envp);
            if (errno != ETXTBSY) break;
            usleep(1000);
        }
        report(fd, STAGE_EXEC, errno);
        _exit(127);
    }
    close(fd);
    if (freezer_join >= 0) close(freezer_join);
    program = child;
    if (lifeline >= 0) watch_lifeline();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sa.sa_flags = SA_RESTART;
    int signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) sigaction(signals[i], &sa, NULL);
    for (;;) {
        int status;
        pid_t pid = wait(&status);
        if (pid < 0) {
            if (errno == EINTR) continue;
            return 127;
        }
        if (pid != child) continue;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
    }
}
