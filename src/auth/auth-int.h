#ifndef BP_AUTH_AUTH_INT_H
#define BP_AUTH_AUTH_INT_H

/* Between the files of the auth module only. */

#include "auth/auth-t.h"

/* Restrictions, interned (restriction.c): every credential whose restriction names the same
 * instance ids in the same order, the same networks and the same rate shares one. rate_limit
 * NULL: the configured default; one that does not parse allows one request a day (a row the CLI
 * would not write limits, never frees). Both texts are the store's
 * forms (comma-separated; NULL = unrestricted). Instance lists drop empty items, so "" is the
 * empty list (no instance); an allow-list that does not parse, or "", allows no address: a
 * restriction never fails open. NULL when both are NULL; otherwise a reference the caller gives
 * back with bp_cred_restriction_unref. Any thread; the intern table is behind its own lock,
 * taken once per call. */
const struct bp_cred_restriction *bp_cred_restriction_get(const char *instances, const char *allow_from,
                                                          const char *rate_limit, int64_t rate_burst);
void bp_cred_restriction_unref(const struct bp_cred_restriction *r);
/* Restrictions alive now, for tests. */
size_t bp_cred_restrictions_alive(void);

#endif
