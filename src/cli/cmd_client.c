#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "cli/cli-int.h"
#include "cli/out.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "lib/str.h"
#include "lib/url.h"
#include "oauth/oauth.h"
#include "store/store.h"

/* `client …`: OAuth clients (DESIGN §5, §6). The client secret exists only inside
 * `client create`: it is printed once, then wiped; the store keeps its SHA-256 digest. Every
 * change is written together with its admin audit record, in one transaction. */

#define GRANT_TYPES_TEXT_MAX 64

enum {
    GRANT_CLIENT_CREDENTIALS = 1u << 0,
    GRANT_AUTHORIZATION_CODE = 1u << 1,
    GRANT_REFRESH_TOKEN = 1u << 2,
};

static const struct {
    const char *name;
    unsigned bit;
} grant_names[] = {
    /* Canonical order of the stored list. */
    {"client_credentials", GRANT_CLIENT_CREDENTIALS},
    {"authorization_code", GRANT_AUTHORIZATION_CODE},
    {"refresh_token", GRANT_REFRESH_TOKEN},
};

/* Redirect URIs never contain a comma (bp_url_check_redirect), so the comma-joined list turns
 * back into exactly the registered URIs. */
static char *
join_uris(const struct bp_client_rec *rec)
{
    size_t total = 1;
    size_t off = 0;
    char *text;

    for (size_t i = 0; i < rec->n_redirect_uris; i++) {
        total += strlen(rec->redirect_uris[i]) + 1;
    }
    text = bp_malloc(total);
    for (size_t i = 0; i < rec->n_redirect_uris; i++) {
        size_t n = strlen(rec->redirect_uris[i]);
        if (i > 0) {
            text[off++] = ',';
        }
        memcpy(text + off, rec->redirect_uris[i], n);
        off += n;
    }
    text[off] = '\0';
    return text;
}

/* The client as every command shows it; created adds the creation output's fields: client_id
 * (the same value as id, under its OAuth name: DESIGN §7) and, when secret is non-NULL (JSON),
 * client_secret. */
static struct bp_out_obj *
client_obj(const struct bp_client_rec *rec, int64_t now, bool created, const char *secret)
{
    struct bp_out_obj *o = bp_out_obj_new();
    char *uris = join_uris(rec);

    bp_out_str(o, "id", rec->id);
    bp_out_str(o, "name", rec->name);
    if (created) {
        bp_out_str(o, "client_id", rec->id);
    }
    if (secret != NULL) {
        bp_out_str(o, "client_secret", secret);
    }
    bp_out_csv(o, "scopes", rec->scopes);
    bp_out_csv(o, "redirect_uris", uris);
    bp_out_csv(o, "grant_types", rec->grant_types);
    bp_out_csv(o, "instances", rec->instances);
    bp_out_csv(o, "allow_from", rec->allow_from);
    bp_cli__out_rate(o, rec->rate_limit, rec->rate_burst);
    bp_out_str(o, "status", bp_cli__cred_status(rec->revoked, rec->expires_at, now));
    bp_out_time(o, "created_at", rec->created_at);
    bp_out_time(o, "expires_at", rec->expires_at);
    bp_free(uris);
    return o;
}

/* ---- the record kind, for the shared verbs ---- */

static bp_err
kind_get(struct bp_store *s, const char *id, void *rec)
{
    return bp_store_client_get(s, id, rec);
}

static bp_err
kind_list(struct bp_store *s, void **recs, size_t *n)
{
    struct bp_client_rec *r = NULL;
    bp_err err = bp_store_client_list(s, &r, n);

    *recs = r;
    return err;
}

static struct bp_out_obj *
kind_obj(const void *rec, int64_t now)
{
    return client_obj(rec, now, false, NULL);
}

static void
kind_cleanup(void *rec)
{
    bp_client_rec_cleanup(rec);
}

static const char *const list_columns[] = {"id", "name", "scopes", "grant_types", "status", "expires_at"};

static const struct bp_cli_kind client_kind = {
    .noun = "client",
    .plural = "clients",
    .columns = list_columns,
    .ncolumns = BP_ARRAY_LEN(list_columns),
    .rec_size = sizeof(struct bp_client_rec),
    .get = kind_get,
    .list = kind_list,
    .obj = kind_obj,
    .cleanup = kind_cleanup,
};

/* ---- validation ---- */

