/* The shared credential and instance tables (see auth.h).
 *
 * Publication: `current` holds one reference owned by the publisher. Readers pin under a mutex
 * (the load of the pointer and the increment must be one step, or a concurrent publish could
 * free the snapshot between them); the mutex is uncontended except for the moment of a swap.
 * Each publish bumps `generation`, so a loop thread can keep a snapshot pinned and take a new
 * one only when the generation moved: per request that costs one atomic load and one
 * increment of the pinned snapshot's count (bp_tables_ref), and no lock. */
#include "auth/auth.h"
#include "auth/auth-int.h"
#include "health/health.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/secret.h"
#include "store/store.h"

/* The credentials are a persistent hash trie (a HAMT) keyed by the SHA-256 digest of the
 * presented secret: 5 bits of the digest per level, a 32-bit bitmap per node saying which
 * slots are used and another saying which of those hold a credential rather than a child node.
 * Two different digests differ in some bit, so there are no collision lists (at most 52 levels,
 * in practice log32(N) + 1). Nodes and credentials are reference-counted and shared between
 * snapshots: changing one credential copies the nodes on its path (O(log32 N), about 4-5 at 1M
 * credentials) and nothing else. A node or credential whose count is 1 on the path of an
 * unpublished snapshot belongs to that snapshot alone, so it is changed in place: a full build
 * allocates no garbage, and a batch of deltas copies a shared path only once. */
struct node {
    atomic_uint refs;
    uint32_t bitmap;  /* used slots */
    uint32_t leafmap; /* of the used slots, those that hold a credential */
    void *slot[];     /* popcount(bitmap) entries, in bit order */
};

/* The instance rows of a snapshot: few, rebuilt whole on an instance change, shared by the
 * snapshots in between. */
struct inst_set {
    atomic_uint refs;
    size_t n;
    struct bp_instance insts[]; /* sorted by id */
};

struct bp_tables {
    atomic_int refs;
    struct node *root; /* NULL when empty */
    size_t n_creds;
    struct inst_set *insts;
    bool published;    /* published snapshots are never changed again */
};

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bp_tables *current;
static atomic_uint generation;
static atomic_size_t nodes_allocated;

static void
cred_free(struct bp_cred *c)
{
    bp_cred_restriction_unref(c->restriction);
    bp_free(c); /* its strings live in the same allocation */
}

static void
cred_unref(struct bp_cred *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
        cred_free(c);
    }
}

static unsigned
node_count(const struct node *n)
{
    return (unsigned)__builtin_popcount(n->bitmap);
}

static struct node *
node_alloc(unsigned count)
{
    struct node *n = bp_malloc(sizeof(*n) + (count ? count : 1) * sizeof(void *));

    atomic_init(&n->refs, 1);
    n->bitmap = 0;
    n->leafmap = 0;
    atomic_fetch_add_explicit(&nodes_allocated, 1, memory_order_relaxed);
    return n;
}

