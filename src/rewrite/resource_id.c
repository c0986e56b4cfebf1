/* The id Core gave a created resource, read from its response for the audit log. The response
 * is relayed as received; this only looks at it. */
#include <string.h>

#include "rewrite/jscan.h"
#include "rewrite/rewrite.h"

static bool
span_is(const char *doc, struct bp_jscan_span key, const char *name)
{
    size_t n = strlen(name);
    return key.len == n && memcmp(doc + key.off, name, n) == 0;
}

bool
bp_json_find_id(const char *doc, size_t len, const char *const *keys, size_t n_keys, size_t *out_off,
                size_t *out_len)
{
    struct bp_jscan_value top;

    if (doc == NULL || len == 0 || bp_jscan_document(doc, len, &top) != BP_OK || top.type != BP_JSCAN_OBJECT) {
        return false;
    }
    for (size_t k = 0; k < n_keys; k++) {
        struct bp_jscan_iter it;
        struct bp_jscan_span key;
        struct bp_jscan_value v;

        bp_jscan_iter_init(&it, doc, &top);
        while (bp_jscan_iter_next(&it, &key, &v)) {
            if (!span_is(doc, key, keys[k])) {
                continue;
            }
            if (v.type == BP_JSCAN_NUMBER) {
                *out_off = v.span.off;
                *out_len = v.span.len;
                return true;
            }
            if (v.type == BP_JSCAN_STRING && v.span.len > 2 &&
                memchr(doc + v.span.off + 1, '\\', v.span.len - 2) == NULL) {
                *out_off = v.span.off + 1;
                *out_len = v.span.len - 2;
                return true;
            }
        }
    }
    return false;
}
