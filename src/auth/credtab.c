/* The shared credential and instance tables (see auth.h).
 *
 * Publication: `current` holds one reference owned by the publisher. Readers pin under a mutex
 * (the load of the pointer and the increment must be one step, or a concurrent publish could
 * free the snapshot between them); the mutex is uncontended except for the moment of a swap.
 * Each publish bumps `generation`, so a loop thread can keep a snapshot pinned and take a new
 * one only when the generation moved: per request that costs one atomic load and one
 * increment of the pinned snapshot's count (bp_tables_ref), and no lock. */
#include "auth/auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/secret.h"
#include "store/store.h"

struct bp_tables {
    atomic_int refs;
    struct bp_cred *creds;
    size_t n_creds;
    uint32_t *cred_index; /* open addressing, value = index + 1, 0 = empty */
    size_t index_cap;     /* power of two, >= 2 * n_creds */
    struct bp_instance *insts; /* sorted by id */
    size_t n_insts;
};

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bp_tables *current;
static atomic_uint generation;

static void
tables_free(struct bp_tables *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n_creds; i++) {
        struct bp_cred *c = &t->creds[i];
        bp_free(c->id);
        bp_free(c->actor_id);
        bp_free(c->name);
        for (size_t k = 0; k < c->n_instances; k++) {
            bp_free(c->instances[k]);
        }
        bp_free(c->instances);
    }
    for (size_t i = 0; i < t->n_insts; i++) {
        bp_free(t->insts[i].id);
        bp_free(t->insts[i].url);
        bp_free(t->insts[i].ca_file);
        bp_secret_free(t->insts[i].secret);
    }
    bp_free(t->creds);
    bp_free(t->cred_index);
    bp_free(t->insts);
    bp_free(t);
}

static uint64_t
digest_hash(const unsigned char d[32])
{
    uint64_t h;
    /* The digest is already uniformly random; its first 8 bytes are a fine hash. */
    memcpy(&h, d, sizeof(h));
    return h;
}

static void
split_instances(const char *list, struct bp_cred *c)
{
    size_t n = 1;
    const char *p = list;

    for (const char *q = list; *q != '\0'; q++) {
        if (*q == ',') {
            n++;
        }
    }
    c->instances = bp_calloc(n, sizeof(char *));
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            c->instances[c->n_instances++] = bp_strndup(p, len);
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
}

static int
cmp_instance(const void *a, const void *b)
{
    const struct bp_instance *x = a;
    const struct bp_instance *y = b;
    return strcmp(x->id, y->id);
}

/* Fills the index slot for the credential just written at t->creds[t->n_creds]. */
static void
index_cred(struct bp_tables *t)
{
    size_t slot = (size_t)digest_hash(t->creds[t->n_creds].digest) & (t->index_cap - 1);

    while (t->cred_index[slot] != 0) {
        slot = (slot + 1) & (t->index_cap - 1);
    }
    t->cred_index[slot] = (uint32_t)(t->n_creds + 1);
    t->n_creds++;
}

static void
add_key(struct bp_tables *t, const struct bp_key_rec *k)
{
    struct bp_cred *c = &t->creds[t->n_creds];
    unsigned bits = 0;

    if (k->scopes == NULL || bp_scopes_parse(k->scopes, &bits) != BP_OK) {
        return; /* a row the CLI would never write; refuse it rather than guess */
    }
    c->kind = BP_CRED_API_KEY;
    c->id = bp_strdup(k->id);
    c->actor_id = bp_strdup(k->id);
    c->name = bp_strdup(k->name ? k->name : "");
    memcpy(c->digest, k->digest, sizeof(c->digest));
    c->scopes = bits;
    c->expires_at = k->expires_at;
    c->revoked = k->revoked;
    atomic_init(&c->used_at, 0);
    /* An empty list restricts the key to no instance: a restriction never fails open. */
    if (k->instances != NULL) {
        split_instances(k->instances, c);
    }
    index_cred(t);
}

