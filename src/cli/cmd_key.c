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
    bp_out_csv(o, "allow_from", rec->allow_from);
    bp_cli__out_rate(o, rec->rate_limit, rec->rate_burst);
    bp_out_str(o, "status", bp_cli__cred_status(rec->revoked, rec->expires_at, now));
    bp_out_time(o, "created_at", rec->created_at);
    bp_out_time(o, "expires_at", rec->expires_at);
    bp_out_time(o, "last_used_at", rec->last_used_at);
    /* key show: the rotation that made this key, or replaced it (key rotate). */
    if (rec->replaces != NULL) {
        bp_out_str(o, "replaces", rec->replaces);
    }
    if (rec->replaced_by != NULL) {
        bp_out_str(o, "replaced_by", rec->replaced_by);
    }
    return o;
}

/* ---- the record kind, for the shared verbs ---- */

/* The key with its rotation links (key show). */
static bp_err
get_with_links(struct bp_store *s, const char *id, struct bp_key_rec *rec)
{
    bp_err err = bp_store_key_get(s, id, rec);

    if (err == BP_OK) {
        err = bp_store_key_links(s, id, &rec->replaces, &rec->replaced_by);
        if (err != BP_OK) {
            bp_key_rec_cleanup(rec);
        }
    }
    return err;
}

static bp_err
kind_get(struct bp_store *s, const char *id, void *rec)
{
    return get_with_links(s, id, rec);
}

static bp_err
kind_list(struct bp_store *s, void **recs, size_t *n)
{
    struct bp_key_rec *r = NULL;
    bp_err err = bp_store_key_list(s, &r, n);

    *recs = r;
    return err;
}

static struct bp_out_obj *
kind_obj(const void *rec, int64_t now)
{
    return key_obj(rec, now, NULL);
}

static void
kind_cleanup(void *rec)
{
    bp_key_rec_cleanup(rec);
}

static const char *const list_columns[] = {"id",        "name",   "prefix",     "scopes",
                                           "instances", "status", "expires_at", "last_used_at"};

static const struct bp_cli_kind key_kind = {
    .noun = "key",
    .plural = "keys",
    .columns = list_columns,
    .ncolumns = BP_ARRAY_LEN(list_columns),
    .rec_size = sizeof(struct bp_key_rec),
    .get = kind_get,
    .list = kind_list,
    .obj = kind_obj,
    .cleanup = kind_cleanup,
};

/* ---- commands ---- */

enum { CF_NAME, CF_SCOPES, CF_EXPIRES_IN, CF_INSTANCES, CF_ALLOW_FROM, CF_RATE, CF_BURST, CF_COUNT };

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
key_create(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[CF_COUNT];
    struct bp_key_rec rec = {0};
    struct bp_cred_limits limits;
    struct bp_store *s = NULL;
    char scopes[BP_CLI_SCOPES_MAX];
    int rc;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    if (!flags[CF_NAME].seen || !flags[CF_SCOPES].seen) {
        bp_cli__error("key create needs --name and --scopes");
        return BP_CLI_EXIT_USAGE;
    }
    rc = bp_cli__check_name(flags[CF_NAME].value);
    if (rc == BP_CLI_EXIT_OK) {
        rc = bp_cli__parse_scopes(flags[CF_SCOPES].value, scopes);
    }
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
    rc = bp_cli__parse_limits(&flags[CF_ALLOW_FROM], &flags[CF_RATE], &flags[CF_BURST], &limits);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    rec.allow_from = limits.allow_from;
    rec.rate_limit = limits.rate_limit;
    rec.rate_burst = limits.burst;
    rec.id = bp_cli__new_id("key");
    if (rec.id == NULL) {
        bp_key_rec_cleanup(&rec);
        return BP_CLI_EXIT_FAIL;
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        goto done;
    }
    if (flags[CF_INSTANCES].seen) {
        rc = bp_cli__parse_instances(s, flags[CF_INSTANCES].value, &rec.instances);
        if (rc != BP_CLI_EXIT_OK) {
            goto done;
        }
    }
    rec.name = bp_strdup(flags[CF_NAME].value);
    rec.scopes = bp_strdup(scopes);
    rc = create_and_print(s, &rec, ctx->json);

done:
    bp_store_close(s);
    bp_key_rec_cleanup(&rec);
    return rc;
}

static int
key_list(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    return bp_cli__list(ctx, argc, argv, &key_kind);
}

/* show, revoke and expire: one ID, an optional change, then the key as it now stands. */
enum key_op { KEY_SHOW, KEY_REVOKE, KEY_EXPIRE };

struct key_change {
    int op; /* KEY_REVOKE or KEY_EXPIRE */
    int64_t expires_at;
};