static void
node_unref(struct node *n)
{
    unsigned count;

    if (n == NULL || atomic_fetch_sub_explicit(&n->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    count = node_count(n);
    for (unsigned i = 0, bit = 0; i < count; bit++) {
        uint32_t mask = 1u << bit;
        if ((n->bitmap & mask) == 0) {
            continue;
        }
        if (n->leafmap & mask) {
            cred_unref(n->slot[i]);
        } else {
            node_unref(n->slot[i]);
        }
        i++;
    }
    bp_free(n);
}

/* The 5-bit chunk of the digest at a level (level 51 has the last bit only). */
static unsigned
chunk(const unsigned char d[32], unsigned level)
{
    unsigned bit = level * 5;
    unsigned v = ((unsigned)d[bit / 8] << 8) | (bit / 8 + 1 < 32 ? d[bit / 8 + 1] : 0);

    return (v >> (11 - bit % 8)) & 31u;
}

static unsigned
slot_index(const struct node *n, uint32_t mask)
{
    return (unsigned)__builtin_popcount(n->bitmap & (mask - 1));
}

/* Takes the caller's reference to n and gives back a node the caller alone holds: n itself
 * when nothing else holds it, else a copy (which holds its own references to n's slots). */
static struct node *
node_own(struct node *n)
{
    unsigned count;
    struct node *c;

    if (atomic_load_explicit(&n->refs, memory_order_acquire) == 1) {
        return n;
    }
    count = node_count(n);
    c = node_alloc(count);
    c->bitmap = n->bitmap;
    c->leafmap = n->leafmap;
    for (unsigned i = 0, bit = 0; i < count; bit++) {
        uint32_t mask = 1u << bit;
        if ((n->bitmap & mask) == 0) {
            continue;
        }
        c->slot[i] = n->slot[i];
        if (n->leafmap & mask) {
            atomic_fetch_add_explicit(&((struct bp_cred *)n->slot[i])->refs, 1, memory_order_relaxed);
        } else {
            atomic_fetch_add_explicit(&((struct node *)n->slot[i])->refs, 1, memory_order_relaxed);
        }
        i++;
    }
    node_unref(n);
    return c;
}

/* An owned node with one more slot at `mask` (a credential when leaf); frees the old shell. */
static struct node *
node_grow(struct node *n, uint32_t mask, void *p, bool leaf)
{
    unsigned count = n ? node_count(n) : 0;
    unsigned idx = n ? slot_index(n, mask) : 0;
    struct node *g = node_alloc(count + 1);

    g->bitmap = (n ? n->bitmap : 0) | mask;
    g->leafmap = (n ? n->leafmap : 0) | (leaf ? mask : 0);
    for (unsigned i = 0; i < idx; i++) {
        g->slot[i] = n->slot[i];
    }
    g->slot[idx] = p;
    for (unsigned i = idx; i < count; i++) {
        g->slot[i + 1] = n->slot[i];
    }
    bp_free(n); /* the slots moved to g with their references */
    return g;
}

/* Puts c (whose reference the trie takes) under n at level; returns the caller's new node.
 * *old gets the credential it replaced (same digest), whose reference passes to the caller. */
static struct node *
node_put(struct node *n, unsigned level, struct bp_cred *c, struct bp_cred **old)
{
    uint32_t mask = 1u << chunk(c->digest, level);
    unsigned idx;

    if (n == NULL) {
        return node_grow(NULL, mask, c, true);
    }
    n = node_own(n);
    if ((n->bitmap & mask) == 0) {
        return node_grow(n, mask, c, true);
    }
    idx = slot_index(n, mask);
    if (n->leafmap & mask) {
        struct bp_cred *e = n->slot[idx];
        struct node *sub;
        if (memcmp(e->digest, c->digest, sizeof(c->digest)) == 0) {
            n->slot[idx] = c;
            *old = e;
            return n;
        }
        /* Two digests share this chunk: push the resident one down a level. */
        sub = node_grow(NULL, 1u << chunk(e->digest, level + 1), e, true);
        n->slot[idx] = node_put(sub, level + 1, c, old);
        n->leafmap &= ~mask;
        return n;
    }
    n->slot[idx] = node_put(n->slot[idx], level + 1, c, old);
    return n;
}

/* Removes the credential with this digest, known to be under n; returns the caller's new node,
 * NULL when it became empty. *old gets the removed credential's reference. */
static struct node *
node_remove(struct node *n, unsigned level, const unsigned char d[32], struct bp_cred **old)
{
    uint32_t mask = 1u << chunk(d, level);
    unsigned idx;
    unsigned count;

    n = node_own(n);
    idx = slot_index(n, mask);
    if ((n->leafmap & mask) == 0) {
        struct node *child = node_remove(n->slot[idx], level + 1, d, old);
        if (child != NULL) {
            n->slot[idx] = child;
            return n;
        }
    } else {
        *old = n->slot[idx];
    }
    /* The slot goes away. */
    count = node_count(n);
    if (count == 1) {
        bp_free(n);
        return NULL;
    }
    memmove(&n->slot[idx], &n->slot[idx + 1], (count - idx - 1) * sizeof(void *));
    n->bitmap &= ~mask;
    n->leafmap &= ~mask;
    return n;
}

static const struct bp_cred *
trie_find(const struct node *n, const unsigned char d[32])
{
    for (unsigned level = 0; n != NULL; level++) {
        uint32_t mask = 1u << chunk(d, level);
        const void *p;
        if ((n->bitmap & mask) == 0) {
            return NULL;
        }
        p = n->slot[slot_index(n, mask)];
        if (n->leafmap & mask) {
            const struct bp_cred *c = p;
            return bp_ct_equal(c->digest, d, 32) ? c : NULL;
        }
        n = p;
    }
    return NULL;
}

static void
trie_each(struct node *n, void (*fn)(struct bp_cred *c, void *arg), void *arg)
{
    unsigned count;

    if (n == NULL) {
        return;
    }
    count = node_count(n);
    for (unsigned i = 0, bit = 0; i < count; bit++) {
        uint32_t mask = 1u << bit;
        if ((n->bitmap & mask) == 0) {
            continue;
        }
        if (n->leafmap & mask) {
            fn(n->slot[i], arg);
        } else {
            trie_each(n->slot[i], fn, arg);
        }
        i++;
    }
}

static void
inst_set_unref(struct inst_set *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        bp_free(s->insts[i].id);
        bp_free(s->insts[i].url);
        bp_free(s->insts[i].ca_file);
        bp_secret_free(s->insts[i].secret);
    }
    bp_free(s);
}

static void
tables_free(struct bp_tables *t)
{
    if (t == NULL) {
        return;
    }
    node_unref(t->root);
    inst_set_unref(t->insts);
    bp_free(t);
}

/* One allocation: the row, then its strings (auth-t.h). actor is NULL for an API key, whose
 * actor is its own id. instances and allow_from NULL = unrestricted; "" = no instance, no
 * address (a restriction never fails open). */
static struct bp_cred *
cred_new(enum bp_cred_kind kind, const char *id, const char *name, const char *actor, const char *instances,
         const char *allow_from, const char *rate_limit, int64_t rate_burst)
{
    size_t id_len = strlen(id) + 1;
    size_t name_len = strlen(name) + 1;
    size_t actor_len = actor ? strlen(actor) + 1 : 0;
    struct bp_cred *c = bp_malloc(offsetof(struct bp_cred, text) + id_len + name_len + actor_len);

    memset(c, 0, offsetof(struct bp_cred, text));
    c->kind = (uint8_t)kind;
    memcpy(c->text, id, id_len);
    memcpy(c->text + id_len, name, name_len);
    if (actor != NULL) {
        memcpy(c->text + id_len + name_len, actor, actor_len);
    }
    c->restriction = bp_cred_restriction_get(instances, allow_from, rate_limit, rate_burst);
    atomic_init(&c->used_at, 0);
    return c;
}

const char *
bp_cred_id(const struct bp_cred *c)
{
    return c->text;
}

const char *
bp_cred_name(const struct bp_cred *c)
{
    return c->text + strlen(c->text) + 1;
}

const char *
bp_cred_actor_id(const struct bp_cred *c)
{
    const char *name;

    if (c->kind == BP_CRED_API_KEY) {
        return c->text;
    }
    name = bp_cred_name(c);
    return name + strlen(name) + 1;
}

static int
cmp_instance(const void *a, const void *b)
{
    const struct bp_instance *x = a;
    const struct bp_instance *y = b;
    return strcmp(x->id, y->id);
}

/* Puts c into the unpublished snapshot t, replacing the credential with the same digest. A
 * replaced row of the same credential hands on its last-used stamps, so that a change to a
 * key (say its expiry) loses no use recorded before it. */
static void
put_cred(struct bp_tables *t, struct bp_cred *c)
{
    struct bp_cred *old = NULL;

    BP_BUG_ON(t->published);
    atomic_init(&c->refs, 1);
    t->root = node_put(t->root, 0, c, &old);
    if (old == NULL) {
        t->n_creds++;
        return;
    }
    if (strcmp(bp_cred_id(old), bp_cred_id(c)) == 0) {
        atomic_store_explicit(&c->used_at, atomic_load_explicit(&old->used_at, memory_order_relaxed),
                              memory_order_relaxed);
    }
    cred_unref(old);
}

bp_err
bp_tables_put_key(struct bp_tables *t, const struct bp_key_rec *k)
{
    struct bp_cred *c;
    unsigned bits = 0;

    if (k->scopes == NULL || bp_scopes_parse(k->scopes, &bits) != BP_OK) {
        return BP_ERR_INVALID; /* a row the CLI would never write; refuse it rather than guess */
    }
    /* An empty list restricts the key to no instance: a restriction never fails open. */
    c = cred_new(BP_CRED_API_KEY, k->id, k->name ? k->name : "", NULL, k->instances, k->allow_from, k->rate_limit,
                 k->rate_burst);
    memcpy(c->digest, k->digest, sizeof(c->digest));
    c->scopes = (uint16_t)bits;
    c->expires_at = k->expires_at;
    c->revoked = k->revoked;
    put_cred(t, c);
    return BP_OK;
}

bp_err
bp_tables_put_token(struct bp_tables *t, const struct bp_live_token *tok)
{
    struct bp_cred *c;
    unsigned bits = 0;

    if (tok->scopes == NULL || bp_scopes_parse(tok->scopes, &bits) != BP_OK) {
        return BP_ERR_INVALID;
    }
    /* The client's restriction binds its tokens, with the same never-fail-open rule as keys. */
    c = cred_new(BP_CRED_ACCESS_TOKEN, tok->id, tok->client_name ? tok->client_name : "",
                 tok->client_id ? tok->client_id : "",
                 tok->instances, tok->allow_from, tok->rate_limit, tok->rate_burst);
    memcpy(c->digest, tok->digest, sizeof(c->digest));
    c->scopes = (uint16_t)bits;
    c->expires_at = tok->expires_at;
    /* Revoked tokens, and tokens of revoked clients, are not live: they never get here. */
    c->revoked = false;
    put_cred(t, c);
    return BP_OK;
}

bool
bp_tables_remove_cred(struct bp_tables *t, const unsigned char digest[32])
{
    struct bp_cred *old = NULL;

    BP_BUG_ON(t->published);
    if (trie_find(t->root, digest) == NULL) {
        return false;
    }
    t->root = node_remove(t->root, 0, digest, &old);
    BP_BUG_ON(old == NULL);
    cred_unref(old);
    t->n_creds--;
    return true;
}

struct expired {
    int64_t now;
    unsigned char (*digests)[32];
    size_t n;
    size_t cap;
};

static void
collect_expired(struct bp_cred *c, void *arg)
{
    struct expired *e = arg;

    if (c->kind != BP_CRED_ACCESS_TOKEN || c->expires_at == 0 || c->expires_at > e->now) {
        return;
    }
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->digests = bp_realloc(e->digests, e->cap * sizeof(*e->digests));
    }
    memcpy(e->digests[e->n++], c->digest, 32);
}

