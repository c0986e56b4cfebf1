#ifndef BP_STORE_PG_INT_H
#define BP_STORE_PG_INT_H

/* Shared between the PostgreSQL backend's files only (store_pg.c: connection, transactions,
 * instances and keys; migrations_pg.c; store_oauth_pg.c; store_audit_pg.c). Every value reaches
 * SQL as a parameter of PQsendQueryParams/PQsendQueryPrepared; the only SQL text run as it is is our own
 * constant schema.
 *
 * Results are read in text format (integers as decimal text, booleans as "t"/"f", bytea as
 * "\x" + hex); bytea parameters are sent in binary format. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store/store-int.h"

/* libpq, loaded when the first PostgreSQL store is opened (store_pg_libpq.c) instead of linked:
 * a server on SQLite never maps libpq and the libraries it brings (GnuTLS, Kerberos, LDAP, SASL,
 * p11-kit: 3.6 MB of a server's resident memory). Its functions are called through bp_pq, as
 * bp_pq.PQexec(...); each pointer has the type libpq-fe.h declares. */
#define BP_PQ_FUNCTIONS(X)                                                                            \
    X(PQclear) X(PQcmdStatus) X(PQcmdTuples) X(PQconnectdbParams) X(PQconsumeInput)                 \
    X(PQerrorMessage) X(PQexec) X(PQfformat) X(PQfinish)                                            \
    X(PQfreemem) X(PQftype) X(PQgetResult) X(PQgetisnull) X(PQgetlength) X(PQgetvalue) X(PQisBusy)   \
    X(PQnfields) X(PQnotifies) X(PQntuples) X(PQresultErrorField) X(PQresultStatus)                 \
    X(PQsendPrepare) X(PQsendQuery) X(PQsendQueryParams) X(PQsendQueryPrepared)                     \
    X(PQsetNoticeProcessor) X(PQsetnonblocking) X(PQsocket) X(PQstatus) X(PQtransactionStatus)

struct bp_pq_api {
#define BP_PQ_POINTER(name) __typeof__(name) *name;
    BP_PQ_FUNCTIONS(BP_PQ_POINTER)
#undef BP_PQ_POINTER
};

/* Filled by bp_pg__load_libpq; read only after it succeeded. */
extern struct bp_pq_api bp_pq;

/* Loads libpq (once per process; safe from any thread). On failure, a message that says what to
 * install, in err. */
bp_err bp_pg__load_libpq(char *err, size_t err_len);

/* Advisory lock keys (pg_advisory_xact_lock(int4, int4)), per database. The first number spells
 * "blnk". MIGRATE serialises migrators; CHANGES serialises the transactions that change what the
 * servers' in-memory tables are built from, so that change seqs become visible in order (see
 * store_pg.c). The triggers of migration 4 take CHANGES by these same numbers. */
#define BP_PG_LOCK_CLASS 1651273323
#define BP_PG_LOCK_MIGRATE 1
#define BP_PG_LOCK_CHANGES 2
#define BP_PG_LOCK_PURGE 3 /* session lock: one audit retention purge at a time */

/* The most parameters one statement of ours takes. */
#define BP_PG_MAX_PARAMS 34

struct pg_store {
    struct bp_store base; /* first: bp_store pointers are pg_store pointers */
    PGconn *conn;         /* NULL while there is no connection (store_pg_conn.c reconnects) */
    char *dsn;            /* as given (may hold a password): scrubbed from libpq's messages; wiped */
    char *where;          /* the DSN with its password masked, for messages */
    bool allow_empty;     /* opened with BP_STORE_OPEN_CREATE: an empty database is acceptable */
    bool audit_prepared;  /* "bp_audit_insert" is prepared on this connection */
    bool touch_prepared;  /* "bp_key_touch" is prepared on this connection */
    bool connecting;      /* setting up a new connection: no reconnect, no retry inside */
    bool tx_lost;         /* the connection broke inside a transaction: it was rolled back, and
                             every statement fails until the caller ends it */
    bool timed_out;       /* the latest statement was abandoned after timeout_ms */
    bool explain;         /* bp_pg__audit_explain: the next audit query is sent behind EXPLAIN */
    int64_t timeout_ms;   /* how long a statement may wait for the server; 0 = no limit */
    int64_t sent_deadline_ms; /* bp_pg__send's statement: monotonic, 0 = none */
    int64_t reconnect_at_ms; /* monotonic: no connection attempt before */
    int64_t backoff_ms;   /* the wait after the next failed attempt */
    uint64_t connects;    /* connections made so far */
    char errmsg[512];     /* never holds a bound value: only SQLSTATE and primary message */
    /* The audit chain head this connection last committed (store_audit_pg.c): the next batch of
     * the same chain is appended in one statement that checks the head is still that. */
    char *chain_cache;    /* NULL: none known */
    int64_t chain_cache_n;
    char chain_cache_head[BP_AUDIT_HEX];
    bool audit_fast_prepared; /* "bp_audit_append" is prepared on this connection */
};

