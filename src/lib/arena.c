/* Bump arena with pooled chunks (see arena.h). A chunk is a header followed by its bytes; pooled
 * chunks all have the pool's chunk_size, own-size chunks (large allocations) are marked and
 * never pooled. */
#include "lib/arena.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lib/alloc.h"
#include "lib/bug.h"

struct bp_arena_chunk {
    struct bp_arena_chunk *next;
    size_t size; /* bytes of the whole chunk, header included */
    bool pooled;
    alignas(max_align_t) char data[];
};

#define ALIGN_UP(n) (((n) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1))

void
bp_arena_pool_init(struct bp_arena_pool *p, size_t chunk_size, size_t max_free)
{
    BP_BUG_ON(chunk_size < sizeof(struct bp_arena_chunk) + 256);
    p->free = NULL;
    p->n_free = 0;
    p->max_free = max_free;
    p->chunk_size = chunk_size;
}

void
bp_arena_pool_cleanup(struct bp_arena_pool *p)
{
    while (p->free != NULL) {
        struct bp_arena_chunk *c = p->free;
        p->free = c->next;
        bp_free(c);
    }
    p->n_free = 0;
}

void
bp_arena_init(struct bp_arena *a, struct bp_arena_pool *pool)
{
    a->pool = pool;
    a->chunks = NULL;
    a->next = NULL;
    a->end = NULL;
}

static struct bp_arena_chunk *
take_chunk(struct bp_arena_pool *p)
{
    struct bp_arena_chunk *c = p->free;

    if (c != NULL) {
        p->free = c->next;
        p->n_free--;
        return c;
    }
    c = bp_malloc(p->chunk_size);
    c->size = p->chunk_size;
    c->pooled = true;
    return c;
}

void *
bp_arena_alloc(struct bp_arena *a, size_t n)
{
    size_t need = ALIGN_UP(n > 0 ? n : 1);
    size_t room = a->pool->chunk_size - sizeof(struct bp_arena_chunk);
    struct bp_arena_chunk *c;
    void *out;

    BP_BUG_ON(need < n); /* overflow */
    if (a->next != NULL && (size_t)(a->end - a->next) >= need) {
        out = a->next;
        a->next += need;
        return out;
    }
    if (need > room / 2) {
        /* Its own chunk, behind the one being filled so that the rest of that stays usable. */
        BP_BUG_ON(need > SIZE_MAX - sizeof(*c));
        c = bp_malloc(sizeof(*c) + need);
        c->size = sizeof(*c) + need;
        c->pooled = false;
        if (a->chunks != NULL) {
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = NULL;
            a->chunks = c;
        }
        return c->data;
    }
    c = take_chunk(a->pool);
    c->next = a->chunks;
    a->chunks = c;
    a->next = c->data + need;
    a->end = (char *)c + c->size;
    return c->data;
}

char *
bp_arena_memdup(struct bp_arena *a, const void *p, size_t n)
{
    char *out = bp_arena_alloc(a, n + 1);

    if (n > 0) {
        memcpy(out, p, n);
    }
    out[n] = '\0';
    return out;
}

void
bp_arena_reset(struct bp_arena *a)
{
    struct bp_arena_pool *p = a->pool;

    while (a->chunks != NULL) {
        struct bp_arena_chunk *c = a->chunks;
        a->chunks = c->next;
        if (c->pooled && p->n_free < p->max_free) {
            c->next = p->free;
            p->free = c;
            p->n_free++;
        } else {
            bp_free(c);
        }
    }
    a->next = NULL;
    a->end = NULL;
}
