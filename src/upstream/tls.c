/* TLS to Core with OpenSSL 3: the only file of the client that includes OpenSSL.
 *
 * Verification: the peer's chain against the instance's CA file or the system store, and the
 * URL's host against the certificate (SSL_set1_host for a name, X509_VERIFY_PARAM_set1_ip_asc for
 * an address); TLS 1.2 at least; SNI for names (never for addresses, RFC 6066 §3). A failure of
 * any of these fails the handshake, and the transfer with it (counted as a TLS error).
 *
 * Contexts: one SSL_CTX per CA file (and one for the system store) per client, made when a
 * connection first needs it. A CA file is read on the loop thread when its context is made: a
 * small local file, read once; its identity (device, inode, size, mtime) is checked with one
 * stat() when a new connection opens, and the context is made again when the file was replaced,
 * so a renewed CA needs no restart. Connections already open keep the context they started with
 * (OpenSSL reference-counts it).
 *
 * Sessions: each origin keeps the last session Core issued to one of its connections, and a
 * new connection offers it (resumption skips the chain check and the full negotiation), but only
 * with the context that verified it.
 *
 * I/O: read-ahead is on, so a record is read with one read() instead of header and body apart;
 * partial writes are on, so a large body goes out as the socket takes it, and the write buffer
 * may move between retries (the caller retries with the same bytes). */
#include "upstream/upstream-int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/tlssock.h"

struct bp_upstream__tls_ctx {
    struct bp_upstream__tls_ctx *next;
    char *ca_file; /* NULL: the system store */
    SSL_CTX *ctx;
    unsigned long gen; /* which making of the context: sessions of an older one are not offered */
    struct stat st;    /* of ca_file when the context was made */
    int64_t failed_ms; /* when making it last failed (monotonic; 0: it did not) */
};

/* A CA bundle larger than this is not one (a public bundle of every root is ~200 KiB): refused
 * unread, so that an instance pointed at some other file never has a loop parse it. */
#define CA_FILE_MAX ((off_t)1024 * 1024)
/* After a CA file failed to load, requests fail at once for this long before it is read again. */
#define CA_RETRY_MS 1000

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_ok;
static int conn_index = -1; /* SSL ex_data slot: the struct bp_upstream__conn of an SSL */

static void
init_index(void)
{
    init_ok = bp_tlssock_init() == BP_OK;
    conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (conn_index < 0) {
        init_ok = 0;
    }
}

/* OpenSSL hands over a session Core issued (TLS 1.3: a ticket read after the handshake): the
 * origin keeps the newest, so its next new connection resumes instead of verifying the chain and
 * negotiating again (curl's session cache did the same). Returns 1: the reference is ours. */
static int
on_new_session(SSL *ssl, SSL_SESSION *session)
{
    struct bp_upstream__conn *c = SSL_get_ex_data(ssl, conn_index);

    if (c == NULL || c->o == NULL) {
        return 0;
    }
    SSL_SESSION_free(c->o->tls_session);
    c->o->tls_session = session;
    c->o->tls_session_gen = c->tls_gen;
    return 1;
}

void
bp_upstream__tls_origin_free(struct bp_upstream__origin *o)
{
    SSL_SESSION_free(o->tls_session);
    o->tls_session = NULL;
}

bp_err
bp_upstream__tls_global_init(void)
{
    pthread_once(&init_once, init_index);
    return init_ok == 1 ? BP_OK : BP_ERR_IO;
}

