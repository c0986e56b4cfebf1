#include <stdio.h>
#include <string.h>

#include "cli/cli-int.h"
#include "cli/out.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "lib/str.h"
#include "store/store.h"

/* The verb shapes every record family repeats (list, the one-ID verbs, dispatch, a new ID), so
 * that they answer alike: same messages, same exit codes, same output forms. */

const struct bp_cli_opt bp_cli__expire_opts[1] = {
    {"--expires-in", "DURATION", .help = "the new expiry, counted from now: <n>s, <n>m, <n>h, <n>d, or never",
     .required = true},
};

int
bp_cli__dispatch(struct bp_cli_ctx *ctx, int argc, char **argv)
{
    const struct bp_cli_family *fam = ctx->fam;
    const char *verb = argv[0];
    const char *names[BP_CLI_MAX_VERBS];
    const char *hint;

    for (size_t i = 0; i < fam->nverbs; i++) {
        if (strcmp(verb, fam->verbs[i].name) == 0) {
            ctx->verb = &fam->verbs[i];
            return fam->verbs[i].run(ctx, argc - 1, argv + 1, fam->verbs[i].op);
        }
    }
    BP_BUG_ON(fam->nverbs > BP_CLI_MAX_VERBS);
    for (size_t i = 0; i < fam->nverbs; i++) {
        names[i] = fam->verbs[i].name;
    }
    hint = bp_str_nearest(verb, names, fam->nverbs);
    if (hint != NULL) {
        bp_cli__error("unknown %s command %.40s (did you mean %s?)", ctx->family, verb, hint);
    } else {
        bp_cli__error("unknown %s command %.40s (see `blnkproxy help %s`)", ctx->family, verb, ctx->family);
    }
    return BP_CLI_EXIT_USAGE;
}

static void
free_recs(const struct bp_cli_kind *kind, void *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        kind->cleanup((char *)recs + i * kind->rec_size);
    }
    bp_free(recs);
}

int
bp_cli__list(struct bp_cli_ctx *ctx, int argc, char **argv, const struct bp_cli_kind *kind)
{
    struct bp_store *s = NULL;
    void *recs = NULL;
    struct bp_out_obj **rows;
    int64_t now = bp_clock_wall_s();
    size_t n = 0;
    int rc;
    bp_err err;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = kind->list(s, &recs, &n);
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, kind->plural, "");
        bp_store_close(s);
        return rc;
    }
    bp_store_close(s);
    rows = bp_calloc(n + 1, sizeof(*rows));
    for (size_t i = 0; i < n; i++) {
        rows[i] = kind->obj((const char *)recs + i * kind->rec_size, now);
    }
    rc = bp_out_print_list(kind->plural, rows, n, kind->columns, kind->ncolumns, ctx->json);
    for (size_t i = 0; i < n; i++) {
        bp_out_obj_free(rows[i]);
    }
    bp_free(rows);
    free_recs(kind, recs, n);
    return rc;
}

int
bp_cli__one(const struct bp_cli_ctx *ctx, const struct bp_cli_kind *kind, bp_cli_change_cb change,
            const void *arg)
{
    const char *id = ctx->pos[0];
    void *rec = bp_calloc(1, kind->rec_size);
    struct bp_store *s = NULL;
    bp_err err = BP_OK;
    int rc = bp_cli__open_store(ctx, true, &s);

    if (rc != BP_CLI_EXIT_OK) {
        bp_free(rec);
        return rc;
    }
    if (change != NULL) {
        err = change(s, id, arg, ctx->json);
    }
    if (err == BP_OK) {
        err = kind->get(s, id, rec);
    }
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, kind->noun, id);
    } else {
        struct bp_out_obj *o = kind->obj(rec, bp_clock_wall_s());
        rc = bp_out_print_obj(o, ctx->json);
        bp_out_obj_free(o);
    }
    bp_store_close(s);
    free_recs(kind, rec, 1);
    return rc;
}

int
bp_cli__parse_id_expiry(struct bp_cli_ctx *ctx, int argc, char **argv, int64_t *expires_at)
{
    struct bp_cli_flag flags[1] = {{0}};
    bool expire = ctx->verb->nopts == 1;
    int rc = bp_cli__parse(ctx, argc, argv, flags);

    if (rc != BP_CLI_EXIT_OK || !expire) {
        return rc;
    }
    if (!flags[0].seen) {
        bp_cli__error("%s expire needs --expires-in (e.g. 7d or never)", ctx->family);
        return BP_CLI_EXIT_USAGE;
    }
    return bp_cli__parse_expiry(flags[0].value, bp_clock_wall_s(), expires_at);
}

const char *
bp_cli__cred_status(bool revoked, int64_t expires_at, int64_t now)
{
    if (revoked) {
        return "revoked";
    }
    if (expires_at != 0 && expires_at <= now) {
        return "expired";
    }
    return "active";
}

int
bp_cli__check_name(const char *name)
{
    if (!bp_cli__name_is_valid(name)) {
        bp_cli__error("invalid --name: must be 1..100 printable ASCII characters without "
                      "leading or trailing spaces");
        return BP_CLI_EXIT_USAGE;
    }
    return BP_CLI_EXIT_OK;
}

char *
bp_cli__new_id(const char *prefix)
{
    char ulid[BP_ULID_LEN + 1];
    size_t size = strlen(prefix) + 1 + BP_ULID_LEN + 1;
    char *id;

    if (bp_ulid(ulid) != BP_OK) {
        bp_cli__error("cannot generate an id");
        return NULL;
    }
    id = bp_malloc(size);
    snprintf(id, size, "%s_%s", prefix, ulid);
    return id;
}
