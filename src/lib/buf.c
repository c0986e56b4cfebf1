#include "lib/buf.h"

#include <string.h>

#include "lib/alloc.h"

void
bp_buf_init(struct bp_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->fixed = false;
}

void
bp_buf_init_fixed(struct bp_buf *b, char *storage, size_t cap)
{
    b->data = storage;
    b->len = 0;
    b->cap = cap;
    b->max = cap > 0 ? cap - 1 : 0;
    b->fixed = true;
    if (cap > 0) {
        storage[0] = '\0';
    }
}

void
bp_buf_cleanup(struct bp_buf *b)
{
    if (b->fixed) {
        b->data = NULL;
        b->len = 0;
        b->cap = 0;
        return;
    }
    bp_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void
bp_buf_reset(struct bp_buf *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

void
bp_buf_max_raise(struct bp_buf *b, size_t max)
{
    if (b->fixed) {
        return; /* its storage bounds it */
    }
    if (max > b->max) {
        b->max = max;
    }
}

static bp_err
grow(struct bp_buf *b, size_t n)
{
    size_t need;
    size_t cap;

    if (n > b->max || b->len > b->max - n) {
        return BP_ERR_LIMIT;
    }
    need = b->len + n + 1;
    if (need <= b->cap) {
        return BP_OK;
    }
    if (b->fixed) {
        return BP_ERR_LIMIT;
    }
    cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    b->data = bp_realloc(b->data, cap);
    b->cap = cap;
    return BP_OK;
}

bp_err
bp_buf_reserve(struct bp_buf *b, size_t n, char **out)
{
    bp_err rc = grow(b, n);
    if (rc != BP_OK) {
        return rc;
    }
    *out = b->data + b->len;
    return BP_OK;
}

void
bp_buf_commit(struct bp_buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = '\0';
}

bp_err
bp_buf_append(struct bp_buf *b, const void *p, size_t n)
{
    bp_err rc = grow(b, n);
    if (rc != BP_OK) {
        return rc;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return BP_OK;
}

bp_err
bp_buf_append_str(struct bp_buf *b, const char *s)
{
    return bp_buf_append(b, s, strlen(s));
}

bp_err
bp_buf_insert_at(struct bp_buf *b, size_t off, const void *p, size_t n)
{
    bp_err rc;

    if (off > b->len) {
        return BP_ERR_INVALID;
    }
    rc = grow(b, n);
    if (rc != BP_OK) {
        return rc;
    }
    memmove(b->data + off + n, b->data + off, b->len - off);
    memcpy(b->data + off, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return BP_OK;
}

char *
bp_buf_take(struct bp_buf *b, size_t *out_len)
{
    char *p = b->data;

    if (b->fixed) {
        p = bp_memdup(b->data != NULL ? b->data : "", b->len + 1);
    }
    if (out_len != NULL) {
        *out_len = b->len;
    }
    if (p == NULL) {
        p = bp_calloc(1, 1);
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
