/* /admin/api/operators (admins only): who may sign in and with which role, and their admin
 * tokens, as `operator …` manages them. Passwords arrive in the body (the console's form), are
 * hashed with Argon2id on a sign-in thread (admin.c routes these requests there) and wiped;
 * neither they nor their hashes are ever in an answer. An admin cannot disable or demote
 * themselves: someone must be left who can undo it. */
#include <stdio.h>
#include <string.h>

#include "admin/admin-int.h"
#include "auth/auth.h"
#include "lib/alloc.h"
#include "lib/rand.h"
#include "lib/secret.h"
#include "lib/str.h"

#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024
#define TOKEN_MAX_DAYS 366

static json_t *
operator_json(const struct bp_operator_rec *op)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "id", op->id, "name", op->name, "role", op->role,
                     "status", op->disabled ? "disabled" : "active", "created_at",
                     bp_admin__jtime(op->created_at), "updated_at", bp_admin__jtime(op->updated_at));
}

static json_t *
token_json(const struct bp_admin_token_rec *t, int64_t now)
{
    const char *status = t->revoked_at != 0 ? "revoked" : t->expires_at <= now ? "expired" : "active";

    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:o, s:o, s:o}", "id", t->id, "operator_id", t->operator_id,
                     "name", bp_admin__jstr(t->name), "prefix", t->prefix, "status", status, "created_at",
                     bp_admin__jtime(t->created_at), "expires_at", bp_admin__jtime(t->expires_at),
                     "revoked_at", bp_admin__jtime(t->revoked_at));
}

static bool
role_ok(const char *role)
{
    return bp_oauth_role_parse(role) != BP_OAUTH_ROLE_UNKNOWN;
}

/* The body's "password", hashed; false after answering 400. */
static bool
hash_password(struct bp_admin_call *c, char **out_hash)
{
    bool bad = false;
    const char *pw = bp_admin__body_str(c, "password", &bad);
    size_t len = pw != NULL ? strlen(pw) : 0;

    if (bad || pw == NULL || len < PASSWORD_MIN || len > PASSWORD_MAX) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", "password must be 8 to 1024 bytes");
        return false;
    }
    if (bp_password_hash(pw, len, out_hash) != BP_OK) {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the password could not be hashed");
        return false;
    }
    return true;
}

static void
wipe_free(char *s)
{
    if (s != NULL) {
        bp_wipe(s, strlen(s));
        bp_free(s);
    }
}

static void
operators_list(struct bp_admin_call *c)
{
    struct bp_operator_rec *recs = NULL;
    size_t n = 0;
    bp_err rc = bp_store_operator_list(c->s, &recs, &n);
    json_t *a;

    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "operator");
        return;
    }
    a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, operator_json(&recs[i]));
    }
    bp_operator_recs_free(recs, n);
    bp_admin__json(c, 200, json_pack("{s:o}", "operators", a));
}

/* POST /operators {"name", "password", "role"}. */
static void
operator_create(struct bp_admin_call *c)
{
    struct bp_operator_rec rec = {0};
    char ulid[BP_ULID_LEN + 1];
    char id[16 + BP_ULID_LEN];
    bool bad = false;
    const char *name = bp_admin__body_str(c, "name", &bad);
    const char *role = bp_admin__body_str(c, "role", &bad);
    bp_err rc;

    if (bp_admin__refuse_bad_field(c)) {
        return;
    }
    if (bad || name == NULL || !bp_admin__name_ok(name)) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", "name must be 1 to 100 printable characters");
        return;
    }
    if (role != NULL && !role_ok(role)) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", "role must be admin, auditor or approver");
        return;
    }
    if (bp_ulid(ulid) != BP_OK) {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the system random source failed");
        return;
    }
    if (!hash_password(c, &rec.password_hash)) {
        return;
    }
    snprintf(id, sizeof(id), "operator_%s", ulid);
    rec.id = bp_strdup(id);
    rec.name = bp_strdup(name);
    rec.role = bp_strdup(role != NULL ? role : "approver");
    rec.created_at = c->now;
    rec.updated_at = c->now;
    rc = bp_store_begin(c->s);
    if (rc == BP_OK) {
        rc = bp_admin__finish(c, bp_store_operator_insert(c->s, &rec), "Operator created", rec.id, NULL);
    }
    if (rc == BP_ERR_EXISTS) {
        bp_admin__error(c, 409, "GEN_CONFLICT", "an operator with this name exists already");
    } else if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "operator");
    } else {
        bp_admin__json(c, 201, operator_json(&rec));
    }
    bp_operator_rec_cleanup(&rec);
}

