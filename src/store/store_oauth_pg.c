/* OAuth tables on PostgreSQL (schema v2, migrations_pg.c): clients, operators, tokens,
 * authorization codes and sign-in sessions. The same contract as store_oauth_sqlite.c.
 *
 * Secrets never reach this file: clients, tokens, codes and sessions are looked up by SHA-256
 * digest, operators carry an Argon2id encoded hash. Every value is a parameter.
 *
 * Exactly once, cluster-wide: a code is exchanged and a refresh token rotated by one conditional
 * UPDATE (`… WHERE used_at = 0`). Of two concurrent ones on any nodes, the second waits for the
 * first's row lock, re-reads the row under READ COMMITTED, finds used_at set and changes nothing,
 * so exactly one sees its UPDATE change a row; the other answers BP_ERR_EXISTS (reuse), as
 * store.h says. Calls that change several rows (client revocation, operator grants, purge) run in
 * one transaction of their own holding the CHANGES lock (store_pg.c), or inside the caller's. */
#include <stdint.h>
#include <string.h>

#include <libpq-fe.h>

#include "lib/alloc.h"
#include "store/pg-int.h"

#define DIGEST_LEN 32

/* Like bp_pg__get_one, keyed by a digest. */
static bp_err
get_by_digest(struct pg_store *st, const char *sql, const unsigned char digest[DIGEST_LEN],
              void (*read)(const PGresult *, int, void *), void *out)
{
    struct bp_pg_params p = {0};

    bp_pg__p_bytes(&p, digest, DIGEST_LEN);
    return bp_pg__get_one(st, sql, &p, read, out);
}

static bp_err
get_by_id(struct pg_store *st, const char *sql, const char *id, void (*read)(const PGresult *, int, void *),
          void *out)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, id);
    return bp_pg__get_one(st, sql, &p, read, out);
}

/* ---- clients ---- */

#define CLIENT_COLS                                                                                 \
    "id, name, secret_digest, scopes, redirect_uris, grant_types, instances, created_at,"           \
    " expires_at, revoked, revoked_at, allow_from, rate_limit, rate_burst"

/* Redirect URIs are stored newline-separated, as on SQLite: the CLI admits only URI characters,
 * so a URI can hold neither a newline nor be empty. */
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
    size_t n = 1;
    const char *p = text;

    out->redirect_uris = NULL;
    out->n_redirect_uris = 0;
    if (text == NULL || text[0] == '\0') {
        return;
    }
    for (const char *q = text; *q != '\0'; q++) {
        n += *q == '\n' ? 1 : 0;
    }
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
read_client(const PGresult *res, int row, void *vout)
{
    struct bp_client_rec *out = vout;

    memset(out, 0, sizeof(*out));
    out->id = bp_pg__col_dup(res, row, 0);
    out->name = bp_pg__col_dup(res, row, 1);
    bp_pg__col_digest(res, row, 2, out->secret_digest, DIGEST_LEN);
    out->scopes = bp_pg__col_dup(res, row, 3);
    split_uris(bp_pq.PQgetisnull(res, row, 4) ? NULL : bp_pq.PQgetvalue(res, row, 4), out);
    out->grant_types = bp_pg__col_dup(res, row, 5);
    out->instances = bp_pg__col_dup(res, row, 6);
    out->created_at = bp_pg__col_int(res, row, 7);
    out->expires_at = bp_pg__col_int(res, row, 8);
    out->revoked = bp_pg__col_bool(res, row, 9);
    out->revoked_at = bp_pg__col_int(res, row, 10);
    out->allow_from = bp_pg__col_dup(res, row, 11);
    out->rate_limit = bp_pg__col_dup(res, row, 12);
    out->rate_burst = bp_pg__col_int(res, row, 13);
}

static bp_err
pg_client_insert(struct bp_store *s, const struct bp_client_rec *rec)
{
    struct bp_pg_params p = {0};
    char *uris = NULL;
    bp_err err = join_uris(rec, &uris);

    if (err != BP_OK) {
        return err;
    }
    bp_pg__p_text(&p, rec->id);
    bp_pg__p_text(&p, rec->name);
    bp_pg__p_bytes(&p, rec->secret_digest, DIGEST_LEN);
    bp_pg__p_text(&p, rec->scopes);
    bp_pg__p_text(&p, uris);
    bp_pg__p_text(&p, rec->grant_types);
    bp_pg__p_text(&p, rec->instances);
    bp_pg__p_int(&p, rec->created_at);
    bp_pg__p_int(&p, rec->expires_at);
    bp_pg__p_bool(&p, rec->revoked);
    bp_pg__p_int(&p, rec->revoked_at);
    bp_pg__p_text(&p, rec->allow_from);
    bp_pg__p_text(&p, rec->rate_limit);
    bp_pg__p_int(&p, rec->rate_burst);
    err = bp_pg__run(bp_pg__of(s),
                     "INSERT INTO oauth_clients (" CLIENT_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)", &p,
                     NULL);
    bp_free(uris);
    return err;
}

