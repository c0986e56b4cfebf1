/* The trail's verbs of `audit` (issue 13): verify, checkpoint, checkpoints, export. They read the
 * store as `audit list` does; only checkpoint writes (one row). Exit codes: 0 intact / done, 1 a
 * break was found (verify) or the store failed, 2 usage. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "audit/audit.h"
#include "cli/cli-int.h"
#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "store/store.h"
#include "trail/trail.h"

#define EXPORT_PAGE 2000
#define MAX_CHECKPOINT_FILE (16 * 1024 * 1024)

enum { V_SINCE, V_CHECKPOINT, V_PUBLIC_KEY, V_SIGNING_KEY };
enum { K_SIGNING_KEY, K_OUT };
enum { L_SINCE, L_KIND };
enum { E_SINCE, E_UNTIL, E_FORMAT, E_OUT };

const struct bp_cli_opt bp_cli__verify_opts[BP_CLI_VERIFY_NOPTS] = {
    [V_SINCE] = {"--since", "T", .help = "check each chain from its first record at or after T"},
    [V_CHECKPOINT] = {"--checkpoint", "FILE",
                      .help = "prove nothing the checkpoint FILE covers changed since", .complete = "@file"},
    [V_PUBLIC_KEY] = {"--public-key", "FILE",
                      .help = "check checkpoint signatures with this Ed25519 key (PEM)", .group = 1,
                      .complete = "@file"},
    [V_SIGNING_KEY] = {"--signing-key", "FILE", .help = "the same, given the private key", .group = 1,
                       .complete = "@file"},
};

const struct bp_cli_opt bp_cli__checkpoint_opts[BP_CLI_CHECKPOINT_NOPTS] = {
    [K_SIGNING_KEY] = {"--signing-key", "FILE", .help = "sign it with this Ed25519 private key (PEM)",
                       .complete = "@file"},
    [K_OUT] = {"--out", "FILE", .help = "also write it to FILE (replaced; mode 0644)", .complete = "@file"},
};

const struct bp_cli_opt bp_cli__checkpoints_opts[BP_CLI_CHECKPOINTS_NOPTS] = {
    [L_SINCE] = {"--since", "T", .help = "checkpoints made at or after T"},
    [L_KIND] = {"--kind", "K", .help = "only periodic, manual or purge checkpoints",
                .complete = "periodic manual purge"},
};

const struct bp_cli_opt bp_cli__export_opts[BP_CLI_EXPORT_NOPTS] = {
    [E_SINCE] = {"--since", "T", .help = "records at or after T"},
    [E_UNTIL] = {"--until", "T", .help = "records before T"},
    [E_FORMAT] = {"--format", "F", .help = "jsonl (default) or csv", .complete = "jsonl csv"},
    [E_OUT] = {"--out", "FILE", .help = "write to FILE (replaced; mode 0600) instead of standard output",
               .complete = "@file"},
};

static struct bp_trail_key *
load_key(const struct bp_cli_flag *f, bool need_private)
{
    char err[512];
    struct bp_trail_key *k = bp_trail_key_load(f->value, need_private, err, sizeof(err));

    if (k == NULL) {
        bp_cli__error("%s: %s", f->name, err);
    }
    return k;
}

/* FILE opened for writing, replaced, with mode (umask aside: an export holds client addresses,
 * so its mode is meant, not suggested); NULL (reported) when it cannot be. */
static FILE *
create_file(const char *path, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    FILE *f = fd >= 0 && fchmod(fd, mode) == 0 ? fdopen(fd, "w") : NULL;

    if (f == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        bp_cli__error("cannot write %s", path);
    }
    return f;
}

