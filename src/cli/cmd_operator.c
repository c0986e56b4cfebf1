#include <string.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "cli/cli-int.h"
#include "cli/out.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "oauth/oauth.h"
#include "store/store.h"

/* `operator …`: the people who approve apps on /oauth/authorize (DESIGN §6) and who use the
 * admin API (issue 13) with a role: admin, auditor, or approver (the authorize page only). A password comes
 * only from a file or an environment variable, is hashed with Argon2id at once and wiped; it is
 * never printed, and the output never carries the hash either. Every change is written together
 * with its admin audit record, in one transaction. Disabling an operator also revokes every
 * token family they approved, their unused codes and their sessions; a password change signs
 * them out everywhere. */

#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024

static struct bp_out_obj *
operator_obj(const struct bp_operator_rec *rec)
{
    struct bp_out_obj *o = bp_out_obj_new();

    bp_out_str(o, "id", rec->id);
    bp_out_str(o, "name", rec->name);
    bp_out_str(o, "role", rec->role != NULL ? rec->role : "approver");
    bp_out_str(o, "status", rec->disabled ? "disabled" : "active");
    bp_out_time(o, "created_at", rec->created_at);
    bp_out_time(o, "updated_at", rec->updated_at);
    return o;
}

/* ---- the record kind, for the shared verbs ---- */

static bp_err
kind_get(struct bp_store *s, const char *id, void *rec)
{
    return bp_store_operator_get(s, id, rec);
}

static bp_err
kind_list(struct bp_store *s, void **recs, size_t *n)
{
    struct bp_operator_rec *r = NULL;
    bp_err err = bp_store_operator_list(s, &r, n);

    *recs = r;
    return err;
}

static struct bp_out_obj *
kind_obj(const void *rec, int64_t now)
{
    return operator_obj(rec);
}

static void
kind_cleanup(void *rec)
{
    bp_operator_rec_cleanup(rec);
}

static const char *const list_columns[] = {"id", "name", "role", "status", "created_at", "updated_at"};

static const struct bp_cli_kind operator_kind = {
    .noun = "operator",
    .plural = "operators",
    .columns = list_columns,
    .ncolumns = BP_ARRAY_LEN(list_columns),
    .rec_size = sizeof(struct bp_operator_rec),
    .get = kind_get,
    .list = kind_list,
    .obj = kind_obj,
    .cleanup = kind_cleanup,
};

static int
print_operator(const struct bp_operator_rec *rec, bool json)
{
    struct bp_out_obj *o = operator_obj(rec);
    int rc = bp_out_print_obj(o, json);
    bp_out_obj_free(o);
    return rc;
}

/* A password on the command line would stay in `ps` and the shell history: say so instead of
 * "unknown option", without echoing what followed. */
static int
refuse_password_argv(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--password") == 0 || strncmp(argv[i], "--password=", 11) == 0) {
            bp_cli__error("there is no --password option: passwords never go on the command line; "
                          "use --password-file FILE or --password-env VAR");
            return BP_CLI_EXIT_USAGE;
        }
    }
    return BP_CLI_EXIT_OK;
}

/* Reads the password named by the two flags and hashes it. *out_hash is allocated. */
static int
read_and_hash(const struct bp_cli_flag *file, const struct bp_cli_flag *env, const char *verb,
              char **out_hash)
{
    char *pw = NULL;
    size_t len = 0;
    bp_err err;
    int rc = bp_cli__read_secret(file, env, false, &pw, &len);

    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    if (pw == NULL) {
        bp_cli__error("operator %s needs --password-file FILE or --password-env VAR", verb);
        return BP_CLI_EXIT_USAGE;
    }
    if (len < PASSWORD_MIN || len > PASSWORD_MAX) {
        bp_cli__error("the password must be %d..%d bytes", PASSWORD_MIN, PASSWORD_MAX);
        rc = BP_CLI_EXIT_USAGE;
        goto done;
    }
    err = bp_password_hash(pw, len, out_hash);
    if (err != BP_OK) {
        bp_cli__error("cannot hash the password (%s)", bp_err_str(err));
        rc = BP_CLI_EXIT_FAIL;
    }

done:
    bp_wipe(pw, len);
    bp_free(pw);
    return rc;
}

