#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit/audit.h"
#include "cli/cli-int.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/str.h"
#include "router/router.h"
#include "store/store.h"

/* `audit list`: reads the audit log (issue 4). Filters map one to one onto struct
 * bp_audit_query, which the store answers through its indexes. Output: a table for people, or
 * with --json one JSON object per line (JSON lines, every field, times as RFC 3339 with
 * microseconds). --follow prints the newest matching records oldest first, then polls every
 * 500 ms for records committed since (a store cursor: each record once, none skipped when
 * several nodes commit out of seq order) until SIGINT or SIGTERM, and exits 0. */

#define DEFAULT_LIMIT 100
#define MAX_LIMIT 1000000000
#define FOLLOW_POLL_MS 500
#define FOLLOW_PAGE 1000
#define US_PER_S 1000000LL

enum { F_SINCE, F_UNTIL, F_CATEGORY, F_INSTANCE, F_CREDENTIAL, F_ACTION, F_STATUS, F_LIMIT, F_FOLLOW, F_COUNT };

/* ---- categories ---- */

#define MAX_CATEGORIES 64

/* The categories records get (issue 8): those of the route table, then the CLI's own. Static
 * strings, each once. */
static size_t
known_categories(const char *out[MAX_CATEGORIES])
{
    size_t n = bp_route_categories(out, MAX_CATEGORIES - 1);

    BP_BUG_ON(n > MAX_CATEGORIES - 1);
    out[n++] = BP_AUDIT_CATEGORY_ADMIN;
    return n;
}

/* "a, b, c" wrapped before width columns (0: never), continuation lines indented by two spaces;
 * the first line already holds first_col columns. */
static void
print_list(FILE *f, const char *const *items, size_t n, size_t first_col, size_t width)
{
    size_t col = first_col;

    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(items[i]) + (i + 1 < n ? 1 : 0);
        if (i > 0 && width > 0 && col + 1 + len > width) {
            fputs("\n  ", f);
            col = 2;
        } else if (i > 0) {
            fputc(' ', f);
            col++;
        }
        fprintf(f, "%s%s", items[i], i + 1 < n ? "," : "");
        col += len;
    }
}

/* The notes of `audit --help` and of the man page: the category list comes from the route
 * table, so it names exactly the categories records get. */
static void
audit_notes(FILE *f)
{
    const char *cats[MAX_CATEGORIES];
    size_t n = known_categories(cats);

    fputs("T is RFC 3339 (2026-11-24T10:00:00Z) or relative to now (90s, 15m, 1h, 7d).\n"
          "Categories: ",
          f);
    print_list(f, cats, n, 12, 92);
    fputs(".\n"
          "  " BP_ROUTE_CATEGORY_CUSTOM ": an operator-added route that names none; " BP_AUDIT_CATEGORY_ADMIN
          ": changes made with the\n"
          "  CLI. A category an operator gives a route in the config file is accepted once it has\n"
          "  records.\n"
          "--action matches a record's action exactly. A route's label (\"Transaction created\") is\n"
          "recorded only when the request was forwarded to Core; a request the proxy refused has\n"
          "\"" BP_AUDIT_REFUSED_PREFIX "<label>\" instead. --json prints one JSON object per line.\n"
          "--follow keeps printing new records until interrupted.\n",
          f);
}

/* --category: one the route table or the CLI gives records, or one an operator's config route
 * gave records already (the CLI does not read the server's config file). */
