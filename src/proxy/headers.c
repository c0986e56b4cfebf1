/* DESIGN §2 header rules, both directions, as one table with a flag per direction (the shape of
 * h2o's proxy_should_drop_for_req / _for_res): the proxy asks the flag, never a list of its own.
 *
 * To Core: the client's end-to-end headers pass in order; credentials, cookies and hop-by-hop
 * headers (and those the client's Connection header names) never do, nor any header by which a
 * client could name its own address (X-Forwarded-*, X-Real-IP, Forwarded: Core's gin believes
 * them); the proxy adds X-Request-Id, X-Forwarded-For (the chain trusted proxies vouched for, then
 * the peer; http/client.c), X-Forwarded-Proto and the instance's X-Blnk-Key. Framing headers are the upstream
 * client's to write, since the request to Core is framed anew (DESIGN §8: terminated and
 * re-originated). To the client: Core's end-to-end headers, without hop-by-hop ones and without
 * Content-Length (the proxy frames the answer anew). */
#include <string.h>
#include <strings.h>

#include "auth/auth-t.h"
#include "http/parser.h"
#include "lib/arena.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "proxy/proxy-int.h"

struct header_rule {
    const char *name;
    bool drop_to_core;
    bool drop_to_client;
};

static const struct header_rule rules[] = {
    /* Credentials: ours to check, never Core's to see. */
    {"Authorization", true, false},
    {"X-Blnk-Key", true, false},
    {"Cookie", true, false},
    /* Hop-by-hop (RFC 9110 §7.6.1), in both directions. */
    {"Connection", true, true},
    {"Keep-Alive", true, true},
    {"TE", true, true},
    {"Trailer", true, true},
    {"Transfer-Encoding", true, true},
    {"Upgrade", true, true},
    /* Framing and routing are made anew on each side. */
    {"Content-Length", true, true},
    {"Host", true, false},
    {"Expect", true, false},
    /* The proxy writes these itself. */
    {"X-Request-Id", true, false},
    {"X-Forwarded-For", true, false},
    {"X-Forwarded-Proto", true, false},
    /* Other ways to name the client's address, which no one here vouches for. */
    {"X-Real-IP", true, false},
    {"Forwarded", true, false},
};

static const struct header_rule *
rule_of(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (bp_str_ieq(name, len, rules[i].name)) {
            return &rules[i];
        }
    }
    return NULL;
}

static bool
is_proxy_header(const char *name, size_t len)
{
    return len >= 6 && strncasecmp(name, "Proxy-", 6) == 0;
}

bool
bp_proxy__drop_from_response(const char *name, size_t len)
{
    const struct header_rule *r = rule_of(name, len);

    return (r != NULL && r->drop_to_client) || is_proxy_header(name, len);
}

/* True when name is one of the comma-separated tokens of a Connection header. */
static bool
named_by_connection(const struct bp_http_head *h, const char *name, size_t name_len)
{
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct bp_http_header *c = &h->headers[i];
        size_t p = 0;
        if (!bp_str_ieq(c->name, c->name_len, "Connection")) {
            continue;
        }
        while (p < c->value_len) {
            size_t start;
            size_t end;
            while (p < c->value_len && (c->value[p] == ' ' || c->value[p] == '\t' || c->value[p] == ',')) {
                p++;
            }
            start = p;
            while (p < c->value_len && c->value[p] != ',') {
                p++;
            }
            end = p;
            while (end > start && (c->value[end - 1] == ' ' || c->value[end - 1] == '\t')) {
                end--;
            }
            if (end > start && end - start == name_len && strncasecmp(c->value + start, name, name_len) == 0) {
                return true;
            }
        }
    }
    return false;
}

static bool
drop_to_core(const struct bp_http_head *h, const struct bp_http_header *hd)
{
    const struct header_rule *r = rule_of(hd->name, hd->name_len);

    if ((r != NULL && r->drop_to_core) || is_proxy_header(hd->name, hd->name_len)) {
        return true;
    }
    return named_by_connection(h, hd->name, hd->name_len);
}

