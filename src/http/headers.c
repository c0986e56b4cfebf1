/* DESIGN §2 header rules for the request we originate to Core. The client's end-to-end headers
 * pass in order; credentials, cookies and hop-by-hop headers never do; the proxy adds the
 * instance's X-Blnk-Key, X-Request-Id and X-Forwarded-*. Framing headers are the upstream
 * client's to write, since the request to Core is framed anew (DESIGN §8: terminated and
 * re-originated). */
#include <string.h>

#include "http/http-int.h"
#include "lib/alloc.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "tables/tables.h"

/* Longest client-sent X-Forwarded-For chain kept in front of the peer address. */
#define XFF_CHAIN_MAX 8192

static const char *const never_forwarded[] = {
    "Authorization", "X-Blnk-Key", "Cookie", "Connection", "Keep-Alive", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Expect", "X-Request-Id",
    "X-Forwarded-For", "X-Forwarded-Proto",
};

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
is_dropped(const struct bp_http_head *h, const struct bp_http_header *hd)
{
    for (size_t i = 0; i < sizeof(never_forwarded) / sizeof(never_forwarded[0]); i++) {
        if (bp_str_ieq(hd->name, hd->name_len, never_forwarded[i])) {
            return true;
        }
    }
    if (hd->name_len >= 6 && strncasecmp(hd->name, "Proxy-", 6) == 0) {
        return true;
    }
    return named_by_connection(h, hd->name, hd->name_len);
}

static void
add_line(struct bp_buf *st, const char *name, size_t name_len, const char *value, size_t value_len)
{
    /* An empty value is sent as "Name:", without the space. */
    bp_buf_append(st, name, name_len);
    bp_buf_append(st, ": ", value_len > 0 ? 2 : 1);
    bp_buf_append(st, value, value_len);
    bp_buf_append(st, "", 1);
}

/* The client's X-Forwarded-For chain, then the peer. The peer is what Core can trust, so it is
 * always last; a client chain too long to keep is dropped rather than cut. */
static void
add_forwarded_for(struct bp_buf *st, const struct bp_http_head *h, const char *peer)
{
    struct bp_buf chain;
    bool too_long = false;

    bp_buf_init(&chain, XFF_CHAIN_MAX);
    for (size_t i = 0; i < h->n_headers; i++) {
        if (bp_str_ieq(h->headers[i].name, h->headers[i].name_len, "X-Forwarded-For") &&
            h->headers[i].value_len > 0) {
            too_long = too_long || bp_buf_append(&chain, h->headers[i].value, h->headers[i].value_len) != BP_OK ||
                       bp_buf_append(&chain, ", ", 2) != BP_OK;
        }
    }
    if (too_long) {
        bp_buf_reset(&chain);
    }
    bp_buf_max_raise(&chain, chain.len + strlen(peer));
    bp_buf_append_str(&chain, peer);
    add_line(st, "X-Forwarded-For", 15, chain.data, chain.len);
    bp_buf_cleanup(&chain);
}

bp_err
bp_http__upstream_headers(const struct bp_req *r, const char *peer, struct bp_buf *st,
                          const char ***out_lines, size_t *out_n)
{
    const struct bp_http_head *h = &r->head;
    size_t n = 0;
    const char **lines;

    for (size_t i = 0; i < h->n_headers; i++) {
        if (!is_dropped(h, &h->headers[i])) {
            add_line(st, h->headers[i].name, h->headers[i].name_len, h->headers[i].value,
                     h->headers[i].value_len);
        }
    }
    add_line(st, "X-Request-Id", 12, r->request_id, strlen(r->request_id));
    add_forwarded_for(st, h, peer);
    add_line(st, "X-Forwarded-Proto", 17, "http", 4);
    /* The secret goes last: nothing is appended after it, so the buffer never reallocates and
     * leaves an unwiped copy behind (the caller wipes st). */
    if (r->instance->secret != NULL) {
        size_t len;
        const char *key = bp_secret_bytes(r->instance->secret, &len);
        char *room;
        if (bp_buf_reserve(st, 10 + 2 + len + 1, &room) != BP_OK) {
            return BP_ERR_LIMIT;
        }
        add_line(st, "X-Blnk-Key", 10, key, len);
    }
    if (st->len == 0) {
        return BP_ERR_LIMIT;
    }
    for (size_t i = 0; i < st->len; i++) {
        if (st->data[i] == '\0') {
            n++;
        }
    }
    lines = bp_calloc(n, sizeof(*lines));
    for (size_t i = 0, k = 0; i < st->len && k < n; k++) {
        lines[k] = st->data + i;
        i += strlen(st->data + i) + 1;
    }
    *out_lines = lines;
    *out_n = n;
    return BP_OK;
}
