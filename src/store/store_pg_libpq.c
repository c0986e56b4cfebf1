/* libpq, loaded at run time (pg-int.h explains why). The soname is the one libpq has kept since
 * PostgreSQL 8.x; Debian's libpq5 package installs it. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "store/pg-int.h"

#define LIBPQ_SONAME "libpq.so.5"

struct bp_pq_api bp_pq;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[256]; /* empty: loaded */

static void
load(void)
{
    void *lib = dlopen(LIBPQ_SONAME, RTLD_NOW | RTLD_LOCAL);
    const char *missing = NULL;

    if (lib == NULL) {
        snprintf(load_error, sizeof(load_error),
                 "the PostgreSQL store needs libpq (" LIBPQ_SONAME ", Debian package libpq5): %s",
                 dlerror());
        return;
    }
    /* dlsym returns void *; POSIX guarantees it converts to a function pointer. */
#define BP_PQ_RESOLVE(name)                                                                         \
    if (missing == NULL) {                                                                          \
        *(void **)&bp_pq.name = dlsym(lib, #name);                                                  \
        if (bp_pq.name == NULL) {                                                                   \
            missing = #name;                                                                        \
        }                                                                                           \
    }
    BP_PQ_FUNCTIONS(BP_PQ_RESOLVE)
#undef BP_PQ_RESOLVE
    if (missing != NULL) {
        snprintf(load_error, sizeof(load_error), LIBPQ_SONAME " has no %s: libpq is too old", missing);
    }
    /* The library stays loaded for the life of the process (no dlclose), as a linked one would. */
}

bp_err
bp_pg__load_libpq(char *err, size_t err_len)
{
    pthread_once(&load_once, load);
    if (load_error[0] != '\0') {
        snprintf(err, err_len, "%s", load_error);
        return BP_ERR_STORE;
    }
    return BP_OK;
}
