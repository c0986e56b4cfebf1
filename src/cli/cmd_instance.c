#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit/audit.h"
#include "cli/cli-int.h"
#include "cli/out.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/path.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "lib/url.h"
#include "store/store.h"
#include "upstream/upstream.h"

/* `instance …`: the Blnk Core instances the proxy forwards to. The Core secret key is read from a
 * file or an environment variable, never from argv, and is never printed (only has_secret_key). */

/* Flags of `instance add` (the first UF_ADD_COUNT) and `instance update`, by table position. */
enum {
    UF_NAME,
    UF_URL,
    UF_SECRET_FILE,
    UF_SECRET_ENV,
    UF_CA_FILE,
    UF_ADD_COUNT,
    UF_CLEAR_SECRET = UF_ADD_COUNT,
    UF_CLEAR_CA,
    UF_ENABLE,
    UF_DISABLE,
    UF_COUNT
};

/* ---- validation ---- */

/* Validates --url and returns its normalised form, or NULL after reporting why. The URL is not
 * echoed: it is the operator's own input. */
static char *
normalise_url(const char *url)
{
    char *out = NULL;
    const char *why = bp_url_normalise_base(url, &out);

    if (why != NULL) {
        bp_cli__error("invalid --url: %s", why);
        return NULL;
    }
    return out;
}

/* Resolves --ca-file to an absolute path of a readable file of PEM CA certificates (serve may
 * run elsewhere; and a file that is no CA bundle is better refused now than at the first
 * request). */
static int
resolve_ca_file(const char *path, char **out)
{
    char scratch[256];
    const char *why = bp_path_resolve_readable(path, out);

    if (why == NULL && (why = bp_upstream_ca_file_check(*out, scratch, sizeof(scratch))) != NULL) {
        bp_free(*out);
        *out = NULL;
    }
    if (why != NULL) {
        bp_cli__error("--ca-file %s: %s", path, why);
        return BP_CLI_EXIT_USAGE;
    }
    return BP_CLI_EXIT_OK;
}

/* ---- output ---- */

static struct bp_out_obj *
instance_obj(const struct bp_instance_rec *rec)
{
    struct bp_out_obj *o = bp_out_obj_new();

    bp_out_str(o, "id", rec->id);
    bp_out_str(o, "name", rec->name);
    bp_out_str(o, "url", rec->url);
    bp_out_bool(o, "has_secret_key", rec->secret_key != NULL);
    bp_out_str(o, "ca_file", rec->ca_file);
    bp_out_bool(o, "enabled", rec->enabled);
    bp_out_time(o, "created_at", rec->created_at);
    bp_out_time(o, "updated_at", rec->updated_at);
    return o;
}

/* ---- the record kind, for the shared verbs ---- */

static bp_err
kind_get(struct bp_store *s, const char *id, void *rec)
{
    return bp_store_instance_get(s, id, rec);
}

static bp_err
kind_list(struct bp_store *s, void **recs, size_t *n)
{
    struct bp_instance_rec *r = NULL;
    bp_err err = bp_store_instance_list(s, &r, n);

    *recs = r;
    return err;
}

static struct bp_out_obj *
kind_obj(const void *rec, int64_t now)
{
    return instance_obj(rec);
}

static void
kind_cleanup(void *rec)
{
    bp_instance_rec_cleanup(rec);
}

static const char *const list_columns[] = {"id", "name", "url", "enabled", "has_secret_key", "created_at"};

static const struct bp_cli_kind instance_kind = {
    .noun = "instance",
    .plural = "instances",
    .columns = list_columns,
    .ncolumns = BP_ARRAY_LEN(list_columns),
    .rec_size = sizeof(struct bp_instance_rec),
    .get = kind_get,
    .list = kind_list,
    .obj = kind_obj,
    .cleanup = kind_cleanup,
};

static int
print_instance(const struct bp_instance_rec *rec, bool json)
{
    struct bp_out_obj *o = instance_obj(rec);
    int rc = bp_out_print_obj(o, json);
    bp_out_obj_free(o);
    return rc;
}

static int
name_taken(struct bp_store *s, bp_err rc, const char *name)
{
    if (rc == BP_ERR_EXISTS) {
        bp_cli__error("an instance named \"%s\" already exists", name);
        return BP_CLI_EXIT_USAGE;
    }
    return bp_cli__store_fail(s, rc, "instance", "");
}

/* ---- commands ---- */

/* Runs change and its audit record (issue 4) in one transaction: both land, or neither. */
static bp_err
audited(struct bp_store *s, bp_err (*change)(struct bp_store *, const void *), const void *arg,
        const char *action, const char *id)
{
    bp_err err = bp_store_begin(s);

    if (err == BP_OK) {
        err = bp_cli__finish_audited(s, change(s, arg), action, id, id);
    }
    return err;
}

