/* The upstream HTTP client: one libcurl multi handle per loop thread, driven by that thread's
 * libevent base through curl's socket and timer callbacks (the curl_multi_socket_action pattern
 * of curl's docs/examples/multi-event.c).
 *
 * Threads: a struct bp_upstream and its transfers belong to the loop thread that created them;
 * nothing here takes a lock. bp_upstream_global_init runs once before any thread starts.
 *
 * Lifecycle of a transfer: bp_upstream_send builds an easy handle and adds it to the multi
 * (XFER_RUNNING). libevent reports socket readiness and timer expiry; each report calls
 * curl_multi_socket_action and then drains curl_multi_info_read. A finished transfer is removed
 * from the multi, its response is assembled, its callback runs once (XFER_CALLING), and it is
 * freed. If curl refuses the transfer while it is being set up, it becomes XFER_EARLY and its
 * failure is reported from a zero-delay event, never from inside bp_upstream_send.
 *
 * Invariants:
 * - User code (callbacks) never runs inside a curl callback: our curl callbacks only store bytes,
 *   and completions are handled after curl_multi_socket_action has returned. So a user callback
 *   may call bp_upstream_send, bp_upstream_cancel (any transfer) or bp_upstream_free.
 * - Nothing is freed while it may be on the stack: while a dispatch (libevent callback of ours)
 *   is running, cancelled transfers go to a graveyard and bp_upstream_free only marks the client
 *   closing; the outermost dispatch releases both when it unwinds.
 * - curl silently re-sends a request whose reused connection died. Every request but GET and
 *   HEAD gets a pre-request callback (CURLOPT_PREREQFUNCTION, run before every send of the
 *   request) that refuses the second attempt, so a write is sent at most once (DESIGN §8: never
 *   retry a request whose body was sent; a bodiless POST /refund-transaction/:id is a write too),
 *   while reads may still be retried on a fresh connection.
 *   The body itself is POSTFIELDS (borrowed): curl writes a small one together with the header
 *   block, one send() instead of two and no wait for the socket to become writable again.
 * - The request headers carry Core's secret (X-Blnk-Key): they are never logged. Failure logs
 *   name only the request id and instance the caller gave, the method, the host and curl's code
 *   and message.
 * - Metrics: every failed transfer that reaches its callback is counted once by kind
 *   (bp_metrics_upstream_error); cancelled ones are not. Sockets to Core are opened and closed
 *   through our own socket callbacks, so blnkproxy_upstream_connections follows curl's
 *   connection cache (kept-alive connections included) without asking curl for it. */
#include "upstream/upstream.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "core/log.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "metrics/metrics.h"

/* Response headers beyond these are a malformed answer, not something to relay. curl has its own
 * per-line limit; these bound what we keep. */
#define BP_UPSTREAM_MAX_RESP_HEADERS 256
#define BP_UPSTREAM_MAX_RESP_HEADER_BYTES (64 * 1024)
#define BP_UPSTREAM_MAX_METHOD 32
#define BP_UPSTREAM_MIN_MAXCONNECTS 1024

enum xfer_state {
    XFER_RUNNING, /* easy handle is in the multi */
    XFER_EARLY,   /* setup failed; waiting for the deferred failure report */
    XFER_CALLING, /* its callback is running */
    XFER_DEAD,    /* done or cancelled; memory waits in the graveyard or is gone */
};

struct bp_upstream_xfer {
    struct bp_upstream *u;
    struct bp_upstream_xfer *prev; /* live list, or graveyard (next only) */
    struct bp_upstream_xfer *next;
    enum xfer_state state;
    CURL *easy;
    struct curl_slist *req_headers;
    bp_upstream_cb cb;
    void *arg;

    /* Copies, for the failure log: the caller's strings may be gone once send returns. */
    char *method;
    char *url;
    char *request_id;    /* may be NULL */
    char *instance_id;   /* may be NULL */
    int n_attempts;      /* times curl was about to send a request with a body */
    bool resend_refused; /* a second attempt was stopped */

    CURLcode early_code;
    bool too_large;
    bool headers_overflow;
    bool in_header_block; /* between a status line and its blank line */
    size_t header_bytes;
    size_t headers_cap;
    struct bp_upstream_resp resp;
    char errbuf[CURL_ERROR_SIZE];
};

struct sock {
    struct sock *prev;
    struct sock *next;
    struct event *ev;
    curl_socket_t fd;
    int what;
};

