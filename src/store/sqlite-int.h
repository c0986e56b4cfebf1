#ifndef BP_STORE_SQLITE_INT_H
#define BP_STORE_SQLITE_INT_H

/* Shared between the SQLite backend's files only (store_sqlite.c: connection, migrations,
 * instances and keys; store_oauth_sqlite.c; store_audit_sqlite.c; store_changes_sqlite.c).
 * Every value reaches SQL through a bound parameter. */

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/store-int.h"

/* Statements run over and over, each prepared at its first use and kept until close: the audit
 * writer's, once a batch, and the change watcher's, once a check (up to 100 a second while the
 * audit writer commits). Preparing them anew each time cost more than running them: ~95k
 * instructions a batch for the chain head's two, ~60k a check for the watcher's (callgrind). */
enum bp_sq_kept {
    BP_SQ_KEPT_BEGIN_IMMEDIATE,
    BP_SQ_KEPT_COMMIT,
    BP_SQ_KEPT_LOCK_HEAD,
    BP_SQ_KEPT_SET_HEAD,
    BP_SQ_KEPT_DATA_VERSION,
    BP_SQ_KEPT_CHANGE_SEQ,
    /* The audit INSERTs of 64, 16, 4 and 1 rows, in this order (store_audit_sqlite.c). */
    BP_SQ_KEPT_AUDIT_INSERT,
    BP_SQ_KEPT_N = BP_SQ_KEPT_AUDIT_INSERT + 4
};

struct sqlite_store {
    struct bp_store base; /* first: bp_store pointers are sqlite_store pointers */
    sqlite3 *db;
    /* Change token state: the token moves whenever data_version (other connections' commits) or
     * total_changes (this connection's writes) moves. */
    int64_t seen_data_version;
    int64_t seen_total_changes;
    int64_t token;
    /* Whether this connection was switched to synchronous=FULL for the audit log already. */
    bool audit_sync_full;
    /* Statements run over and over (bp_sq__kept). */
    sqlite3_stmt *kept[BP_SQ_KEPT_N];
    /* Kept across the ROLLBACK that would reset sqlite3_errmsg; may name a file. */
    char errmsg[PATH_MAX + 256];
};

extern const struct bp_store_ops bp_sq__ops;
extern const struct bp_store_oauth_ops bp_sq__oauth_ops; /* store_oauth_sqlite.c */
extern const struct bp_store_audit_ops bp_sq__audit_ops; /* store_audit_sqlite.c */
extern const struct bp_store_idem_ops bp_sq__idem_ops;   /* store_idem_sqlite.c */
extern const struct bp_store_trail_ops bp_sq__trail_ops; /* store_audit_sqlite.c */

struct sqlite_store *bp_sq__of(struct bp_store *s);
/* path made absolute against the working directory, for messages (lexically: "." and ".." are
 * kept, a leading "./" is dropped). */
void bp_sq__abs_path(const char *path, char *out, size_t out_len);
/* The message refusing a store at where whose schema version is newer than this binary knows. */
void bp_sq__too_new(char *out, size_t out_len, const char *where, int version);
/* bp_store_backup (store_backup_sqlite.c). */
bp_err bp_sq__backup(struct bp_store *s, const char *path, unsigned flags, struct bp_store_backup_info *out);
/* Maps a SQLite result code to bp_err, keeping the message for bp_store_last_error:
 * UNIQUE/PRIMARY KEY → BP_ERR_EXISTS, NOMEM → BP_ERR_NOMEM, other failures → BP_ERR_STORE. */
bp_err bp_sq__map_rc(struct sqlite_store *st, int rc);
bp_err bp_sq__prepare(struct sqlite_store *st, const char *sql, sqlite3_stmt **out);
/* The kept statement `which`, prepared from sql at its first use (a slot always gets the same
 * text). The caller ends each use with bp_sq__put_kept, never with sqlite3_finalize. */
bp_err bp_sq__kept(struct sqlite_store *st, enum bp_sq_kept which, const char *sql, sqlite3_stmt **out);
/* Resets a kept statement and drops its bindings (they may point into the caller's memory). */
void bp_sq__put_kept(sqlite3_stmt *stmt);
/* Runs the kept statement `which` (sql: no parameters, no rows), e.g. BEGIN IMMEDIATE. */
bp_err bp_sq__run_kept(struct sqlite_store *st, enum bp_sq_kept which, const char *sql);
/* Binds text, or NULL when text is NULL. The text must outlive the statement's step. */
void bp_sq__bind_text(sqlite3_stmt *stmt, int i, const char *text);
/* Runs a statement that returns no rows; *out_changes (may be NULL) gets the rows it changed. */
bp_err bp_sq__step_done(struct sqlite_store *st, sqlite3_stmt *stmt, int *out_changes);
/* Allocated copy of a text column, NULL for SQL NULL. */
char *bp_sq__col_dup(sqlite3_stmt *stmt, int i);
/* Runs constant SQL text (ours, never built from input). */
bp_err bp_sq__exec(struct sqlite_store *st, const char *sql);
/* Runs a one-row UPDATE or DELETE and finalizes it: BP_ERR_NOT_FOUND when no row matched. */
bp_err bp_sq__finish_change(struct sqlite_store *st, sqlite3_stmt *stmt);
/* BP_OK when the constant `SELECT 1 FROM <table> WHERE id = ?` finds a row, else BP_ERR_NOT_FOUND. */
/* A credential's allow-list, and its rate and burst (issue 12): an OAuth client's (client) or an
 * API key's. */
bp_err bp_sq__set_allow_from(struct sqlite_store *st, bool client, const char *id, const char *allow_from);
bp_err bp_sq__set_rate(struct sqlite_store *st, bool client, const char *id, const char *rate_limit, int64_t burst);
bp_err bp_sq__row_exists(struct sqlite_store *st, const char *sql, const char *id);
/* Steps a prepared, bound single-row SELECT, fills out from its row with read, and finalizes it;
 * BP_ERR_NOT_FOUND when there is no row. */
bp_err bp_sq__get_one(struct sqlite_store *st, sqlite3_stmt *stmt, void (*read)(sqlite3_stmt *, void *), void *out);
/* Runs a "SELECT … WHERE id = ?" through bp_sq__get_one. */
bp_err bp_sq__get_by_id(struct sqlite_store *st, const char *sql, const char *id,
                        void (*read)(sqlite3_stmt *, void *), void *out);
/* Collects every row of stmt into a growing array of elem_size records filled by read. */
bp_err bp_sq__collect(struct sqlite_store *st, sqlite3_stmt *stmt, size_t elem_size,
                      void (*read)(sqlite3_stmt *, void *), void (*free_all)(void *, size_t), void **out,
                      size_t *out_n);

/* The change log and the servers' reports (store_changes_sqlite.c); store.h "Noticing changes". */
bp_err bp_sq__change_seq(struct bp_store *s, int64_t *out);
bp_err bp_sq__change_purge(struct bp_store *s, int64_t before);
bp_err bp_sq__changes_since(struct bp_store *s, int64_t after, size_t limit, struct bp_change_rec **out,
                             size_t *out_n, int64_t *out_first);
size_t bp_sq__commit_files(struct bp_store *s, const char **out, size_t max);
bp_err bp_sq__watcher_put(struct bp_store *s, const struct bp_watcher_rec *rec);
bp_err bp_sq__watcher_delete(struct bp_store *s, const char *id);
bp_err bp_sq__watcher_list(struct bp_store *s, struct bp_watcher_rec **out, size_t *out_n);

#endif
