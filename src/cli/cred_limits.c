/* What a credential is held to besides its scopes and instances (issue 12), as `key` and
 * `client` create and update set it: where it may be used from (--allow-from) and how fast
 * (--rate, --burst). Parsed into the store's canonical forms, and written with their audit
 * records. */
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "cli/cli-int.h"
#include "cli/out.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/rand.h"
#include "lib/rate.h"
#include "lib/str.h"
#include "store/store.h"

int
bp_cli__parse_limits(const struct bp_cli_flag *allow_from, const struct bp_cli_flag *rate,
                     const struct bp_cli_flag *burst, struct bp_cred_limits *out)
{
    char bad[80];
    uint64_t b = 0;

    memset(out, 0, sizeof(*out));
    if (allow_from->seen && !bp_cred_limits_allow(out, allow_from->value, bad, sizeof(bad))) {
        bp_cli__error("invalid --allow-from: %s%s (expected comma-separated addresses or networks such as "
                      "203.0.113.7,10.0.0.0/8,2001:db8::/32, at most %d; or any)",
                      bad[0] == '\0' ? "empty list" : "bad item ", bad, BP_ALLOW_FROM_MAX);
        return BP_CLI_EXIT_USAGE;
    }
    if (burst->seen && !rate->seen) {
        bp_cli__error("--burst goes with --rate: give both (e.g. --rate 100/s --burst 200)");
        bp_cred_limits_cleanup(out);
        return BP_CLI_EXIT_USAGE;
    }
    if (rate->seen && !bp_cred_limits_rate(out, rate->value)) {
        bp_cli__error("invalid --rate: use <n>/s, <n>/m, <n>/h or <n>/d (n up to %u), 0 for no limit, or "
                      "default (the server's rate_limit.default)",
                      BP_RATE_COUNT_MAX);
        bp_cred_limits_cleanup(out);
        return BP_CLI_EXIT_USAGE;
    }
    if (burst->seen &&
        (bp_str_parse_u64(burst->value, strlen(burst->value), BP_RATE_COUNT_MAX, &b) != BP_OK ||
         !bp_cred_limits_burst(out, b))) {
        bp_cli__error("invalid --burst: a number of requests 1..%u, with a --rate that limits",
                      BP_RATE_COUNT_MAX);
        bp_cred_limits_cleanup(out);
        return BP_CLI_EXIT_USAGE;
    }
    return BP_CLI_EXIT_OK;
}

bp_err
bp_cli__apply_limits(struct bp_store *s, const struct bp_cli_limits_ops *ops, const char *id,
                     const struct bp_cred_limits *l)
{
    char operation[BP_UUID_LEN + 1];
    bp_err err;

    BP_BUG_ON(!l->allow_set && !l->rate_set);
    err = bp_store_begin(s);
    if (err != BP_OK) {
        return err;
    }
    if (l->allow_set && l->rate_set) {
        /* Two records of one change, with one operation id (as `key rotate` writes). */
        err = bp_uuid7(operation) == BP_OK ? ops->set_allow_from(s, id, l->allow_from) : BP_ERR_IO;
        if (err == BP_OK) {
            err = bp_audit_admin_op(s, ops->allow_action, id, NULL, operation);
        }
        if (err == BP_OK) {
            err = ops->set_rate(s, id, l->rate_limit, l->burst);
        }
        return bp_cli__finish_audited_op(s, err, ops->rate_action, id, NULL, operation);
    }
    if (l->allow_set) {
        return bp_cli__finish_audited(s, ops->set_allow_from(s, id, l->allow_from), ops->allow_action, id,
                                      NULL);
    }
    return bp_cli__finish_audited(s, ops->set_rate(s, id, l->rate_limit, l->burst), ops->rate_action, id,
                                  NULL);
}

void
bp_cli__out_rate(struct bp_out_obj *o, const char *rate_limit, int64_t burst)
{
    bp_out_str(o, "rate_limit", rate_limit);
    if (rate_limit != NULL && burst > 0) {
        bp_out_int(o, "rate_burst", burst);
    } else {
        bp_out_str(o, "rate_burst", NULL);
    }
}

struct update {
    const struct bp_cli_limits_ops *ops;
    const struct bp_cred_limits *limits;
};

static bp_err
apply_update(struct bp_store *s, const char *id, const void *arg, bool json)
{
    const struct update *u = arg;
    (void)json;
    return bp_cli__apply_limits(s, u->ops, id, u->limits);
}

int
bp_cli__update_limits(struct bp_cli_ctx *ctx, int argc, char **argv, const struct bp_cli_kind *kind,
                      const struct bp_cli_limits_ops *ops)
{
    struct bp_cli_flag flags[BP_CLI_UF_COUNT];
    struct bp_cred_limits l;
    struct update u = {.ops = ops, .limits = &l};
    int rc;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    if (!flags[BP_CLI_UF_ALLOW_FROM].seen && !flags[BP_CLI_UF_RATE].seen) {
        bp_cli__error("%s update needs --allow-from or --rate (see `blnkproxy %s update --help`)",
                      ctx->family, ctx->family);
        return BP_CLI_EXIT_USAGE;
    }
    rc = bp_cli__parse_limits(&flags[BP_CLI_UF_ALLOW_FROM], &flags[BP_CLI_UF_RATE], &flags[BP_CLI_UF_BURST],
                              &l);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    rc = bp_cli__one(ctx, kind, apply_update, &u);
    bp_cred_limits_cleanup(&l);
    return rc;
}