struct bp_upstream {
    struct event_base *base;
    CURLM *multi;
    struct event *timer_ev;
    struct event *early_ev;
    struct bp_upstream_opts opts;
    struct bp_upstream_xfer *live;      /* running and early transfers */
    struct bp_upstream_xfer *graveyard; /* cancelled during a dispatch, freed when it unwinds */
    struct sock *socks;
    size_t inflight;
    int dispatch_depth;
    bool closing;
};

static void destroy(struct bp_upstream *u);

/* ---- global init ------------------------------------------------------------------------- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void *
curl_malloc_hook(size_t n)
{
    return bp_malloc(n);
}

static void
curl_free_hook(void *p)
{
    bp_free(p);
}

static void *
curl_realloc_hook(void *p, size_t n)
{
    return bp_realloc(p, n);
}

static char *
curl_strdup_hook(const char *s)
{
    return bp_strdup(s);
}

static void *
curl_calloc_hook(size_t count, size_t size)
{
    return bp_calloc(count, size);
}

static void
global_init_once(void)
{
    const curl_version_info_data *vi;

    /* curl_global_init(CURL_GLOBAL_DEFAULT) with our allocator, so that curl's memory follows the
     * project's out-of-memory policy like every other library's. */
    global_rc = curl_global_init_mem(CURL_GLOBAL_DEFAULT, curl_malloc_hook, curl_free_hook, curl_realloc_hook,
                                     curl_strdup_hook, curl_calloc_hook);
    if (global_rc != CURLE_OK) {
        return;
    }
    vi = curl_version_info(CURLVERSION_NOW);
    if ((vi->features & CURL_VERSION_ASYNCHDNS) == 0) {
        /* A synchronous resolver would block the loop thread on every new connection. */
        BP_WARN("libcurl has no asynchronous resolver; DNS lookups will block loop threads",
                BP_LSTR("curl_version", vi->version));
    }
}

bp_err
bp_upstream_global_init(void)
{
    pthread_once(&global_once, global_init_once);
    if (global_rc != CURLE_OK) {
        BP_ERROR("curl_global_init failed", BP_LSTR("curl_error", curl_easy_strerror(global_rc)));
        return BP_ERR_IO;
    }
    return BP_OK;
}

/* ---- transfer memory --------------------------------------------------------------------- */

static void
resp_headers_clear(struct bp_upstream_xfer *x)
{
    for (size_t i = 0; i < x->resp.n_headers; i++) {
        bp_free(x->resp.headers[i].name);
        bp_free(x->resp.headers[i].value);
    }
    x->resp.n_headers = 0;
    x->header_bytes = 0;
}

static void
xfer_free(struct bp_upstream_xfer *x)
{
    if (x == NULL) {
        return;
    }
    if (x->easy != NULL) {
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    curl_slist_free_all(x->req_headers);
    x->req_headers = NULL;
    resp_headers_clear(x);
    bp_free(x->method);
    bp_free(x->url);
    bp_free(x->request_id);
    bp_free(x->instance_id);
    bp_free(x->resp.headers);
    x->resp.headers = NULL;
    bp_buf_cleanup(&x->resp.body);
    bp_free(x);
}

static void
live_unlink(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u = x->u;

    if (x->prev != NULL) {
        x->prev->next = x->next;
    } else {
        u->live = x->next;
    }
    if (x->next != NULL) {
        x->next->prev = x->prev;
    }
    x->prev = NULL;
    x->next = NULL;
    BP_BUG_ON(u->inflight == 0);
    u->inflight--;
}

static void
live_link(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u = x->u;

    x->prev = NULL;
    x->next = u->live;
    if (u->live != NULL) {
        u->live->prev = x;
    }
    u->live = x;
    u->inflight++;
}

/* Takes a transfer off the multi and the live list. Its memory is released now, or when the
 * current dispatch unwinds if one is running (something up the stack may still hold it). */
static void
xfer_retire(struct bp_upstream_xfer *x)
{
    struct bp_upstream *u = x->u;

    if (x->state == XFER_RUNNING) {
        /* Safe: user code never runs inside a curl callback, so we are not in one. */
        curl_multi_remove_handle(u->multi, x->easy);
    }
    if (x->state == XFER_RUNNING || x->state == XFER_EARLY) {
        live_unlink(x);
    }
    x->state = XFER_DEAD;
    if (u->dispatch_depth > 0) {
        x->next = u->graveyard;
        u->graveyard = x;
        return;
    }
    xfer_free(x);
}

/* ---- curl per-transfer callbacks (store bytes only; never call user code) ------------------ */

/* curl keeps the close callback with the connection, which may outlive the transfer that opened
 * it (keep-alive cache) and even the multi's last transfer (closed in curl_multi_cleanup): so
 * neither callback takes a pointer to anything of ours. */
static curl_socket_t
on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);

    if (fd != CURL_SOCKET_BAD) {
        bp_metrics_upstream_conns_add(1);
    }
    return fd;
}

