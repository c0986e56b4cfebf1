#ifndef BP_STORE_STORE_H
#define BP_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* The persistent store behind one small interface: SQLite (WAL; one node) or PostgreSQL (libpq;
 * a cluster of nodes sharing one database), each behind struct bp_store_ops.
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
    char *allow_from;  /* comma-separated networks it may be used from (canonical CIDR), NULL: anywhere */
    char *rate_limit;  /* its own request rate ("100/s", "0" = none; lib/rate.h), NULL: the configured default */
    int64_t rate_burst; /* with its own rate: requests at once, 0 = the rate's count */
    int64_t created_at;
    int64_t expires_at;   /* 0 = never */
    int64_t last_used_at; /* 0 = never */
    bool revoked;
    int64_t revoked_at;   /* 0 when active */
    char *replaces;       /* key rotation (issue 12): the key this one replaced, NULL when none; */
    char *replaced_by;    /* and the key that replaced this one. Filled by bp_store_key_links only */
};

/* Flags of bp_store_open. */
enum {
    /* Create the store when there is none yet. Only the commands meant to create one pass it
     * (`serve`, `db migrate`, the first `instance add`): anything else finding no store is
     * pointed at the right one instead of starting an empty one beside it (issue 8). */
    BP_STORE_OPEN_CREATE = 1u << 0,
    /* PostgreSQL: when the database cannot be reached, return a store anyway, which connects at
     * its first call (and fails that call, BP_ERR_STORE_DOWN, while it cannot). For serve's
     * threads, which must start while the database is down and recover by themselves (issue 9).
     * A database that is reached and refused (not a blnkproxy store, or newer) still fails. No
     * effect on SQLite. */
    BP_STORE_OPEN_LAZY = 1u << 1,
};

/* Opens the store named by dsn: a file path for SQLite ("./blnkproxy.db") or "sqlite:PATH"; a
 * "postgres://" or "postgresql://" URI for PostgreSQL, handed to libpq as it is (its parameters
 * and the PG* environment variables work as libpq documents; the database itself must exist —
 * "creating" a PostgreSQL store means creating its schema in an empty database). Does not
 * migrate.
 *
 * The store must be a blnkproxy store: a missing one is BP_ERR_NOT_FOUND ("no blnkproxy store at
 * PATH (use --db or BLNKPROXY_DB)") unless flags has BP_STORE_OPEN_CREATE, which creates it
 * private (0600). A database without a schema_migrations table is refused (BP_ERR_STORE) and
 * left untouched, except that an empty one may be created into with BP_STORE_OPEN_CREATE. A
 * store whose schema is newer than the migrations compiled into this binary is refused
 * (BP_ERR_STORE), so that an old binary never writes to a newer schema. Nothing is written to
 * the file before these checks pass. On failure writes a reason naming the absolute path (never
 * containing secrets) to err. */
bp_err bp_store_open(const char *dsn, unsigned flags, struct bp_store **out, char *err, size_t err_len);
void bp_store_close(struct bp_store *s);
/* The absolute path of the store when this bp_store_open created it, else NULL. Borrowed: valid
 * until bp_store_close. For the caller's "created a new store at PATH" message. */
const char *bp_store_created_path(const struct bp_store *s);
/* The backend's message for the last failed call (never contains bound values, hence no
 * secrets). Borrowed: valid until the next call on s. Never NULL. */
const char *bp_store_last_error(struct bp_store *s);

/* ---- DSNs and backends ---- */

/* "sqlite" or "postgresql": which backend s talks to. */
const char *bp_store_kind(const struct bp_store *s);
/* True when dsn names a PostgreSQL store ("postgres://" or "postgresql://"). */
bool bp_store_dsn_is_pg(const char *dsn);

/* A full disk (issue 11, store_reserve.c): room kept free next to a SQLite store, so that the
 * CLI can still make a change (revoke a key) when the disk fills. No-ops for PostgreSQL. */
#define BP_STORE_RESERVE_BYTES (8 * 1024 * 1024)
#define BP_STORE_RESERVE_LOW (1024 * 1024) /* the disk counts as full under this much free */
/* Makes "<db>.reserve" (BP_STORE_RESERVE_BYTES, allocated) unless it exists; BP_ERR_LIMIT when
 * the disk has less than twice that free (it is made later), BP_ERR_IO when it cannot be. */
bp_err bp_store_reserve_keep(const char *dsn);
/* When the disk holding the store is full (under BP_STORE_RESERVE_LOW free), deletes the reserve;
 * returns the bytes it freed (0: nothing done). */
int64_t bp_store_reserve_release(const char *dsn);
/* False when the disk holding the store has less than twice the reserve free: a writer that
 * failed for want of room waits for more than the reserve (which is the CLI's) before it tries
 * again. True for PostgreSQL and when it cannot be told. */
bool bp_store_has_room(const char *dsn);
/* Copies dsn to out (out_len bytes, always terminated) with every password it carries (a URI's
 * user info password, a password= or sslpassword= parameter) replaced by "***": the only form of
 * a DSN that may appear in a message, a log line, --json output or a metric label. A SQLite path
 * is copied as it is. A cut at out_len never exposes part of a password. */
void bp_store_dsn_mask(const char *dsn, char *out, size_t out_len);

/* Applies pending forward-only migrations in one transaction each. *out_applied (may be NULL)
 * gets how many ran; *out_version (may be NULL) the schema version after. A schema newer than
 * this binary knows is BP_ERR_STORE (bp_store_last_error says so) and nothing is applied. */
bp_err bp_store_migrate(struct bp_store *s, int *out_applied, int *out_version);
/* The schema version of the store (0 before the first migration). */
bp_err bp_store_schema_version(struct bp_store *s, int *out);

