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

static const char usage_top[] =
    "usage: blnkproxy [--db DSN] [--json] <command> [options]\n"
    "\n"
    "Commands:\n"
    "  serve      run the proxy (see `blnkproxy serve --help`)\n"
    "  instance   manage Blnk Core instances\n"
    "  key        manage API keys\n"
    "  client     manage OAuth clients (third-party apps)\n"
    "  operator   manage the people who approve apps on the authorize page\n"
    "  audit      read the audit log\n"
    "  db         database maintenance\n"
    "  version    print the version and the git revision the binary was built from\n"
    "  help [COMMAND]\n"
    "\n"
    "Every command takes:\n"
    "  --db DSN   the store: a SQLite file path, or postgres://USER:PASSWORD@HOST/DB for\n"
    "             PostgreSQL (default $BLNKPROXY_DB, else ./blnkproxy.db)\n"
    "  --json     print exactly one JSON object on stdout\n"
    "\n"
    "  -V, --version   same as `blnkproxy version`\n"
    "  -h, --help      this text\n"
    "\n"
    "Only `db migrate`, `serve` and `instance add` create a missing store (and say where);\n"
    "every other command exits 1 when there is no store at the --db path.\n"
    "\n"
    "Exit codes: 0 ok, 1 failure (no store at the --db path, a store newer than this\n"
    "blnkproxy, a store error), 2 usage or validation error, 3 unknown id.\n";

static const char usage_instance[] =
    "usage:\n"
    "  blnkproxy instance add --name NAME --url URL\n"
    "                         [--secret-key-file FILE | --secret-key-env VAR] [--ca-file FILE]\n"
    "  blnkproxy instance list\n"
    "  blnkproxy instance show ID\n"
    "  blnkproxy instance update ID [--name NAME] [--url URL]\n"
    "                         [--secret-key-file FILE | --secret-key-env VAR | --clear-secret-key]\n"
    "                         [--ca-file FILE | --clear-ca-file] [--enable | --disable]\n"
    "  blnkproxy instance enable ID\n"
    "  blnkproxy instance disable ID\n"
    "  blnkproxy instance remove ID\n"
    "\n"
    "URL: http:// or https://, a host, an optional :port and path; no query, fragment or\n"
    "user info. The Core secret key (sent as X-Blnk-Key) is read from a file (its trailing\n"
    "newline removed) or an environment variable, never from the command line. Use Core's\n"
    "master key: Core re-encodes bodies sent with scoped keys. Without one, Core answers 401\n"
    "unless it runs without authentication. The first `instance add` creates the store when\n"
    "there is none yet.\n";

static const char usage_key[] =
    "usage:\n"
    "  blnkproxy key create --name NAME --scopes S1,S2 [--expires-in 30d|never]\n"
    "                       [--instances ID1,ID2]\n"
    "  blnkproxy key list\n"
    "  blnkproxy key show ID\n"
    "  blnkproxy key revoke ID\n"
    "  blnkproxy key expire ID --expires-in 7d|never\n"
    "\n"
    "Scopes: *, proxy:read, proxy:write. Durations: <n>s, <n>m, <n>h, <n>d or never.\n"
    "The key is printed once, by `key create`; only its SHA-256 digest is stored.\n";

static const char usage_client[] =
    "usage:\n"
    "  blnkproxy client create --name NAME --scopes S1,S2 [--redirect-uri URI]...\n"
    "                          [--grant-types G1,G2] [--instances ID1,ID2] [--expires-in 30d|never]\n"
    "  blnkproxy client list\n"
    "  blnkproxy client show ID\n"
    "  blnkproxy client revoke ID\n"
    "  blnkproxy client expire ID --expires-in 7d|never\n"
    "\n"
    "Grant types: client_credentials, authorization_code, refresh_token. The default is\n"
    "client_credentials, plus authorization_code,refresh_token when a --redirect-uri is given.\n"
    "The client secret is printed once, by `client create`; only its SHA-256 digest is stored.\n"
    "Revoking a client revokes every token it holds.\n";

