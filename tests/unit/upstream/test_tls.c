/* TLS to Core: the upstream client against local TLS servers whose certificates are made by the
 * test with a throwaway CA (OpenSSL's API, no files but the CA bundle the client reads). Checks
 * that verified TLS works (IP and host-name URLs, SNI, keep-alive, bodies both ways), and that
 * an unknown CA, a certificate for another host, and an unreadable CA file are refused before
 * any request reaches the server, counted as TLS errors, with a cause an operator can act on.
 *
 * The servers are plain blocking OpenSSL in threads (one per connection), so the client under
 * test runs alone on its event_base. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four above first */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/buf.h"
#include "metrics/metrics.h"
#include "upstream/upstream.h"

#define MAX_CONN_THREADS 32

/* ---- certificates ---------------------------------------------------------------------------- */

static EVP_PKEY *ca_key;
static X509 *ca_cert;
static char ca_path[] = "/tmp/bp_upstream_test_caXXXXXX";

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key, signed by the CA (or self-signed when issuer is NULL). */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, const char *san, bool is_ca)
{
    static long serial = 1;
    X509 *cert = X509_new();
    X509_NAME *name = X509_NAME_new();

    assert_non_null(cert);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(cert, name);
    X509_set_issuer_name(cert, is_ca ? name : X509_get_subject_name(ca_cert));
    X509_set_pubkey(cert, key);
    if (is_ca) {
        add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
        add_ext(cert, cert, NID_subject_key_identifier, "hash");
    } else {
        add_ext(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert, ca_cert, NID_subject_alt_name, san);
        add_ext(cert, ca_cert, NID_authority_key_identifier, "keyid");
    }
    assert_true(X509_sign(cert, is_ca ? key : ca_key, EVP_sha256()) > 0);
    X509_NAME_free(name);
    return cert;
}

static void
make_ca(void)
{
    int fd = mkstemp(ca_path);
    FILE *f;

    assert_true(fd >= 0);
    ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ca_key);
    ca_cert = make_cert(ca_key, "blnkproxy upstream test CA", NULL, true);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, ca_cert), 1);
    fclose(f);
}

/* ---- a TLS server ---------------------------------------------------------------------------- */

struct tls_srv {
    SSL_CTX *ctx;
    int lfd;
    int port;
    pthread_t acceptor;
    pthread_t conn_threads[MAX_CONN_THREADS];
    int conn_fds[MAX_CONN_THREADS];
    int n_conn_threads;
    pthread_mutex_t lock;
    volatile bool stop;
    int n_conns;   /* TCP connections accepted */
    int n_reqs;    /* requests read completely */
    int n_resumed; /* handshakes that resumed a session */
    char sni[64];
};

struct conn_arg {
    struct tls_srv *s;
    int fd;
};

