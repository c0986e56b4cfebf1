/* DESIGN §4 transaction defaults, as byte insertions into the body the client sent.
 *
 * Purpose: give POST /transactions (and each object of POST /transactions/bulk) a "precision"
 * of 100 and a fresh "reference" when the client left them out, without re-serialising: the
 * output is the input with bytes inserted just after the opening '{' of each object that needs
 * them, so numbers keep their text and keys their order and spacing.
 *
 * What Core sees decides everything (DESIGN §4, "Core-decoder parity"). Core binds with gin's
 * ShouldBindJSON, Go's json.NewDecoder(body).Decode, so:
 * - Only the first JSON value counts: Decode stops at its last byte and gin never looks further
 *   (Go src/encoding/json/stream.go, readValue). A transaction object followed by anything but
 *   whitespace means one thing to Core and another to a streaming or strict reader, so it is
 *   refused (400) rather than defaulted or passed on: its meaning depends on who reads it.
 * - Nesting up to 10000 levels is valid (scanner.go maxNestingDepth); jscan scans that deep
 *   without recursion. Deeper is refused (400): Core's decoder refuses it too, and refusing here
 *   keeps "never forwarded undefaulted" true even for a Core built with a Go that had no limit.
 * - "Has the key" is Go's struct field match (bp_jscan_key_equal_fold): only top-level keys of
 *   the object, escapes decoded, case-insensitive with Go's extra folds; any value, even null.
 * - Bulk: with "transactions" twice, Go decodes the second array into the elements the first
 *   one made (decode.go array() reuses v.Index(i)), merging their fields, so which element
 *   lacks a precision depends on both arrays. Refused (400) instead of guessed.
 * A body whose first value is not an object, or is not valid, is Core's to answer: forwarded as
 * sent.
 *
 * Bound (issue 11 item 4): the rewritten body must fit in out->max (the route's body limit),
 * or the request is refused with 413. The first pass only validates and counts the bytes to
 * insert, so an oversized rewrite is refused before anything is allocated or generated; the
 * second pass writes the output in one buffer of the exact size. Both passes read each byte once.
 *
 * Threads: no shared state; the only side effect is drawing random bytes for references.
 * Invariant: out receives either the whole rewritten body or nothing. */
#include "rewrite/rewrite.h"

#include <string.h>

#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "rewrite/jscan.h"

#define PRECISION_MEMBER "\"precision\":100"
#define REFERENCE_PREFIX "\"reference\":\"ref_"
#define PRECISION_LEN (sizeof(PRECISION_MEMBER) - 1)
#define REFERENCE_LEN (sizeof(REFERENCE_PREFIX) - 1 + BP_UUID_LEN + 1)

/* References drawn per call into the CSPRNG: one call per batch instead of one per object. */
#define RANDOM_BATCH 64

#define REASON_TRAILING                                                                                      \
    "Transaction body has data after its JSON object: Core reads only the first JSON value, so "             \
    "send exactly one object (whitespace after it is fine)"
#define REASON_TOO_DEEP "Transaction body nests JSON deeper than 10000 levels, more than Core's decoder accepts"
#define REASON_DUPLICATE_TRANSACTIONS                                                                        \
    "Bulk transaction body has the key \"transactions\" more than once (in any letter case): Core "          \
    "would merge the arrays; send it once"
#define REASON_TOO_LARGE                                                                                     \
    "Transaction body with the defaults added (precision, reference) would exceed max_body_bytes: send "     \
    "fewer transactions per request, or set precision and reference in each"

/* One pass over the body. Pass 1 (out == NULL) counts; pass 2 writes. */
struct pass {
    enum bp_txdefaults_kind kind;
    const char *body;
    size_t len;

    /* the object being looked at: one whose top-level keys decide its defaults */
    bool in_object;
    size_t object_open; /* offset of its '{' */
    bool has_precision;
    bool has_reference;
    bool has_members;

    /* bulk: where we are in the top-level object */
    bool key_is_transactions;   /* the current top-level member's key */
    bool in_transactions_array; /* inside the value of such a member, an array */
    size_t n_transactions_keys;

    size_t growth; /* bytes inserted (pass 1: to be inserted) */

    /* pass 2 only */
    char *out;
    size_t copied; /* body[0..copied) is in out */
    size_t written;
    uint64_t unix_ms;
    unsigned char random[RANDOM_BATCH][BP_UUID7_RANDOM_BYTES];
    size_t random_left;
    bp_err rc;
};

static void
start_object(struct pass *p, size_t off)
{
    p->in_object = true;
    p->object_open = off;
    p->has_precision = false;
    p->has_reference = false;
    p->has_members = false;
}

/* DESIGN §4: present with any value (0, "", null) counts; duplicates count once. */
static void
object_key(struct pass *p, struct bp_jscan_span key)
{
    p->has_members = true;
    if (!p->has_precision && bp_jscan_key_equal_fold(p->body, key, "precision")) {
        p->has_precision = true;
    } else if (!p->has_reference && bp_jscan_key_equal_fold(p->body, key, "reference")) {
        p->has_reference = true;
    }
}

static size_t
insertion_len(const struct pass *p)
{
    size_t n = 0;

    if (!p->has_precision) {
        n += PRECISION_LEN;
    }
    if (!p->has_reference) {
        n += (n > 0 ? 1 : 0) + REFERENCE_LEN;
    }
    if (n > 0 && p->has_members) {
        n++;
    }
    return n;
}

static void
put(struct pass *p, const void *bytes, size_t n)
{
    memcpy(p->out + p->written, bytes, n);
    p->written += n;
}

