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
 * or the request is refused with 413. One scan validates the body and notes where each object
 * that lacks a key opens; notes stop once the insertions would pass the bound (the answer is
 * then 413), so they take at most (out->max - len) / 2 bytes. An oversized rewrite is thus
 * refused before any output is allocated or any reference generated; otherwise the output is
 * written in one buffer of the exact size by copying the body between the noted offsets.
 * The body is read once; a worker spends a few milliseconds per MiB (bench/txdefaults_bench.c).
 *
 * Threads: no shared state; the only side effect is drawing random bytes for references.
 * Invariant: out receives either the whole rewritten body or nothing. */
#include "rewrite/rewrite.h"

#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "lib/sha256.h"
#include "rewrite/jscan.h"

#define PRECISION_MEMBER "\"precision\":100"
#define REFERENCE_PREFIX "\"reference\":\"ref_"
#define PRECISION_LEN (sizeof(PRECISION_MEMBER) - 1)
#define REFERENCE_LEN (sizeof(REFERENCE_PREFIX) - 1 + BP_UUID_LEN + 1)

#define REASON_TRAILING                                                                                      \
    "Transaction body has data after its JSON object: Core reads only the first JSON value, so "             \
    "send exactly one object (whitespace after it is fine)"
#define REASON_TOO_DEEP                                                                                      \
    "Transaction body nests JSON deeper than 10000 levels, more than Core's decoder accepts"
#define REASON_DUPLICATE_TRANSACTIONS                                                                        \
    "Bulk transaction body has the key \"transactions\" more than once (in any letter case): Core "          \
    "would merge the arrays; send it once"
#define REASON_TOO_LARGE                                                                                     \
    "Transaction body with the defaults added (precision, reference) would exceed max_body_bytes: send "     \
    "fewer transactions per request, or set precision and reference in each"

/* What an object lacks, noted during the scan: bit flags next to its '{' offset. */
#define LACKS_PRECISION 1u
#define LACKS_REFERENCE 2u
#define HAS_MEMBERS 4u
#define MARK_FLAG_BITS 3

struct mark_list {
    uint64_t *marks; /* offset << MARK_FLAG_BITS | flags, in body order */
    size_t n;
    size_t cap;
};

/* The scan's state, for the visitor callbacks. */
struct scan_state {
    enum bp_txdefaults_kind kind;
    const char *body;

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

    size_t growth; /* bytes the insertions need */
    size_t room;   /* bytes the bound leaves for them: no marks are kept past it */
    struct mark_list list;
};

static void
start_object(struct scan_state *p, size_t off)
{
    p->in_object = true;
    p->object_open = off;
    p->has_precision = false;
    p->has_reference = false;
    p->has_members = false;
}

/* DESIGN §4: present with any value (0, "", null) counts; duplicates count once. */
static void
object_key(struct scan_state *p, struct bp_jscan_span key)
{
    p->has_members = true;
    if (!p->has_precision && bp_jscan_key_equal_fold(p->body, key, "precision")) {
        p->has_precision = true;
    } else if (!p->has_reference && bp_jscan_key_equal_fold(p->body, key, "reference")) {
        p->has_reference = true;
    }
}

static size_t
insertion_len(unsigned flags)
{
    size_t n = 0;

    if (flags & LACKS_PRECISION) {
        n += PRECISION_LEN;
    }
    if (flags & LACKS_REFERENCE) {
        n += (n > 0 ? 1 : 0) + REFERENCE_LEN;
    }
    if (n > 0 && (flags & HAS_MEMBERS)) {
        n++;
    }
    return n;
}

static void
finish_object(struct scan_state *p)
{
    unsigned flags = (p->has_precision ? 0 : LACKS_PRECISION) | (p->has_reference ? 0 : LACKS_REFERENCE) |
                     (p->has_members ? HAS_MEMBERS : 0);
    size_t n;

    p->in_object = false;
    if (!(flags & (LACKS_PRECISION | LACKS_REFERENCE))) {
        return;
    }
    n = insertion_len(flags);
    p->growth += n;
    if (p->growth > p->room) {
        return; /* a 413 if the body is valid: nothing more to note */
    }
    /* Each mark stands for >= 16 inserted bytes within room, so the list stays < room / 2. */
    if (p->list.n == p->list.cap) {
        p->list.cap = p->list.cap == 0 ? 16 : 2 * p->list.cap;
        p->list.marks = bp_realloc(p->list.marks, p->list.cap * sizeof(*p->list.marks));
    }
    p->list.marks[p->list.n++] = ((uint64_t)p->object_open << MARK_FLAG_BITS) | flags;
}

static void
on_begin(void *arg, unsigned depth, enum bp_jscan_type type, size_t off)
{
    struct scan_state *p = arg;

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
    struct scan_state *p = arg;

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
    struct scan_state *p = arg;

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
scan_body(struct scan_state *p, size_t len, struct bp_jscan_value *out_top)
{
    const struct bp_jscan_visitor vis = {
        .max_depth = p->kind == BP_TXDEFAULTS_SINGLE ? 1 : 3,
        .arg = p,
        .begin = on_begin,
        .key = on_key,
        .end = on_end,
    };

    return bp_jscan_walk(p->body, len, &vis, out_top);
}

/* The n-th reference (0-based, in body order) derived from seed: the first 16 bytes of
 * SHA-256(seed, n as 4 big-endian bytes), written as a UUID of version 8 (RFC 9562's custom
 * layout). BP_UUID_LEN characters, no NUL. */
static void
derived_reference(const unsigned char seed[BP_TXDEFAULTS_SEED_LEN], uint32_t n, char *out)
{
    static const int groups[] = {4, 2, 2, 2, 6};
    static const char hex[] = "0123456789abcdef";
    unsigned char in[BP_TXDEFAULTS_SEED_LEN + 4];
    unsigned char d[BP_SHA256_LEN];
    size_t at = 0;
    size_t w = 0;

    memcpy(in, seed, BP_TXDEFAULTS_SEED_LEN);
    in[BP_TXDEFAULTS_SEED_LEN] = (unsigned char)(n >> 24);
    in[BP_TXDEFAULTS_SEED_LEN + 1] = (unsigned char)(n >> 16);
    in[BP_TXDEFAULTS_SEED_LEN + 2] = (unsigned char)(n >> 8);
    in[BP_TXDEFAULTS_SEED_LEN + 3] = (unsigned char)n;
    bp_sha256(in, sizeof(in), d);
    d[6] = (unsigned char)((d[6] & 0x0F) | 0x80); /* version 8 */
    d[8] = (unsigned char)((d[8] & 0x3F) | 0x80); /* variant 10 */
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        if (g > 0) {
            out[w++] = '-';
        }
        for (int i = 0; i < groups[g]; i++, at++) {
            out[w++] = hex[d[at] >> 4];
            out[w++] = hex[d[at] & 0x0F];
        }
    }
}