static int
check_category(struct bp_store *s, const char *category)
{
    const char *cats[MAX_CATEGORIES];
    size_t n = known_categories(cats);
    struct bp_audit_query q = {.category = category, .limit = 1};
    struct bp_audit_rec *recs = NULL;
    size_t found = 0;
    const char *hint;
    bp_err err;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(cats[i], category) == 0) {
            return BP_CLI_EXIT_OK;
        }
    }
    err = bp_store_audit_query(s, &q, &recs, &found);
    if (err != BP_OK) {
        return bp_cli__store_fail(s, err, "audit log", "");
    }
    bp_audit_recs_free(recs, found);
    if (found > 0) {
        return BP_CLI_EXIT_OK;
    }
    hint = bp_str_nearest(category, cats, n);
    fflush(stdout);
    fprintf(stderr, "blnkproxy: unknown category \"%.40s\"", category);
    if (hint != NULL) {
        fprintf(stderr, " (did you mean \"%s\"?)", hint);
    }
    fputs("; categories: ", stderr);
    print_list(stderr, cats, n, 200, 0);
    fputs(", or one an operator gave a route in the config file once it has records\n", stderr);
    return BP_CLI_EXIT_USAGE;
}

/* ---- argument parsing ---- */

/* Parses exactly n decimal digits at s. */
static bool
digits(const char *s, size_t n, int *out)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
    int64_t era;
    int64_t yoe;
    int64_t doy;
    int64_t doe;

    y -= m <= 2 ? 1 : 0;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int
days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). */
static bool
parse_rfc3339(const char *s, int64_t *out_us)
{
    size_t len = strlen(s);
    int y;
    int mo;
    int d;
    int h;
    int mi;
    int sec;
    int64_t frac_us = 0;
    int64_t offset_s = 0;
    size_t i = 19;

    if (len < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec)) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60) {
        return false;
    }
    if (s[i] == '.') {
        int64_t scale = 100000;
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            frac_us += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start) {
            return false;
        }
    }
    if (i + 1 == len && (s[i] == 'Z' || s[i] == 'z')) {
        offset_s = 0;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh;
        int om;
        if (!digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 || om > 59) {
            return false;
        }
        offset_s = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
    } else {
        return false;
    }
    /* A leap second (:60) is the same instant as :59.999999 for our purposes. */
    if (sec == 60) {
        sec = 59;
        frac_us = US_PER_S - 1;
    }
    *out_us = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - offset_s) * US_PER_S + frac_us;
    return true;
}

/* "90s", "15m", "1h", "7d": that long before now. */
static bool
parse_relative(const char *s, int64_t now_us, int64_t *out_us)
{
    size_t len = strlen(s);
    uint64_t n;
    int64_t unit_s;

    if (len < 2) {
        return false;
    }
    switch (s[len - 1]) {
    case 's':
        unit_s = 1;
        break;
    case 'm':
        unit_s = 60;
        break;
    case 'h':
        unit_s = 3600;
        break;
    case 'd':
        unit_s = 86400;
        break;
    default:
        return false;
    }
    /* Up to 100 years back keeps the arithmetic far from overflow. */
    if (bp_str_parse_u64(s, len - 1, (uint64_t)36525 * 86400 / (uint64_t)unit_s, &n) != BP_OK) {
        return false;
    }
    *out_us = now_us - (int64_t)n * unit_s * US_PER_S;
    return true;
}

int
bp_cli__audit_time(const struct bp_cli_flag *f, int64_t now_us, int64_t *out_us)
{
    if (!f->seen) {
        return BP_CLI_EXIT_OK;
    }
    if (parse_relative(f->value, now_us, out_us) || parse_rfc3339(f->value, out_us)) {
        return BP_CLI_EXIT_OK;
    }
    bp_cli__error("invalid %s: use RFC 3339 (2026-11-24T10:00:00Z) or a duration ago (90s, 15m, 1h, 7d)",
                  f->name);
    return BP_CLI_EXIT_USAGE;
}

