/* OAuth tables on SQLite (schema v2, migrations_sqlite.c): clients, operators, tokens,
 * authorization codes and sign-in sessions.
 *
 * Secrets never reach this file: clients, tokens, codes and sessions are looked up by SHA-256
 * digest, operators carry an Argon2id encoded hash. Every value is a bound parameter.
 *
 * Calls that change several rows (client revocation, code take, purge) run in one transaction of
 * their own, or inside the caller's when one is open (bp_store_begin), so that the token endpoint
 * can group a rotation into one unit. The single-use rules (a refresh token rotated once, a code
 * exchanged once) are compare-and-set UPDATEs on used_at = 0: SQLite serialises writers, so of two
 * concurrent exchanges exactly one sees its UPDATE change a row. */
#include <stdint.h>
#include <string.h>

#include <sqlite3.h>

#include "lib/alloc.h"
#include "store/sqlite-int.h"

#define DIGEST_LEN 32

/* ---- transactions that nest in the caller's ---- */

/* Opens a transaction unless the caller already holds one; *out_own says whether we did. */
static bp_err
tx_begin(struct sqlite_store *st, bool *out_own)
{
    if (!sqlite3_get_autocommit(st->db)) {
        *out_own = false;
        return BP_OK;
    }
    *out_own = true;
    return bp_sq__exec(st, "BEGIN IMMEDIATE");
}

/* Commits on success, rolls back on failure; only a transaction this file opened. */
static bp_err
tx_end(struct sqlite_store *st, bool own, bp_err err)
{
    if (!own) {
        return err;
    }
    if (err == BP_OK) {
        err = bp_sq__exec(st, "COMMIT");
    }
    if (err != BP_OK) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return err;
}

/* ---- column helpers ---- */

static void
col_digest(sqlite3_stmt *stmt, int i, unsigned char out[DIGEST_LEN])
{
    const void *blob = sqlite3_column_blob(stmt, i);

    /* The schema's CHECK keeps digests at 32 bytes; a short read leaves zeros, never a match. */
    memset(out, 0, DIGEST_LEN);
    if (blob != NULL && sqlite3_column_bytes(stmt, i) == DIGEST_LEN) {
        memcpy(out, blob, DIGEST_LEN);
    }
}

static void
bind_digest(sqlite3_stmt *stmt, int i, const unsigned char digest[DIGEST_LEN])
{
    sqlite3_bind_blob(stmt, i, digest, DIGEST_LEN, SQLITE_STATIC);
}

/* Like bp_sq__get_by_id, keyed by a digest. */
static bp_err
get_by_digest(struct sqlite_store *st, const char *sql, const unsigned char digest[DIGEST_LEN],
              void (*read)(sqlite3_stmt *, void *), void *out)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, sql, &stmt);

    if (err != BP_OK) {
        return err;
    }
    bind_digest(stmt, 1, digest);
    return bp_sq__get_one(st, stmt, read, out);
}

/* Runs a prepared statement whose result is a list and finalizes it; *out_recs gets the array. */
static bp_err
list_all(struct sqlite_store *st, sqlite3_stmt *stmt, size_t elem_size, void (*read)(sqlite3_stmt *, void *),
         void (*free_all)(void *, size_t), void **out_recs, size_t *out_n)
{
    bp_err err = bp_sq__collect(st, stmt, elem_size, read, free_all, out_recs, out_n);

    sqlite3_finalize(stmt);
    return err;
}

/* ---- clients ---- */

#define CLIENT_COLS                                                                                          \
    "id, name, secret_digest, scopes, redirect_uris, grant_types, instances, created_at,"                    \
    " expires_at, revoked, revoked_at, allow_from, rate_limit, rate_burst"

/* Redirect URIs are stored newline-separated: the CLI admits only URI characters, so a URI can
 * hold neither a newline nor be empty. */
static bp_err
join_uris(const struct bp_client_rec *rec, char **out)
{
    size_t total = 1;
    size_t off = 0;
    char *text;

    for (size_t i = 0; i < rec->n_redirect_uris; i++) {
        const char *u = rec->redirect_uris[i];
        if (u == NULL || u[0] == '\0' || strchr(u, '\n') != NULL) {
            return BP_ERR_INVALID;
        }
        total += strlen(u) + 1;
    }
    text = bp_malloc(total);
    for (size_t i = 0; i < rec->n_redirect_uris; i++) {
        size_t n = strlen(rec->redirect_uris[i]);
        if (i > 0) {
            text[off++] = '\n';
        }
        memcpy(text + off, rec->redirect_uris[i], n);
        off += n;
    }
    text[off] = '\0';
    *out = text;
    return BP_OK;
}

static void
split_uris(const char *text, struct bp_client_rec *out)
{
    size_t n = 0;
    const char *p = text;

    out->redirect_uris = NULL;
    out->n_redirect_uris = 0;
    if (text == NULL || text[0] == '\0') {
        return;
    }
    for (const char *q = text; *q != '\0'; q++) {
        n += *q == '\n' ? 1 : 0;
    }
    n++;
    out->redirect_uris = bp_calloc(n, sizeof(*out->redirect_uris));
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        out->redirect_uris[i] = bp_strndup(p, len);
        p += len + (end != NULL ? 1 : 0);
    }
    out->n_redirect_uris = n;
}

