#ifndef BP_LIB_ALLOC_H
#define BP_LIB_ALLOC_H

#include <stddef.h>

/* Allocation that never returns NULL: running out of memory aborts the process, because a
 * gateway that half-handles a request after a failed allocation is worse than one that restarts. */
void *bp_malloc(size_t n);
void *bp_calloc(size_t count, size_t size);
void *bp_realloc(void *p, size_t n);
char *bp_strdup(const char *s);
char *bp_strndup(const char *s, size_t n);
void *bp_memdup(const void *p, size_t n);
void bp_free(void *p);

#endif
