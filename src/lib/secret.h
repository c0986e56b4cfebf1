#ifndef BP_LIB_SECRET_H
#define BP_LIB_SECRET_H

#include <stdbool.h>
#include <stddef.h>

/* A secret (API key, token, client secret, Core secret key). Opaque so that nothing formats it
 * by accident: the logger has no field type for it and the bytes come out only through
 * bp_secret_bytes, at the one place that must send them. Zeroed when freed. */
struct bp_secret;

struct bp_secret *bp_secret_new(const void *bytes, size_t len);
void bp_secret_free(struct bp_secret *s);
const char *bp_secret_bytes(const struct bp_secret *s, size_t *out_len);
/* Constant-time in the length of the shorter input. */
bool bp_secret_equal(const struct bp_secret *s, const void *bytes, size_t len);
/* Constant-time comparison of two equally long byte strings (digests). */
bool bp_ct_equal(const void *a, const void *b, size_t len);
/* Overwrites memory in a way the compiler may not elide. */
void bp_wipe(void *p, size_t len);
/* An allocator for libraries that free without a size (jansson): each block remembers its size,
 * and bp_free_wiped wipes it before freeing. Blocks of one are freed only by the other. */
void *bp_malloc_wiped(size_t n);
void bp_free_wiped(void *p);

#endif