static void
read_client(sqlite3_stmt *stmt, void *vout)
{
    struct bp_client_rec *out = vout;
    const unsigned char *uris;

    memset(out, 0, sizeof(*out));
    out->id = bp_sq__col_dup(stmt, 0);
    out->name = bp_sq__col_dup(stmt, 1);
    col_digest(stmt, 2, out->secret_digest);
    out->scopes = bp_sq__col_dup(stmt, 3);
    uris = sqlite3_column_text(stmt, 4);
    split_uris((const char *)uris, out);
    out->grant_types = bp_sq__col_dup(stmt, 5);
    out->instances = bp_sq__col_dup(stmt, 6);
    out->created_at = sqlite3_column_int64(stmt, 7);
    out->expires_at = sqlite3_column_int64(stmt, 8);
    out->revoked = sqlite3_column_int(stmt, 9) != 0;
    out->revoked_at = sqlite3_column_int64(stmt, 10);
    out->allow_from = bp_sq__col_dup(stmt, 11);
    out->rate_limit = bp_sq__col_dup(stmt, 12);
    out->rate_burst = sqlite3_column_int64(stmt, 13);
}

static void
free_clients_v(void *recs, size_t n)
{
    bp_client_recs_free(recs, n);
}

static bp_err
sq_client_insert(struct bp_store *s, const struct bp_client_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    char *uris = NULL;
    bp_err err = join_uris(rec, &uris);

    if (err != BP_OK) {
        return err;
    }
    err = bp_sq__prepare(st, "INSERT INTO oauth_clients (" CLIENT_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         &stmt);
    if (err != BP_OK) {
        bp_free(uris);
        return err;
    }
    bp_sq__bind_text(stmt, 1, rec->id);
    bp_sq__bind_text(stmt, 2, rec->name);
    bind_digest(stmt, 3, rec->secret_digest);
    bp_sq__bind_text(stmt, 4, rec->scopes);
    bp_sq__bind_text(stmt, 5, uris);
    bp_sq__bind_text(stmt, 6, rec->grant_types);
    bp_sq__bind_text(stmt, 7, rec->instances);
    sqlite3_bind_int64(stmt, 8, rec->created_at);
    sqlite3_bind_int64(stmt, 9, rec->expires_at);
    sqlite3_bind_int(stmt, 10, rec->revoked ? 1 : 0);
    sqlite3_bind_int64(stmt, 11, rec->revoked_at);
    bp_sq__bind_text(stmt, 12, rec->allow_from);
    bp_sq__bind_text(stmt, 13, rec->rate_limit);
    sqlite3_bind_int64(stmt, 14, rec->rate_burst);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    bp_free(uris);
    return err;
}

static bp_err
sq_client_get(struct bp_store *s, const char *id, struct bp_client_rec *out)
{
    return bp_sq__get_by_id(bp_sq__of(s), "SELECT " CLIENT_COLS " FROM oauth_clients WHERE id = ?", id,
                            read_client, out);
}

static bp_err
sq_client_list(struct bp_store *s, struct bp_client_rec **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
    bp_err err =
        bp_sq__prepare(st, "SELECT " CLIENT_COLS " FROM oauth_clients ORDER BY created_at, id", &stmt);

    if (err != BP_OK) {
        return err;
    }
    err = list_all(st, stmt, sizeof(struct bp_client_rec), read_client, free_clients_v, &recs, out_n);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

/* Revokes every still-active token of the client (any kind, any family). */
static bp_err
revoke_client_tokens(struct sqlite_store *st, const char *id, int64_t now)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "UPDATE oauth_tokens SET revoked = 1, revoked_at = ?"
                                " WHERE client_id = ? AND revoked = 0",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, now);
    bp_sq__bind_text(stmt, 2, id);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_client_rotate_secret(struct bp_store *s, const char *id, const unsigned char digest[DIGEST_LEN],
                        int64_t previous_expires_at)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "UPDATE oauth_clients SET previous_secret_digest = secret_digest,"
                                " previous_secret_expires_at = ?, secret_digest = ? WHERE id = ?",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, previous_expires_at);
    bind_digest(stmt, 2, digest);
    bp_sq__bind_text(stmt, 3, id);
    return bp_sq__finish_change(st, stmt);
}

struct previous_secret {
    unsigned char *digest;
    int64_t expires_at;
};

static void
read_previous(sqlite3_stmt *stmt, void *out_v)
{
    struct previous_secret *out = out_v;

    col_digest(stmt, 0, out->digest);
    out->expires_at = sqlite3_column_int64(stmt, 1);
}

static bp_err
sq_client_previous_secret(struct bp_store *s, const char *id, unsigned char digest[DIGEST_LEN], int64_t *out_expires_at)
{
    struct previous_secret p = {digest, 0};
    bp_err err = bp_sq__get_by_id(bp_sq__of(s),
                                  "SELECT previous_secret_digest, previous_secret_expires_at FROM oauth_clients"
                                  " WHERE id = ?",
                                  id, read_previous, &p);

    *out_expires_at = p.expires_at;
    return err;
}

static bp_err
sq_client_revoke(struct bp_store *s, const char *id, int64_t now)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    int changes = 0;
    bool own = false;
    bp_err err = tx_begin(st, &own);

    if (err != BP_OK) {
        return err;
    }
    /* The first revocation time is the one on record. */
    err = bp_sq__prepare(
        st, "UPDATE oauth_clients SET revoked = 1, revoked_at = ? WHERE id = ? AND revoked = 0", &stmt);
    if (err != BP_OK) {
        goto done;
    }
    sqlite3_bind_int64(stmt, 1, now);
    bp_sq__bind_text(stmt, 2, id);
    err = bp_sq__step_done(st, stmt, &changes);
    if (err == BP_OK && changes == 0) {
        err = bp_sq__row_exists(st, "SELECT 1 FROM oauth_clients WHERE id = ?", id);
    }
    /* Also when the client was revoked before: a token issued in a race with that revocation
     * must not outlive it. */
    if (err == BP_OK) {
        err = revoke_client_tokens(st, id, now);
    }