static bool
read_exact(SSL *ssl, char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        int r = SSL_read(ssl, buf + got, (int)(n - got));
        if (r <= 0) {
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

static bool
write_all(SSL *ssl, const char *buf, size_t n)
{
    size_t put = 0;

    while (put < n) {
        int r = SSL_write(ssl, buf + put, (int)(n - put));
        if (r <= 0) {
            return false;
        }
        put += (size_t)r;
    }
    return true;
}

/* Serves requests on one connection until it closes: /big/N answers N bytes, anything else
 * echoes the body (or "tls-ok" without one). */
static void *
conn_main(void *arg)
{
    struct conn_arg *a = arg;
    struct tls_srv *s = a->s;
    SSL *ssl = SSL_new(s->ctx);
    char head[8192];

    SSL_set_fd(ssl, a->fd);
    if (SSL_accept(ssl) == 1) {
        const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        pthread_mutex_lock(&s->lock);
        snprintf(s->sni, sizeof(s->sni), "%s", sni != NULL ? sni : "");
        s->n_resumed += SSL_session_reused(ssl) ? 1 : 0;
        pthread_mutex_unlock(&s->lock);
        for (;;) {
            size_t len = 0;
            char *end = NULL;
            char *cl;
            size_t body_len = 0;
            char *body;
            char target[256] = "";
            char resp[128];
            const char *out;
            size_t out_len;
            char *big = NULL;

            while (end == NULL && len < sizeof(head) - 1) {
                int r = SSL_read(ssl, head + len, 1);
                if (r <= 0) {
                    goto done;
                }
                len++;
                head[len] = '\0';
                end = strstr(head, "\r\n\r\n");
            }
            if (end == NULL) {
                goto done;
            }
            sscanf(head, "%*s %255s", target);
            cl = strcasestr(head, "\r\nContent-Length:");
            if (cl != NULL) {
                body_len = strtoul(cl + 17, NULL, 10);
            }
            body = malloc(body_len + 1);
            if (!read_exact(ssl, body, body_len)) {
                free(body);
                goto done;
            }
            pthread_mutex_lock(&s->lock);
            s->n_reqs++;
            pthread_mutex_unlock(&s->lock);
            if (strncmp(target, "/big/", 5) == 0) {
                out_len = strtoul(target + 5, NULL, 10);
                big = malloc(out_len);
                for (size_t i = 0; i < out_len; i++) {
                    big[i] = (char)('a' + i % 26);
                }
                out = big;
            } else if (body_len > 0) {
                out = body;
                out_len = body_len;
            } else {
                out = "tls-ok";
                out_len = 6;
            }
            bool closing = strcmp(target, "/close") == 0;
            snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n%sContent-Length: %zu\r\n\r\n",
                     closing ? "Connection: close\r\n" : "", out_len);
            bool ok = write_all(ssl, resp, strlen(resp)) && write_all(ssl, out, out_len);
            free(body);
            free(big);
            if (!ok || closing) {
                goto done;
            }
        }
    }
done:
    SSL_free(ssl);
    close(a->fd);
    free(a);
    return NULL;
}

static void *
acceptor_main(void *arg)
{
    struct tls_srv *s = arg;

    while (!s->stop) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        struct conn_arg *a;
        int fd;

        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        a = calloc(1, sizeof(*a));
        a->s = s;
        a->fd = fd;
        pthread_mutex_lock(&s->lock);
        s->n_conns++;
        if (s->n_conn_threads < MAX_CONN_THREADS) {
            s->conn_fds[s->n_conn_threads] = fd;
            pthread_create(&s->conn_threads[s->n_conn_threads++], NULL, conn_main, a);
        } else {
            close(fd);
            free(a);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

static void
tls_srv_start(struct tls_srv *s, const char *san)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *cert;

    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    cert = make_cert(key, "core", san, false);
    s->ctx = SSL_CTX_new(TLS_server_method());
    assert_int_equal(SSL_CTX_use_certificate(s->ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, key), 1);
    X509_free(cert);
    EVP_PKEY_free(key);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len), 0);
    s->port = ntohs(sin.sin_port);
    pthread_create(&s->acceptor, NULL, acceptor_main, s);
}

static void
tls_srv_stop(struct tls_srv *s)
{
    s->stop = true;
    pthread_join(s->acceptor, NULL);
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n_conn_threads; i++) {
        /* Wakes a thread blocked in SSL_read; it closes its own descriptor. */
        shutdown(s->conn_fds[i], SHUT_RDWR);
    }
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->n_conn_threads; i++) {
        pthread_join(s->conn_threads[i], NULL);
    }
    close(s->lfd);
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->lock);
}

static int
srv_count(struct tls_srv *s, const int *field)
{
    int v;

    pthread_mutex_lock(&s->lock);
    v = *field;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* ---- the client side ------------------------------------------------------------------------- */

struct ctx {
    struct event_base *base;
    struct bp_upstream *u;
    struct tls_srv good;  /* certificate for 127.0.0.1 and localhost */
    struct tls_srv wrong; /* certificate for other.test only */
    int done;
    bp_err rc;
    int status;
    struct bp_buf body;
};

static void
on_done(void *arg, bp_err rc, const struct bp_upstream_resp *resp)
{
    struct ctx *c = arg;

    c->rc = rc;
    c->status = resp != NULL ? resp->status : 0;
    bp_buf_reset(&c->body);
    if (resp != NULL) {
        bp_buf_append(&c->body, resp->body.data, resp->body.len);
    }
    c->done++;
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    *(bool *)arg = true;
}

/* One request, the loop run (bounded) until its callback ran. */
static void
roundtrip(struct ctx *c, const char *method, const char *url, const char *ca_file, const char *body,
          size_t body_len)
{
    struct bp_upstream_req req = {
        .method = method, .url = url, .ca_file = ca_file, .body = body, .body_len = body_len};
    int target = c->done + 1;
    bool expired = false;
    struct event *t = evtimer_new(c->base, on_deadline, &expired);
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};

    assert_int_equal(bp_upstream_send(c->u, &req, on_done, c, NULL), BP_OK);
    evtimer_add(t, &tv);
    while (c->done < target && !expired) {
        event_base_loop(c->base, EVLOOP_ONCE);
    }
    event_free(t);
    assert_int_equal(c->done, target);
}

static long long
tls_errors(void)
{
    static const char series[] = "blnkproxy_upstream_errors_total{kind=\"tls\"} ";
    struct bp_buf b;
    long long v = -1;
    const char *p;

    bp_buf_init(&b, 1 << 20);
    bp_metrics_render(&b);
    p = strstr(b.data, series);
    if (p != NULL) {
        v = strtoll(p + strlen(series), NULL, 10);
    }
    bp_buf_cleanup(&b);
    return v;
}