/* Parameters of one statement. Text values are borrowed and must outlive the call. */
struct bp_pg_params {
    const char *name; /* bp_pg__prepare: the statement's name */
    int n;
    const char *values[BP_PG_MAX_PARAMS];
    int lengths[BP_PG_MAX_PARAMS];
    int formats[BP_PG_MAX_PARAMS];
    Oid types[BP_PG_MAX_PARAMS];    /* explicit, so a parameter a query leaves unused is no error */
    char num[BP_PG_MAX_PARAMS][24]; /* text of integer parameters */
    bool binary_result;             /* bp_pg__run: rows in binary format (read with bp_pg__bin_*) */
};

extern const struct bp_store_ops bp_pg__ops;
extern const struct bp_store_oauth_ops bp_pg__oauth_ops; /* store_oauth_pg.c */
extern const struct bp_store_audit_ops bp_pg__audit_ops; /* store_audit_pg.c */
extern const struct bp_store_trail_ops bp_pg__trail_ops; /* store_audit_pg.c */
extern const struct bp_store_idem_ops bp_pg__idem_ops;   /* store_idem_pg.c */

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

/* ---- the connection (store_pg_conn.c) ---- */

/* Opens a libpq connection on dsn with our defaults (connect_timeout, application name, UTF8);
 * NULL with the reason (naming the store as where, password-free) in err. */
PGconn *bp_pg__connect(const char *dsn, const char *where, char *err, size_t err_len);
/* A working connection, reconnecting when there is none (with backoff): BP_OK, or
 * BP_ERR_STORE_DOWN with the reason for bp_store_last_error. Call it before looking at a
 * "prepared" flag: a new connection has no prepared statements. */
bp_err bp_pg__ensure(struct pg_store *st);

/* Runs sql with p (may be NULL). *out (may be NULL) gets the result on BP_OK, which the caller
 * bp_pq.PQclear()s. Failures map: unique violation → BP_ERR_EXISTS; the connection lost or the server
 * silent for the store's timeout → BP_ERR_STORE_DOWN (see store_pg_conn.c for what is retried);
 * anything else → BP_ERR_STORE, with the SQLSTATE and primary message (never DETAIL, which can
 * quote a row) kept for bp_store_last_error. */
bp_err bp_pg__run(struct pg_store *st, const char *sql, const struct bp_pg_params *p, PGresult **out);
/* Like bp_pg__run, for a statement prepared on this connection under name. */
bp_err bp_pg__run_prepared(struct pg_store *st, const char *name, const struct bp_pg_params *p, PGresult **out);
/* Prepares sql under name on this connection. */
bp_err bp_pg__prepare(struct pg_store *st, const char *name, const char *sql);
/* Runs constant SQL (ours, never built from input), possibly several statements. */
bp_err bp_pg__exec(struct pg_store *st, const char *sql);
/* Rows a command changed (UPDATE/DELETE/INSERT), from its result. */
int64_t bp_pg__changes(const PGresult *res);

/* Transactions: begin opens one (taking the CHANGES lock when lock_changes); commit and rollback
 * end it. tx_begin opens one unless the caller holds one (*out_own says whether we did); tx_end
 * commits on BP_OK and rolls back otherwise, only a transaction it opened. in_tx is true inside
 * a transaction, including one whose connection was lost (until it is ended). */