size_t
bp_tables_drop_expired_tokens(struct bp_tables *t, int64_t now)
{
    struct expired e = {.now = now};

    BP_BUG_ON(t->published);
    trie_each(t->root, collect_expired, &e);
    for (size_t i = 0; i < e.n; i++) {
        (void)bp_tables_remove_cred(t, e.digests[i]);
    }
    bp_free(e.digests);
    return e.n;
}

/* Each enabled instance's health slot, found by id so that its state outlives the snapshot; s->insts
 * still in the records' order. */
static void
track_health(struct inst_set *s, const struct bp_instance_rec *insts)
{
    const char **ids = bp_calloc(s->n ? s->n : 1, sizeof(*ids));
    const char **names = bp_calloc(s->n ? s->n : 1, sizeof(*names));
    struct bp_health **slots = bp_calloc(s->n ? s->n : 1, sizeof(*slots));

    size_t n = 0;

    /* Only enabled instances: a disabled one gets no requests, so it has no health to show. */
    for (size_t i = 0; i < s->n; i++) {
        if (insts[i].enabled) {
            ids[n] = insts[i].id;
            names[n++] = insts[i].name;
        }
    }
    bp_health_track(ids, names, n, slots);
    n = 0;
    for (size_t i = 0; i < s->n; i++) {
        s->insts[i].health = insts[i].enabled ? slots[n++] : NULL;
    }
    bp_free(slots);
    bp_free(names);
    bp_free(ids);
}