/* The first queued OpenSSL error as text, then the queue cleared. */
static void
ssl_error_text(const char *what, char *cause, size_t cause_len)
{
    unsigned long e = ERR_get_error();
    char text[160];

    if (e == 0) {
        snprintf(cause, cause_len, "%s", what);
    } else {
        ERR_error_string_n(e, text, sizeof(text));
        snprintf(cause, cause_len, "%s: %s", what, text);
    }
    ERR_clear_error();
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static SSL_CTX *
ctx_make(const char *ca_file, char *cause, size_t cause_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        ssl_error_text("TLS context", cause, cause_len);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Sessions are kept per origin (on_new_session), not in OpenSSL's cache keyed by nothing we
     * control: a session is only ever offered to the origin that issued it. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    /* A close without close_notify reads as an end of stream, as it does over plain TCP: an
     * answer whose framing is not complete by then fails either way, and many servers skip it. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1
                        : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ssl_error_text(ca_file != NULL ? "cannot load the instance's CA file"
                                       : "cannot load the system CA store",
                       cause, cause_len);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The context for ca_file, made or remade as needed (*out_gen: which making). NULL with cause
 * filled on failure. */
static SSL_CTX *
ctx_get(struct bp_upstream *u, const char *ca_file, unsigned long *out_gen, char *cause,
        size_t cause_len)
{
    struct bp_upstream__tls_ctx *t;
    struct stat st;

    memset(&st, 0, sizeof(st));
    if (ca_file != NULL && stat(ca_file, &st) != 0) {
        snprintf(cause, cause_len, "cannot read the instance's CA file: %s", strerror(errno));
        return NULL;
    }
    if (ca_file != NULL && st.st_size > CA_FILE_MAX) {
        snprintf(cause, cause_len, "the instance's CA file is larger than a CA bundle can be (1 MiB)");
        return NULL;
    }
    for (t = u->tls_ctxs; t != NULL; t = t->next) {
        if ((t->ca_file == NULL) == (ca_file == NULL) &&
            (ca_file == NULL || strcmp(t->ca_file, ca_file) == 0)) {
            break;
        }
    }
    if (t != NULL && t->ctx != NULL && (ca_file == NULL || same_file(&t->st, &st))) {
        *out_gen = t->gen;
        return t->ctx;
    }
    if (t != NULL && t->ctx == NULL && t->failed_ms != 0 && bp_clock_mono_ms() - t->failed_ms < CA_RETRY_MS) {
        snprintf(cause, cause_len, "cannot load the instance's CA file (it failed a moment ago)");
        return NULL;
    }
    if (t == NULL) {
        t = bp_calloc(1, sizeof(*t));
        t->ca_file = ca_file != NULL ? bp_strdup(ca_file) : NULL;
        t->next = u->tls_ctxs;
        u->tls_ctxs = t;
    }
    /* Made anew (first use, or the file was replaced); open connections keep their reference. */
    SSL_CTX_free(t->ctx);
    t->ctx = ctx_make(ca_file, cause, cause_len);
    t->failed_ms = t->ctx == NULL ? bp_clock_mono_ms() : 0;
    t->st = st;
    t->gen = ++u->tls_ctx_gen;
    *out_gen = t->gen;
    return t->ctx;
}

bp_err
bp_upstream__tls_start(struct bp_upstream__conn *c, char *cause, size_t cause_len)
{
    const struct bp_upstream__origin *o = c->o;
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *bio;

    ERR_clear_error();
    ctx = ctx_get(c->u, o->ca_file, &c->tls_gen, cause, cause_len);
    if (ctx == NULL) {
        return BP_ERR_IO;
    }
    ssl = SSL_new(ctx);
    if (ssl == NULL) {
        ssl_error_text("TLS session", cause, cause_len);
        return BP_ERR_IO;
    }
    if (o->is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), o->host) != 1) {
            ssl_error_text("TLS address check", cause, cause_len);
            SSL_free(ssl);
            return BP_ERR_IO;
        }
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set_tlsext_host_name(ssl, o->host) != 1 || SSL_set1_host(ssl, o->host) != 1) {
            ssl_error_text("TLS host name", cause, cause_len);
            SSL_free(ssl);
            return BP_ERR_IO;
        }
    }
    bio = bp_tlssock_bio(c->fd);
    if (bio == NULL) {
        ssl_error_text("TLS socket", cause, cause_len);
        SSL_free(ssl);
        return BP_ERR_IO;
    }
    SSL_set_bio(ssl, bio, bio);
    SSL_set_ex_data(ssl, conn_index, c);
    /* Only a session verified with this very context: a replaced CA file means new trust, which
     * a resumed session would skip. */
    if (o->tls_session != NULL && o->tls_session_gen == c->tls_gen &&
        SSL_set_session(ssl, o->tls_session) != 1) {
        ERR_clear_error();
    }
    SSL_set_connect_state(ssl);
    c->ssl = ssl;
    return BP_OK;
}

