#include "cli/cli.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli-int.h"
#include "cli/out.h"
#include "lib/alloc.h"
#include "lib/version.h"
#include "lib/bug.h"
#include "lib/str.h"
#include "serve/serve.h"
#include "store/store.h"

/* argv handling shared by every command, and dispatch to the command families. Business rules
 * live in cmd_*.c. */

#define DEFAULT_DB "./blnkproxy.db"
#define NAME_MAX_LEN 100

/* ---- the commands defined here: serve, version, help ---- */

static int run_serve(struct bp_cli_ctx *ctx, int argc, char **argv, int op);
static int run_version(struct bp_cli_ctx *ctx, int argc, char **argv, int op);
static int run_help(struct bp_cli_ctx *ctx, int argc, char **argv, int op);

/* serve's own options; every setting's flag follows them in help (bp_cli_family.settings). */
static const struct bp_cli_opt serve_opts[] = {
    {"--config", "FILE", .help = "read this configuration file instead of ./blnkproxy.json (also $BLNKPROXY_CONFIG)",
     .complete = "@file"},
    {"--check", NULL, .help = "load and validate the configuration, the routes and the store, print a summary and "
                      "exit 0, or exit 2 with the reason; starts nothing and creates no store"},
};

static const struct bp_cli_verb serve_verbs[] = {
    {NULL, run_serve, 0, .help = "run the proxy", .opts = serve_opts, .nopts = BP_ARRAY_LEN(serve_opts)},
};

static const struct bp_cli_family family_serve = {
    .name = "serve",
    .help = "run the proxy (see `blnkproxy serve --help`)",
    .verbs = serve_verbs,
    .nverbs = 1,
    .settings = true,
    .notes = "Every setting of blnkproxy.json can be given as a flag (underscores as dashes) or as a\n"
             "BLNKPROXY_<SETTING> environment variable; flags win over the environment, which wins over\n"
             "the file. See blnkproxy.json(5) and docs/CONFIG.md.\n"
             "\n"
             "--listen HOST:PORT is 127.0.0.1:8080 by default; :PORT is every IPv4 interface, [::]:PORT\n"
             "IPv4 and IPv6. serve refuses an address another process listens on, unless --reuse-port\n"
             "asks for a hand-over: start the new process with it, then send SIGTERM to the old one; no\n"
             "request is lost.\n"
             "\n"
             "Signals: SIGTERM or SIGINT stop gracefully (in-flight requests finish). SIGHUP re-reads the\n"
             "configuration file: limits, timeouts, log level, audit modes and routes apply at once;\n"
             "settings that need a restart are named in a warning; a bad file is refused with the reason\n"
             "in the log, and the running configuration stays. Under systemd (Type=notify, with\n"
             "$NOTIFY_SOCKET set) serve reports READY=1 once the store is open, the tables are loaded\n"
             "and the listeners accept; RELOADING=1 and READY=1 around a SIGHUP reload; STOPPING=1 at\n"
             "SIGTERM. A PostgreSQL store that is down at start does not hold READY=1 back: serve\n"
             "listens, says so in STATUS, answers /readyz 503 and retries until the store answers.\n",
};

static const struct bp_cli_verb version_verbs[] = {
    {NULL, run_version, 0, .help = "print the version and the git revision the binary was built from",
     .aka = "also -V, --version"},
};

static const struct bp_cli_family family_version = {
    .name = "version",
    .help = "print the version and the git revision the binary was built from",
    .verbs = version_verbs,
    .nverbs = 1,
    .notes = "Prints `blnkproxy <version> (<revision>)`: the release and the git commit (12 hex digits)\n"
             "the binary was built from, or \"unknown\" when it was built without git metadata (e.g.\n"
             "from a tarball). With --json: {\"version\":...,\"revision\":...}. /metrics shows both on\n"
             "blnkproxy_build_info.\n",
};

static const struct bp_cli_verb help_verbs[] = {
    {NULL, run_help, 0, .help = "print the usage of every command, or of one", .args = "[COMMAND]", .min_args = 0,
     .max_args = 1, .args_complete = "@commands"},
};

