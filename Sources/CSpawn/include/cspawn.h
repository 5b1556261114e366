// The clone child: the code that runs between clone and exec (no allocation, no locks), and the pidfd and
// network-namespace calls of the processes it makes. For the Sandbox module only.
#ifndef FAASBOX_CSPAWN_H
#define FAASBOX_CSPAWN_H

#include <stdint.h>
#include <sys/types.h>
#include <linux/sched.h>

/// One filesystem step the child executes, in order. Paths before FB_OP_PIVOT are host paths the parent
/// already resolved inside the rootfs; paths after it are paths inside the new root.
enum fb_op {
    FB_OP_MOUNT = 1,      // mount(a, b, fstype, flags, data)
    FB_OP_MKDIR = 2,      // mkdir(b, mode), EEXIST ignored
    FB_OP_TOUCH = 3,      // create an empty file b (a bind-mount target), EEXIST ignored
    FB_OP_SYMLINK = 4,    // symlink(a, b), EEXIST ignored
    FB_OP_PIVOT = 5,      // pivot_root into b, detach the old root
    FB_OP_REMOUNT = 6,    // mount(NULL, b, NULL, MS_REMOUNT | MS_BIND | flags, NULL)
    FB_OP_MASK_PATH = 7,  // bind /dev/null over a file b or an empty read-only tmpfs over a directory b; ENOENT ignored
    FB_OP_READONLY_PATH = 8,  // bind b onto itself and remount it read-only, nosuid, nodev, noexec; ENOENT ignored
    FB_OP_MOVE_MOUNT = 9,  // move_mount the detached tree at fd `flags` (kept through compact_fds) onto b
};

#define FB_MAX_KEEP_FDS 32

struct fb_step {
    int op;
    const char *a;
    const char *b;
    const char *fstype;
    unsigned long flags;
    const char *data;
    unsigned int mode;
};

struct fb_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

/// Fixed stages of the child; a failing list step is reported as FB_STAGE_STEPS + its index.
enum fb_stage {
    FB_STAGE_CGROUP = 1,
    FB_STAGE_CGROUP_NS = 2,
    FB_STAGE_HOSTNAME = 3,
    FB_STAGE_MOUNT_PRIVATE = 4,
    FB_STAGE_LOOPBACK = 5,
    FB_STAGE_RLIMIT = 6,
    FB_STAGE_STDIO = 7,
    FB_STAGE_SECUREBITS = 8,
    FB_STAGE_BOUNDING = 9,
    FB_STAGE_SETGROUPS = 10,
    FB_STAGE_SETGID = 11,
    FB_STAGE_SETUID = 12,
    FB_STAGE_CAPSET = 13,
    FB_STAGE_AMBIENT = 14,
    FB_STAGE_NO_NEW_PRIVS = 15,
    FB_STAGE_CHDIR = 16,
    FB_STAGE_SECCOMP = 17,
    FB_STAGE_FORK = 18,
    FB_STAGE_EXEC = 19,
    FB_STAGE_INIT = 20,
    FB_STAGE_USERNS = 21,
    FB_STAGE_FREEZER = 22,            // faasbox-init: the program joining its freezer cgroup
    FB_STAGE_STEPS = 100,
};

/// What the child writes to the report pipe when a stage fails. EOF without a report means exec succeeded.
struct fb_report {
    int32_t stage;
    int32_t err;
};

struct fb_spawn_config {
    unsigned long clone_flags;        // CLONE_NEW* flags for clone3 (CLONE_NEWCGROUP is applied after joining)
    int new_cgroup_ns;
    const int *cgroup_proc_fds;       // open cgroup.procs files the child joins by writing "0"
    int n_cgroup_proc_fds;
    const int *keep_fds;              // kept open for the steps (mount sources), at fds 8 + n_cgroup_proc_fds + i
    int n_keep_fds;                   // at most FB_MAX_KEEP_FDS
    const char *hostname;             // NULL: leave as is
    int loopback_up;
    const struct fb_step *steps;
    int n_steps;
    const struct fb_rlimit *rlimits;
    int n_rlimits;
    int stdin_fd, stdout_fd, stderr_fd;  // -1: /dev/null inside the new root
    int report_fd;                    // write end, O_CLOEXEC
    uint32_t uid, gid;
    const uint32_t *groups;
    int n_groups;
    int set_ids;                      // 0: keep the parent's uid/gid
    uint64_t cap_keep;                // capability bit mask kept in every set (bit n = capability n)
    int drop_caps;
    int no_new_privs;
    const void *seccomp_filter;       // struct sock_filter[], NULL for none
    unsigned short seccomp_len;
    int seccomp_log;                  // SECCOMP_FILTER_FLAG_LOG
    const char *cwd;
    const char *file;                 // contains '/': exec'd as is; else searched in search_path
    const char *search_path;
    char *const *argv;
    char *const *envp;
    int init_fd;                      // faasbox-init (any fd, e.g. O_PATH): pid 1 execs it with init_argv; -1: pid 1 is the program
    char *const *init_argv;
    int init_inherit_fd;              // the first of the child's descriptors (after compaction) that faasbox-init keeps across its exec; -1: none
    int n_init_inherit_fds;           // how many, from init_inherit_fd on
    // With CLONE_NEWUSER in clone_flags the child is a copy (fork-like, not CLONE_VM | CLONE_VFORK) that first
    // waits for one byte on userns_sync_read_fd: the parent writes its uid_map and gid_map meanwhile. -1 otherwise.
    int userns_sync_read_fd, userns_sync_write_fd;
    int netns_fd;                     // a network namespace to start in (made by fb_netns_create); -1: none
};

/// Clones a child into new namespaces and runs the setup steps in it. Returns the child's pid (its pidfd in
/// *pidfd_out) or -errno when clone itself fails. Setup failures arrive on report_fd. Without CLONE_NEWUSER
/// this returns once the child has exec'd or failed; with it, at once (the child waits for its id maps).
pid_t fb_spawn(const struct fb_spawn_config *config, int *pidfd_out);

/// Creates a socket inside the network namespace of the process behind pidfd, on the calling thread,
/// and returns it (or -errno). The thread's own network namespace is restored before returning.
int fb_socket_in_netns(int pidfd, int domain, int type);

/// Creates a network namespace with lo up, without moving the calling thread (it enters, then returns).
/// Returns a descriptor of the namespace or -errno.
int fb_netns_create(void);

/// Creates a user namespace whose uid_map and gid_map are both map_line ("0 HOST COUNT\n"), held by the returned
/// descriptor (close-on-exec) or -errno. A helper shares our memory (CLONE_VM, its own small stack), unshares
/// nothing else and exits once the maps are written and its namespace opened: the calling process may have
/// threads, which unshare(CLONE_NEWUSER) refuses.
int fb_userns_create(const char *map_line);

/// Brings up lo in the calling thread's network namespace. 0 or -1 with errno.
int fb_loopback_up(void);

/// waitid(P_PIDFD); returns 0 and fills code/status, or -errno.
int fb_waitid_pidfd(int pidfd, int options, int *code, int *status);

/// pidfd_send_signal(2). Returns 0 or -errno.
int fb_pidfd_send_signal(int pidfd, int sig);

#endif
