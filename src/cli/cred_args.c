/* The flags credentials share (keys and OAuth clients): scopes, expiry, instance restriction;
 * and the one way a CLI change is written with its audit record and reaches running servers. */
#include <string.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "cli/cli-int.h"
#include "lib/alloc.h"
#include "lib/str.h"
#include "serve/watch.h"
#include "store/store.h"

#define INSTANCES_MAX 256

/* Parses --scopes into canonical text, naming the first unknown scope. */
int
bp_cli__parse_scopes(const char *text, char out[BP_CLI_SCOPES_MAX])
{
    unsigned bits = 0;
    const char *p = text;

    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        char item[32];
        unsigned one;

        if (n == 0) {
            bp_cli__error("invalid --scopes: empty scope (known: *, proxy:read, proxy:write)");
            return BP_CLI_EXIT_USAGE;
        }
        if (n >= sizeof(item)) {
            bp_cli__error("invalid --scopes: unknown scope \"%.*s...\" (known: *, proxy:read, "
                          "proxy:write)",
                          20, p);
            return BP_CLI_EXIT_USAGE;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        if (bp_scopes_parse(item, &one) != BP_OK) {
            bp_cli__error("invalid --scopes: unknown scope \"%s\" (known: *, proxy:read, "
                          "proxy:write)",
                          item);
            return BP_CLI_EXIT_USAGE;
        }
        bits |= one;
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    bp_scopes_format(bits, out, BP_CLI_SCOPES_MAX);
    return BP_CLI_EXIT_OK;
}

/* Parses --expires-in into an absolute expiry (0 = never). */
int
bp_cli__parse_expiry(const char *text, int64_t now, int64_t *out)
{
    int64_t seconds;

    if (bp_str_parse_duration(text, &seconds) != BP_OK) {
        bp_cli__error("invalid --expires-in: use <n>s, <n>m, <n>h, <n>d or never");
        return BP_CLI_EXIT_USAGE;
    }
    *out = seconds < 0 ? 0 : now + seconds;
    return BP_CLI_EXIT_OK;
}

int
bp_cli__parse_grace(const char *text, int64_t now, int64_t *out)
{
    int64_t seconds;

    if (strcmp(text, "0") == 0 || strcmp(text, "0s") == 0) {
        seconds = 0; /* no overlap: the old one stops now */
    } else if (bp_str_parse_duration(text, &seconds) != BP_OK || seconds < 0) {
        bp_cli__error("invalid --grace: use <n>s, <n>m, <n>h or <n>d (0s: the old one stops at once)");
        return BP_CLI_EXIT_USAGE;
    }
    *out = now + seconds;
    return BP_CLI_EXIT_OK;
}

static bool
id_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Splits --instances into ids (deduplicated) and checks each exists in the store. On success
 * *out is the canonical comma-separated list. */
int
bp_cli__parse_instances(struct bp_store *s, const char *text, char **out)
{
    const char *ids[INSTANCES_MAX];
    size_t lens[INSTANCES_MAX];
    size_t n = 0;
    const char *p = text;
    size_t total = 0;
    char *list;
    size_t off = 0;

    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        bool dup = false;

        if (len == 0 || len > 100) {
            bp_cli__error("invalid --instances: expected comma-separated instance ids");
            return BP_CLI_EXIT_USAGE;
        }
        for (size_t i = 0; i < len; i++) {
            if (!id_char_ok(p[i])) {
                bp_cli__error("invalid --instances: bad character in an instance id");
                return BP_CLI_EXIT_USAGE;
            }
        }
        for (size_t i = 0; i < n; i++) {
            dup = dup || (lens[i] == len && memcmp(ids[i], p, len) == 0);
        }
        if (!dup) {
            if (n == INSTANCES_MAX) {
                bp_cli__error("invalid --instances: at most %d instances", INSTANCES_MAX);
                return BP_CLI_EXIT_USAGE;
            }
            ids[n] = p;
            lens[n] = len;
            total += len + 1;
            n++;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }

    list = bp_malloc(total);
    for (size_t i = 0; i < n; i++) {
        struct bp_instance_rec rec = {0};
        bp_err err;

        memcpy(list + off, ids[i], lens[i]);
        list[off + lens[i]] = '\0';
        err = bp_store_instance_get(s, list + off, &rec);
        bp_instance_rec_cleanup(&rec);
        if (err != BP_OK) {
            int rc = bp_cli__store_fail(s, err, "instance", list + off);
            bp_free(list);
            return rc;
        }
        off += lens[i];
        list[off++] = i + 1 < n ? ',' : '\0';
    }
    *out = list;
    return BP_CLI_EXIT_OK;
}

/* How long a change waits for the running servers to apply it: DESIGN §5's bound. */
#define APPLY_TIMEOUT_MS 2000

/* Issue 8 item 5: a change is in effect when the CLI returns, so that a script's next request
 * (with the key it just created, or the one it just revoked) meets the new state without a
 * sleep. Running servers publish a change within milliseconds of its commit and report it in the
 * store; this waits for those reports. A server that does not report in time gets a warning,
 * not a failure: the change itself is committed. */
static void
wait_for_servers(struct bp_store *s)
{
    int64_t seq = 0;
    size_t behind = 0;
    bp_err rc = bp_store_change_seq(s, &seq);

    if (rc == BP_OK) {
        rc = bp_watch_wait_applied(s, seq, APPLY_TIMEOUT_MS, &behind);
    }
    if (rc != BP_OK) {
        bp_cli__error("warning: the change is saved, but whether running servers applied it could not be "
                      "checked: %s",
                      bp_store_last_error(s));
    } else if (behind > 0) {
        bp_cli__error("warning: the change is saved, but %zu running server%s using this database did not "
                      "apply it within %d s; see that server's log",
                      behind, behind == 1 ? "" : "s", APPLY_TIMEOUT_MS / 1000);
    }
}

bp_err
bp_cli__finish_audited(struct bp_store *s, bp_err change, const char *action, const char *id,
                       const char *instance_id)
{
    return bp_cli__finish_audited_op(s, change, action, id, instance_id, NULL);
}

bp_err
bp_cli__finish_audited_op(struct bp_store *s, bp_err change, const char *action, const char *id,
                          const char *instance_id, const char *operation_id)
{
    if (change == BP_OK) {
        change = bp_audit_admin_op(s, action, id, instance_id, operation_id);
    }
    if (change == BP_OK) {
        change = bp_store_commit(s);
    }
    if (change != BP_OK) {
        bp_store_rollback(s);
        return change;
    }
    wait_for_servers(s);
    return BP_OK;
}
