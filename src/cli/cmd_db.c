#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli-int.h"
#include "cli/out.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "serve/watch.h"
#include "store/store.h"

/* `db …`: store maintenance. `migrate` runs the migrations serve applies on start, and is one of
 * the commands that may create the store; `backup` copies a live store consistently; `status`
 * says what a store is and which servers use it; `copy` moves a SQLite deployment into
 * PostgreSQL (issue 9). */

#define SHOWN_MAX 1024

static int
db_migrate(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_store *s = NULL;
    struct bp_out_obj *o;
    int applied = 0;
    int version = 0;
    bp_err rc;
    int exit_code;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    /* Migrated here rather than by the open helper, so that we can count what ran. */
    exit_code = bp_cli__open_or_create_store(ctx, false, &s);
    if (exit_code != BP_CLI_EXIT_OK) {
        return exit_code;
    }
    rc = bp_store_migrate(s, &applied, &version);
    if (rc != BP_OK) {
        bp_cli__error("cannot migrate the database: %s", bp_store_last_error(s));
        bp_store_close(s);
        return BP_CLI_EXIT_FAIL;
    }
    bp_store_close(s);
    o = bp_out_obj_new();
    bp_out_int(o, "applied", applied);
    bp_out_int(o, "version", version);
    exit_code = bp_out_print_obj(o, ctx->json);
    bp_out_obj_free(o);
    return exit_code;
}

/* Maps a failed backup to its message and exit code. */
static int
backup_fail(struct bp_store *s, bp_err rc)
{
    if (rc == BP_ERR_EXISTS) {
        bp_cli__error("%s; pass --force to replace it", bp_store_last_error(s));
        return BP_CLI_EXIT_USAGE;
    }
    if (rc == BP_ERR_INVALID) {
        bp_cli__error("%s: choose another FILE", bp_store_last_error(s));
        return BP_CLI_EXIT_USAGE;
    }
    bp_cli__error("%s", bp_store_last_error(s));
    return BP_CLI_EXIT_FAIL;
}

/* `db backup FILE [--force]`. The store is opened but not migrated: a backup taken before an
 * upgrade must be the store as the old version left it. */
static int
db_backup(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[1];
    struct bp_store_backup_info info = {0};
    struct bp_store *s = NULL;
    struct bp_out_obj *o;
    char resolved[PATH_MAX];
    const char *file;
    bp_err rc;
    int exit_code;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    if (ctx->npos == 0) {
        bp_cli__error("db backup needs a FILE to write the copy to (see `blnkproxy help db`)");
        return BP_CLI_EXIT_USAGE;
    }
    file = ctx->pos[0];
    /* Decided from the DSN, before connecting: the answer does not depend on the server. */
    if (bp_store_dsn_is_pg(bp_cli__dsn(ctx))) {
        bp_cli__error("db backup copies SQLite stores; back up a PostgreSQL store with pg_dump, e.g."
                      " `pg_dump --format=custom --file=blnkproxy.dump \"$BLNKPROXY_DB\"` (README,"
                      " \"Backup and restore\")");
        return BP_CLI_EXIT_USAGE;
    }
    exit_code = bp_cli__open_store(ctx, false, &s);
    if (exit_code != BP_CLI_EXIT_OK) {
        return exit_code;
    }
    rc = bp_store_backup(s, file, flags[0].seen ? BP_STORE_BACKUP_REPLACE : 0, &info);
    if (rc != BP_OK) {
        exit_code = backup_fail(s, rc);
        bp_store_close(s);
        return exit_code;
    }
    bp_store_close(s);
    o = bp_out_obj_new();
    bp_out_str(o, "path", realpath(file, resolved) != NULL ? resolved : file);
    bp_out_int(o, "bytes", info.bytes);
    bp_out_int(o, "schema_version", info.schema_version);
    exit_code = bp_out_print_obj(o, ctx->json);
    bp_out_obj_free(o);
    return exit_code;
}

