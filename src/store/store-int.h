#ifndef BP_STORE_STORE_INT_H
#define BP_STORE_STORE_INT_H

/* Shared between the store's files only: the backend vtable that store.c dispatches through.
 * A backend embeds struct bp_store as its first member and points ops at its table. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct bp_store_ops {
    const char *name;
    void (*close)(struct bp_store *s);
    const char *(*last_error)(struct bp_store *s);
    bp_err (*migrate)(struct bp_store *s, int *out_applied, int *out_version);
    bp_err (*schema_version)(struct bp_store *s, int *out);
    bp_err (*backup)(struct bp_store *s, const char *path, unsigned flags, struct bp_store_backup_info *out);
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
    bp_err (*key_each)(struct bp_store *s, bp_err (*fn)(const struct bp_key_rec *k, void *arg), void *arg);
    bp_err (*key_revoke)(struct bp_store *s, const char *id, int64_t now);
    bp_err (*key_set_expiry)(struct bp_store *s, const char *id, int64_t expires_at);
    bp_err (*key_set_allow_from)(struct bp_store *s, const char *id, const char *allow_from);
    bp_err (*key_set_rate)(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst);
    bp_err (*key_link)(struct bp_store *s, const char *old_id, const char *new_id);
    bp_err (*key_links)(struct bp_store *s, const char *id, char **out_replaces, char **out_replaced_by);
    bp_err (*key_touch)(struct bp_store *s, const char *const *ids, const int64_t *at, size_t n);

    bp_err (*begin)(struct bp_store *s);
    bp_err (*commit)(struct bp_store *s);
    void (*rollback)(struct bp_store *s);

    const struct bp_store_oauth_ops *oauth;
    const struct bp_store_audit_ops *audit;

    /* The change log and the servers' reports (store.h "Noticing changes"); added with migration 4,
     * kept at the end. */
    bp_err (*change_seq)(struct bp_store *s, int64_t *out);
    bp_err (*change_purge)(struct bp_store *s, int64_t before);
    bp_err (*changes_since)(struct bp_store *s, int64_t after, size_t limit, struct bp_change_rec **out,
                            size_t *out_n, int64_t *out_first);
    size_t (*commit_files)(struct bp_store *s, const char **out, size_t max);
    bp_err (*watcher_put)(struct bp_store *s, const struct bp_watcher_rec *rec);
    bp_err (*watcher_delete)(struct bp_store *s, const char *id);
    bp_err (*watcher_list)(struct bp_store *s, struct bp_watcher_rec **out, size_t *out_n);

    /* Issue 9: a bound on each call (NULL: none), and whether a connection is up (NULL: always). */
    void (*set_timeout)(struct bp_store *s, int64_t timeout_ms);
    bool (*connected)(struct bp_store *s);
    /* NULL: the backend has no change notifications. */
    bp_err (*listener_open)(struct bp_store *s, struct bp_store_listener **out);

    /* db copy (store_copy.c). Both backends: rows in one of the copied tables (a name from
     * store_copy.c's list, never input), and a consistent read of several statements
     * (snapshot_begin/end). The target only (NULL elsewhere): delete every copied row (inside
     * the caller's transaction), insert audit records keeping their seq, and set what identity
     * columns hand out next after that. */
    bp_err (*count_rows)(struct bp_store *s, const char *table, int64_t *out);
    bp_err (*snapshot_begin)(struct bp_store *s);
    void (*snapshot_end)(struct bp_store *s);
    bp_err (*copy_clear)(struct bp_store *s);
    bp_err (*copy_audit)(struct bp_store *s, const struct bp_audit_rec *recs, size_t n);
    bp_err (*copy_done)(struct bp_store *s);

    /* Idempotency-Key answers (store.h, migration 9). */
    const struct bp_store_idem_ops *idem;
    /* The audit trail's chains and checkpoints (store.h, migration 10). */
    const struct bp_store_trail_ops *trail;
};

/* Gives each record without an id a new one ("audit_" + ULID), in place (store_audit.c). */
/* A change row and the smallest seq of the log, read by the same statement (changes_since). */
struct bp_change_row {
    struct bp_change_rec rec;
    int64_t first;
};
/* Moves n rows into a bp_change_rec array (freeing rows) and sets *out_first from them (0 when
 * n is 0). */
struct bp_change_rec *bp_change_rows_take(struct bp_change_row *rows, size_t n, int64_t *out_first);

bp_err bp_store__audit_ids(struct bp_audit_rec *recs, size_t n);

