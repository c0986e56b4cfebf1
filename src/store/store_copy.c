/* db copy (issue 9 item 8): a SQLite deployment moved into PostgreSQL, whole.
 *
 * The source is read inside one read transaction, so the copy is the store as of one moment even
 * while a server still writes to it. The target is written inside one transaction (with the
 * CHANGES lock, as every change is), and committed only once each table holds exactly as many
 * rows as the source's: a copy is complete or absent. Records go through the same store calls
 * the CLI and the servers use (so each lands as the target's schema wants it), except audit
 * records, which keep their seq (copy_audit) so that references to them stay true; the target's
 * identity then continues after the largest (copy_done). */
#include <stdio.h>
#include <string.h>

#include "lib/alloc.h"
#include "store/store-int.h"

/* Copied in this order: clients before the tokens and codes that name them. */
static const char *const TABLES[BP_STORE_COPY_TABLES] = {
    "instances", "api_keys", "oauth_clients", "oauth_operators",
    "oauth_tokens", "oauth_codes", "oauth_sessions", "admin_tokens", "audit_log",
};

#define AUDIT_PAGE 1000

struct copy {
    struct bp_store *src;
    struct bp_store *dst;
    struct bp_store *failed; /* which side the error is about */
};

static bp_err
from_src(struct copy *c, bp_err rc)
{
    if (rc != BP_OK) {
        c->failed = c->src;
    }
    return rc;
}

static bp_err
to_dst(struct copy *c, bp_err rc)
{
    if (rc != BP_OK && c->failed == NULL) {
        c->failed = c->dst;
    }
    return rc;
}

static bp_err
count_all(struct bp_store *s, int64_t rows[BP_STORE_COPY_TABLES])
{
    for (size_t i = 0; i < BP_STORE_COPY_TABLES; i++) {
        bp_err rc = s->ops->count_rows(s, TABLES[i], &rows[i]);
        if (rc != BP_OK) {
            return rc;
        }
    }
    return BP_OK;
}

static bp_err
copy_instances_keys(struct copy *c)
{
    struct bp_instance_rec *insts = NULL;
    struct bp_key_rec *keys = NULL;
    size_t n_insts = 0;
    size_t n_keys = 0;
    bp_err rc = from_src(c, bp_store_instance_list(c->src, &insts, &n_insts));

    for (size_t i = 0; rc == BP_OK && i < n_insts; i++) {
        rc = to_dst(c, bp_store_instance_insert(c->dst, &insts[i]));
    }
    if (rc == BP_OK) {
        rc = from_src(c, bp_store_key_list(c->src, &keys, &n_keys));
    }
    for (size_t i = 0; rc == BP_OK && i < n_keys; i++) {
        rc = to_dst(c, bp_store_key_insert(c->dst, &keys[i]));
    }
    bp_instance_recs_free(insts, n_insts);
    bp_key_recs_free(keys, n_keys);
    return rc;
}

static bp_err
copy_clients_operators(struct copy *c)
{
    struct bp_client_rec *clients = NULL;
    struct bp_operator_rec *ops = NULL;
    struct bp_admin_token_rec *tokens = NULL;
    size_t n_clients = 0;
    size_t n_ops = 0;
    size_t n_tokens = 0;
    bp_err rc = from_src(c, bp_store_client_list(c->src, &clients, &n_clients));

    for (size_t i = 0; rc == BP_OK && i < n_clients; i++) {
        rc = to_dst(c, bp_store_client_insert(c->dst, &clients[i]));
    }
    if (rc == BP_OK) {
        rc = from_src(c, bp_store_operator_list(c->src, &ops, &n_ops));
    }
    for (size_t i = 0; rc == BP_OK && i < n_ops; i++) {
        rc = to_dst(c, bp_store_operator_insert(c->dst, &ops[i]));
    }
    if (rc == BP_OK) {
        rc = from_src(c, bp_store_admin_token_list(c->src, NULL, NULL, &tokens, &n_tokens));
    }
    for (size_t i = 0; rc == BP_OK && i < n_tokens; i++) {
        rc = to_dst(c, bp_store_admin_token_insert(c->dst, &tokens[i]));
    }
    bp_admin_token_recs_free(tokens, n_tokens);
    bp_client_recs_free(clients, n_clients);
    bp_operator_recs_free(ops, n_ops);
    return rc;
}

static bp_err
copy_grants(struct copy *c)
{
    const struct bp_store_oauth_ops *o = c->src->ops->oauth;
    struct bp_token_rec *tokens = NULL;
    struct bp_code_rec *codes = NULL;
    struct bp_session_rec *sessions = NULL;
    size_t n_tokens = 0;
    size_t n_codes = 0;
    size_t n_sessions = 0;
    bp_err rc = from_src(c, o->token_list_all(c->src, &tokens, &n_tokens));

    for (size_t i = 0; rc == BP_OK && i < n_tokens; i++) {
        rc = to_dst(c, bp_store_token_insert(c->dst, &tokens[i]));
    }
    if (rc == BP_OK) {
        rc = from_src(c, o->code_list(c->src, &codes, &n_codes));
    }
    for (size_t i = 0; rc == BP_OK && i < n_codes; i++) {
        rc = to_dst(c, bp_store_code_insert(c->dst, &codes[i]));
    }
    if (rc == BP_OK) {
        rc = from_src(c, o->session_list(c->src, &sessions, &n_sessions));
    }
    for (size_t i = 0; rc == BP_OK && i < n_sessions; i++) {
        rc = to_dst(c, bp_store_session_insert(c->dst, &sessions[i]));
    }
    for (size_t i = 0; i < n_tokens; i++) {
        bp_token_rec_cleanup(&tokens[i]);
    }
    for (size_t i = 0; i < n_codes; i++) {
        bp_code_rec_cleanup(&codes[i]);
    }
    for (size_t i = 0; i < n_sessions; i++) {
        bp_session_rec_cleanup(&sessions[i]);
    }
    bp_free(tokens);
    bp_free(codes);
    bp_free(sessions);
    return rc;
}

