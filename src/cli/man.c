/* The man pages, in roff, generated from the rows `--help` and the parser use: blnkproxy(1)
 * from the command rows (cli-int.h) and the settings table, blnkproxy.json(5) from the settings
 * table (config.h). The build runs `blnkproxy man 1|5` to write them, so an option or a setting
 * cannot be added without appearing in them. The prose between the rows (the notes of each
 * command, the file's structure) is written once, here or beside its rows. */
#include <stdio.h>
#include <string.h>

#include "cli/cli-int.h"
#include "config/config.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/version.h"

/* Writes text escaped for roff: '\' as \e, '-' as \- (option dashes must not become hyphens
 * that a line may be broken at), `code` in bold. The caller starts the line. */
static void
put_text(FILE *f, const char *text, size_t len)
{
    bool bold = false;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        unsigned char u = (unsigned char)c;
        if (u >= 0xc0 && u < 0xf0) {
            /* A UTF-8 sequence: troff reads bytes, so name the code point (an ellipsis is
             * spelt out, so that an ASCII terminal shows it too). */
            size_t more = u >= 0xe0 ? 2 : 1;
            unsigned cp = u & (u >= 0xe0 ? 0x0fu : 0x1fu);
            for (size_t k = 1; k <= more && i + k < len; k++) {
                cp = (cp << 6) | ((unsigned char)text[i + k] & 0x3fu);
            }
            if (cp == 0x2026) {
                fputs("...", f);
            } else {
                fprintf(f, "\\[u%04X]", cp);
            }
            i += more;
            continue;
        }
        if (c == '\\') {
            fputs("\\e", f);
        } else if (c == '-') {
            fputs("\\-", f);
        } else if (c == '`') {
            fputs(bold ? "\\fR" : "\\fB", f);
            bold = !bold;
        } else {
            fputc(c, f);
        }
    }
    if (bold) {
        fputs("\\fR", f);
    }
}

/* One input line of roff text: protected from being read as a request when it starts with
 * '.' or '\''. */
static void
put_line(FILE *f, const char *text)
{
    if (text[0] == '.' || text[0] == '\'') {
        fputs("\\&", f);
    }
    put_text(f, text, strlen(text));
    fputc('\n', f);
}

/* Notes wrapped for a terminal (help text) as roff paragraphs: a blank line separates
 * paragraphs; the lines of one are joined, so that man fills them to its own width. */
static void
put_paragraphs(FILE *f, const char *text)
{
    const char *p = text;

    while (*p != '\0') {
        const char *end = strstr(p, "\n\n");
        const char *pend = end != NULL ? end : p + strlen(p);
        bool start = true;

        fputs(".PP\n", f);
        for (const char *q = p; q < pend;) {
            const char *nl = memchr(q, '\n', (size_t)(pend - q));
            size_t line = nl != NULL ? (size_t)(nl - q) : (size_t)(pend - q);
            size_t lead = 0;

            while (lead < line && q[lead] == ' ') {
                lead++;
            }
            if (line > lead) {
                if (!start) {
                    fputc('\n', f);
                }
                if (q[lead] == '.' || q[lead] == '\'') {
                    fputs("\\&", f);
                }
                put_text(f, q + lead, line - lead);
                start = false;
            }
            q += line + 1;
        }
        fputc('\n', f);
        p = pend;
        while (*p == '\n') {
            p++;
        }
    }
}

/* A sentence from a one-line help text: capital first letter, a full stop. */
static void
put_sentence(FILE *f, const char *help)
{
    char first[2] = {help[0], 0};

    if (first[0] >= 'a' && first[0] <= 'z') {
        first[0] = (char)(first[0] - 'a' + 'A');
    }
    put_text(f, first, 1);
    put_text(f, help + 1, strlen(help + 1));
    fputs(".\n", f);
}

/* .TP with "--name NAME" in bold and italic, then the help as a sentence. */
static void
put_opt(FILE *f, const char *name, const char *value, const char *help)
{
    fputs(".TP\n\\fB", f);
    put_text(f, name, strlen(name));
    fputs("\\fR", f);
    if (value != NULL) {
        fputs(" \\fI", f);
        put_text(f, value, strlen(value));
        fputs("\\fR", f);
    }
    fputc('\n', f);
    put_sentence(f, help);
}

static void
put_synopsis(FILE *f, const struct bp_cli_family *fam, const struct bp_cli_verb *v)
{
    size_t n = 0;
    char **items = bp_cli__synopsis(v, true, &n);

    fprintf(f, ".PP\n\\fBblnkproxy %s", fam->name);
    if (v->name != NULL) {
        fputc(' ', f);
        put_text(f, v->name, strlen(v->name));
    }
    fputs("\\fR", f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, " %s", items[i]);
    }
    if (fam->settings) {
        fputs(" [\\fB\\-\\-\\fR\\fIsetting\\fR \\fIvalue\\fR]...", f);
    }
    fputc('\n', f);
    if (v->aka != NULL) {
        fputs(".br\n(", f);
        put_text(f, v->aka, strlen(v->aka));
        fputs(")\n", f);
    }
    bp_cli__synopsis_free(items, n);
}