/* POST /operators/{id}/{disable|enable|role|password}: the change, its record, and what it ends
 * (disabling withdraws the operator's grants and sessions; a new role or password ends the
 * sessions: they sign in again). */
static void
operator_change(struct bp_admin_call *c, const char *id, const char *verb)
{
    struct bp_operator_rec cur = {0};
    bool bad = false;
    const char *role = NULL;
    const char *action;
    char *hash = NULL;
    bp_err rc;

    if (strcmp(verb, "role") == 0) {
        role = bp_admin__body_str(c, "role", &bad);
        if (bad || !role_ok(role)) {
            bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", "role must be admin, auditor or approver");
            return;
        }
    }
    if (strcmp(id, c->op.id) == 0 &&
        (strcmp(verb, "disable") == 0 || (role != NULL && strcmp(role, "admin") != 0))) {
        bp_admin__error(c, 409, "GEN_CONFLICT", "you cannot disable or demote yourself: ask another admin");
        return;
    }
    rc = bp_store_operator_get(c->s, id, &cur);
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "operator");
        return;
    }
    if (strcmp(verb, "password") == 0 && !hash_password(c, &hash)) {
        bp_operator_rec_cleanup(&cur);
        return;
    }
    rc = bp_store_begin(c->s);
    if (rc == BP_OK && strcmp(verb, "password") == 0) {
        action = "Operator password changed";
        rc = bp_store_operator_set_password(c->s, id, hash, c->now);
        if (rc == BP_OK) {
            rc = bp_store_session_delete_operator(c->s, id);
        }
    } else if (rc == BP_OK && role != NULL) {
        action = "Operator role changed";
        rc = bp_store_operator_set_role(c->s, id, role, c->now);
        if (rc == BP_OK) {
            rc = bp_store_session_delete_operator(c->s, id); /* the authorize page's too */
        }
    } else if (rc == BP_OK) {
        bool disable = strcmp(verb, "disable") == 0;
        action = disable ? "Operator disabled" : "Operator enabled";
        rc = bp_store_operator_set_disabled(c->s, id, disable, c->now);
        if (rc == BP_OK && disable) {
            rc = bp_store_operator_revoke_grants(c->s, id, c->now);
        }
    } else {
        action = "";
    }
    if (rc == BP_OK && strcmp(verb, "enable") != 0) {
        rc = bp_store_admin_sessions_delete(c->s, id, c->now);
    }
    rc = bp_admin__finish(c, rc, action, id, NULL);
    wipe_free(hash);
    bp_operator_rec_cleanup(&cur);
    if (rc == BP_OK) {
        rc = bp_store_operator_get(c->s, id, &cur);
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "operator");
    } else {
        bp_admin__json(c, 200, operator_json(&cur));
    }
    bp_operator_rec_cleanup(&cur);
}

/* GET /operators/{id}/tokens, POST /operators/{id}/tokens {"name", "expires_in"} (shown once),
 * POST /operators/{id}/tokens/{token_id}/revoke. */
static void
tokens_list(struct bp_admin_call *c, const char *id)
{
    struct bp_admin_token_rec *recs = NULL;
    size_t n = 0;
    bp_err rc = bp_store_admin_token_list(c->s, id, "token", &recs, &n);
    json_t *a;

    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "operator");
        return;
    }
    a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, token_json(&recs[i], c->now));
    }
    bp_admin_token_recs_free(recs, n);
    bp_admin__json(c, 200, json_pack("{s:o}", "tokens", a));
}

