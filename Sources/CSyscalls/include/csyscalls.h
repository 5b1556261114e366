// The system calls glibc does not wrap, or that Swift cannot import well (openat2, mknodat with a device,
// xattrs, statx's mount-root bit, memfd, epoll's packed events). For SystemSupport only, which wraps each in a
// typed Swift API; every function returns -errno on failure.
#ifndef FAASBOX_CSYSCALLS_H
#define FAASBOX_CSYSCALLS_H

#include <stdint.h>
#include <sys/types.h>

/// openat2(2), which glibc 2.36 does not wrap. Returns an fd or -errno.
int fb_openat2(int dirfd, const char *path, int flags, unsigned int mode, uint64_t resolve);

/// pipe2(fds, O_CLOEXEC). Returns 0 or -errno.
int fb_pipe_cloexec(int fds[2]);

/// Creates an overlay whiteout (a 0/0 character device) named name in dirfd.
int fb_mknod_whiteout(int dirfd, const char *name);

/// mknodat with a (major, minor) device. Returns 0 or -errno.
int fb_mknodat(int dirfd, const char *name, unsigned int mode, unsigned int major, unsigned int minor);

/// fsetxattr(2). Returns 0 or -errno.
int fb_fsetxattr(int fd, const char *name, const void *value, unsigned long size);

/// fgetxattr(2). Returns the size or -errno.
long fb_fgetxattr(int fd, const char *name, void *value, unsigned long size);

/// 1 if path is the root of a mount (statx STATX_ATTR_MOUNT_ROOT), 0 if not, -errno on failure.
int fb_is_mount_root(const char *path);

/// memfd_create(name, MFD_CLOEXEC). Returns an fd or -errno.
int fb_memfd(const char *name);

/// epoll helpers (struct epoll_event is packed, which Swift does not import well).
int fb_epoll_create(void);
int fb_epoll_add(int epfd, int fd, uint64_t token);
int fb_epoll_del(int epfd, int fd);
/// Waits for up to max events; writes their tokens. Returns the count or -errno.
int fb_epoll_wait(int epfd, uint64_t *tokens, int max, int timeout_ms);

/// open_tree(fd, "", OPEN_TREE_CLONE | AT_RECURSIVE): a detached copy of the mount tree at fd, close-on-exec.
/// Returns an fd or -errno.
int fb_open_tree_clone(int fd);

/// mount_setattr(fd, "", AT_RECURSIVE) setting MOUNT_ATTR_* flags on the tree at fd. Returns 0 or -errno.
int fb_mount_setattr_recursive(int fd, uint64_t attr_set);

/// open_tree(AT_FDCWD, path, OPEN_TREE_CLONE) of one mount (no submounts), then mount_setattr with
/// MOUNT_ATTR_IDMAP and userns_fd: the detached tree shows files with the ids of that user namespace's mapping.
/// Returns the tree's fd (close-on-exec) or -errno.
int fb_open_tree_idmapped(const char *path, int userns_fd);

/// The inode of the TCP socket 127.0.0.1:src_port → 127.0.0.1:dst_port in this network namespace, looked up
/// exactly with sock_diag (NETLINK_SOCK_DIAG, inet_diag_req_v2 by its four-tuple). 0 or -errno (-ENOENT: none).
int fb_loopback_tcp_inode(uint16_t src_port, uint16_t dst_port, uint64_t *inode);

/// move_mount(fd, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH): attaches a detached tree at path. 0 or -errno.
int fb_move_mount_to(int fd, const char *path);

#endif
