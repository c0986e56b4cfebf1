#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "cli/cli-int.h"
#include "cli/out.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "store/store.h"

/* `key …`: API keys (DESIGN §5). The key text exists only inside `key create`: it is printed
 * once, then wiped; the store keeps its SHA-256 digest and a short prefix for listings. */

static const char *
key_status(const struct bp_key_rec *rec, int64_t now)
{
    if (rec->revoked) {
        return "revoked";
    }
    if (rec->expires_at != 0 && rec->expires_at <= now) {
        return "expired";
    }
    return "active";
}

/* key_text is non-NULL only for the creation output. */
static struct bp_out_obj *
key_obj(const struct bp_key_rec *rec, int64_t now, const char *key_text)
{
    struct bp_out_obj *o = bp_out_obj_new();

    bp_out_str(o, "id", rec->id);
    bp_out_str(o, "name", rec->name);
    if (key_text != NULL) {
        bp_out_str(o, "key", key_text);
    }
    bp_out_str(o, "prefix", rec->prefix);
    bp_out_csv(o, "scopes", rec->scopes);
    bp_out_csv(o, "instances", rec->instances);
    bp_out_str(o, "status", key_status(rec, now));
    bp_out_time(o, "created_at", rec->created_at);
    bp_out_time(o, "expires_at", rec->expires_at);
    bp_out_time(o, "last_used_at", rec->last_used_at);
    return o;
}

static int
print_key(const struct bp_key_rec *rec, bool json)
{
    struct bp_out_obj *o = key_obj(rec, bp_clock_wall_s(), NULL);
    int rc = bp_out_print_obj(o, json);
    bp_out_obj_free(o);
    return rc;
}

/* ---- validation ---- */

/* ---- commands ---- */

enum { CF_NAME, CF_SCOPES, CF_EXPIRES_IN, CF_INSTANCES, CF_COUNT };

/* Generates the key, stores its digest and prints it once. */
static int
create_and_print(struct bp_store *s, struct bp_key_rec *rec, bool json)
{
    char key[BP_APIKEY_LEN + 1];
    struct bp_out_obj *o;
    bp_err err;
    int rc;

    if (bp_apikey_generate(key) != BP_OK) {
        bp_cli__error("cannot generate a key: the system random source failed");
        return BP_CLI_EXIT_FAIL;
    }
    bp_digest(key, BP_APIKEY_LEN, rec->digest);
    rec->prefix = bp_strndup(key, BP_APIKEY_LIST_PREFIX_LEN);
    /* The key and its audit record (issue 4) land together or not at all. */
    err = bp_store_begin(s);
    if (err == BP_OK) {
        err = bp_cli__finish_audited(s, bp_store_key_insert(s, rec), "Key created", rec->id, NULL);
    }
    if (err != BP_OK) {
        bp_wipe(key, sizeof(key));
        /* EXISTS here would be a ULID or digest collision: not the operator's doing. */
        bp_cli__error("cannot store the key: %s", bp_store_last_error(s));
        return BP_CLI_EXIT_FAIL;
    }
    o = key_obj(rec, rec->created_at, json ? key : NULL);
    rc = bp_out_print_obj(o, json);
    bp_out_obj_free(o);
    bp_out_secret(json, "API key", key);
    bp_wipe(key, sizeof(key));
    return rc;
}

static int
key_create(struct bp_cli_ctx *ctx, int argc, char **argv)
{
    struct bp_cli_flag flags[CF_COUNT] = {
        [CF_NAME] = {.name = "--name", .has_value = true},
        [CF_SCOPES] = {.name = "--scopes", .has_value = true},
        [CF_EXPIRES_IN] = {.name = "--expires-in", .has_value = true},
        [CF_INSTANCES] = {.name = "--instances", .has_value = true},
    };
    struct bp_key_rec rec = {0};
    struct bp_store *s = NULL;
    char scopes[BP_CLI_SCOPES_MAX];
    char ulid[BP_ULID_LEN + 1];
    int rc;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags, CF_COUNT, 0, 0);
    if (!flags[CF_NAME].seen || !flags[CF_SCOPES].seen) {
        bp_cli__error("key create needs --name and --scopes");
        return BP_CLI_EXIT_USAGE;
    }
    if (!bp_cli__name_is_valid(flags[CF_NAME].value)) {
        bp_cli__error("invalid --name: must be 1..100 printable ASCII characters without "
                      "leading or trailing spaces");
        return BP_CLI_EXIT_USAGE;
    }
    rc = bp_cli__parse_scopes(flags[CF_SCOPES].value, scopes);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    rec.created_at = bp_clock_wall_s();
    if (flags[CF_EXPIRES_IN].seen) {
        rc = bp_cli__parse_expiry(flags[CF_EXPIRES_IN].value, rec.created_at, &rec.expires_at);
        if (rc != BP_CLI_EXIT_OK) {
            return rc;
        }
    }
    if (bp_ulid(ulid) != BP_OK) {
        bp_cli__error("cannot generate an id");
        return BP_CLI_EXIT_FAIL;
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    if (flags[CF_INSTANCES].seen) {
        rc = bp_cli__parse_instances(s, flags[CF_INSTANCES].value, &rec.instances);
        if (rc != BP_CLI_EXIT_OK) {
            goto done;
        }
    }
    rec.id = bp_malloc(strlen("key_") + BP_ULID_LEN + 1);
    snprintf(rec.id, strlen("key_") + BP_ULID_LEN + 1, "key_%s", ulid);
    rec.name = bp_strdup(flags[CF_NAME].value);
    rec.scopes = bp_strdup(scopes);
    rc = create_and_print(s, &rec, ctx->json);

done:
    bp_store_close(s);
    bp_key_rec_cleanup(&rec);
    return rc;
}