static const char usage_operator[] =
    "usage:\n"
    "  blnkproxy operator create --name NAME (--password-file FILE | --password-env VAR)\n"
    "  blnkproxy operator list\n"
    "  blnkproxy operator disable ID\n"
    "  blnkproxy operator enable ID\n"
    "  blnkproxy operator passwd ID (--password-file FILE | --password-env VAR)\n"
    "\n"
    "Operators sign in on /oauth/authorize to approve apps. Passwords are hashed with Argon2id;\n"
    "they are read from a file or an environment variable, never from the command line.\n";

static const char usage_version[] =
    "usage:\n"
    "  blnkproxy version     (also -V, --version)\n"
    "\n"
    "Prints `blnkproxy <version> (<revision>)`: the release and the git commit (12 hex digits)\n"
    "the binary was built from, or \"unknown\" when it was built without git metadata (e.g.\n"
    "from a tarball). With --json: {\"version\":…,\"revision\":…}. /metrics shows both on\n"
    "blnkproxy_build_info.\n";

static const char usage_db[] =
    "usage:\n"
    "  blnkproxy db migrate             apply pending schema migrations (creates a missing store)\n"
    "  blnkproxy db backup FILE [--force]\n"
    "                                   write a consistent copy of the store to FILE, while\n"
    "                                   serve keeps running\n"
    "  blnkproxy db status              the store's kind, schema version and change seq, and the\n"
    "                                   servers using it: their node, last report (every 10 s)\n"
    "                                   and how far they have applied changes\n"
    "  blnkproxy db copy --from SQLITE_PATH --to POSTGRES_DSN [--force]\n"
    "                                   copy a SQLite store, whole, into an empty PostgreSQL\n"
    "                                   database (one transaction, row counts checked); --force\n"
    "                                   replaces what the database holds\n"
    "\n"
    "The copy is one private (0600) SQLite file; an existing FILE is kept unless --force.\n"
    "Do not copy a running store with cp: recent changes sit in its -wal file. To restore,\n"
    "stop serve, put the copy in place of the store, remove the store's -wal and -shm files,\n"
    "and start serve again. A PostgreSQL store is backed up with pg_dump (README, \"Backup and\n"
    "restore\").\n";

/* Command families: the word after `blnkproxy`, its usage text (or a function that prints it,
 * for usage built from data) and its entry point. */
struct family {
    const char *name;
    const char *usage;
    void (*print_usage)(FILE *f);
    int (*run)(struct bp_cli_ctx *ctx, int argc, char **argv);
};

static const struct family families[] = {
    {"instance", usage_instance, NULL, bp_cli__cmd_instance},
    {"key", usage_key, NULL, bp_cli__cmd_key},
    {"client", usage_client, NULL, bp_cli__cmd_client},
    {"operator", usage_operator, NULL, bp_cli__cmd_operator},
    {"audit", NULL, bp_cli__audit_usage, bp_cli__cmd_audit},
    {"db", usage_db, NULL, bp_cli__cmd_db},
};

static const struct family *
find_family(const char *name)
{
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        if (strcmp(families[i].name, name) == 0) {
            return &families[i];
        }
    }
    return NULL;
}

