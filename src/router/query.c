#include "router/router.h"

#include <string.h>

/*
 * instance_id extraction (DESIGN §2): the proxy consumes exactly one query parameter and Core
 * gets every other byte of the query as the client sent it, in order. Nothing is decoded or
 * re-encoded, so "instance%5Fid=x" or "Instance_id=x" are ordinary Core parameters, not ours.
 *
 * The query is scanned completely before out_forward is touched, so a refused query leaves the
 * buffer as it was.
 */

#define NAME "instance_id"
#define NAME_LEN (sizeof(NAME) - 1)

/* Where the instance_id parameter sits in q: bytes [start, end) hold "instance_id[=value]". */
struct found {
    size_t start;
    size_t end;
    size_t value_start; /* == end when there is no '=' */
};

static bool
param_is_instance_id(const char *param, size_t n, size_t *out_value_off)
{
    if (n < NAME_LEN || memcmp(param, NAME, NAME_LEN) != 0) {
        return false;
    }
    if (n == NAME_LEN) {
        *out_value_off = n;
        return true;
    }
    if (param[NAME_LEN] != '=') {
        return false; /* "instance_idx=1" is another parameter */
    }
    *out_value_off = NAME_LEN + 1;
    return true;
}

#define REPEATED "instance_id given more than once"
#define EMPTY "instance_id is empty: give the id of an instance"

/* Finds the one instance_id parameter. BP_ERR_NOT_FOUND when there is none, BP_ERR_MALFORMED
 * when there are several (which one would Core-side logs believe?). */
static bp_err
find_param(const char *q, size_t len, struct found *out)
{
    size_t start = 0;
    size_t seen = 0;
    struct found f = {0, 0, 0};

    while (start <= len) {
        const char *amp = start < len ? memchr(q + start, '&', len - start) : NULL;
        size_t end = amp != NULL ? (size_t)(amp - q) : len;
        size_t value_off;

        if (param_is_instance_id(q + start, end - start, &value_off)) {
            seen++;
            if (seen > 1) {
                return BP_ERR_MALFORMED;
            }
            f.start = start;
            f.end = end;
            f.value_start = start + value_off;
        }
        start = end + 1;
    }
    if (seen == 0) {
        return BP_ERR_NOT_FOUND;
    }
    *out = f;
    return BP_OK;
}

static bp_err
refuse(bp_err rc, const char *reason, const char **why)
{
    if (why != NULL) {
        *why = reason;
    }
    return rc;
}

/* No instance_id: the query goes to Core whole (the credential may imply the instance). */
static bp_err
forward_whole(const char *q, size_t len, const char **out_id, size_t *out_id_len, struct bp_buf *out_forward)
{
    if (len > 0) {
        bp_err rc = bp_buf_append(out_forward, q, len);
        if (rc != BP_OK) {
            return rc;
        }
    }
    *out_id = NULL;
    *out_id_len = 0;
    return BP_OK;
}

bp_err
bp_query_take_instance_id(const char *q, size_t len, const char **out_id, size_t *out_id_len,
                          struct bp_buf *out_forward, const char **why)
{
    struct found f;
    size_t cut_start;
    size_t cut_end;
    size_t fwd_len;
    char *dst;
    bp_err rc;

    if (q == NULL || len == 0) {
        return forward_whole(q, 0, out_id, out_id_len, out_forward);
    }
    rc = find_param(q, len, &f);
    if (rc == BP_ERR_NOT_FOUND) {
        return forward_whole(q, len, out_id, out_id_len, out_forward);
    }
    if (rc != BP_OK) {
        return refuse(rc, REPEATED, why);
    }
    if (f.value_start == f.end) {
        /* "instance_id" or "instance_id=": given, so not implied, but naming nothing. */
        return refuse(BP_ERR_MISSING_INSTANCE_ID, EMPTY, why);
    }

    /* Remove the parameter and one '&' next to it: the following one when there is one, else
     * the preceding one. Any byte besides the parameter forces one of them to exist. */
    cut_start = f.start;
    cut_end = f.end;
    if (cut_end < len) {
        cut_end++;
    } else if (cut_start > 0) {
        cut_start--;
    }
    fwd_len = len - (cut_end - cut_start);

    /* Reserve once so that a limit error leaves out_forward unchanged. */
    rc = bp_buf_reserve(out_forward, fwd_len, &dst);
    if (rc != BP_OK) {
        return rc;
    }
    memcpy(dst, q, cut_start);
    memcpy(dst + cut_start, q + cut_end, len - cut_end);
    bp_buf_commit(out_forward, fwd_len);

    *out_id = q + f.value_start;
    *out_id_len = f.end - f.value_start;
    return BP_OK;
}

/* Crockford base32 as the CLI writes it (bp_ulid): digits and uppercase letters without I L O U. */
static bool
is_crockford_upper(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return true;
    }
    if (c < 'A' || c > 'Z') {
        return false;
    }
    return c != 'I' && c != 'L' && c != 'O' && c != 'U';
}

#define INSTANCE_PREFIX "instance_"
#define INSTANCE_PREFIX_LEN (sizeof(INSTANCE_PREFIX) - 1)
#define INSTANCE_ULID_LEN 26

bool
bp_instance_id_is_valid(const char *id, size_t len)
{
    size_t i;

    if (id == NULL || len != INSTANCE_PREFIX_LEN + INSTANCE_ULID_LEN) {
        return false;
    }
    if (memcmp(id, INSTANCE_PREFIX, INSTANCE_PREFIX_LEN) != 0) {
        return false;
    }
    for (i = INSTANCE_PREFIX_LEN; i < len; i++) {
        if (!is_crockford_upper((unsigned char)id[i])) {
            return false;
        }
    }
    return true;
}
