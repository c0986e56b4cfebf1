/* The tamper-evident audit trail (issue 13): what every backend shares.
 *
 * A chain per writer. Each node appends its records to its own chain (named by its node; the
 * CLI's by its host), so nodes writing at once never wait for each other: a record's place is
 * (chain, chain_n), its prev_hash is the hash of the chain's record before it (64 zeros for the
 * first), and its hash is the SHA-256 of a canonical encoding of its place, prev_hash and every
 * field. The chain's head (count and last hash) lives in audit_chains and moves in the same
 * transaction as the records, under the head row's lock, so two writers sharing a name still
 * append one after the other. An edit of any field breaks that record's hash; a removal leaves a
 * gap in chain_n or a head that names a record no longer there; a reorder breaks a link (or the
 * seq order along the chain); a row slipped in has no chain, or one without a head. What an
 * attacker who rewrites a whole chain and its head can do is caught by checkpoints kept
 * elsewhere (audit/trail.c signs and checks them).
 *
 * Canonical encoding: "bpaudit1", then each field in a fixed order; a string is 0x00 (NULL) or
 * 0x01, a 4-byte big-endian length and the bytes (repaired to UTF-8 as PostgreSQL stores them);
 * an integer is 8 bytes big-endian. Defaults the store applies (actor_type "anonymous", count 1,
 * no last time) are applied before hashing, so the hash covers what is stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/sha256.h"
#include "store/store-int.h"

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s starts an invalid one. */
static size_t
utf8_seq(const unsigned char *s)
{
    size_t n;
    unsigned cp;

    if (s[0] < 0x80) {
        return 1;
    }
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

const char *
bp_store__utf8_fix(const char *text, char **fix)
{
    const unsigned char *p = (const unsigned char *)text;
    char *copy;
    size_t o = 0;

    *fix = NULL;
    if (text == NULL) {
        return NULL;
    }
    /* Records are nearly all ASCII: a byte below 0x80 is taken without decoding. */
    while (*p != '\0') {
        size_t n = *p < 0x80 ? 1 : utf8_seq(p);
        if (n == 0) {
            break;
        }
        p += n;
    }
    if (*p == '\0') {
        return text;
    }
    copy = bp_strdup(text);
    p = (const unsigned char *)text;
    while (*p != '\0') {
        size_t n = utf8_seq(p);
        if (n == 0) {
            copy[o++] = '?';
            p++;
        } else {
            memcpy(copy + o, p, n);
            o += n;
            p += n;
        }
    }
    copy[o] = '\0';
    *fix = copy;
    return copy;
}

void
bp_store__hex_col(char out[BP_AUDIT_HEX], const char *text)
{
    if (text == NULL) {
        out[0] = '\0';
    } else if (strlen(text) != BP_AUDIT_HEX - 1) {
        memcpy(out, "?", 2);
    } else {
        memcpy(out, text, BP_AUDIT_HEX);
    }
}

/* ---- the digest ---- */

static void
put_int(struct bp_buf *b, int64_t v)
{
    unsigned char be[8];
    uint64_t u = (uint64_t)v;

    for (int i = 7; i >= 0; i--) {
        be[i] = (unsigned char)(u & 0xFF);
        u >>= 8;
    }
    bp_buf_append(b, be, sizeof(be));
}

static void
put_str(struct bp_buf *b, const char *s)
{
    char *fix = NULL;
    const char *t = bp_store__utf8_fix(s, &fix);
    unsigned char tag = t != NULL ? 1 : 0;

    bp_buf_append(b, &tag, 1);
    if (t != NULL) {
        size_t len = strlen(t);
        unsigned char be[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                               (unsigned char)(len >> 8), (unsigned char)len};
        bp_buf_append(b, be, sizeof(be));
        bp_buf_append(b, t, len);
    }
    bp_free(fix);
}

const char *
bp_store_audit_chain_of(const struct bp_audit_rec *r)
{
    if (r->chain != NULL) {
        return r->chain;
    }
    return r->node != NULL && r->node[0] != '\0' ? r->node : "-";
}

void
bp_store_audit_digest(const struct bp_audit_rec *r, char out[BP_AUDIT_HEX])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[BP_SHA256_LEN];
    struct bp_buf b;
    char *room;

    bp_buf_init(&b, SIZE_MAX);
    /* One allocation for a typical record instead of a doubling series. */
    (void)bp_buf_reserve(&b, 1000, &room);
    bp_buf_append(&b, "bpaudit1", 8);
    put_str(&b, bp_store_audit_chain_of(r));
    put_int(&b, r->chain_n);
    put_str(&b, r->prev_hash);
    put_str(&b, r->id);
    put_str(&b, r->node);
    put_int(&b, r->time_us);
    put_str(&b, r->request_id);
    put_str(&b, r->actor_type != NULL ? r->actor_type : "anonymous");
    put_str(&b, r->actor_id);
    put_str(&b, r->actor_name);
    put_str(&b, r->instance_id);
    put_str(&b, r->method);
    put_str(&b, r->route);
    put_str(&b, r->path);
    put_str(&b, r->action);
    put_str(&b, r->category);
    put_int(&b, r->core_status);
    put_int(&b, r->status);
    put_int(&b, r->latency_us);
    put_str(&b, r->client_addr);
    put_str(&b, r->resource_id);
    put_str(&b, r->error);
    put_int(&b, r->repeat_count > 0 ? r->repeat_count : 1);
    put_int(&b, r->last_time_us > 0 ? r->last_time_us : 0);
    put_int(&b, r->replayed ? 1 : 0);
    bp_sha256(b.data, b.len, md);
    bp_buf_cleanup(&b);
    for (size_t i = 0; i < BP_SHA256_LEN; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xF];
    }
    out[2 * BP_SHA256_LEN] = '\0';
}

