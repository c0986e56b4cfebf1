#ifndef BP_AUTH_AUTH_INT_H
#define BP_AUTH_AUTH_INT_H

/* Between the files of the auth module only. */

#include "auth/auth-t.h"

/* Instance lists, interned (instlist.c): every credential whose restriction names the same ids
 * in the same order shares one list. `text` is the store's form, ids separated by commas; empty
 * items are dropped, so "" is the empty list (a restriction that allows no instance: it never
 * fails open). Returns a reference the caller gives back with bp_instance_list_unref. Any thread;
 * the intern table is behind its own lock, taken once per call. */
const struct bp_instance_list *bp_instance_list_get(const char *text);
void bp_instance_list_unref(const struct bp_instance_list *list);
/* Lists alive now, for tests. */
size_t bp_instance_lists_alive(void);

#endif