done:
    sqlite3_finalize(stmt);
    return tx_end(st, own, err);
}

static bp_err
sq_client_set_expiry(struct bp_store *s, const char *id, int64_t expires_at)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "UPDATE oauth_clients SET expires_at = ? WHERE id = ?", &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, expires_at);
    bp_sq__bind_text(stmt, 2, id);
    return bp_sq__finish_change(st, stmt);
}

static bp_err
sq_client_set_allow_from(struct bp_store *s, const char *id, const char *allow_from)
{
    return bp_sq__set_allow_from(bp_sq__of(s), true, id, allow_from);
}

static bp_err
sq_client_set_rate(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst)
{
    return bp_sq__set_rate(bp_sq__of(s), true, id, rate_limit, burst);
}

/* ---- operators ---- */

#define OPERATOR_COLS "id, name, password_hash, disabled, created_at, updated_at, role"

static void
read_operator(sqlite3_stmt *stmt, void *vout)
{
    struct bp_operator_rec *out = vout;

    memset(out, 0, sizeof(*out));
    out->id = bp_sq__col_dup(stmt, 0);
    out->name = bp_sq__col_dup(stmt, 1);
    out->password_hash = bp_sq__col_dup(stmt, 2);
    out->disabled = sqlite3_column_int(stmt, 3) != 0;
    out->created_at = sqlite3_column_int64(stmt, 4);
    out->updated_at = sqlite3_column_int64(stmt, 5);
    out->role = bp_sq__col_dup(stmt, 6);
}

static void
free_operators_v(void *recs, size_t n)
{
    bp_operator_recs_free(recs, n);
}

static bp_err
sq_operator_insert(struct bp_store *s, const struct bp_operator_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err =
        bp_sq__prepare(st, "INSERT INTO oauth_operators (" OPERATOR_COLS ") VALUES (?,?,?,?,?,?,?)", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, rec->id);
    bp_sq__bind_text(stmt, 2, rec->name);
    bp_sq__bind_text(stmt, 3, rec->password_hash);
    sqlite3_bind_int(stmt, 4, rec->disabled ? 1 : 0);
    sqlite3_bind_int64(stmt, 5, rec->created_at);
    sqlite3_bind_int64(stmt, 6, rec->updated_at);
    bp_sq__bind_text(stmt, 7, rec->role != NULL ? rec->role : "approver");
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_operator_get(struct bp_store *s, const char *id, struct bp_operator_rec *out)
{
    return bp_sq__get_by_id(bp_sq__of(s), "SELECT " OPERATOR_COLS " FROM oauth_operators WHERE id = ?", id,
                            read_operator, out);
}

static bp_err
sq_operator_get_by_name(struct bp_store *s, const char *name, struct bp_operator_rec *out)
{
    return bp_sq__get_by_id(bp_sq__of(s), "SELECT " OPERATOR_COLS " FROM oauth_operators WHERE name = ?",
                            name, read_operator, out);
}

static bp_err
sq_operator_list(struct bp_store *s, struct bp_operator_rec **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
    bp_err err =
        bp_sq__prepare(st, "SELECT " OPERATOR_COLS " FROM oauth_operators ORDER BY created_at, id", &stmt);

    if (err != BP_OK) {
        return err;
    }
    err = list_all(st, stmt, sizeof(struct bp_operator_rec), read_operator, free_operators_v, &recs, out_n);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
sq_operator_set_disabled(struct bp_store *s, const char *id, bool disabled, int64_t now)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err =
        bp_sq__prepare(st, "UPDATE oauth_operators SET disabled = ?, updated_at = ? WHERE id = ?", &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int(stmt, 1, disabled ? 1 : 0);
    sqlite3_bind_int64(stmt, 2, now);
    bp_sq__bind_text(stmt, 3, id);
    return bp_sq__finish_change(st, stmt);
}

static bp_err
sq_operator_set_password(struct bp_store *s, const char *id, const char *hash, int64_t now)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(
        st, "UPDATE oauth_operators SET password_hash = ?, updated_at = ? WHERE id = ?", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, hash);
    sqlite3_bind_int64(stmt, 2, now);
    bp_sq__bind_text(stmt, 3, id);
    return bp_sq__finish_change(st, stmt);
}

static bp_err
sq_operator_set_role(struct bp_store *s, const char *id, const char *role, int64_t now)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "UPDATE oauth_operators SET role = ?, updated_at = ? WHERE id = ?", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, role);
    sqlite3_bind_int64(stmt, 2, now);
    bp_sq__bind_text(stmt, 3, id);
    return bp_sq__finish_change(st, stmt);
}

/* ---- admin API credentials ---- */

#define ADMIN_TOKEN_COLS "id, operator_id, kind, digest, prefix, name, created_at, expires_at, revoked_at"

static void
read_admin_token(sqlite3_stmt *stmt, void *vout)
{
    struct bp_admin_token_rec *out = vout;

    memset(out, 0, sizeof(*out));
    out->id = bp_sq__col_dup(stmt, 0);
    out->operator_id = bp_sq__col_dup(stmt, 1);
    out->kind = bp_sq__col_dup(stmt, 2);
    col_digest(stmt, 3, out->digest);
    out->prefix = bp_sq__col_dup(stmt, 4);
    out->name = bp_sq__col_dup(stmt, 5);
    out->created_at = sqlite3_column_int64(stmt, 6);
    out->expires_at = sqlite3_column_int64(stmt, 7);
    out->revoked_at = sqlite3_column_int64(stmt, 8);
}

