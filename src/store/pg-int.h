#ifndef BP_STORE_PG_INT_H
#define BP_STORE_PG_INT_H

/* Shared between the PostgreSQL backend's files only (store_pg.c: connection, transactions,
 * instances and keys; migrations_pg.c; store_oauth_pg.c; store_audit_pg.c). Every value reaches
 * SQL as a parameter of PQexecParams/PQexecPrepared; the only SQL text run as it is is our own
 * constant schema.
 *
 * Results are read in text format (integers as decimal text, booleans as "t"/"f", bytea as
 * "\x" + hex); bytea parameters are sent in binary format. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store/store-int.h"

/* Advisory lock keys (pg_advisory_xact_lock(int4, int4)), per database. The first number spells
 * "blnk". MIGRATE serialises migrators; CHANGES serialises the transactions that change what the
 * servers' in-memory tables are built from, so that change seqs become visible in order (see
 * store_pg.c). The triggers of migration 4 take CHANGES by these same numbers. */
#define BP_PG_LOCK_CLASS 1651273323
#define BP_PG_LOCK_MIGRATE 1
#define BP_PG_LOCK_CHANGES 2

/* The most parameters one statement of ours takes. */
#define BP_PG_MAX_PARAMS 20

struct pg_store {
    struct bp_store base; /* first: bp_store pointers are pg_store pointers */
    PGconn *conn;
    char *dsn;            /* as given (may hold a password): scrubbed from libpq's messages; wiped */
    char *where;          /* the DSN with its password masked, for messages */
    bool audit_prepared;  /* "bp_audit_insert" is prepared on this connection */
    bool touch_prepared;  /* "bp_key_touch" is prepared on this connection */
    char errmsg[512];     /* never holds a bound value: only SQLSTATE and primary message */
};

/* Parameters of one statement. Text values are borrowed and must outlive the call. */
struct bp_pg_params {
    int n;
    const char *values[BP_PG_MAX_PARAMS];
    int lengths[BP_PG_MAX_PARAMS];
    int formats[BP_PG_MAX_PARAMS];
    Oid types[BP_PG_MAX_PARAMS];    /* explicit, so a parameter a query leaves unused is no error */
    char num[BP_PG_MAX_PARAMS][24]; /* text of integer parameters */
};

extern const struct bp_store_ops bp_pg__ops;
extern const struct bp_store_oauth_ops bp_pg__oauth_ops; /* store_oauth_pg.c */
extern const struct bp_store_audit_ops bp_pg__audit_ops; /* store_audit_pg.c */

/* Forward-only PostgreSQL migrations (migrations_pg.c): entry i is schema version i + 1. */
extern const char *const bp_store__pg_migrations[];
extern const size_t bp_store__pg_migrations_len;

struct pg_store *bp_pg__of(struct bp_store *s);

/* Replaces every password that dsn carries, in its text form and percent-decoded, by "***" in
 * msg (a string in cap bytes), in place: libpq's messages may quote a token of the DSN
 * (store_dsn.c). */
void bp_store__dsn_scrub(const char *dsn, char *msg, size_t cap);
/* True when dsn holds an '@' past where libpq ends the user info (a password with an unescaped
 * '/' or '@'): libpq then reads part of the password as host or port, and may quote it. */
bool bp_store__dsn_ambiguous(const char *dsn);

/* Adds a parameter: text (NULL → SQL NULL), a 64-bit integer, a boolean, or bytes (bytea). */
void bp_pg__p_text(struct bp_pg_params *p, const char *text);
void bp_pg__p_int(struct bp_pg_params *p, int64_t v);
void bp_pg__p_bool(struct bp_pg_params *p, bool v);
void bp_pg__p_bytes(struct bp_pg_params *p, const void *bytes, size_t len);

/* Runs sql with p (may be NULL). *out (may be NULL) gets the result on BP_OK, which the caller
 * PQclear()s. Failures map: unique violation → BP_ERR_EXISTS, anything else → BP_ERR_STORE,
 * with the SQLSTATE and primary message (never DETAIL, which can quote a row) kept for
 * bp_store_last_error. */