static void
token_create(struct bp_admin_call *c, const char *operator_id)
{
    struct bp_operator_rec owner = {0};
    struct bp_admin_token_rec rec = {0};
    char token[BP_OAUTH_TOKEN_LEN + 1];
    char ulid[BP_ULID_LEN + 1];
    char id[8 + BP_ULID_LEN];
    bool bad = false;
    const char *name = bp_admin__body_str(c, "name", &bad);
    const char *expires_in = bp_admin__body_str(c, "expires_in", &bad);
    int64_t seconds = 90 * 86400;
    json_t *j;
    bp_err rc;

    if (bp_admin__refuse_bad_field(c)) {
        return;
    }
    if (bad || name == NULL || !bp_admin__name_ok(name)) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST", "name must be 1 to 100 printable characters");
        return;
    }
    if (expires_in != NULL && (bp_str_parse_duration(expires_in, &seconds) != BP_OK || seconds <= 0 ||
                               seconds > TOKEN_MAX_DAYS * 86400)) {
        bp_admin__error(c, 400, "GEN_MALFORMED_REQUEST",
                        "expires_in must be <n>s, <n>m, <n>h or <n>d, at most 366d");
        return;
    }
    rc = bp_store_operator_get(c->s, operator_id, &owner);
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "operator");
        return;
    }
    bp_operator_rec_cleanup(&owner);
    /* A token acts as its operator, and every record it leaves names them: one made by someone
     * else would let that person act in their name. Others make their own (the CLI, on the
     * store's host, can make one for anybody: whoever runs it holds the store already). */
    if (strcmp(operator_id, c->op.id) != 0) {
        bp_admin__error(
            c, 403, "AUTH_INSUFFICIENT_PERMISSIONS",
            "an admin token acts as its operator: only they can make one, signed in as themselves "
            "(or with `blnkproxy operator token-create` on the store's host)");
        return;
    }
    if (bp_ulid(ulid) != BP_OK || bp_oauth_token_generate(BP_ADMIN_TOKEN_PREFIX, token) != BP_OK) {
        bp_admin__error(c, 500, "GEN_INTERNAL_ERROR", "the system random source failed");
        return;
    }
    snprintf(id, sizeof(id), "admtok_%s", ulid);
    rec.id = id;
    rec.operator_id = (char *)operator_id;
    rec.kind = "token";
    bp_digest(token, BP_OAUTH_TOKEN_LEN, rec.digest);
    rec.prefix = bp_strndup(token, 16);
    rec.name = (char *)name;
    rec.created_at = c->now;
    rec.expires_at = c->now + seconds;
    rc = bp_store_begin(c->s);
    if (rc == BP_OK) {
        rc =
            bp_admin__finish(c, bp_store_admin_token_insert(c->s, &rec), "Admin token created", rec.id, NULL);
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "operator");
    } else {
        j = token_json(&rec, c->now);
        json_object_set_new(j, "token", json_string(token));
        bp_admin__json(c, 201, j);
    }
    bp_wipe(token, sizeof(token));
    bp_free(rec.prefix);
}

static void
token_revoke(struct bp_admin_call *c, const char *operator_id, const char *id)
{
    struct bp_admin_token_rec rec = {0};
    bp_err rc = bp_store_admin_token_get(c->s, id, &rec);

    if (rc == BP_OK && (strcmp(rec.operator_id, operator_id) != 0 || strcmp(rec.kind, "token") != 0)) {
        rc = BP_ERR_NOT_FOUND;
    }
    if (rc == BP_OK && rec.revoked_at == 0) {
        bp_admin_token_rec_cleanup(&rec);
        rc = bp_store_begin(c->s);
        if (rc == BP_OK) {
            rc = bp_admin__finish(c, bp_store_admin_token_revoke(c->s, id, c->now), "Admin token revoked", id,
                                  NULL);
        }
        if (rc == BP_OK) {
            rc = bp_store_admin_token_get(c->s, id, &rec);
        }
    }
    if (rc != BP_OK) {
        bp_admin__store_error(c, rc, "admin token");
    } else {
        bp_admin__json(c, 200, token_json(&rec, c->now));
    }
    bp_admin_token_rec_cleanup(&rec);
}

void
bp_admin__operators(struct bp_admin_call *c)
{
    const char *verb = c->nseg >= 3 ? c->segs[2] : NULL;

    if (c->nseg == 1 && bp_admin__method(c, "GET")) {
        operators_list(c);
    } else if (c->nseg == 1 && bp_admin__method(c, "POST")) {
        operator_create(c);
    } else if (c->nseg == 1) {
        bp_admin__not_allowed(c, "GET, POST");
    } else if (c->nseg == 2 && strcmp(c->segs[1], "tokens") == 0 && bp_admin__method(c, "GET")) {
        tokens_list(c, NULL); /* everyone's, as `operator tokens` (ids are operator_…: no clash) */
    } else if (c->nseg == 3 && bp_admin__method(c, "POST") &&
               (strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0 || strcmp(verb, "role") == 0 ||
                strcmp(verb, "password") == 0)) {
        operator_change(c, c->segs[1], verb);
    } else if (c->nseg == 3 && strcmp(verb, "tokens") == 0 && bp_admin__method(c, "GET")) {
        tokens_list(c, c->segs[1]);
    } else if (c->nseg == 3 && strcmp(verb, "tokens") == 0 && bp_admin__method(c, "POST")) {
        token_create(c, c->segs[1]);
    } else if (c->nseg == 5 && strcmp(verb, "tokens") == 0 && strcmp(c->segs[4], "revoke") == 0 &&
               bp_admin__method(c, "POST")) {
        token_revoke(c, c->segs[1], c->segs[3]);
    } else {
        bp_admin__error(c, 404, "GEN_NOT_FOUND", "no such admin API resource (see docs/ADMIN_API.md)");
    }
}
