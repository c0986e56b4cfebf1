/* Resolving the files records name (path.h). */
#include "lib/path.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/alloc.h"

const char *
bp_path_resolve_readable(const char *path, char **out)
{
    char resolved[PATH_MAX];
    struct stat sb;
    FILE *f;

    *out = NULL;
    if (path[0] == '\0') {
        return "empty path";
    }
    if (realpath(path, resolved) == NULL) {
        return strerror(errno);
    }
    if (stat(resolved, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        return "not a regular file";
    }
    /* Opened, not access()ed: what counts is whether this process can read it. */
    f = fopen(resolved, "rb");
    if (f == NULL) {
        return strerror(errno);
    }
    fclose(f);
    *out = bp_strdup(resolved);
    return NULL;
}