/* The change and its audit record (issue 4), in one transaction. */
static bp_err
change_key(struct bp_store *s, int op, const char *id, int64_t expires_at)
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
apply_op(struct bp_store *s, const char *id, const void *arg, bool json)
{
    const struct key_change *change = arg;
    struct bp_key_rec cur = {0};
    bp_err err;

    if (change->op == KEY_EXPIRE) {
        return change_key(s, change->op, id, change->expires_at);
    }
    err = bp_store_key_get(s, id, &cur);
    if (err == BP_OK && cur.revoked) {
        bp_out_note(json, "Key was already revoked.");
    } else if (err == BP_OK) {
        err = change_key(s, change->op, id, 0);
    }
    bp_key_rec_cleanup(&cur);
    return err;
}

static int
key_one(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct key_change change = {.op = op};
    int rc = bp_cli__parse_id_expiry(ctx, argc, argv, &change.expires_at);

    if (rc != BP_CLI_EXIT_OK) {
        return rc == BP_CLI_HELP_SHOWN ? BP_CLI_EXIT_OK : rc;
    }
    return bp_cli__one(ctx, &key_kind, op == KEY_SHOW ? NULL : apply_op, &change);
}

/* key update ID [--allow-from LIST|any] [--rate R [--burst N]]: where the key may be used from,
 * and how fast, changed in place (the key stays the same). Running servers apply it before the
 * command returns. */
static const struct bp_cli_limits_ops limits_ops = {
    .set_allow_from = bp_store_key_set_allow_from,
    .set_rate = bp_store_key_set_rate,
    .allow_action = "Key allow-list changed",
    .rate_action = "Key rate limit changed",
};

static int
key_update(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    (void)op;
    return bp_cli__update_limits(ctx, argc, argv, &key_kind, &limits_ops);
}

/* key rotate: a new key with the old one's name, scopes and instances (shown once); the old one
 * expires after the grace period, so both work meanwhile. One transaction: the new key, the old
 * one's expiry, the links between them, and two audit records with one operation id. */
enum { RF_GRACE, RF_COUNT };