/* Flags of bp_store_backup. */
enum {
    BP_STORE_BACKUP_REPLACE = 1u << 0, /* replace an existing file at the destination */
};

struct bp_store_backup_info {
    int64_t bytes;      /* size of the copy */
    int schema_version; /* schema version of the copy */
};

/* Writes a consistent copy of the whole store, as of one moment, to the file path, while other
 * connections and processes keep reading and writing it (SQLite: the online backup API, inside
 * one read transaction). The copy is a complete store in one file, private (0600); it appears at
 * path only once complete and checked (a temporary file beside it is renamed), so path never
 * holds a partial copy. BP_ERR_EXISTS when path exists and flags lacks BP_STORE_BACKUP_REPLACE;
 * BP_ERR_INVALID when path is the store's own file or one of its companions (-wal, -shm,
 * -journal); BP_ERR_IO when the copy cannot be written. bp_store_last_error says why. */
bp_err bp_store_backup(struct bp_store *s, const char *path, unsigned flags,
                       struct bp_store_backup_info *out);
/* BP_OK when the store answers a trivial query. */
bp_err bp_store_ping(struct bp_store *s);

/* ---- Moving a deployment: db copy (issue 9) ---- */

/* The tables db copy moves, in the order it copies them. */
#define BP_STORE_COPY_TABLES 9
struct bp_store_copy_report {
    const char *table[BP_STORE_COPY_TABLES]; /* static names: "instances", "api_keys", … */
    int64_t rows[BP_STORE_COPY_TABLES];      /* rows copied; on BP_ERR_EXISTS, what dst holds */
    size_t n;
    const char *mismatch;                    /* the table whose count differed, NULL when none */
    int64_t mismatch_want;                   /* its rows in src */
    int64_t mismatch_have;                   /* its rows in dst */
};

/* Copies everything of the SQLite store src — instances with their Core secrets, API keys,
 * OAuth clients, operators, tokens (their families with them), codes, sign-in sessions, and the
 * audit log with its seqs and ids (a record from before schema 5 gets a new id) — into the
 * PostgreSQL store dst, as src stood at one moment (a read transaction: a running serve may go on
 * writing to src). Both must be at this binary's schema version (migrate them first). dst gets
 * everything in one transaction, which commits only after the row count of every table in it
 * equals src's (otherwise BP_ERR_STORE with out->mismatch set, and nothing is kept). A dst that holds any record is
 * refused (BP_ERR_EXISTS, *out then counts what it holds) unless replace, which deletes its
 * records in the same transaction. Not copied: the change log and the servers' reports, which
 * describe running servers. bp_store_last_error (of src or dst, *out_failed says which) explains
 * a failure. */
bp_err bp_store_copy(struct bp_store *src, struct bp_store *dst, bool replace, struct bp_store_copy_report *out,
                     struct bp_store **out_failed);

/* ---- Losing the database (issue 9) ----
 * A PostgreSQL store reconnects by itself: a call that finds no connection makes one (at once
 * after a loss, then with a backoff of up to 2 s while attempts fail, each failing call answered
 * at once). A call whose connection is lost: a read, or the start of a transaction, is repeated
 * once on a new connection; inside a transaction, the transaction was rolled back and every
 * further call fails until it is committed (which fails) or rolled back, so it is never
 * half-applied; any other statement is reported (it may or may not have been applied; a loss
 * during COMMIT says so). Those failures are BP_ERR_STORE_DOWN. SQLite never returns it. */

/* Bounds each call on s: a statement the server has not answered within timeout_ms is abandoned
 * and its connection closed (a server that stopped answering without closing anything), and the
 * call fails as a lost connection. 0: no bound. Default 60 s. No effect on SQLite, whose lock
 * waits are bounded by its busy timeout. */
void bp_store_set_timeout(struct bp_store *s, int64_t timeout_ms);
/* False while a PostgreSQL store has no working connection (as far as it knows: a broken one is
 * found out by the next call). Always true for SQLite. */
bool bp_store_connected(struct bp_store *s);
/* ---- Noticing changes (the server's change watcher) ----
 * Two levels. The change token is the cheap "something was committed" hint; the change seq says
 * whether any of that touched what the in-memory tables are built from. */

/* A number that changes whenever anything is committed: by another connection (SQLite PRAGMA
 * data_version) or by this one (a counter of its own writes). Opaque; compare for inequality.
 * It moves for audit records and last-used stamps too, so it only says "look at the seq". */
bp_err bp_store_change_token(struct bp_store *s, int64_t *out);
/* The position of the change log: the seq of the latest change to what the request path's
 * tables hold, from any connection or process (triggers in the store log every insert and
 * delete, and every update of a column the tables use, of instances, API keys, OAuth clients and
 * live access tokens). Not logged: last_used_at, audit records, refresh tokens, codes, sessions,
 * operators, deleting already-expired tokens. It only grows (bp_store_change_purge keeps the
 * newest row), 0 when nothing was ever logged. Each change row carries (seq, kind, entity id,
 * time); bp_store_changes_since reads them, for a watcher that applies them as deltas.
 * Commit order is seq order on both backends (SQLite has one writer; PostgreSQL's triggers take
 * the CHANGES advisory lock before the seq is drawn and hold it to commit), so a reader that
 * has applied every row up to n never meets a row below n committed later. */
bp_err bp_store_change_seq(struct bp_store *s, int64_t *out);
/* Deletes a prefix of the change log: every row below the newest one recorded before `before`
 * (wall seconds), and never the newest row. A prefix by seq, so a reader at position n can tell
 * whether the rows after n are all still there (bp_store_changes_since's *out_first). */
bp_err bp_store_change_purge(struct bp_store *s, int64_t before);

