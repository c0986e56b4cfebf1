/* Checkpoints (trail.h): made from the heads, or from what a purge removes; canonical text,
 * signature, stored in audit_checkpoints, exported as one JSON object. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "store/store.h"
#include "trail/trail-int.h"

#define US_PER_S 1000000LL
#define DAY_US (86400 * US_PER_S)

/* Text from json_dumps goes back to whatever allocator jansson was given (the CLI's wipes). */
static void
json_text_free(char *t)
{
    json_malloc_t m;
    json_free_t f;

    json_get_alloc_funcs(&m, &f);
    f(t);
}

/* The text a signature covers: the object as jansson writes it compact, keys sorted, ASCII only
 * (what any copy of it parses back to and is written out as again). */
static char *
canonical(const json_t *o)
{
    char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    char *copy;

    BP_BUG_ON(t == NULL);
    copy = bp_strdup(t);
    json_text_free(t);
    return copy;
}

static void
rfc3339_us(int64_t t_us, char out[28])
{
    int64_t s = t_us / US_PER_S;
    char base[21];

    bp_clock_format_rfc3339(s, base);
    snprintf(out, 28, "%.19s.%06dZ", base, (int)(t_us - s * US_PER_S));
}

/* A new checkpoint object with the fields every kind has. */
static json_t *
new_object(const char *kind, const char *node, int64_t now_us, const struct bp_trail_key *key, char id[40])
{
    json_t *o = json_object();
    char ulid[BP_ULID_LEN + 1];
    char t[28];

    BP_BUG_ON(o == NULL);
    if (bp_ulid_id(ulid) != BP_OK) {
        json_decref(o);
        return NULL;
    }
    snprintf(id, 40, "ckpt_%s", ulid);
    rfc3339_us(now_us, t);
    json_object_set_new(o, "type", json_string("blnkproxy.audit.checkpoint"));
    json_object_set_new(o, "version", json_integer(1));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "kind", json_string(kind));
    json_object_set_new(o, "time", json_string(t));
    json_object_set_new(o, "time_us", json_integer(now_us));
    json_object_set_new(o, "node", node != NULL ? json_string(node) : json_null());
    json_object_set_new(o, "key_id", key != NULL ? json_string(bp_trail__key_id(key)) : json_null());
    return o;
}

/* Fills c from o (which it consumes): canonical body, signature when key, id, kind, time. */
static bp_err
seal(json_t *o, const char *id, const char *kind, int64_t now_us, const struct bp_trail_key *key,
     struct bp_audit_checkpoint *c)
{
    char sig[BP_TRAIL_SIG_HEX];

    memset(c, 0, sizeof(*c));
    c->body = canonical(o);
    json_decref(o);
    if (key != NULL) {
        if (!bp_trail__sign(key, c->body, sig)) {
            bp_free(c->body);
            c->body = NULL;
            return BP_ERR_INVALID;
        }
        c->signature = bp_strdup(sig);
    }
    c->id = bp_strdup(id);
    c->kind = bp_strdup(kind);
    c->time_us = now_us;
    return BP_OK;
}

char *
bp_trail_checkpoint_text(const char *body, const char *signature)
{
    json_t *o = json_loads(body, 0, NULL);
    char *text;
    char *copy;

    if (o == NULL) {
        return bp_strdup(body);
    }
    json_object_set_new(o, "signature", signature != NULL ? json_string(signature) : json_null());
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(o);
    BP_BUG_ON(text == NULL);
    copy = bp_strdup(text);
    json_text_free(text);
    return copy;
}

/* True when heads are exactly those the body's "chains" lists. */
static bool
same_heads(const char *body, const struct bp_audit_head *heads, size_t n)
{
    json_t *o = json_loads(body, 0, NULL);
    json_t *chains = o != NULL ? json_object_get(o, "chains") : NULL;
    bool same = json_is_array(chains) && json_array_size(chains) == n;

    for (size_t i = 0; same && i < n; i++) {
        json_t *c = json_array_get(chains, i);
        const char *name = json_string_value(json_object_get(c, "chain"));
        const char *head = json_string_value(json_object_get(c, "head"));
        same = name != NULL && head != NULL && strcmp(name, heads[i].chain) == 0 &&
               json_integer_value(json_object_get(c, "n")) == heads[i].n && strcmp(head, heads[i].head) == 0;
    }
    json_decref(o);
    return same;
}