static bp_err
pg_client_get(struct bp_store *s, const char *id, struct bp_client_rec *out)
{
    return get_by_id(bp_pg__of(s), "SELECT " CLIENT_COLS " FROM oauth_clients WHERE id = $1", id, read_client,
                     out);
}

static bp_err
pg_client_list(struct bp_store *s, struct bp_client_rec **out, size_t *out_n)
{
    void *recs = NULL;
    bp_err err = bp_pg__collect(bp_pg__of(s), "SELECT " CLIENT_COLS " FROM oauth_clients ORDER BY created_at, id",
                                NULL, sizeof(struct bp_client_rec), read_client, &recs, out_n);

    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
pg_client_rotate_secret(struct bp_store *s, const char *id, const unsigned char digest[DIGEST_LEN],
                        int64_t previous_expires_at)
{
    struct bp_pg_params p = {0};

    bp_pg__p_int(&p, previous_expires_at);
    bp_pg__p_bytes(&p, digest, DIGEST_LEN);
    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s),
                             "UPDATE oauth_clients SET previous_secret_digest = secret_digest,"
                             " previous_secret_expires_at = $1, secret_digest = $2 WHERE id = $3",
                             &p);
}

struct previous_secret {
    unsigned char *digest;
    int64_t expires_at;
};

static void
read_previous(const PGresult *res, int row, void *out_v)
{
    struct previous_secret *out = out_v;

    if (!bp_pq.PQgetisnull(res, row, 0)) {
        bp_pg__col_digest(res, row, 0, out->digest, DIGEST_LEN);
    }
    out->expires_at = bp_pg__col_int(res, row, 1);
}

static bp_err
pg_client_previous_secret(struct bp_store *s, const char *id, unsigned char digest[DIGEST_LEN], int64_t *out_expires_at)
{
    struct bp_pg_params p = {0};
    struct previous_secret prev = {digest, 0};
    bp_err err;

    bp_pg__p_text(&p, id);
    err = bp_pg__get_one(bp_pg__of(s),
                         "SELECT previous_secret_digest, previous_secret_expires_at FROM oauth_clients WHERE id = $1",
                         &p, read_previous, &prev);
    *out_expires_at = prev.expires_at;
    return err;
}

static bp_err
pg_client_revoke(struct bp_store *s, const char *id, int64_t now)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_pg_params p = {0};
    bool own = false;
    bp_err err = bp_pg__tx_begin(st, true, &own);

    if (err != BP_OK) {
        return err;
    }
    bp_pg__p_int(&p, now);
    bp_pg__p_text(&p, id);
    /* The first revocation time is the one on record. */
    err = bp_pg__change_one(st, "UPDATE oauth_clients SET revoked = TRUE, revoked_at = $1 WHERE id = $2 AND NOT revoked",
                            &p);
    if (err == BP_ERR_NOT_FOUND) {
        err = bp_pg__row_exists(st, "SELECT 1 FROM oauth_clients WHERE id = $1", id);
    }
    /* Also when the client was revoked before: a token issued in a race with that revocation
     * must not outlive it. */
    if (err == BP_OK) {
        err = bp_pg__run(st, "UPDATE oauth_tokens SET revoked = TRUE, revoked_at = $1 WHERE client_id = $2 AND NOT revoked",
                         &p, NULL);
    }
    return bp_pg__tx_end(st, own, err);
}

static bp_err
pg_client_set_expiry(struct bp_store *s, const char *id, int64_t expires_at)
{
    struct bp_pg_params p = {0};

    bp_pg__p_int(&p, expires_at);
    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s), "UPDATE oauth_clients SET expires_at = $1 WHERE id = $2", &p);
}

static bp_err
pg_client_set_rate(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, rate_limit);
    bp_pg__p_int(&p, burst);
    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s), "UPDATE oauth_clients SET rate_limit = $1, rate_burst = $2 WHERE id = $3", &p);
}

static bp_err
pg_client_set_allow_from(struct bp_store *s, const char *id, const char *allow_from)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, allow_from);
    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s), "UPDATE oauth_clients SET allow_from = $1 WHERE id = $2", &p);
}

/* ---- operators ---- */

#define OPERATOR_COLS "id, name, password_hash, disabled, created_at, updated_at, role"

static void
read_operator(const PGresult *res, int row, void *vout)
{
    struct bp_operator_rec *out = vout;

    memset(out, 0, sizeof(*out));
    out->id = bp_pg__col_dup(res, row, 0);
    out->name = bp_pg__col_dup(res, row, 1);
    out->password_hash = bp_pg__col_dup(res, row, 2);
    out->disabled = bp_pg__col_bool(res, row, 3);
    out->created_at = bp_pg__col_int(res, row, 4);
    out->updated_at = bp_pg__col_int(res, row, 5);
    out->role = bp_pg__col_dup(res, row, 6);
}

