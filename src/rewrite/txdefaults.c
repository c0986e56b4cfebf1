/* DESIGN §4 transaction defaults, as byte insertions into the body the client sent.
 *
 * Purpose: give POST /transactions (and each object of POST /transactions/bulk) a "precision"
 * of 100 and a fresh "reference" when the client left them out, without re-serialising: the
 * output is the input with bytes inserted just after the opening '{' of each object that needs
 * them, so numbers keep their text and keys their order and spacing.
 *
 * Whether a key is present is decided as Core's Go decoder would (bp_jscan_key_equal_fold):
 * only top-level keys of the object, escapes decoded, case-insensitive with Go's extra folds;
 * a key present with any value, even null, counts.
 *
 * Threads: no shared state; the only side effect is drawing random bytes for references.
 * Invariant: out receives either the whole rewritten body or nothing. */
#include "rewrite/rewrite.h"

#include <string.h>

#include "lib/bug.h"
#include "lib/rand.h"
#include "rewrite/jscan.h"

#define PRECISION_MEMBER "\"precision\":100"
#define REFERENCE_PREFIX "\"reference\":\"ref_"

struct rewriter {
    const char *body;
    size_t len;
    size_t copied; /* body[0..copied) is already in out */
    struct bp_buf *out;
};

/* Copies the body up to off, then appends n inserted bytes. */
static bp_err
insert_at(struct rewriter *rw, size_t off, const char *p, size_t n)
{
    bp_err rc;

    BP_BUG_ON(off < rw->copied || off > rw->len);
    rc = bp_buf_append(rw->out, rw->body + rw->copied, off - rw->copied);
    if (rc != BP_OK) {
        return rc;
    }
    rw->copied = off;
    return bp_buf_append(rw->out, p, n);
}

/* Gives one object the members it lacks. Inserting right after '{' keeps every client byte in
 * place and needs no knowledge of the object's last member. */
static bp_err
apply_object(struct rewriter *rw, const struct bp_jscan_value *obj)
{
    struct bp_jscan_iter it;
    struct bp_jscan_span key;
    struct bp_jscan_value v;
    bool has_precision = false;
    bool has_reference = false;
    bool has_members = false;
    char uuid[BP_UUID_LEN + 1];
    char text[sizeof(PRECISION_MEMBER ",") + sizeof(REFERENCE_PREFIX) + BP_UUID_LEN + 2];
    size_t n = 0;
    bp_err rc;

    bp_jscan_iter_init(&it, rw->body, obj);
    while (bp_jscan_iter_next(&it, &key, &v)) {
        has_members = true;
        /* DESIGN §4: present with any value (0, "", null) counts; duplicates count once. */
        if (bp_jscan_key_equal_fold(rw->body, key, "precision")) {
            has_precision = true;
        } else if (bp_jscan_key_equal_fold(rw->body, key, "reference")) {
            has_reference = true;
        }
    }
    if (has_precision && has_reference) {
        return BP_OK;
    }
    if (!has_precision) {
        memcpy(text + n, PRECISION_MEMBER, sizeof(PRECISION_MEMBER) - 1);
        n += sizeof(PRECISION_MEMBER) - 1;
    }
    if (!has_reference) {
        rc = bp_uuid7(uuid);
        if (rc != BP_OK) {
            return rc;
        }
        if (n > 0) {
            text[n++] = ',';
        }
        memcpy(text + n, REFERENCE_PREFIX, sizeof(REFERENCE_PREFIX) - 1);
        n += sizeof(REFERENCE_PREFIX) - 1;
        memcpy(text + n, uuid, BP_UUID_LEN);
        n += BP_UUID_LEN;
        text[n++] = '"';
    }
    if (has_members) {
        text[n++] = ',';
    }
    BP_BUG_ON(n > sizeof(text));
    return insert_at(rw, bp_jscan_inner_begin(obj), text, n);
}

/* Every top-level member named "transactions" (Go-style match) whose value is an array gets its
 * object elements defaulted. With duplicate keys Go decodes each one in turn into the same
 * slice, so defaulting all of them keeps whichever Core ends up with defaulted. */
static bp_err
apply_bulk(struct rewriter *rw, const struct bp_jscan_value *top)
{
    struct bp_jscan_iter it;
    struct bp_jscan_iter elems;
    struct bp_jscan_span key;
    struct bp_jscan_value v;
    struct bp_jscan_value elem;
    bp_err rc;

    bp_jscan_iter_init(&it, rw->body, top);
    while (bp_jscan_iter_next(&it, &key, &v)) {
        if (v.type != BP_JSCAN_ARRAY || !bp_jscan_key_equal_fold(rw->body, key, "transactions")) {
            continue;
        }
        bp_jscan_iter_init(&elems, rw->body, &v);
        while (bp_jscan_iter_next(&elems, NULL, &elem)) {
            if (elem.type != BP_JSCAN_OBJECT) {
                continue; /* Core rejects it; not ours to fix */
            }
            rc = apply_object(rw, &elem);
            if (rc != BP_OK) {
                return rc;
            }
        }
    }
    return BP_OK;
}

bp_err
bp_txdefaults_apply(enum bp_txdefaults_kind kind, const char *body, size_t len, struct bp_buf *out,
                    bool *out_changed)
{
    struct rewriter rw = {body, len, 0, out};
    struct bp_jscan_value top;
    bp_err rc;

    BP_BUG_ON(out->len != 0);
    /* DESIGN §4: not valid JSON or not an object → forwarded as sent, Core answers it. */
    if (bp_jscan_document(body, len, &top) != BP_OK || top.type != BP_JSCAN_OBJECT) {
        *out_changed = false;
        return BP_OK;
    }
    if (kind == BP_TXDEFAULTS_BULK) {
        rc = apply_bulk(&rw, &top);
    } else {
        rc = apply_object(&rw, &top);
    }
    if (rc == BP_OK && out->len > 0) {
        rc = bp_buf_append(out, body + rw.copied, len - rw.copied);
    }
    if (rc != BP_OK) {
        bp_buf_reset(out);
        return rc;
    }
    *out_changed = out->len > 0;
    return BP_OK;
}