/* One row of the change log. kind: "instance", "api_key", "oauth_client", "access_token". */
struct bp_change_rec {
    int64_t seq;
    char *kind;
    char *entity_id;
};
/* Up to `limit` rows with seq > after, in seq order; *out_first gets the smallest seq the log
 * still holds (0 when empty). When *out_first > after + 1 the rows in between may have been
 * purged (or were never committed: seqs of rolled-back writes are skipped): the caller cannot
 * prove it has every change and must reload everything. Free with bp_change_recs_free. */
bp_err bp_store_changes_since(struct bp_store *s, int64_t after, size_t limit, struct bp_change_rec **out,
                              size_t *out_n, int64_t *out_first);
void bp_change_recs_free(struct bp_change_rec *recs, size_t n);
/* Files the backend writes when any process commits, so that a watcher can wake on their
 * modification (inotify) instead of waiting for its next poll. SQLite: the database file
 * (journal mode DELETE commits there, checkpoints copy into it) and its -wal file (WAL commits),
 * both as SQLite resolved them. Fills out with up to max borrowed paths (valid until
 * bp_store_close) and returns how many; 0 for a backend that keeps no local files. */
size_t bp_store_commit_files(struct bp_store *s, const char **out, size_t max);

/* Change notifications (PostgreSQL): a connection of its own that LISTENs for the change log's
 * NOTIFY, so that a watcher wakes as soon as anyone commits a change. Its socket goes into the
 * watcher's poll set; a notification lost while it was disconnected is made up for by checking
 * the change seq whenever it (re)connects. One thread at a time. */
struct bp_store_listener;

enum bp_store_listener_event {
    BP_LISTENER_NOTHING = 0, /* nothing new */
    BP_LISTENER_NOTIFIED,    /* one or more changes were committed: check the seq */
    BP_LISTENER_CONNECTED,   /* (re)connected and listening: check the seq, notifications may
                                have been lost before */
    BP_LISTENER_LOST,        /* the connection was lost: changes are seen by polling meanwhile */
    BP_LISTENER_DOWN,        /* a connection attempt failed (bp_store_listener_last_error) */
};

/* A listener on s's database (a new connection, s itself is not used by it). Down at first: the
 * first bp_store_listener_poll connects. BP_ERR_INVALID for a store that has no notifications
 * (SQLite: wake on bp_store_commit_files instead). */
bp_err bp_store_listener_open(struct bp_store *s, struct bp_store_listener **out);
/* The socket to poll for input; -1 while down (it changes with each connection). */
int bp_store_listener_fd(const struct bp_store_listener *l);
/* While down: milliseconds until the next connection attempt is due (0: now); -1 while up. */
int64_t bp_store_listener_retry_in_ms(const struct bp_store_listener *l);
/* Call when the socket is readable, and while down when the retry is due: takes what arrived,
 * or tries to connect (with a backoff of up to 2 s between failed attempts). */
enum bp_store_listener_event bp_store_listener_poll(struct bp_store_listener *l);
/* Why the latest attempt failed (password-free). */
const char *bp_store_listener_last_error(const struct bp_store_listener *l);
void bp_store_listener_close(struct bp_store_listener *l);

/* A running server's report of how far it has applied the change log, so that the CLI can wait
 * until every running server has published a change before it returns (serve/watch.h). */
struct bp_watcher_rec {
    char *id;          /* "watcher_" + ULID, one per server process */
    char *host;        /* the server's host name */
    int64_t pid;       /* the server's process id on that host */
    int64_t seq;       /* change seq that the server's published tables include */
    int64_t seen_at;   /* wall seconds of the latest report (a heartbeat while idle) */
    char *node;        /* the server's node_name (NULL in rows of servers before schema 5) */
    char *version;     /* the server's blnkproxy version, NULL likewise */
    int64_t started_at; /* wall seconds when the server started, 0 likewise */
};

/* Inserts the row or replaces the one with the same id. Not a change (the seq does not move). */
bp_err bp_store_watcher_put(struct bp_store *s, const struct bp_watcher_rec *rec);
/* BP_ERR_NOT_FOUND for an unknown id. */
bp_err bp_store_watcher_delete(struct bp_store *s, const char *id);
/* Every row, ordered by id; free with bp_watcher_recs_free. */
bp_err bp_store_watcher_list(struct bp_store *s, struct bp_watcher_rec **out, size_t *out_n);
void bp_watcher_rec_cleanup(struct bp_watcher_rec *rec);
void bp_watcher_recs_free(struct bp_watcher_rec *recs, size_t n);

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
/* Calls fn with every API key, in no particular order; the record and its strings are the
 * store's and valid only during the call. How serve reads a million keys without holding them
 * all twice (issue 9). A non-OK return from fn ends the walk and is returned. */
bp_err bp_store_key_each(struct bp_store *s, bp_err (*fn)(const struct bp_key_rec *k, void *arg), void *arg);
/* Marks revoked (keeps the row). BP_ERR_NOT_FOUND for an unknown id. */
bp_err bp_store_key_revoke(struct bp_store *s, const char *id, int64_t now);
/* expires_at 0 = never. */
bp_err bp_store_key_set_expiry(struct bp_store *s, const char *id, int64_t expires_at);
/* A credential's allow-list holds at most this many networks (issue 12). */
#define BP_ALLOW_FROM_MAX 64
/* The networks the key may be used from (canonical CIDR list), NULL = anywhere (issue 12). */
bp_err bp_store_key_set_allow_from(struct bp_store *s, const char *id, const char *allow_from);
/* Its own rate limit (rate_limit NULL: the configured default; burst 0: the rate's count). */
bp_err bp_store_key_set_rate(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst);
/* Rotation (issue 12): old_id was replaced by new_id (both rows name the other). */
/* BP_ERR_NOT_FOUND when old_id is unknown, replaced already or revoked. */
bp_err bp_store_key_link(struct bp_store *s, const char *old_id, const char *new_id);
/* A key rotation's rows, inside the caller's transaction: the new key (fresh: bp_key_rec_inherit
 * of old_id as the caller read it), the links between them, and the old key's expiry at
 * old_until. BP_ERR_EXISTS when old_id was replaced or revoked already, or changed since the
 * caller read it (a rotation, revocation or update at the same time): roll back. */