/* ---- commands ---- */

enum { OF_NAME, OF_PASSWORD_FILE, OF_PASSWORD_ENV, OF_ROLE, OF_COUNT };

static bool
role_is_valid(const char *role)
{
    return bp_oauth_role_parse(role) != BP_OAUTH_ROLE_UNKNOWN;
}

static int
operator_create(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[OF_COUNT];
    struct bp_operator_rec rec = {0};
    struct bp_store *s = NULL;
    bp_err err;
    int rc = refuse_password_argv(argc, argv);

    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    if (!flags[OF_NAME].seen) {
        bp_cli__error("operator create needs --name");
        return BP_CLI_EXIT_USAGE;
    }
    rc = bp_cli__check_name(flags[OF_NAME].value);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    if (flags[OF_ROLE].seen && !role_is_valid(flags[OF_ROLE].value)) {
        bp_cli__error("invalid --role: use admin, auditor or approver");
        return BP_CLI_EXIT_USAGE;
    }
    rec.role = bp_strdup(flags[OF_ROLE].seen ? flags[OF_ROLE].value : "approver");
    rec.id = bp_cli__new_id("operator");
    if (rec.id == NULL) {
        return BP_CLI_EXIT_FAIL;
    }
    rc = read_and_hash(&flags[OF_PASSWORD_FILE], &flags[OF_PASSWORD_ENV], "create", &rec.password_hash);
    if (rc != BP_CLI_EXIT_OK) {
        goto done;
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        goto done;
    }
    rec.name = bp_strdup(flags[OF_NAME].value);
    rec.created_at = bp_clock_wall_s();
    rec.updated_at = rec.created_at;
    err = bp_store_begin(s);
    if (err == BP_OK) {
        err = bp_cli__finish_audited(s, bp_store_operator_insert(s, &rec), "Operator created", rec.id, NULL);
    }
    if (err == BP_ERR_EXISTS) {
        bp_cli__error("an operator named \"%s\" already exists", rec.name);
        rc = BP_CLI_EXIT_USAGE;
    } else if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "operator", rec.id);
    } else {
        rc = print_operator(&rec, ctx->json);
    }

done:
    bp_store_close(s);
    bp_operator_rec_cleanup(&rec);
    return rc;
}

static int
operator_list(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    return bp_cli__list(ctx, argc, argv, &operator_kind);
}

/* disable, enable and passwd: one ID, a change, then the operator as it now stands. */
enum operator_op { OP_DISABLE, OP_ENABLE, OP_PASSWD };

struct operator_change {
    int op;
    const char *hash; /* OP_PASSWD: the new password's hash */
};

static bp_err
apply_op(struct bp_store *s, const char *id, const void *arg, bool json)
{
    const struct operator_change *req = arg;
    int op = req->op;
    const char *hash = req->hash;
    struct bp_operator_rec cur = {0};
    int64_t now = bp_clock_wall_s();
    bp_err err = bp_store_operator_get(s, id, &cur);

    if (err != BP_OK) {
        return err;
    }
    if (op != OP_PASSWD && cur.disabled == (op == OP_DISABLE)) {
        bp_out_note(json,
                    op == OP_DISABLE ? "Operator was already disabled." : "Operator was already enabled.");
    } else {
        err = bp_store_begin(s);
        if (err == BP_OK && op == OP_PASSWD) {
            /* Whoever signed in with the old password is signed out. */
            bp_err change = bp_store_operator_set_password(s, id, hash, now);
            if (change == BP_OK) {
                change = bp_store_session_delete_operator(s, id);
            }
            if (change == BP_OK) {
                change = bp_store_admin_sessions_delete(s, id, now);
            }
            err = bp_cli__finish_audited(s, change, "Operator password changed", id, NULL);
        } else if (err == BP_OK) {
            /* Disabling withdraws what the operator approved, in the same transaction: their
             * token families, unused codes and sign-in sessions. */
            bp_err change = bp_store_operator_set_disabled(s, id, op == OP_DISABLE, now);
            if (change == BP_OK && op == OP_DISABLE) {
                change = bp_store_operator_revoke_grants(s, id, now);
            }
            if (change == BP_OK && op == OP_DISABLE) {
                change = bp_store_admin_sessions_delete(s, id, now);
            }
            err = bp_cli__finish_audited(s, change, op == OP_DISABLE ? "Operator disabled" : "Operator enabled", id,
                                         NULL);
        }
    }
    bp_operator_rec_cleanup(&cur);
    return err;
}