void
bp_cli__usage(const char *family, bool to_stderr)
{
    FILE *f = to_stderr ? stderr : stdout;

    if (family == NULL) {
        fputs(usage_top, f);
    } else if (strcmp(family, "version") == 0) {
        fputs(usage_version, f);
    } else {
        const struct family *fam = find_family(family);
        if (fam != NULL && fam->print_usage != NULL) {
            fam->print_usage(f);
        } else {
            fputs(fam != NULL ? fam->usage : usage_top, f);
        }
    }
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

#define MAX_FLAGS 24

/* Reports an unknown option by its name only (whatever follows '=' may be a secret), with the
 * nearest of the command's flags and the global ones when one is close. */
static int
unknown_option(const char *arg, size_t len, const struct bp_cli_flag *flags, size_t nflags)
{
    static const char *const globals[] = {"--db", "--json", "--help"};
    const char *names[MAX_FLAGS + BP_ARRAY_LEN(globals)];
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
        for (size_t i = 0; i < nflags && n < MAX_FLAGS; i++) {
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
bp_cli__parse(struct bp_cli_ctx *ctx, int argc, char **argv, struct bp_cli_flag *flags,
              size_t nflags, size_t min_pos, size_t max_pos)
{
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
        if (ctx->npos >= max_pos || ctx->npos >= BP_CLI_MAX_POS) {
            bp_cli__error("too many arguments (see `blnkproxy help %s`)", ctx->family);
            return BP_CLI_EXIT_USAGE;
        }
        ctx->pos[ctx->npos++] = arg;
    }
    if (ctx->npos < min_pos) {
        bp_cli__error("missing ID argument (see `blnkproxy help %s`)", ctx->family);
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
    bp_err rc;

    rc = bp_store_open(bp_cli__dsn(ctx), flags, out, err, sizeof(err));
    if (rc != BP_OK) {
        bp_cli__error("%s", err);
        return rc == BP_ERR_INVALID ? BP_CLI_EXIT_USAGE : BP_CLI_EXIT_FAIL;
    }
    if (bp_store_created_path(*out) != NULL) {
        bp_cli__error("created a new store at %s", bp_store_created_path(*out));
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

/* serve parses its own flags; a --db given before the word "serve" is handed on to it. */
static int
run_serve(const struct bp_cli_ctx *ctx, int argc, char **argv)
{
    char **args;
    int n = 0;
    int rc;

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
run_family(struct bp_cli_ctx *ctx, const struct family *fam, int argc, char **argv)
{
    const char *family = fam->name;
    int k = 0;

    ctx->family = family;
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
    return fam->run(ctx, argc, argv);
}

/* Reports an unknown command word, with the nearest known one when one is close. */
static int
unknown_command(const char *cmd)
{
    const char *names[BP_ARRAY_LEN(families) + 2];
    const char *hint;
    size_t n = 0;

    for (size_t i = 0; i < BP_ARRAY_LEN(families); i++) {
        names[n++] = families[i].name;
    }
    names[n++] = "serve";
    names[n++] = "help";
    hint = bp_str_nearest(cmd, names, n);
    if (hint != NULL) {
        bp_cli__error("unknown command %.40s (did you mean %s?)", cmd, hint);
    } else {
        bp_cli__error("unknown command %.40s (see `blnkproxy help`)", cmd);
    }
    return BP_CLI_EXIT_USAGE;
}

static int
run_help(int argc, char **argv)
{
    if (argc == 0) {
        bp_cli__usage(NULL, false);
        return BP_CLI_EXIT_OK;
    }
    if (find_family(argv[0]) != NULL || strcmp(argv[0], "version") == 0) {
        bp_cli__usage(argv[0], false);
        return BP_CLI_EXIT_OK;
    }
    if (strcmp(argv[0], "serve") == 0) {
        char help[] = "--help";
        char *args[] = {help, NULL};
        return bp_serve_main(1, args);
    }
    return unknown_command(argv[0]);
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
    bp_out_init();
    o = bp_out_obj_new();
    bp_out_str(o, "version", bp_version_get());
    bp_out_str(o, "revision", bp_version_revision());
    rc = bp_out_print_obj(o, true);
    bp_out_obj_free(o);
    return rc;
}

static int
run_version(struct bp_cli_ctx *ctx, int argc, char **argv)
{
    ctx->family = "version";
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, NULL, 0, 0, 0);
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
    const char *cmd;

    if (i < 0) {
        return rc;
    }
    cmd = argv[i];
    if (strcmp(cmd, "serve") == 0) {
        return run_serve(&ctx, argc - i - 1, argv + i + 1);
    }
    bp_out_init();
    if (strcmp(cmd, "help") == 0) {
        return run_help(argc - i - 1, argv + i + 1);
    }
    if (strcmp(cmd, "version") == 0) {
        return run_version(&ctx, argc - i - 1, argv + i + 1);
    }
    if (find_family(cmd) != NULL) {
        return run_family(&ctx, find_family(cmd), argc - i - 1, argv + i + 1);
    }
    return unknown_command(cmd);
}