bp_err bp_store_key_rotate(struct bp_store *s, const struct bp_key_rec *fresh, const char *old_id, int64_t old_until);
/* What a rotated key takes from the key it replaces: name, scopes, instances, allow-list, rate
 * and expiry (copies into fresh, whose other fields are the caller's). */
void bp_key_rec_inherit(struct bp_key_rec *fresh, const struct bp_key_rec *old);
/* The keys id replaces and was replaced by (allocated, NULL when none): the CLI's, apart from
 * bp_store_key_get, which the watcher uses for every changed key. */
bp_err bp_store_key_links(struct bp_store *s, const char *id, char **out_replaces, char **out_replaced_by);
/* Sets last_used_at = max(last_used_at, at) for each id, in one transaction. Unknown ids are
 * ignored. Moves the change token but not the change seq: it is not a credential change. */
bp_err bp_store_key_touch(struct bp_store *s, const char *const *ids, const int64_t *at, size_t n);
void bp_key_rec_cleanup(struct bp_key_rec *rec);
void bp_key_recs_free(struct bp_key_rec *recs, size_t n);

/* ---- Transactions ----
 * Groups several calls into one atomic unit (BEGIN IMMEDIATE … COMMIT). Not nestable. */
bp_err bp_store_begin(struct bp_store *s);
bp_err bp_store_commit(struct bp_store *s);
void bp_store_rollback(struct bp_store *s);

/* ---- OAuth (DESIGN §5, §6): clients, operators, tokens, codes, sign-in sessions ----
 * Implemented in store_oauth.c (dispatch) and store_oauth_sqlite.c. Secrets are never stored:
 * only SHA-256 digests of client secrets, tokens, codes, session ids and CSRF tokens, and
 * Argon2id hashes of operator passwords. */

/* An OAuth client (a third-party app). */
struct bp_client_rec {
    char *id;                  /* public client_id: "client_" + ULID */
    char *name;
    unsigned char secret_digest[32]; /* SHA-256 of the client secret */
    char *scopes;              /* canonical scope list; bounds every token the client gets */
    char **redirect_uris;      /* exact-match redirect URIs, may be empty */
    size_t n_redirect_uris;
    char *grant_types;         /* comma-separated: client_credentials,authorization_code,refresh_token */
    char *instances;           /* comma-separated instance ids, NULL when unrestricted */
    char *allow_from;          /* networks its tokens may be used from, NULL: anywhere */
    char *rate_limit;          /* the rate of all its tokens together, NULL: the configured default */
    int64_t rate_burst;        /* with its own rate: requests at once, 0 = the rate's count */
    int64_t created_at;
    int64_t expires_at;        /* 0 = never */
    bool revoked;
    int64_t revoked_at;
};

/* A person who approves apps on the authorize page. */
struct bp_operator_rec {
    char *id;                  /* "operator_" + ULID */
    char *name;                /* sign-in name, unique */
    char *password_hash;       /* Argon2id encoded string ($argon2id$v=19$…) */
    bool disabled;
    char *role;                /* "admin", "auditor" or "approver" (the authorize page only) */
    int64_t created_at;
    int64_t updated_at;
};

/* An operator's admin API credential (issue 13): a token made with the CLI ("token"), or a
 * console sign-in ("session"). Only the SHA-256 of the secret is kept. */
struct bp_admin_token_rec {
    char *id;                       /* "admtok_" + ULID */
    char *operator_id;
    char *kind;                     /* "token" or "session" */
    unsigned char digest[32];
    char *prefix;                   /* the secret's first characters, to tell tokens apart */
    char *name;                     /* what the token is for; NULL for sessions */
    int64_t created_at;
    int64_t expires_at;             /* unix seconds; never 0 */
    int64_t revoked_at;             /* 0 while usable */
};

enum bp_token_kind { BP_TOKEN_ACCESS = 1, BP_TOKEN_REFRESH = 2 };

/* An issued access or refresh token. A family is every token descended from one grant (one
 * authorization code, or one client_credentials request): reuse of a rotated refresh token, or a
 * second use of a code, revokes the whole family. */
struct bp_token_rec {
    char *id;                  /* "token_" + ULID */
    enum bp_token_kind kind;
    unsigned char digest[32];  /* SHA-256 of the token text */
    char *client_id;
    char *family_id;           /* "family_" + ULID */
    char *operator_id;         /* who approved (authorization_code), NULL for client_credentials */
    char *scopes;              /* canonical, within the client's */
    int64_t created_at;
    int64_t expires_at;        /* 0 = never */
    int64_t used_at;           /* refresh tokens: when exchanged (rotated); 0 = not yet */
    bool revoked;
    int64_t revoked_at;
};

/* A live access token as the request path needs it: joined with its client, whose revocation,
 * expiry and instance restriction it inherits. */
struct bp_live_token {
    char *id;                  /* token id */
    unsigned char digest[32];
    char *client_id;
    char *client_name;
    char *scopes;              /* the token's scopes */
    char *instances;           /* the client's restriction, NULL when unrestricted */
    char *allow_from;          /* the client's networks, NULL: anywhere */
    char *rate_limit;          /* the client's rate, NULL: the default */
    int64_t rate_burst;
    int64_t expires_at;        /* min(token expiry, client expiry); 0 = never */
    bool live;                 /* bp_store_token_list_changed: whether the request path takes it */
};