/* Runs fn with stderr captured; returns what was logged (static buffer). */
static const char *
logged_during(struct ctx *c, void (*fn)(struct ctx *))
{
    static char text[8192];
    char path[] = "/tmp/bp_upstream_tls_logXXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    ssize_t n;

    assert_true(fd >= 0);
    fflush(stderr);
    dup2(fd, STDERR_FILENO);
    fn(c);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(fd, text, sizeof(text) - 1, 0);
    close(fd);
    unlink(path);
    text[n > 0 ? n : 0] = '\0';
    return text;
}

static int
setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));
    struct bp_upstream_opts o = {
        .connect_timeout_ms = 5000,
        .total_timeout_ms = 10000,
        .max_response_bytes = 4 * 1024 * 1024,
    };

    assert_int_equal(bp_metrics_init(1), BP_OK);
    bp_metrics_bind_thread(0);
    c->base = event_base_new();
    tls_srv_start(&c->good, "IP:127.0.0.1,DNS:localhost");
    tls_srv_start(&c->wrong, "DNS:other.test");
    bp_buf_init(&c->body, SIZE_MAX);
    assert_int_equal(bp_upstream_new(c->base, &o, &c->u), BP_OK);
    *state = c;
    return 0;
}

static int
teardown(void **state)
{
    struct ctx *c = *state;

    bp_upstream_free(c->u);
    tls_srv_stop(&c->good);
    tls_srv_stop(&c->wrong);
    bp_buf_cleanup(&c->body);
    event_base_free(c->base);
    free(c);
    bp_metrics_shutdown();
    return 0;
}

static int
group_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN); /* the servers' writes, not the client's */
    make_ca();
    return bp_upstream_global_init() == BP_OK ? 0 : -1;
}