bp_err
bp_trail_checkpoint(struct bp_store *s, const char *kind, const char *node, const struct bp_trail_key *key,
                    bool unchanged_skip, char **out_json)
{
    struct bp_audit_head *heads = NULL;
    struct bp_audit_checkpoint *old = NULL;
    struct bp_audit_checkpoint c = {0};
    size_t n_heads = 0, n_old = 0;
    int64_t now = bp_clock_wall_us();
    json_t *o = NULL;
    json_t *chains;
    char id[40];
    bp_err err = bp_store_audit_heads(s, &heads, &n_heads);

    if (out_json != NULL) {
        *out_json = NULL;
    }
    if (err == BP_OK && unchanged_skip) {
        /* The last day's are enough to compare with (and few): when heads stood still longer,
         * one more checkpoint a day is no harm. */
        err = bp_store_audit_checkpoint_list(s, now - DAY_US, kind, 0, &old, &n_old);
        if (err == BP_OK && n_old > 0 && same_heads(old[n_old - 1].body, heads, n_heads)) {
            goto done;
        }
    }
    if (err != BP_OK) {
        goto done;
    }
    o = new_object(kind, node, now, key, id);
    if (o == NULL) {
        err = BP_ERR_IO;
        goto done;
    }
    chains = json_array();
    for (size_t i = 0; i < n_heads; i++) {
        json_t *h = json_object();
        json_object_set_new(h, "chain", json_string(heads[i].chain));
        json_object_set_new(h, "n", json_integer(heads[i].n));
        json_object_set_new(h, "head", json_string(heads[i].head));
        json_array_append_new(chains, h);
    }
    json_object_set_new(o, "chains", chains);
    err = seal(o, id, kind, now, key, &c);
    if (err == BP_OK) {
        err = bp_store_audit_checkpoint_put(s, &c);
    }
    if (err == BP_OK && out_json != NULL) {
        *out_json = bp_trail_checkpoint_text(c.body, c.signature);
    }

done:
    bp_free(c.id);
    bp_free(c.kind);
    bp_free(c.body);
    bp_free(c.signature);
    bp_audit_heads_free(heads, n_heads);
    bp_audit_checkpoints_free(old, n_old);
    return err;
}

struct purge_ctx {
    const char *node;
    const struct bp_trail_key *key;
};

static bp_err
on_cut(void *vctx, const struct bp_audit_cut *cut, struct bp_audit_checkpoint *out)
{
    struct purge_ctx *ctx = vctx;
    int64_t now = bp_clock_wall_us();
    json_t *purged;
    char id[40];
    json_t *o = new_object("purge", ctx->node, now, ctx->key, id);

    if (o == NULL) {
        return BP_ERR_IO;
    }
    purged = json_object();
    json_object_set_new(purged, "chain", json_string(cut->chain));
    json_object_set_new(purged, "upto", json_integer(cut->upto_n));
    json_object_set_new(purged, "head", json_string(cut->head));
    json_object_set_new(purged, "records", json_integer(cut->records));
    json_object_set_new(purged, "before_us", json_integer(cut->before_us));
    json_object_set_new(o, "purged", purged);
    return seal(o, id, "purge", now, ctx->key, out);
}

/* The chain and place a purge checkpoint's body names; false when it does not parse. */
static bool
purge_place(const char *body, char **out_chain, int64_t *out_upto)
{
    json_t *o = json_loads(body, 0, NULL);
    json_t *p = o != NULL ? json_object_get(o, "purged") : NULL;
    const char *chain = json_string_value(json_object_get(p, "chain"));
    bool ok = chain != NULL;

    if (ok) {
        *out_chain = bp_strdup(chain);
        *out_upto = json_integer_value(json_object_get(p, "upto"));
    }
    json_decref(o);
    return ok;
}

/* Stored checkpoints older than before_us are of records gone by now: deleted, except each
 * chain's latest purge checkpoint, where verify starts that chain. Copies kept elsewhere are
 * what an audit relies on; this keeps the table from growing for ever. */
static bp_err
forget_old_checkpoints(struct bp_store *s, int64_t before_us)
{
    struct bp_audit_checkpoint *cps = NULL;
    size_t n = 0;
    char **chains;
    int64_t *uptos;
    bp_err err = bp_store_audit_checkpoint_list(s, 0, NULL, 0, &cps, &n);

    if (err != BP_OK) {
        return err;
    }
    chains = bp_calloc(n > 0 ? n : 1, sizeof(*chains));
    uptos = bp_calloc(n > 0 ? n : 1, sizeof(*uptos));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cps[i].kind, "purge") == 0 && !purge_place(cps[i].body, &chains[i], &uptos[i])) {
            chains[i] = NULL; /* unreadable: kept, for verify to report */
        }
    }
    for (size_t i = 0; err == BP_OK && i < n; i++) {
        bool keep = cps[i].time_us >= before_us;
        if (!keep && strcmp(cps[i].kind, "purge") == 0) {
            /* Kept unless the same chain has a purge checkpoint at a later place. */
            bool superseded = false;
            for (size_t j = 0; chains[i] != NULL && j < n; j++) {
                superseded |=
                    j != i && chains[j] != NULL && strcmp(chains[j], chains[i]) == 0 && uptos[j] > uptos[i];
            }
            keep = !superseded;
        }
        if (!keep) {
            err = bp_store_audit_checkpoint_delete(s, cps[i].id);
            err = err == BP_ERR_NOT_FOUND ? BP_OK : err; /* another node's purge took it */
        }
    }
    for (size_t i = 0; i < n; i++) {
        bp_free(chains[i]);
    }
    bp_free(chains);
    bp_free(uptos);
    bp_audit_checkpoints_free(cps, n);
    return err;
}

bp_err
bp_trail_purge(struct bp_store *s, int64_t before_us, const char *node, const struct bp_trail_key *key,
               int64_t *out_deleted)
{
    struct purge_ctx ctx = {.node = node, .key = key};
    bp_err err = bp_store_audit_purge(s, before_us, on_cut, &ctx, out_deleted);

    if (err == BP_OK) {
        err = forget_old_checkpoints(s, before_us);
    }
    return err;
}
