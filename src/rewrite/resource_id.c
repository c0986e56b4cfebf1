/* The id Core gave a created resource, read from its response for the audit log. The response
 * is relayed as received; this only looks at it: the whole of it, or (a streamed answer) its
 * first bytes. */
#include <string.h>

#include "lib/bug.h"

#include "rewrite/jscan.h"
#include "rewrite/rewrite.h"

static bool
span_is(const char *doc, struct bp_jscan_span key, const char *name)
{
    size_t n = strlen(name);
    return key.len == n && memcmp(doc + key.off, name, n) == 0;
}

bool
bp_json_find_id(const char *doc, size_t len, const char *const *keys, size_t n_keys, size_t *out_off,
                size_t *out_len)
{
    struct bp_jscan_value top;

    if (doc == NULL || len == 0 || bp_jscan_document(doc, len, &top) != BP_OK || top.type != BP_JSCAN_OBJECT) {
        return false;
    }
    for (size_t k = 0; k < n_keys; k++) {
        struct bp_jscan_iter it;
        struct bp_jscan_span key;
        struct bp_jscan_value v;

        bp_jscan_iter_init(&it, doc, &top);
        while (bp_jscan_iter_next(&it, &key, &v)) {
            if (!span_is(doc, key, keys[k])) {
                continue;
            }
            if (v.type == BP_JSCAN_NUMBER) {
                *out_off = v.span.off;
                *out_len = v.span.len;
                return true;
            }
            if (v.type == BP_JSCAN_STRING && v.span.len > 2 &&
                memchr(doc + v.span.off + 1, '\\', v.span.len - 2) == NULL) {
                *out_off = v.span.off + 1;
                *out_len = v.span.len - 2;
                return true;
            }
        }
    }
    return false;
}

/* The prefix scan: one walk over the prefix with events for the top object's members. A member's
 * value is noted when it begins and kept once the walk reported the next event at its level (it
 * was then scanned without error). */
struct prefix_scan {
    const char *doc;
    size_t len;
    const char *const *keys;
    size_t n_keys;
    bool top_object;
    int key;          /* index in keys of the member being scanned, -1 for another member */
    bool noted;       /* its value is a usable id: doc[off .. off + n) */
    size_t off;
    size_t n;
    bool found[BP_JSON_FIND_ID_MAX_KEYS];
    size_t found_off[BP_JSON_FIND_ID_MAX_KEYS];
    size_t found_len[BP_JSON_FIND_ID_MAX_KEYS];
};

/* The member before is complete: keep its value if it is the first usable one for its key. */
static void
prefix_confirm(struct prefix_scan *p)
{
    if (p->key >= 0 && p->noted && !p->found[p->key]) {
        p->found[p->key] = true;
        p->found_off[p->key] = p->off;
        p->found_len[p->key] = p->n;
    }
    p->key = -1;
    p->noted = false;
}

static void
prefix_begin(void *arg, unsigned depth, enum bp_jscan_type type, size_t off)
{
    struct prefix_scan *p = arg;
    size_t end = off + 1;

    if (depth == 0) {
        p->top_object = type == BP_JSCAN_OBJECT;
        return;
    }
    if (depth != 1 || p->key < 0) {
        return;
    }
    if (type == BP_JSCAN_STRING) {
        /* Without escapes, as bp_json_find_id: the first quote ends it, and no backslash may come
         * before that quote. */
        const char *q = memchr(p->doc + off + 1, '"', p->len - off - 1);
        size_t n = q != NULL ? (size_t)(q - p->doc) - off - 1 : 0;
        if (n > 0 && memchr(p->doc + off + 1, '\\', n) == NULL) {
            p->noted = true;
            p->off = off + 1;
            p->n = n;
        }
    } else if (type == BP_JSCAN_NUMBER) {
        while (end < p->len && p->doc[end] != '\0' && strchr("0123456789+-.eE", p->doc[end]) != NULL) {
            end++;
        }
        p->noted = true;
        p->off = off;
        p->n = end - off;
    }
}

static void
prefix_key(void *arg, unsigned depth, struct bp_jscan_span key)
{
    struct prefix_scan *p = arg;

    if (depth != 1) {
        return;
    }
    prefix_confirm(p);
    for (size_t k = 0; k < p->n_keys; k++) {
        if (span_is(p->doc, key, p->keys[k])) {
            p->key = (int)k;
            break;
        }
    }
}

static void
prefix_end(void *arg, unsigned depth, size_t off)
{
    struct prefix_scan *p = arg;
    (void)off;

    if (depth == 0) {
        prefix_confirm(p);
    }
}

bool
bp_json_find_id_prefix(const char *doc, size_t len, const char *const *keys, size_t n_keys, size_t *out_off,
                       size_t *out_len)
{
    struct prefix_scan p = {.doc = doc, .len = len, .keys = keys, .n_keys = n_keys, .key = -1};
    struct bp_jscan_visitor vis = {
        .max_depth = 1,
        .arg = &p,
        .begin = prefix_begin,
        .key = prefix_key,
        .end = prefix_end,
    };
    struct bp_jscan_value top;

    BP_BUG_ON(n_keys > BP_JSON_FIND_ID_MAX_KEYS);
    if (doc == NULL || len == 0) {
        return false;
    }
    /* A prefix ends in the middle of the value, so the walk's verdict is expected to be an
     * error; the members it went past before that are what counts. */
    (void)bp_jscan_walk(doc, len, &vis, &top);
    if (!p.top_object) {
        return false;
    }
    for (size_t k = 0; k < n_keys; k++) {
        if (p.found[k]) {
            *out_off = p.found_off[k];
            *out_len = p.found_len[k];
            return true;
        }
    }
    return false;
}