void
bp_tables_set_instances(struct bp_tables *t, const struct bp_instance_rec *insts, size_t n_insts)
{
    struct inst_set *s = bp_calloc(1, sizeof(*s) + (n_insts ? n_insts : 1) * sizeof(struct bp_instance));

    BP_BUG_ON(t->published);
    atomic_init(&s->refs, 1);
    for (size_t i = 0; i < n_insts; i++) {
        const struct bp_instance_rec *r = &insts[i];
        struct bp_instance *e = &s->insts[s->n++];
        e->id = bp_strdup(r->id);
        e->url = bp_strdup(r->url);
        e->ca_file = r->ca_file ? bp_strdup(r->ca_file) : NULL;
        e->secret = r->secret_key ? bp_secret_new(r->secret_key, r->secret_key_len) : NULL;
        e->enabled = r->enabled;
    }
    track_health(s, insts);
    qsort(s->insts, s->n, sizeof(*s->insts), cmp_instance);
    inst_set_unref(t->insts);
    t->insts = s;
}

struct bp_tables *
bp_tables_new(void)
{
    struct bp_tables *t = bp_calloc(1, sizeof(*t));

    atomic_init(&t->refs, 1);
    /* No instances yet, and none tracked for health: the health registry keeps the published
     * ones until bp_tables_set_instances names the new set. */
    t->insts = bp_calloc(1, sizeof(*t->insts) + sizeof(struct bp_instance));
    atomic_init(&t->insts->refs, 1);
    return t;
}