static const struct bp_cli_family family_help = {
    .name = "help",
    .help = "print this text, or the usage of one command (`blnkproxy help key`)",
    .verbs = help_verbs,
    .nverbs = 1,
};

/* In the order help lists them. */
static const struct bp_cli_family *const commands[] = {
    &family_serve,
    &bp_cli__family_instance,
    &bp_cli__family_key,
    &bp_cli__family_client,
    &bp_cli__family_operator,
    &bp_cli__family_audit,
    &bp_cli__family_db,
    &family_version,
    &bp_cli__family_completion,
    &bp_cli__family_openapi,
    &family_help,
    &bp_cli__family_man,
};

const struct bp_cli_opt bp_cli__global_opts[2] = {
    {"--db", "DSN",
     .help = "the store: a SQLite file path, or postgres://USER:PASSWORD@HOST/DB for PostgreSQL (default "
             "$BLNKPROXY_DB, else ./blnkproxy.db)",
     .complete = "@file"},
    {"--json", NULL, .help = "print exactly one JSON object on stdout"},
};

const struct bp_cli_family *const *
bp_cli__commands(size_t *out_n)
{
    *out_n = BP_ARRAY_LEN(commands);
    return commands;
}

const struct bp_cli_family *
bp_cli__find(const char *name)
{
    for (size_t i = 0; i < BP_ARRAY_LEN(commands); i++) {
        if (strcmp(commands[i]->name, name) == 0) {
            return commands[i];
        }
    }
    return NULL;
}

bool
bp_cli__is_simple(const struct bp_cli_family *fam)
{
    return fam->nverbs == 1 && fam->verbs[0].name == NULL;
}

void
bp_cli__error(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("blnkproxy: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

bool
bp_cli__name_is_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > NAME_MAX_LEN || name[0] == ' ' || name[n - 1] == ' ') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

/* ---- argument parsing ---- */

static struct bp_cli_flag *
find_flag(struct bp_cli_flag *flags, size_t nflags, const char *name, size_t len)
{
    for (size_t i = 0; i < nflags; i++) {
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0) {
            return &flags[i];
        }
    }
    return NULL;
}

static bool
is_named(const char *arg, size_t len, const char *name)
{
    return strlen(name) == len && strncmp(arg, name, len) == 0;
}

/* Reports an unknown option by its name only (whatever follows '=' may be a secret), with the
 * nearest of the command's flags and the global ones when one is close. */
static int
unknown_option(const char *arg, size_t len, const struct bp_cli_flag *flags, size_t nflags)
{
    static const char *const globals[] = {"--db", "--json", "--help"};
    const char *names[BP_CLI_MAX_OPTS + BP_ARRAY_LEN(globals)];
    const char *hint = NULL;
    char word[65];
    size_t n = 0;

    if (is_named(arg, len, "--secret-key")) {
        bp_cli__error("there is no --secret-key option: secrets never go on the command line; "
                      "use --secret-key-file FILE or --secret-key-env VAR");
        return BP_CLI_EXIT_USAGE;
    }
    if (len < sizeof(word)) {
        memcpy(word, arg, len);
        word[len] = '\0';
        for (size_t i = 0; i < nflags && n < BP_CLI_MAX_OPTS; i++) {
            names[n++] = flags[i].name;
        }
        for (size_t i = 0; i < BP_ARRAY_LEN(globals); i++) {
            names[n++] = globals[i];
        }
        hint = bp_str_nearest(word, names, n);
    }
    if (hint != NULL) {
        bp_cli__error("unknown option %.*s (did you mean %s?)", (int)len, arg, hint);
    } else {
        bp_cli__error("unknown option %.*s", (int)(len > 40 ? 40 : len), arg);
    }
    return BP_CLI_EXIT_USAGE;
}

/* Takes the value of flag name (len bytes of arg) from "=value" or the next word. */
static int
take_value(int argc, char **argv, int *k, const char *eq, const char *name, size_t len,
           const char **out)
{
    if (eq != NULL) {
        *out = eq + 1;
        return BP_CLI_EXIT_OK;
    }
    if (*k + 1 >= argc || strncmp(argv[*k + 1], "--", 2) == 0) {
        bp_cli__error("%.*s needs a value", (int)len, name);
        return BP_CLI_EXIT_USAGE;
    }
    *k += 1;
    *out = argv[*k];
    return BP_CLI_EXIT_OK;
}