static void
free_admin_tokens_v(void *recs, size_t n)
{
    bp_admin_token_recs_free(recs, n);
}

static bp_err
sq_admin_token_insert(struct bp_store *s, const struct bp_admin_token_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err =
        bp_sq__prepare(st, "INSERT INTO admin_tokens (" ADMIN_TOKEN_COLS ") VALUES (?,?,?,?,?,?,?,?,?)", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, rec->id);
    bp_sq__bind_text(stmt, 2, rec->operator_id);
    bp_sq__bind_text(stmt, 3, rec->kind);
    bind_digest(stmt, 4, rec->digest);
    bp_sq__bind_text(stmt, 5, rec->prefix);
    bp_sq__bind_text(stmt, 6, rec->name);
    sqlite3_bind_int64(stmt, 7, rec->created_at);
    sqlite3_bind_int64(stmt, 8, rec->expires_at);
    sqlite3_bind_int64(stmt, 9, rec->revoked_at);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

/* The credential and its operator in one row: the token's columns, then the operator's. */
struct token_and_operator {
    struct bp_admin_token_rec *token;
    struct bp_operator_rec *op;
};

static void
read_token_and_operator(sqlite3_stmt *stmt, void *vout)
{
    struct token_and_operator *out = vout;
    struct bp_operator_rec *op = out->op;

    read_admin_token(stmt, out->token);
    memset(op, 0, sizeof(*op));
    op->id = bp_sq__col_dup(stmt, 9);
    op->name = bp_sq__col_dup(stmt, 10);
    op->disabled = sqlite3_column_int(stmt, 11) != 0;
    op->role = bp_sq__col_dup(stmt, 12);
    op->created_at = sqlite3_column_int64(stmt, 13);
    op->updated_at = sqlite3_column_int64(stmt, 14);
}

static bp_err
sq_admin_token_find(struct bp_store *s, const unsigned char digest[DIGEST_LEN], int64_t now,
                    struct bp_admin_token_rec *out, struct bp_operator_rec *out_operator)
{
    struct sqlite_store *st = bp_sq__of(s);
    struct token_and_operator both = {out, out_operator};
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(
        st,
        "SELECT t.id, t.operator_id, t.kind, t.digest, t.prefix, t.name, t.created_at, t.expires_at,"
        " t.revoked_at, o.id, o.name, o.disabled, o.role, o.created_at, o.updated_at"
        " FROM admin_tokens t JOIN oauth_operators o ON o.id = t.operator_id"
        " WHERE t.digest = ? AND t.revoked_at = 0 AND t.expires_at > ?",
        &stmt);

    if (err != BP_OK) {
        return err;
    }
    bind_digest(stmt, 1, digest);
    sqlite3_bind_int64(stmt, 2, now);
    return bp_sq__get_one(st, stmt, read_token_and_operator, &both);
}

static bp_err
sq_admin_token_list(struct bp_store *s, const char *operator_id, const char *kind, struct bp_admin_token_rec **out,
                    size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
    bp_err err = bp_sq__prepare(st,
                                "SELECT " ADMIN_TOKEN_COLS " FROM admin_tokens WHERE (?2 IS NULL OR kind = ?2)"
                                " AND (?1 IS NULL OR operator_id = ?1) ORDER BY created_at DESC, id DESC",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, operator_id);
    bp_sq__bind_text(stmt, 2, kind);
    err = list_all(st, stmt, sizeof(struct bp_admin_token_rec), read_admin_token, free_admin_tokens_v, &recs, out_n);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
sq_admin_token_get(struct bp_store *s, const char *id, struct bp_admin_token_rec *out)
{
    return bp_sq__get_by_id(bp_sq__of(s), "SELECT " ADMIN_TOKEN_COLS " FROM admin_tokens WHERE id = ?", id,
                            read_admin_token, out);
}

static bp_err
sq_admin_token_revoke(struct bp_store *s, const char *id, int64_t now)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    /* Revoked already is not an error (the first time is kept); no such token is. */
    bp_err err = bp_sq__prepare(st,
                                "UPDATE admin_tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN ?"
                                " ELSE revoked_at END WHERE id = ?",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, now);
    bp_sq__bind_text(stmt, 2, id);
    return bp_sq__finish_change(st, stmt);
}

static bp_err
sq_admin_session_end(struct bp_store *s, const unsigned char digest[DIGEST_LEN])
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "DELETE FROM admin_tokens WHERE digest = ? AND kind = 'session'", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bind_digest(stmt, 1, digest);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_admin_sessions_delete(struct bp_store *s, const char *operator_id, int64_t now)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "DELETE FROM admin_tokens WHERE kind = 'session'"
                                " AND (operator_id = ?1 OR (?1 IS NULL AND expires_at <= ?2))",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, operator_id);
    sqlite3_bind_int64(stmt, 2, now);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

/* Ids are ULIDs: newest last. */
static bp_err
sq_admin_sessions_trim(struct bp_store *s, const char *operator_id, int64_t keep)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st,
                                "DELETE FROM admin_tokens WHERE kind = 'session' AND operator_id = ?1 AND id NOT IN"
                                " (SELECT id FROM admin_tokens WHERE kind = 'session' AND operator_id = ?1"
                                " ORDER BY id DESC LIMIT ?2)",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, operator_id);
    sqlite3_bind_int64(stmt, 2, keep);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