/* Parses --grant-types into GRANT_* bits. */
static int
parse_grant_types(const char *text, unsigned *out)
{
    unsigned bits = 0;
    const char *p = text;

    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        unsigned one = 0;

        for (size_t i = 0; i < BP_ARRAY_LEN(grant_names); i++) {
            if (strlen(grant_names[i].name) == n && strncmp(grant_names[i].name, p, n) == 0) {
                one = grant_names[i].bit;
            }
        }
        if (one == 0) {
            bp_cli__error("invalid --grant-types: unknown grant type \"%.*s\" (known: client_credentials, "
                          "authorization_code, refresh_token)",
                          (int)(n > 40 ? 40 : n), p);
            return BP_CLI_EXIT_USAGE;
        }
        bits |= one;
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    *out = bits;
    return BP_CLI_EXIT_OK;
}

static void
format_grant_types(unsigned bits, char out[GRANT_TYPES_TEXT_MAX])
{
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < BP_ARRAY_LEN(grant_names); i++) {
        if (bits & grant_names[i].bit) {
            off += (size_t)snprintf(out + off, GRANT_TYPES_TEXT_MAX - off, "%s%s", off > 0 ? "," : "",
                                    grant_names[i].name);
        }
    }
}

/* Checks and deduplicates every --redirect-uri into out (borrowing the argv strings). */
static int
parse_redirect_uris(const struct bp_cli_flag *flag, const char **out, size_t *out_n)
{
    size_t n = 0;

    for (size_t i = 0; i < flag->n_values; i++) {
        const char *uri = flag->values[i];
        const char *why = bp_url_check_redirect(uri);
        bool dup = false;

        if (why != NULL) {
            bp_cli__error("invalid --redirect-uri \"%.100s\": %s", uri, why);
            return BP_CLI_EXIT_USAGE;
        }
        for (size_t k = 0; k < n; k++) {
            dup = dup || strcmp(out[k], uri) == 0;
        }
        if (!dup) {
            out[n++] = uri;
        }
    }
    *out_n = n;
    return BP_CLI_EXIT_OK;
}

/* ---- commands ---- */

enum { CF_NAME, CF_SCOPES, CF_REDIRECT_URI, CF_GRANT_TYPES, CF_INSTANCES, CF_EXPIRES_IN, CF_ALLOW_FROM, CF_RATE,
       CF_BURST, CF_COUNT };

/* Generates the secret, stores its digest with the audit record, and prints it once. */
static int
create_and_print(struct bp_store *s, struct bp_client_rec *rec, bool json)
{
    char secret[BP_OAUTH_TOKEN_LEN + 1];
    struct bp_out_obj *o;
    bp_err err;
    int rc;

    if (bp_oauth_token_generate(BP_CLIENT_SECRET_PREFIX, secret) != BP_OK) {
        bp_cli__error("cannot generate a client secret: the system random source failed");
        return BP_CLI_EXIT_FAIL;
    }
    bp_digest(secret, BP_OAUTH_TOKEN_LEN, rec->secret_digest);
    err = bp_store_begin(s);
    if (err == BP_OK) {
        err = bp_cli__finish_audited(s, bp_store_client_insert(s, rec), "Client created", rec->id, NULL);
    }
    if (err != BP_OK) {
        bp_wipe(secret, sizeof(secret));
        /* EXISTS here would be a ULID or digest collision: not the operator's doing. */
        bp_cli__error("cannot store the client: %s", bp_store_last_error(s));
        return BP_CLI_EXIT_FAIL;
    }
    o = client_obj(rec, rec->created_at, true, json ? secret : NULL);
    rc = bp_out_print_obj(o, json);
    bp_out_obj_free(o);
    bp_out_secret(json, "Client secret", secret);
    bp_wipe(secret, sizeof(secret));
    return rc;
}

/* The checks that need no store: fills rec's name, scopes, grant types and expiry, and uris
 * (borrowed from argv) with the deduplicated redirect URIs. */
