#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli-int.h"
#include "cli/out.h"
#include "lib/bug.h"
#include "store/store.h"

/* `db …`: store maintenance. `migrate` runs the migrations serve applies on start, and is one of
 * the commands that may create the store; `backup` copies a live store consistently. */

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

/* ---- the family as data: parsed by bp_cli__parse, shown by help, man page and completion ---- */

static const struct bp_cli_opt backup_opts[] = {
    {"--force", NULL, .help = "replace FILE when it exists"},
};

static const struct bp_cli_verb verbs[] = {
    {"migrate", db_migrate, 0, .help = "apply pending schema migrations (creates a missing store)"},
    /* FILE is checked by db_backup, which says what it is for. */
    {"backup", db_backup, 0, .help = "write a consistent copy of the store to FILE, while serve keeps running",
     .args = "FILE", .min_args = 0, .max_args = 1, .args_complete = "@file", .opts = backup_opts,
     .nopts = BP_ARRAY_LEN(backup_opts)},
};

const struct bp_cli_family bp_cli__family_db = {
    .name = "db",
    .help = "database maintenance",
    .verbs = verbs,
    .nverbs = BP_ARRAY_LEN(verbs),
    .notes = "The copy is one private (0600) SQLite file; an existing FILE is kept unless --force.\n"
             "Do not copy a running store with cp: recent changes sit in its -wal file. To restore,\n"
             "stop serve, put the copy in place of the store, remove the store's -wal and -shm files,\n"
             "and start serve again.\n",
};
