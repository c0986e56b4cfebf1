/* fake_core: a minimal stand-in for Blnk Core for the per-request profile (bench/profile/run.sh).
 *
 * One thread, epoll, keep-alive. Reads request heads (and Content-Length bodies), answers every
 * GET with 200 and every other method with 201, each with a canned JSON body of about the size
 * Core sends (280 and 294 bytes, like bench/nginx.conf.template). Prints the port it listens on
 * (127.0.0.1, port 0 = any) on stdout, then serves until killed. Not part of the product: its
 * only job is to cost the proxy nothing unusual while the proxy is measured. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_CAP 65536

static const char get_body[] =
    "{\"ledger_id\":\"ldg_0be360ca-86fe-457d-be43-daa3f966d8f0\",\"name\":\"Customer wallets\","
    "\"created_at\":\"2026-11-23T10:00:00Z\",\"meta_data\":{\"team\":\"payments\",\"region\":\"eu-west\","
    "\"owner\":\"platform\"},\"balances\":[],\"description\":\"fake core answer for the proxy's "
    "per-request profile\",\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";
static const char post_body[] =
    "{\"transaction_id\":\"txn_28edb3e5-c168-4127-a1c4-16274e7a28d3\",\"amount\":750,\"currency\":\"USD\","
    "\"source\":\"@world\",\"destination\":\"bln_28edb3e5-c168-4127-a1c4-16274e7a28d3\","
    "\"status\":\"QUEUED\",\"precision\":100,\"reference\":\"ref_0192\",\"created_at\":"
    "\"2026-11-23T10:00:00Z\",\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";

struct conn {
    int fd;
    size_t len;
    char buf[BUF_CAP];
};

static long
content_length(const char *head, size_t head_len)
{
    const char *p = head;
    const char *end = head + head_len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            break;
        }
        if ((size_t)(nl - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
            return strtol(p + 15, NULL, 10);
        }
        p = nl + 1;
    }
    return 0;
}

/* Answers every complete request in c->buf; returns -1 when the connection must close. */
static int
serve(struct conn *c)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        size_t head_len;
        size_t total;
        long body_len;
        const char *body;
        size_t blen;
        char out[1024];
        int n;

        if (end == NULL) {
            return c->len >= BUF_CAP ? -1 : 0;
        }
        head_len = (size_t)(end - c->buf) + 4;
        body_len = content_length(c->buf, head_len);
        if (body_len < 0 || head_len + (size_t)body_len > BUF_CAP) {
            return -1;
        }
        total = head_len + (size_t)body_len;
        if (c->len < total) {
            return 0;
        }
        if (strncmp(c->buf, "GET ", 4) == 0 || strncmp(c->buf, "HEAD ", 5) == 0) {
            body = get_body;
            blen = sizeof(get_body) - 1;
            n = snprintf(out, sizeof(out),
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                         blen, body);
        } else {
            body = post_body;
            blen = sizeof(post_body) - 1;
            n = snprintf(out, sizeof(out),
                         "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                         blen, body);
        }
        if (write(c->fd, out, (size_t)n) != n) {
            return -1;
        }
        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= total;
    }
}

int
main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1024) != 0) {
        perror("fake_core: bind/listen");
        return 1;
    }
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    printf("%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct conn *nc = calloc(1, sizeof(*nc));
                    struct epoll_event cev = {.events = EPOLLIN};
                    nc->fd = fd;
                    cev.data.ptr = nc;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            for (;;) {
                ssize_t r = read(c->fd, c->buf + c->len, BUF_CAP - c->len);
                if (r > 0) {
                    c->len += (size_t)r;
                    if (serve(c) != 0) {
                        r = 0;
                    } else {
                        continue;
                    }
                }
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    close(c->fd);
                    free(c);
                }
                break;
            }
        }
    }
}
