#include <string.h>

#include "audit/audit.h"
#include "cli/cli-int.h"
#include "cli/out.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "oauth/oauth.h"
#include "store/store.h"

/* `operator …`: the people who approve apps on /oauth/authorize (DESIGN §6). A password comes
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

static const char *const list_columns[] = {"id", "name", "status", "created_at", "updated_at"};

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

enum { OF_NAME, OF_PASSWORD_FILE, OF_PASSWORD_ENV, OF_COUNT };

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
            err = bp_cli__finish_audited(s, change, "Operator password changed", id, NULL);
        } else if (err == BP_OK) {
            /* Disabling withdraws what the operator approved, in the same transaction: their
             * token families, unused codes and sign-in sessions. */
            bp_err change = bp_store_operator_set_disabled(s, id, op == OP_DISABLE, now);
            if (change == BP_OK && op == OP_DISABLE) {
                change = bp_store_operator_revoke_grants(s, id, now);
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
};

const struct bp_cli_family bp_cli__family_operator = {
    .name = "operator",
    .help = "manage the people who approve apps on the authorize page",
    .verbs = verbs,
    .nverbs = BP_ARRAY_LEN(verbs),
    .notes = "Operators sign in on /oauth/authorize to approve apps. Passwords are hashed with Argon2id;\n"
             "they are read from a file or an environment variable, never from the command line.\n",
};