bp_err bp_pg__begin(struct pg_store *st, bool lock_changes);
bp_err bp_pg__commit(struct pg_store *st);
void bp_pg__rollback(struct pg_store *st);
bp_err bp_pg__tx_begin(struct pg_store *st, bool lock_changes, bool *out_own);
bp_err bp_pg__tx_end(struct pg_store *st, bool own, bp_err err);
bool bp_pg__in_tx(struct pg_store *st);

/* The schema version from schema_migrations (which must exist). */
bp_err bp_pg__current_version(struct pg_store *st, int *out);
/* "the store at WHERE has schema version N; this blnkproxy … knows up to M: upgrade blnkproxy" */
void bp_pg__too_new(char *out, size_t out_len, const char *where, int version);

/* ops entries: close, last_error, set_timeout, connected. */
void bp_pg__close(struct bp_store *s);
const char *bp_pg__last_error(struct bp_store *s);
void bp_pg__set_timeout(struct bp_store *s, int64_t timeout_ms);
bool bp_pg__connected(struct bp_store *s);
/* For the tests: the plan PostgreSQL makes for `audit list` with q, or (follow_xmin >= 0) for a
 * --follow page with that low-water mark, one line per plan line, in out. */
bp_err bp_pg__audit_explain(struct bp_store *s, const struct bp_audit_query *q, int64_t follow_xmin, char *out,
                            size_t cap);
/* store_copy_pg.c: db copy's ops entries (store-int.h). */
bp_err bp_pg__count_rows(struct bp_store *s, const char *table, int64_t *out);
bp_err bp_pg__snapshot_begin(struct bp_store *s);
void bp_pg__snapshot_end(struct bp_store *s);
bp_err bp_pg__copy_clear(struct bp_store *s);
bp_err bp_pg__copy_done(struct bp_store *s);
/* store_audit_pg.c: inserts records keeping their seq (and id, node, time), for db copy. */
bp_err bp_pg__copy_audit(struct bp_store *s, const struct bp_audit_rec *recs, size_t n);
/* store_listen_pg.c: bp_store_listener_open for this backend. */
bp_err bp_pg__listener_open(struct bp_store *s, struct bp_store_listener **out);

/* Column readers of a text-format result. col_dup: allocated copy, NULL for SQL NULL. */
char *bp_pg__col_dup(const PGresult *res, int row, int col);
int64_t bp_pg__col_int(const PGresult *res, int row, int col);
bool bp_pg__col_bool(const PGresult *res, int row, int col);
/* A bytea column into exactly len bytes; anything else (NULL, other length) leaves zeros. */
void bp_pg__col_digest(const PGresult *res, int row, int col, unsigned char *out, size_t len);
/* A bytea column as an allocated, NUL-terminated copy; NULL for SQL NULL. */
char *bp_pg__col_bytes(const PGresult *res, int row, int col, size_t *out_len);

/* A statement in two halves, inside a transaction only: send it, work while the server runs
 * it, then receive its result (as bp_pg__run's out; nothing else may be sent in between). A
 * lost connection is reported (the transaction is over), never retried. */
bp_err bp_pg__send(struct pg_store *st, const char *sql, const struct bp_pg_params *p);
bp_err bp_pg__receive(struct pg_store *st, const char *sql, PGresult **out);

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
bp_err bp_pg__changes_since(struct bp_store *s, int64_t after, size_t limit, struct bp_change_rec **out,
                             size_t *out_n, int64_t *out_first);
bp_err bp_pg__schema_version(struct bp_store *s, int *out);
bp_err bp_pg__watcher_put(struct bp_store *s, const struct bp_watcher_rec *rec);
bp_err bp_pg__watcher_delete(struct bp_store *s, const char *id);
bp_err bp_pg__watcher_list(struct bp_store *s, struct bp_watcher_rec **out, size_t *out_n);
size_t bp_pg__commit_files(struct bp_store *s, const char **out, size_t max);
bp_err bp_pg__backup(struct bp_store *s, const char *path, unsigned flags, struct bp_store_backup_info *out);

/* BP_OK when the constant `SELECT 1 FROM <table> WHERE id = $1` finds a row, else BP_ERR_NOT_FOUND. */
bp_err bp_pg__row_exists(struct pg_store *st, const char *sql, const char *id);

#endif