static bp_err
do_insert(struct bp_store *s, const void *rec)
{
    return bp_store_instance_insert(s, rec);
}

static bp_err
do_update(struct bp_store *s, const void *rec)
{
    return bp_store_instance_update(s, rec);
}

static bp_err
do_delete(struct bp_store *s, const void *id)
{
    return bp_store_instance_delete(s, id);
}

static int
instance_add(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[UF_ADD_COUNT];
    struct bp_instance_rec rec = {0};
    struct bp_store *s = NULL;
    int rc;
    bp_err err;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    if (!flags[UF_NAME].seen || !flags[UF_URL].seen) {
        bp_cli__error("instance add needs --name and --url");
        return BP_CLI_EXIT_USAGE;
    }
    rc = bp_cli__check_name(flags[UF_NAME].value);
    if (rc != BP_CLI_EXIT_OK) {
        goto done;
    }
    rec.url = normalise_url(flags[UF_URL].value);
    if (rec.url == NULL) {
        rc = BP_CLI_EXIT_USAGE;
        goto done;
    }
    rc = bp_cli__read_secret(&flags[UF_SECRET_FILE], &flags[UF_SECRET_ENV], true, &rec.secret_key,
                             &rec.secret_key_len);
    if (rc == BP_CLI_EXIT_OK && flags[UF_CA_FILE].seen) {
        rc = resolve_ca_file(flags[UF_CA_FILE].value, &rec.ca_file);
    }
    if (rc != BP_CLI_EXIT_OK) {
        goto done;
    }
    rec.id = bp_cli__new_id("instance");
    if (rec.id == NULL) {
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    rec.name = bp_strdup(flags[UF_NAME].value);
    rec.enabled = true;
    rec.created_at = bp_clock_wall_s();
    rec.updated_at = rec.created_at;

    /* The first instance is the natural first command of a new installation: it may create the
     * store (and says where). */
    rc = bp_cli__open_or_create_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        goto done;
    }
    err = audited(s, do_insert, &rec, "Instance added", rec.id);
    if (err != BP_OK) {
        rc = name_taken(s, err, rec.name);
        goto done;
    }
    rc = print_instance(&rec, ctx->json);
    if (rec.secret_key == NULL) {
        /* Allowed (a Core without auth, or a key added later), but usually a missed flag. */
        bp_cli__error("warning: instance %s has no Core secret key: Core will answer 401 to every request "
                      "unless it runs without authentication; add one with "
                      "`blnkproxy instance update %s --secret-key-file FILE`",
                      rec.name, rec.id);
    }

done:
    bp_store_close(s);
    bp_instance_rec_cleanup(&rec);
    return rc;
}

static int
instance_list(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    return bp_cli__list(ctx, argc, argv, &instance_kind);
}

static int
instance_show(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    return bp_cli__one(ctx, &instance_kind, NULL, NULL);
}

/* The changes `instance update` asked for, validated before the store is touched. */
struct instance_change {
    const char *name;
    char *url;
    bool set_secret;
    char *secret;
    size_t secret_len;
    bool set_ca;
    char *ca_file;
    int enabled; /* -1 unchanged, 0, 1 */
};

static void
change_cleanup(struct instance_change *c)
{
    bp_free(c->url);
    if (c->secret != NULL) {
        bp_wipe(c->secret, c->secret_len);
    }
    bp_free(c->secret);
    bp_free(c->ca_file);
}

static int
parse_change(struct bp_cli_flag *flags, struct instance_change *c)
{
    int rc = BP_CLI_EXIT_OK;
    bool any = false;

    for (size_t i = 0; i < UF_COUNT; i++) {
        any = any || flags[i].seen;
    }
    if (!any) {
        bp_cli__error("instance update: nothing to change (see `blnkproxy help instance`)");
        return BP_CLI_EXIT_USAGE;
    }
    if ((flags[UF_SECRET_FILE].seen || flags[UF_SECRET_ENV].seen) && flags[UF_CLEAR_SECRET].seen) {
        bp_cli__error("--clear-secret-key cannot be combined with a new secret key");
        return BP_CLI_EXIT_USAGE;
    }
    if (flags[UF_CA_FILE].seen && flags[UF_CLEAR_CA].seen) {
        bp_cli__error("use only one of --ca-file and --clear-ca-file");
        return BP_CLI_EXIT_USAGE;
    }
    if (flags[UF_ENABLE].seen && flags[UF_DISABLE].seen) {
        bp_cli__error("use only one of --enable and --disable");
        return BP_CLI_EXIT_USAGE;
    }
    if (flags[UF_NAME].seen) {
        rc = bp_cli__check_name(flags[UF_NAME].value);
        c->name = flags[UF_NAME].value;
    }
    if (rc == BP_CLI_EXIT_OK && flags[UF_URL].seen) {
        c->url = normalise_url(flags[UF_URL].value);
        rc = c->url == NULL ? BP_CLI_EXIT_USAGE : BP_CLI_EXIT_OK;
    }
    if (rc == BP_CLI_EXIT_OK) {
        c->set_secret =
            flags[UF_SECRET_FILE].seen || flags[UF_SECRET_ENV].seen || flags[UF_CLEAR_SECRET].seen;
        rc = bp_cli__read_secret(&flags[UF_SECRET_FILE], &flags[UF_SECRET_ENV], true, &c->secret,
                                 &c->secret_len);
    }
    if (rc == BP_CLI_EXIT_OK && flags[UF_CA_FILE].seen) {
        rc = resolve_ca_file(flags[UF_CA_FILE].value, &c->ca_file);
    }
    c->set_ca = flags[UF_CA_FILE].seen || flags[UF_CLEAR_CA].seen;
    c->enabled = flags[UF_ENABLE].seen ? 1 : flags[UF_DISABLE].seen ? 0 : -1;
    return rc;
}