static void
add_token(struct bp_tables *t, const struct bp_live_token *tok)
{
    struct bp_cred *c = &t->creds[t->n_creds];
    unsigned bits = 0;

    if (tok->scopes == NULL || bp_scopes_parse(tok->scopes, &bits) != BP_OK) {
        return;
    }
    c->kind = BP_CRED_ACCESS_TOKEN;
    c->id = bp_strdup(tok->id);
    c->actor_id = bp_strdup(tok->client_id);
    c->name = bp_strdup(tok->client_name ? tok->client_name : "");
    memcpy(c->digest, tok->digest, sizeof(c->digest));
    c->scopes = bits;
    c->expires_at = tok->expires_at;
    /* Revoked tokens, and tokens of revoked clients, are not live: they never get here. */
    c->revoked = false;
    atomic_init(&c->used_at, 0);
    /* The client's restriction binds its tokens, with the same never-fail-open rule as keys. */
    if (tok->instances != NULL) {
        split_instances(tok->instances, c);
    }
    index_cred(t);
}

bp_err
bp_tables_build(const struct bp_key_rec *keys, size_t n_keys, const struct bp_live_token *tokens,
                size_t n_tokens, const struct bp_instance_rec *insts, size_t n_insts, struct bp_tables **out)
{
    struct bp_tables *t = bp_calloc(1, sizeof(*t));
    size_t n_total = n_keys + n_tokens;

    BP_BUG_ON(n_tokens > 0 && tokens == NULL);
    BP_BUG_ON(n_total >= UINT32_MAX / 4);
    atomic_init(&t->refs, 1);
    t->creds = bp_calloc(n_total ? n_total : 1, sizeof(*t->creds));
    t->index_cap = 16;
    while (t->index_cap < 2 * n_total) {
        t->index_cap *= 2;
    }
    t->cred_index = bp_calloc(t->index_cap, sizeof(uint32_t));
    for (size_t i = 0; i < n_keys; i++) {
        add_key(t, &keys[i]);
    }
    for (size_t i = 0; i < n_tokens; i++) {
        add_token(t, &tokens[i]);
    }
    t->insts = bp_calloc(n_insts ? n_insts : 1, sizeof(*t->insts));
    for (size_t i = 0; i < n_insts; i++) {
        const struct bp_instance_rec *r = &insts[i];
        struct bp_instance *e = &t->insts[t->n_insts++];
        e->id = bp_strdup(r->id);
        e->url = bp_strdup(r->url);
        e->ca_file = r->ca_file ? bp_strdup(r->ca_file) : NULL;
        e->secret = r->secret_key ? bp_secret_new(r->secret_key, r->secret_key_len) : NULL;
        e->enabled = r->enabled;
    }
    qsort(t->insts, t->n_insts, sizeof(*t->insts), cmp_instance);
    *out = t;
    return BP_OK;
}

void
bp_tables_publish(struct bp_tables *t)
{
    struct bp_tables *old;

    pthread_mutex_lock(&current_lock);
    old = current;
    current = t;
    atomic_fetch_add(&generation, 1);
    pthread_mutex_unlock(&current_lock);
    bp_tables_release(old);
}

unsigned
bp_tables_generation(void)
{
    return atomic_load(&generation);
}

struct bp_tables *
bp_tables_ref(struct bp_tables *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

struct bp_tables *
bp_tables_acquire(void)
{
    struct bp_tables *t;

    pthread_mutex_lock(&current_lock);
    t = current;
    if (t != NULL) {
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&current_lock);
    return t;
}

void
bp_tables_release(struct bp_tables *t)
{
    if (t == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        tables_free(t);
    }
}

void
bp_tables_shutdown(void)
{
    bp_tables_publish(NULL);
}

const struct bp_cred *
bp_tables_find_cred(const struct bp_tables *t, const unsigned char digest[32])
{
    size_t slot = (size_t)digest_hash(digest) & (t->index_cap - 1);

    for (;;) {
        uint32_t v = t->cred_index[slot];
        if (v == 0) {
            return NULL;
        }
        if (bp_ct_equal(t->creds[v - 1].digest, digest, 32)) {
            return &t->creds[v - 1];
        }
        slot = (slot + 1) & (t->index_cap - 1);
    }
}

const struct bp_instance *
bp_tables_find_instance(const struct bp_tables *t, const char *id, size_t len)
{
    size_t lo = 0;
    size_t hi = t->n_insts;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *m = t->insts[mid].id;
        size_t mlen = strlen(m);
        int c = memcmp(m, id, mlen < len ? mlen : len);
        if (c == 0) {
            c = (mlen > len) - (mlen < len);
        }
        if (c == 0) {
            return &t->insts[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

size_t
bp_tables_cred_count(const struct bp_tables *t)
{
    return t->n_creds;
}

struct bp_cred *
bp_tables_cred_at(struct bp_tables *t, size_t i)
{
    return &t->creds[i];
}