static bp_err
pg_operator_insert(struct bp_store *s, const struct bp_operator_rec *rec)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, rec->id);
    bp_pg__p_text(&p, rec->name);
    bp_pg__p_text(&p, rec->password_hash);
    bp_pg__p_bool(&p, rec->disabled);
    bp_pg__p_int(&p, rec->created_at);
    bp_pg__p_int(&p, rec->updated_at);
    bp_pg__p_text(&p, rec->role != NULL ? rec->role : "approver");
    return bp_pg__run(bp_pg__of(s), "INSERT INTO oauth_operators (" OPERATOR_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7)",
                      &p, NULL);
}

static bp_err
pg_operator_get(struct bp_store *s, const char *id, struct bp_operator_rec *out)
{
    return get_by_id(bp_pg__of(s), "SELECT " OPERATOR_COLS " FROM oauth_operators WHERE id = $1", id,
                     read_operator, out);
}

static bp_err
pg_operator_get_by_name(struct bp_store *s, const char *name, struct bp_operator_rec *out)
{
    return get_by_id(bp_pg__of(s), "SELECT " OPERATOR_COLS " FROM oauth_operators WHERE name = $1", name,
                     read_operator, out);
}

static bp_err
pg_operator_list(struct bp_store *s, struct bp_operator_rec **out, size_t *out_n)
{
    void *recs = NULL;
    bp_err err = bp_pg__collect(bp_pg__of(s),
                                "SELECT " OPERATOR_COLS " FROM oauth_operators ORDER BY created_at, id", NULL,
                                sizeof(struct bp_operator_rec), read_operator, &recs, out_n);

    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
pg_operator_set_disabled(struct bp_store *s, const char *id, bool disabled, int64_t now)
{
    struct bp_pg_params p = {0};

    bp_pg__p_bool(&p, disabled);
    bp_pg__p_int(&p, now);
    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s), "UPDATE oauth_operators SET disabled = $1, updated_at = $2 WHERE id = $3",
                             &p);
}

static bp_err
pg_operator_set_password(struct bp_store *s, const char *id, const char *hash, int64_t now)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, hash);
    bp_pg__p_int(&p, now);
    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s),
                             "UPDATE oauth_operators SET password_hash = $1, updated_at = $2 WHERE id = $3", &p);
}

static bp_err
pg_operator_set_role(struct bp_store *s, const char *id, const char *role, int64_t now)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, role);
    bp_pg__p_int(&p, now);
    bp_pg__p_text(&p, id);
    return bp_pg__change_one(bp_pg__of(s), "UPDATE oauth_operators SET role = $1, updated_at = $2 WHERE id = $3", &p);
}

/* ---- admin API credentials ---- */

#define ADMIN_TOKEN_COLS "id, operator_id, kind, digest, prefix, name, created_at, expires_at, revoked_at"

static void
read_admin_token(const PGresult *res, int row, void *vout)
{
    struct bp_admin_token_rec *out = vout;

    memset(out, 0, sizeof(*out));
    out->id = bp_pg__col_dup(res, row, 0);
    out->operator_id = bp_pg__col_dup(res, row, 1);
    out->kind = bp_pg__col_dup(res, row, 2);
    bp_pg__col_digest(res, row, 3, out->digest, DIGEST_LEN);
    out->prefix = bp_pg__col_dup(res, row, 4);
    out->name = bp_pg__col_dup(res, row, 5);
    out->created_at = bp_pg__col_int(res, row, 6);
    out->expires_at = bp_pg__col_int(res, row, 7);
    out->revoked_at = bp_pg__col_int(res, row, 8);
}

static bp_err
pg_admin_token_insert(struct bp_store *s, const struct bp_admin_token_rec *rec)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, rec->id);
    bp_pg__p_text(&p, rec->operator_id);
    bp_pg__p_text(&p, rec->kind);
    bp_pg__p_bytes(&p, rec->digest, DIGEST_LEN);
    bp_pg__p_text(&p, rec->prefix);
    bp_pg__p_text(&p, rec->name);
    bp_pg__p_int(&p, rec->created_at);
    bp_pg__p_int(&p, rec->expires_at);
    bp_pg__p_int(&p, rec->revoked_at);
    return bp_pg__run(bp_pg__of(s),
                      "INSERT INTO admin_tokens (" ADMIN_TOKEN_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)", &p, NULL);
}

/* The credential and its operator in one row: the token's columns, then the operator's. */
struct token_and_operator {
    struct bp_admin_token_rec *token;
    struct bp_operator_rec *op;
};

