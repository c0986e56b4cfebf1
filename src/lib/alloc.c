#include "lib/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *
bp_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *
bp_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        oom(count * size);
    }
    return p;
}

void *
bp_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        oom(n);
    }
    return q;
}

char *
bp_strdup(const char *s)
{
    return bp_memdup(s, strlen(s) + 1);
}

char *
bp_strndup(const char *s, size_t n)
{
    char *p = bp_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *
bp_memdup(const void *p, size_t n)
{
    void *q = bp_malloc(n);
    if (n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

void
bp_free(void *p)
{
    free(p);
}