/* One server's report as a row of `db status`. */
static struct bp_out_obj *
node_obj(const struct bp_watcher_rec *r, int64_t change_seq, int64_t now)
{
    struct bp_out_obj *o = bp_out_obj_new();

    bp_out_str(o, "node", r->node);
    bp_out_str(o, "host", r->host);
    bp_out_int(o, "pid", r->pid);
    bp_out_str(o, "version", r->version);
    bp_out_time(o, "started_at", r->started_at);
    bp_out_time(o, "last_report", r->seen_at);
    bp_out_int(o, "last_report_age_s", now - r->seen_at > 0 ? now - r->seen_at : 0);
    bp_out_int(o, "applied_seq", r->seq);
    bp_out_int(o, "behind", change_seq - r->seq > 0 ? change_seq - r->seq : 0);
    bp_out_str(o, "state", bp_watch_row_state(r, now));
    return o;
}

/* `db status`: the store (kind, where, schema version, change seq) and the servers that report
 * on it: each server keeps a row while it runs (a heartbeat every 10 s), so these are the nodes
 * seen recently, with how far each has applied the change log. */
static int
db_status(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_store *s = NULL;
    struct bp_watcher_rec *rows = NULL;
    struct bp_out_obj **nodes = NULL;
    struct bp_out_obj *o = NULL;
    char shown[SHOWN_MAX];
    size_t n = 0;
    int64_t seq = 0;
    int64_t live = 0;
    int64_t now = bp_clock_wall_s();
    int version = 0;
    bp_err rc;
    int exit_code;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    exit_code = bp_cli__open_store(ctx, false, &s);
    if (exit_code != BP_CLI_EXIT_OK) {
        return exit_code;
    }
    rc = bp_store_schema_version(s, &version);
    if (rc == BP_OK) {
        rc = bp_store_change_seq(s, &seq);
    }
    if (rc == BP_OK) {
        rc = bp_store_watcher_list(s, &rows, &n);
    }
    if (rc != BP_OK) {
        exit_code = bp_cli__store_fail(s, rc, "store", "");
        goto done;
    }
    bp_store_dsn_mask(bp_cli__dsn(ctx), shown, sizeof(shown));
    nodes = bp_calloc(n + 1, sizeof(*nodes));
    for (size_t i = 0; i < n; i++) {
        nodes[i] = node_obj(&rows[i], seq, now);
    }
    for (size_t i = 0; i < n; i++) {
        live += strcmp(bp_watch_row_state(&rows[i], now), "live") == 0 ? 1 : 0;
    }
    o = bp_out_obj_new();
    bp_out_str(o, "kind", bp_store_kind(s));
    bp_out_str(o, "store", shown);
    bp_out_int(o, "schema_version", version);
    bp_out_int(o, "change_seq", seq);
    bp_out_int(o, "nodes_live", live);
    bp_out_rows(o, "nodes", nodes, n);
    exit_code = bp_out_print_obj(o, ctx->json);

done:
    for (size_t i = 0; nodes != NULL && i < n; i++) {
        bp_out_obj_free(nodes[i]);
    }
    bp_free(nodes);
    bp_out_obj_free(o);
    bp_watcher_recs_free(rows, n);
    bp_store_close(s);
    return exit_code;
}

/* Opens db copy's two stores: the source as it is (it must exist), the target created into an
 * empty database and migrated. */