/* An authorization code (single use, short-lived). */
struct bp_code_rec {
    unsigned char digest[32];
    char *client_id;
    char *operator_id;
    char *redirect_uri;
    char *scopes;
    char *code_challenge;      /* PKCE S256 challenge (base64url, 43 chars) */
    char *family_id;           /* the family the exchange will create */
    int64_t created_at;
    int64_t expires_at;
    int64_t used_at;           /* 0 = not used */
};

/* A sign-in session on the authorize page (cookie → digest). */
struct bp_session_rec {
    unsigned char digest[32];       /* SHA-256 of the cookie value */
    unsigned char csrf_digest[32];  /* SHA-256 of the form's CSRF token */
    char *operator_id;              /* NULL until the operator signed in */
    int64_t created_at;
    int64_t expires_at;
};

bp_err bp_store_client_insert(struct bp_store *s, const struct bp_client_rec *rec);
bp_err bp_store_client_get(struct bp_store *s, const char *id, struct bp_client_rec *out);
bp_err bp_store_client_list(struct bp_store *s, struct bp_client_rec **out, size_t *out_n);
/* Marks the client revoked and revokes all its tokens, in one transaction. */
bp_err bp_store_client_revoke(struct bp_store *s, const char *id, int64_t now);
/* A new secret (its digest) for client id; the one it had stays valid until previous_expires_at
 * (a rotation with overlap, issue 12). BP_ERR_NOT_FOUND when there is no such client. */
bp_err bp_store_client_rotate_secret(struct bp_store *s, const char *id, const unsigned char digest[32],
                                     int64_t previous_expires_at);
/* The client's previous secret: its digest and until when it is valid (0 and zeros when none). */
bp_err bp_store_client_previous_secret(struct bp_store *s, const char *id, unsigned char digest[32],
                                       int64_t *out_expires_at);
bp_err bp_store_client_set_expiry(struct bp_store *s, const char *id, int64_t expires_at);
/* The networks the client's tokens may be used from, NULL = anywhere. */
bp_err bp_store_client_set_allow_from(struct bp_store *s, const char *id, const char *allow_from);
bp_err bp_store_client_set_rate(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst);
void bp_client_rec_cleanup(struct bp_client_rec *rec);
void bp_client_recs_free(struct bp_client_rec *recs, size_t n);

/* insert: BP_ERR_EXISTS on a duplicate name. */
bp_err bp_store_operator_insert(struct bp_store *s, const struct bp_operator_rec *rec);
bp_err bp_store_operator_get(struct bp_store *s, const char *id, struct bp_operator_rec *out);
bp_err bp_store_operator_get_by_name(struct bp_store *s, const char *name, struct bp_operator_rec *out);
bp_err bp_store_operator_list(struct bp_store *s, struct bp_operator_rec **out, size_t *out_n);
bp_err bp_store_operator_set_disabled(struct bp_store *s, const char *id, bool disabled, int64_t now);
bp_err bp_store_operator_set_password(struct bp_store *s, const char *id, const char *password_hash, int64_t now);
/* Withdraws everything the operator approved: revokes every token family whose tokens carry
 * operator_id, deletes the operator's unused authorization codes and sign-in sessions. One
 * transaction, or the caller's when one is open (disable it in the same one). */
bp_err bp_store_operator_revoke_grants(struct bp_store *s, const char *operator_id, int64_t now);
/* role is "admin", "auditor" or "approver". BP_ERR_NOT_FOUND when there is no such operator. */
bp_err bp_store_operator_set_role(struct bp_store *s, const char *id, const char *role, int64_t now);
void bp_operator_rec_cleanup(struct bp_operator_rec *rec);

bp_err bp_store_admin_token_insert(struct bp_store *s, const struct bp_admin_token_rec *rec);
/* The usable credential with this digest (not revoked, not expired at now) and its operator.
 * BP_ERR_NOT_FOUND otherwise. */
bp_err bp_store_admin_token_find(struct bp_store *s, const unsigned char digest[32], int64_t now,
                                 struct bp_admin_token_rec *out, struct bp_operator_rec *out_operator);
/* The credentials of kind ("token" or "session"; NULL: both) of operator_id (NULL: everyone's),
 * newest first. */
bp_err bp_store_admin_token_list(struct bp_store *s, const char *operator_id, const char *kind,
                                 struct bp_admin_token_rec **out, size_t *out_n);
bp_err bp_store_admin_token_get(struct bp_store *s, const char *id, struct bp_admin_token_rec *out);
/* Revokes one credential by id. BP_ERR_NOT_FOUND when there is none. */
bp_err bp_store_admin_token_revoke(struct bp_store *s, const char *id, int64_t now);
/* Ends a session (deletes it) by digest; no error when there is none. */
bp_err bp_store_admin_session_end(struct bp_store *s, const unsigned char digest[32]);
/* Deletes every session of the operator (disabled, new password, new role), or, with
 * operator_id NULL, every session that expired before now. */
bp_err bp_store_admin_sessions_delete(struct bp_store *s, const char *operator_id, int64_t now);
/* Keeps the operator's newest `keep` sessions and deletes the others. */
bp_err bp_store_admin_sessions_trim(struct bp_store *s, const char *operator_id, int64_t keep);
void bp_admin_token_rec_cleanup(struct bp_admin_token_rec *rec);
void bp_admin_token_recs_free(struct bp_admin_token_rec *recs, size_t n);
void bp_operator_recs_free(struct bp_operator_rec *recs, size_t n);

