/* hello-keepalive: an HTTP/1.1 server on 0.0.0.0:9000, one process with poll(2), keep-alive connections.
 * Answers every request with its method, path and a counter of the requests this process has served (the
 * state a warm instance keeps) and on this connection. Reads Content-Length bodies; no chunked request bodies
 * (400). `/drop` is answered and then the connection is closed without a `Connection: close` header, as a
 * server whose keep-alive timeout strikes would do. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 256
#define BUF_SIZE 65536

struct conn {
    int fd;
    unsigned long requests;
    size_t used;
    char buf[BUF_SIZE];
};

static struct conn *conns[MAX_CONNS];
static struct pollfd fds[MAX_CONNS + 1];
static unsigned long served;

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The value of header `name` in the head [buf, end), or NULL. */
static const char *header(const char *buf, const char *end, const char *name) {
    size_t len = strlen(name);
    for (const char *line = strstr(buf, "\r\n"); line && line + 2 < end; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if ((size_t)(end - h) > len && strncasecmp(h, name, len) == 0 && h[len] == ':') {
            h += len + 1;
            while (*h == ' ') h++;
            return h;
        }
    }
    return NULL;
}

/* Handles every complete request in c->buf; returns -1 when the connection is to be closed. */
static int serve(struct conn *c) {
    for (;;) {
        c->buf[c->used] = 0;
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end) return c->used >= BUF_SIZE - 1 ? -1 : 0;
        size_t head_len = (size_t)(end - c->buf) + 4;
        const char *cl = header(c->buf, end, "Content-Length");
        const char *te = header(c->buf, end, "Transfer-Encoding");
        const char *connection = header(c->buf, end, "Connection");
        long body = cl ? strtol(cl, NULL, 10) : 0;
        if (te || body < 0 || head_len + (size_t)body >= BUF_SIZE) {
            const char *bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            write_all(c->fd, bad, strlen(bad));
            return -1;
        }
        if (c->used < head_len + (size_t)body) return 0;
        char method[16] = "", path[1024] = "", version[16] = "";
        sscanf(c->buf, "%15s %1023s %15s", method, path, version);
        int close_after = strcmp(version, "HTTP/1.1") != 0 || (connection && strncasecmp(connection, "close", 5) == 0);
        char text[1200], reply[1400];
        int n = snprintf(text, sizeof text, "hello from faasbox\nmethod: %s\npath: %s\nserved: %lu\nconnection: %lu\n",
            method, path, ++served, ++c->requests);
        int m = snprintf(reply, sizeof reply,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s", n,
            close_after ? "Connection: close\r\n" : "", text);
        if (write_all(c->fd, reply, (size_t)m) < 0 || close_after || strcmp(path, "/drop") == 0) return -1;
        size_t rest = c->used - head_len - (size_t)body;
        memmove(c->buf, c->buf + head_len + body, rest);
        c->used = rest;
    }
}

int main(void) {
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(9000), .sin_addr.s_addr = htonl(INADDR_ANY)};
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 512) < 0) {
        perror("hello-keepalive: listen on :9000");
        return 1;
    }
    printf("hello-keepalive: listening on 0.0.0.0:9000\n");
    fflush(stdout);
    for (;;) {
        int n = 0;
        fds[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < MAX_CONNS; i++)
            if (conns[i]) fds[n++] = (struct pollfd){.fd = conns[i]->fd, .events = POLLIN};
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            perror("hello-keepalive: poll");
            return 1;
        }
        for (int i = 1, k = 0; i < n; i++) {
            while (!conns[k] || conns[k]->fd != fds[i].fd) k++;
            if (!fds[i].revents) continue;
            struct conn *c = conns[k];
            ssize_t r = read(c->fd, c->buf + c->used, BUF_SIZE - 1 - c->used);
            if (r > 0) c->used += (size_t)r;
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN) || (r > 0 && serve(c) < 0)) {
                close(c->fd);
                free(c);
                conns[k] = NULL;
            }
        }
        if (fds[0].revents & POLLIN) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) continue;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            int slot = 0;
            while (slot < MAX_CONNS && conns[slot]) slot++;
            struct conn *c = slot < MAX_CONNS ? calloc(1, sizeof *c) : NULL;
            if (!c) {
                close(fd);
                continue;
            }
            c->fd = fd;
            conns[slot] = c;
        }
    }
}