bp_err
bp_tables_build(const struct bp_key_rec *keys, size_t n_keys, const struct bp_live_token *tokens,
                size_t n_tokens, const struct bp_instance_rec *insts, size_t n_insts, struct bp_tables **out)
{
    struct bp_tables *t = bp_tables_new();

    BP_BUG_ON(n_tokens > 0 && tokens == NULL);
    for (size_t i = 0; i < n_keys; i++) {
        (void)bp_tables_put_key(t, &keys[i]); /* a malformed row is left out, as documented */
    }
    for (size_t i = 0; i < n_tokens; i++) {
        (void)bp_tables_put_token(t, &tokens[i]);
    }
    bp_tables_set_instances(t, insts, n_insts);
    *out = t;
    return BP_OK;
}

struct bp_tables *
bp_tables_edit(struct bp_tables *from)
{
    struct bp_tables *t = bp_calloc(1, sizeof(*t));

    atomic_init(&t->refs, 1);
    t->root = from->root;
    if (t->root != NULL) {
        atomic_fetch_add_explicit(&t->root->refs, 1, memory_order_relaxed);
    }
    t->n_creds = from->n_creds;
    t->insts = from->insts;
    atomic_fetch_add_explicit(&t->insts->refs, 1, memory_order_relaxed);
    return t;
}

void
bp_tables_publish(struct bp_tables *t)
{
    struct bp_tables *old;

    if (t != NULL) {
        t->published = true;
    }
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
    return trie_find(t->root, digest);
}

const struct bp_instance *
bp_tables_find_instance(const struct bp_tables *t, const char *id, size_t len)
{
    size_t lo = 0;
    size_t hi = t->insts->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *m = t->insts->insts[mid].id;
        size_t mlen = strlen(m);
        int c = memcmp(m, id, mlen < len ? mlen : len);
        if (c == 0) {
            c = (mlen > len) - (mlen < len);
        }
        if (c == 0) {
            return &t->insts->insts[mid];
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

size_t
bp_tables_instance_count(const struct bp_tables *t)
{
    return t->insts->n;
}

void
bp_tables_each_cred(struct bp_tables *t, void (*fn)(struct bp_cred *c, void *arg), void *arg)
{
    trie_each(t->root, fn, arg);
}

size_t
bp_tables_nodes_allocated(void)
{
    return atomic_load_explicit(&nodes_allocated, memory_order_relaxed);
}

const struct bp_instance *
bp_tables_instance_at(const struct bp_tables *t, size_t i)
{
    BP_BUG_ON(i >= t->insts->n);
    return &t->insts->insts[i];
}