static int
parse_option(struct bp_cli_ctx *ctx, int argc, char **argv, int *k, struct bp_cli_flag *flags,
             size_t nflags)
{
    const char *arg = argv[*k];
    const char *eq = strchr(arg, '=');
    size_t len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    struct bp_cli_flag *flag;

    if (strncmp(arg, "--", 2) != 0) {
        return unknown_option(arg, len, flags, nflags);
    }
    if (is_named(arg, len, "--json")) {
        if (eq != NULL) {
            bp_cli__error("--json takes no value");
            return BP_CLI_EXIT_USAGE;
        }
        ctx->json = true;
        return BP_CLI_EXIT_OK;
    }
    if (is_named(arg, len, "--db")) {
        return take_value(argc, argv, k, eq, arg, len, &ctx->db);
    }
    flag = find_flag(flags, nflags, arg, len);
    if (flag == NULL) {
        return unknown_option(arg, len, flags, nflags);
    }
    if (flag->seen && !flag->repeatable) {
        bp_cli__error("%s given more than once", flag->name);
        return BP_CLI_EXIT_USAGE;
    }
    flag->seen = true;
    if (!flag->has_value) {
        if (eq != NULL) {
            bp_cli__error("%s takes no value", flag->name);
            return BP_CLI_EXIT_USAGE;
        }
        return BP_CLI_EXIT_OK;
    }
    if (flag->repeatable) {
        int rc;
        if (flag->n_values >= BP_CLI_MAX_REPEAT) {
            bp_cli__error("%s given more than %d times", flag->name, BP_CLI_MAX_REPEAT);
            return BP_CLI_EXIT_USAGE;
        }
        rc = take_value(argc, argv, k, eq, arg, len, &flag->value);
        if (rc == BP_CLI_EXIT_OK) {
            flag->values[flag->n_values++] = flag->value;
        }
        return rc;
    }
    return take_value(argc, argv, k, eq, arg, len, &flag->value);
}

int
bp_cli__parse(struct bp_cli_ctx *ctx, int argc, char **argv, struct bp_cli_flag *flags)
{
    const struct bp_cli_verb *v = ctx->verb;
    size_t nflags = v->nopts;

    BP_BUG_ON(nflags > BP_CLI_MAX_OPTS || (nflags > 0 && flags == NULL));
    /* The verb's rows say how each option parses: the same rows help is printed from. */
    for (size_t i = 0; i < nflags; i++) {
        flags[i] = (struct bp_cli_flag){.name = v->opts[i].name,
                                        .has_value = v->opts[i].value != NULL,
                                        .repeatable = v->opts[i].repeatable};
    }
    ctx->npos = 0;
    for (int k = 0; k < argc; k++) {
        const char *arg = argv[k];
        int rc;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            bp_cli__usage(ctx->family, false);
            return BP_CLI_HELP_SHOWN;
        }
        if (arg[0] == '-' && arg[1] != '\0') {
            rc = parse_option(ctx, argc, argv, &k, flags, nflags);
            if (rc != BP_CLI_EXIT_OK) {
                return rc;
            }
            continue;
        }
        /* Not echoed: a misplaced word may be a secret pasted in the wrong place. */
        if (ctx->npos >= v->max_args || ctx->npos >= BP_CLI_MAX_POS) {
            bp_cli__error("too many arguments (see `blnkproxy help %s`)", ctx->family);
            return BP_CLI_EXIT_USAGE;
        }
        ctx->pos[ctx->npos++] = arg;
    }
    if (ctx->npos < v->min_args) {
        bp_cli__error("missing %s argument (see `blnkproxy help %s`)", v->args != NULL ? v->args : "an",
                      ctx->family);
        return BP_CLI_EXIT_USAGE;
    }
    return BP_CLI_EXIT_OK;
}

/* ---- store helpers ---- */