bp_err bp_store_token_insert(struct bp_store *s, const struct bp_token_rec *rec);
/* BP_ERR_NOT_FOUND when no token has that digest. */
bp_err bp_store_token_get_by_digest(struct bp_store *s, const unsigned char digest[32], struct bp_token_rec *out);
/* Sets used_at only if it is still 0 and the token is not revoked: BP_ERR_EXISTS when the token
 * was already used or has been revoked (the caller then treats it as reuse), BP_ERR_NOT_FOUND for
 * an unknown id. */
bp_err bp_store_token_mark_used(struct bp_store *s, const char *id, int64_t now);
bp_err bp_store_token_revoke(struct bp_store *s, const char *id, int64_t now);
/* Revokes every token of the family; *out_n (may be NULL) gets how many were still active. */
bp_err bp_store_token_revoke_family(struct bp_store *s, const char *family_id, int64_t now, size_t *out_n);
/* Keeps the client's newest `keep` live access tokens (not revoked, not expired at now) and
 * revokes the older ones; *out_n (may be NULL) gets how many were revoked. Runs inside the
 * caller's transaction when one is open, so issuing and capping are one unit. */
bp_err bp_store_token_revoke_oldest_access(struct bp_store *s, const char *client_id, size_t keep, int64_t now,
                                           size_t *out_n);
/* Access tokens that are not revoked, not expired at now, of clients neither revoked nor expired. */
bp_err bp_store_token_list_live(struct bp_store *s, int64_t now, struct bp_live_token **out, size_t *out_n);
/* For applying one change: with token_id, that access token whatever its state (none when no
 * such access token); else the client's access tokens that are neither revoked nor expired by
 * their own expiry (bounded by the per-client live token cap). Each row says whether it is
 * live at now (the bp_store_token_list_live rule); the digest is there either way, so that a
 * token that stopped being live can be taken out of the tables. */
bp_err bp_store_token_list_changed(struct bp_store *s, int64_t now, const char *token_id, const char *client_id,
                                   struct bp_live_token **out, size_t *out_n);
/* Deletes tokens, codes and sessions that expired before `before`. */
bp_err bp_store_oauth_purge(struct bp_store *s, int64_t before);
void bp_token_rec_cleanup(struct bp_token_rec *rec);
void bp_live_tokens_free(struct bp_live_token *recs, size_t n);

bp_err bp_store_code_insert(struct bp_store *s, const struct bp_code_rec *rec);
/* Fetches the code by digest and marks it used, atomically. BP_ERR_NOT_FOUND when unknown;
 * BP_ERR_EXISTS when it had already been used (out is still filled, so the caller can revoke
 * the family issued with it). Expiry is the caller's check. */
bp_err bp_store_code_take(struct bp_store *s, const unsigned char digest[32], int64_t now, struct bp_code_rec *out);
void bp_code_rec_cleanup(struct bp_code_rec *rec);

bp_err bp_store_session_insert(struct bp_store *s, const struct bp_session_rec *rec);
bp_err bp_store_session_get(struct bp_store *s, const unsigned char digest[32], struct bp_session_rec *out);
bp_err bp_store_session_delete(struct bp_store *s, const unsigned char digest[32]);
/* Deletes every sign-in session of the operator (e.g. after a password change). */
bp_err bp_store_session_delete_operator(struct bp_store *s, const char *operator_id);
void bp_session_rec_cleanup(struct bp_session_rec *rec);

/* ---- Idempotency-Key answers (issue 12, DESIGN §4b) ----
 * One row per scope (a SHA-256 of credential, instance, method, route and key, made by idem/):
 * the first request's fingerprint, where it stands, and Core's answer once there is one. The
 * lease is the row's owner's time: while it runs, others wait (409); after it, an entry still
 * in flight or of unknown outcome may be taken over. */
enum bp_idem_state {
    BP_IDEM_IN_FLIGHT = 1, /* forwarded (or about to be); no answer yet */
    BP_IDEM_DONE = 2,      /* Core answered: status, and the answer when kept */
    BP_IDEM_UNKNOWN = 3,   /* sent, and no answer came (timeout, reset): Core may have acted */
};

struct bp_idem_rec {
    unsigned char fingerprint[32];
    int state;                 /* enum bp_idem_state */
    int64_t lease_until;       /* wall seconds */
    int64_t expires_at;        /* wall seconds: the row counts as absent from then on */
    int status;                /* BP_IDEM_DONE: Core's status */
    bool kept;                 /* BP_IDEM_DONE: headers and body are the whole answer */
    char *headers;             /* the end-to-end header lines as relayed ("Name: value\r\n"…) */
    size_t headers_len;
    char *body;
    size_t body_len;
};

/* What bp_store_idem_claim asks. */
struct bp_idem_claim {
    const unsigned char *scope;       /* 32 bytes */
    const unsigned char *fingerprint; /* 32 bytes */
    int64_t now;                      /* wall seconds */
    int64_t lease_until;              /* the lease a new or taken-over entry gets */
    int64_t expires_at;               /* a new entry's */
    bool take_over;                   /* an entry in flight or unknown whose lease passed, with
                                         this fingerprint, may be taken over */
};

/* In one transaction: an entry that expired is dropped; then a new entry (in flight, with the
 * lease) is made, *out_owned true and out->state 0; or, when one exists, it is read into out
 * and, if c->take_over allows, taken over (in flight again, with the new lease; *out_owned true,
 * out->state what it was). Otherwise *out_owned false and out is the entry as it stands.
 * Concurrent claims of one scope, on any node, leave exactly one owner. Free out with
 * bp_idem_rec_cleanup. */
bp_err bp_store_idem_claim(struct bp_store *s, const struct bp_idem_claim *c, struct bp_idem_rec *out,
                           bool *out_owned);