/* OAuth tables (store.h "OAuth"); one entry per bp_store_* function there. */
struct bp_store_oauth_ops {
    bp_err (*client_insert)(struct bp_store *s, const struct bp_client_rec *rec);
    bp_err (*client_get)(struct bp_store *s, const char *id, struct bp_client_rec *out);
    bp_err (*client_list)(struct bp_store *s, struct bp_client_rec **out, size_t *out_n);
    bp_err (*client_revoke)(struct bp_store *s, const char *id, int64_t now);
    bp_err (*client_rotate_secret)(struct bp_store *s, const char *id, const unsigned char digest[32],
                                   int64_t previous_expires_at);
    bp_err (*client_previous_secret)(struct bp_store *s, const char *id, unsigned char digest[32],
                                     int64_t *out_expires_at);
    bp_err (*client_set_expiry)(struct bp_store *s, const char *id, int64_t expires_at);
    bp_err (*client_set_allow_from)(struct bp_store *s, const char *id, const char *allow_from);
    bp_err (*client_set_rate)(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst);
    bp_err (*operator_insert)(struct bp_store *s, const struct bp_operator_rec *rec);
    bp_err (*operator_get)(struct bp_store *s, const char *id, struct bp_operator_rec *out);
    bp_err (*operator_get_by_name)(struct bp_store *s, const char *name, struct bp_operator_rec *out);
    bp_err (*operator_list)(struct bp_store *s, struct bp_operator_rec **out, size_t *out_n);
    bp_err (*operator_set_disabled)(struct bp_store *s, const char *id, bool disabled, int64_t now);
    bp_err (*operator_set_password)(struct bp_store *s, const char *id, const char *hash, int64_t now);
    bp_err (*token_insert)(struct bp_store *s, const struct bp_token_rec *rec);
    bp_err (*token_get_by_digest)(struct bp_store *s, const unsigned char digest[32], struct bp_token_rec *out);
    bp_err (*token_mark_used)(struct bp_store *s, const char *id, int64_t now);
    bp_err (*token_revoke)(struct bp_store *s, const char *id, int64_t now);
    bp_err (*token_revoke_family)(struct bp_store *s, const char *family_id, int64_t now, size_t *out_n);
    bp_err (*token_list_live)(struct bp_store *s, int64_t now, struct bp_live_token **out, size_t *out_n);
    bp_err (*token_list_changed)(struct bp_store *s, int64_t now, const char *token_id, const char *client_id,
                                 struct bp_live_token **out, size_t *out_n);
    bp_err (*purge)(struct bp_store *s, int64_t before);
    bp_err (*code_insert)(struct bp_store *s, const struct bp_code_rec *rec);
    bp_err (*code_take)(struct bp_store *s, const unsigned char digest[32], int64_t now, struct bp_code_rec *out);
    bp_err (*session_insert)(struct bp_store *s, const struct bp_session_rec *rec);
    bp_err (*session_get)(struct bp_store *s, const unsigned char digest[32], struct bp_session_rec *out);
    bp_err (*session_delete)(struct bp_store *s, const unsigned char digest[32]);
    /* Added after the first cut (security review): kept at the end. */
    bp_err (*token_revoke_oldest_access)(struct bp_store *s, const char *client_id, size_t keep, int64_t now,
                                         size_t *out_n);
    bp_err (*operator_revoke_grants)(struct bp_store *s, const char *operator_id, int64_t now);
    bp_err (*session_delete_operator)(struct bp_store *s, const char *operator_id);
    /* Issue 9, db copy's source (NULL where a backend is never one): every row, in insertion
     * order. */
    bp_err (*token_list_all)(struct bp_store *s, struct bp_token_rec **out, size_t *out_n);
    bp_err (*code_list)(struct bp_store *s, struct bp_code_rec **out, size_t *out_n);
    bp_err (*session_list)(struct bp_store *s, struct bp_session_rec **out, size_t *out_n);
    /* Issue 13: operator roles and the admin API's credentials. */
    bp_err (*operator_set_role)(struct bp_store *s, const char *id, const char *role, int64_t now);
    bp_err (*admin_token_insert)(struct bp_store *s, const struct bp_admin_token_rec *rec);
    bp_err (*admin_token_find)(struct bp_store *s, const unsigned char digest[32], int64_t now,
                               struct bp_admin_token_rec *out, struct bp_operator_rec *out_operator);
    bp_err (*admin_token_list)(struct bp_store *s, const char *operator_id, const char *kind,
                               struct bp_admin_token_rec **out, size_t *out_n);
    bp_err (*admin_token_get)(struct bp_store *s, const char *id, struct bp_admin_token_rec *out);
    bp_err (*admin_token_revoke)(struct bp_store *s, const char *id, int64_t now);
    bp_err (*admin_session_end)(struct bp_store *s, const unsigned char digest[32]);
    bp_err (*admin_sessions_delete)(struct bp_store *s, const char *operator_id, int64_t now);
    bp_err (*admin_sessions_trim)(struct bp_store *s, const char *operator_id, int64_t keep);
};