static int
copy_open(const char *from, const char *to, struct bp_store **src, struct bp_store **dst)
{
    char err[2048];
    int version = 0;
    int dst_version = 0;
    bp_err rc = bp_store_open(from, 0, src, err, sizeof(err));

    if (rc != BP_OK) {
        bp_cli__error("--from: %s", err);
        return BP_CLI_EXIT_FAIL;
    }
    rc = bp_store_open(to, BP_STORE_OPEN_CREATE, dst, err, sizeof(err));
    if (rc != BP_OK) {
        bp_cli__error("--to: %s", err);
        return BP_CLI_EXIT_FAIL;
    }
    rc = bp_store_migrate(*dst, NULL, &dst_version);
    if (rc != BP_OK) {
        bp_cli__error("--to: cannot migrate the database: %s", bp_store_last_error(*dst));
        return BP_CLI_EXIT_FAIL;
    }
    rc = bp_store_schema_version(*src, &version);
    if (rc != BP_OK) {
        bp_cli__error("--from: %s", bp_store_last_error(*src));
        return BP_CLI_EXIT_FAIL;
    }
    if (version != dst_version) {
        bp_cli__error("--from: the store has schema version %d, this blnkproxy's is %d: run `blnkproxy db "
                      "migrate --db FROM` first (serve does it on start)",
                      version, dst_version);
        return BP_CLI_EXIT_FAIL;
    }
    return BP_CLI_EXIT_OK;
}

/* "2 instances, 5 api_keys" of the tables that hold rows. */
static void
holdings(const struct bp_store_copy_report *r, char *out, size_t cap)
{
    size_t off = 0;

    out[0] = '\0';
    for (size_t i = 0; i < r->n; i++) {
        if (r->rows[i] > 0 && off < cap) {
            int w = snprintf(out + off, cap - off, "%s%lld %s", off > 0 ? ", " : "", (long long)r->rows[i],
                             r->table[i]);
            off += w > 0 ? (size_t)w : 0;
        }
    }
}

static int
copy_report(const struct bp_store_copy_report *r, const char *from, const char *to, bool json)
{
    struct bp_out_obj *rows[BP_STORE_COPY_TABLES];
    struct bp_out_obj *o = bp_out_obj_new();
    char shown[SHOWN_MAX];
    int exit_code;

    bp_store_dsn_mask(from, shown, sizeof(shown));
    bp_out_str(o, "from", shown);
    bp_store_dsn_mask(to, shown, sizeof(shown));
    bp_out_str(o, "to", shown);
    for (size_t i = 0; i < r->n; i++) {
        rows[i] = bp_out_obj_new();
        bp_out_str(rows[i], "table", r->table[i]);
        bp_out_int(rows[i], "rows", r->rows[i]);
    }
    bp_out_rows(o, "tables", rows, r->n);
    exit_code = bp_out_print_obj(o, json);
    for (size_t i = 0; i < r->n; i++) {
        bp_out_obj_free(rows[i]);
    }
    bp_out_obj_free(o);
    return exit_code;
}

/* `db copy --from SQLITE --to POSTGRES [--force]`: its options, in the order of copy_opts. */
enum { CO_FROM, CO_TO, CO_FORCE, COPY_NOPTS };

static int
db_copy(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[COPY_NOPTS];
    struct bp_store_copy_report report;
    struct bp_store *src = NULL;
    struct bp_store *dst = NULL;
    struct bp_store *failed = NULL;
    char held[512];
    bp_err rc;
    int exit_code;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    if (!flags[CO_FROM].seen || !flags[CO_TO].seen) {
        bp_cli__error("db copy needs --from (a SQLite store) and --to (a postgres:// DSN); see `blnkproxy help db`");
        return BP_CLI_EXIT_USAGE;
    }
    if (bp_store_dsn_is_pg(flags[CO_FROM].value) || !bp_store_dsn_is_pg(flags[CO_TO].value)) {
        bp_cli__error("db copy moves a SQLite store (--from PATH) into PostgreSQL (--to postgres://…)");
        return BP_CLI_EXIT_USAGE;
    }
    exit_code = copy_open(flags[CO_FROM].value, flags[CO_TO].value, &src, &dst);
    if (exit_code != BP_CLI_EXIT_OK) {
        goto done;
    }
    rc = bp_store_copy(src, dst, flags[CO_FORCE].seen, &report, &failed);
    if (rc == BP_ERR_EXISTS) {
        holdings(&report, held, sizeof(held));
        bp_cli__error("--to: the database holds records already (%s): pass --force to replace them", held);
        exit_code = BP_CLI_EXIT_USAGE;
    } else if (rc != BP_OK && report.mismatch != NULL) {
        bp_cli__error("the copy was not kept: %s has %lld rows in the source and %lld in the copy", report.mismatch,
                      (long long)report.mismatch_want, (long long)report.mismatch_have);
        exit_code = BP_CLI_EXIT_FAIL;
    } else if (rc != BP_OK) {
        bp_cli__error("the copy was not kept: %s: %s", failed == src ? "--from" : "--to",
                      failed != NULL ? bp_store_last_error(failed) : bp_err_str(rc));
        exit_code = BP_CLI_EXIT_FAIL;
    } else {
        exit_code = copy_report(&report, flags[CO_FROM].value, flags[CO_TO].value, ctx->json);
    }

done:
    bp_store_close(src);
    bp_store_close(dst);
    return exit_code;
}

