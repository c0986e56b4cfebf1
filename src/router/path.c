#include "router/router.h"
#include "lib/str.h"

/*
 * Strict Core-path check (DESIGN §3 "Path handling").
 *
 * The route table decides what reaches Core, so the path we match must be the path Core routes.
 * Anything a server or a client library could normalise into a different path is refused here
 * rather than normalised: dot segments, empty segments, encoded separators, raw bytes that are
 * not printable ASCII, and percent-encoded unreserved characters (RFC 3986 §6.2.2.2 makes
 * "%72eindex" equal to "reindex"; Core's router decodes the path before routing, so
 * "/search/%72eindex" would look like a search to us and be a reindex to Core).
 *
 * Pure function of its input; no allocation; safe on any bytes.
 */

static bool
is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Bytes that may never appear raw in a path: controls, space, DEL, non-ASCII (a strict parser
 * has no charset to read them in), '\\' (some stacks treat it as '/'), and '?' / '#' (they would
 * end the path when the URL for Core is built, so Core would route a shorter path than we matched). */
static bool
is_refused_raw(unsigned char c)
{
    return c < 0x21 || c >= 0x7f || c == '\\' || c == '?' || c == '#';
}

/* Checks the "%XY" escape at p[0..2] (p[0] is '%'); n is the bytes left including the '%'. */
static bp_err
check_escape(const unsigned char *p, size_t n)
{
    int hi;
    int lo;
    unsigned char decoded;

    if (n < 3) {
        return BP_ERR_MALFORMED;
    }
    hi = bp_hex_digit_value(p[1]);
    lo = bp_hex_digit_value(p[2]);
    if (hi < 0 || lo < 0) {
        return BP_ERR_MALFORMED;
    }
    decoded = (unsigned char)(hi * 16 + lo);
    /* An encoded '/', '\\', '.' or NUL would hide a separator, a dot segment or a C-string end
     * from us; an encoded control character is refused like a raw one (DESIGN §3), since Core
     * decodes it into its path parameters; an encoded unreserved character is only an alias of
     * itself (see the top). */
    if (decoded == '/' || decoded == '\\' || decoded < 0x20 || decoded == 0x7f || is_unreserved(decoded)) {
        return BP_ERR_MALFORMED;
    }
    return BP_OK;
}

/* A segment is refused when empty, "." or "..". */
static bool
is_bad_segment(const unsigned char *seg, size_t n)
{
    if (n == 0) {
        return true;
    }
    if (n == 1 && seg[0] == '.') {
        return true;
    }
    return n == 2 && seg[0] == '.' && seg[1] == '.';
}

bp_err
bp_path_check(const char *path, size_t len)
{
    const unsigned char *p = (const unsigned char *)path;
    size_t seg_start;
    size_t i;

    if (path == NULL || len == 0 || p[0] != '/') {
        return BP_ERR_MALFORMED;
    }
    seg_start = 1;
    for (i = 1; i <= len; i++) {
        if (i == len || p[i] == '/') {
            /* This also refuses the bare "/" and a trailing "/": both end in an empty segment. */
            if (is_bad_segment(p + seg_start, i - seg_start)) {
                return BP_ERR_MALFORMED;
            }
            seg_start = i + 1;
            continue;
        }
        if (is_refused_raw(p[i])) {
            return BP_ERR_MALFORMED;
        }
        if (p[i] == '%') {
            bp_err rc = check_escape(p + i, len - i);
            if (rc != BP_OK) {
                return rc;
            }
            i += 2;
        }
    }
    return BP_OK;
}