static int
check_create_flags(struct bp_cli_flag *flags, struct bp_client_rec *rec, const char **uris,
                   size_t *out_n_uris)
{
    size_t n_uris = 0;
    char scopes[BP_CLI_SCOPES_MAX];
    char grants[GRANT_TYPES_TEXT_MAX];
    unsigned grant_bits;
    int rc;

    if (!flags[CF_NAME].seen || !flags[CF_SCOPES].seen) {
        bp_cli__error("client create needs --name and --scopes");
        return BP_CLI_EXIT_USAGE;
    }
    rc = bp_cli__check_name(flags[CF_NAME].value);
    if (rc == BP_CLI_EXIT_OK) {
        rc = bp_cli__parse_scopes(flags[CF_SCOPES].value, scopes);
    }
    if (rc == BP_CLI_EXIT_OK) {
        rc = parse_redirect_uris(&flags[CF_REDIRECT_URI], uris, &n_uris);
    }
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    if (flags[CF_GRANT_TYPES].seen) {
        rc = parse_grant_types(flags[CF_GRANT_TYPES].value, &grant_bits);
        if (rc != BP_CLI_EXIT_OK) {
            return rc;
        }
    } else {
        grant_bits = GRANT_CLIENT_CREDENTIALS;
        if (n_uris > 0) {
            grant_bits |= GRANT_AUTHORIZATION_CODE | GRANT_REFRESH_TOKEN;
        }
    }
    /* RFC 6749 §3.1.2.2: a code can only be sent back to a registered redirect URI. */
    if ((grant_bits & GRANT_AUTHORIZATION_CODE) && n_uris == 0) {
        bp_cli__error("grant type authorization_code needs at least one --redirect-uri");
        return BP_CLI_EXIT_USAGE;
    }
    rec->created_at = bp_clock_wall_s();
    if (flags[CF_EXPIRES_IN].seen) {
        rc = bp_cli__parse_expiry(flags[CF_EXPIRES_IN].value, rec->created_at, &rec->expires_at);
        if (rc != BP_CLI_EXIT_OK) {
            return rc;
        }
    }
    format_grant_types(grant_bits, grants);
    rec->scopes = bp_strdup(scopes);
    rec->grant_types = bp_strdup(grants);
    rec->name = bp_strdup(flags[CF_NAME].value);
    *out_n_uris = n_uris;
    return BP_CLI_EXIT_OK;
}

