#ifndef BP_LIB_BUG_H
#define BP_LIB_BUG_H

#include <stdio.h>
#include <stdlib.h>

/* BP_BUG_ON stays in release builds: it guards invariants whose breach could let a wrong caller
 * through or corrupt memory, where stopping is the only safe answer. */
#define BP_BUG_ON(cond)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!!(cond), 0)) {                                                       \
            fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"bug\",\"at\":\"%s:%d\",\"cond\":\"%s\"}\n", \
                    __FILE__, __LINE__, #cond);                                                    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#ifdef NDEBUG
#define BP_DEBUG_ASSERT(cond) ((void)0)
#else
#define BP_DEBUG_ASSERT(cond) BP_BUG_ON(!(cond))
#endif

#define BP_UNREACHABLE() BP_BUG_ON(1)

#define BP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