static int
operator_one(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[2];
    struct operator_change change = {.op = op};
    char *hash = NULL;
    int rc = refuse_password_argv(argc, argv);

    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, op == OP_PASSWD ? flags : NULL);
    if (op == OP_PASSWD) {
        rc = read_and_hash(&flags[0], &flags[1], "passwd", &hash);
        if (rc != BP_CLI_EXIT_OK) {
            return rc;
        }
    }
    change.hash = hash;
    rc = bp_cli__one(ctx, &operator_kind, apply_op, &change);
    if (hash != NULL) {
        bp_wipe(hash, strlen(hash));
        bp_free(hash);
    }
    return rc;
}

/* operator role ID ROLE: what the operator may do in the admin API from now on; their console
 * sessions end (they sign in again with the new role). */
static int
operator_role(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_store *s = NULL;
    struct bp_operator_rec rec = {0};
    const char *id;
    const char *role;
    int64_t now = bp_clock_wall_s();
    bp_err err;
    int rc;
    (void)op;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    id = ctx->pos[0];
    role = ctx->pos[1];
    if (!role_is_valid(role)) {
        bp_cli__error("invalid role: use admin, auditor or approver");
        return BP_CLI_EXIT_USAGE;
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = bp_store_begin(s);
    if (err == BP_OK) {
        bp_err change = bp_store_operator_set_role(s, id, role, now);
        if (change == BP_OK) {
            change = bp_store_admin_sessions_delete(s, id, now);
        }
        if (change == BP_OK) {
            change = bp_store_session_delete_operator(s, id);
        }
        err = bp_cli__finish_audited(s, change, "Operator role changed", id, NULL);
    }
    if (err == BP_OK) {
        err = bp_store_operator_get(s, id, &rec);
    }
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "operator", id);
    } else {
        rc = print_operator(&rec, ctx->json);
    }
    bp_operator_rec_cleanup(&rec);
    bp_store_close(s);
    return rc;
}

/* ---- admin API tokens ---- */

static struct bp_out_obj *
token_obj(const struct bp_admin_token_rec *t, int64_t now)
{
    struct bp_out_obj *o = bp_out_obj_new();

    bp_out_str(o, "id", t->id);
    bp_out_str(o, "operator_id", t->operator_id);
    bp_out_str(o, "name", t->name);
    bp_out_str(o, "prefix", t->prefix);
    bp_out_str(o, "status", bp_cli__cred_status(t->revoked_at != 0, t->expires_at, now));
    bp_out_time(o, "created_at", t->created_at);
    bp_out_time(o, "expires_at", t->expires_at);
    bp_out_time(o, "revoked_at", t->revoked_at);
    return o;
}

enum { TF_NAME, TF_EXPIRES_IN, TF_COUNT };

/* operator token-create ID --name NAME [--expires-in D]: an admin API token for the operator,
 * printed once (only its SHA-256 is kept); it acts with the operator's role. */