/* ---- appending ---- */

static int
cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct id_at {
    const char *id;
    size_t at;
};

static int
cmp_id_at(const void *a, const void *b)
{
    const struct id_at *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c != 0 ? c : (x->at < y->at ? -1 : x->at > y->at);
}

/* A record whose id came earlier in the same batch is a repeat too: only the first is stored. */
static void
mark_batch_repeats(const struct bp_audit_rec *recs, size_t n, bool *known)
{
    struct id_at *ids = bp_malloc((n > 0 ? n : 1) * sizeof(*ids));

    for (size_t i = 0; i < n; i++) {
        ids[i] = (struct id_at){recs[i].id, i};
    }
    qsort(ids, n, sizeof(*ids), cmp_id_at);
    for (size_t k = 1; k < n; k++) {
        if (strcmp(ids[k].id, ids[k - 1].id) == 0) {
            known[ids[k].at] = true;
        }
    }
    bp_free(ids);
}

void
bp_store__chain_link(struct bp_audit_rec *recs, size_t n, const bool *skip, const char *chain, int64_t *io_at,
                     char io_head[BP_AUDIT_HEX])
{
    if (*io_at == 0) {
        memcpy(io_head, ZERO_HASH, sizeof(ZERO_HASH));
    }
    for (size_t i = 0; i < n; i++) {
        struct bp_audit_rec *r = &recs[i];
        if ((skip != NULL && skip[i]) || strcmp(bp_store_audit_chain_of(r), chain) != 0) {
            continue;
        }
        r->chain_n = ++*io_at;
        memcpy(r->prev_hash, io_head, BP_AUDIT_HEX);
        bp_store_audit_digest(r, r->hash);
        memcpy(io_head, r->hash, BP_AUDIT_HEX);
    }
}

/* True when every record is of one chain. */
static bool
one_chain(const struct bp_audit_rec *recs, size_t n)
{
    const char *first = n > 0 ? bp_store_audit_chain_of(&recs[0]) : NULL;

    for (size_t i = 1; i < n; i++) {
        if (strcmp(bp_store_audit_chain_of(&recs[i]), first) != 0) {
            return false;
        }
    }
    return true;
}