const char *
bp_cli__dsn(const struct bp_cli_ctx *ctx)
{
    const char *dsn = ctx->db;

    if (dsn == NULL) {
        dsn = getenv("BLNKPROXY_DB");
        if (dsn == NULL || dsn[0] == '\0') {
            dsn = DEFAULT_DB;
        }
    }
    return dsn;
}

static int
open_store(const struct bp_cli_ctx *ctx, unsigned flags, bool migrate, struct bp_store **out)
{
    char err[PATH_MAX + 512];
    int64_t freed;
    bp_err rc;

    rc = bp_store_open(bp_cli__dsn(ctx), flags, out, err, sizeof(err));
    if (rc != BP_OK) {
        bp_cli__error("%s", err);
        return rc == BP_ERR_INVALID ? BP_CLI_EXIT_USAGE : BP_CLI_EXIT_FAIL;
    }
    if (bp_store_created_path(*out) != NULL) {
        bp_cli__error("created a new store at %s", bp_store_created_path(*out));
    }
    /* A full disk (serve's audit records filled it, say): the room serve keeps for this is used,
     * so that a change as urgent as a revocation still fits. */
    freed = bp_store_reserve_release(bp_cli__dsn(ctx));
    if (freed > 0) {
        bp_cli__error("the disk holding %s is full: using the %lld bytes kept free for this (%s.reserve); free "
                      "space on that disk soon (serve keeps the reserve again once there is room)",
                      bp_cli__dsn(ctx), (long long)freed, bp_cli__dsn(ctx));
    }
    if (!migrate) {
        return BP_CLI_EXIT_OK;
    }
    rc = bp_store_migrate(*out, NULL, NULL);
    if (rc != BP_OK) {
        bp_cli__error("cannot migrate the database: %s", bp_store_last_error(*out));
        bp_store_close(*out);
        *out = NULL;
        return BP_CLI_EXIT_FAIL;
    }
    return BP_CLI_EXIT_OK;
}

int
bp_cli__open_store(const struct bp_cli_ctx *ctx, bool migrate, struct bp_store **out)
{
    return open_store(ctx, 0, migrate, out);
}

int
bp_cli__open_or_create_store(const struct bp_cli_ctx *ctx, bool migrate, struct bp_store **out)
{
    return open_store(ctx, BP_STORE_OPEN_CREATE, migrate, out);
}

int
bp_cli__store_fail(struct bp_store *s, bp_err rc, const char *what, const char *id)
{
    if (rc == BP_ERR_NOT_FOUND) {
        bp_cli__error("unknown %s %s", what, id);
        return BP_CLI_EXIT_NOT_FOUND;
    }
    if (rc == BP_ERR_EXISTS) {
        bp_cli__error("%s already exists", what);
        return BP_CLI_EXIT_USAGE;
    }
    bp_cli__error("store error (%s): %s", what, bp_store_last_error(s));
    return BP_CLI_EXIT_FAIL;
}

/* ---- dispatch ---- */

/* serve parses its own flags (the settings table's, config.h); a --db given before the word
 * "serve" is handed on to it. Its --help is printed here, from the same tables. */
static int
run_serve(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    char **args;
    int n = 0;
    int rc;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            bp_cli__usage("serve", false);
            return BP_CLI_EXIT_OK;
        }
    }
    if (ctx->db == NULL) {
        return bp_serve_main(argc, argv);
    }
    args = bp_calloc((size_t)argc + 3, sizeof(*args));
    args[n++] = (char *)"--db";
    args[n++] = (char *)ctx->db;
    for (int i = 0; i < argc; i++) {
        args[n++] = argv[i];
    }
    args[n] = NULL;
    rc = bp_serve_main(n, args);
    bp_free(args);
    return rc;
}

