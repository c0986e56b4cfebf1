/* The lines of an audit export, shared by `audit export` and the admin API's GET /audit/export,
 * so that a file made either way is the same to the byte: JSON lines (the record as `audit list
 * --json` prints it) and CSV (RFC 4180, CRLF line ends). Each call appends one whole line or,
 * when the buffer's maximum would be passed, nothing: a paged answer never ends mid-record. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "audit/audit.h"
#include "lib/buf.h"
#include "lib/bug.h"
#include "store/store.h"

static const char *const csv_cols[] = {
    "seq",         "id",          "time",       "node",        "request_id",  "actor_type", "actor_id",
    "actor_name",  "instance_id", "method",     "route",       "path",        "action",     "category",
    "core_status", "status",      "latency_us", "client_addr", "resource_id", "error",      "count",
    "replayed",    "chain",       "chain_n",    "prev_hash",   "hash",
};

/* Takes b back to len bytes after a line could not be appended whole. */
static bp_err
undo(struct bp_buf *b, size_t len, bp_err rc)
{
    b->len = len;
    if (b->data != NULL) {
        b->data[len] = '\0';
    }
    return rc;
}

/* Quoted when it holds a comma, quote, CR or LF (quotes doubled); a leading = + - @ is prefixed
 * with ' so that a spreadsheet never runs a value a client chose (a path, a key's name) as a
 * formula. Empty for NULL. */
static bp_err
csv_cell(struct bp_buf *b, const char *v)
{
    bool quote = false;
    bp_err rc = BP_OK;

    if (v == NULL) {
        return BP_OK;
    }
    for (const char *c = v; *c != '\0'; c++) {
        quote |= *c == ',' || *c == '"' || *c == '\r' || *c == '\n';
    }
    if (quote) {
        rc = bp_buf_append(b, "\"", 1);
    }
    if (rc == BP_OK && v[0] != '\0' && strchr("=+-@", v[0]) != NULL) {
        rc = bp_buf_append(b, "'", 1);
    }
    for (const char *c = v; rc == BP_OK && *c != '\0';) {
        /* Up to and including the next quote, which is then doubled. */
        size_t n = strcspn(c, "\"");
        rc = bp_buf_append(b, c, n);
        c += n;
        if (rc == BP_OK && *c == '"') {
            rc = bp_buf_append(b, "\"\"", 2);
            c++;
        }
    }
    if (rc == BP_OK && quote) {
        rc = bp_buf_append(b, "\"", 1);
    }
    return rc;
}

/* One CSV line of n cells, whole or not at all. */
static bp_err
csv_line(struct bp_buf *b, const char *const *cells, size_t n)
{
    size_t len = b->len;
    bp_err rc = BP_OK;

    for (size_t i = 0; rc == BP_OK && i < n; i++) {
        if (i > 0) {
            rc = bp_buf_append(b, ",", 1);
        }
        if (rc == BP_OK) {
            rc = csv_cell(b, cells[i]);
        }
    }
    if (rc == BP_OK) {
        rc = bp_buf_append(b, "\r\n", 2);
    }
    return rc == BP_OK ? BP_OK : undo(b, len, rc);
}

bp_err
bp_audit_csv_header(struct bp_buf *b)
{
    return csv_line(b, csv_cols, BP_ARRAY_LEN(csv_cols));
}

bp_err
bp_audit_csv_row(struct bp_buf *b, const struct bp_audit_rec *r)
{
    char t[28];
    char num[6][24];
    const char *cells[BP_ARRAY_LEN(csv_cols)];
    size_t k = 0;

    bp_audit_format_time_us(r->time_us, t);
    snprintf(num[0], sizeof(num[0]), "%lld", (long long)r->seq);
    snprintf(num[1], sizeof(num[1]), "%d", r->core_status);
    snprintf(num[2], sizeof(num[2]), "%d", r->status);
    snprintf(num[3], sizeof(num[3]), "%lld", (long long)r->latency_us);
    snprintf(num[4], sizeof(num[4]), "%lld", (long long)(r->repeat_count > 0 ? r->repeat_count : 1));
    snprintf(num[5], sizeof(num[5]), "%lld", (long long)r->chain_n);
    cells[k++] = num[0];
    cells[k++] = r->id;
    cells[k++] = t;
    cells[k++] = r->node;
    cells[k++] = r->request_id;
    cells[k++] = r->actor_type;
    cells[k++] = r->actor_id;
    cells[k++] = r->actor_name;
    cells[k++] = r->instance_id;
    cells[k++] = r->method;
    cells[k++] = r->route;
    cells[k++] = r->path;
    cells[k++] = r->action;
    cells[k++] = r->category;
    cells[k++] = num[1];
    cells[k++] = num[2];
    cells[k++] = num[3];
    cells[k++] = r->client_addr;
    cells[k++] = r->resource_id;
    cells[k++] = r->error;
    cells[k++] = num[4];
    cells[k++] = r->replayed ? "true" : "false";
    cells[k++] = r->chain;
    cells[k++] = r->chain_n > 0 ? num[5] : NULL;
    cells[k++] = r->prev_hash[0] != '\0' ? r->prev_hash : NULL;
    cells[k++] = r->hash[0] != '\0' ? r->hash : NULL;
    BP_BUG_ON(k != BP_ARRAY_LEN(csv_cols));
    return csv_line(b, cells, k);
}

static int
dump_to_buf(const char *p, size_t n, void *arg)
{
    return bp_buf_append(arg, p, n) == BP_OK ? 0 : -1;
}

bp_err
bp_audit_jsonl_row(struct bp_buf *b, const struct bp_audit_rec *r)
{
    json_t *o = bp_audit_rec_json(r);
    size_t len = b->len;
    /* json_dumpf's own path (json_dump_callback), so the text is what the CLI always wrote. */
    int dumped = json_dump_callback(o, dump_to_buf, b, JSON_COMPACT);

    json_decref(o);
    if (dumped != 0 || bp_buf_append(b, "\n", 1) != BP_OK) {
        return undo(b, len, BP_ERR_LIMIT);
    }
    return BP_OK;
}