/* serve's settings in blnkproxy(1): flag, meaning, and where else to set it. */
static void
put_serve_settings(FILE *f)
{
    size_t n = bp_config_setting_count();

    fputs(".PP\nEvery setting of \\fBblnkproxy.json\\fR(5) is also a flag of \\fBserve\\fR:\n", f);
    for (size_t i = 0; i < n; i++) {
        struct bp_config_setting_doc d;
        char where[512];

        bp_config_setting_doc(i, &d);
        put_opt(f, d.flag, d.value_name, d.meaning);
        snprintf(where, sizeof(where), "Default %s; `%s` in the file, `%s` in the environment.",
                 d.def != NULL        ? d.def
                 : d.def_note != NULL ? d.def_note
                                      : "none",
                 d.key, d.env);
        put_line(f, where);
    }
}

static void
put_family(FILE *f, const struct bp_cli_family *fam)
{
    bool simple = bp_cli__is_simple(fam);
    char *notes;

    fprintf(f, ".SS %s\n", fam->name);
    put_sentence(f, fam->help);
    for (size_t i = 0; i < fam->nverbs; i++) {
        put_synopsis(f, fam, &fam->verbs[i]);
    }
    for (size_t i = 0; i < fam->nverbs; i++) {
        const struct bp_cli_verb *v = &fam->verbs[i];
        if (!simple) {
            fputs(".TP\n\\fB", f);
            put_text(f, v->name, strlen(v->name));
            fputs("\\fR", f);
            if (v->args != NULL) {
                fputs(" \\fI", f);
                put_text(f, v->args, strlen(v->args));
                fputs("\\fR", f);
            }
            fputc('\n', f);
            put_sentence(f, v->help);
        }
        if (v->nopts > 0) {
            fputs(simple ? ".PP\n" : "", f);
            fputs(".RS\n", f);
            for (size_t k = 0; k < v->nopts; k++) {
                put_opt(f, v->opts[k].name, v->opts[k].value, v->opts[k].help);
            }
            fputs(".RE\n", f);
        }
    }
    if (fam->settings) {
        put_serve_settings(f);
    }
    notes = bp_cli__notes_text(fam);
    put_paragraphs(f, notes);
    bp_free(notes);
}

static void
put_header(FILE *f, const char *title, int section, const char *manual)
{
    fprintf(f, ".TH %s %d \"\" \"blnkproxy %s\" \"%s\"\n", title, section, bp_version_get(), manual);
    /* Setting names hold underscores: hyphenating them would print names that do not exist, and
     * a justified line would stretch a synopsis apart. */
    fputs(".nh\n.ad l\n", f);
}

/* blnkproxy(1): environment, files, signals and exit status. */
static void
man1_reference(FILE *f)
{
    size_t ns = bp_config_setting_count();

    fputs(".SH ENVIRONMENT\n", f);
    put_opt(f, "BLNKPROXY_DB", NULL, "the store when --db is not given; else ./blnkproxy.db");
    put_opt(f, BP_CONFIG_FILE_ENV, NULL, "the configuration file of serve when --config is not given");
    put_opt(f, "NOTIFY_SOCKET", NULL,
            "set by systemd for a Type=notify service: serve reports its readiness, reloads and "
            "shutdown there (sd_notify protocol)");
    fputs(".PP\nand, for \\fBserve\\fR, one variable per setting:\n", f);
    for (size_t i = 0; i < ns; i++) {
        struct bp_config_setting_doc d;
        bp_config_setting_doc(i, &d);
        put_opt(f, d.env, NULL, d.meaning);
    }
    fputs(".SH FILES\n", f);
    put_opt(
        f, "/etc/blnkproxy/blnkproxy.json", NULL,
        "the configuration the Debian package installs and its systemd unit reads; see blnkproxy.json(5)");
    put_opt(f, "/var/lib/blnkproxy/blnkproxy.db", NULL,
            "the SQLite store of the packaged service (mode 0600 in a 0700 directory owned by the blnkproxy "
            "user)");
    put_opt(f, "/lib/systemd/system/blnkproxy.service", NULL,
            "the systemd unit: `systemctl reload blnkproxy` sends SIGHUP");
    fputs(".SH SIGNALS\n", f);
    put_opt(f, "SIGTERM, SIGINT", NULL,
            "serve stops accepting, lets in-flight requests finish (bounded by shutdown_timeout), commits "
            "every queued audit record and exits 0");
    put_opt(f, "SIGHUP", NULL,
            "serve reads its configuration again; what cannot change while running is named in a warning, "
            "and a bad file is refused while the running configuration stays");
    fputs(".SH EXIT STATUS\n", f);
    put_opt(f, "0", NULL, "success");
    put_opt(f, "1", NULL,
            "failure: no store at the --db path, a store newer than this blnkproxy, a store error");
    put_opt(f, "2", NULL, "usage or validation error");
    put_opt(f, "3", NULL, "unknown id");
}