static int
on_close_socket(void *clientp, curl_socket_t fd)
{
    bp_metrics_upstream_conns_add(-1);
    return close(fd);
}

/* curl calls this each time it is about to send the request on a connection. A second call is
 * curl retrying on a fresh connection after the first one died: the body may already have
 * reached Core, so the transfer fails instead. */
static int
on_prereq(void *userp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port, int conn_local_port)
{
    struct bp_upstream_xfer *x = userp;

    x->n_attempts++;
    if (x->n_attempts > 1) {
        x->resend_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

static size_t
on_write(char *ptr, size_t size, size_t nmemb, void *userp)
{
    struct bp_upstream_xfer *x = userp;
    size_t n = size * nmemb;

    if (bp_buf_append(&x->resp.body, ptr, n) != BP_OK) {
        x->too_large = true;
        return 0; /* anything but n aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool
add_resp_header(struct bp_upstream_xfer *x, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    const char *v;
    const char *end = line + len;
    struct bp_upstream_header *h;

    if (colon == NULL || colon == line) {
        return true; /* not a field line; curl accepted it, we have nothing to relay */
    }
    if (x->resp.n_headers == BP_UPSTREAM_MAX_RESP_HEADERS) {
        return false;
    }
    if (x->resp.n_headers == x->headers_cap) {
        x->headers_cap = x->headers_cap ? x->headers_cap * 2 : 16;
        x->resp.headers = bp_realloc(x->resp.headers, x->headers_cap * sizeof(*x->resp.headers));
    }
    v = colon + 1;
    while (v < end && is_ows(*v)) {
        v++;
    }
    while (end > v && is_ows(end[-1])) {
        end--;
    }
    h = &x->resp.headers[x->resp.n_headers++];
    h->name = bp_strndup(line, (size_t)(colon - line));
    h->value = bp_strndup(v, (size_t)(end - v));
    return true;
}

/* An obsolete folded line continues the previous header's value with a single space. */
static void
fold_resp_header(struct bp_upstream_xfer *x, const char *line, size_t len)
{
    struct bp_upstream_header *h;
    size_t old;
    const char *end = line + len;

    if (x->resp.n_headers == 0) {
        return;
    }
    while (line < end && is_ows(*line)) {
        line++;
    }
    while (end > line && is_ows(end[-1])) {
        end--;
    }
    h = &x->resp.headers[x->resp.n_headers - 1];
    old = strlen(h->value);
    h->value = bp_realloc(h->value, old + 1 + (size_t)(end - line) + 1);
    h->value[old] = ' ';
    memcpy(h->value + old + 1, line, (size_t)(end - line));
    h->value[old + 1 + (size_t)(end - line)] = '\0';
}

/* curl hands over every header line of every response it reads: 1xx interim responses, the
 * final one and, after the body, trailers. Only the final header block is kept: each status
 * line starts over, and lines outside a header block (trailers) are ignored. */
static size_t
on_header(char *ptr, size_t size, size_t nitems, void *userp)
{
    struct bp_upstream_xfer *x = userp;
    size_t n = size * nitems;
    size_t len = n;

    while (len > 0 && (ptr[len - 1] == '\n' || ptr[len - 1] == '\r')) {
        len--;
    }
    if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        resp_headers_clear(x);
        x->in_header_block = true;
        return n;
    }
    if (len == 0) {
        x->in_header_block = false;
        return n;
    }
    if (!x->in_header_block) {
        return n;
    }
    x->header_bytes += n;
    if (x->header_bytes > BP_UPSTREAM_MAX_RESP_HEADER_BYTES) {
        x->headers_overflow = true;
        return 0;
    }
    if (is_ows(ptr[0])) {
        fold_resp_header(x, ptr, len);
        return n;
    }
    if (!add_resp_header(x, ptr, len)) {
        x->headers_overflow = true;
        return 0;
    }
    return n;
}

/* ---- response assembly --------------------------------------------------------------------- */

static bool
name_is(const char *name, const char *want)
{
    return strcasecmp(name, want) == 0;
}

static bool
is_hop_by_hop(const char *name)
{
    static const char *const fixed[] = {
        "Connection",
        "Keep-Alive",
        "Transfer-Encoding",
        "TE",
        "Trailer",
        "Upgrade",
        /* The body is complete; the caller frames it anew. */
        "Content-Length",
    };

    for (size_t i = 0; i < BP_ARRAY_LEN(fixed); i++) {
        if (name_is(name, fixed[i])) {
            return true;
        }
    }
    return strncasecmp(name, "Proxy-", 6) == 0;
}

/* Whether name is one of the comma-separated tokens of a Connection header value. */
static bool
named_by_connection(const char *name, const char *value)
{
    size_t nlen = strlen(name);
    const char *p = value;

    while (*p != '\0') {
        const char *start;
        const char *end;

        while (*p == ',' || is_ows(*p)) {
            p++;
        }
        start = p;
        while (*p != '\0' && *p != ',') {
            p++;
        }
        end = p;
        while (end > start && is_ows(end[-1])) {
            end--;
        }
        if ((size_t)(end - start) == nlen && nlen > 0 && strncasecmp(start, name, nlen) == 0) {
            return true;
        }
    }
    return false;
}

static bool
drop_resp_header(const struct bp_upstream_xfer *x, const char *name)
{
    if (is_hop_by_hop(name)) {
        return true;
    }
    for (size_t i = 0; i < x->resp.n_headers; i++) {
        const struct bp_upstream_header *h = &x->resp.headers[i];
        if (name_is(h->name, "Connection") && named_by_connection(name, h->value)) {
            return true;
        }
    }
    return false;
}

/* Removes hop-by-hop headers in place, keeping the order of the rest. Connection is consulted
 * for every header before any is removed, since it may come after the headers it names. */
static void
filter_resp_headers(struct bp_upstream_xfer *x)
{
    bool *drop = bp_calloc(x->resp.n_headers ? x->resp.n_headers : 1, sizeof(*drop));
    size_t kept = 0;

    for (size_t i = 0; i < x->resp.n_headers; i++) {
        drop[i] = drop_resp_header(x, x->resp.headers[i].name);
    }
    for (size_t i = 0; i < x->resp.n_headers; i++) {
        if (drop[i]) {
            bp_free(x->resp.headers[i].name);
            bp_free(x->resp.headers[i].value);
            continue;
        }
        x->resp.headers[kept++] = x->resp.headers[i];
    }
    x->resp.n_headers = kept;
    bp_free(drop);
}

static bp_err
map_result(const struct bp_upstream_xfer *x, CURLcode code)
{
    if (x->too_large) {
        return BP_ERR_UPSTREAM_TOO_LARGE;
    }
    if (code == CURLE_OK) {
        return BP_OK;
    }
    if (code == CURLE_OPERATION_TIMEDOUT) {
        return BP_ERR_UPSTREAM_TIMEOUT;
    }
    return BP_ERR_UPSTREAM_UNREACHABLE;
}

static void
log_failure(struct bp_upstream_xfer *x, bp_err rc, CURLcode code)
{
    CURLU *h = curl_url();
    char *host = NULL;
    const char *detail = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(code);

    if (x->resend_refused) {
        detail = "connection lost after the request was sent; not retried";
    } else if (x->headers_overflow) {
        detail = "response headers over limit";
    } else if (x->too_large) {
        detail = "response body over limit";
    }
    /* Only the host of the URL: the path and query are the client's business. */
    if (h != NULL && curl_url_set(h, CURLUPART_URL, x->url, 0) == CURLUE_OK) {
        curl_url_get(h, CURLUPART_HOST, &host, 0);
    }
    BP_WARN("upstream request failed", BP_LSTR("request_id", x->request_id),
            BP_LSTR("instance", x->instance_id), BP_LSTR("error", bp_err_str(rc)),
            BP_LSTR("method", x->method), BP_LSTR("host", host), BP_LINT("curl_code", code),
            BP_LSTR("curl_error", detail));
    curl_free(host);
    curl_url_cleanup(h);
}

/* The metrics kind of a failed transfer. A refused resend means the kept-alive connection died
 * under the request, which is a reset; going over our own limits is "other". */
static enum bp_metrics_upstream_error
classify_failure(const struct bp_upstream_xfer *x, CURLcode code)
{
    if (x->too_large || x->headers_overflow) {
        return BP_METRICS_UPSTREAM_OTHER;
    }
    if (x->resend_refused) {
        return BP_METRICS_UPSTREAM_RESET;
    }
    switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return BP_METRICS_UPSTREAM_CONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return BP_METRICS_UPSTREAM_TIMEOUT;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return BP_METRICS_UPSTREAM_RESET;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
        return BP_METRICS_UPSTREAM_TLS;
    default:
        return BP_METRICS_UPSTREAM_OTHER;
    }
}