static void
apply_change(struct bp_instance_rec *rec, struct instance_change *c)
{
    if (c->name != NULL) {
        bp_free(rec->name);
        rec->name = bp_strdup(c->name);
    }
    if (c->url != NULL) {
        bp_free(rec->url);
        rec->url = c->url;
        c->url = NULL;
    }
    if (c->set_secret) {
        if (rec->secret_key != NULL) {
            bp_wipe(rec->secret_key, rec->secret_key_len);
        }
        bp_free(rec->secret_key);
        rec->secret_key = c->secret;
        rec->secret_key_len = c->secret_len;
        c->secret = NULL;
    }
    if (c->set_ca) {
        bp_free(rec->ca_file);
        rec->ca_file = c->ca_file;
        c->ca_file = NULL;
    }
    if (c->enabled >= 0) {
        rec->enabled = c->enabled == 1;
    }
    rec->updated_at = bp_clock_wall_s();
}

static int
instance_update(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[UF_COUNT];
    struct instance_change change = {.enabled = -1};
    struct bp_instance_rec rec = {0};
    struct bp_store *s = NULL;
    int rc;
    bp_err err;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    rc = parse_change(flags, &change);
    if (rc != BP_CLI_EXIT_OK) {
        goto done;
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        goto done;
    }
    err = bp_store_instance_get(s, ctx->pos[0], &rec);
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "instance", ctx->pos[0]);
        goto done;
    }
    apply_change(&rec, &change);
    err = audited(s, do_update, &rec, "Instance updated", rec.id);
    if (err != BP_OK) {
        rc = err == BP_ERR_NOT_FOUND ? bp_cli__store_fail(s, err, "instance", ctx->pos[0])
                                     : name_taken(s, err, rec.name);
        goto done;
    }
    rc = print_instance(&rec, ctx->json);

done:
    bp_store_close(s);
    bp_instance_rec_cleanup(&rec);
    change_cleanup(&change);
    return rc;
}

/* enable and disable: a change only when the instance is not so already. */
static bp_err
set_enabled(struct bp_store *s, const char *id, const void *arg, bool json)
{
    bool enabled = *(const bool *)arg;
    struct bp_instance_rec rec = {0};
    bp_err err = bp_store_instance_get(s, id, &rec);

    if (err == BP_OK && rec.enabled != enabled) {
        rec.enabled = enabled;
        rec.updated_at = bp_clock_wall_s();
        err = audited(s, do_update, &rec, enabled ? "Instance enabled" : "Instance disabled", rec.id);
    }
    bp_instance_rec_cleanup(&rec);
    return err;
}

static int
instance_set_enabled(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    bool enabled = op != 0;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    return bp_cli__one(ctx, &instance_kind, set_enabled, &enabled);
}

static int
instance_remove(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_store *s = NULL;
    struct bp_out_obj *o;
    int rc;
    bp_err err;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = audited(s, do_delete, ctx->pos[0], "Instance removed", ctx->pos[0]);
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "instance", ctx->pos[0]);
        bp_store_close(s);
        return rc;
    }
    bp_store_close(s);
    o = bp_out_obj_new();
    bp_out_str(o, "id", ctx->pos[0]);
    bp_out_bool(o, "removed", true);
    rc = bp_out_print_obj(o, ctx->json);
    bp_out_obj_free(o);
    return rc;
}

/* ---- the family as data: parsed by bp_cli__parse, shown by help, man page and completion ---- */