/* The owner's outcome: rec's state, lease_until, status, kept, headers and body replace the
 * entry's (its fingerprint and expiry stay). BP_ERR_NOT_FOUND when it is gone. */
bp_err bp_store_idem_finish(struct bp_store *s, const unsigned char scope[32], const struct bp_idem_rec *rec);
/* Forgets the entry: the request never reached Core, so a retry starts afresh. */
bp_err bp_store_idem_release(struct bp_store *s, const unsigned char scope[32]);
/* Deletes every entry that expired at or before now; *out_deleted (may be NULL) gets how many. */
bp_err bp_store_idem_purge(struct bp_store *s, int64_t now, int64_t *out_deleted);
void bp_idem_rec_cleanup(struct bp_idem_rec *rec);

/* ---- Audit log (issue 4) ----
 * Implemented in store_audit.c (dispatch) and store_audit_sqlite.c. A record never holds a
 * secret, a request body or a query string. */

#define BP_AUDIT_HEX 65 /* a SHA-256 in hex and its NUL */

struct bp_audit_rec {
    int64_t seq;               /* assigned by the store on insert (ascending); 0 before */
    char *id;                  /* "audit_" + ULID, unique: the store assigns one on insert when
                                  NULL, and a record whose id it holds already is not stored again
                                  (a spool imported twice, a batch whose commit was not answered) */
    char *node;                /* the node (serve's node_name, or the CLI's host) that wrote it */
    int64_t time_us;           /* wall clock, microseconds since the epoch */
    char *request_id;          /* NULL for administrative changes */
    char *actor_type;          /* "api_key", "oauth_client", "cli", "anonymous" */
    char *actor_id;            /* key id, client id, OS user name; NULL when anonymous */
    char *actor_name;          /* key or client name; NULL when unknown */
    char *instance_id;         /* NULL when none applies */
    char *method;              /* HTTP method; NULL for administrative changes */
    char *route;               /* route pattern ("/ledgers/:id"); NULL when no route matched */
    char *path;                /* concrete Core path without the query; NULL for admin changes */
    char *action;              /* "Transaction created", "Instance added", … */
    char *category;            /* ledgers, balances, transactions, identities, reconciliation,
                                  metadata, admin, … */
    int core_status;           /* Core's status; 0 when the request did not reach Core */
    int status;                /* the status the proxy answered; 0 for admin changes */
    int64_t latency_us;
    char *client_addr;         /* peer address; NULL for admin changes */
    char *resource_id;         /* id Core returned for a creation, or the admin object's id */
    char *error;               /* error_detail.code of a refusal, NULL otherwise */
    int64_t repeat_count;      /* requests this record stands for: 1, or more for the aggregate
                                  of one peer's refusals before authentication (audit/refusals.c);
                                  0 is taken as 1 */
    int64_t last_time_us;      /* the last of those requests; 0 when it is the only one */
    bool replayed;             /* the answer was an Idempotency-Key replay: Core saw nothing */
    /* Its place in the tamper-evident trail (issue 13, store_chain.c), set by the store when it
     * stores the record, read back with it. */
    char *chain;               /* the writer's chain: its node (NULL on insert: the store takes
                                  node); NULL for a record from before schema 10 */
    int64_t chain_n;           /* place in the chain, from 1; 0 outside any chain */
    char prev_hash[BP_AUDIT_HEX]; /* hex SHA-256 of the chain's previous record ("0…0" for the
                                  first); "" outside any chain */
    char hash[BP_AUDIT_HEX];   /* hex SHA-256 of this record (bp_store_audit_digest) */
};

struct bp_audit_query {
    int64_t since_us;          /* 0 = no lower bound */
    int64_t until_us;          /* 0 = no upper bound (exclusive) */
    const char *category;      /* NULL = any */
    const char *instance_id;
    const char *credential;    /* matches actor_id */
    const char *action;
    int status;                /* exact status, or 1..5 for a class (2 = 2xx); 0 = any */
    int64_t after_seq;         /* only records with seq > after_seq (for --follow); 0 = any */
    size_t limit;              /* 0 = no limit */
    bool ascending;            /* order by seq ascending (follow) instead of newest first */
};

/* Inserts n records in one transaction (PostgreSQL: one multi-row statement), assigning an id to
 * each record that has none (allocated: bp_audit_rec_cleanup frees it with the record, so a
 * caller's record of static strings frees recs[i].id itself) and recs[i].seq to each stored one. A record whose id the store holds
 * already is skipped (its seq stays 0): inserting the same records again is harmless. */
bp_err bp_store_audit_insert(struct bp_store *s, struct bp_audit_rec *recs, size_t n);
/* Gives every record without an id the id an insert would give it (any backend, no store
 * needed): for records kept elsewhere first (the audit spool), so that they keep one id. */
bp_err bp_store_audit_ids(struct bp_audit_rec *recs, size_t n);
bp_err bp_store_audit_query(struct bp_store *s, const struct bp_audit_query *q, struct bp_audit_rec **out,
                            size_t *out_n);
/* ---- Tamper-evident trail (issue 13, store_chain.c) ----
 * Every writer (a node; the CLI on its host) appends to its own hash chain: a record's hash is
 * the SHA-256 of its predecessor's hash and of all its fields, and the chain's head (count and
 * last hash) is kept in audit_chains, updated in the inserting transaction under the head's row
 * lock. Writers on different nodes never wait for each other; two writers that share a name are
 * put in order by that lock. */

/* The hex SHA-256 of r at its place (r->chain, or r->node when NULL; r->chain_n; r->prev_hash):
 * what the store computed when it stored r, recomputed from what it reads back. Text that is not
 * valid UTF-8 is hashed as PostgreSQL stores it (each bad byte as '?'), so a trail moved between
 * backends keeps its hashes. */