/* Reports the end of a transfer to its owner and retires it. Called only from a dispatch. */
static void
finish(struct bp_upstream_xfer *x, CURLcode code)
{
    bp_err rc = map_result(x, code);
    const struct bp_upstream_resp *resp = NULL;

    BP_DEBUG_ASSERT(x->u->dispatch_depth > 0);
    if (rc == BP_OK) {
        long status = 0;
        curl_off_t total_us = 0;

        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &total_us);
        x->resp.status = (int)status;
        x->resp.upstream_us = (int64_t)total_us;
        filter_resp_headers(x);
        resp = &x->resp;
    } else {
        log_failure(x, rc, code);
        bp_metrics_upstream_error(classify_failure(x, code));
    }
    if (x->state == XFER_RUNNING) {
        curl_multi_remove_handle(x->u->multi, x->easy);
    }
    live_unlink(x);
    x->state = XFER_CALLING;
    x->cb(x->arg, rc, resp);
    /* The callback may have cancelled others or freed the client: both only defer while a
     * dispatch is running, so x and x->u are still here. */
    x->state = XFER_DEAD;
    x->next = x->u->graveyard;
    x->u->graveyard = x;
}

/* ---- dispatch: our libevent callbacks ----------------------------------------------------- */

static void
dispatch_enter(struct bp_upstream *u)
{
    u->dispatch_depth++;
}