static int
key_rotate(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[RF_COUNT];
    struct bp_key_rec old = {0};
    struct bp_key_rec rec = {0};
    struct bp_store *s = NULL;
    char key[BP_APIKEY_LEN + 1];
    char operation[BP_UUID_LEN + 1];
    int64_t now = bp_clock_wall_s();
    int64_t old_until = 0;
    struct bp_out_obj *o;
    bp_err err;
    int rc;
    (void)op;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    rc = bp_cli__parse_grace(flags[RF_GRACE].seen ? flags[RF_GRACE].value : "24h", now, &old_until);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = get_with_links(s, ctx->pos[0], &old);
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "key", ctx->pos[0]);
        goto done;
    }
    if (old.revoked || (old.expires_at != 0 && old.expires_at <= now)) {
        bp_cli__error("key %s is %s: there is nothing to rotate; create a new key instead", old.id,
                      old.revoked ? "revoked" : "expired");
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    if (old.replaced_by != NULL) {
        bp_cli__error("key %s was rotated already (replaced by %s): rotate that one", old.id,
                      old.replaced_by);
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    /* The old key stops at the end of the grace, or at its own expiry when that comes first. */
    if (old.expires_at != 0 && old.expires_at < old_until) {
        old_until = old.expires_at;
    }
    rec.id = bp_cli__new_id("key");
    if (rec.id == NULL || bp_uuid7(operation) != BP_OK || bp_apikey_generate(key) != BP_OK) {
        bp_cli__error("cannot generate a key: the system random source failed");
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    bp_key_rec_inherit(&rec, &old);
    rec.created_at = now;
    bp_digest(key, BP_APIKEY_LEN, rec.digest);
    rec.prefix = bp_strndup(key, BP_APIKEY_LIST_PREFIX_LEN);
    err = bp_store_begin(s);
    if (err == BP_OK) {
        err = bp_store_key_rotate(s, &rec, old.id, old_until);
    }
    if (err == BP_OK) {
        err = bp_audit_admin_op(s, "Key rotated", old.id, NULL, operation);
    }
    err = bp_cli__finish_audited_op(s, err, "Key created", rec.id, NULL, operation);
    if (err == BP_ERR_EXISTS) {
        bp_wipe(key, sizeof(key));
        bp_cli__error("cannot rotate the key: it changed meanwhile (rotated, revoked or updated: see "
                      "`blnkproxy key show %s`); try again",
                      old.id);
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    if (err != BP_OK) {
        bp_wipe(key, sizeof(key));
        bp_cli__error("cannot rotate the key: %s", bp_store_last_error(s));
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    rec.replaces = bp_strdup(old.id);
    o = key_obj(&rec, now, ctx->json ? key : NULL);
    bp_out_time(o, "replaced_key_expires_at", old_until);
    rc = bp_out_print_obj(o, ctx->json);
    bp_out_obj_free(o);
    bp_out_secret(ctx->json, "API key", key);
    bp_wipe(key, sizeof(key));

done:
    bp_store_close(s);
    bp_key_rec_cleanup(&old);
    bp_key_rec_cleanup(&rec);
    return rc;
}

/* ---- the family as data: parsed by bp_cli__parse, shown by help, man page and completion ---- */

static const struct bp_cli_opt rotate_opts[RF_COUNT] = {
    [RF_GRACE] = {"--grace", "DURATION",
                  .help = "how long the old key keeps working: <n>s, <n>m, <n>h, <n>d "
                          "(default 24h; 0s stops it at once)",
                  .complete = "1h 24h 7d"},
};

static const struct bp_cli_opt create_opts[CF_COUNT] = {
    [CF_NAME] = {"--name", "NAME", .help = "a name for the key: 1..100 printable ASCII characters",
                 .required = true},
    [CF_SCOPES] = {"--scopes", "S1,S2",
                   .help = "what the key may do: *, proxy:read, proxy:write (comma-separated)",
                   .required = true, .complete = "proxy:read proxy:write proxy:read,proxy:write"},
    [CF_EXPIRES_IN] = {"--expires-in", "DURATION",
                       .help = "expiry, counted from now: <n>s, <n>m, <n>h, <n>d, or never "
                               "(the default)",
                       .complete = "never 1h 1d 7d 30d 90d"},
    [CF_INSTANCES] = {"--instances", "ID1,ID2",
                      .help = "restrict the key to these instances (default: every one)"},
    [CF_ALLOW_FROM] = {"--allow-from", "CIDR,...",
                       .help = "accept the key only from these addresses or networks "
                               "(default: any)"},
    [CF_RATE] = {"--rate", "RATE",
                 .help = "its request rate, like 100/s or 6000/m; 0: none (default: the "
                         "server's rate_limit.default)",
                 .complete = "default 0 10/s 100/s 6000/m"},
    [CF_BURST] = {"--burst", "N",
                  .help = "requests it may make at once (with --rate; default: the rate's count)"},
};

static const struct bp_cli_opt update_opts[BP_CLI_UF_COUNT] = {
    [BP_CLI_UF_ALLOW_FROM] = {"--allow-from", "CIDR,...",
                              .help = "the addresses or networks the key may be used from, "
                                      "or any",
                              .complete = "any"},
    [BP_CLI_UF_RATE] = {"--rate", "RATE",
                        .help = "its request rate, like 100/s or 6000/m; 0: none; default: the "
                                "server's rate_limit.default",
                        .complete = "default 0 10/s 100/s 6000/m"},
    [BP_CLI_UF_BURST] = {"--burst", "N",
                         .help = "requests it may make at once (with --rate; default: the rate's count)"},
};

static const struct bp_cli_verb verbs[] = {
    {"create", key_create, 0, .help = "create an API key and print it, once", .opts = create_opts,
     .nopts = BP_ARRAY_LEN(create_opts)},
    {"list", key_list, 0, .help = "list every key (prefixes only, never the keys)"},
    {"show", key_one, KEY_SHOW, .help = "show one key", .args = "ID", .min_args = 1, .max_args = 1},
    {"revoke", key_one, KEY_REVOKE,
     .help = "revoke the key: running servers refuse it once the command returns", .args = "ID",
     .min_args = 1, .max_args = 1},
    {"expire", key_one, KEY_EXPIRE, .help = "set a new expiry", .args = "ID", .min_args = 1, .max_args = 1,
     .opts = bp_cli__expire_opts, .nopts = BP_ARRAY_LEN(bp_cli__expire_opts)},
    {"update", key_update, 0, .help = "change where the key may be used from, or its rate limit",
     .args = "ID", .min_args = 1, .max_args = 1, .opts = update_opts, .nopts = BP_ARRAY_LEN(update_opts)},
    {"rotate", key_rotate, 0,
     .help =
         "issue a new key with the same name, scopes, instances and limits (printed once); the old one keeps "
         "working for --grace, then expires",
     .args = "ID", .min_args = 1, .max_args = 1, .opts = rotate_opts, .nopts = BP_ARRAY_LEN(rotate_opts)},
};

const struct bp_cli_family bp_cli__family_key = {
    .name = "key",
    .help = "manage API keys",
    .verbs = verbs,
    .nverbs = BP_ARRAY_LEN(verbs),
    .notes = "Scopes: *, proxy:read, proxy:write. Durations: <n>s, <n>m, <n>h, <n>d or never.\n"
             "The key is printed once, by `key create`; only its SHA-256 digest is stored.\n",
};
