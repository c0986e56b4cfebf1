#ifndef BP_CLI_CLI_INT_H
#define BP_CLI_CLI_INT_H

/* Shared between the cli/ files only: argument parsing, exit codes, error reporting and the
 * command families' entry points. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

struct bp_store;

enum {
    BP_CLI_EXIT_OK = 0,
    BP_CLI_EXIT_FAIL = 1,
    BP_CLI_EXIT_USAGE = 2,
    BP_CLI_EXIT_NOT_FOUND = 3,
    BP_CLI_HELP_SHOWN = -1, /* bp_cli__parse printed --help: stop and exit 0 */
};

#define BP_CLI_MAX_POS 4

/* The options every command takes, plus the positional arguments of this one. */
struct bp_cli_ctx {
    const char *family; /* "instance", "key", "db": for --help */
    const char *db; /* --db, else $BLNKPROXY_DB, else ./blnkproxy.db */
    bool json;
    const char *pos[BP_CLI_MAX_POS];
    size_t npos;
};

#define BP_CLI_MAX_REPEAT 16

/* One flag a command accepts. The parser fills value/seen (the last value given). A repeatable
 * flag ("--redirect-uri A --redirect-uri B") also collects every value in values[0..n_values). */
struct bp_cli_flag {
    const char *name; /* "--name" */
    bool has_value;
    const char *value;
    bool seen;
    bool repeatable;
    const char *values[BP_CLI_MAX_REPEAT];
    size_t n_values;
};

/* Parses argv (the words after the command family and verb) into ctx and flags, accepting
 * --flag VALUE and --flag=VALUE plus the global --db/--json anywhere. Expects between min_pos and
 * max_pos positional arguments. Returns BP_CLI_EXIT_OK, BP_CLI_HELP_SHOWN after printing the
 * family's usage for --help, or BP_CLI_EXIT_USAGE after printing why; values of unknown flags
 * are never echoed. */
int bp_cli__parse(struct bp_cli_ctx *ctx, int argc, char **argv, struct bp_cli_flag *flags,
                  size_t nflags, size_t min_pos, size_t max_pos);

#define BP_CLI_PARSE_OR_RETURN(...)                                                                \
    do {                                                                                           \
        int bp_cli_prc_ = bp_cli__parse(__VA_ARGS__);                                              \
        if (bp_cli_prc_ != BP_CLI_EXIT_OK) {                                                       \
            return bp_cli_prc_ == BP_CLI_HELP_SHOWN ? BP_CLI_EXIT_OK : bp_cli_prc_;                \
        }                                                                                          \
    } while (0)

/* "blnkproxy: <message>" on stderr. Never pass secret text. */
void bp_cli__error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Opens ctx->db and, when migrate is set, applies pending migrations. Returns an exit code. */
int bp_cli__open_store(const struct bp_cli_ctx *ctx, bool migrate, struct bp_store **out);
/* Reports a failed store call about what (e.g. "instance", "key") id, and maps it to an exit
 * code: NOT_FOUND → 3, EXISTS → 2, else 1. */
int bp_cli__store_fail(struct bp_store *s, bp_err rc, const char *what, const char *id);

/* Validates a human-chosen name: 1..100 printable ASCII characters. */
bool bp_cli__name_is_valid(const char *name);

/* Command families: argv[0] is the verb ("add", "list", …). */
int bp_cli__cmd_instance(struct bp_cli_ctx *ctx, int argc, char **argv);
int bp_cli__cmd_key(struct bp_cli_ctx *ctx, int argc, char **argv);
int bp_cli__cmd_db(struct bp_cli_ctx *ctx, int argc, char **argv);
int bp_cli__cmd_client(struct bp_cli_ctx *ctx, int argc, char **argv);   /* cmd_client.c */
int bp_cli__cmd_operator(struct bp_cli_ctx *ctx, int argc, char **argv); /* cmd_operator.c */
int bp_cli__cmd_audit(struct bp_cli_ctx *ctx, int argc, char **argv);    /* cmd_audit.c */

/* Reads a secret given by a --X-file FILE flag (content without one trailing newline) or a
 * --X-env VAR flag into an allocated NUL-terminated buffer (*out, *out_len; wipe and free it
 * after use). Leaves *out untouched when neither flag was given; refuses both. header_safe:
 * visible ASCII only (the secret becomes a header value); else anything but control characters.
 * Returns an exit code (secret_input.c). */
int bp_cli__read_secret(const struct bp_cli_flag *file, const struct bp_cli_flag *env, bool header_safe,
                        char **out, size_t *out_len);

/* cred_args.c: flags shared by keys and OAuth clients. Each prints why and returns an exit code. */
#define BP_CLI_SCOPES_MAX 64
/* --scopes "a,b" → canonical text (bp_scopes_format), naming the first unknown scope. */
int bp_cli__parse_scopes(const char *text, char out[BP_CLI_SCOPES_MAX]);
/* --expires-in → absolute expiry in wall seconds (0 = never). */
int bp_cli__parse_expiry(const char *text, int64_t now, int64_t *out);
/* --instances "id1,id2" → allocated canonical list (deduplicated), each id checked in the store. */
int bp_cli__parse_instances(struct bp_store *s, const char *text, char **out);
/* Ends a transaction opened with bp_store_begin around a change: when change is BP_OK writes the
 * audit record (bp_audit_admin) and commits, else (or if that fails) rolls back. Returns the
 * first failure. */
bp_err bp_cli__finish_audited(struct bp_store *s, bp_err change, const char *action, const char *id,
                              const char *instance_id);

/* Usage text of a family ("instance", "key", "client", "operator", "audit", "db") or of everything (NULL), to stdout or stderr. */
void bp_cli__usage(const char *family, bool to_stderr);

#endif
