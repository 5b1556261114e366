#define _GNU_SOURCE
#include "csyscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <sys/epoll.h>
#include <unistd.h>

int fb_openat2(int dirfd, const char *path, int flags, unsigned int mode, uint64_t resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)flags;
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = resolve;
    long fd;
    do { fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how); } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : (int)fd;
}

int fb_mknod_whiteout(int dirfd, const char *name) {
    return mknodat(dirfd, name, S_IFCHR | 0000, makedev(0, 0)) < 0 ? -errno : 0;
}

int fb_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
}

int fb_mknodat(int dirfd, const char *name, unsigned int mode, unsigned int major, unsigned int minor) {
    return mknodat(dirfd, name, mode, makedev(major, minor)) < 0 ? -errno : 0;
}

int fb_fsetxattr(int fd, const char *name, const void *value, unsigned long size) {
    return fsetxattr(fd, name, value, size, 0) < 0 ? -errno : 0;
}

long fb_fgetxattr(int fd, const char *name, void *value, unsigned long size) {
    ssize_t n = fgetxattr(fd, name, value, size);
    return n < 0 ? -errno : n;
}

int fb_epoll_add(int epfd, int fd, uint64_t token) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = token};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int fb_epoll_del(int epfd, int fd) {
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

int fb_epoll_wait(int epfd, uint64_t *tokens, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    int n;
    do { n = epoll_wait(epfd, evs, max, timeout_ms); } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) tokens[i] = evs[i].data.u64;
    return n;
}

int fb_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int fb_is_mount_root(const char *path) {
    struct statx stx;
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0) return -errno;
    if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)) return -ENOTSUP;
    return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) ? 1 : 0;
}

int fb_memfd(const char *name) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int fb_open_tree_clone(int fd) {
    // OPEN_TREE_CLONE (1) | OPEN_TREE_CLOEXEC (O_CLOEXEC) | AT_EMPTY_PATH | AT_RECURSIVE
    long r = syscall(SYS_open_tree, fd, "", 1 | O_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    return r < 0 ? -errno : (int)r;
}

int fb_mount_setattr_recursive(int fd, uint64_t attr_set) {
    uint64_t attr[4] = {attr_set, 0, 0, 0};  // struct mount_attr: attr_set, attr_clr, propagation, userns_fd
    long r = syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, attr, sizeof attr);
    return r < 0 ? -errno : 0;
}

int fb_open_tree_idmapped(const char *path, int userns_fd) {
    long fd = syscall(SYS_open_tree, AT_FDCWD, path, 1 | O_CLOEXEC);  // OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
    if (fd < 0) return -errno;
    uint64_t attr[4] = {0x00100000, 0, 0, (uint64_t)userns_fd};  // MOUNT_ATTR_IDMAP
    if (syscall(SYS_mount_setattr, (int)fd, "", AT_EMPTY_PATH, attr, sizeof attr) < 0) {
        int e = errno;
        close((int)fd);
        return -e;
    }
    return (int)fd;
}

int fb_move_mount_to(int fd, const char *path) {
    long r = syscall(SYS_move_mount, fd, "", AT_FDCWD, path, 0x00000004);  // MOVE_MOUNT_F_EMPTY_PATH
    return r < 0 ? -errno : 0;
}

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

int fb_loopback_tcp_inode(uint16_t src_port, uint16_t dst_port, uint64_t *inode) {
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) return -errno;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg;
    memset(&msg, 0, sizeof msg);
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST;
    msg.req.sdiag_family = AF_INET;
    msg.req.sdiag_protocol = IPPROTO_TCP;
    msg.req.idiag_states = ~0U;
    msg.req.id.idiag_sport = htons(src_port);
    msg.req.id.idiag_dport = htons(dst_port);
    msg.req.id.idiag_src[0] = htonl(INADDR_LOOPBACK);
    msg.req.id.idiag_dst[0] = htonl(INADDR_LOOPBACK);
    msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, &msg, sizeof msg, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    char buffer[8192];
    ssize_t n;
    do { n = recv(fd, buffer, sizeof buffer, 0); } while (n < 0 && errno == EINTR);
    int e = n < 0 ? errno : 0;
    close(fd);
    if (n < 0) return -e;
    struct nlmsghdr *h = (struct nlmsghdr *)buffer;
    if (!NLMSG_OK(h, (size_t)n)) return -EIO;
    if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *err = NLMSG_DATA(h);
        return err->error < 0 ? err->error : -ENOENT;
    }
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) return -EIO;
    struct inet_diag_msg *diag = NLMSG_DATA(h);
    *inode = diag->idiag_inode;
    return 0;
}