bp_err
bp_store__chain_insert(struct bp_store *s, struct bp_audit_rec *recs, size_t n, const bool *fresh)
{
    const struct bp_store_trail_ops *t = s->ops->trail;
    bool *known = bp_calloc(n, sizeof(*known));
    const char **chains = bp_calloc(n, sizeof(*chains));
    struct bp_audit_rec *todo = bp_calloc(n, sizeof(*todo));
    size_t *from = bp_calloc(n, sizeof(*from));
    size_t n_chains = 0, n_todo = 0;
    int64_t now = bp_clock_wall_us();
    bool need_lookup = false;
    bp_err err = BP_OK;

    for (size_t i = 0; i < n; i++) {
        recs[i].seq = 0;
    }
    for (size_t i = 0; i < n && !need_lookup; i++) {
        need_lookup = fresh == NULL || !fresh[i];
    }
    /* A spool imported again, a batch retried after an unanswered commit: look its ids up. */
    if (need_lookup) {
        err = t->known(s, recs, n, known);
        if (err == BP_OK) {
            mark_batch_repeats(recs, n, known);
        }
    }
    /* The usual batch: new records of this writer's own chain, whose head it committed last. */
    if (err == BP_OK && !need_lookup && t->append_fast != NULL && one_chain(recs, n)) {
        bool done = false;
        err = t->append_fast(s, bp_store_audit_chain_of(&recs[0]), recs, n, &done);
        if (err != BP_OK || done) {
            goto out;
        }
    }
    /* Heads are locked in name order, so two writers whose batches span the same chains never
     * wait for each other in a circle. */
    for (size_t i = 0; err == BP_OK && i < n; i++) {
        if (!known[i]) {
            chains[n_chains++] = bp_store_audit_chain_of(&recs[i]);
        }
    }
    qsort(chains, n_chains, sizeof(*chains), cmp_str_ptr);
    for (size_t c = 0; err == BP_OK && c < n_chains; c++) {
        int64_t at = 0;
        char head[BP_AUDIT_HEX];

        if (c > 0 && strcmp(chains[c], chains[c - 1]) == 0) {
            continue;
        }
        err = t->lock_head(s, chains[c], &at, head);
        if (err != BP_OK) {
            break;
        }
        bp_store__chain_link(recs, n, known, chains[c], &at, head);
        err = t->set_head(s, chains[c], at, head, now);
    }
    /* The stored order is the given order; the records are shallow copies (nothing freed here). */
    for (size_t i = 0; err == BP_OK && i < n; i++) {
        if (!known[i]) {
            from[n_todo] = i;
            todo[n_todo++] = recs[i];
        }
    }
    if (err == BP_OK && n_todo > 0) {
        err = t->insert(s, todo, n_todo);
    }
    for (size_t k = 0; err == BP_OK && k < n_todo; k++) {
        /* Under the head's lock nobody else stores these ids: every record must have gone in,
         * or its chain would have a gap. */
        if (todo[k].seq == 0) {
            err = BP_ERR_STORE;
        }
        recs[from[k]].seq = todo[k].seq;
    }
    for (size_t i = 0; err == BP_OK && i < n; i++) {
        if (known[i]) {
            recs[i].chain_n = 0;
            recs[i].prev_hash[0] = recs[i].hash[0] = '\0';
        }
    }
out:
    if (err != BP_OK) {
        for (size_t i = 0; i < n; i++) {
            recs[i].seq = 0;
        }
    }
    bp_free(known);
    bp_free(chains);
    bp_free(todo);
    bp_free(from);
    return err;
}

#define LEGACY_CHAIN "legacy"
#define SEAL_PAGE 5000

bp_err
bp_store__seal_legacy(struct bp_store *s)
{
    const struct bp_store_trail_ops *t = s->ops->trail;
    struct bp_audit_query q = {.ascending = true, .limit = SEAL_PAGE};
    int64_t at = 0;
    char head[BP_AUDIT_HEX] = "";
    bp_err err = BP_OK;

    for (;;) {
        struct bp_audit_rec *recs = NULL;
        size_t n = 0;

        err = s->ops->audit->query(s, &q, &recs, &n);
        if (err != BP_OK) {
            break;
        }
        for (size_t i = 0; i < n; i++) {
            bp_free(recs[i].chain);
            recs[i].chain = bp_strdup(LEGACY_CHAIN);
        }
        bp_store__chain_link(recs, n, NULL, LEGACY_CHAIN, &at, head);
        if (n > 0) {
            err = t->set_places(s, recs, n);
            q.after_seq = recs[n - 1].seq;
        }
        bp_audit_recs_free(recs, n);
        if (err != BP_OK || n < SEAL_PAGE) {
            break;
        }
    }
    if (err == BP_OK && at > 0) {
        err = t->set_head(s, LEGACY_CHAIN, at, head, bp_clock_wall_us());
    }
    return err;
}

/* ---- reading ---- */

bp_err
bp_store_audit_heads(struct bp_store *s, struct bp_audit_head **out, size_t *out_n)
{
    return s->ops->trail->heads(s, out, out_n);
}

void
bp_audit_heads_free(struct bp_audit_head *h, size_t n)
{
    for (size_t i = 0; h != NULL && i < n; i++) {
        bp_free(h[i].chain);
    }
    bp_free(h);
}

bp_err
bp_store_audit_chain_page(struct bp_store *s, const char *chain, int64_t after_n, size_t limit,
                          struct bp_audit_rec **out, size_t *out_n)
{
    return s->ops->trail->page(s, chain, after_n, limit > 0 ? limit : 1, out, out_n);
}