static void
dispatch_leave(struct bp_upstream *u)
{
    u->dispatch_depth--;
    if (u->dispatch_depth > 0) {
        return;
    }
    while (u->graveyard != NULL) {
        struct bp_upstream_xfer *x = u->graveyard;
        u->graveyard = x->next;
        xfer_free(x);
    }
    if (u->closing) {
        destroy(u);
    }
}

static void
drain_completions(struct bp_upstream *u)
{
    CURLMsg *msg;
    int left;

    /* One message at a time: a callback may cancel another transfer, and removing its handle
     * also removes its queued message, so nothing read here can refer to a freed transfer. */
    while (!u->closing && (msg = curl_multi_info_read(u->multi, &left)) != NULL) {
        struct bp_upstream_xfer *x = NULL;
        CURLcode code = msg->data.result;

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        BP_BUG_ON(x == NULL || x->u != u || x->state != XFER_RUNNING);
        finish(x, code);
    }
}

static void
socket_action(struct bp_upstream *u, curl_socket_t fd, int ev_bitmask)
{
    int running = 0;
    CURLMcode mc;

    dispatch_enter(u);
    mc = curl_multi_socket_action(u->multi, fd, ev_bitmask, &running);
    if (mc != CURLM_OK) {
        BP_ERROR("curl_multi_socket_action failed", BP_LSTR("curl_error", curl_multi_strerror(mc)));
    }
    drain_completions(u);
    dispatch_leave(u);
}

/* The event's arg is the client, not the struct sock: curl may free that sock (CURL_POLL_REMOVE)
 * from inside curl_multi_socket_action while this very event is running. */
static void
on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    int mask = 0;

    if (what & EV_READ) {
        mask |= CURL_CSELECT_IN;
    }
    if (what & EV_WRITE) {
        mask |= CURL_CSELECT_OUT;
    }
    socket_action(arg, (curl_socket_t)fd, mask);
}

static void
on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static struct bp_upstream_xfer *
first_early(const struct bp_upstream *u)
{
    for (struct bp_upstream_xfer *x = u->live; x != NULL; x = x->next) {
        if (x->state == XFER_EARLY) {
            return x;
        }
    }
    return NULL;
}

static void
on_early_event(evutil_socket_t fd, short what, void *arg)
{
    struct bp_upstream *u = arg;

    dispatch_enter(u);
    /* Re-scan from the head each time: a callback may cancel the next early transfer. Early
     * failures are rare (curl refused the options), so the scan costs nothing in practice. */
    while (!u->closing) {
        struct bp_upstream_xfer *x = first_early(u);
        if (x == NULL) {
            break;
        }
        finish(x, x->early_code);
    }
    dispatch_leave(u);
}

/* ---- curl multi callbacks ------------------------------------------------------------------ */

static void
sock_remove(struct bp_upstream *u, struct sock *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        u->socks = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    event_free(s->ev);
    bp_free(s);
}