/* Maps the result of an SSL_* call. */
static enum bp_upstream__io
map_result(struct bp_upstream__conn *c, int ret, const char *what, char *cause, size_t cause_len)
{
    int err = SSL_get_error(c->ssl, ret);

    switch (err) {
    case SSL_ERROR_WANT_READ:
        return BP_UPSTREAM_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return BP_UPSTREAM_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return BP_UPSTREAM_IO_EOF;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            /* Nothing queued by OpenSSL: the socket's own error. */
            snprintf(cause, cause_len, "%s: %s", what,
                     errno != 0 ? strerror(errno) : "connection closed");
            return BP_UPSTREAM_IO_ERROR;
        }
        ssl_error_text(what, cause, cause_len);
        return BP_UPSTREAM_IO_ERROR;
    default:
        ssl_error_text(what, cause, cause_len);
        return BP_UPSTREAM_IO_ERROR;
    }
}

enum bp_upstream__io
bp_upstream__tls_handshake(struct bp_upstream__conn *c, char *cause, size_t cause_len)
{
    int ret;
    long verify;

    ERR_clear_error();
    errno = 0;
    ret = SSL_do_handshake(c->ssl);
    if (ret == 1) {
        return BP_UPSTREAM_IO_OK;
    }
    verify = SSL_get_verify_result(c->ssl);
    if (verify != X509_V_OK) {
        /* The reason an operator can act on (unknown CA, wrong host name, expired). */
        snprintf(cause, cause_len, "TLS certificate verification failed: %s",
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
        return BP_UPSTREAM_IO_ERROR;
    }
    return map_result(c, ret, "TLS handshake failed", cause, cause_len);
}

enum bp_upstream__io
bp_upstream__tls_read(struct bp_upstream__conn *c, char *buf, size_t len, size_t *n, char *cause,
                      size_t cause_len)
{
    size_t got = 0;
    int ret;

    ERR_clear_error();
    errno = 0;
    ret = SSL_read_ex(c->ssl, buf, len, &got);
    if (ret == 1) {
        *n = got;
        return BP_UPSTREAM_IO_OK;
    }
    return map_result(c, ret, "TLS read failed", cause, cause_len);
}

enum bp_upstream__io
bp_upstream__tls_write(struct bp_upstream__conn *c, const char *buf, size_t len, size_t *n,
                       char *cause, size_t cause_len)
{
    size_t put = 0;
    int ret;

    ERR_clear_error();
    errno = 0;
    ret = SSL_write_ex(c->ssl, buf, len, &put);
    if (ret == 1) {
        *n = put;
        return BP_UPSTREAM_IO_OK;
    }
    return map_result(c, ret, "TLS write failed", cause, cause_len);
}

bool
bp_upstream__tls_has_pending(const struct bp_upstream__conn *c)
{
    return c->ssl != NULL && SSL_has_pending(c->ssl) == 1;
}

void
bp_upstream__tls_close(struct bp_upstream__conn *c, bool clean)
{
    if (c->ssl == NULL) {
        return;
    }
    if (clean && SSL_is_init_finished(c->ssl)) {
        /* One non-blocking attempt at close_notify; whatever happens, the socket closes next.
         * It also tells OpenSSL the connection ended well: SSL_free marks the session of a
         * connection that did not as not resumable, and the origin's next connection would
         * negotiate in full. */
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl);
    }
    ERR_clear_error();
    SSL_free(c->ssl);
    c->ssl = NULL;
}

void
bp_upstream__tls_free_all(struct bp_upstream *u)
{
    while (u->tls_ctxs != NULL) {
        struct bp_upstream__tls_ctx *t = u->tls_ctxs;
        u->tls_ctxs = t->next;
        SSL_CTX_free(t->ctx);
        bp_free(t->ca_file);
        bp_free(t);
    }
}

const char *
bp_upstream_ca_file_check(const char *path, char *why, size_t why_len)
{
    struct stat st;
    SSL_CTX *ctx;

    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        return "not a readable file";
    }
    if (st.st_size > CA_FILE_MAX) {
        return "larger than a CA bundle can be (1 MiB)";
    }
    if (st.st_size == 0) {
        return "empty";
    }
    if (bp_upstream__tls_global_init() != BP_OK) {
        return "TLS is not available";
    }
    ERR_clear_error();
    ctx = ctx_make(path, why, why_len);
    if (ctx == NULL) {
        /* ctx_make's text names OpenSSL's reason; the caller's message says what the file must be. */
        return "not a PEM file of CA certificates";
    }
    SSL_CTX_free(ctx);
    return NULL;
}