/* Runs constant SQL with one text parameter (an id) and no result rows. */
static bp_err
exec_with_id(struct sqlite_store *st, const char *sql, const char *id, int64_t now)
{
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, sql, &stmt);

    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, id);
    if (sqlite3_bind_parameter_count(stmt) >= 2) {
        sqlite3_bind_int64(stmt, 2, now);
    }
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_operator_revoke_grants(struct bp_store *s, const char *id, int64_t now)
{
    /* Whole families: every token of a family carries the operator who approved its code.
     * Used codes stay, so presenting one again is still recognised as reuse. */
    static const char *const sql[] = {
        ("UPDATE oauth_tokens SET revoked = 1, revoked_at = ?2"
         " WHERE revoked = 0 AND family_id IN (SELECT family_id FROM oauth_tokens WHERE operator_id = ?1)"),
        "DELETE FROM oauth_codes WHERE operator_id = ?1 AND used_at = 0",
        "DELETE FROM oauth_sessions WHERE operator_id = ?1",
    };
    struct sqlite_store *st = bp_sq__of(s);
    bool own = false;
    bp_err err = tx_begin(st, &own);

    for (size_t i = 0; err == BP_OK && i < sizeof(sql) / sizeof(sql[0]); i++) {
        err = exec_with_id(st, sql[i], id, now);
    }
    return tx_end(st, own, err);
}

static bp_err
sq_session_delete_operator(struct bp_store *s, const char *operator_id)
{
    return exec_with_id(bp_sq__of(s), "DELETE FROM oauth_sessions WHERE operator_id = ?1", operator_id, 0);
}

/* ---- tokens ---- */

#define TOKEN_COLS                                                                                           \
    "id, kind, digest, client_id, family_id, operator_id, scopes, created_at, expires_at, used_at,"          \
    " revoked, revoked_at"

static void
read_token(sqlite3_stmt *stmt, void *vout)
{
    struct bp_token_rec *out = vout;

    memset(out, 0, sizeof(*out));
    out->id = bp_sq__col_dup(stmt, 0);
    out->kind = sqlite3_column_int(stmt, 1) == BP_TOKEN_REFRESH ? BP_TOKEN_REFRESH : BP_TOKEN_ACCESS;
    col_digest(stmt, 2, out->digest);
    out->client_id = bp_sq__col_dup(stmt, 3);
    out->family_id = bp_sq__col_dup(stmt, 4);
    out->operator_id = bp_sq__col_dup(stmt, 5);
    out->scopes = bp_sq__col_dup(stmt, 6);
    out->created_at = sqlite3_column_int64(stmt, 7);
    out->expires_at = sqlite3_column_int64(stmt, 8);
    out->used_at = sqlite3_column_int64(stmt, 9);
    out->revoked = sqlite3_column_int(stmt, 10) != 0;
    out->revoked_at = sqlite3_column_int64(stmt, 11);
}

static bp_err
sq_token_insert(struct bp_store *s, const struct bp_token_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err;

    if (rec->kind != BP_TOKEN_ACCESS && rec->kind != BP_TOKEN_REFRESH) {
        return BP_ERR_INVALID;
    }
    err = bp_sq__prepare(st, "INSERT INTO oauth_tokens (" TOKEN_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                         &stmt);
    if (err != BP_OK) {
        return err;
    }
    bp_sq__bind_text(stmt, 1, rec->id);
    sqlite3_bind_int(stmt, 2, (int)rec->kind);
    bind_digest(stmt, 3, rec->digest);
    bp_sq__bind_text(stmt, 4, rec->client_id);
    bp_sq__bind_text(stmt, 5, rec->family_id);
    bp_sq__bind_text(stmt, 6, rec->operator_id);
    bp_sq__bind_text(stmt, 7, rec->scopes);
    sqlite3_bind_int64(stmt, 8, rec->created_at);
    sqlite3_bind_int64(stmt, 9, rec->expires_at);
    sqlite3_bind_int64(stmt, 10, rec->used_at);
    sqlite3_bind_int(stmt, 11, rec->revoked ? 1 : 0);
    sqlite3_bind_int64(stmt, 12, rec->revoked_at);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_token_get_by_digest(struct bp_store *s, const unsigned char digest[32], struct bp_token_rec *out)
{
    return get_by_digest(bp_sq__of(s), "SELECT " TOKEN_COLS " FROM oauth_tokens WHERE digest = ?", digest,
                         read_token, out);
}

/* used_at = 0 means "not yet", so a use is recorded as at least 1 even with a clock at 0. */
static int64_t
use_time(int64_t now)
{
    return now > 0 ? now : 1;
}

static bp_err
sq_token_mark_used(struct bp_store *s, const char *id, int64_t now)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    int changes = 0;
    /* revoked = 0 too: a refresh that read the token before a concurrent reuse revoked its
     * family must not rotate it into a fresh, unrevoked pair. */
    bp_err err = bp_sq__prepare(
        st, "UPDATE oauth_tokens SET used_at = ? WHERE id = ? AND used_at = 0 AND revoked = 0", &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, use_time(now));
    bp_sq__bind_text(stmt, 2, id);
    err = bp_sq__step_done(st, stmt, &changes);
    sqlite3_finalize(stmt);
    if (err == BP_OK && changes == 0) {
        /* Lost the race, an old token presented again, or a revoked one: all count as reuse. */
        err = bp_sq__row_exists(st, "SELECT 1 FROM oauth_tokens WHERE id = ?", id);
        if (err == BP_OK) {
            err = BP_ERR_EXISTS;
        }
    }
    return err;
}

static bp_err
sq_token_revoke(struct bp_store *s, const char *id, int64_t now)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    int changes = 0;
    bp_err err = bp_sq__prepare(
        st, "UPDATE oauth_tokens SET revoked = 1, revoked_at = ? WHERE id = ? AND revoked = 0", &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, now);
    bp_sq__bind_text(stmt, 2, id);
    err = bp_sq__step_done(st, stmt, &changes);
    sqlite3_finalize(stmt);
    if (err == BP_OK && changes == 0) {
        err = bp_sq__row_exists(st, "SELECT 1 FROM oauth_tokens WHERE id = ?", id);
    }
    return err;
}