static int
on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct bp_upstream *u = userp;
    struct sock *s = socketp;
    short kind = EV_PERSIST;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            sock_remove(u, s);
        }
        return 0;
    }
    if (what & CURL_POLL_IN) {
        kind |= EV_READ;
    }
    if (what & CURL_POLL_OUT) {
        kind |= EV_WRITE;
    }
    if (s == NULL) {
        s = bp_calloc(1, sizeof(*s));
        s->fd = fd;
        s->ev = event_new(u->base, fd, kind, on_socket_event, u);
        if (s->ev == NULL) {
            bp_free(s);
            return -1;
        }
        s->next = u->socks;
        if (u->socks != NULL) {
            u->socks->prev = s;
        }
        u->socks = s;
        curl_multi_assign(u->multi, fd, s);
    } else if (s->what != what) {
        event_del(s->ev);
        event_assign(s->ev, u->base, fd, kind, on_socket_event, u);
    } else {
        return 0;
    }
    s->what = what;
    if (event_add(s->ev, NULL) != 0) {
        return -1;
    }
    return 0;
}

/* Never calls curl_multi_socket_action itself (curl forbids it from here): a zero timeout
 * becomes an immediate timer event. */
static int
on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct bp_upstream *u = userp;
    struct timeval tv;

    if (timeout_ms < 0) {
        event_del(u->timer_ev);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    return event_add(u->timer_ev, &tv) == 0 ? 0 : -1;
}

/* ---- client lifecycle ----------------------------------------------------------------------- */

void
bp_upstream_set_opts(struct bp_upstream *u, const struct bp_upstream_opts *opts)
{
    /* Read when a transfer is configured (configure_easy, its response buffer), so a change
     * reaches new transfers only. */
    u->opts.connect_timeout_ms = opts->connect_timeout_ms;
    u->opts.total_timeout_ms = opts->total_timeout_ms;
    u->opts.max_response_bytes = opts->max_response_bytes;
}

bp_err
bp_upstream_new(struct event_base *base, const struct bp_upstream_opts *opts, struct bp_upstream **out)
{
    struct bp_upstream *u = NULL;
    long maxconnects = BP_UPSTREAM_MIN_MAXCONNECTS;
    bp_err rc = BP_ERR_NOMEM;

    if (base == NULL || opts == NULL || out == NULL || opts->connect_timeout_ms < 0 ||
        opts->total_timeout_ms < 0) {
        return BP_ERR_INVALID;
    }
    /* Normally done by main before threads start; once-guarded, so this is only a safety net
     * against curl_easy_init initialising curl implicitly (and thread-unsafely). */
    if (bp_upstream_global_init() != BP_OK) {
        return BP_ERR_IO;
    }
    u = bp_calloc(1, sizeof(*u));
    u->base = base;
    u->opts = *opts;
    u->multi = curl_multi_init();
    u->timer_ev = event_new(base, -1, 0, on_timer_event, u);
    u->early_ev = event_new(base, -1, 0, on_early_event, u);
    if (u->multi == NULL || u->timer_ev == NULL || u->early_ev == NULL) {
        goto done;
    }
    if (opts->max_connections_per_host > 0 && (long)opts->max_connections_per_host * 2 > maxconnects) {
        maxconnects = (long)opts->max_connections_per_host * 2;
    }
    rc = BP_ERR_IO;
    if (curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u) != CURLM_OK ||
        curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u) != CURLM_OK ||
        curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, maxconnects) != CURLM_OK) {
        goto done;
    }
    if (opts->max_connections_per_host > 0 &&
        curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)opts->max_connections_per_host) !=
            CURLM_OK) {
        goto done;
    }
    *out = u;
    u = NULL;
    rc = BP_OK;
done:
    if (u != NULL) {
        destroy(u);
    }
    return rc;
}

static void
destroy(struct bp_upstream *u)
{
    BP_BUG_ON(u->dispatch_depth != 0);
    while (u->live != NULL) {
        xfer_retire(u->live);
    }
    while (u->graveyard != NULL) {
        struct bp_upstream_xfer *x = u->graveyard;
        u->graveyard = x->next;
        xfer_free(x);
    }
    /* curl closes its cached connections here and reports them through on_curl_socket, so the
     * events must still exist. */
    if (u->multi != NULL) {
        curl_multi_cleanup(u->multi);
        u->multi = NULL;
    }
    while (u->socks != NULL) {
        sock_remove(u, u->socks);
    }
    if (u->timer_ev != NULL) {
        event_free(u->timer_ev);
    }
    if (u->early_ev != NULL) {
        event_free(u->early_ev);
    }
    bp_free(u);
}