/* Writes the body up to just after the object's '{', then what the object lacks. */
static void
write_insertion(struct pass *p)
{
    size_t at = p->object_open + 1;
    bool first = true;

    put(p, p->body + p->copied, at - p->copied);
    p->copied = at;
    if (!p->has_precision) {
        put(p, PRECISION_MEMBER, PRECISION_LEN);
        first = false;
    }
    if (!p->has_reference) {
        if (p->random_left == 0) {
            p->rc = bp_rand_bytes(p->random, sizeof(p->random));
            if (p->rc != BP_OK) {
                return;
            }
            p->random_left = RANDOM_BATCH;
        }
        if (!first) {
            put(p, ",", 1);
        }
        put(p, REFERENCE_PREFIX, sizeof(REFERENCE_PREFIX) - 1);
        p->random_left--;
        bp_uuid7_format(p->unix_ms, p->random[p->random_left], p->out + p->written);
        p->written += BP_UUID_LEN;
        put(p, "\"", 1);
    }
    if (p->has_members) {
        put(p, ",", 1);
    }
}

static void
finish_object(struct pass *p)
{
    size_t n = insertion_len(p);

    p->in_object = false;
    if (n == 0) {
        return;
    }
    p->growth += n;
    if (p->out != NULL && p->rc == BP_OK) {
        write_insertion(p);
    }
}

static void
on_begin(void *arg, unsigned depth, enum bp_jscan_type type, size_t off)
{
    struct pass *p = arg;

    if (p->kind == BP_TXDEFAULTS_SINGLE) {
        if (depth == 0 && type == BP_JSCAN_OBJECT) {
            start_object(p, off);
        }
        return;
    }
    if (depth == 1) {
        p->in_transactions_array = p->key_is_transactions && type == BP_JSCAN_ARRAY;
    } else if (depth == 2 && p->in_transactions_array && type == BP_JSCAN_OBJECT) {
        start_object(p, off); /* non-object elements: Core rejects them; not ours to fix */
    }
}

static void
on_key(void *arg, unsigned depth, struct bp_jscan_span key)
{
    struct pass *p = arg;

    if (p->kind == BP_TXDEFAULTS_SINGLE) {
        if (depth == 1 && p->in_object) {
            object_key(p, key);
        }
        return;
    }
    if (depth == 1) {
        p->key_is_transactions = bp_jscan_key_equal_fold(p->body, key, "transactions");
        p->n_transactions_keys += p->key_is_transactions;
    } else if (depth == 3 && p->in_object) {
        object_key(p, key);
    }
}

static void
on_end(void *arg, unsigned depth, size_t off)
{
    struct pass *p = arg;

    if (p->kind == BP_TXDEFAULTS_SINGLE) {
        if (depth == 0 && p->in_object) {
            finish_object(p);
        }
        return;
    }
    if (depth == 2 && p->in_object) {
        finish_object(p);
    } else if (depth == 1) {
        p->in_transactions_array = false;
    }
}

static bp_err
run_pass(struct pass *p, struct bp_jscan_value *out_top)
{
    const struct bp_jscan_visitor vis = {
        .max_depth = p->kind == BP_TXDEFAULTS_SINGLE ? 1 : 3,
        .arg = p,
        .begin = on_begin,
        .key = on_key,
        .end = on_end,
    };

    return bp_jscan_walk(p->body, p->len, &vis, out_top);
}

bp_err
bp_txdefaults_apply(enum bp_txdefaults_kind kind, const char *body, size_t len, struct bp_buf *out,
                    bool *out_changed, const char **out_reason)
{
    struct pass plan = {.kind = kind, .body = body, .len = len};
    struct pass emit = {.kind = kind, .body = body, .len = len};
    struct bp_jscan_value top;
    size_t total;
    bp_err rc;

    BP_BUG_ON(out->len != 0);
    rc = run_pass(&plan, &top);
    if (rc == BP_ERR_LIMIT) {
        *out_reason = REASON_TOO_DEEP;
        return BP_ERR_MALFORMED;
    }
    /* DESIGN §4: not valid JSON or not an object → forwarded as sent, Core answers it. */
    if (rc != BP_OK || top.type != BP_JSCAN_OBJECT) {
        *out_changed = false;
        return BP_OK;
    }
    if (!bp_jscan_only_ws(body, len, top.span.off + top.span.len)) {
        *out_reason = REASON_TRAILING;
        return BP_ERR_MALFORMED;
    }
    if (plan.n_transactions_keys > 1) {
        *out_reason = REASON_DUPLICATE_TRANSACTIONS;
        return BP_ERR_MALFORMED;
    }
    if (plan.growth == 0) {
        *out_changed = false;
        return BP_OK;
    }
    total = len + plan.growth;
    if (total > out->max) {
        *out_reason = REASON_TOO_LARGE;
        return BP_ERR_PAYLOAD_TOO_LARGE;
    }

    emit.unix_ms = (uint64_t)bp_clock_wall_ms();
    rc = bp_buf_reserve(out, total, &emit.out);
    if (rc == BP_OK) {
        rc = run_pass(&emit, &top);
        BP_BUG_ON(rc != BP_OK); /* the same bytes passed the same scan a moment ago */
        rc = emit.rc;
    }
    if (rc != BP_OK) {
        return rc;
    }
    put(&emit, body + emit.copied, len - emit.copied);
    BP_BUG_ON(emit.written != total || emit.growth != plan.growth);
    bp_buf_commit(out, total);
    *out_changed = true;
    return BP_OK;
}
