/* sd_notify(3) in a few lines: one datagram to the unix socket $NOTIFY_SOCKET names. Linking
 * libsystemd for this would add a dependency (and its transitive ones) to a program that
 * otherwise has no use for it; the protocol is stable and documented in sd_notify(3). */
#include "lib/sdnotify.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

bp_err
bp_sdnotify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t len;
    socklen_t salen;
    ssize_t sent;
    int fd;

    if (path == NULL || path[0] == '\0') {
        return BP_OK;
    }
    len = strlen(path);
    /* A path or an abstract name ('@' for the leading NUL); nothing else (e.g. vsock) here. */
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path)) {
        return BP_ERR_IO;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@') {
        sa.sun_path[0] = '\0';
    }
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/' ? 1 : 0));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return BP_ERR_IO;
    }
    sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    close(fd);
    return sent == (ssize_t)strlen(state) ? BP_OK : BP_ERR_IO;
}

bp_err
bp_sdnotifyf(const char *fmt, ...)
{
    char state[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(state, sizeof(state), fmt, ap);
    va_end(ap);
    return bp_sdnotify(state);
}