/* ---- the family as data: parsed by bp_cli__parse, shown by help, man page and completion ---- */

static const struct bp_cli_opt backup_opts[] = {
    {"--force", NULL, .help = "replace FILE when it exists"},
};

static const struct bp_cli_opt copy_opts[COPY_NOPTS] = {
    [CO_FROM] = {"--from", "SQLITE_PATH", .help = "the SQLite store to copy (at this blnkproxy's schema version)",
                 .required = true, .complete = "@file"},
    [CO_TO] = {"--to", "POSTGRES_DSN", .help = "the PostgreSQL database to copy into: postgres://USER:PASSWORD@HOST/DB",
               .required = true},
    [CO_FORCE] = {"--force", NULL, .help = "replace what the database holds (refused otherwise)"},
};

static const struct bp_cli_verb verbs[] = {
    {"migrate", db_migrate, 0, .help = "apply pending schema migrations (creates a missing store)"},
    /* FILE is checked by db_backup, which says what it is for. */
    {"backup", db_backup, 0, .help = "write a consistent copy of the store to FILE, while serve keeps running",
     .args = "FILE", .min_args = 0, .max_args = 1, .args_complete = "@file", .opts = backup_opts,
     .nopts = BP_ARRAY_LEN(backup_opts)},
    {"status", db_status, 0,
     .help = "the store's kind, schema version and change seq, and the servers using it: their node, last report "
             "and how far they have applied changes"},
    {"copy", db_copy, 0,
     .help = "copy a SQLite store, whole, into an empty PostgreSQL database (one transaction, row counts checked)",
     .opts = copy_opts, .nopts = COPY_NOPTS},
};

const struct bp_cli_family bp_cli__family_db = {
    .name = "db",
    .help = "database maintenance",
    .verbs = verbs,
    .nverbs = BP_ARRAY_LEN(verbs),
    .notes = "db backup writes one private (0600) SQLite file; an existing FILE is kept unless --force.\n"
             "Do not copy a running store with cp: recent changes sit in its -wal file. To restore,\n"
             "stop serve, put the copy in place of the store, remove the store's -wal and -shm files,\n"
             "and start serve again. A PostgreSQL store is backed up with pg_dump (README, \"Backup and\n"
             "restore\").\n"
             "\n"
             "db status lists every server that reports on the store (each does every 10 s while it\n"
             "runs): its node name, host, last report, the change seq it has applied and how far that is\n"
             "behind the store's.\n"
             "\n"
             "db copy moves a SQLite deployment into PostgreSQL: stop serve, copy, then start the nodes\n"
             "on the database. It copies instances with their Core secrets, keys, OAuth clients,\n"
             "operators, tokens, codes, sessions and the audit log in one transaction, checks the row\n"
             "count of every table and prints them. A database that holds records already is refused\n"
             "unless --force, which replaces them.\n",
};
