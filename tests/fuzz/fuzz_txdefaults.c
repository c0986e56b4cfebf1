/* Fuzzes DESIGN §4 transaction defaults and the JSON scanner under them.
 *
 * Checked for every input, as SINGLE and as BULK:
 * - the result is BP_OK or BP_ERR_LIMIT, and out is empty unless something was inserted;
 * - a changed body is the input with bytes inserted only (the input is a subsequence of it),
 *   is itself a valid JSON object, and gets nothing more when the defaults are applied again;
 * - one byte less of room gives BP_ERR_LIMIT with out left empty.
 * And for the scanner: every member and element it reports re-scans on its own as a value of the
 * same type, keys are quoted strings, and whatever jansson accepts within our depth limit the
 * scanner accepts too (jansson is only an oracle here; the rewrite module never uses it). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "lib/buf.h"
#include "lib/bug.h"
#include "rewrite/jscan.h"
#include "rewrite/rewrite.h"

/* Room for the body plus a few dozen objects' worth of insertions; more is a legitimate LIMIT. */
#define FUZZ_EXTRA_ROOM 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
is_subsequence(const char *small, size_t small_len, const char *big, size_t big_len)
{
    size_t i = 0;

    for (size_t j = 0; j < big_len && i < small_len; j++) {
        if (big[j] == small[i]) {
            i++;
        }
    }
    return i == small_len;
}

static void
check_apply(enum bp_txdefaults_kind kind, const char *body, size_t size)
{
    struct bp_buf out;
    struct bp_buf again;
    struct bp_jscan_value top;
    bool changed = false;
    bp_err rc;

    bp_buf_init(&out, size + FUZZ_EXTRA_ROOM);
    bp_buf_init(&again, size + 2 * FUZZ_EXTRA_ROOM);
    rc = bp_txdefaults_apply(kind, body, size, &out, &changed);
    BP_BUG_ON(rc != BP_OK && rc != BP_ERR_LIMIT);
    if (rc != BP_OK || !changed) {
        BP_BUG_ON(out.len != 0);
        goto done;
    }
    BP_BUG_ON(out.len <= size);
    BP_BUG_ON(!is_subsequence(body, size, out.data, out.len));
    BP_BUG_ON(bp_jscan_document(body, size, &top) != BP_OK);
    BP_BUG_ON(bp_jscan_document(out.data, out.len, &top) != BP_OK);
    BP_BUG_ON(top.type != BP_JSCAN_OBJECT);

    changed = true;
    rc = bp_txdefaults_apply(kind, out.data, out.len, &again, &changed);
    BP_BUG_ON(rc != BP_OK || changed || again.len != 0);

    /* Generated text has a fixed length, so one byte less must not fit. */
    bp_buf_cleanup(&again);
    bp_buf_init(&again, out.len - 1);
    rc = bp_txdefaults_apply(kind, body, size, &again, &changed);
    BP_BUG_ON(rc != BP_ERR_LIMIT || again.len != 0);
done:
    bp_buf_cleanup(&out);
    bp_buf_cleanup(&again);
}

/* Every reported part must stand on its own as what the scanner said it was. */
static void
walk(const char *doc, const struct bp_jscan_value *v)
{
    struct bp_jscan_iter it;
    struct bp_jscan_span key;
    struct bp_jscan_value member;
    struct bp_jscan_value alone;

    BP_BUG_ON(bp_jscan_document(doc + v->span.off, v->span.len, &alone) != BP_OK);
    BP_BUG_ON(alone.type != v->type || alone.span.off != 0 || alone.span.len != v->span.len);
    if (v->type != BP_JSCAN_OBJECT && v->type != BP_JSCAN_ARRAY) {
        return;
    }
    bp_jscan_iter_init(&it, doc, v);
    while (bp_jscan_iter_next(&it, &key, &member)) {
        BP_BUG_ON(member.span.off < bp_jscan_inner_begin(v));
        BP_BUG_ON(member.span.off + member.span.len > bp_jscan_close_off(v));
        if (v->type == BP_JSCAN_OBJECT) {
            BP_BUG_ON(key.off < 1 || doc[key.off - 1] != '"' || doc[key.off + key.len] != '"');
            BP_BUG_ON(bp_jscan_document(doc + key.off - 1, key.len + 2, &alone) != BP_OK);
            BP_BUG_ON(alone.type != BP_JSCAN_STRING);
            (void)bp_jscan_key_equal_fold(doc, key, "reference");
        }
        walk(doc, &member);
    }
}

static size_t
tree_depth(json_t *j)
{
    size_t deepest = 0;
    size_t d;

    if (json_is_object(j)) {
        for (void *it = json_object_iter(j); it != NULL; it = json_object_iter_next(j, it)) {
            d = tree_depth(json_object_iter_value(it));
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            d = tree_depth(json_array_get(j, i));
            deepest = d > deepest ? d : deepest;
        }
        return deepest + 1;
    }
    return 0;
}

static void
check_scan(const char *doc, size_t size)
{
    struct bp_jscan_value top;
    bool ok = bp_jscan_document(doc, size, &top) == BP_OK;
    json_error_t err;
    json_t *j;

    if (ok) {
        walk(doc, &top);
    }
    /* jansson is stricter about UTF-8, surrogates and number range, never laxer on grammar, but
     * its reader stops at a raw NUL byte as if the input ended there. */
    if (memchr(doc, '\0', size) != NULL) {
        return;
    }
    j = json_loadb(doc, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (j != NULL) {
        BP_BUG_ON(!ok && tree_depth(j) <= BP_JSCAN_MAX_DEPTH);
        BP_BUG_ON(ok && json_is_object(j) != (top.type == BP_JSCAN_OBJECT));
        json_decref(j);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;

    check_scan(body, size);
    check_apply(BP_TXDEFAULTS_SINGLE, body, size);
    check_apply(BP_TXDEFAULTS_BULK, body, size);
    return 0;
}