/* Whether a claim may take the entry rec over (store.h): asked to, the same request, not
 * answered, and its lease passed. One rule for the fast path and both backends' transactions. */
bool bp_store__idem_can_take_over(const struct bp_idem_claim *c, const struct bp_idem_rec *rec);

/* Idempotency-Key answers (store.h). */
struct bp_store_idem_ops {
    /* The entry as it stands, without a lock or a transaction (BP_ERR_NOT_FOUND: none). */
    bp_err (*get)(struct bp_store *s, const unsigned char scope[32], struct bp_idem_rec *out);
    /* One statement: a new in-flight entry unless one exists; *out_inserted says which. */
    bp_err (*insert)(struct bp_store *s, const struct bp_idem_claim *c, bool *out_inserted);
    /* The whole claim in one transaction (store.h), for what the two above cannot decide. */
    bp_err (*claim)(struct bp_store *s, const struct bp_idem_claim *c, struct bp_idem_rec *out, bool *out_owned);
    bp_err (*finish)(struct bp_store *s, const unsigned char scope[32], const struct bp_idem_rec *rec);
    bp_err (*release)(struct bp_store *s, const unsigned char scope[32]);
    bp_err (*purge)(struct bp_store *s, int64_t now, int64_t *out_deleted);
};

/* Audit log (store.h "Audit log"). insert gets records that all have an id; fresh[i] (fresh may
 * be NULL: none is) says recs[i] got its id in this call, so it cannot be stored already. */
struct bp_store_audit_ops {
    bp_err (*insert)(struct bp_store *s, struct bp_audit_rec *recs, size_t n, const bool *fresh);
    bp_err (*query)(struct bp_store *s, const struct bp_audit_query *q, struct bp_audit_rec **out, size_t *out_n);
    /* Fill the cursor's position (its query is set); see struct bp_audit_cursor. */
    bp_err (*follow)(struct bp_store *s, struct bp_audit_cursor *c, struct bp_audit_rec **out, size_t *out_n);
    bp_err (*follow_next)(struct bp_store *s, struct bp_audit_cursor *c, size_t max, struct bp_audit_rec **out,
                          size_t *out_n, bool *out_more);
};

/* The trail (store_chain.c drives these; each backend answers them). Those that change rows run
 * inside the caller's transaction. */
struct bp_store_trail_ops {
    /* The chain's head, created empty (n 0, head "") when missing, and locked until the
     * transaction ends (PostgreSQL: the row lock; SQLite: the write lock already held). */
    bp_err (*lock_head)(struct bp_store *s, const char *chain, int64_t *out_n, char head[BP_AUDIT_HEX]);
    bp_err (*set_head)(struct bp_store *s, const char *chain, int64_t n, const char head[BP_AUDIT_HEX],
                       int64_t now_us);
    /* known[i]: a record with recs[i].id is stored already. */
    bp_err (*known)(struct bp_store *s, const struct bp_audit_rec *recs, size_t n, bool *known);
    /* Inserts the records (all new, chain fields set) and sets each one's seq. */
    bp_err (*insert)(struct bp_store *s, struct bp_audit_rec *recs, size_t n);
    bp_err (*heads)(struct bp_store *s, struct bp_audit_head **out, size_t *out_n);
    bp_err (*page)(struct bp_store *s, const char *chain, int64_t after_n, size_t limit, struct bp_audit_rec **out,
                   size_t *out_n);
    bp_err (*start)(struct bp_store *s, const char *chain, int64_t since_us, int64_t *out_n);
    /* The hash of record n of a chain; *found false when it is not there. */
    bp_err (*hash_at)(struct bp_store *s, const char *chain, int64_t n, char hash[BP_AUDIT_HEX], bool *found);
    /* How many records of a chain have chain_n <= upto_n. */
    bp_err (*count_upto)(struct bp_store *s, const char *chain, int64_t upto_n, int64_t *out);
    bp_err (*strays)(struct bp_store *s, struct bp_audit_strays *out);
    /* Deletes a chain's records with chain_n <= upto_n, in short transactions of their own. */
    bp_err (*delete_upto)(struct bp_store *s, const char *chain, int64_t upto_n, int64_t *out_deleted);
    /* Deletes the rows from before schema 10 older than before_us, likewise. */
    bp_err (*delete_legacy)(struct bp_store *s, int64_t before_us, int64_t *out_deleted);
    /* One purge at a time (PostgreSQL: cluster-wide); *out_got false: another runs. */
    bp_err (*purge_lock)(struct bp_store *s, bool *out_got);
    void (*purge_unlock)(struct bp_store *s);
    bp_err (*checkpoint_put)(struct bp_store *s, const struct bp_audit_checkpoint *c);
    bp_err (*checkpoint_list)(struct bp_store *s, int64_t since_us, const char *kind, size_t limit,
                              struct bp_audit_checkpoint **out, size_t *out_n);
    bp_err (*checkpoint_delete)(struct bp_store *s, const char *id);
    /* Optional (NULL: none): new records of one chain appended in one statement after the head
     * this connection last committed for it, which the statement checks is still the head.
     * *out_done false, nothing stored: no such head known, or it moved; take the locking path. */
    bp_err (*append_fast)(struct bp_store *s, const char *chain, struct bp_audit_rec *recs, size_t n, bool *out_done);
    /* Sets the chain fields of stored records (by seq), inside the caller's transaction: for
     * the rows written before schema 10, sealed into a chain by the migration. */
    bp_err (*set_places)(struct bp_store *s, const struct bp_audit_rec *recs, size_t n);
    /* db copy's target only (NULL elsewhere): which rows are from before schema 10. */
    bp_err (*set_unchained)(struct bp_store *s, int64_t max_seq, int64_t n);
};

