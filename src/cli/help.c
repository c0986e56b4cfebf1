/* `--help`: usage text generated from the command rows (cli-int.h) and the settings table
 * (config.h), the same rows the parser reads, so help cannot name an option that does not exist
 * or leave one out. man.c and completion.c read the same rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli-int.h"
#include "config/config.h"
#include "lib/alloc.h"
#include "lib/bug.h"

#define WIDTH 92
#define OPT_COL 28

static const char top_usage[] = "usage: blnkproxy [--db DSN] [--json] <command> [options]\n";

/* The end of the top-level help and the DESCRIPTION of blnkproxy(1) (man.c). */
const char bp_cli__top_notes[] =
    "Only `db migrate`, `serve` and `instance add` create a missing store (and say where);\n"
    "every other command exits 1 when there is no store at the --db path.\n"
    "\n"
    "Exit codes: 0 ok, 1 failure (no store at the --db path, a store newer than this\n"
    "blnkproxy, a store error), 2 usage or validation error, 3 unknown id.\n";

/* ---- synopsis ---- */

static void
append(char **s, size_t *len, const char *text)
{
    size_t n = strlen(text);

    *s = bp_realloc(*s, *len + n + 1);
    memcpy(*s + *len, text, n + 1);
    *len += n;
}

/* text with roff's special characters escaped: '\' and '-' (an option's dashes are minus signs,
 * and a hyphen left bare may be broken or rendered as a dash). */
static void
append_roff(char **s, size_t *len, const char *text)
{
    char one[2] = {0, 0};

    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\\') {
            append(s, len, "\\e");
        } else if (*p == '-') {
            append(s, len, "\\-");
        } else {
            one[0] = *p;
            append(s, len, one);
        }
    }
}

/* "--name NAME": bold name and italic value in roff. */
static void
append_opt(char **s, size_t *len, const struct bp_cli_opt *o, bool roff)
{
    if (!roff) {
        append(s, len, o->name);
        if (o->value != NULL) {
            append(s, len, " ");
            append(s, len, o->value);
        }
        return;
    }
    append(s, len, "\\fB");
    append_roff(s, len, o->name);
    append(s, len, "\\fR");
    if (o->value != NULL) {
        append(s, len, " \\fI");
        append_roff(s, len, o->value);
        append(s, len, "\\fR");
    }
}

/* The positional arguments: "ID", "[COMMAND]"; italic in roff, brackets plain. */
static void
append_args(char **s, size_t *len, const char *args, bool roff)
{
    char one[2] = {0, 0};
    bool italic = false;

    if (!roff) {
        append(s, len, args);
        return;
    }
    for (const char *p = args; *p != '\0'; p++) {
        bool word = (*p >= 'A' && *p <= 'Z') || *p == '_';
        if (word && !italic) {
            append(s, len, "\\fI");
            italic = true;
        } else if (!word && italic) {
            append(s, len, "\\fR");
            italic = false;
        }
        one[0] = *p;
        append_roff(s, len, one);
    }
    if (italic) {
        append(s, len, "\\fR");
    }
}

char **
bp_cli__synopsis(const struct bp_cli_verb *v, bool roff, size_t *out_n)
{
    char **items = bp_calloc(v->nopts + 1, sizeof(*items));
    size_t n = 0;

    if (v->args != NULL) {
        size_t len = 0;
        append_args(&items[n], &len, v->args, roff);
        n++;
    }
    for (size_t i = 0; i < v->nopts; i++) {
        const struct bp_cli_opt *o = &v->opts[i];
        bool first_of_group = true;
        size_t len = 0;
        char *item = NULL;

        for (size_t k = 0; o->group != 0 && k < i; k++) {
            if (v->opts[k].group == o->group) {
                first_of_group = false;
            }
        }
        if (!first_of_group) {
            continue;
        }
        append(&item, &len, o->required ? (o->group != 0 ? "(" : "") : "[");
        append_opt(&item, &len, o, roff);
        for (size_t k = i + 1; o->group != 0 && k < v->nopts; k++) {
            if (v->opts[k].group == o->group) {
                append(&item, &len, " | ");
                append_opt(&item, &len, &v->opts[k], roff);
            }
        }
        append(&item, &len, o->required ? (o->group != 0 ? ")" : "") : "]");
        if (o->repeatable) {
            append(&item, &len, "...");
        }
        items[n++] = item;
    }
    *out_n = n;
    return items;
}

void
bp_cli__synopsis_free(char **items, size_t n)
{
    for (size_t i = 0; items != NULL && i < n; i++) {
        bp_free(items[i]);
    }
    bp_free(items);
}

/* "  blnkproxy <family> <verb> items..." wrapped at WIDTH, continuation lines aligned after the
 * command words. */
static void
print_synopsis(FILE *f, const struct bp_cli_family *fam, const struct bp_cli_verb *v)
{
    size_t n = 0;
    char **items = bp_cli__synopsis(v, false, &n);
    int col = fprintf(f, "  blnkproxy %s%s%s", fam->name, v->name != NULL ? " " : "",
                      v->name != NULL ? v->name : "");
    int indent = col + 1;

    if (fam->settings) {
        /* serve takes every setting's flag: one item stands for them here; the list follows. */
        items = bp_realloc(items, (n + 1) * sizeof(*items));
        items[n++] = bp_strdup("[--<setting> VALUE]...");
    }
    for (size_t i = 0; i < n; i++) {
        int len = (int)strlen(items[i]);
        if (col + 1 + len > WIDTH && col > indent) {
            col = fprintf(f, "\n%*s", indent - 1, "") - 1;
        }
        col += fprintf(f, " %s", items[i]);
    }
    if (v->aka != NULL) {
        fprintf(f, "     (%s)", v->aka);
    }
    fputc('\n', f);
    bp_cli__synopsis_free(items, n);
}