/* "404" (100..599) or a class "4xx" (stored as 4). */
static int
parse_status(const struct bp_cli_flag *f, int *out)
{
    const char *s = f->value;
    uint64_t v;

    if (!f->seen) {
        return BP_CLI_EXIT_OK;
    }
    if (strlen(s) == 3 && s[0] >= '1' && s[0] <= '5' && (s[1] == 'x' || s[1] == 'X') &&
        (s[2] == 'x' || s[2] == 'X')) {
        *out = s[0] - '0';
        return BP_CLI_EXIT_OK;
    }
    if (strlen(s) == 3 && bp_str_parse_u64(s, 3, 599, &v) == BP_OK && v >= 100) {
        *out = (int)v;
        return BP_CLI_EXIT_OK;
    }
    bp_cli__error("invalid --status: use a status (404) or a class (4xx)");
    return BP_CLI_EXIT_USAGE;
}

static int
parse_limit(const struct bp_cli_flag *f, size_t *out)
{
    uint64_t v;

    if (!f->seen) {
        *out = DEFAULT_LIMIT;
        return BP_CLI_EXIT_OK;
    }
    if (bp_str_parse_u64(f->value, strlen(f->value), MAX_LIMIT, &v) != BP_OK || v == 0) {
        bp_cli__error("invalid --limit: use a number from 1 to %d", MAX_LIMIT);
        return BP_CLI_EXIT_USAGE;
    }
    *out = (size_t)v;
    return BP_CLI_EXIT_OK;
}

/* Text filters are matched exactly; an empty one would match nothing and is surely a mistake. */
static int
text_filter(const struct bp_cli_flag *f, const char **out)
{
    if (!f->seen) {
        return BP_CLI_EXIT_OK;
    }
    if (f->value[0] == '\0') {
        bp_cli__error("invalid %s: empty", f->name);
        return BP_CLI_EXIT_USAGE;
    }
    *out = f->value;
    return BP_CLI_EXIT_OK;
}

static int
build_query(struct bp_cli_flag *flags, struct bp_audit_query *q)
{
    int64_t now_us = bp_clock_wall_us();
    int rc = bp_cli__audit_time(&flags[F_SINCE], now_us, &q->since_us);

    if (rc == BP_CLI_EXIT_OK) {
        rc = bp_cli__audit_time(&flags[F_UNTIL], now_us, &q->until_us);
    }
    if (rc == BP_CLI_EXIT_OK) {
        rc = parse_status(&flags[F_STATUS], &q->status);
    }
    if (rc == BP_CLI_EXIT_OK) {
        rc = parse_limit(&flags[F_LIMIT], &q->limit);
    }
    if (rc == BP_CLI_EXIT_OK) {
        rc = text_filter(&flags[F_CATEGORY], &q->category);
    }
    if (rc == BP_CLI_EXIT_OK) {
        rc = text_filter(&flags[F_INSTANCE], &q->instance_id);
    }
    if (rc == BP_CLI_EXIT_OK) {
        rc = text_filter(&flags[F_CREDENTIAL], &q->credential);
    }
    if (rc == BP_CLI_EXIT_OK) {
        rc = text_filter(&flags[F_ACTION], &q->action);
    }
    return rc;
}

/* ---- output ---- */

static int
print_json_line(const struct bp_audit_rec *r)
{
    json_t *o = bp_audit_rec_json(r);
    int rc = json_dumpf(o, stdout, JSON_COMPACT);

    json_decref(o);
    putchar('\n');
    return rc == 0 ? 0 : -1;
}

enum { C_TIME, C_ACTOR, C_ACTION, C_CATEGORY, C_INSTANCE, C_STATUS, C_RESOURCE, C_COUNT };

static const char *const col_names[C_COUNT] = {"TIME", "ACTOR", "ACTION", "CATEGORY", "INSTANCE", "STATUS",
                                               "RESOURCE"};

