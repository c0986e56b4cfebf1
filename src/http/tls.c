/* TLS on the listener (tls_listen): the certificate and key, and a connection's TLS session.
 * The only file of the http module that includes OpenSSL; conn.c calls it in place of read(2)
 * and write(2) for a connection that came in on the TLS listener.
 *
 * The context: TLS 1.2 and 1.3 only; for 1.2 only forward-secret AEAD suites (ECDHE with
 * AES-GCM or ChaCha20-Poly1305), for 1.3 OpenSSL's defaults (all AEAD); no renegotiation (a
 * client could otherwise make us do a handshake's work again and again on one connection); ALPN
 * answers http/1.1 and refuses a client that offers only other protocols (RFC 7301 §3.2). The
 * certificate and key are read when the server starts and again at each SIGHUP into a new
 * context, published with the live configuration: new connections take the new one, open ones
 * keep the one they started with (OpenSSL counts its references), so a renewal drops nothing.
 * A key file with a passphrase is refused, never prompted for (a service has no terminal).
 *
 * A connection: its own SSL on the socket (lib/tlssock.h: writes never raise SIGPIPE), in server
 * mode, without read-ahead, so that SSL_pending counts every byte OpenSSL holds that the socket
 * will not signal again. Buffers are released while idle (SSL_MODE_RELEASE_BUFFERS): an idle
 * keep-alive connection holds no 16 KiB record buffers. Partial writes are on and the write
 * buffer may move: conn.c retries a write that wanted to wait from its output buffer, with at
 * least the bytes it offered before (what OpenSSL requires of a retry). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "http/http-int.h"
#include "lib/alloc.h"
#include "lib/tlssock.h"
#include "metrics/metrics.h"

/* Mozilla's "intermediate" TLS 1.2 list: forward secrecy and AEAD only. */
#define TLS12_CIPHERS                                                                                        \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"               \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct bp_http_tls {
    atomic_int refs; /* each live configuration that uses it */
    SSL_CTX *ctx;
};

/* The reason OpenSSL queued last, then the queue cleared. */
static void
openssl_reason(char *out, size_t cap)
{
    unsigned long e;
    unsigned long last = 0;

    while ((e = ERR_get_error()) != 0) {
        last = e;
    }
    if (last == 0) {
        snprintf(out, cap, "unknown error");
        return;
    }
    snprintf(out, cap, "%s", ERR_reason_error_string(last) != NULL ? ERR_reason_error_string(last) : "error");
}

/* A key with a passphrase would make OpenSSL prompt on the terminal: there is none. */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0;
}

static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *out_len, const unsigned char *in,
            unsigned int in_len, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *chosen = NULL;
    (void)ssl;
    (void)arg;

    if (SSL_select_next_proto(&chosen, out_len, ours, sizeof(ours) - 1, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* The key on its own first, so that a key that is not the certificate's is told apart from a file
 * that holds no usable key. NULL (OpenSSL's reason queued) when it does not load. */
static EVP_PKEY *
read_key(const char *file)
{
    BIO *b = BIO_new_file(file, "r");
    EVP_PKEY *key;

    if (b == NULL) {
        return NULL;
    }
    key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    return key;
}

/* A file the process can read, or why not (before OpenSSL's less helpful reasons). */
static bool
readable(const char *setting, const char *path, char *err, size_t err_len)
{
    if (access(path, R_OK) == 0) {
        return true;
    }
    snprintf(err, err_len, "%s: cannot read %s: %s", setting, path, strerror(errno));
    return false;
}

bp_err
bp_http_tls_load(const struct bp_config *cfg, struct bp_http_tls **out, char *err, size_t err_len)
{
    char why[200];
    SSL_CTX *ctx;
    EVP_PKEY *key;

    *out = NULL;
    if (cfg->tls_listen_host == NULL) {
        if (cfg->tls_cert != NULL || cfg->tls_key != NULL) {
            snprintf(err, err_len,
                     "tls_cert and tls_key are for tls_listen, which is not set: set tls_listen (e.g. "
                     "0.0.0.0:8443) or remove them");
            return BP_ERR_INVALID;
        }
        return BP_OK;
    }
    if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
        snprintf(
            err, err_len,
            "tls_listen needs tls_cert (a PEM file: the certificate, then its intermediates) and tls_key "
            "(a PEM file: its private key)");
        return BP_ERR_INVALID;
    }
    if (!readable("tls_cert", cfg->tls_cert, err, err_len) ||
        !readable("tls_key", cfg->tls_key, err, err_len)) {
        return BP_ERR_IO;
    }
    if (bp_tlssock_init() != BP_OK) {
        snprintf(err, err_len, "tls_listen: cannot initialise OpenSSL");
        return BP_ERR_IO;
    }
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        openssl_reason(why, sizeof(why));
        snprintf(err, err_len, "tls_listen: cannot set up TLS: %s", why);
        SSL_CTX_free(ctx);
        return BP_ERR_IO;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        openssl_reason(why, sizeof(why));
        snprintf(err, err_len, "tls_cert: %s is not a PEM certificate chain (%s)", cfg->tls_cert, why);
        SSL_CTX_free(ctx);
        return BP_ERR_INVALID;
    }
    key = read_key(cfg->tls_key);
    if (key == NULL) {
        openssl_reason(why, sizeof(why));
        snprintf(err, err_len,
                 "tls_key: %s is not an unencrypted PEM private key (%s); a key with a passphrase cannot be "
                 "used: decrypt it and protect the file instead (mode 0600, owned by the service's user)",
                 cfg->tls_key, why);
        SSL_CTX_free(ctx);
        return BP_ERR_INVALID;
    }
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, err_len, "tls_key: %s is not the private key of the certificate in %s", cfg->tls_key,
                 cfg->tls_cert);
        EVP_PKEY_free(key);
        SSL_CTX_free(ctx);
        return BP_ERR_INVALID;
    }
    EVP_PKEY_free(key);
    *out = bp_calloc(1, sizeof(**out));
    atomic_init(&(*out)->refs, 1);
    (*out)->ctx = ctx;
    return BP_OK;
}