void
bp_upstream_free(struct bp_upstream *u)
{
    if (u == NULL || u->closing) {
        return;
    }
    u->closing = true;
    if (u->dispatch_depth > 0) {
        /* Called from a transfer's callback: cancel everything now (no more callbacks), and
         * let the dispatch that is on the stack release the client when it unwinds. */
        while (u->live != NULL) {
            xfer_retire(u->live);
        }
        return;
    }
    destroy(u);
}

size_t
bp_upstream_inflight(const struct bp_upstream *u)
{
    return u == NULL ? 0 : u->inflight;
}

void
bp_upstream_cancel(struct bp_upstream_xfer *x)
{
    if (x == NULL) {
        return;
    }
    /* Cancelling from inside its own callback, or twice, changes nothing. */
    if (x->state != XFER_RUNNING && x->state != XFER_EARLY) {
        return;
    }
    xfer_retire(x);
}

/* ---- starting a transfer -------------------------------------------------------------------- */

static bool
is_tchar(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool
method_is_valid(const char *m)
{
    size_t n = 0;

    for (; m[n] != '\0'; n++) {
        if (n == BP_UPSTREAM_MAX_METHOD || !is_tchar((unsigned char)m[n])) {
            return false;
        }
    }
    return n > 0;
}

static bool
header_name_is(const char *line, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* A line must be "Name:value" with a token name and no CR or LF anywhere: curl sends custom
 * headers verbatim, so a stray CRLF would let a value inject headers. */
static bool
header_is_valid(const char *line)
{
    const char *colon = strchr(line, ':');

    if (colon == NULL || colon == line) {
        return false;
    }
    for (const char *p = line; p < colon; p++) {
        if (!is_tchar((unsigned char)*p)) {
            return false;
        }
    }
    return strpbrk(colon, "\r\n") == NULL;
}

static bp_err
validate_req(const struct bp_upstream_req *req)
{
    if (req->method == NULL || req->url == NULL || !method_is_valid(req->method)) {
        return BP_ERR_INVALID;
    }
    if (req->body == NULL && req->body_len > 0) {
        return BP_ERR_INVALID;
    }
    if (req->n_headers > 0 && req->headers == NULL) {
        return BP_ERR_INVALID;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        if (req->headers[i] == NULL || !header_is_valid(req->headers[i])) {
            return BP_ERR_INVALID;
        }
    }
    return BP_OK;
}

static bool
append_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *next = curl_slist_append(*list, line);

    if (next == NULL) {
        return false;
    }
    *list = next;
    return true;
}

/* Builds the header list curl sends. Caller lines go as given, except:
 * - framing is ours: Content-Length, Transfer-Encoding and Expect lines are dropped, since the
 *   body length is body_len (a rewritten body may differ from what the client declared);
 * - "Name:" with an empty value would make curl delete the header, so it becomes "Name;", curl's
 *   spelling for "send this header with an empty value";
 * - headers curl would add on its own (Accept: * / *, Expect: 100-continue, a form Content-Type
 *   for bodies) are suppressed unless the caller gave them: the proxy forwards the client's set. */
static bool
build_req_headers(const struct bp_upstream_req *req, struct curl_slist **out)
{
    struct curl_slist *list = NULL;
    bool has_accept = false;
    bool has_ctype = false;
    bool ok = true;

    for (size_t i = 0; i < req->n_headers && ok; i++) {
        const char *line = req->headers[i];
        const char *colon = strchr(line, ':');
        const char *v = colon + 1;

        if (header_name_is(line, "Content-Length") || header_name_is(line, "Transfer-Encoding") ||
            header_name_is(line, "Expect")) {
            continue;
        }
        has_accept = has_accept || header_name_is(line, "Accept");
        has_ctype = has_ctype || header_name_is(line, "Content-Type");
        while (is_ows(*v)) {
            v++;
        }
        if (*v == '\0') {
            char *semi = bp_strndup(line, (size_t)(colon - line) + 1);
            semi[colon - line] = ';';
            ok = append_header(&list, semi);
            bp_free(semi);
            continue;
        }
        ok = append_header(&list, line);
    }
    ok = ok && append_header(&list, "Expect:");
    if (ok && !has_accept) {
        ok = append_header(&list, "Accept:");
    }
    if (ok && !has_ctype) {
        ok = append_header(&list, "Content-Type:");
    }
    if (!ok) {
        curl_slist_free_all(list);
        return false;
    }
    *out = list;
    return true;
}

static bool
method_is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

/* Sets every option of one request. Returns the first failure; the transfer then fails through
 * the deferred path like any other curl error. */
static CURLcode
configure_easy(struct bp_upstream_xfer *x, const struct bp_upstream_req *req)
{
    const struct bp_upstream_opts *o = &x->u->opts;
    CURL *e = x->easy;
    CURLcode c = CURLE_OK;
    bool has_body = req->body_len > 0 || method_is(req->method, "POST") || method_is(req->method, "PUT") ||
                    method_is(req->method, "PATCH");

#define SET(opt, val)                                                                                        \
    do {                                                                                                     \
        if (c == CURLE_OK) {                                                                                 \
            c = curl_easy_setopt(e, opt, val);                                                               \
        }                                                                                                    \
    } while (0)

    SET(CURLOPT_PRIVATE, (void *)x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    /* No environment proxy: the request carries Core's secret and must go straight to Core. */
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_PATH_AS_IS, 1L);
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    SET(CURLOPT_OPENSOCKETDATA, NULL);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, NULL);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)o->total_timeout_ms);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (req->ca_file != NULL) {
        SET(CURLOPT_CAINFO, req->ca_file);
    }
    /* Bytes pass through as Core sent them: no Accept-Encoding of ours, and no decoding of a
     * Content-Encoding the client asked for. */
    SET(CURLOPT_HTTP_CONTENT_DECODING, 0L);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)x);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, (void *)x);
    if (method_is(req->method, "HEAD")) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (has_body) {
        /* Borrowed, not copied. curl sends a body under 64 KiB in the same write as the headers,
         * without allocating its 64 KiB upload buffer (which a read callback needs on every new
         * handle). The pre-request callback stops curl from sending it twice: see the design
         * block. */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
        SET(CURLOPT_CUSTOMREQUEST, req->method);
    } else if (!method_is(req->method, "GET")) {
        SET(CURLOPT_CUSTOMREQUEST, req->method);
    }
    /* Every write is sent at most once, with or without a body: a bodiless refund or delete
     * that reached Core must not run twice. Only GET and HEAD may be retried. */
    if (!method_is(req->method, "GET") && !method_is(req->method, "HEAD")) {
        SET(CURLOPT_PREREQFUNCTION, on_prereq);
        SET(CURLOPT_PREREQDATA, (void *)x);
    }
    SET(CURLOPT_HTTPHEADER, x->req_headers);