/* The table's cells of r, as people read them ("-" for none). */
static void
cells_of(const struct bp_audit_rec *r, char time_buf[28], char status_buf[40], const char *cells[C_COUNT])
{
    bp_audit_format_time_us(r->time_us, time_buf);
    if (r->status != 0 && r->repeat_count > 1) {
        snprintf(status_buf, 40, "%d x%lld", r->status, (long long)r->repeat_count);
    } else if (r->status != 0 && r->replayed) {
        snprintf(status_buf, 40, "%d replay", r->status);
    } else if (r->status != 0) {
        snprintf(status_buf, 40, "%d", r->status);
    } else {
        snprintf(status_buf, 40, "-");
    }
    cells[C_TIME] = time_buf;
    cells[C_ACTOR] = r->actor_id != NULL ? r->actor_id : (r->actor_type != NULL ? r->actor_type : "-");
    cells[C_ACTION] = r->action != NULL ? r->action : (r->error != NULL ? r->error : "-");
    cells[C_CATEGORY] = r->category != NULL ? r->category : "-";
    cells[C_INSTANCE] = r->instance_id != NULL ? r->instance_id : "-";
    cells[C_STATUS] = status_buf;
    cells[C_RESOURCE] = r->resource_id != NULL ? r->resource_id : "-";
}

static void
print_table_row(const char *const cells[C_COUNT], const size_t widths[C_COUNT])
{
    for (size_t c = 0; c < C_COUNT; c++) {
        if (c + 1 == C_COUNT) {
            printf("%s\n", cells[c]);
        } else {
            printf("%-*s  ", (int)widths[c], cells[c]);
        }
    }
}

struct printer {
    bool json;
    bool header_done;
    size_t widths[C_COUNT];
};

/* Prints recs[0..n) in the order given, or reversed. Widths come from the first batch, so a
 * followed table keeps its columns. */