static int
operator_token_create(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[TF_COUNT];
    struct bp_admin_token_rec rec = {0};
    struct bp_operator_rec owner = {0};
    struct bp_store *s = NULL;
    char token[BP_OAUTH_TOKEN_LEN + 1];
    struct bp_out_obj *o;
    int64_t now = bp_clock_wall_s();
    bp_err err;
    int rc;
    (void)op;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    rc = bp_cli__check_name(flags[TF_NAME].value);
    if (rc == BP_CLI_EXIT_OK) {
        rc = bp_cli__parse_expiry(flags[TF_EXPIRES_IN].seen ? flags[TF_EXPIRES_IN].value : "90d", now,
                                  &rec.expires_at);
    }
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    if (rec.expires_at == 0) {
        bp_cli__error("invalid --expires-in: an admin token must expire (at most 366d)");
        return BP_CLI_EXIT_USAGE;
    }
    if (rec.expires_at > now + 366 * 86400) {
        bp_cli__error("invalid --expires-in: at most 366d");
        return BP_CLI_EXIT_USAGE;
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = bp_store_operator_get(s, ctx->pos[0], &owner);
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "operator", ctx->pos[0]);
        goto done;
    }
    if (bp_oauth_token_generate(BP_ADMIN_TOKEN_PREFIX, token) != BP_OK) {
        bp_cli__error("cannot generate a token: the system random source failed");
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    rec.id = bp_cli__new_id("admtok");
    rec.operator_id = bp_strdup(owner.id);
    rec.kind = bp_strdup("token");
    bp_digest(token, BP_OAUTH_TOKEN_LEN, rec.digest);
    rec.prefix = bp_strndup(token, 8 + 8);
    rec.name = bp_strdup(flags[TF_NAME].value);
    rec.created_at = now;
    err = rec.id != NULL ? bp_store_begin(s) : BP_ERR_NOMEM;
    if (err == BP_OK) {
        err = bp_cli__finish_audited(s, bp_store_admin_token_insert(s, &rec), "Admin token created", rec.id, NULL);
    }
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "admin token", "");
        goto done;
    }
    if (strcmp(owner.role, "approver") == 0) {
        bp_out_note(ctx->json, "This operator's role is approver: the admin API refuses the token until an admin "
                               "gives them a role (operator role ID admin|auditor).");
    }
    o = token_obj(&rec, now);
    if (ctx->json) {
        bp_out_str(o, "token", token);
    }
    rc = bp_out_print_obj(o, ctx->json);
    bp_out_obj_free(o);
    bp_out_secret(ctx->json, "Admin token", token);

done:
    bp_wipe(token, sizeof(token));
    bp_admin_token_rec_cleanup(&rec);
    bp_operator_rec_cleanup(&owner);
    bp_store_close(s);
    return rc;
}

static int
operator_tokens(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    static const char *const columns[] = {"id", "operator_id", "name", "prefix", "status", "expires_at"};
    struct bp_admin_token_rec *recs = NULL;
    struct bp_out_obj **rows;
    struct bp_store *s = NULL;
    int64_t now = bp_clock_wall_s();
    size_t n = 0;
    bp_err err;
    int rc;
    (void)op;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = bp_store_admin_token_list(s, ctx->npos > 0 ? ctx->pos[0] : NULL, "token", &recs, &n);
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "admin tokens", "");
        bp_store_close(s);
        return rc;
    }
    bp_store_close(s);
    rows = bp_calloc(n + 1, sizeof(*rows));
    for (size_t i = 0; i < n; i++) {
        rows[i] = token_obj(&recs[i], now);
    }
    rc = bp_out_print_list("tokens", rows, n, columns, BP_ARRAY_LEN(columns), ctx->json);
    for (size_t i = 0; i < n; i++) {
        bp_out_obj_free(rows[i]);
    }
    bp_free(rows);
    bp_admin_token_recs_free(recs, n);
    return rc;
}

static int
operator_token_revoke(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_admin_token_rec rec = {0};
    struct bp_store *s = NULL;
    int64_t now = bp_clock_wall_s();
    struct bp_out_obj *o;
    bp_err err;
    int rc;
    (void)op;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = bp_store_admin_token_get(s, ctx->pos[0], &rec);
    if (err == BP_OK && rec.revoked_at == 0) {
        err = bp_store_begin(s);
        if (err == BP_OK) {
            err = bp_cli__finish_audited(s, bp_store_admin_token_revoke(s, rec.id, now), "Admin token revoked",
                                         rec.id, NULL);
        }
        bp_admin_token_rec_cleanup(&rec);
        if (err == BP_OK) {
            err = bp_store_admin_token_get(s, ctx->pos[0], &rec);
        }
    }
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "admin token", ctx->pos[0]);
    } else {
        o = token_obj(&rec, now);
        rc = bp_out_print_obj(o, ctx->json);
        bp_out_obj_free(o);
    }
    bp_admin_token_rec_cleanup(&rec);
    bp_store_close(s);
    return rc;
}

