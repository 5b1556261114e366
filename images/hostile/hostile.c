// hostile: what a hostile function does to faasbox, for scripts/soak (never run by the tests).
//
//   hostile flood PORT COUNT SECONDS   opens COUNT TCP connections to 127.0.0.1:PORT (non-blocking connects,
//                                      from COUNT/800 child processes, as one process may hold only 1024
//                                      descriptors), sends nothing, holds them SECONDS, then closes them all
//                                      and prints how many had connected.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define PER_CHILD 800

static int flood_child(int port, int count, int seconds) {
    static int fds[PER_CHILD];
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    int n = 0;
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fd < 0) break;
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
            close(fd);
            continue;
        }
        fds[n++] = fd;
    }
    sleep(seconds);
    int connected = 0;
    for (int i = 0; i < n; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof err;
        if (poll(&p, 1, 0) == 1 && getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) connected++;
        close(fds[i]);
    }
    return connected;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "flood") == 0) {
        int port = atoi(argv[2]), count = atoi(argv[3]), seconds = atoi(argv[4]);
        int children = (count + PER_CHILD - 1) / PER_CHILD;
        int report[2];
        if (pipe(report) < 0) return 1;
        for (int c = 0; c < children; c++) {
            int mine = count - c * PER_CHILD < PER_CHILD ? count - c * PER_CHILD : PER_CHILD;
            if (fork() == 0) {
                int connected = flood_child(port, mine, seconds);
                (void)!write(report[1], &connected, sizeof connected);
                _exit(0);
            }
        }
        close(report[1]);
        int total = 0, one;
        while (read(report[0], &one, sizeof one) == sizeof one) total += one;
        while (wait(NULL) > 0) {}
        printf("hostile: %d of %d connections to port %d were established (held %d s)\n", total, count, port, seconds);
        return 0;
    }
    fprintf(stderr, "usage: hostile flood PORT COUNT SECONDS\n");
    return 2;
}