static void
man1(FILE *f)
{
    size_t n = 0;
    const struct bp_cli_family *const *cmds = bp_cli__commands(&n);

    put_header(f, "BLNKPROXY", 1, "User Commands");
    fputs(".SH NAME\nblnkproxy \\- authenticating, auditing proxy in front of Blnk Core ledgers\n", f);
    fputs(
        ".SH SYNOPSIS\n\\fBblnkproxy\\fR [\\fB\\-\\-db\\fR \\fIDSN\\fR] [\\fB\\-\\-json\\fR] \\fIcommand\\fR "
        "[\\fIoptions\\fR]\n",
        f);
    fputs(".SH DESCRIPTION\n"
          "\\fBblnkproxy\\fR is a self-hosted implementation of the Blnk Cloud Proxy API. Apps call\n"
          "\\fB/proxy/\\fR\\fIcore-path\\fR\\fB?instance_id=\\fR\\fIid\\fR with a scoped, expiring, "
          "revocable credential (an API key or an OAuth 2.0 access token); blnkproxy authenticates it, "
          "checks its scope and instance, forwards the request to that Blnk Core instance with the "
          "instance's secret key, records the call in its audit log and returns Core's answer unchanged.\n"
          ".PP\n"
          "\\fBserve\\fR runs the proxy; the other commands manage what it serves from the same store: "
          "Core instances, API keys, OAuth clients, operators, and the audit log.\n",
          f);
    put_paragraphs(f, bp_cli__top_notes);
    fputs(".SH OPTIONS\nEvery command takes:\n", f);
    for (size_t i = 0; i < BP_ARRAY_LEN(bp_cli__global_opts); i++) {
        put_opt(f, bp_cli__global_opts[i].name, bp_cli__global_opts[i].value, bp_cli__global_opts[i].help);
    }
    put_opt(f, "-V, --version", NULL, "same as `blnkproxy version`");
    put_opt(f, "-h, --help", NULL, "print the usage; after a command, that command's usage");
    fputs(".SH COMMANDS\n", f);
    for (size_t i = 0; i < n; i++) {
        if (!cmds[i]->hidden) {
            put_family(f, cmds[i]);
        }
    }
    man1_reference(f);
    fputs(".SH SEE ALSO\n\\fBblnkproxy.json\\fR(5), \\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1)\n", f);
}

/* blnkproxy.json(5): one entry per row of the settings table. */
static void
man5_settings(FILE *f)
{
    size_t n = bp_config_setting_count();

    fputs(".SH SETTINGS\n", f);
    for (size_t i = 0; i < n; i++) {
        struct bp_config_setting_doc d;
        char line[768];

        bp_config_setting_doc(i, &d);
        fputs(".TP\n\\fB", f);
        put_text(f, d.key, strlen(d.key));
        fputs("\\fR (", f);
        put_text(f, d.type, strlen(d.type));
        fputs(")\n", f);
        put_sentence(f, d.meaning);
        fputs(".br\n", f);
        snprintf(line, sizeof(line), "Default: %s. Value: %s.",
                 d.def != NULL        ? d.def
                 : d.def_note != NULL ? d.def_note
                                      : "none",
                 d.accepts);
        put_line(f, line);
        fputs(".br\n", f);
        snprintf(line, sizeof(line), "Environment: `%s`; flag: `%s%s%s`; %s.", d.env, d.flag,
                 d.value_name != NULL ? " " : "", d.value_name != NULL ? d.value_name : "",
                 d.live ? "applied by a reload" : "applies at the next start");
        put_line(f, line);
    }
}