/* Lines are written into one arena block: "Name: value\0" each (an empty value is "Name:",
 * which the upstream client sends as an empty header). */
struct lines {
    char *buf;
    size_t len;
    size_t cap;
    const char **ptrs;
    size_t n;
    size_t max;
};

static bool
add_line(struct lines *l, const char *name, size_t name_len, const char *v1, size_t v1_len, const char *v2,
         size_t v2_len)
{
    size_t sep = v1_len + v2_len > 0 ? 2 : 1;
    size_t need = name_len + sep + v1_len + v2_len + 1;
    char *p;

    if (l->n == l->max || need > l->cap - l->len) {
        return false;
    }
    p = l->buf + l->len;
    memcpy(p, name, name_len);
    memcpy(p + name_len, ": ", sep);
    if (v1_len > 0) {
        memcpy(p + name_len + sep, v1, v1_len);
    }
    if (v2_len > 0) {
        memcpy(p + name_len + sep + v1_len, v2, v2_len);
    }
    p[need - 1] = '\0';
    l->ptrs[l->n++] = p;
    l->len += need;
    return true;
}

bp_err
bp_proxy__upstream_headers(const struct bp_http_head *h, const char *request_id, const struct bp_proxy_client *client,
                           const struct bp_instance *instance, struct bp_arena *arena, const char ***out_lines,
                           size_t *out_n, char **out_secret, size_t *out_secret_len)
{
    size_t chain = client->chain != NULL ? client->chain_len + 2 : 0; /* "a, b" + ", " */
    const char *proto = client->https ? "https" : "http";
    size_t key_len = 0;
    const char *key = NULL;
    char *chain_buf = NULL;
    struct lines l = {0};

    if (instance->secret != NULL) {
        key = bp_secret_bytes(instance->secret, &key_len);
    }
    /* Every line fits by construction: the client's as they came, plus the ones added here. */
    for (size_t i = 0; i < h->n_headers; i++) {
        l.cap += h->headers[i].name_len + h->headers[i].value_len + 3;
    }
    l.cap += sizeof("X-Request-Id: ") + strlen(request_id) + sizeof("X-Forwarded-For: ") + chain +
             strlen(client->peer) + sizeof("X-Forwarded-Proto: https") + sizeof("X-Blnk-Key: ") + key_len;
    l.max = h->n_headers + 4;
    l.buf = bp_arena_alloc(arena, l.cap);
    l.ptrs = bp_arena_alloc(arena, l.max * sizeof(*l.ptrs));
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct bp_http_header *hd = &h->headers[i];
        if (!drop_to_core(h, hd) && !add_line(&l, hd->name, hd->name_len, hd->value, hd->value_len, NULL, 0)) {
            return BP_ERR_LIMIT;
        }
    }
    if (chain > 0) {
        chain_buf = bp_arena_alloc(arena, chain);
        memcpy(chain_buf, client->chain, client->chain_len);
        memcpy(chain_buf + client->chain_len, ", ", 2);
    }
    if (!add_line(&l, "X-Request-Id", 12, request_id, strlen(request_id), NULL, 0) ||
        !add_line(&l, "X-Forwarded-For", 15, chain_buf, chain, client->peer, strlen(client->peer)) ||
        !add_line(&l, "X-Forwarded-Proto", 17, proto, strlen(proto), NULL, 0)) {
        return BP_ERR_LIMIT;
    }
    *out_secret = NULL;
    *out_secret_len = 0;
    if (key != NULL) {
        char *at = l.buf + l.len;
        if (!add_line(&l, "X-Blnk-Key", 10, key, key_len, NULL, 0)) {
            return BP_ERR_LIMIT;
        }
        *out_secret = at;
        *out_secret_len = (size_t)(l.buf + l.len - at);
    }
    *out_lines = l.ptrs;
    *out_n = l.n;
    return BP_OK;
}