static void
read_token_and_operator(const PGresult *res, int row, void *vout)
{
    struct token_and_operator *out = vout;
    struct bp_operator_rec *op = out->op;

    read_admin_token(res, row, out->token);
    memset(op, 0, sizeof(*op));
    op->id = bp_pg__col_dup(res, row, 9);
    op->name = bp_pg__col_dup(res, row, 10);
    op->disabled = bp_pg__col_bool(res, row, 11);
    op->role = bp_pg__col_dup(res, row, 12);
    op->created_at = bp_pg__col_int(res, row, 13);
    op->updated_at = bp_pg__col_int(res, row, 14);
}

static bp_err
pg_admin_token_find(struct bp_store *s, const unsigned char digest[DIGEST_LEN], int64_t now,
                    struct bp_admin_token_rec *out, struct bp_operator_rec *out_operator)
{
    struct token_and_operator both = {out, out_operator};
    struct bp_pg_params p = {0};

    bp_pg__p_bytes(&p, digest, DIGEST_LEN);
    bp_pg__p_int(&p, now);
    return bp_pg__get_one(bp_pg__of(s),
                          "SELECT t.id, t.operator_id, t.kind, t.digest, t.prefix, t.name, t.created_at,"
                          " t.expires_at, t.revoked_at, o.id, o.name, o.disabled, o.role, o.created_at,"
                          " o.updated_at FROM admin_tokens t JOIN oauth_operators o ON o.id = t.operator_id"
                          " WHERE t.digest = $1 AND t.revoked_at = 0 AND t.expires_at > $2",
                          &p, read_token_and_operator, &both);
}

static bp_err
pg_admin_token_list(struct bp_store *s, const char *operator_id, const char *kind, struct bp_admin_token_rec **out,
                    size_t *out_n)
{
    struct bp_pg_params p = {0};
    void *recs = NULL;
    bp_err err;

    bp_pg__p_text(&p, operator_id);
    bp_pg__p_text(&p, kind);
    err = bp_pg__collect(bp_pg__of(s),
                         "SELECT " ADMIN_TOKEN_COLS " FROM admin_tokens WHERE ($2::text IS NULL OR kind = $2)"
                         " AND ($1::text IS NULL OR operator_id = $1) ORDER BY created_at DESC, id DESC",
                         &p, sizeof(struct bp_admin_token_rec), read_admin_token, &recs, out_n);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
pg_admin_token_get(struct bp_store *s, const char *id, struct bp_admin_token_rec *out)
{
    return get_by_id(bp_pg__of(s), "SELECT " ADMIN_TOKEN_COLS " FROM admin_tokens WHERE id = $1", id,
                     read_admin_token, out);
}

static bp_err
pg_admin_token_revoke(struct bp_store *s, const char *id, int64_t now)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, id);
    bp_pg__p_int(&p, now);
    /* Revoked already is not an error (the first time is kept); no such token is. */
    return bp_pg__change_one(bp_pg__of(s),
                             "UPDATE admin_tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN $2"
                             " ELSE revoked_at END WHERE id = $1",
                             &p);
}

static bp_err
pg_admin_session_end(struct bp_store *s, const unsigned char digest[DIGEST_LEN])
{
    struct bp_pg_params p = {0};

    bp_pg__p_bytes(&p, digest, DIGEST_LEN);
    return bp_pg__run(bp_pg__of(s), "DELETE FROM admin_tokens WHERE digest = $1 AND kind = 'session'", &p, NULL);
}

static bp_err
pg_admin_sessions_delete(struct bp_store *s, const char *operator_id, int64_t now)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, operator_id);
    bp_pg__p_int(&p, now);
    return bp_pg__run(bp_pg__of(s),
                      "DELETE FROM admin_tokens WHERE kind = 'session'"
                      " AND (operator_id = $1 OR ($1::text IS NULL AND expires_at <= $2))",
                      &p, NULL);
}

/* Ids are ULIDs: newest last. */
static bp_err
pg_admin_sessions_trim(struct bp_store *s, const char *operator_id, int64_t keep)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, operator_id);
    bp_pg__p_int(&p, keep);
    return bp_pg__run(bp_pg__of(s),
                      "DELETE FROM admin_tokens WHERE kind = 'session' AND operator_id = $1 AND id NOT IN"
                      " (SELECT id FROM admin_tokens WHERE kind = 'session' AND operator_id = $1"
                      " ORDER BY id DESC LIMIT $2)",
                      &p, NULL);
}

/* Runs constant SQL whose parameters are $1 = id and, when the text uses it, $2 = now. */
static bp_err
exec_with_id(struct pg_store *st, const char *sql, const char *id, int64_t now)
{
    struct bp_pg_params p = {0};

    bp_pg__p_text(&p, id);
    bp_pg__p_int(&p, now);
    return bp_pg__run(st, sql, &p, NULL);
}