static int
key_list(struct bp_cli_ctx *ctx, int argc, char **argv)
{
    static const char *const columns[] = {"id",        "name",   "prefix",     "scopes",
                                          "instances", "status", "expires_at", "last_used_at"};
    struct bp_store *s = NULL;
    struct bp_key_rec *recs = NULL;
    struct bp_out_obj **rows;
    int64_t now = bp_clock_wall_s();
    size_t n = 0;
    int rc;
    bp_err err;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL, 0, 0, 0);
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = bp_store_key_list(s, &recs, &n);
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "keys", "");
        bp_store_close(s);
        return rc;
    }
    bp_store_close(s);
    rows = bp_calloc(n + 1, sizeof(*rows));
    for (size_t i = 0; i < n; i++) {
        rows[i] = key_obj(&recs[i], now, NULL);
    }
    rc = bp_out_print_list("keys", rows, n, columns, BP_ARRAY_LEN(columns), ctx->json);
    for (size_t i = 0; i < n; i++) {
        bp_out_obj_free(rows[i]);
    }
    bp_free(rows);
    bp_key_recs_free(recs, n);
    return rc;
}

/* show, revoke and expire: one ID, an optional change, then the key as it now stands. */
enum key_op { KEY_SHOW, KEY_REVOKE, KEY_EXPIRE };

/* The change and its audit record (issue 4), in one transaction. */
static bp_err
change_key(struct bp_store *s, enum key_op op, const char *id, int64_t expires_at)
{
    bp_err err = bp_store_begin(s);

    if (err == BP_OK) {
        err = bp_cli__finish_audited(s,
                                     op == KEY_EXPIRE ? bp_store_key_set_expiry(s, id, expires_at)
                                                      : bp_store_key_revoke(s, id, bp_clock_wall_s()),
                                     op == KEY_EXPIRE ? "Key expiry changed" : "Key revoked", id, NULL);
    }
    return err;
}

static bp_err
apply_op(struct bp_store *s, enum key_op op, const char *id, int64_t expires_at, bool json)
{
    struct bp_key_rec cur = {0};
    bp_err err;

    if (op == KEY_SHOW) {
        return BP_OK;
    }
    if (op == KEY_EXPIRE) {
        return change_key(s, op, id, expires_at);
    }
    err = bp_store_key_get(s, id, &cur);
    if (err == BP_OK && cur.revoked) {
        bp_out_note(json, "Key was already revoked.");
    } else if (err == BP_OK) {
        err = change_key(s, op, id, 0);
    }
    bp_key_rec_cleanup(&cur);
    return err;
}

static int
key_one(struct bp_cli_ctx *ctx, int argc, char **argv, enum key_op op)
{
    struct bp_cli_flag flags[] = {{.name = "--expires-in", .has_value = true}};
    struct bp_key_rec rec = {0};
    struct bp_store *s = NULL;
    int64_t expires_at = 0;
    int rc;
    bp_err err;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags, op == KEY_EXPIRE ? 1 : 0, 1, 1);
    if (op == KEY_EXPIRE) {
        if (!flags[0].seen) {
            bp_cli__error("key expire needs --expires-in (e.g. 7d or never)");
            return BP_CLI_EXIT_USAGE;
        }
        rc = bp_cli__parse_expiry(flags[0].value, bp_clock_wall_s(), &expires_at);
        if (rc != BP_CLI_EXIT_OK) {
            return rc;
        }
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = apply_op(s, op, ctx->pos[0], expires_at, ctx->json);
    if (err == BP_OK) {
        err = bp_store_key_get(s, ctx->pos[0], &rec);
    }
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "key", ctx->pos[0]);
    } else {
        rc = print_key(&rec, ctx->json);
    }
    bp_store_close(s);
    bp_key_rec_cleanup(&rec);
    return rc;
}

int
bp_cli__cmd_key(struct bp_cli_ctx *ctx, int argc, char **argv)
{
    const char *verb = argv[0];

    if (strcmp(verb, "create") == 0) {
        return key_create(ctx, argc - 1, argv + 1);
    }
    if (strcmp(verb, "list") == 0) {
        return key_list(ctx, argc - 1, argv + 1);
    }
    if (strcmp(verb, "show") == 0) {
        return key_one(ctx, argc - 1, argv + 1, KEY_SHOW);
    }
    if (strcmp(verb, "revoke") == 0) {
        return key_one(ctx, argc - 1, argv + 1, KEY_REVOKE);
    }
    if (strcmp(verb, "expire") == 0) {
        return key_one(ctx, argc - 1, argv + 1, KEY_EXPIRE);
    }
    bp_cli__error("unknown key command %.40s (see `blnkproxy help key`)", verb);
    return BP_CLI_EXIT_USAGE;
}