/* text from column col, wrapped at WIDTH with continuation lines indented by indent. */
static void
print_wrapped(FILE *f, const char *text, int col, int indent)
{
    const char *p = text;

    while (*p != '\0') {
        size_t word = strcspn(p, " ");
        if (col > indent && col + 1 + (int)word > WIDTH) {
            col = fprintf(f, "\n%*s", indent, "") - 1;
        } else if (col > indent) {
            col += fprintf(f, " ");
        }
        col += fprintf(f, "%.*s", (int)word, p);
        p += word;
        while (*p == ' ') {
            p++;
        }
    }
    fputc('\n', f);
}

/* "  --name NAME             help", the help wrapped at OPT_COL. */
static void
print_opt(FILE *f, const char *name, const char *value, const char *help)
{
    int col = fprintf(f, "  %s%s%s", name, value != NULL ? " " : "", value != NULL ? value : "");

    if (col >= OPT_COL - 1) {
        fprintf(f, "\n%*s", OPT_COL, "");
    } else {
        fprintf(f, "%*s", OPT_COL - col, "");
    }
    print_wrapped(f, help, OPT_COL, OPT_COL);
}

static void
print_notes(FILE *f, const struct bp_cli_family *fam)
{
    if (fam->print_notes != NULL) {
        fputc('\n', f);
        fam->print_notes(f);
    } else if (fam->notes != NULL) {
        fprintf(f, "\n%s", fam->notes);
    }
}

char *
bp_cli__notes_text(const struct bp_cli_family *fam)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    if (fam->print_notes == NULL) {
        return bp_strdup(fam->notes != NULL ? fam->notes : "");
    }
    f = open_memstream(&text, &len);
    BP_BUG_ON(f == NULL);
    fam->print_notes(f);
    BP_BUG_ON(fclose(f) != 0);
    /* open_memstream allocates with malloc; hand out a bp_ allocation like every other path. */
    {
        char *copy = bp_strdup(text);
        free(text);
        return copy;
    }
}

/* serve: its own options, then every setting (flag, JSON key, variable, default, reload). */
static void
print_settings(FILE *f)
{
    size_t n = bp_config_setting_count();

    fputs("\nSettings (each also a key of blnkproxy.json and a BLNKPROXY_* variable):\n", f);
    for (size_t i = 0; i < n; i++) {
        struct bp_config_setting_doc d;
        char where[512];

        bp_config_setting_doc(i, &d);
        print_opt(f, d.flag, d.value_name, d.meaning);
        snprintf(where, sizeof(where), "default %s; \"%s\" in the file, $%s; %s",
                 d.def != NULL        ? d.def
                 : d.def_note != NULL ? d.def_note
                                      : "none",
                 d.key, d.env, d.live ? "a reload (SIGHUP) applies it" : "applies at the next start");
        fprintf(f, "%*s", OPT_COL, "");
        print_wrapped(f, where, OPT_COL, OPT_COL);
    }
}

void
bp_cli__print_usage(FILE *f, const struct bp_cli_family *fam)
{
    bool simple = bp_cli__is_simple(fam);

    fputs("usage:\n", f);
    for (size_t i = 0; i < fam->nverbs; i++) {
        print_synopsis(f, fam, &fam->verbs[i]);
    }
    if (!simple) {
        fputs("\nCommands:\n", f);
        for (size_t i = 0; i < fam->nverbs; i++) {
            print_opt(f, fam->verbs[i].name, fam->verbs[i].args, fam->verbs[i].help);
        }
    }
    for (size_t i = 0; i < fam->nverbs; i++) {
        const struct bp_cli_verb *v = &fam->verbs[i];
        if (v->nopts == 0) {
            continue;
        }
        if (simple) {
            fputs("\nOptions:\n", f);
        } else {
            fprintf(f, "\nOptions of %s:\n", v->name);
        }
        for (size_t k = 0; k < v->nopts; k++) {
            print_opt(f, v->opts[k].name, v->opts[k].value, v->opts[k].help);
        }
    }
    if (fam->settings) {
        print_settings(f);
    }
    print_notes(f, fam);
}

static void
print_top(FILE *f)
{
    size_t n = 0;
    const struct bp_cli_family *const *cmds = bp_cli__commands(&n);

    fputs(top_usage, f);
    fputs("\nCommands:\n", f);
    for (size_t i = 0; i < n; i++) {
        if (!cmds[i]->hidden) {
            print_opt(f, cmds[i]->name, NULL, cmds[i]->help);
        }
    }
    fputs("\nEvery command takes:\n", f);
    for (size_t i = 0; i < BP_ARRAY_LEN(bp_cli__global_opts); i++) {
        print_opt(f, bp_cli__global_opts[i].name, bp_cli__global_opts[i].value, bp_cli__global_opts[i].help);
    }
    fputc('\n', f);
    print_opt(f, "-V, --version", NULL, "same as `blnkproxy version`");
    print_opt(f, "-h, --help", NULL, "this text");
    fprintf(f, "\n%s", bp_cli__top_notes);
}

void
bp_cli__usage(const char *family, bool to_stderr)
{
    FILE *f = to_stderr ? stderr : stdout;
    const struct bp_cli_family *fam = family != NULL ? bp_cli__find(family) : NULL;

    if (fam == NULL) {
        print_top(f);
    } else {
        bp_cli__print_usage(f, fam);
    }
}