static bp_err
pg_operator_revoke_grants(struct bp_store *s, const char *id, int64_t now)
{
    /* Whole families: every token of a family carries the operator who approved its code.
     * Used codes stay, so presenting one again is still recognised as reuse. */
    static const char *const sql[] = {
        ("UPDATE oauth_tokens SET revoked = TRUE, revoked_at = $2"
         " WHERE NOT revoked AND family_id IN (SELECT family_id FROM oauth_tokens WHERE operator_id = $1)"),
        "DELETE FROM oauth_codes WHERE operator_id = $1 AND used_at = 0",
        "DELETE FROM oauth_sessions WHERE operator_id = $1",
    };
    struct pg_store *st = bp_pg__of(s);
    bool own = false;
    bp_err err = bp_pg__tx_begin(st, true, &own);

    for (size_t i = 0; err == BP_OK && i < sizeof(sql) / sizeof(sql[0]); i++) {
        err = exec_with_id(st, sql[i], id, now);
    }
    return bp_pg__tx_end(st, own, err);
}

static bp_err
pg_session_delete_operator(struct bp_store *s, const char *operator_id)
{
    return exec_with_id(bp_pg__of(s), "DELETE FROM oauth_sessions WHERE operator_id = $1", operator_id, 0);
}

/* ---- tokens ---- */

#define TOKEN_COLS                                                                                  \
    "id, kind, digest, client_id, family_id, operator_id, scopes, created_at, expires_at, used_at," \
    " revoked, revoked_at"

static void
read_token(const PGresult *res, int row, void *vout)
{
    struct bp_token_rec *out = vout;

    memset(out, 0, sizeof(*out));
    out->id = bp_pg__col_dup(res, row, 0);
    out->kind = bp_pg__col_int(res, row, 1) == BP_TOKEN_REFRESH ? BP_TOKEN_REFRESH : BP_TOKEN_ACCESS;
    bp_pg__col_digest(res, row, 2, out->digest, DIGEST_LEN);
    out->client_id = bp_pg__col_dup(res, row, 3);
    out->family_id = bp_pg__col_dup(res, row, 4);
    out->operator_id = bp_pg__col_dup(res, row, 5);
    out->scopes = bp_pg__col_dup(res, row, 6);
    out->created_at = bp_pg__col_int(res, row, 7);
    out->expires_at = bp_pg__col_int(res, row, 8);
    out->used_at = bp_pg__col_int(res, row, 9);
    out->revoked = bp_pg__col_bool(res, row, 10);
    out->revoked_at = bp_pg__col_int(res, row, 11);
}

static bp_err
pg_token_insert(struct bp_store *s, const struct bp_token_rec *rec)
{
    struct bp_pg_params p = {0};

    if (rec->kind != BP_TOKEN_ACCESS && rec->kind != BP_TOKEN_REFRESH) {
        return BP_ERR_INVALID;
    }
    bp_pg__p_text(&p, rec->id);
    bp_pg__p_int(&p, (int64_t)rec->kind);
    bp_pg__p_bytes(&p, rec->digest, DIGEST_LEN);
    bp_pg__p_text(&p, rec->client_id);
    bp_pg__p_text(&p, rec->family_id);
    bp_pg__p_text(&p, rec->operator_id);
    bp_pg__p_text(&p, rec->scopes);
    bp_pg__p_int(&p, rec->created_at);
    bp_pg__p_int(&p, rec->expires_at);
    bp_pg__p_int(&p, rec->used_at);
    bp_pg__p_bool(&p, rec->revoked);
    bp_pg__p_int(&p, rec->revoked_at);
    return bp_pg__run(bp_pg__of(s),
                      "INSERT INTO oauth_tokens (" TOKEN_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)",
                      &p, NULL);
}

static bp_err
pg_token_get_by_digest(struct bp_store *s, const unsigned char digest[32], struct bp_token_rec *out)
{
    return get_by_digest(bp_pg__of(s), "SELECT " TOKEN_COLS " FROM oauth_tokens WHERE digest = $1", digest,
                         read_token, out);
}

/* used_at = 0 means "not yet", so a use is recorded as at least 1 even with a clock at 0. */
static int64_t
use_time(int64_t now)
{
    return now > 0 ? now : 1;
}

static bp_err
pg_token_mark_used(struct bp_store *s, const char *id, int64_t now)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_pg_params p = {0};
    bp_err err;

    bp_pg__p_int(&p, use_time(now));
    bp_pg__p_text(&p, id);
    /* NOT revoked too: a refresh that read the token before a concurrent reuse revoked its
     * family must not rotate it into a fresh, unrevoked pair. */
    err = bp_pg__change_one(st, "UPDATE oauth_tokens SET used_at = $1 WHERE id = $2 AND used_at = 0 AND NOT revoked",
                            &p);
    if (err == BP_ERR_NOT_FOUND) {
        /* Lost the race, an old token presented again, or a revoked one: all count as reuse. */
        err = bp_pg__row_exists(st, "SELECT 1 FROM oauth_tokens WHERE id = $1", id);
        if (err == BP_OK) {
            err = BP_ERR_EXISTS;
        }
    }
    return err;
}