static int
group_teardown(void **state)
{
    unlink(ca_path);
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
    return 0;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void
test_verified_tls_by_address_and_kept_alive(void **state)
{
    struct ctx *c = *state;
    char url[96];

    snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", c->good.port);
    roundtrip(c, "GET", url, ca_path, NULL, 0);
    assert_int_equal(c->rc, BP_OK);
    assert_int_equal(c->status, 200);
    assert_int_equal(c->body.len, 6);
    assert_memory_equal(c->body.data, "tls-ok", 6);
    roundtrip(c, "GET", url, ca_path, NULL, 0);
    assert_int_equal(c->rc, BP_OK);
    assert_int_equal(srv_count(&c->good, &c->good.n_reqs), 2);
    assert_int_equal(srv_count(&c->good, &c->good.n_conns), 1);
    /* No SNI for an address (RFC 6066 §3). */
    pthread_mutex_lock(&c->good.lock);
    assert_string_equal(c->good.sni, "");
    pthread_mutex_unlock(&c->good.lock);
    assert_int_equal(tls_errors(), 0);
}

static void
test_verified_tls_by_name_sends_sni(void **state)
{
    struct ctx *c = *state;
    char url[96];

    snprintf(url, sizeof(url), "https://localhost:%d/x", c->good.port);
    roundtrip(c, "GET", url, ca_path, NULL, 0);
    assert_int_equal(c->rc, BP_OK);
    assert_int_equal(c->status, 200);
    pthread_mutex_lock(&c->good.lock);
    assert_string_equal(c->good.sni, "localhost");
    pthread_mutex_unlock(&c->good.lock);
}

static void
test_bodies_both_ways_over_tls(void **state)
{
    struct ctx *c = *state;
    size_t big = 1024 * 1024 + 7;
    char *body = malloc(big);
    char url[96];

    for (size_t i = 0; i < big; i++) {
        body[i] = (char)(i * 7 + i / 4096);
    }
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/echo", c->good.port);
    /* Small: one record with the head. */
    roundtrip(c, "POST", url, ca_path, "{\"a\":1}", 7);
    assert_int_equal(c->rc, BP_OK);
    assert_int_equal(c->body.len, 7);
    assert_memory_equal(c->body.data, "{\"a\":1}", 7);
    /* Large: written as the socket takes it. */
    roundtrip(c, "POST", url, ca_path, body, big);
    assert_int_equal(c->rc, BP_OK);
    assert_int_equal(c->body.len, big);
    assert_memory_equal(c->body.data, body, big);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/big/300000", c->good.port);
    roundtrip(c, "GET", url, ca_path, NULL, 0);
    assert_int_equal(c->rc, BP_OK);
    assert_int_equal(c->body.len, 300000);
    assert_int_equal(c->body.data[299999], 'a' + 299999 % 26);
    assert_int_equal(srv_count(&c->good, &c->good.n_conns), 1);
    free(body);
}

static void
wrong_host(struct ctx *c)
{
    char url[96];

    snprintf(url, sizeof(url), "https://localhost:%d/x", c->wrong.port);
    roundtrip(c, "GET", url, ca_path, NULL, 0);
}

static void
test_wrong_host_name_is_refused(void **state)
{
    struct ctx *c = *state;
    const char *log = logged_during(c, wrong_host);

    assert_int_equal(c->rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_int_equal(srv_count(&c->wrong, &c->wrong.n_reqs), 0);
    assert_int_equal(tls_errors(), 1);
    assert_non_null(strstr(log, "hostname mismatch"));
}

static void
wrong_address(struct ctx *c)
{
    char url[96];

    snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", c->wrong.port);
    roundtrip(c, "GET", url, ca_path, NULL, 0);
}

static void
test_certificate_not_for_the_address_is_refused(void **state)
{
    struct ctx *c = *state;
    const char *log = logged_during(c, wrong_address);

    assert_int_equal(c->rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_int_equal(srv_count(&c->wrong, &c->wrong.n_reqs), 0);
    assert_int_equal(tls_errors(), 1);
    assert_non_null(strstr(log, "IP address mismatch"));
}

static void
unknown_ca(struct ctx *c)
{
    char url[96];

    snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", c->good.port);
    roundtrip(c, "GET", url, NULL, NULL, 0); /* the system store does not know the test CA */
}

static void
test_unknown_ca_is_refused(void **state)
{
    struct ctx *c = *state;
    const char *log = logged_during(c, unknown_ca);

    assert_int_equal(c->rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_int_equal(srv_count(&c->good, &c->good.n_reqs), 0);
    assert_int_equal(tls_errors(), 1);
    assert_non_null(strstr(log, "TLS certificate verification failed"));
}

static void
missing_ca_file(struct ctx *c)
{
    char url[96];

    snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", c->good.port);
    roundtrip(c, "GET", url, "/nonexistent/blnkproxy-ca.pem", NULL, 0);
}

static void
test_unreadable_ca_file_is_refused(void **state)
{
    struct ctx *c = *state;
    const char *log = logged_during(c, missing_ca_file);

    assert_int_equal(c->rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_int_equal(srv_count(&c->good, &c->good.n_reqs), 0);
    assert_int_equal(tls_errors(), 1);
    assert_non_null(strstr(log, "CA file"));
}

/* The CA file and the system store are different origins: a connection verified with one is
 * never handed to a request that names the other. */
static void
test_ca_file_is_part_of_the_pool_key(void **state)
{
    struct ctx *c = *state;
    char url[96];

    snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", c->good.port);
    roundtrip(c, "GET", url, ca_path, NULL, 0);
    assert_int_equal(c->rc, BP_OK);
    roundtrip(c, "GET", url, NULL, NULL, 0);
    assert_int_equal(c->rc, BP_ERR_UPSTREAM_UNREACHABLE);
    assert_int_equal(srv_count(&c->good, &c->good.n_reqs), 1);
}

/* A new connection to an origin resumes the session Core gave the last one (no second full
 * handshake), unless the CA file changed since: then the new trust is checked in full. */
static void
test_new_connection_resumes_the_session(void **state)
{
    struct ctx *c = *state;
    char close_url[96];
    char url[96];
    char tmp[sizeof(ca_path) + 8];
    FILE *f;

    snprintf(close_url, sizeof(close_url), "https://127.0.0.1:%d/close", c->good.port);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", c->good.port);
    roundtrip(c, "GET", close_url, ca_path, NULL, 0);
    assert_int_equal(c->rc, BP_OK);
    roundtrip(c, "GET", close_url, ca_path, NULL, 0);
    assert_int_equal(c->rc, BP_OK);
    assert_int_equal(srv_count(&c->good, &c->good.n_conns), 2);
    assert_int_equal(srv_count(&c->good, &c->good.n_resumed), 1);

    /* The same CA, as a new file in its place: a full handshake again. */
    snprintf(tmp, sizeof(tmp), "%s.new", ca_path);
    f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, ca_cert), 1);
    fclose(f);
    assert_int_equal(rename(tmp, ca_path), 0);
    roundtrip(c, "GET", url, ca_path, NULL, 0);
    assert_int_equal(c->rc, BP_OK);
    assert_int_equal(srv_count(&c->good, &c->good.n_conns), 3);
    assert_int_equal(srv_count(&c->good, &c->good.n_resumed), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verified_tls_by_address_and_kept_alive, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_verified_tls_by_name_sends_sni, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bodies_both_ways_over_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_host_name_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificate_not_for_the_address_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_ca_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_ca_file_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ca_file_is_part_of_the_pool_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_connection_resumes_the_session, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