#define SECRET_FILE_HELP "read Core's secret key (sent as X-Blnk-Key) from FILE, without its trailing newline"
#define SECRET_ENV_HELP "read Core's secret key from the environment variable VAR"
#define CA_FILE_HELP "verify Core's TLS certificate with the CA bundle in FILE (PEM, at most 1 MiB; for a private CA)"

static const struct bp_cli_opt add_opts[UF_ADD_COUNT] = {
    [UF_NAME] = {"--name", "NAME", .help = "a unique name: 1..100 printable ASCII characters",
                 .required = true},
    [UF_URL] = {"--url", "URL",
                .help = "Core's base URL: http:// or https://, a host, an optional :port and path",
                .required = true},
    [UF_SECRET_FILE] = {"--secret-key-file", "FILE", .help = SECRET_FILE_HELP, .group = 1,
                        .complete = "@file"},
    [UF_SECRET_ENV] = {"--secret-key-env", "VAR", .help = SECRET_ENV_HELP, .group = 1, .complete = "@env"},
    [UF_CA_FILE] = {"--ca-file", "FILE", .help = CA_FILE_HELP, .complete = "@file"},
};

static const struct bp_cli_opt update_opts[UF_COUNT] = {
    [UF_NAME] = {"--name", "NAME", .help = "a new unique name"},
    [UF_URL] = {"--url", "URL", .help = "a new base URL for Core"},
    [UF_SECRET_FILE] = {"--secret-key-file", "FILE", .help = SECRET_FILE_HELP, .group = 1,
                        .complete = "@file"},
    [UF_SECRET_ENV] = {"--secret-key-env", "VAR", .help = SECRET_ENV_HELP, .group = 1, .complete = "@env"},
    [UF_CLEAR_SECRET] = {"--clear-secret-key", NULL, .help = "send no X-Blnk-Key to Core any more",
                         .group = 1},
    [UF_CA_FILE] = {"--ca-file", "FILE", .help = CA_FILE_HELP, .group = 2, .complete = "@file"},
    [UF_CLEAR_CA] = {"--clear-ca-file", NULL, .help = "verify Core with the system's CA certificates again",
                     .group = 2},
    [UF_ENABLE] = {"--enable", NULL, .help = "forward requests to this instance again", .group = 3},
    [UF_DISABLE] = {"--disable", NULL,
                    .help = "refuse requests for this instance (404 PROXY_UNKNOWN_INSTANCE)", .group = 3},
};

static const struct bp_cli_opt check_opts[] = {
    {"--timeout", "DURATION",
     .help = "how long to wait for Core's answer: <n>s or <n>m, at most 5m (default 10s)"},
};

static const struct bp_cli_verb verbs[] = {
    {"add", instance_add, 0, .help = "register a Blnk Core instance (the first one creates a missing store)",
     .opts = add_opts, .nopts = BP_ARRAY_LEN(add_opts)},
    {"list", instance_list, 0, .help = "list every instance"},
    {"show", instance_show, 0, .help = "show one instance", .args = "ID", .min_args = 1, .max_args = 1},
    {"update", instance_update, 0, .help = "change an instance's name, URL, secret key, CA file or state",
     .args = "ID", .min_args = 1, .max_args = 1, .opts = update_opts, .nopts = BP_ARRAY_LEN(update_opts)},
    {"enable", instance_set_enabled, 1, .help = "forward requests to the instance again", .args = "ID",
     .min_args = 1, .max_args = 1},
    {"disable", instance_set_enabled, 0, .help = "refuse requests for the instance, keeping its record",
     .args = "ID", .min_args = 1, .max_args = 1},
    {"remove", instance_remove, 0, .help = "delete the instance", .args = "ID", .min_args = 1, .max_args = 1},
    {"check", bp_cli__instance_check, 0,
     .help =
         "call Core's GET /health with the instance's secret key and say what is wrong (DNS, refused, TLS, "
         "a refused key); exit 1 unless Core answers 2xx",
     .args = "ID", .min_args = 1, .max_args = 1, .opts = check_opts, .nopts = BP_ARRAY_LEN(check_opts)},
};

const struct bp_cli_family bp_cli__family_instance = {
    .name = "instance",
    .help = "manage Blnk Core instances",
    .verbs = verbs,
    .nverbs = BP_ARRAY_LEN(verbs),
    .notes = "URL: http:// or https://, a host, an optional :port and path; no query, fragment or\n"
             "user info. The Core secret key (sent as X-Blnk-Key) is read from a file (its trailing\n"
             "newline removed) or an environment variable, never from the command line. Use Core's\n"
             "master key: Core re-encodes bodies sent with scoped keys. Without one, Core answers 401\n"
             "unless it runs without authentication. The first `instance add` creates the store when\n"
             "there is none yet.\n",
};