/* Appends recs (ids set) to their chains and stores them, inside the caller's transaction
 * (store_chain.c): records stored already are skipped (seq 0). Only those not fresh (as the
 * audit ops' insert) are looked up: a batch of new records costs no lookup. */
bp_err bp_store__chain_insert(struct bp_store *s, struct bp_audit_rec *recs, size_t n, const bool *fresh);
/* A hash column read into a record: "" for NULL, "?" for anything that is not 64 characters
 * (a hand-edited value never matches a digest). */
void bp_store__hex_col(char out[BP_AUDIT_HEX], const char *text);
#define BP_STORE_TRAIL_VERSION 10 /* the migration that brought the audit trail */
/* Migration 10's second half, in its transaction (store_chain.c): the audit rows written before
 * it, oldest first, become the chain "legacy", so the trail covers them from now on. */
bp_err bp_store__seal_legacy(struct bp_store *s);
/* Gives the records of chain (those not skip[i]; skip may be NULL) their places after the head
 * (*io_at, io_head: "" when the chain is empty), in order, and moves the head past them. */
void bp_store__chain_link(struct bp_audit_rec *recs, size_t n, const bool *skip, const char *chain, int64_t *io_at,
                          char io_head[BP_AUDIT_HEX]);
/* text itself when it is valid UTF-8, else an allocated copy with each bad byte as '?', put in
 * *fix for the caller to free (store_chain.c). */
const char *bp_store__utf8_fix(const char *text, char **fix);

/* A record handed out by a PostgreSQL cursor whose transaction id is not yet below the
 * low-water mark: it may be read again, and must not be handed out again. */
struct bp_audit_seen {
    int64_t seq;
    int64_t xid;
};

/* The position of a follow (store.h). */
struct bp_audit_cursor {
    struct bp_audit_query q;   /* the filters; its strings are owned copies */
    int64_t after_seq;         /* SQLite: the last seq handed out. PostgreSQL: where the round in
                                  progress has read up to */
    /* PostgreSQL only. A round reads, in pages, every matching record whose inserting transaction
     * is at or above xmin; at its end xmin moves to the oldest transaction that was running when
     * the round began: any record committed later belongs to a transaction at or above it. */
    int64_t xmin;
    int64_t round_xmin;
    bool in_round;
    struct bp_audit_seen *seen; /* sorted by seq up to n_sorted */
    size_t n_seen;
    size_t n_sorted;
    size_t cap_seen;
};

struct bp_store {
    const struct bp_store_ops *ops;
    char *created_path; /* bp_store_created_path; freed by bp_store_close */
};

/* SQLite backend (store_sqlite.c): path is a filesystem path; flags as bp_store_open's. */
/* The SQLite file a DSN names ("sqlite:" and "sqlite://" taken off), NULL for a PostgreSQL one. */
const char *bp_store__sqlite_path(const char *dsn);
bp_err bp_store__sqlite_open(const char *path, unsigned flags, struct bp_store **out, char *err,
                             size_t err_len);

/* Forward-only SQLite migrations (migrations_sqlite.c): entry i is schema version i + 1. */
extern const char *const bp_store__sqlite_migrations[];
extern const size_t bp_store__sqlite_migrations_len;

/* PostgreSQL backend (store_pg_conn.c): dsn is a postgres:// or postgresql:// URI; flags as
 * bp_store_open's (CREATE: an empty database may be migrated into; LAZY: a first connection that
 * fails is tried again at the first call). */
bp_err bp_store__pg_open(const char *dsn, unsigned flags, struct bp_store **out, char *err, size_t err_len);

#endif