static int
run_family(struct bp_cli_ctx *ctx, const struct bp_cli_family *fam, int argc, char **argv)
{
    const char *family = fam->name;
    int k = 0;

    ctx->family = family;
    ctx->fam = fam;
    /* A command without verbs (serve, version, ...) gets every word after its name. */
    if (bp_cli__is_simple(fam)) {
        ctx->verb = &fam->verbs[0];
        return fam->verbs[0].run(ctx, argc, argv, fam->verbs[0].op);
    }
    /* Global options may also sit between the family and its verb. */
    while (k < argc && (strncmp(argv[k], "--db", 4) == 0 || strcmp(argv[k], "--json") == 0)) {
        int rc = parse_option(ctx, argc, argv, &k, NULL, 0);
        if (rc != BP_CLI_EXIT_OK) {
            return rc;
        }
        k++;
    }
    argc -= k;
    argv += k;
    if (argc == 0) {
        bp_cli__error("%s: missing subcommand", family);
        bp_cli__usage(family, true);
        return BP_CLI_EXIT_USAGE;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
        strcmp(argv[0], "help") == 0) {
        bp_cli__usage(family, false);
        return BP_CLI_EXIT_OK;
    }
    return bp_cli__dispatch(ctx, argc, argv);
}

/* Reports an unknown command word, with the nearest known one when one is close. */
static int
unknown_command(const char *cmd)
{
    const char *names[BP_ARRAY_LEN(commands)];
    const char *hint;
    size_t n = 0;

    for (size_t i = 0; i < BP_ARRAY_LEN(commands); i++) {
        if (!commands[i]->hidden) {
            names[n++] = commands[i]->name;
        }
    }
    hint = bp_str_nearest(cmd, names, n);
    if (hint != NULL) {
        bp_cli__error("unknown command %.40s (did you mean %s?)", cmd, hint);
    } else {
        bp_cli__error("unknown command %.40s (see `blnkproxy help`)", cmd);
    }
    return BP_CLI_EXIT_USAGE;
}

static int
run_help(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    if (ctx->npos == 0) {
        bp_cli__usage(NULL, false);
        return BP_CLI_EXIT_OK;
    }
    if (bp_cli__find(ctx->pos[0]) != NULL) {
        bp_cli__usage(ctx->pos[0], false);
        return BP_CLI_EXIT_OK;
    }
    return unknown_command(ctx->pos[0]);
}

/* `blnkproxy version`, `-V`, `--version`: one line for people, one object with --json. */
static int
print_version(const struct bp_cli_ctx *ctx)
{
    struct bp_out_obj *o;
    int rc;

    if (!ctx->json) {
        printf("blnkproxy %s (%s)\n", bp_version_get(), bp_version_revision());
        return fflush(stdout) == 0 ? BP_CLI_EXIT_OK : BP_CLI_EXIT_FAIL;
    }
    o = bp_out_obj_new();
    bp_out_str(o, "version", bp_version_get());
    bp_out_str(o, "revision", bp_version_revision());
    rc = bp_out_print_obj(o, true);
    bp_out_obj_free(o);
    return rc;
}

static int
run_version(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL);
    return print_version(ctx);
}

/* Global options before the command word. Returns the index of the command word, or -1 with
 * *out_rc set when the process should exit. */
static int
parse_globals(struct bp_cli_ctx *ctx, int argc, char **argv, int *out_rc)
{
    int i = 1;

    while (i < argc && argv[i][0] == '-') {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            bp_cli__usage(NULL, false);
            *out_rc = BP_CLI_EXIT_OK;
            return -1;
        }
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
            *out_rc = print_version(ctx);
            return -1;
        }
        *out_rc = parse_option(ctx, argc, argv, &i, NULL, 0);
        if (*out_rc != BP_CLI_EXIT_OK) {
            return -1;
        }
        i++;
    }
    if (i >= argc) {
        bp_cli__error("missing command");
        bp_cli__usage(NULL, true);
        *out_rc = BP_CLI_EXIT_USAGE;
        return -1;
    }
    return i;
}

int
bp_cli_main(int argc, char **argv)
{
    struct bp_cli_ctx ctx = {0};
    int rc = BP_CLI_EXIT_OK;
    int i = parse_globals(&ctx, argc, argv, &rc);
    const struct bp_cli_family *fam;

    if (i < 0) {
        return rc;
    }
    fam = bp_cli__find(argv[i]);
    if (fam == NULL) {
        return unknown_command(argv[i]);
    }
    return run_family(&ctx, fam, argc - i - 1, argv + i + 1);
}