void bp_store_audit_digest(const struct bp_audit_rec *r, char out[BP_AUDIT_HEX]);
/* The chain a record is appended to: its node, or "-" without one. */
const char *bp_store_audit_chain_of(const struct bp_audit_rec *r);

struct bp_audit_head {
    char *chain;
    int64_t n;                 /* records appended to it, ever (purged ones included) */
    char head[BP_AUDIT_HEX];   /* the last one's hash */
    int64_t updated_us;
};
/* Every chain's head, by chain name. One consistent read. */
bp_err bp_store_audit_heads(struct bp_store *s, struct bp_audit_head **out, size_t *out_n);
void bp_audit_heads_free(struct bp_audit_head *h, size_t n);
/* At most limit records of one chain with chain_n > after_n, ascending by chain_n. */
bp_err bp_store_audit_chain_page(struct bp_store *s, const char *chain, int64_t after_n, size_t limit,
                                 struct bp_audit_rec **out, size_t *out_n);
/* The smallest chain_n of a chain's records at or after since_us; 0 when it has none. */
bp_err bp_store_audit_chain_start(struct bp_store *s, const char *chain, int64_t since_us, int64_t *out_n);

/* What lies outside the chains: the rows written before schema 10 (legacy_n of them, seq up to
 * legacy_max_seq) are expected; any other row without a chain, or of a chain without a head, was
 * put there by hand. */
struct bp_audit_strays {
    int64_t legacy_max_seq;
    int64_t legacy_n;          /* when the migration ran; purges take them away since */
    int64_t unchained;         /* rows without a chain and a seq above legacy_max_seq */
    int64_t first_unchained_seq;
    char *headless_chain;      /* a chain some row names that has no head, or NULL */
};
bp_err bp_store_audit_strays(struct bp_store *s, struct bp_audit_strays *out);
void bp_audit_strays_cleanup(struct bp_audit_strays *st);

/* A checkpoint as kept in the store: its JSON text and the text's signature (audit/trail). */
struct bp_audit_checkpoint {
    char *id;
    int64_t time_us;
    char *kind;                /* "periodic", "manual", "purge" */
    char *body;
    char *signature;           /* NULL when unsigned */
};
bp_err bp_store_audit_checkpoint_put(struct bp_store *s, const struct bp_audit_checkpoint *c);
/* Checkpoints at or after since_us, oldest first, at most limit of them (0: all); kind NULL =
 * any. */
bp_err bp_store_audit_checkpoint_list(struct bp_store *s, int64_t since_us, const char *kind, size_t limit,
                                      struct bp_audit_checkpoint **out, size_t *out_n);
/* Deletes one stored checkpoint (BP_ERR_NOT_FOUND when it is gone). */
bp_err bp_store_audit_checkpoint_delete(struct bp_store *s, const char *id);
void bp_audit_checkpoints_free(struct bp_audit_checkpoint *c, size_t n);

/* What a purge is about to remove from one chain: records 1..upto_n (those still there, count of
 * them), the last of which has hash head. The callback fills *out (the checkpoint to keep,
 * allocated; the store frees it) or returns an error to stop the purge before anything of this
 * chain is removed. */
struct bp_audit_cut {
    const char *chain;
    int64_t upto_n;
    const char *head;
    int64_t records;
    int64_t before_us;
};
typedef bp_err (*bp_audit_cut_fn)(void *ctx, const struct bp_audit_cut *cut, struct bp_audit_checkpoint *out);

/* Deletes records older than before_us; *out_deleted (may be NULL) gets how many. A chain loses
 * only a prefix (its records up to the first one at or after before_us), and before it does,
 * the checkpoint cut_fn makes of that prefix is stored, so that what stays still verifies. A NULL
 * cut_fn purges only the rows from before schema 10. On PostgreSQL it runs on one connection at
 * a time cluster-wide (an advisory lock): another node's purge in progress makes it return at
 * once with *out_deleted 0. */
bp_err bp_store_audit_purge(struct bp_store *s, int64_t before_us, bp_audit_cut_fn cut_fn, void *ctx,
                            int64_t *out_deleted);

/* Following the log (audit list --follow). A record becomes visible when its batch commits, and
 * on PostgreSQL the batches of several nodes commit in any order of their seqs (identity values
 * are taken at insert): a cursor hands out every record that matches its query exactly once, as
 * they become visible, and never skips one that committed late (store_audit_pg.c: by the
 * inserting transaction's id, with the database's oldest running transaction as the low-water
 * mark). On SQLite commits are serialised and seq order is commit order. */
struct bp_audit_cursor;
/* Answers q as bp_store_audit_query does (newest first, at most q->limit; q->after_seq and
 * q->ascending are ignored) and returns, in *out_cursor, a cursor positioned after every record
 * visible at that moment: both come from one consistent read. */
bp_err bp_store_audit_follow(struct bp_store *s, const struct bp_audit_query *q, struct bp_audit_rec **out,
                             size_t *out_n, struct bp_audit_cursor **out_cursor);
/* At most max records matching the cursor's query that became visible since its previous call,
 * ascending by seq within a call. *out_more: call again at once (there may be more). A call may
 * hand out fewer than max, even none, with *out_more set: on PostgreSQL rows it handed out
 * already take room in a page while a transaction running anywhere on the server holds the
 * low-water mark back. */
bp_err bp_store_audit_follow_next(struct bp_store *s, struct bp_audit_cursor *c, size_t max,
                                  struct bp_audit_rec **out, size_t *out_n, bool *out_more);
void bp_audit_cursor_free(struct bp_audit_cursor *c);
void bp_audit_rec_cleanup(struct bp_audit_rec *rec);
void bp_audit_recs_free(struct bp_audit_rec *recs, size_t n);

#endif