bp_err
bp_store_audit_chain_start(struct bp_store *s, const char *chain, int64_t since_us, int64_t *out_n)
{
    return s->ops->trail->start(s, chain, since_us, out_n);
}

bp_err
bp_store_audit_strays(struct bp_store *s, struct bp_audit_strays *out)
{
    memset(out, 0, sizeof(*out));
    return s->ops->trail->strays(s, out);
}

void
bp_audit_strays_cleanup(struct bp_audit_strays *st)
{
    bp_free(st->headless_chain);
    st->headless_chain = NULL;
}

bp_err
bp_store_audit_checkpoint_put(struct bp_store *s, const struct bp_audit_checkpoint *c)
{
    return s->ops->trail->checkpoint_put(s, c);
}

bp_err
bp_store_audit_checkpoint_list(struct bp_store *s, int64_t since_us, const char *kind, size_t limit,
                               struct bp_audit_checkpoint **out, size_t *out_n)
{
    return s->ops->trail->checkpoint_list(s, since_us, kind, limit, out, out_n);
}

bp_err
bp_store_audit_checkpoint_delete(struct bp_store *s, const char *id)
{
    return s->ops->trail->checkpoint_delete(s, id);
}

static void
checkpoint_cleanup(struct bp_audit_checkpoint *c)
{
    bp_free(c->id);
    bp_free(c->kind);
    bp_free(c->body);
    bp_free(c->signature);
    memset(c, 0, sizeof(*c));
}

void
bp_audit_checkpoints_free(struct bp_audit_checkpoint *c, size_t n)
{
    for (size_t i = 0; c != NULL && i < n; i++) {
        checkpoint_cleanup(&c[i]);
    }
    bp_free(c);
}

/* ---- purging ---- */

/* One chain's prefix: the records before its first one at or after before_us. */
static bp_err
purge_chain(struct bp_store *s, const struct bp_audit_head *h, int64_t before_us, bp_audit_cut_fn cut_fn,
            void *ctx, int64_t *deleted)
{
    const struct bp_store_trail_ops *t = s->ops->trail;
    struct bp_audit_checkpoint cp = {0};
    struct bp_audit_cut cut = {.chain = h->chain, .before_us = before_us};
    char head[BP_AUDIT_HEX];
    int64_t first_kept = 0;
    bool found = false;
    bp_err err = t->start(s, h->chain, before_us, &first_kept);

    if (err != BP_OK) {
        return err;
    }
    cut.upto_n = first_kept > 0 ? first_kept - 1 : h->n;
    if (cut.upto_n <= 0) {
        return BP_OK;
    }
    err = t->hash_at(s, h->chain, cut.upto_n, head, &found);
    if (err != BP_OK || !found) {
        /* Purged already (an earlier purge's checkpoint covers it). */
        return err;
    }
    err = t->count_upto(s, h->chain, cut.upto_n, &cut.records);
    if (err != BP_OK || cut.records == 0) {
        return err;
    }
    cut.head = head;
    /* The checkpoint is stored before the first row goes: if the purge stops half way, what
     * remains still links to it. */
    err = cut_fn(ctx, &cut, &cp);
    if (err == BP_OK) {
        err = t->checkpoint_put(s, &cp);
    }
    checkpoint_cleanup(&cp);
    if (err == BP_OK) {
        int64_t d = 0;
        err = t->delete_upto(s, h->chain, cut.upto_n, &d);
        *deleted += d;
    }
    return err;
}

bp_err
bp_store_audit_purge(struct bp_store *s, int64_t before_us, bp_audit_cut_fn cut_fn, void *ctx,
                     int64_t *out_deleted)
{
    const struct bp_store_trail_ops *t = s->ops->trail;
    struct bp_audit_head *heads = NULL;
    size_t n_heads = 0;
    int64_t deleted = 0;
    bool got = false;
    bp_err err = t->purge_lock(s, &got);

    if (out_deleted != NULL) {
        *out_deleted = 0;
    }
    if (err != BP_OK || !got) {
        /* Another node purges now; the next turn may be ours. */
        return err;
    }
    err = t->delete_legacy(s, before_us, &deleted);
    if (err == BP_OK && cut_fn != NULL) {
        err = t->heads(s, &heads, &n_heads);
    }
    for (size_t i = 0; err == BP_OK && i < n_heads; i++) {
        err = purge_chain(s, &heads[i], before_us, cut_fn, ctx, &deleted);
    }
    bp_audit_heads_free(heads, n_heads);
    t->purge_unlock(s);
    if (out_deleted != NULL) {
        *out_deleted = deleted;
    }
    return err;
}