#undef SET
    return c;
}

bp_err
bp_upstream_send(struct bp_upstream *u, const struct bp_upstream_req *req, bp_upstream_cb cb, void *arg,
                 struct bp_upstream_xfer **out_xfer)
{
    struct bp_upstream_xfer *x;
    CURLcode c = CURLE_OK;

    if (u == NULL || req == NULL || cb == NULL || u->closing) {
        return BP_ERR_INVALID;
    }
    if (validate_req(req) != BP_OK) {
        return BP_ERR_INVALID;
    }
    x = bp_calloc(1, sizeof(*x));
    x->u = u;
    x->cb = cb;
    x->arg = arg;
    x->method = bp_strdup(req->method);
    x->url = bp_strdup(req->url);
    x->request_id = req->request_id != NULL ? bp_strdup(req->request_id) : NULL;
    x->instance_id = req->instance_id != NULL ? bp_strdup(req->instance_id) : NULL;
    bp_buf_init(&x->resp.body, u->opts.max_response_bytes);
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
        c = CURLE_OUT_OF_MEMORY;
    } else if (!build_req_headers(req, &x->req_headers)) {
        c = CURLE_OUT_OF_MEMORY;
    } else {
        c = configure_easy(x, req);
    }
    if (c == CURLE_OK) {
        CURLMcode mc = curl_multi_add_handle(u->multi, x->easy);
        if (mc != CURLM_OK) {
            c = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
            snprintf(x->errbuf, sizeof(x->errbuf), "%s", curl_multi_strerror(mc));
        }
    }
    if (c == CURLE_OK) {
        x->state = XFER_RUNNING;
    } else {
        /* The callback must not run inside bp_upstream_send: report from the loop. */
        x->state = XFER_EARLY;
        x->early_code = c;
        event_active(u->early_ev, EV_TIMEOUT, 0);
    }
    live_link(x);
    if (out_xfer != NULL) {
        *out_xfer = x;
    }
    return BP_OK;
}
