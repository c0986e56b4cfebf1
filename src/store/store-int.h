#ifndef BP_STORE_STORE_INT_H
#define BP_STORE_STORE_INT_H

/* Shared between the store's files only: the backend vtable that store.c dispatches through.
 * A backend embeds struct bp_store as its first member and points ops at its table. */

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct bp_store_ops {
    const char *name;
    void (*close)(struct bp_store *s);
    const char *(*last_error)(struct bp_store *s);
    bp_err (*migrate)(struct bp_store *s, int *out_applied, int *out_version);
    bp_err (*ping)(struct bp_store *s);
    bp_err (*change_token)(struct bp_store *s, int64_t *out);

    bp_err (*instance_insert)(struct bp_store *s, const struct bp_instance_rec *rec);
    bp_err (*instance_update)(struct bp_store *s, const struct bp_instance_rec *rec);
    bp_err (*instance_get)(struct bp_store *s, const char *id, struct bp_instance_rec *out);
    bp_err (*instance_delete)(struct bp_store *s, const char *id);
    bp_err (*instance_list)(struct bp_store *s, struct bp_instance_rec **out, size_t *out_n);

    bp_err (*key_insert)(struct bp_store *s, const struct bp_key_rec *rec);
    bp_err (*key_get)(struct bp_store *s, const char *id, struct bp_key_rec *out);
    bp_err (*key_list)(struct bp_store *s, struct bp_key_rec **out, size_t *out_n);
    bp_err (*key_revoke)(struct bp_store *s, const char *id, int64_t now);
    bp_err (*key_set_expiry)(struct bp_store *s, const char *id, int64_t expires_at);
    bp_err (*key_touch)(struct bp_store *s, const char *const *ids, const int64_t *at, size_t n);
};

struct bp_store {
    const struct bp_store_ops *ops;
};

/* SQLite backend (store_sqlite.c): path is a filesystem path. */
bp_err bp_store__sqlite_open(const char *path, struct bp_store **out, char *err, size_t err_len);

/* Forward-only SQLite migrations (migrations_sqlite.c): entry i is schema version i + 1. */
extern const char *const bp_store__sqlite_migrations[];
extern const size_t bp_store__sqlite_migrations_len;

#endif