static bp_err
sq_token_revoke_family(struct bp_store *s, const char *family_id, int64_t now, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    int changes = 0;
    bp_err err = bp_sq__prepare(st,
                                "UPDATE oauth_tokens SET revoked = 1, revoked_at = ?"
                                " WHERE family_id = ? AND revoked = 0",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, now);
    bp_sq__bind_text(stmt, 2, family_id);
    err = bp_sq__step_done(st, stmt, &changes);
    sqlite3_finalize(stmt);
    if (err == BP_OK && out_n != NULL) {
        *out_n = (size_t)changes;
    }
    return err;
}

static bp_err
sq_token_revoke_oldest_access(struct bp_store *s, const char *client_id, size_t keep, int64_t now, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    int changes = 0;
    /* rowid follows insertion order (ids are ULIDs, whose order within one millisecond is
     * random), so "oldest" is exact even for tokens issued in the same second. */
    bp_err err = bp_sq__prepare(st,
                                "UPDATE oauth_tokens SET revoked = 1, revoked_at = ?1"
                                " WHERE rowid IN (SELECT rowid FROM oauth_tokens"
                                "                  WHERE client_id = ?2 AND kind = ?3 AND revoked = 0"
                                "                    AND (expires_at = 0 OR expires_at > ?1)"
                                "                  ORDER BY rowid DESC LIMIT -1 OFFSET ?4)",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int64(stmt, 1, now);
    bp_sq__bind_text(stmt, 2, client_id);
    sqlite3_bind_int(stmt, 3, BP_TOKEN_ACCESS);
    sqlite3_bind_int64(stmt, 4, keep > INT64_MAX ? INT64_MAX : (int64_t)keep);
    err = bp_sq__step_done(st, stmt, &changes);
    sqlite3_finalize(stmt);
    if (err == BP_OK && out_n != NULL) {
        *out_n = (size_t)changes;
    }
    return err;
}

static void
read_live(sqlite3_stmt *stmt, void *vout)
{
    struct bp_live_token *out = vout;
    int64_t token_exp = sqlite3_column_int64(stmt, 9);
    int64_t client_exp = sqlite3_column_int64(stmt, 10);

    memset(out, 0, sizeof(*out));
    out->id = bp_sq__col_dup(stmt, 0);
    col_digest(stmt, 1, out->digest);
    out->client_id = bp_sq__col_dup(stmt, 2);
    out->client_name = bp_sq__col_dup(stmt, 3);
    out->scopes = bp_sq__col_dup(stmt, 4);
    out->instances = bp_sq__col_dup(stmt, 5);
    out->allow_from = bp_sq__col_dup(stmt, 6);
    out->rate_limit = bp_sq__col_dup(stmt, 7);
    out->rate_burst = sqlite3_column_int64(stmt, 8);
    out->live = sqlite3_column_count(stmt) > 11 ? sqlite3_column_int(stmt, 11) != 0 : true;
    /* 0 = never on both sides: the earlier of the two real expiries wins. */
    if (token_exp == 0) {
        out->expires_at = client_exp;
    } else if (client_exp == 0) {
        out->expires_at = token_exp;
    } else {
        out->expires_at = token_exp < client_exp ? token_exp : client_exp;
    }
}

static void
free_live_v(void *recs, size_t n)
{
    bp_live_tokens_free(recs, n);
}

static bp_err
sq_token_list_live(struct bp_store *s, int64_t now, struct bp_live_token **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
    /* Expired means expires_at <= now, as everywhere else (key status, token checks). */
    bp_err err = bp_sq__prepare(st,
                                "SELECT t.id, t.digest, t.client_id, c.name, t.scopes, c.instances, c.allow_from, c.rate_limit, c.rate_burst,"
                                "       t.expires_at, c.expires_at"
                                "  FROM oauth_tokens t JOIN oauth_clients c ON c.id = t.client_id"
                                " WHERE t.kind = ?1 AND t.revoked = 0"
                                "   AND (t.expires_at = 0 OR t.expires_at > ?2)"
                                "   AND c.revoked = 0 AND (c.expires_at = 0 OR c.expires_at > ?2)"
                                " ORDER BY t.created_at, t.id",
                                &stmt);

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int(stmt, 1, BP_TOKEN_ACCESS);
    sqlite3_bind_int64(stmt, 2, now);
    err = list_all(st, stmt, sizeof(struct bp_live_token), read_live, free_live_v, &recs, out_n);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
sq_token_list_changed(struct bp_store *s, int64_t now, const char *token_id, const char *client_id,
                      struct bp_live_token **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    void *recs = NULL;
#define CHANGED_COLS                                                                                           \
    "SELECT t.id, t.digest, t.client_id, c.name, t.scopes, c.instances, c.allow_from, c.rate_limit, c.rate_burst, t.expires_at, c.expires_at,"          \
    "       t.revoked = 0 AND (t.expires_at = 0 OR t.expires_at > ?2)"                                         \
    "       AND c.revoked = 0 AND (c.expires_at = 0 OR c.expires_at > ?2)"                                      \
    "  FROM oauth_tokens t JOIN oauth_clients c ON c.id = t.client_id"
    /* Two statements rather than an OR, so that each uses its index (primary key, client). */
    bp_err err = bp_sq__prepare(st,
                                token_id != NULL ? CHANGED_COLS " WHERE t.kind = ?1 AND t.id = ?3"
                                                 : CHANGED_COLS " WHERE t.kind = ?1 AND t.client_id = ?3"
                                                                "   AND t.revoked = 0"
                                                                "   AND (t.expires_at = 0 OR t.expires_at > ?2)",
                                &stmt);
#undef CHANGED_COLS

    if (err != BP_OK) {
        return err;
    }
    sqlite3_bind_int(stmt, 1, BP_TOKEN_ACCESS);
    sqlite3_bind_int64(stmt, 2, now);
    bp_sq__bind_text(stmt, 3, token_id != NULL ? token_id : client_id);
    err = list_all(st, stmt, sizeof(struct bp_live_token), read_live, free_live_v, &recs, out_n);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
sq_purge(struct bp_store *s, int64_t before)
{
    static const char *const sql[] = {
        /* expires_at 0 = never: such tokens are kept. */
        "DELETE FROM oauth_tokens WHERE expires_at != 0 AND expires_at < ?",
        "DELETE FROM oauth_codes WHERE expires_at < ?",
        "DELETE FROM oauth_sessions WHERE expires_at < ?",
    };
    struct sqlite_store *st = bp_sq__of(s);
    bool own = false;
    bp_err err = tx_begin(st, &own);

    for (size_t i = 0; err == BP_OK && i < sizeof(sql) / sizeof(sql[0]); i++) {
        sqlite3_stmt *stmt = NULL;
        err = bp_sq__prepare(st, sql[i], &stmt);
        if (err == BP_OK) {
            sqlite3_bind_int64(stmt, 1, before);
            err = bp_sq__step_done(st, stmt, NULL);
        }
        sqlite3_finalize(stmt);
    }
    return tx_end(st, own, err);
}

/* ---- authorization codes ---- */

#define CODE_COLS                                                                                            \
    "digest, client_id, operator_id, redirect_uri, scopes, code_challenge, family_id, created_at,"           \
    " expires_at, used_at"

static void
read_code(sqlite3_stmt *stmt, void *vout)
{
    struct bp_code_rec *out = vout;

    memset(out, 0, sizeof(*out));
    col_digest(stmt, 0, out->digest);
    out->client_id = bp_sq__col_dup(stmt, 1);
    out->operator_id = bp_sq__col_dup(stmt, 2);
    out->redirect_uri = bp_sq__col_dup(stmt, 3);
    out->scopes = bp_sq__col_dup(stmt, 4);
    out->code_challenge = bp_sq__col_dup(stmt, 5);
    out->family_id = bp_sq__col_dup(stmt, 6);
    out->created_at = sqlite3_column_int64(stmt, 7);
    out->expires_at = sqlite3_column_int64(stmt, 8);
    out->used_at = sqlite3_column_int64(stmt, 9);
}

static bp_err
sq_code_insert(struct bp_store *s, const struct bp_code_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err =
        bp_sq__prepare(st, "INSERT INTO oauth_codes (" CODE_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?)", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bind_digest(stmt, 1, rec->digest);
    bp_sq__bind_text(stmt, 2, rec->client_id);
    bp_sq__bind_text(stmt, 3, rec->operator_id);
    bp_sq__bind_text(stmt, 4, rec->redirect_uri);
    bp_sq__bind_text(stmt, 5, rec->scopes);
    bp_sq__bind_text(stmt, 6, rec->code_challenge);
    bp_sq__bind_text(stmt, 7, rec->family_id);
    sqlite3_bind_int64(stmt, 8, rec->created_at);
    sqlite3_bind_int64(stmt, 9, rec->expires_at);
    sqlite3_bind_int64(stmt, 10, rec->used_at);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_code_take(struct bp_store *s, const unsigned char digest[32], int64_t now, struct bp_code_rec *out)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    struct bp_code_rec rec = {0};
    int changes = 0;
    bool own = false;
    bp_err err = tx_begin(st, &own);

    if (err != BP_OK) {
        return err;
    }
    /* The compare-and-set comes first: whoever changes the row owns the code. */
    err = bp_sq__prepare(st, "UPDATE oauth_codes SET used_at = ? WHERE digest = ? AND used_at = 0", &stmt);
    if (err != BP_OK) {
        goto done;
    }
    sqlite3_bind_int64(stmt, 1, use_time(now));
    bind_digest(stmt, 2, digest);
    err = bp_sq__step_done(st, stmt, &changes);
    if (err == BP_OK) {
        err = get_by_digest(st, "SELECT " CODE_COLS " FROM oauth_codes WHERE digest = ?", digest, read_code,
                            &rec);
    }

done:
    sqlite3_finalize(stmt);
    err = tx_end(st, own, err);
    if (err != BP_OK) {
        bp_code_rec_cleanup(&rec);
        return err;
    }
    *out = rec;
    /* A second use is an answer, not a failure: out is filled so the caller can revoke the
     * family issued with the code. */
    return changes == 0 ? BP_ERR_EXISTS : BP_OK;
}

/* ---- sign-in sessions ---- */

#define SESSION_COLS "digest, csrf_digest, operator_id, created_at, expires_at"

static void
read_session(sqlite3_stmt *stmt, void *vout)
{
    struct bp_session_rec *out = vout;

    memset(out, 0, sizeof(*out));
    col_digest(stmt, 0, out->digest);
    col_digest(stmt, 1, out->csrf_digest);
    out->operator_id = bp_sq__col_dup(stmt, 2);
    out->created_at = sqlite3_column_int64(stmt, 3);
    out->expires_at = sqlite3_column_int64(stmt, 4);
}

static bp_err
sq_session_insert(struct bp_store *s, const struct bp_session_rec *rec)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err =
        bp_sq__prepare(st, "INSERT INTO oauth_sessions (" SESSION_COLS ") VALUES (?,?,?,?,?)", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bind_digest(stmt, 1, rec->digest);
    bind_digest(stmt, 2, rec->csrf_digest);
    bp_sq__bind_text(stmt, 3, rec->operator_id);
    sqlite3_bind_int64(stmt, 4, rec->created_at);
    sqlite3_bind_int64(stmt, 5, rec->expires_at);
    err = bp_sq__step_done(st, stmt, NULL);
    sqlite3_finalize(stmt);
    return err;
}

static bp_err
sq_session_get(struct bp_store *s, const unsigned char digest[32], struct bp_session_rec *out)
{
    return get_by_digest(bp_sq__of(s), "SELECT " SESSION_COLS " FROM oauth_sessions WHERE digest = ?", digest,
                         read_session, out);
}

static bp_err
sq_session_delete(struct bp_store *s, const unsigned char digest[32])
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, "DELETE FROM oauth_sessions WHERE digest = ?", &stmt);

    if (err != BP_OK) {
        return err;
    }
    bind_digest(stmt, 1, digest);
    return bp_sq__finish_change(st, stmt);
}

/* ---- everything, for db copy (issue 9): in insertion order ---- */

static void
free_tokens_v(void *recs, size_t n)
{
    struct bp_token_rec *r = recs;

    for (size_t i = 0; r != NULL && i < n; i++) {
        bp_token_rec_cleanup(&r[i]);
    }
    bp_free(recs);
}

static void
free_codes_v(void *recs, size_t n)
{
    struct bp_code_rec *r = recs;

    for (size_t i = 0; r != NULL && i < n; i++) {
        bp_code_rec_cleanup(&r[i]);
    }
    bp_free(recs);
}

static void
free_sessions_v(void *recs, size_t n)
{
    struct bp_session_rec *r = recs;

    for (size_t i = 0; r != NULL && i < n; i++) {
        bp_session_rec_cleanup(&r[i]);
    }
    bp_free(recs);
}

static bp_err
list_sql(struct bp_store *s, const char *sql, size_t elem_size, void (*read)(sqlite3_stmt *, void *),
         void (*free_all)(void *, size_t), void **out, size_t *out_n)
{
    struct sqlite_store *st = bp_sq__of(s);
    sqlite3_stmt *stmt = NULL;
    bp_err err = bp_sq__prepare(st, sql, &stmt);

    if (err != BP_OK) {
        return err;
    }
    return list_all(st, stmt, elem_size, read, free_all, out, out_n);
}

static bp_err
sq_token_list_all(struct bp_store *s, struct bp_token_rec **out, size_t *out_n)
{
    return list_sql(s, "SELECT " TOKEN_COLS " FROM oauth_tokens ORDER BY rowid", sizeof(**out), read_token,
                    free_tokens_v, (void **)out, out_n);
}

static bp_err
sq_code_list(struct bp_store *s, struct bp_code_rec **out, size_t *out_n)
{
    return list_sql(s, "SELECT " CODE_COLS " FROM oauth_codes ORDER BY rowid", sizeof(**out), read_code,
                    free_codes_v, (void **)out, out_n);
}

static bp_err
sq_session_list(struct bp_store *s, struct bp_session_rec **out, size_t *out_n)
{
    return list_sql(s, "SELECT " SESSION_COLS " FROM oauth_sessions ORDER BY rowid", sizeof(**out), read_session,
                    free_sessions_v, (void **)out, out_n);
}

const struct bp_store_oauth_ops bp_sq__oauth_ops = {
    .client_insert = sq_client_insert,
    .client_get = sq_client_get,
    .client_list = sq_client_list,
    .client_revoke = sq_client_revoke,
    .client_rotate_secret = sq_client_rotate_secret,
    .client_previous_secret = sq_client_previous_secret,
    .client_set_expiry = sq_client_set_expiry,
    .client_set_allow_from = sq_client_set_allow_from,
    .client_set_rate = sq_client_set_rate,
    .operator_insert = sq_operator_insert,
    .operator_get = sq_operator_get,
    .operator_get_by_name = sq_operator_get_by_name,
    .operator_list = sq_operator_list,
    .operator_set_disabled = sq_operator_set_disabled,
    .operator_set_password = sq_operator_set_password,
    .operator_revoke_grants = sq_operator_revoke_grants,
    .token_insert = sq_token_insert,
    .token_get_by_digest = sq_token_get_by_digest,
    .token_mark_used = sq_token_mark_used,
    .token_revoke = sq_token_revoke,
    .token_revoke_family = sq_token_revoke_family,
    .token_revoke_oldest_access = sq_token_revoke_oldest_access,
    .token_list_live = sq_token_list_live,
    .token_list_changed = sq_token_list_changed,
    .purge = sq_purge,
    .code_insert = sq_code_insert,
    .code_take = sq_code_take,
    .session_insert = sq_session_insert,
    .session_get = sq_session_get,
    .session_delete = sq_session_delete,
    .session_delete_operator = sq_session_delete_operator,
    .token_list_all = sq_token_list_all,
    .code_list = sq_code_list,
    .session_list = sq_session_list,
    .operator_set_role = sq_operator_set_role,
    .admin_token_insert = sq_admin_token_insert,
    .admin_token_find = sq_admin_token_find,
    .admin_token_list = sq_admin_token_list,
    .admin_token_get = sq_admin_token_get,
    .admin_token_revoke = sq_admin_token_revoke,
    .admin_session_end = sq_admin_session_end,
    .admin_sessions_delete = sq_admin_sessions_delete,
    .admin_sessions_trim = sq_admin_sessions_trim,
};
