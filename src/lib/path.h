#ifndef BP_LIB_PATH_H
#define BP_LIB_PATH_H

/* A file a setting or a record names (an instance's CA file), resolved where it is given: the
 * absolute, symlink-free path of a readable regular file into *out (bp_free), and NULL; or what
 * is wrong with it ("not a regular file", strerror's text), and *out NULL. The reason is static
 * or strerror's: use it before the next call. */
const char *bp_path_resolve_readable(const char *path, char **out);

#endif