/* The whole of a small file, NUL-terminated; NULL (reported) when unreadable or too large. */
static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;

    if (f == NULL) {
        bp_cli__error("cannot read %s", path);
        return NULL;
    }
    buf = bp_malloc(MAX_CHECKPOINT_FILE + 1);
    n = fread(buf, 1, MAX_CHECKPOINT_FILE + 1, f);
    fclose(f);
    if (n > MAX_CHECKPOINT_FILE) {
        bp_cli__error("%s is larger than a checkpoint can be", path);
        bp_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int
bp_cli__audit_verify(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[BP_CLI_VERIFY_NOPTS];
    struct bp_trail_verify_opts o = {0};
    struct bp_trail_report r;
    struct bp_trail_key *key = NULL;
    struct bp_store *s = NULL;
    char *text = NULL;
    int64_t t0;
    bp_err err;
    int rc;

    (void)op;
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    rc = bp_cli__audit_time(&flags[V_SINCE], bp_clock_wall_us(), &o.since_us);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    if (flags[V_PUBLIC_KEY].seen || flags[V_SIGNING_KEY].seen) {
        key = load_key(flags[V_PUBLIC_KEY].seen ? &flags[V_PUBLIC_KEY] : &flags[V_SIGNING_KEY], false);
        if (key == NULL) {
            return BP_CLI_EXIT_USAGE;
        }
    }
    if (flags[V_CHECKPOINT].seen) {
        text = read_file(flags[V_CHECKPOINT].value);
        if (text == NULL) {
            bp_trail_key_free(key);
            return BP_CLI_EXIT_USAGE;
        }
    }
    o.checkpoint_text = text;
    o.key = key;
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc == BP_CLI_EXIT_OK) {
        t0 = bp_clock_mono_ms();
        err = bp_trail_verify(s, &o, &r);
        if (err == BP_ERR_INVALID) {
            bp_cli__error("%s", r.first_break);
            rc = BP_CLI_EXIT_USAGE;
        } else if (err != BP_OK) {
            rc = bp_cli__store_fail(s, err, "audit trail", "");
        } else if (ctx->json) {
            json_t *j = json_object();
            json_object_set_new(j, "intact", json_boolean(!r.broken));
            json_object_set_new(j, "first_break", r.broken ? json_string(r.first_break) : json_null());
            json_object_set_new(j, "chains", json_integer(r.chains));
            json_object_set_new(j, "records", json_integer(r.records));
            json_object_set_new(j, "before_trail", json_integer(r.legacy));
            json_object_set_new(j, "chains_starting_at_a_purge", json_integer(r.purged));
            json_object_set_new(j, "checkpoint_chains_matched", json_integer(r.checkpoint_matched));
            json_object_set_new(j, "checkpoint_chains_purged", json_integer(r.checkpoint_purged));
            json_object_set_new(j, "signatures_checked", json_integer(r.signatures_checked));
            json_object_set_new(j, "signatures_unchecked", json_integer(r.signatures_unchecked));
            json_object_set_new(j, "elapsed_ms", json_integer(bp_clock_mono_ms() - t0));
            json_dumpf(j, stdout, JSON_COMPACT);
            putchar('\n');
            json_decref(j);
            rc = r.broken ? BP_CLI_EXIT_FAIL : BP_CLI_EXIT_OK;
        } else if (r.broken) {
            printf("BROKEN: %s\n", r.first_break);
            printf("checked %lld records in %lld chains before the break\n", (long long)r.records,
                   (long long)r.chains);
            rc = BP_CLI_EXIT_FAIL;
        } else {
            printf("intact: %lld records in %lld chains (%lld ms)\n", (long long)r.records,
                   (long long)r.chains, (long long)(bp_clock_mono_ms() - t0));
            if (r.purged > 0) {
                printf("  %lld chains start where a purge checkpoint left them\n", (long long)r.purged);
            }
            if (r.legacy > 0) {
                printf("  %lld records from before the trail (schema 10) are not covered\n",
                       (long long)r.legacy);
            }
            if (text != NULL) {
                printf("  checkpoint: %lld chains matched, %lld purged since\n",
                       (long long)r.checkpoint_matched, (long long)r.checkpoint_purged);
            }
            if (r.signatures_checked > 0) {
                printf("  %lld signatures checked\n", (long long)r.signatures_checked);
            }
            if (r.signatures_unchecked > 0) {
                printf("  %lld signatures not checked: give --public-key to check them\n",
                       (long long)r.signatures_unchecked);
            }
        }
    }
    bp_store_close(s);
    bp_free(text);
    bp_trail_key_free(key);
    return rc;
}

int
bp_cli__audit_checkpoint(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[BP_CLI_CHECKPOINT_NOPTS];
    struct bp_trail_key *key = NULL;
    struct bp_store *s = NULL;
    char *json = NULL;
    char host[256] = "";
    bp_err err;
    int rc;

    (void)op;
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    if (flags[K_SIGNING_KEY].seen && (key = load_key(&flags[K_SIGNING_KEY], true)) == NULL) {
        return BP_CLI_EXIT_USAGE;
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc == BP_CLI_EXIT_OK) {
        (void)gethostname(host, sizeof(host) - 1);
        err = bp_trail_checkpoint(s, "manual", host[0] != '\0' ? host : NULL, key, false, &json);
        if (err != BP_OK) {
            rc = bp_cli__store_fail(s, err, "audit checkpoint", "");
        } else {
            if (flags[K_OUT].seen) {
                FILE *f = create_file(flags[K_OUT].value, 0644);
                bool written = f != NULL && fprintf(f, "%s\n", json) >= 0;
                if (f != NULL && fclose(f) != 0) {
                    written = false;
                }
                if (!written) {
                    if (f != NULL) {
                        bp_cli__error("cannot write %s", flags[K_OUT].value);
                    }
                    rc = BP_CLI_EXIT_FAIL;
                }
            }
            printf("%s\n", json);
        }
    }
    bp_free(json);
    bp_store_close(s);
    bp_trail_key_free(key);
    return rc;
}