static bp_err
pg_token_revoke(struct bp_store *s, const char *id, int64_t now)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_pg_params p = {0};
    bp_err err;

    bp_pg__p_int(&p, now);
    bp_pg__p_text(&p, id);
    err = bp_pg__change_one(st, "UPDATE oauth_tokens SET revoked = TRUE, revoked_at = $1 WHERE id = $2 AND NOT revoked",
                            &p);
    if (err == BP_ERR_NOT_FOUND) {
        err = bp_pg__row_exists(st, "SELECT 1 FROM oauth_tokens WHERE id = $1", id);
    }
    return err;
}

/* Runs an UPDATE and hands back how many rows it changed. */
static bp_err
run_count(struct pg_store *st, const char *sql, const struct bp_pg_params *p, size_t *out_n)
{
    PGresult *res = NULL;
    bp_err err = bp_pg__run(st, sql, p, &res);

    if (err == BP_OK && out_n != NULL) {
        *out_n = (size_t)bp_pg__changes(res);
    }
    bp_pq.PQclear(res);
    return err;
}

static bp_err
pg_token_revoke_family(struct bp_store *s, const char *family_id, int64_t now, size_t *out_n)
{
    struct bp_pg_params p = {0};

    bp_pg__p_int(&p, now);
    bp_pg__p_text(&p, family_id);
    return run_count(bp_pg__of(s),
                     "UPDATE oauth_tokens SET revoked = TRUE, revoked_at = $1 WHERE family_id = $2 AND NOT revoked", &p,
                     out_n);
}

static bp_err
pg_token_revoke_oldest_access(struct bp_store *s, const char *client_id, size_t keep, int64_t now, size_t *out_n)
{
    struct bp_pg_params p = {0};

    bp_pg__p_int(&p, now);
    bp_pg__p_text(&p, client_id);
    bp_pg__p_int(&p, BP_TOKEN_ACCESS);
    bp_pg__p_int(&p, keep > INT64_MAX ? INT64_MAX : (int64_t)keep);
    /* ord follows insertion order, so "oldest" is exact even within one second. */
    return run_count(bp_pg__of(s),
                     "UPDATE oauth_tokens SET revoked = TRUE, revoked_at = $1"
                     " WHERE id IN (SELECT id FROM oauth_tokens"
                     "               WHERE client_id = $2 AND kind = $3 AND NOT revoked"
                     "                 AND (expires_at = 0 OR expires_at > $1)"
                     "               ORDER BY ord DESC OFFSET $4)",
                     &p, out_n);
}

static void
read_live(const PGresult *res, int row, void *vout)
{
    struct bp_live_token *out = vout;
    int64_t token_exp = bp_pg__col_int(res, row, 9);
    int64_t client_exp = bp_pg__col_int(res, row, 10);

    memset(out, 0, sizeof(*out));
    out->id = bp_pg__col_dup(res, row, 0);
    bp_pg__col_digest(res, row, 1, out->digest, DIGEST_LEN);
    out->client_id = bp_pg__col_dup(res, row, 2);
    out->client_name = bp_pg__col_dup(res, row, 3);
    out->scopes = bp_pg__col_dup(res, row, 4);
    out->instances = bp_pg__col_dup(res, row, 5);
    out->allow_from = bp_pg__col_dup(res, row, 6);
    out->rate_limit = bp_pg__col_dup(res, row, 7);
    out->rate_burst = bp_pg__col_int(res, row, 8);
    out->live = bp_pq.PQnfields(res) > 11 ? bp_pg__col_bool(res, row, 11) : true;
    /* 0 = never on both sides: the earlier of the two real expiries wins. */
    if (token_exp == 0) {
        out->expires_at = client_exp;
    } else if (client_exp == 0) {
        out->expires_at = token_exp;
    } else {
        out->expires_at = token_exp < client_exp ? token_exp : client_exp;
    }
}

