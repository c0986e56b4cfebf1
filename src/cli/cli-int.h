#ifndef BP_CLI_CLI_INT_H
#define BP_CLI_CLI_INT_H

/* Shared between the cli/ files only: argument parsing, exit codes, error reporting and the
 * command families' entry points. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

struct bp_cli_family;
struct bp_cli_verb;

/* The options every command takes, plus the positional arguments of this one. */
struct bp_cli_ctx {
    const char *family; /* "instance", "key", "db": for --help */
    const struct bp_cli_family *fam; /* the command being run */
    const struct bp_cli_verb *verb;  /* its verb (the only one of a command without verbs) */
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

/* Parses argv (the words after the command family and verb) into ctx and flags, by the rows of
 * ctx->verb: flags has one slot per option of the verb (NULL when it has none), filled in the
 * order of verb->opts, and between min_args and max_args positional arguments are expected.
 * Accepts --flag VALUE and --flag=VALUE plus the global --db/--json anywhere. Returns
 * BP_CLI_EXIT_OK, BP_CLI_HELP_SHOWN after printing the family's usage for --help, or
 * BP_CLI_EXIT_USAGE after printing why; values of unknown flags are never echoed. */
int bp_cli__parse(struct bp_cli_ctx *ctx, int argc, char **argv, struct bp_cli_flag *flags);

#define BP_CLI_PARSE_OR_RETURN(...)                                                                \
    do {                                                                                           \
        int bp_cli_prc_ = bp_cli__parse(__VA_ARGS__);                                              \
        if (bp_cli_prc_ != BP_CLI_EXIT_OK) {                                                       \
            return bp_cli_prc_ == BP_CLI_HELP_SHOWN ? BP_CLI_EXIT_OK : bp_cli_prc_;                \
        }                                                                                          \
    } while (0)

/* "blnkproxy: <message>" on stderr. Never pass secret text. */
void bp_cli__error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The store's DSN: ctx->db, else $BLNKPROXY_DB, else ./blnkproxy.db. May hold a password: show
 * it only through bp_store_dsn_mask. */
const char *bp_cli__dsn(const struct bp_cli_ctx *ctx);
/* Opens the store (bp_cli__dsn) and, when migrate is set,
 * applies pending migrations. The store must exist: only the commands meant to create one use
 * bp_cli__open_or_create_store (issue 8). Reports a failure and returns an exit code (1 for a
 * missing, foreign or too new store). */
int bp_cli__open_store(const struct bp_cli_ctx *ctx, bool migrate, struct bp_store **out);
/* Like bp_cli__open_store, but creates a missing store and says so on stderr with its absolute
 * path: for `db migrate` and `instance add`. */
int bp_cli__open_or_create_store(const struct bp_cli_ctx *ctx, bool migrate, struct bp_store **out);
/* Reports a failed store call about what (e.g. "instance", "key") id, and maps it to an exit
 * code: NOT_FOUND → 3, EXISTS → 2, else 1. */
int bp_cli__store_fail(struct bp_store *s, bp_err rc, const char *what, const char *id);

/* `instance check ID [--timeout DURATION]` (cmd_instance_check.c): Core's GET /health through the
 * upstream client. Its one option row is in cmd_instance.c's table, flags[0]. */
int bp_cli__instance_check(struct bp_cli_ctx *ctx, int argc, char **argv, int op);

/* Validates a human-chosen name: 1..100 printable ASCII characters. */
bool bp_cli__name_is_valid(const char *name);

/* The command families (cmd_*.c) and the commands that print documentation (cmd_docs.c). */
extern const struct bp_cli_family bp_cli__family_instance;
extern const struct bp_cli_family bp_cli__family_key;
extern const struct bp_cli_family bp_cli__family_client;
extern const struct bp_cli_family bp_cli__family_operator;
extern const struct bp_cli_family bp_cli__family_audit;
extern const struct bp_cli_family bp_cli__family_db;
extern const struct bp_cli_family bp_cli__family_completion;
extern const struct bp_cli_family bp_cli__family_man;
extern const struct bp_cli_family bp_cli__family_openapi;

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
 * first failure. After a commit, waits (at most 2 s) until every running server using the store
 * has applied the change, and warns on stderr about any that did not. */
bp_err bp_cli__finish_audited(struct bp_store *s, bp_err change, const char *action, const char *id,
                              const char *instance_id);
/* The same for the last of several records of one change, all with operation_id as their
 * request_id (bp_audit_admin_op). */
bp_err bp_cli__finish_audited_op(struct bp_store *s, bp_err change, const char *action, const char *id,
                                 const char *instance_id, const char *operation_id);
/* --grace DURATION (<n>s, m, h, d; not never) → the absolute wall time it ends, from now. */
int bp_cli__parse_grace(const char *text, int64_t now, int64_t *out);

/* ---- cred_limits.c: --allow-from, --rate and --burst of keys and clients (issue 12) ---- */

struct bp_out_obj;

struct bp_cred_limits;
/* Parses the three flags (each may be unseen); --burst needs a --rate that limits. */
int bp_cli__parse_limits(const struct bp_cli_flag *allow_from, const struct bp_cli_flag *rate,
                         const struct bp_cli_flag *burst, struct bp_cred_limits *out);

/* How one kind of credential stores them, and what its audit records are called. */
struct bp_cli_limits_ops {
    bp_err (*set_allow_from)(struct bp_store *s, const char *id, const char *allow_from);
    bp_err (*set_rate)(struct bp_store *s, const char *id, const char *rate_limit, int64_t burst);
    const char *allow_action; /* "Key allow-list changed" */
    const char *rate_action;  /* "Key rate limit changed" */
};
/* "rate_limit" (its text, null: the default) and "rate_burst" (null: the rate's count). */
void bp_cli__out_rate(struct bp_out_obj *o, const char *rate_limit, int64_t burst);
/* Writes what l sets (at least one part) with its audit record(s), in one transaction, and waits
 * for the running servers as bp_cli__finish_audited does. */
bp_err bp_cli__apply_limits(struct bp_store *s, const struct bp_cli_limits_ops *ops, const char *id,
                            const struct bp_cred_limits *l);
/* The options of `key update` and `client update`, in this order (each family words their help). */
enum { BP_CLI_UF_ALLOW_FROM, BP_CLI_UF_RATE, BP_CLI_UF_BURST, BP_CLI_UF_COUNT };
struct bp_cli_kind;
/* `<family> update ID [--allow-from …] [--rate … [--burst N]]`: parses, writes through ops, then
 * shows the record as kind does. Returns an exit code. */
int bp_cli__update_limits(struct bp_cli_ctx *ctx, int argc, char **argv, const struct bp_cli_kind *kind,
                          const struct bp_cli_limits_ops *ops);

/* ---- verbs.c: the verb shapes the families share ---- */

struct bp_out_obj;

/* ---- the command line as data ----
 *
 * Every command, verb and option is a row below; the parser reads its options from these rows,
 * and `--help`, the man page blnkproxy(1) and the shell completions are generated from the same
 * rows (help.c, man.c, completion.c), so none of them can name an option the parser does not
 * take or miss one it does. serve's options are the settings table's (config.h). */

/* One option of a verb. */
struct bp_cli_opt {
    const char *name;     /* "--name" */
    const char *value;    /* what help calls its value ("NAME"); NULL: a switch without one */
    const char *help;     /* one line, lower case, no full stop */
    unsigned char group;  /* options sharing a nonzero group exclude each other: [A | B] */
    bool required;        /* the verb refuses to run without it (or without one of its group) */
    bool repeatable;      /* may be given several times; every value is kept */
    const char *complete; /* its value for the shell: NULL nothing, "@file", "@env" (variable
                           * names), or the words it accepts ("bash zsh") */
};

/* One verb of a family: its word, the function that runs it and the op that function is handed
 * (several verbs may share one function, told apart by op), and what help says about it. */
struct bp_cli_verb {
    const char *name; /* NULL: the family is a command without verbs (`version`) */
    int (*run)(struct bp_cli_ctx *ctx, int argc, char **argv, int op);
    int op;
    const char *help; /* one line, lower case, no full stop */
    const char *args; /* its positional arguments as help shows them ("ID", "FILE"), or NULL */
    size_t min_args;
    size_t max_args;
    const char *args_complete; /* like bp_cli_opt.complete, or "@commands" (command names) */
    const struct bp_cli_opt *opts;
    size_t nopts;
    const char *aka; /* another way to say it, shown after the synopsis ("also -V, --version") */
};

/* `audit` (cmd_audit.c): a --since/--until value (RFC 3339 or "7d" ago) into *out_us (unchanged
 * when the flag is absent). */
int bp_cli__audit_time(const struct bp_cli_flag *f, int64_t now_us, int64_t *out_us);

/* The trail's verbs of `audit` (cmd_audit_trail.c, issue 13), as rows of cmd_audit.c's table. */
enum { BP_CLI_VERIFY_NOPTS = 4, BP_CLI_CHECKPOINT_NOPTS = 2, BP_CLI_CHECKPOINTS_NOPTS = 2, BP_CLI_EXPORT_NOPTS = 4 };
extern const struct bp_cli_opt bp_cli__verify_opts[BP_CLI_VERIFY_NOPTS];
extern const struct bp_cli_opt bp_cli__checkpoint_opts[BP_CLI_CHECKPOINT_NOPTS];
extern const struct bp_cli_opt bp_cli__checkpoints_opts[BP_CLI_CHECKPOINTS_NOPTS];
extern const struct bp_cli_opt bp_cli__export_opts[BP_CLI_EXPORT_NOPTS];
int bp_cli__audit_verify(struct bp_cli_ctx *ctx, int argc, char **argv, int op);
int bp_cli__audit_checkpoint(struct bp_cli_ctx *ctx, int argc, char **argv, int op);
int bp_cli__audit_checkpoints(struct bp_cli_ctx *ctx, int argc, char **argv, int op);
int bp_cli__audit_export(struct bp_cli_ctx *ctx, int argc, char **argv, int op);
#define BP_CLI_AUDIT_TRAIL_VERBS                                                                   \
    {"verify", bp_cli__audit_verify, 0, .help = "check the trail: report the first record changed, removed or " \
     "reordered", .opts = bp_cli__verify_opts, .nopts = BP_CLI_VERIFY_NOPTS},                      \
    {"checkpoint", bp_cli__audit_checkpoint, 0, .help = "write down every chain's head now and print it", \
     .opts = bp_cli__checkpoint_opts, .nopts = BP_CLI_CHECKPOINT_NOPTS},                            \
    {"checkpoints", bp_cli__audit_checkpoints, 0, .help = "print stored checkpoints as JSON lines, oldest first", \
     .opts = bp_cli__checkpoints_opts, .nopts = BP_CLI_CHECKPOINTS_NOPTS},                          \
    {"export", bp_cli__audit_export, 0, .help = "stream records with their hashes, oldest first, for a SIEM", \
     .opts = bp_cli__export_opts, .nopts = BP_CLI_EXPORT_NOPTS}

/* A command: a family of verbs (`instance add`, `instance list`, ...) or one verb without a
 * word of its own (`version`). */
struct bp_cli_family {
    const char *name;
    const char *help; /* one line for the command list of `blnkproxy --help` */
    const struct bp_cli_verb *verbs;
    size_t nverbs;
    const char *notes;            /* paragraphs after the synopses, wrapped at 92 columns */
    void (*print_notes)(FILE *f); /* instead of notes, when they are built from data */
    bool settings;                /* serve: takes every setting's flag (config.h) and parses them itself */
    bool hidden;                  /* left out of help, the man page and the completions */
};

#define BP_CLI_MAX_VERBS 16
#define BP_CLI_MAX_OPTS 24

/* Every command in the order help lists them (hidden ones included); *out_n is how many. */
const struct bp_cli_family *const *bp_cli__commands(size_t *out_n);
/* The command called name, or NULL. */
const struct bp_cli_family *bp_cli__find(const char *name);
/* True for a command without verbs (its one verb has no name). */
bool bp_cli__is_simple(const struct bp_cli_family *fam);
/* The options every command takes (--db, --json), for help, man page and completion. */
extern const struct bp_cli_opt bp_cli__global_opts[2];

/* Runs the verb argv[0] names in ctx->fam with the words after it, or reports an unknown one
 * with the nearest verb when one is close (exit 2). */
int bp_cli__dispatch(struct bp_cli_ctx *ctx, int argc, char **argv);

/* The option `<family> expire ID` takes (keys and clients). */
extern const struct bp_cli_opt bp_cli__expire_opts[1];

/* A kind of record (instances, keys, clients, operators) as the shared verbs handle it. The
 * callbacks take a struct bp_<kind>_rec behind the void pointers. */
struct bp_cli_kind {
    const char *noun;            /* "client": the store failure names it with the ID */
    const char *plural;          /* "clients": the list's JSON key and store failure noun */
    const char *const *columns;  /* the list's table columns (field keys) */
    size_t ncolumns;
    size_t rec_size;
    bp_err (*get)(struct bp_store *s, const char *id, void *rec);
    bp_err (*list)(struct bp_store *s, void **recs, size_t *n); /* *recs: an array of n records */
    struct bp_out_obj *(*obj)(const void *rec, int64_t now);    /* the record as output, at now */
    void (*cleanup)(void *rec);
};

/* `<family> list`: takes no arguments and prints every record (one row each). Returns an exit code. */
int bp_cli__list(struct bp_cli_ctx *ctx, int argc, char **argv, const struct bp_cli_kind *kind);

/* Runs on the open store before a one-ID verb prints its record; json is for bp_out_note. */
typedef bp_err (*bp_cli_change_cb)(struct bp_store *s, const char *id, const void *arg, bool json);

/* The end of a one-ID verb (ID in ctx->pos[0]): opens the store, applies change(s, ID, arg) unless
 * change is NULL, then fetches and prints the record as it now stands. A failure of either is
 * reported about the kind's noun and the ID (bp_cli__store_fail). Returns an exit code. */
int bp_cli__one(const struct bp_cli_ctx *ctx, const struct bp_cli_kind *kind, bp_cli_change_cb change,
                const void *arg);

/* Parses the words of a one-ID verb of keys and clients. Only `expire` (whose verb row has
 * bp_cli__expire_opts) takes --expires-in, and needs it: into *expires_at (absolute wall
 * seconds, 0 = never; else left alone). Returns like bp_cli__parse. */
int bp_cli__parse_id_expiry(struct bp_cli_ctx *ctx, int argc, char **argv, int64_t *expires_at);

/* The status of a credential (key or client): "revoked", "expired" at now, or "active". */
const char *bp_cli__cred_status(bool revoked, int64_t expires_at, int64_t now);

/* Reports an invalid --name (see bp_cli__name_is_valid): BP_CLI_EXIT_OK or BP_CLI_EXIT_USAGE. */
int bp_cli__check_name(const char *name);

/* A new record ID: prefix, '_' and a ULID (allocated). Reports a failing random source and returns
 * NULL. */
char *bp_cli__new_id(const char *prefix);

/* ---- help.c, man.c, completion.c: documentation generated from the rows above ---- */

/* The closing paragraphs of the top-level help (which commands create a store, exit codes). */
extern const char bp_cli__top_notes[];
/* Usage text of a command ("instance", "serve", "version", ...) or of everything (NULL), to
 * stdout or stderr. */
void bp_cli__usage(const char *family, bool to_stderr);
/* `--help` of one command, to f. */
void bp_cli__print_usage(FILE *f, const struct bp_cli_family *fam);
/* The synopsis of one verb after "blnkproxy <family> <verb>": its arguments and options, each
 * item an allocated string ("ID", "--name NAME", "[--ca-file FILE]", "[--enable | --disable]");
 * *out_n items. With roff, the items are written in roff (bold names, italic values). Free
 * with bp_cli__synopsis_free. */
char **bp_cli__synopsis(const struct bp_cli_verb *v, bool roff, size_t *out_n);
void bp_cli__synopsis_free(char **items, size_t n);
/* The notes of a family as one allocated string ("" when none). */
char *bp_cli__notes_text(const struct bp_cli_family *fam);

/* The man page (section 1: commands and options; 5: the configuration file) in roff, to f. */
int bp_cli__man(FILE *f, int section);
/* The completion script for shell ("bash" or "zsh") to f; BP_ERR_INVALID for another shell. */
bp_err bp_cli__completion(FILE *f, const char *shell);

#endif