struct bp_http_tls *
bp_http__tls_ref(struct bp_http_tls *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void
bp_http_tls_free(struct bp_http_tls *t)
{
    if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    SSL_CTX_free(t->ctx);
    bp_free(t);
}

bool
bp_http__tls_start(struct bp_conn *c, const struct bp_http_tls *t)
{
    SSL *ssl;
    BIO *bio;

    ERR_clear_error();
    ssl = SSL_new(t->ctx);
    if (ssl == NULL) {
        ERR_clear_error();
        return false;
    }
    bio = bp_tlssock_bio(c->fd);
    if (bio == NULL) {
        ERR_clear_error();
        SSL_free(ssl);
        return false;
    }
    SSL_set_bio(ssl, bio, bio);
    SSL_set_accept_state(ssl);
    c->ssl = ssl;
    return true;
}

enum bp_http__tls_step
bp_http__tls_handshake(struct bp_conn *c)
{
    int r;

    ERR_clear_error();
    r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls_ready = true;
        bp_metrics_tls_handshake(true);
        return BP_TLS_DONE;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return BP_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return BP_TLS_WANT_WRITE;
    default: {
        /* Not logged: anyone may send a bad hello, as often as they like. Counted. */
        bool plain = ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_HTTP_REQUEST;
        ERR_clear_error();
        c->tls_failed = true;
        c->tls_dead = true;
        bp_metrics_tls_handshake(false);
        return plain ? BP_TLS_PLAIN_HTTP : BP_TLS_FAILED;
    }
    }
}

void
bp_http__tls_abandoned(struct bp_conn *c)
{
    if (c->ssl != NULL && !c->tls_ready && !c->tls_failed) {
        c->tls_failed = true;
        bp_metrics_tls_handshake(false);
    }
}

/* A read or write that did not succeed (r from SSL_read_ex / SSL_write_ex), as read(2) and
 * write(2) report it: -1 with errno EAGAIN to wait (a read that must wait for the socket to take
 * output says so in tls_read_wants_write), 0 for a read at the client's end; any other failure
 * marks the session dead (no close_notify may follow). WANT_READ on a write cannot happen without
 * renegotiation: a broken session too. */
static ssize_t
io_failed(struct bp_conn *c, int r, bool reading)
{
    int e = SSL_get_error(c->ssl, r);

    if (e == SSL_ERROR_WANT_WRITE || (reading && e == SSL_ERROR_WANT_READ)) {
        if (reading) {
            c->tls_read_wants_write = e == SSL_ERROR_WANT_WRITE;
        }
        errno = EAGAIN;
        return -1;
    }
    if (reading && e == SSL_ERROR_ZERO_RETURN) {
        return 0; /* close_notify: the client half-closed */
    }
    ERR_clear_error();
    c->tls_dead = true;
    if (e != SSL_ERROR_SYSCALL) {
        errno = EPROTO;
        return -1;
    }
    if (reading && errno == 0) {
        return 0; /* the TCP connection ended without close_notify: an end all the same */
    }
    if (!reading && (errno == 0 || errno == EAGAIN)) {
        errno = EPIPE;
    }
    return -1;
}

ssize_t
bp_http__tls_read(struct bp_conn *c, void *buf, size_t len)
{
    size_t n = 0;
    int r;

    ERR_clear_error();
    r = SSL_read_ex(c->ssl, buf, len, &n);
    return r == 1 ? (ssize_t)n : io_failed(c, r, true);
}

ssize_t
bp_http__tls_write(struct bp_conn *c, const void *buf, size_t len)
{
    size_t n = 0;
    int r;

    ERR_clear_error();
    r = SSL_write_ex(c->ssl, buf, len, &n);
    return r == 1 ? (ssize_t)n : io_failed(c, r, false);
}

bool
bp_http__tls_pending(const struct bp_conn *c)
{
    return c->ssl != NULL && SSL_pending(c->ssl) > 0;
}

void
bp_http__tls_shutdown(struct bp_conn *c)
{
    if (c->ssl != NULL && c->tls_ready && !c->tls_dead &&
        (SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN) == 0) {
        /* One attempt at close_notify; a client that does not take it loses nothing. */
        ERR_clear_error();
        if (SSL_shutdown(c->ssl) < 0) {
            ERR_clear_error();
        }
    }
}

void
bp_http__tls_end(struct bp_conn *c)
{
    if (c->ssl == NULL) {
        return;
    }
    bp_http__tls_abandoned(c);
    SSL_free(c->ssl);
    c->ssl = NULL;
}
