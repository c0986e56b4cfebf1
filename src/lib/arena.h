#ifndef BP_LIB_ARENA_H
#define BP_LIB_ARENA_H

#include <stddef.h>

/* A bump arena for data that dies together (a request's), and a pool of its chunks so that a
 * loop thread serving request after request allocates nothing once warm.
 *
 * The pool keeps up to max_free chunks of chunk_size bytes; an arena takes its chunks from the
 * pool and gives them all back on reset. An allocation larger than half a chunk gets a chunk
 * of its own, freed on reset rather than pooled. Allocation never fails (bp_malloc aborts on
 * OOM); every caller bounds what it puts in. Not thread-safe: a pool and its arenas belong to one
 * thread. */

struct bp_arena_chunk;

struct bp_arena_pool {
    struct bp_arena_chunk *free; /* chunks of chunk_size, ready for reuse */
    size_t n_free;
    size_t max_free;
    size_t chunk_size;
};

struct bp_arena {
    struct bp_arena_pool *pool;
    struct bp_arena_chunk *chunks; /* newest first; the first one is being filled */
    char *next;                    /* first free byte of the newest pooled chunk */
    char *end;
};

/* chunk_size includes the chunk's own header; max_free bounds the memory the pool keeps. */
void bp_arena_pool_init(struct bp_arena_pool *p, size_t chunk_size, size_t max_free);
/* Frees the pooled chunks. Every arena of the pool must be reset first. */
void bp_arena_pool_cleanup(struct bp_arena_pool *p);

/* An empty arena; it takes no memory until the first allocation. */
void bp_arena_init(struct bp_arena *a, struct bp_arena_pool *pool);
/* n bytes aligned for any type, valid until bp_arena_reset. n may be 0. */
void *bp_arena_alloc(struct bp_arena *a, size_t n);
/* A copy of p[0..n) followed by a NUL. */
char *bp_arena_memdup(struct bp_arena *a, const void *p, size_t n);
/* Releases everything allocated (chunks back to the pool). The arena stays usable. */
void bp_arena_reset(struct bp_arena *a);

#endif