static int
client_create(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[CF_COUNT];
    const char *uris[BP_CLI_MAX_REPEAT];
    size_t n_uris = 0;
    struct bp_client_rec rec = {0};
    struct bp_cred_limits limits;
    struct bp_store *s = NULL;
    int rc;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    rc = check_create_flags(flags, &rec, uris, &n_uris);
    if (rc != BP_CLI_EXIT_OK) {
        goto done;
    }
    rc = bp_cli__parse_limits(&flags[CF_ALLOW_FROM], &flags[CF_RATE], &flags[CF_BURST], &limits);
    if (rc != BP_CLI_EXIT_OK) {
        goto done;
    }
    rec.allow_from = limits.allow_from;
    rec.rate_limit = limits.rate_limit;
    rec.rate_burst = limits.burst;
    rec.id = bp_cli__new_id("client");
    if (rec.id == NULL) {
        rc = BP_CLI_EXIT_FAIL;
        goto done;
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
    rec.redirect_uris = bp_calloc(n_uris + 1, sizeof(*rec.redirect_uris));
    for (size_t i = 0; i < n_uris; i++) {
        rec.redirect_uris[i] = bp_strdup(uris[i]);
    }
    rec.n_redirect_uris = n_uris;
    rc = create_and_print(s, &rec, ctx->json);

done:
    bp_store_close(s);
    bp_client_rec_cleanup(&rec);
    return rc;
}

static int
client_list(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    return bp_cli__list(ctx, argc, argv, &client_kind);
}

/* show, revoke and expire: one ID, an optional change, then the client as it now stands. */
enum client_op { CLIENT_SHOW, CLIENT_REVOKE, CLIENT_EXPIRE };

struct client_change {
    int op; /* CLIENT_REVOKE or CLIENT_EXPIRE */
    int64_t expires_at;
};

static bp_err
apply_op(struct bp_store *s, const char *id, const void *arg, bool json)
{
    const struct client_change *change = arg;
    struct bp_client_rec cur = {0};
    bp_err err = bp_store_client_get(s, id, &cur);

    if (err == BP_OK && change->op == CLIENT_REVOKE && cur.revoked) {
        bp_out_note(json, "Client was already revoked.");
    } else if (err == BP_OK) {
        err = bp_store_begin(s);
        if (err == BP_OK && change->op == CLIENT_REVOKE) {
            err = bp_cli__finish_audited(s, bp_store_client_revoke(s, id, bp_clock_wall_s()),
                                         "Client revoked", id, NULL);
        } else if (err == BP_OK) {
            err = bp_cli__finish_audited(s, bp_store_client_set_expiry(s, id, change->expires_at),
                                         "Client expiry changed", id, NULL);
        }
    }
    bp_client_rec_cleanup(&cur);
    return err;
}

static int
client_one(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct client_change change = {.op = op};
    int rc = bp_cli__parse_id_expiry(ctx, argc, argv, &change.expires_at);

    if (rc != BP_CLI_EXIT_OK) {
        return rc == BP_CLI_HELP_SHOWN ? BP_CLI_EXIT_OK : rc;
    }
    return bp_cli__one(ctx, &client_kind, op == CLIENT_SHOW ? NULL : apply_op, &change);
}

/* client update ID [--allow-from LIST|any] [--rate R [--burst N]]: where the client's access
 * tokens may be used from (its tokens, issued or to come, follow it), and the rate of all its
 * tokens together. */
static const struct bp_cli_limits_ops limits_ops = {
    .set_allow_from = bp_store_client_set_allow_from,
    .set_rate = bp_store_client_set_rate,
    .allow_action = "Client allow-list changed",
    .rate_action = "Client rate limit changed",
};

static int
client_update(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    (void)op;
    return bp_cli__update_limits(ctx, argc, argv, &client_kind, &limits_ops);
}

/* client rotate-secret: a new secret (shown once); the one the client had keeps working for the
 * grace period, so its app can be redeployed with the new one without a gap. */
enum { RF_GRACE, RF_COUNT };

static int
client_rotate_secret(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[RF_COUNT];
    struct bp_client_rec rec = {0};
    struct bp_store *s = NULL;
    char secret[BP_OAUTH_TOKEN_LEN + 1];
    unsigned char digest[BP_DIGEST_LEN];
    int64_t now = bp_clock_wall_s();
    int64_t previous_until = 0;
    struct bp_out_obj *o;
    bp_err err;
    int rc;
    (void)op;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    rc = bp_cli__parse_grace(flags[RF_GRACE].seen ? flags[RF_GRACE].value : "24h", now, &previous_until);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = bp_store_client_get(s, ctx->pos[0], &rec);
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "client", ctx->pos[0]);
        goto done;
    }
    if (rec.revoked || (rec.expires_at != 0 && rec.expires_at <= now)) {
        bp_cli__error("client %s is %s: its secret cannot be rotated", rec.id, rec.revoked ? "revoked" : "expired");
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    if (bp_oauth_token_generate(BP_CLIENT_SECRET_PREFIX, secret) != BP_OK) {
        bp_cli__error("cannot generate a client secret: the system random source failed");
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    bp_digest(secret, BP_OAUTH_TOKEN_LEN, digest);
    err = bp_store_begin(s);
    if (err == BP_OK) {
        err = bp_cli__finish_audited(s, bp_store_client_rotate_secret(s, rec.id, digest, previous_until),
                                     "Client secret rotated", rec.id, NULL);
    }
    if (err != BP_OK) {
        bp_wipe(secret, sizeof(secret));
        bp_cli__error("cannot rotate the client secret: %s", bp_store_last_error(s));
        rc = BP_CLI_EXIT_FAIL;
        goto done;
    }
    o = client_obj(&rec, now, true, ctx->json ? secret : NULL);
    bp_out_time(o, "previous_secret_expires_at", previous_until);
    rc = bp_out_print_obj(o, ctx->json);
    bp_out_obj_free(o);
    bp_out_secret(ctx->json, "Client secret", secret);
    bp_wipe(secret, sizeof(secret));

done:
    bp_store_close(s);
    bp_client_rec_cleanup(&rec);
    return rc;
}

/* ---- the family as data: parsed by bp_cli__parse, shown by help, man page and completion ---- */

static const struct bp_cli_opt rotate_opts[RF_COUNT] = {
    [RF_GRACE] = {"--grace", "DURATION", .help = "how long the previous secret keeps working: <n>s, <n>m, <n>h, "
                                         "<n>d (default 24h; 0s stops it at once)",
                  .complete = "1h 24h 7d"},
};

static const struct bp_cli_opt create_opts[CF_COUNT] = {
    [CF_NAME] = {"--name", "NAME", .help = "the app's name, shown on the authorize page: 1..100 printable ASCII "
                                   "characters",
                 .required = true},
    [CF_SCOPES] = {"--scopes", "S1,S2", .help = "the widest scopes its tokens may carry: *, proxy:read, proxy:write",
                   .required = true, .complete = "proxy:read proxy:write proxy:read,proxy:write"},
    [CF_REDIRECT_URI] = {"--redirect-uri", "URI", .help = "where /oauth/authorize may send the code back (repeatable)",
                         .repeatable = true},
    [CF_GRANT_TYPES] = {"--grant-types", "G1,G2", .help = "client_credentials, authorization_code, refresh_token",
                        .complete = "client_credentials authorization_code,refresh_token "
                                    "client_credentials,authorization_code,refresh_token"},
    [CF_INSTANCES] = {"--instances", "ID1,ID2", .help = "restrict its tokens to these instances (default: every one)"},
    [CF_EXPIRES_IN] = {"--expires-in", "DURATION", .help = "expiry of the client, counted from now: <n>s, <n>m, <n>h, "
                                                   "<n>d, or never (the default)",
                       .complete = "never 1h 1d 7d 30d 90d"},
    [CF_ALLOW_FROM] = {"--allow-from", "CIDR,...", .help = "accept its access tokens only from these addresses or "
                                                   "networks (default: any)"},
    [CF_RATE] = {"--rate", "RATE", .help = "the request rate of all its tokens together, like 100/s; 0: none "
                                           "(default: the server's rate_limit.default)",
                 .complete = "default 0 10/s 100/s 6000/m"},
    [CF_BURST] = {"--burst", "N", .help = "requests its tokens may make at once (with --rate; default: the rate's "
                                          "count)"},
};

static const struct bp_cli_opt update_opts[BP_CLI_UF_COUNT] = {
    [BP_CLI_UF_ALLOW_FROM] = {"--allow-from", "CIDR,...", .help = "the addresses or networks its access tokens may be used "
                                                   "from, or any",
                       .complete = "any"},
    [BP_CLI_UF_RATE] = {"--rate", "RATE", .help = "the request rate of all its tokens together, like 100/s; 0: none; "
                                           "default: the server's rate_limit.default",
                 .complete = "default 0 10/s 100/s 6000/m"},
    [BP_CLI_UF_BURST] = {"--burst", "N", .help = "requests its tokens may make at once (with --rate; default: the rate's "
                                          "count)"},
};

static const struct bp_cli_verb verbs[] = {
    {"create", client_create, 0, .help = "register an OAuth client and print its secret, once", .opts = create_opts,
     .nopts = BP_ARRAY_LEN(create_opts)},
    {"list", client_list, 0, .help = "list every client"},
    {"show", client_one, CLIENT_SHOW, .help = "show one client", .args = "ID", .min_args = 1, .max_args = 1},
    {"revoke", client_one, CLIENT_REVOKE, .help = "revoke the client and every token it holds", .args = "ID",
     .min_args = 1, .max_args = 1},
    {"expire", client_one, CLIENT_EXPIRE, .help = "set a new expiry", .args = "ID", .min_args = 1, .max_args = 1,
     .opts = bp_cli__expire_opts, .nopts = BP_ARRAY_LEN(bp_cli__expire_opts)},
    {"update", client_update, 0, .help = "change where its access tokens may be used from, or their rate limit",
     .args = "ID",
     .min_args = 1, .max_args = 1, .opts = update_opts, .nopts = BP_ARRAY_LEN(update_opts)},
    {"rotate-secret", client_rotate_secret, 0,
     .help = "issue a new client secret (printed once); the previous one keeps working for --grace",
     .args = "ID", .min_args = 1, .max_args = 1, .opts = rotate_opts, .nopts = BP_ARRAY_LEN(rotate_opts)},
};

const struct bp_cli_family bp_cli__family_client = {
    .name = "client",
    .help = "manage OAuth clients (third-party apps)",
    .verbs = verbs,
    .nverbs = BP_ARRAY_LEN(verbs),
    .notes = "Grant types: client_credentials, authorization_code, refresh_token. The default is\n"
             "client_credentials, plus authorization_code,refresh_token when a --redirect-uri is given.\n"
             "The client secret is printed once, by `client create`; only its SHA-256 digest is stored.\n"
             "Revoking a client revokes every token it holds.\n",
};