int
bp_cli__audit_checkpoints(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[BP_CLI_CHECKPOINTS_NOPTS];
    struct bp_audit_checkpoint *cps = NULL;
    struct bp_store *s = NULL;
    int64_t since = 0;
    size_t n = 0;
    bp_err err;
    int rc;

    (void)op;
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    rc = bp_cli__audit_time(&flags[L_SINCE], bp_clock_wall_us(), &since);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    if (flags[L_KIND].seen && strcmp(flags[L_KIND].value, "periodic") != 0 &&
        strcmp(flags[L_KIND].value, "manual") != 0 && strcmp(flags[L_KIND].value, "purge") != 0) {
        bp_cli__error("invalid --kind: use periodic, manual or purge");
        return BP_CLI_EXIT_USAGE;
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    err = bp_store_audit_checkpoint_list(s, since, flags[L_KIND].seen ? flags[L_KIND].value : NULL, 0, &cps, &n);
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "audit checkpoints", "");
    }
    for (size_t i = 0; err == BP_OK && i < n; i++) {
        char *text = bp_trail_checkpoint_text(cps[i].body, cps[i].signature);
        printf("%s\n", text);
        bp_free(text);
    }
    bp_audit_checkpoints_free(cps, n);
    bp_store_close(s);
    return rc;
}

/* ---- export ---- */

/* One export line into line, then out. The lines come from the audit module, which the admin
 * API's export shares; a record's fields are bounded by the request it describes (its path by
 * the header limits), so a line never comes near this. */
#define EXPORT_LINE_MAX (16 * 1024 * 1024)

/* Writes out what line holds and empties it; false (reported) when the line could not be made. */
static bool
write_line(FILE *out, struct bp_buf *line, bp_err rc, int64_t seq)
{
    if (rc != BP_OK) {
        bp_cli__error("record seq %lld is too large to export", (long long)seq);
        return false;
    }
    fwrite(line->data, 1, line->len, out);
    bp_buf_reset(line);
    return true;
}

int
bp_cli__audit_export(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[BP_CLI_EXPORT_NOPTS];
    struct bp_audit_query q = {.ascending = true, .limit = EXPORT_PAGE};
    struct bp_store *s = NULL;
    int64_t now = bp_clock_wall_us();
    bool csv = false;
    FILE *out = stdout;
    struct bp_buf line;
    bool written = true;
    bp_err err = BP_OK;
    int rc;

    (void)op;
    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    rc = bp_cli__audit_time(&flags[E_SINCE], now, &q.since_us);
    if (rc == BP_CLI_EXIT_OK) {
        rc = bp_cli__audit_time(&flags[E_UNTIL], now, &q.until_us);
    }
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    if (flags[E_FORMAT].seen) {
        csv = strcmp(flags[E_FORMAT].value, "csv") == 0;
        if (!csv && strcmp(flags[E_FORMAT].value, "jsonl") != 0) {
            bp_cli__error("invalid --format: use jsonl or csv");
            return BP_CLI_EXIT_USAGE;
        }
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    if (flags[E_OUT].seen && (out = create_file(flags[E_OUT].value, 0600)) == NULL) {
        bp_store_close(s);
        return BP_CLI_EXIT_FAIL;
    }
    bp_buf_init(&line, EXPORT_LINE_MAX);
    if (csv) {
        written = write_line(out, &line, bp_audit_csv_header(&line), 0);
    }
    /* In seq order a page at a time: a log of millions streams in constant memory. */
    while (written) {
        struct bp_audit_rec *recs = NULL;
        size_t n = 0;

        err = bp_store_audit_query(s, &q, &recs, &n);
        if (err != BP_OK) {
            break;
        }
        for (size_t i = 0; written && i < n; i++) {
            bp_err made = csv ? bp_audit_csv_row(&line, &recs[i]) : bp_audit_jsonl_row(&line, &recs[i]);
            written = write_line(out, &line, made, recs[i].seq);
        }
        if (n > 0) {
            q.after_seq = recs[n - 1].seq;
        }
        bp_audit_recs_free(recs, n);
        if (n < EXPORT_PAGE) {
            break;
        }
    }
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "audit log", "");
    } else if (!written) {
        rc = BP_CLI_EXIT_FAIL;
    }
    bp_buf_cleanup(&line);
    if (out != stdout && fclose(out) != 0 && rc == BP_CLI_EXIT_OK) {
        bp_cli__error("cannot write %s", flags[E_OUT].value);
        rc = BP_CLI_EXIT_FAIL;
    }
    bp_store_close(s);
    return rc;
}
