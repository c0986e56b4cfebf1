#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli-int.h"
#include "config/config.h"
#include "lib/buf.h"
#include "lib/bug.h"
#include "openapi/openapi.h"

/* Commands that print documentation generated from the program's own tables: shell completion
 * scripts, the man pages (hidden: the build runs it) and the OpenAPI document. None of them
 * opens the store. */

static int
finish(FILE *f)
{
    if (fflush(f) != 0 || ferror(f)) {
        bp_cli__error("cannot write to stdout");
        return BP_CLI_EXIT_FAIL;
    }
    return BP_CLI_EXIT_OK;
}

static int
run_completion(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    if (bp_cli__completion(stdout, ctx->pos[0]) != BP_OK) {
        bp_cli__error("completion: the shell must be bash or zsh");
        return BP_CLI_EXIT_USAGE;
    }
    return finish(stdout);
}

static int
run_man(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    int section;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    if (strcmp(ctx->pos[0], "1") == 0) {
        section = 1;
    } else if (strcmp(ctx->pos[0], "5") == 0) {
        section = 5;
    } else {
        bp_cli__error("man: the section must be 1 (commands) or 5 (blnkproxy.json)");
        return BP_CLI_EXIT_USAGE;
    }
    return bp_cli__man(stdout, section) == BP_CLI_EXIT_OK ? finish(stdout) : BP_CLI_EXIT_FAIL;
}

enum { OA_CONFIG, OA_COUNT };

static int
run_openapi(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[OA_COUNT];
    struct bp_config cfg;
    struct bp_buf text;
    char *cfg_argv[2];
    char err[1024];
    int rc;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    cfg_argv[0] = (char *)"--config";
    cfg_argv[1] = (char *)flags[OA_CONFIG].value;
    /* The configuration as serve would load it (file, then environment), for its "routes". */
    if (bp_config_load(flags[OA_CONFIG].seen ? 2 : 0, cfg_argv, &cfg, err, sizeof(err)) != BP_OK) {
        bp_cli__error("%s", err);
        return BP_CLI_EXIT_USAGE;
    }
    bp_buf_init(&text, SIZE_MAX);
    if (bp_openapi_render(&cfg, 0, &text, err, sizeof(err)) != BP_OK) {
        bp_cli__error("config \"routes\": %s", err);
        rc = BP_CLI_EXIT_USAGE;
    } else {
        fwrite(text.data, 1, text.len, stdout);
        rc = finish(stdout);
    }
    bp_buf_cleanup(&text);
    bp_config_cleanup(&cfg);
    return rc;
}

/* ---- the commands as data: parsed by bp_cli__parse, shown by help, man page and completion ---- */

static const struct bp_cli_verb completion_verbs[] = {
    {NULL, run_completion, 0, .help = "print a completion script for bash or zsh", .args = "bash|zsh",
     .min_args = 1, .max_args = 1, .args_complete = "bash zsh"},
};

const struct bp_cli_family bp_cli__family_completion = {
    .name = "completion",
    .help = "print a bash or zsh completion script",
    .verbs = completion_verbs,
    .nverbs = 1,
    .notes = "The script completes commands, verbs, options and the values of options that name files,\n"
             "environment variables or fixed words. Try it with `source <(blnkproxy completion bash)`;\n"
             "the Debian package installs both scripts.\n",
};

static const struct bp_cli_verb man_verbs[] = {
    {NULL, run_man, 0, .help = "print a man page in roff: 1 (commands) or 5 (blnkproxy.json)", .args = "1|5",
     .min_args = 1, .max_args = 1},
};

/* Hidden: the build runs it to write the man pages; people read them with man. */
const struct bp_cli_family bp_cli__family_man = {
    .name = "man",
    .help = "print a man page in roff",
    .verbs = man_verbs,
    .nverbs = 1,
    .hidden = true,
};

static const struct bp_cli_opt openapi_opts[OA_COUNT] = {
    [OA_CONFIG] = {"--config", "FILE",
                   .help = "take the routes from this configuration file (default: as serve "
                           "finds it)",
                   .complete = "@file"},
};

static const struct bp_cli_verb openapi_verbs[] = {
    {NULL, run_openapi, 0, .help = "print the OpenAPI 3.1 document of the Proxy API (JSON)",
     .opts = openapi_opts, .nopts = BP_ARRAY_LEN(openapi_opts)},
};

const struct bp_cli_family bp_cli__family_openapi = {
    .name = "openapi",
    .help = "print the OpenAPI 3.1 document of the Proxy API",
    .verbs = openapi_verbs,
    .nverbs = 1,
    .notes = "One operation per route of the table serve would run with: the built-in routes changed\n"
             "by the configuration's \"routes\" (--config FILE, $BLNKPROXY_CONFIG or ./blnkproxy.json,\n"
             "as serve finds it). The proxy's refusals come from its error catalog; Core's own answers\n"
             "are passed through and documented as \"default\".\n",
};
