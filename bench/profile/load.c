/* load: sends a known number of requests over keep-alive connections, for the per-request
 * profile (bench/profile/run.sh). Not a benchmark: it only makes the count exact, so that a
 * measurement taken over the run divides by a known number.
 *
 *   load PORT CONNS TOTAL get|post PATH AUTH_HEADER_VALUE
 *
 * Each connection sends one request, reads the whole answer (Content-Length or chunked framing
 * is not needed: the proxy always sends Content-Length), then sends the next, until TOTAL
 * answers arrived over all connections. Exits 1 when an answer is not 2xx or a connection
 * fails. */
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

static const char post_body[] =
    "{\"amount\":750,\"currency\":\"USD\",\"source\":\"@world\","
    "\"destination\":\"bln_28edb3e5-c168-4127-a1c4-16274e7a28d3\","
    "\"description\":\"bench transfer\",\"allow_overdraft\":true,"
    "\"meta_data\":{\"order_id\":\"ord_123456\",\"channel\":\"bench\"}}";

struct conn {
    int fd;
    size_t len;
    char buf[BUF_CAP];
};

static char request[4096];
static size_t request_len;

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
    return -1;
}

static int
send_request(struct conn *c)
{
    return write(c->fd, request, request_len) == (ssize_t)request_len ? 0 : -1;
}

int
main(int argc, char **argv)
{
    int port;
    int conns;
    long total;
    long sent = 0;
    long done = 0;
    int ep = epoll_create1(0);
    int one = 1;
    /* The first digit every answer must have: 2, or 5 to measure refusals (DOWN=1 in run.sh). */
    char want = argc == 8 ? argv[7][0] : '2';

    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: load PORT CONNS TOTAL get|post PATH AUTH_HEADER_VALUE [STATUS_DIGIT]\n");
        return 2;
    }
    port = atoi(argv[1]);
    conns = atoi(argv[2]);
    total = atol(argv[3]);
    if (strcmp(argv[4], "post") == 0) {
        request_len = (size_t)snprintf(request, sizeof(request),
                                       "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                                       "Content-Type: application/json\r\nAccept: application/json\r\n"
                                       "Content-Length: %zu\r\n\r\n%s",
                                       argv[5], argv[6], sizeof(post_body) - 1, post_body);
    } else {
        request_len = (size_t)snprintf(request, sizeof(request),
                                       "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                                       "Accept: application/json\r\n\r\n",
                                       argv[5], argv[6]);
    }
    for (int i = 0; i < conns && sent < total; i++) {
        struct conn *c = calloc(1, sizeof(*c));
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            perror("load: connect");
            return 1;
        }
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (send_request(c) != 0) {
            perror("load: write");
            return 1;
        }
        sent++;
    }
    while (done < total) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 30000);
        if (n <= 0) {
            fprintf(stderr, "load: no answer for 30 s (%ld of %ld done)\n", done, total);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            ssize_t r = read(c->fd, c->buf + c->len, BUF_CAP - c->len);
            char *end;
            long blen;
            size_t need;

            if (r <= 0) {
                fprintf(stderr, "load: connection closed after %ld answers\n", done);
                return 1;
            }
            c->len += (size_t)r;
            end = memmem(c->buf, c->len, "\r\n\r\n", 4);
            if (end == NULL) {
                continue;
            }
            blen = content_length(c->buf, (size_t)(end - c->buf) + 2);
            need = (size_t)(end - c->buf) + 4 + (size_t)(blen > 0 ? blen : 0);
            if (c->len < need) {
                continue;
            }
            if (c->len > 9 && c->buf[9] != want) {
                fprintf(stderr, "load: answer %.*s\n", (int)(strchr(c->buf, '\r') - c->buf), c->buf);
                return 1;
            }
            c->len = 0;
            done++;
            if (sent < total) {
                if (send_request(c) != 0) {
                    perror("load: write");
                    return 1;
                }
                sent++;
            }
        }
    }
    printf("%ld\n", done);
    return 0;
}
