#include <string.h>

#include "cli/cli-int.h"
#include "cli/out.h"
#include "store/store.h"

/* `db migrate`: the same migrations serve applies on start, run on demand. */

static int
db_migrate(struct bp_cli_ctx *ctx, int argc, char **argv)
{
    struct bp_store *s = NULL;
    struct bp_out_obj *o;
    int applied = 0;
    int version = 0;
    bp_err rc;
    int exit_code;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL, 0, 0, 0);
    /* Migrated here rather than by the open helper, so that we can count what ran. `db migrate`
     * is one of the commands that may create the store. */
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

int
bp_cli__cmd_db(struct bp_cli_ctx *ctx, int argc, char **argv)
{
    if (strcmp(argv[0], "migrate") == 0) {
        return db_migrate(ctx, argc - 1, argv + 1);
    }
    bp_cli__error("unknown db command %.40s (see `blnkproxy help db`)", argv[0]);
    return BP_CLI_EXIT_USAGE;
}
