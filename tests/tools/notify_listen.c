/* A stand-in for systemd's end of the sd_notify(3) protocol, for the integration tests: binds a
 * unix datagram socket at argv[1], prints "listening" once bound, then each datagram it receives
 * as one line of JSON ({"state":"READY=1\nSTATUS=..."}), flushed at once, until killed or until
 * argv[2] seconds (default 120) pass without a datagram. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void
print_json_string(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c == '\n') {
            fputs("\\n", stdout);
        } else if (c < 0x20 || c >= 0x7f) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

int
main(int argc, char **argv)
{
    struct sockaddr_un sa;
    char buf[4096];
    int timeout_s = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 120;
    int fd;

    if (argc < 2 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "usage: notify_listen SOCKET_PATH [IDLE_SECONDS]\n");
        return 2;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, argv[1], strlen(argv[1]));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "notify_listen: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    printf("{\"listening\":true}\n");
    fflush(stdout);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        int rc = poll(&p, 1, timeout_s * 1000);
        if (rc == 0) {
            return 0;
        }
        if (rc < 0) {
            if (errno == EINTR) {
                continue;
            }
            return 1;
        }
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0) {
            continue;
        }
        fputs("{\"state\":", stdout);
        print_json_string(buf, (size_t)n);
        fputs("}\n", stdout);
        fflush(stdout);
    }
}