static bp_err
pg_token_list_live(struct bp_store *s, int64_t now, struct bp_live_token **out, size_t *out_n)
{
    struct bp_pg_params p = {0};
    void *recs = NULL;
    bp_err err;

    bp_pg__p_int(&p, BP_TOKEN_ACCESS);
    bp_pg__p_int(&p, now);
    /* Expired means expires_at <= now, as everywhere else (key status, token checks). */
    err = bp_pg__collect(bp_pg__of(s),
                         "SELECT t.id, t.digest, t.client_id, c.name, t.scopes, c.instances, c.allow_from, c.rate_limit, c.rate_burst,"
                         "       t.expires_at, c.expires_at"
                         "  FROM oauth_tokens t JOIN oauth_clients c ON c.id = t.client_id"
                         " WHERE t.kind = $1 AND NOT t.revoked"
                         "   AND (t.expires_at = 0 OR t.expires_at > $2)"
                         "   AND NOT c.revoked AND (c.expires_at = 0 OR c.expires_at > $2)"
                         " ORDER BY t.created_at, t.id",
                         &p, sizeof(struct bp_live_token), read_live, &recs, out_n);
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
pg_token_list_changed(struct bp_store *s, int64_t now, const char *token_id, const char *client_id,
                      struct bp_live_token **out, size_t *out_n)
{
    struct bp_pg_params p = {0};
    void *recs = NULL;
    bp_err err;
#define CHANGED_COLS                                                                                           \
    "SELECT t.id, t.digest, t.client_id, c.name, t.scopes, c.instances, c.allow_from, c.rate_limit, c.rate_burst, t.expires_at, c.expires_at,"          \
    "       NOT t.revoked AND (t.expires_at = 0 OR t.expires_at > $2)"                                          \
    "       AND NOT c.revoked AND (c.expires_at = 0 OR c.expires_at > $2)"                                      \
    "  FROM oauth_tokens t JOIN oauth_clients c ON c.id = t.client_id"

    bp_pg__p_int(&p, BP_TOKEN_ACCESS);
    bp_pg__p_int(&p, now);
    bp_pg__p_text(&p, token_id != NULL ? token_id : client_id);
    err = bp_pg__collect(bp_pg__of(s),
                         token_id != NULL ? CHANGED_COLS " WHERE t.kind = $1 AND t.id = $3"
                                          : CHANGED_COLS " WHERE t.kind = $1 AND t.client_id = $3"
                                                         "   AND NOT t.revoked"
                                                         "   AND (t.expires_at = 0 OR t.expires_at > $2)",
                         &p, sizeof(struct bp_live_token), read_live, &recs, out_n);
#undef CHANGED_COLS
    if (err == BP_OK) {
        *out = recs;
    }
    return err;
}

static bp_err
pg_purge(struct bp_store *s, int64_t before)
{
    static const char *const sql[] = {
        /* expires_at 0 = never: such tokens are kept. */
        "DELETE FROM oauth_tokens WHERE expires_at != 0 AND expires_at < $1",
        "DELETE FROM oauth_codes WHERE expires_at < $1",
        "DELETE FROM oauth_sessions WHERE expires_at < $1",
    };
    struct pg_store *st = bp_pg__of(s);
    bool own = false;
    bp_err err = bp_pg__tx_begin(st, true, &own);

    for (size_t i = 0; err == BP_OK && i < sizeof(sql) / sizeof(sql[0]); i++) {
        struct bp_pg_params p = {0};
        bp_pg__p_int(&p, before);
        err = bp_pg__run(st, sql[i], &p, NULL);
    }
    return bp_pg__tx_end(st, own, err);
}

/* ---- authorization codes ---- */

#define CODE_COLS                                                                                   \
    "digest, client_id, operator_id, redirect_uri, scopes, code_challenge, family_id, created_at,"  \
    " expires_at, used_at"

static void
read_code(const PGresult *res, int row, void *vout)
{
    struct bp_code_rec *out = vout;

    memset(out, 0, sizeof(*out));
    bp_pg__col_digest(res, row, 0, out->digest, DIGEST_LEN);
    out->client_id = bp_pg__col_dup(res, row, 1);
    out->operator_id = bp_pg__col_dup(res, row, 2);
    out->redirect_uri = bp_pg__col_dup(res, row, 3);
    out->scopes = bp_pg__col_dup(res, row, 4);
    out->code_challenge = bp_pg__col_dup(res, row, 5);
    out->family_id = bp_pg__col_dup(res, row, 6);
    out->created_at = bp_pg__col_int(res, row, 7);
    out->expires_at = bp_pg__col_int(res, row, 8);
    out->used_at = bp_pg__col_int(res, row, 9);
}

static bp_err
pg_code_insert(struct bp_store *s, const struct bp_code_rec *rec)
{
    struct bp_pg_params p = {0};

    bp_pg__p_bytes(&p, rec->digest, DIGEST_LEN);
    bp_pg__p_text(&p, rec->client_id);
    bp_pg__p_text(&p, rec->operator_id);
    bp_pg__p_text(&p, rec->redirect_uri);
    bp_pg__p_text(&p, rec->scopes);
    bp_pg__p_text(&p, rec->code_challenge);
    bp_pg__p_text(&p, rec->family_id);
    bp_pg__p_int(&p, rec->created_at);
    bp_pg__p_int(&p, rec->expires_at);
    bp_pg__p_int(&p, rec->used_at);
    return bp_pg__run(bp_pg__of(s), "INSERT INTO oauth_codes (" CODE_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
                      &p, NULL);
}

static bp_err
pg_code_take(struct bp_store *s, const unsigned char digest[32], int64_t now, struct bp_code_rec *out)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_pg_params p = {0};
    struct bp_code_rec rec = {0};
    bp_err err;

    bp_pg__p_int(&p, use_time(now));
    bp_pg__p_bytes(&p, digest, DIGEST_LEN);
    /* The compare-and-set is the whole exchange: whoever's UPDATE returns the row owns the code. */
    err = bp_pg__get_one(st, "UPDATE oauth_codes SET used_at = $1 WHERE digest = $2 AND used_at = 0 RETURNING " CODE_COLS,
                         &p, read_code, &rec);
    if (err == BP_OK) {
        *out = rec;
        return BP_OK;
    }
    if (err != BP_ERR_NOT_FOUND) {
        return err;
    }
    err = get_by_digest(st, "SELECT " CODE_COLS " FROM oauth_codes WHERE digest = $1", digest, read_code, &rec);
    if (err != BP_OK) {
        return err;
    }
    /* A second use is an answer, not a failure: out is filled so the caller can revoke the
     * family issued with the code. */
    *out = rec;
    return BP_ERR_EXISTS;
}

