#ifndef BP_STORE_STORE_H
#define BP_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* The persistent store behind one small interface. Today: SQLite (WAL). A PostgreSQL backend
 * plugs in behind struct bp_store_ops (store_pg.c, later) without touching callers.
 *
 * Threads: a struct bp_store is used by one thread at a time (the CLI, or the server's watcher
 * thread). Loop threads never call the store (STYLE §7). All times are Unix seconds (wall). */

struct bp_store;

/* An instance of Blnk Core. */
struct bp_instance_rec {
    char *id;         /* "instance_" + ULID */
    char *name;
    char *url;        /* base URL, http:// or https://, no trailing slash */
    char *secret_key; /* Core secret (X-Blnk-Key), NULL when none; never printed */
    size_t secret_key_len;
    char *ca_file;    /* CA bundle for HTTPS verification, NULL for the system default */
    bool enabled;
    int64_t created_at;
    int64_t updated_at;
};

/* An API key. The key text is never stored: only its SHA-256 digest. */
struct bp_key_rec {
    char *id;          /* "key_" + ULID */
    char *name;
    char *prefix;      /* "blnk_" + first 8 hex, for listings */
    unsigned char digest[32];
    char *scopes;      /* canonical comma-separated list, e.g. "proxy:read,proxy:write" or "*" */
    char *instances;   /* comma-separated instance ids, NULL when unrestricted */
    int64_t created_at;
    int64_t expires_at;   /* 0 = never */
    int64_t last_used_at; /* 0 = never */
    bool revoked;
    int64_t revoked_at;   /* 0 when active */
};

/* Opens (creating if needed) the store named by dsn: a file path for SQLite ("./blnkproxy.db")
 * or "sqlite:PATH". A "postgres://" DSN returns BP_ERR_INVALID until that backend lands.
 * Does not migrate. On failure writes a reason (never containing secrets) to err. */
bp_err bp_store_open(const char *dsn, struct bp_store **out, char *err, size_t err_len);
void bp_store_close(struct bp_store *s);
/* The backend's message for the last failed call (never contains bound values, hence no
 * secrets). Borrowed: valid until the next call on s. Never NULL. */
const char *bp_store_last_error(struct bp_store *s);

/* Applies pending forward-only migrations in one transaction each. *out_applied (may be NULL)
 * gets how many ran; *out_version (may be NULL) the schema version after. */
bp_err bp_store_migrate(struct bp_store *s, int *out_applied, int *out_version);
/* BP_OK when the store answers a trivial query. */
bp_err bp_store_ping(struct bp_store *s);
/* A number that changes whenever another connection commits (SQLite PRAGMA data_version,
 * combined with a counter for this connection's own commits). */
bp_err bp_store_change_token(struct bp_store *s, int64_t *out);

/* Instances. insert fails with BP_ERR_EXISTS on a duplicate id or name. get/update/delete return
 * BP_ERR_NOT_FOUND for an unknown id. update writes every field of rec (read, modify, write). */
bp_err bp_store_instance_insert(struct bp_store *s, const struct bp_instance_rec *rec);
bp_err bp_store_instance_update(struct bp_store *s, const struct bp_instance_rec *rec);
bp_err bp_store_instance_get(struct bp_store *s, const char *id, struct bp_instance_rec *out);
bp_err bp_store_instance_delete(struct bp_store *s, const char *id);
/* *out is an array of *out_n records, ordered by created_at then id; free with
 * bp_instance_recs_free. */
bp_err bp_store_instance_list(struct bp_store *s, struct bp_instance_rec **out, size_t *out_n);
void bp_instance_rec_cleanup(struct bp_instance_rec *rec);
void bp_instance_recs_free(struct bp_instance_rec *recs, size_t n);

/* API keys. */
bp_err bp_store_key_insert(struct bp_store *s, const struct bp_key_rec *rec);
bp_err bp_store_key_get(struct bp_store *s, const char *id, struct bp_key_rec *out);
bp_err bp_store_key_list(struct bp_store *s, struct bp_key_rec **out, size_t *out_n);
/* Marks revoked (keeps the row). BP_ERR_NOT_FOUND for an unknown id. */
bp_err bp_store_key_revoke(struct bp_store *s, const char *id, int64_t now);
/* expires_at 0 = never. */
bp_err bp_store_key_set_expiry(struct bp_store *s, const char *id, int64_t expires_at);
/* Sets last_used_at = max(last_used_at, at) for each id, in one transaction. Unknown ids are
 * ignored. Does not count as a change for bp_store_change_token watchers' purposes is not
 * guaranteed: watchers must tolerate reloads it causes. */
bp_err bp_store_key_touch(struct bp_store *s, const char *const *ids, const int64_t *at, size_t n);
void bp_key_rec_cleanup(struct bp_key_rec *rec);
void bp_key_recs_free(struct bp_key_rec *recs, size_t n);

#endif
