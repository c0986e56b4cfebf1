#ifndef BP_LIB_BUF_H
#define BP_LIB_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"

/* Growable byte buffer with a mandatory maximum. data is always NUL-terminated past len (the
 * NUL is not counted), so a buffer of text can be handed to C string functions. */
struct bp_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
    bool fixed; /* storage is the caller's (bp_buf_init_fixed): never grown, never freed */
};

void bp_buf_init(struct bp_buf *b, size_t max);
/* A buffer over the caller's storage[0..cap) (e.g. arena memory): it holds at most cap - 1
 * bytes (BP_ERR_LIMIT beyond), never reallocates, and bp_buf_cleanup leaves the storage alone. */
void bp_buf_init_fixed(struct bp_buf *b, char *storage, size_t cap);
void bp_buf_cleanup(struct bp_buf *b);
void bp_buf_reset(struct bp_buf *b);
/* Raises the maximum to at least max (never lowers it). */
void bp_buf_max_raise(struct bp_buf *b, size_t max);
/* BP_ERR_LIMIT (buffer unchanged) when len + n would exceed max. */
bp_err bp_buf_append(struct bp_buf *b, const void *p, size_t n);
bp_err bp_buf_append_str(struct bp_buf *b, const char *s);
bp_err bp_buf_insert_at(struct bp_buf *b, size_t off, const void *p, size_t n);
/* Makes room for n more bytes and returns where to write them; commit with bp_buf_commit. */
bp_err bp_buf_reserve(struct bp_buf *b, size_t n, char **out);
void bp_buf_commit(struct bp_buf *b, size_t n);
/* Hands the bytes to the caller (free with bp_free) and leaves b empty. */
char *bp_buf_take(struct bp_buf *b, size_t *out_len);

#endif