/* Writes body[0..len) into dst with each noted insertion after its object's '{'. References
 * are random, or derived from seed when it is not NULL. */
static bp_err
write_rewrite(const char *body, size_t len, const struct mark_list *list, const unsigned char *seed, char *dst,
              size_t *out_written)
{
    uint32_t n_refs = 0;
    unsigned char random[BP_UUID7_RANDOM_BYTES];
    uint64_t unix_ms = (uint64_t)bp_clock_wall_ms();
    size_t copied = 0;
    size_t w = 0;
    bp_err rc;

    for (size_t i = 0; i < list->n; i++) {
        size_t at = (size_t)(list->marks[i] >> MARK_FLAG_BITS) + 1;
        unsigned flags = (unsigned)(list->marks[i] & ((1u << MARK_FLAG_BITS) - 1));

        memcpy(dst + w, body + copied, at - copied);
        w += at - copied;
        copied = at;
        if (flags & LACKS_PRECISION) {
            memcpy(dst + w, PRECISION_MEMBER, PRECISION_LEN);
            w += PRECISION_LEN;
        }
        if (flags & LACKS_REFERENCE) {
            /* A reference is an identifier, not a secret: its bytes come from the thread's
             * batch of CSPRNG output (bp_rand_id_bytes), so a request with one costs no call into
             * OpenSSL (each of which checks for a fork with getpid(2)). */
            if (seed == NULL) {
                rc = bp_rand_id_bytes(random, sizeof(random));
                if (rc != BP_OK) {
                    return rc;
                }
            }
            if (flags & LACKS_PRECISION) {
                dst[w++] = ',';
            }
            memcpy(dst + w, REFERENCE_PREFIX, sizeof(REFERENCE_PREFIX) - 1);
            w += sizeof(REFERENCE_PREFIX) - 1;
            if (seed != NULL) {
                derived_reference(seed, n_refs++, dst + w);
            } else {
                bp_uuid7_format(unix_ms, random, dst + w);
            }
            w += BP_UUID_LEN;
            dst[w++] = '"';
        }
        if (flags & HAS_MEMBERS) {
            dst[w++] = ',';
        }
    }
    memcpy(dst + w, body + copied, len - copied);
    *out_written = w + len - copied;
    return BP_OK;
}

bp_err
bp_txdefaults_apply(enum bp_txdefaults_kind kind, const char *body, size_t len, struct bp_buf *out,
                    bool *out_changed, const char **out_reason)
{
    return bp_txdefaults_apply_seeded(kind, body, len, NULL, out, out_changed, out_reason);
}

bp_err
bp_txdefaults_apply_seeded(enum bp_txdefaults_kind kind, const char *body, size_t len, const unsigned char *seed,
                           struct bp_buf *out, bool *out_changed, const char **out_reason)
{
    struct scan_state st = {.kind = kind, .body = body, .room = out->max > len ? out->max - len : 0};
    struct bp_jscan_value top;
    size_t total;
    size_t written = 0;
    char *dst = NULL;
    bp_err rc;

    BP_BUG_ON(out->len != 0);
    rc = scan_body(&st, len, &top);
    if (rc == BP_ERR_LIMIT) {
        *out_reason = REASON_TOO_DEEP;
        rc = BP_ERR_MALFORMED;
        goto done;
    }
    /* DESIGN §4: not valid JSON or not an object → forwarded as sent, Core answers it. */
    if (rc != BP_OK || top.type != BP_JSCAN_OBJECT) {
        *out_changed = false;
        rc = BP_OK;
        goto done;
    }
    if (!bp_jscan_only_ws(body, len, top.span.off + top.span.len)) {
        *out_reason = REASON_TRAILING;
        rc = BP_ERR_MALFORMED;
        goto done;
    }
    if (st.n_transactions_keys > 1) {
        *out_reason = REASON_DUPLICATE_TRANSACTIONS;
        rc = BP_ERR_MALFORMED;
        goto done;
    }
    if (st.growth == 0) {
        *out_changed = false;
        goto done;
    }
    if (st.growth > st.room) {
        *out_reason = REASON_TOO_LARGE;
        rc = BP_ERR_PAYLOAD_TOO_LARGE;
        goto done;
    }
    total = len + st.growth;
    rc = bp_buf_reserve(out, total, &dst);
    if (rc == BP_OK) {
        rc = write_rewrite(body, len, &st.list, seed, dst, &written);
    }
    if (rc == BP_OK) {
        BP_BUG_ON(written != total);
        bp_buf_commit(out, total);
        *out_changed = true;
    }
done:
    bp_free(st.list.marks);
    return rc;
}
