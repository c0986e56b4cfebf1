/* /readyz through a running server with the operational handler, on a real socket: what it
 * answers before anyone reported readiness, and for each state the watcher reports.
 *
 * The first case is the issue 9 start bug: a server began ready, so a node whose PostgreSQL was
 * down at start answered 200 between its first accept and its watcher's start (which says
 * "starting"). The window is too short to hit from outside without timing luck; here nothing
 * reports at all, so the server's own starting state is what /readyz shows, every time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config/config.h"
#include "http/http.h"
#include "ops/ops.h"

static struct bp_config cfg;
static struct bp_server *server;

static int
setup(void **state)
{
    char *argv[] = {"--listen", "127.0.0.1:0", "--workers", "1"};
    /* Outlives the server; the handler is not a constant, so it is set here. */
    static struct bp_http_route table[1];
    struct bp_server_spec spec = {.cfg = &cfg, .routes = table, .n_routes = 1};
    char err[512];

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    table[0] = (struct bp_http_route){"/", true, bp_ops_handler(), false};
    assert_int_equal(bp_config_load(4, argv, &cfg, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_server_new(&spec, &server, err, sizeof(err)), BP_OK);
    assert_int_equal(bp_server_run(server, err, sizeof(err)), BP_OK);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    bp_server_stop(server);
    bp_server_free(server);
    bp_config_cleanup(&cfg);
    return 0;
}

/* GET /readyz on a new connection (closed by the request); the whole answer into buf. */
static void
get_readyz(char *buf, size_t cap)
{
    static const char req[] = "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)bp_server_port(server))};
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    size_t len = 0;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    while (len < cap - 1) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
}

static void
test_not_ready_before_anyone_reports(void **state)
{
    char buf[2048];

    (void)state;
    get_readyz(buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 503 "));
    assert_non_null(strstr(buf, "{\"status\":\"starting\",\"reason\":\""));
}

static void
test_each_reported_state(void **state)
{
    char buf[2048];

    (void)state;
    bp_server_set_readiness(server, BP_DEGRADED, "store unreachable: \"down\"");
    get_readyz(buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 503 "));
    assert_non_null(strstr(buf, "{\"status\":\"degraded\",\"reason\":\"store unreachable: \\\"down\\\"\"}"));

    bp_server_set_readiness(server, BP_READY, NULL);
    get_readyz(buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 200 "));
    assert_non_null(strstr(buf, "{\"status\":\"ready\"}"));

    bp_server_set_readiness(server, BP_STARTING, "waiting for the store: refused");
    get_readyz(buf, sizeof(buf));
    assert_non_null(strstr(buf, "HTTP/1.1 503 "));
    assert_non_null(strstr(buf, "{\"status\":\"starting\",\"reason\":\"waiting for the store: refused\"}"));
}

int
main(void)
{
    /* In this order: the first runs before anything was reported. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_ready_before_anyone_reports),
        cmocka_unit_test(test_each_reported_state),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