static int
print_recs(struct printer *p, const struct bp_audit_rec *recs, size_t n, bool reversed)
{
    char tb[28];
    char sb[40];
    const char *cells[C_COUNT];

    if (!p->json && !p->header_done) {
        for (size_t c = 0; c < C_COUNT; c++) {
            p->widths[c] = strlen(col_names[c]);
        }
        for (size_t i = 0; i < n; i++) {
            cells_of(&recs[i], tb, sb, cells);
            for (size_t c = 0; c < C_COUNT; c++) {
                size_t w = strlen(cells[c]);
                p->widths[c] = w > p->widths[c] ? w : p->widths[c];
            }
        }
        print_table_row(col_names, p->widths);
        p->header_done = true;
    }
    for (size_t k = 0; k < n; k++) {
        const struct bp_audit_rec *r = &recs[reversed ? n - 1 - k : k];
        if (p->json) {
            if (print_json_line(r) != 0) {
                return BP_CLI_EXIT_FAIL;
            }
        } else {
            cells_of(r, tb, sb, cells);
            print_table_row(cells, p->widths);
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        bp_cli__error("cannot write output");
        return BP_CLI_EXIT_FAIL;
    }
    return BP_CLI_EXIT_OK;
}

/* ---- follow ---- */

static volatile sig_atomic_t follow_stop;

static void
on_stop_signal(int sig)
{
    follow_stop = 1;
}

/* Without SA_RESTART, so the poll sleep ends at once. */
static void
catch_stop_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Prints what the cursor hands out until a stop signal: each record once, as it becomes visible
 * (store.h: on PostgreSQL several nodes' batches commit out of seq order, and none is skipped). */
static int
follow(struct bp_store *s, struct bp_audit_cursor *c, struct printer *p)
{
    bool down = false;

    while (!follow_stop) {
        struct bp_audit_rec *recs = NULL;
        size_t n = 0;
        bool more = false;
        bp_err err = bp_store_audit_follow_next(s, c, FOLLOW_PAGE, &recs, &n, &more);
        int rc;

        /* A database restart does not end a tail: it says so once, and goes on where it was
         * (the cursor is intact) once the store answers again. */
        if (err == BP_ERR_STORE_DOWN) {
            if (!down) {
                bp_cli__error("warning: %s; still following, retrying", bp_store_last_error(s));
                down = true;
            }
            nanosleep(&(struct timespec){.tv_nsec = FOLLOW_POLL_MS * 1000000L}, NULL);
            continue;
        }
        if (err != BP_OK) {
            return bp_cli__store_fail(s, err, "audit log", "");
        }
        if (down) {
            bp_cli__error("the store answers again");
            down = false;
        }
        rc = print_recs(p, recs, n, false);
        bp_audit_recs_free(recs, n);
        if (rc != BP_CLI_EXIT_OK) {
            return rc;
        }
        if (!more) {
            nanosleep(&(struct timespec){.tv_nsec = FOLLOW_POLL_MS * 1000000L}, NULL);
        }
    }
    return BP_CLI_EXIT_OK;
}

/* ---- command ---- */

static int
audit_list(struct bp_cli_ctx *ctx, int argc, char **argv, int op)
{
    struct bp_cli_flag flags[F_COUNT];
    struct bp_audit_query q = {0};
    struct printer p = {0};
    struct bp_audit_rec *recs = NULL;
    struct bp_audit_cursor *cursor = NULL;
    struct bp_store *s = NULL;
    size_t n = 0;
    bp_err err;
    int rc;

    (void)op;

    BP_CLI_PARSE_OR_RETURN(ctx, argc, argv, flags);
    rc = build_query(flags, &q);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    p.json = ctx->json;
    if (flags[F_FOLLOW].seen) {
        /* Installed before the first query, so a signal at any point ends the command cleanly. */
        catch_stop_signals();
    }
    rc = bp_cli__open_store(ctx, true, &s);
    if (rc != BP_CLI_EXIT_OK) {
        return rc;
    }
    if (q.category != NULL) {
        rc = check_category(s, q.category);
        if (rc != BP_CLI_EXIT_OK) {
            goto done;
        }
    }
    if (flags[F_FOLLOW].seen) {
        err = bp_store_audit_follow(s, &q, &recs, &n, &cursor);
    } else {
        err = bp_store_audit_query(s, &q, &recs, &n);
    }
    if (err != BP_OK) {
        rc = bp_cli__store_fail(s, err, "audit log", "");
        goto done;
    }
    /* A tail reads downwards in time; a listing shows the newest first. */
    rc = print_recs(&p, recs, n, flags[F_FOLLOW].seen);
    if (rc == BP_CLI_EXIT_OK && cursor != NULL) {
        rc = follow(s, cursor, &p);
    }

done:
    bp_audit_cursor_free(cursor);
    bp_audit_recs_free(recs, n);
    bp_store_close(s);
    return rc;
}

/* ---- the family as data: parsed by bp_cli__parse, shown by help, man page and completion ---- */

static const struct bp_cli_opt list_opts[F_COUNT] = {
    [F_SINCE] = {"--since", "T", .help = "records at or after T"},
    [F_UNTIL] = {"--until", "T", .help = "records before T"},
    [F_CATEGORY] = {"--category", "C", .help = "records of one category (below)"},
    [F_INSTANCE] = {"--instance", "ID", .help = "records of requests for one instance"},
    [F_CREDENTIAL] = {"--credential", "ID", .help = "records of one API key, OAuth client or operator"},
    [F_ACTION] = {"--action", "A", .help = "records with exactly this action"},
    [F_STATUS] = {"--status", "N|Nxx", .help = "records with this status (404) or status class (4xx)"},
    [F_LIMIT] = {"--limit", "N", .help = "at most N records, the newest (default 100)"},
    [F_FOLLOW] = {"--follow", NULL, .help = "keep printing new records until interrupted"},
};

static const struct bp_cli_verb verbs[] = {
    {"list", audit_list, 0, .help = "print audit records, newest first", .opts = list_opts,
     .nopts = BP_ARRAY_LEN(list_opts)},
    BP_CLI_AUDIT_TRAIL_VERBS,
};

const struct bp_cli_family bp_cli__family_audit = {
    .name = "audit",
    .help = "read the audit log",
    .verbs = verbs,
    .nverbs = BP_ARRAY_LEN(verbs),
    .print_notes = audit_notes,
};