/* In seq order, a page at a time, so a large log never sits in memory whole. */
static bp_err
copy_audit(struct copy *c)
{
    struct bp_audit_query q = {.ascending = true, .limit = AUDIT_PAGE};
    bp_err rc = BP_OK;

    for (;;) {
        struct bp_audit_rec *recs = NULL;
        size_t n = 0;

        rc = from_src(c, bp_store_audit_query(c->src, &q, &recs, &n));
        if (rc == BP_OK) {
            rc = bp_store__audit_ids(recs, n);
        }
        if (rc == BP_OK) {
            rc = to_dst(c, c->dst->ops->copy_audit(c->dst, recs, n));
        }
        if (n > 0) {
            q.after_seq = recs[n - 1].seq;
        }
        bp_audit_recs_free(recs, n);
        if (rc != BP_OK || n < AUDIT_PAGE) {
            return rc;
        }
    }
}

/* The trail's heads and checkpoints as they are, and which rows are from before it: the copied
 * records keep their hashes (the digest is the same on every backend), so the copy verifies as
 * the source does. */
static bp_err
copy_trail(struct copy *c)
{
    struct bp_audit_head *heads = NULL;
    struct bp_audit_checkpoint *cps = NULL;
    struct bp_audit_strays strays;
    size_t n_heads = 0, n_cps = 0;
    bp_err rc = from_src(c, bp_store_audit_heads(c->src, &heads, &n_heads));

    for (size_t i = 0; rc == BP_OK && i < n_heads; i++) {
        rc = to_dst(c, c->dst->ops->trail->set_head(c->dst, heads[i].chain, heads[i].n, heads[i].head,
                                                    heads[i].updated_us));
    }
    if (rc == BP_OK) {
        rc = from_src(c, bp_store_audit_checkpoint_list(c->src, 0, NULL, 0, &cps, &n_cps));
    }
    for (size_t i = 0; rc == BP_OK && i < n_cps; i++) {
        rc = to_dst(c, bp_store_audit_checkpoint_put(c->dst, &cps[i]));
    }
    if (rc == BP_OK) {
        rc = from_src(c, bp_store_audit_strays(c->src, &strays));
        if (rc == BP_OK) {
            rc = to_dst(c, c->dst->ops->trail->set_unchained(c->dst, strays.legacy_max_seq, strays.legacy_n));
        }
        bp_audit_strays_cleanup(&strays);
    }
    bp_audit_heads_free(heads, n_heads);
    bp_audit_checkpoints_free(cps, n_cps);
    return rc;
}

static bp_err
copy_everything(struct copy *c, bool replace, struct bp_store_copy_report *out)
{
    int64_t want[BP_STORE_COPY_TABLES];
    int64_t have[BP_STORE_COPY_TABLES];
    bp_err rc = from_src(c, count_all(c->src, want));

    if (rc == BP_OK) {
        rc = to_dst(c, count_all(c->dst, have));
    }
    if (rc != BP_OK) {
        return rc;
    }
    for (size_t i = 0; i < BP_STORE_COPY_TABLES; i++) {
        if (have[i] > 0 && !replace) {
            memcpy(out->rows, have, sizeof(have));
            return BP_ERR_EXISTS;
        }
    }
    if (replace) {
        rc = to_dst(c, c->dst->ops->copy_clear(c->dst));
    }
    if (rc == BP_OK) {
        rc = copy_instances_keys(c);
    }
    if (rc == BP_OK) {
        rc = copy_clients_operators(c);
    }
    if (rc == BP_OK) {
        rc = copy_grants(c);
    }
    if (rc == BP_OK) {
        rc = copy_audit(c);
    }
    if (rc == BP_OK) {
        rc = copy_trail(c);
    }
    if (rc == BP_OK) {
        rc = to_dst(c, c->dst->ops->copy_done(c->dst));
    }
    if (rc == BP_OK) {
        rc = to_dst(c, count_all(c->dst, have));
    }
    memcpy(out->rows, want, sizeof(want));
    for (size_t i = 0; rc == BP_OK && i < BP_STORE_COPY_TABLES; i++) {
        if (have[i] != want[i]) {
            out->mismatch = TABLES[i];
            out->mismatch_want = want[i];
            out->mismatch_have = have[i];
            rc = BP_ERR_STORE;
        }
    }
    return rc;
}

bp_err
bp_store_copy(struct bp_store *src, struct bp_store *dst, bool replace, struct bp_store_copy_report *out,
              struct bp_store **out_failed)
{
    struct copy c = {.src = src, .dst = dst};
    bp_err rc;

    memset(out, 0, sizeof(*out));
    out->n = BP_STORE_COPY_TABLES;
    memcpy(out->table, TABLES, sizeof(TABLES));
    *out_failed = NULL;
    if (src->ops->oauth->token_list_all == NULL || dst->ops->copy_audit == NULL || dst->ops->trail->set_unchained == NULL) {
        return BP_ERR_INVALID;
    }
    rc = from_src(&c, src->ops->snapshot_begin(src));
    if (rc != BP_OK) {
        *out_failed = c.failed;
        return rc;
    }
    rc = to_dst(&c, bp_store_begin(dst));
    if (rc == BP_OK) {
        rc = copy_everything(&c, replace, out);
        if (rc == BP_OK) {
            rc = to_dst(&c, bp_store_commit(dst));
        } else {
            bp_store_rollback(dst);
        }
    }
    src->ops->snapshot_end(src);
    *out_failed = c.failed;
    return rc;
}