bp_err bp_pg__run(struct pg_store *st, const char *sql, const struct bp_pg_params *p, PGresult **out);
/* Like bp_pg__run, for a statement prepared on this connection under name. */
bp_err bp_pg__run_prepared(struct pg_store *st, const char *name, const struct bp_pg_params *p, PGresult **out);
/* Runs constant SQL (ours, never built from input), possibly several statements. */
bp_err bp_pg__exec(struct pg_store *st, const char *sql);
/* Rows a command changed (UPDATE/DELETE/INSERT), from its result. */
int64_t bp_pg__changes(const PGresult *res);

/* Transactions of the backend's own: tx_begin opens one unless the caller holds one (*out_own
 * says whether we did), taking the CHANGES lock when lock_changes; tx_end commits on BP_OK and
 * rolls back otherwise, only a transaction it opened. */
bp_err bp_pg__tx_begin(struct pg_store *st, bool lock_changes, bool *out_own);
bp_err bp_pg__tx_end(struct pg_store *st, bool own, bp_err err);
bool bp_pg__in_tx(struct pg_store *st);

/* Column readers of a text-format result. col_dup: allocated copy, NULL for SQL NULL. */
char *bp_pg__col_dup(const PGresult *res, int row, int col);
int64_t bp_pg__col_int(const PGresult *res, int row, int col);
bool bp_pg__col_bool(const PGresult *res, int row, int col);
/* A bytea column into exactly len bytes; anything else (NULL, other length) leaves zeros. */
void bp_pg__col_digest(const PGresult *res, int row, int col, unsigned char *out, size_t len);
/* A bytea column as an allocated, NUL-terminated copy; NULL for SQL NULL. */
char *bp_pg__col_bytes(const PGresult *res, int row, int col, size_t *out_len);

/* Runs a single-row SELECT and fills out from row 0 with read; BP_ERR_NOT_FOUND when no row. */
bp_err bp_pg__get_one(struct pg_store *st, const char *sql, const struct bp_pg_params *p,
                      void (*read)(const PGresult *, int, void *), void *out);
/* Runs a SELECT and collects every row into an allocated array of elem_size records. */
bp_err bp_pg__collect(struct pg_store *st, const char *sql, const struct bp_pg_params *p, size_t elem_size,
                      void (*read)(const PGresult *, int, void *), void **out, size_t *out_n);
/* Runs a one-row UPDATE or DELETE: BP_ERR_NOT_FOUND when no row matched. */
bp_err bp_pg__change_one(struct pg_store *st, const char *sql, const struct bp_pg_params *p);
/* The change log and the schema version (store_changes_pg.c), for the ops entries the change
 * watcher's interface adds: change_seq (latest seq, 0 when none), change_purge (rows logged before
 * `before` wall seconds, keeping the newest), schema_version (0 before the first migration). */
bp_err bp_pg__change_seq(struct bp_store *s, int64_t *out);
bp_err bp_pg__change_purge(struct bp_store *s, int64_t before);
bp_err bp_pg__schema_version(struct bp_store *s, int *out);
bp_err bp_pg__watcher_put(struct bp_store *s, const struct bp_watcher_rec *rec);
bp_err bp_pg__watcher_delete(struct bp_store *s, const char *id);
bp_err bp_pg__watcher_list(struct bp_store *s, struct bp_watcher_rec **out, size_t *out_n);
size_t bp_pg__commit_files(struct bp_store *s, const char **out, size_t max);
bp_err bp_pg__backup(struct bp_store *s, const char *path, unsigned flags, struct bp_store_backup_info *out);

/* BP_OK when the constant `SELECT 1 FROM <table> WHERE id = $1` finds a row, else BP_ERR_NOT_FOUND. */
bp_err bp_pg__row_exists(struct pg_store *st, const char *sql, const char *id);

#endif