/* ---- the family as data: parsed by bp_cli__parse, shown by help, man page and completion ---- */

#define PASSWORD_FILE_HELP "read the password from FILE, without its trailing newline"
#define PASSWORD_ENV_HELP "read the password from the environment variable VAR"

static const struct bp_cli_opt create_opts[OF_COUNT] = {
    [OF_NAME] = {"--name", "NAME", .help = "the name the operator signs in with: 1..100 printable ASCII characters",
                 .required = true},
    [OF_PASSWORD_FILE] = {"--password-file", "FILE", .help = PASSWORD_FILE_HELP, .group = 1, .required = true,
                          .complete = "@file"},
    [OF_PASSWORD_ENV] = {"--password-env", "VAR", .help = PASSWORD_ENV_HELP, .group = 1, .required = true,
                         .complete = "@env"},
    [OF_ROLE] = {"--role", "ROLE",
                 .help = "admin (the admin API, everything), auditor (the admin API, reading only) or approver "
                         "(the authorize page only; the default)",
                 .complete = "admin auditor approver"},
};

static const struct bp_cli_opt token_opts[TF_COUNT] = {
    [TF_NAME] = {"--name", "NAME", .help = "what the token is for (1..100 printable ASCII characters)",
                 .required = true},
    [TF_EXPIRES_IN] = {"--expires-in", "DURATION", .help = "its lifetime: <n>s, <n>m, <n>h or <n>d, at most 366d "
                                                           "(default 90d)"},
};

static const struct bp_cli_opt passwd_opts[2] = {
    {"--password-file", "FILE", .help = PASSWORD_FILE_HELP, .group = 1, .required = true, .complete = "@file"},
    {"--password-env", "VAR", .help = PASSWORD_ENV_HELP, .group = 1, .required = true, .complete = "@env"},
};

static const struct bp_cli_verb verbs[] = {
    {"create", operator_create, 0, .help = "add an operator who may approve apps on the authorize page",
     .opts = create_opts, .nopts = BP_ARRAY_LEN(create_opts)},
    {"list", operator_list, 0, .help = "list every operator"},
    {"disable", operator_one, OP_DISABLE, .help = "stop the operator from signing in", .args = "ID", .min_args = 1,
     .max_args = 1},
    {"enable", operator_one, OP_ENABLE, .help = "let the operator sign in again", .args = "ID", .min_args = 1,
     .max_args = 1},
    {"passwd", operator_one, OP_PASSWD, .help = "set a new password", .args = "ID", .min_args = 1, .max_args = 1,
     .opts = passwd_opts, .nopts = BP_ARRAY_LEN(passwd_opts)},
    {"role", operator_role, 0, .help = "set what the operator may do in the admin API (admin, auditor, approver)",
     .args = "ID ROLE", .min_args = 2, .max_args = 2},
    {"token-create", operator_token_create, 0, .help = "make an admin API token for the operator and print it, once",
     .args = "ID", .min_args = 1, .max_args = 1, .opts = token_opts, .nopts = BP_ARRAY_LEN(token_opts)},
    {"tokens", operator_tokens, 0, .help = "list admin API tokens (an operator's, or everyone's)", .args = "[ID]",
     .max_args = 1},
    {"token-revoke", operator_token_revoke, 0, .help = "revoke an admin API token", .args = "TOKEN_ID",
     .min_args = 1, .max_args = 1},
};

const struct bp_cli_family bp_cli__family_operator = {
    .name = "operator",
    .help = "manage the people who approve apps on the authorize page and use the admin API",
    .verbs = verbs,
    .nverbs = BP_ARRAY_LEN(verbs),
    .notes = "Operators sign in on /oauth/authorize to approve apps (roles approver and admin), and to\n"
             "the admin API under /admin/api/ (roles admin and auditor; docs/ADMIN_API.md), with a\n"
             "password or an admin token from token-create. Passwords are hashed with Argon2id;\n"
             "they are read from a file or an environment variable, never from the command line.\n",
};