/* blnkproxy.json(5): the "routes" key, the value syntax of the types, an example. */
static void
man5_routes_values(FILE *f)
{
    fputs(
        ".SH ROUTES\n"
        "The key \\fBroutes\\fR (file only: no variable or flag) changes the built-in route table:\n"
        ".PP\n.nf\n"
        "\"routes\": {\n"
        "  \"remove\": [\"DELETE /reconciliation/matching\\-rules/:id\"],\n"
        "  \"add\": [{\"method\": \"GET\", \"path\": \"/ledgers/:id/export\", \"scope\": \"proxy:read\",\n"
        "           \"action\": \"Ledger exported\", \"category\": \"ledgers\", \"large_body\": false}]\n"
        "}\n"
        ".fi\n"
        ".PP\n"
        "\\fBremove\\fR names built-in routes as \\(lqMETHOD /pattern\\(rq, exactly as in the table\n"
        "(\\fBblnkproxy openapi\\fR lists it). Each \\fBadd\\fR row needs \\fBmethod\\fR (upper case) and\n"
        "\\fBpath\\fR (literal and \\fB:name\\fR segments); \\fBscope\\fR is \\fBproxy:read\\fR or\n"
        "\\fBproxy:write\\fR (default: read for GET and HEAD, write otherwise); \\fBaction\\fR is the audit\n"
        "label, \\fBcategory\\fR the audit category (default \\fBcustom\\fR), \\fBlarge_body\\fR selects\n"
        "\\fBmax_upload_bytes\\fR. A reload applies a changed table.\n",
        f);
    fputs(".SH VALUES\n", f);
    put_opt(f, "integer", NULL, "decimal digits only: no sign, no fraction");
    put_opt(f, "size", NULL,
            "bytes: digits with an optional B, k/K/KiB, m/M/MiB or g/G/GiB suffix (65536, 64KiB, 1MiB)");
    put_opt(f, "duration", NULL,
            "a number with an optional fraction and a unit ms, s, m, h or d; without a unit, seconds (500ms, "
            "5s, 2m, 0.5)");
    put_opt(f, "HOST:PORT", NULL,
            "an IPv4 address, an IPv6 address in brackets or localhost, and a port 0..65535; :PORT is every "
            "IPv4 interface, [::]:PORT every interface, port 0 a free port");
    put_opt(f, "boolean", NULL, "true or false; as a flag, the flag alone means true");
    fputs(".SH EXAMPLE\n.nf\n"
          "{\n"
          "  \"listen\": \"127.0.0.1:8080\",\n"
          "  \"db\": \"/var/lib/blnkproxy/blnkproxy.db\",\n"
          "  \"log_level\": \"info\",\n"
          "  \"audit\": { \"writes\": \"sync\", \"reads\": \"async\", \"retention_days\": 90 }\n"
          "}\n"
          ".fi\n",
          f);
}

static void
man5(FILE *f)
{
    put_header(f, "BLNKPROXY.JSON", 5, "File Formats");
    fputs(".SH NAME\nblnkproxy.json \\- configuration file of blnkproxy serve\n", f);
    fputs(".SH SYNOPSIS\n/etc/blnkproxy/blnkproxy.json (the Debian package's service), or the file named by "
          "\\fB\\-\\-config\\fR or \\fB" BP_CONFIG_FILE_ENV "\\fR, else \\fI./" BP_CONFIG_FILE_DEFAULT
          "\\fR when present\n",
          f);
    fputs(
        ".SH DESCRIPTION\n"
        "A JSON object configuring \\fBblnkproxy serve\\fR. Every setting comes, one at a time, from the\n"
        "first of: a command-line flag, a \\fBBLNKPROXY_\\fR* environment variable, this file, the built-in\n"
        "default. The file is strict, so that a typo cannot pass unnoticed: an unknown key, a key given\n"
        "twice or a syntax error stops \\fBserve\\fR with an error naming the file and the line. Only one\n"
        "file is read (at most 1 MiB).\n"
        ".PP\n"
        "A setting with a dot in its name lives in a nested object: \\fBaudit.reads\\fR is\n"
        "\\fB{\"audit\": {\"reads\": \"async\"}}\\fR; its variable and flag spell the dot as an underscore\n"
        "and a dash (\\fBBLNKPROXY_AUDIT_READS\\fR, \\fB\\-\\-audit\\-reads\\fR). A value may be a JSON\n"
        "string in the syntax below or, where it makes sense, a JSON number (integers, sizes in bytes,\n"
        "durations in seconds) or \\fBtrue\\fR/\\fBfalse\\fR (booleans).\n"
        ".PP\n"
        "\\fBkill \\-HUP\\fR (what \\fBsystemctl reload\\fR sends) makes a running \\fBserve\\fR read the\n"
        "file again. Settings marked \\(lqapplied by a reload\\(rq change at once for every request that\n"
        "starts afterwards; the others keep their running value until the next start, and a warning\n"
        "names them.\n",
        f);
    man5_settings(f);
    man5_routes_values(f);
    fputs(".SH SEE ALSO\n\\fBblnkproxy\\fR(1)\n", f);
}

int
bp_cli__man(FILE *f, int section)
{
    if (section == 1) {
        man1(f);
    } else if (section == 5) {
        man5(f);
    } else {
        return BP_CLI_EXIT_USAGE;
    }
    return fflush(f) == 0 && !ferror(f) ? BP_CLI_EXIT_OK : BP_CLI_EXIT_FAIL;
}