/* ---- sign-in sessions ---- */

#define SESSION_COLS "digest, csrf_digest, operator_id, created_at, expires_at"

static void
read_session(const PGresult *res, int row, void *vout)
{
    struct bp_session_rec *out = vout;

    memset(out, 0, sizeof(*out));
    bp_pg__col_digest(res, row, 0, out->digest, DIGEST_LEN);
    bp_pg__col_digest(res, row, 1, out->csrf_digest, DIGEST_LEN);
    out->operator_id = bp_pg__col_dup(res, row, 2);
    out->created_at = bp_pg__col_int(res, row, 3);
    out->expires_at = bp_pg__col_int(res, row, 4);
}

static bp_err
pg_session_insert(struct bp_store *s, const struct bp_session_rec *rec)
{
    struct bp_pg_params p = {0};

    bp_pg__p_bytes(&p, rec->digest, DIGEST_LEN);
    bp_pg__p_bytes(&p, rec->csrf_digest, DIGEST_LEN);
    bp_pg__p_text(&p, rec->operator_id);
    bp_pg__p_int(&p, rec->created_at);
    bp_pg__p_int(&p, rec->expires_at);
    return bp_pg__run(bp_pg__of(s), "INSERT INTO oauth_sessions (" SESSION_COLS ") VALUES ($1,$2,$3,$4,$5)", &p,
                      NULL);
}

static bp_err
pg_session_get(struct bp_store *s, const unsigned char digest[32], struct bp_session_rec *out)
{
    return get_by_digest(bp_pg__of(s), "SELECT " SESSION_COLS " FROM oauth_sessions WHERE digest = $1", digest,
                         read_session, out);
}

static bp_err
pg_session_delete(struct bp_store *s, const unsigned char digest[32])
{
    struct bp_pg_params p = {0};

    bp_pg__p_bytes(&p, digest, DIGEST_LEN);
    return bp_pg__change_one(bp_pg__of(s), "DELETE FROM oauth_sessions WHERE digest = $1", &p);
}

const struct bp_store_oauth_ops bp_pg__oauth_ops = {
    .client_insert = pg_client_insert,
    .client_get = pg_client_get,
    .client_list = pg_client_list,
    .client_revoke = pg_client_revoke,
    .client_rotate_secret = pg_client_rotate_secret,
    .client_previous_secret = pg_client_previous_secret,
    .client_set_expiry = pg_client_set_expiry,
    .client_set_allow_from = pg_client_set_allow_from,
    .client_set_rate = pg_client_set_rate,
    .operator_insert = pg_operator_insert,
    .operator_get = pg_operator_get,
    .operator_get_by_name = pg_operator_get_by_name,
    .operator_list = pg_operator_list,
    .operator_set_disabled = pg_operator_set_disabled,
    .operator_set_password = pg_operator_set_password,
    .operator_revoke_grants = pg_operator_revoke_grants,
    .token_insert = pg_token_insert,
    .token_get_by_digest = pg_token_get_by_digest,
    .token_mark_used = pg_token_mark_used,
    .token_revoke = pg_token_revoke,
    .token_revoke_family = pg_token_revoke_family,
    .token_revoke_oldest_access = pg_token_revoke_oldest_access,
    .token_list_live = pg_token_list_live,
    .token_list_changed = pg_token_list_changed,
    .purge = pg_purge,
    .code_insert = pg_code_insert,
    .code_take = pg_code_take,
    .session_insert = pg_session_insert,
    .session_get = pg_session_get,
    .session_delete = pg_session_delete,
    .session_delete_operator = pg_session_delete_operator,
    .operator_set_role = pg_operator_set_role,
    .admin_token_insert = pg_admin_token_insert,
    .admin_token_find = pg_admin_token_find,
    .admin_token_list = pg_admin_token_list,
    .admin_token_get = pg_admin_token_get,
    .admin_token_revoke = pg_admin_token_revoke,
    .admin_session_end = pg_admin_session_end,
    .admin_sessions_delete = pg_admin_sessions_delete,
    .admin_sessions_trim = pg_admin_sessions_trim,
};
