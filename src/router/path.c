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

/* Reasons for error_detail.message (issue 8): fixed text naming the rule, never a path byte. */
#define NO_PATH "no Core path after /proxy: call /proxy/<core path>, e.g. /proxy/ledgers"
#define TRAILING_SLASH "trailing slash in path: remove it"
#define EMPTY_SEGMENT "empty segment (//) in path"
#define DOT_SEGMENT "dot segment (. or ..) in path"
#define CONTROL "control character or space in path"
#define NON_ASCII "non-ASCII byte in path: percent-encode it"
#define BACKSLASH "backslash in path"
#define HASH "'#' in path: percent-encode it as %23"
#define QUESTION_MARK "'?' in path"
#define BAD_ESCAPE "malformed percent-encoding in path: % must be followed by two hex digits"
#define ENCODED_SEPARATOR "percent-encoded slash or backslash in path"
#define ENCODED_CONTROL "percent-encoded control character in path"
#define ENCODED_UNRESERVED                                                                                   \
    "percent-encoded letter, digit or one of - . _ ~ in path: write the character itself"

/* Bytes that may never appear raw in a path: controls, space, DEL, non-ASCII (a strict parser
 * has no charset to read them in), '\\' (some stacks treat it as '/'), and '?' / '#' (they would
 * end the path when the URL for Core is built, so Core would route a shorter path than we matched).
 * Returns the reason for such a byte, NULL for any other. */
static const char *
refused_raw(unsigned char c)
{
    if (c < 0x21 || c == 0x7f) {
        return CONTROL;
    }
    if (c >= 0x80) {
        return NON_ASCII;
    }
    switch (c) {
    case '\\':
        return BACKSLASH;
    case '#':
        return HASH;
    case '?':
        return QUESTION_MARK;
    default:
        return NULL;
    }
}

/* Checks the "%XY" escape at p[0..2] (p[0] is '%'); n is the bytes left including the '%'.
 * Returns the reason it is refused, NULL when it is fine. */
static const char *
escape_problem(const unsigned char *p, size_t n)
{
    int hi;
    int lo;
    unsigned char decoded;

    if (n < 3) {
        return BAD_ESCAPE;
    }
    hi = bp_hex_digit_value(p[1]);
    lo = bp_hex_digit_value(p[2]);
    if (hi < 0 || lo < 0) {
        return BAD_ESCAPE;
    }
    decoded = (unsigned char)(hi * 16 + lo);
    /* An encoded '/', '\\', '.' or NUL would hide a separator, a dot segment or a C-string end
     * from us; an encoded control character is refused like a raw one (DESIGN §3), since Core
     * decodes it into its path parameters; an encoded unreserved character is only an alias of
     * itself (see the top). */
    if (decoded == '/' || decoded == '\\') {
        return ENCODED_SEPARATOR;
    }
    if (decoded < 0x20 || decoded == 0x7f) {
        return ENCODED_CONTROL;
    }
    if (is_unreserved(decoded)) {
        return ENCODED_UNRESERVED;
    }
    return NULL;
}

/* The reason a segment is refused (empty, "." or ".."), NULL when it is fine. at_end: it is the
 * last segment, so an empty one is a trailing slash. */
static const char *
segment_problem(const unsigned char *seg, size_t n, bool at_end)
{
    if (n == 0) {
        return at_end ? TRAILING_SLASH : EMPTY_SEGMENT;
    }
    if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
        return DOT_SEGMENT;
    }
    return NULL;
}

static const char *
path_problem(const unsigned char *p, size_t len)
{
    const char *problem;
    size_t seg_start;
    size_t i;

    /* The bare "/" (what "/proxy/" leaves) names no Core resource at all. */
    if (p == NULL || len == 0 || p[0] != '/' || len == 1) {
        return NO_PATH;
    }
    seg_start = 1;
    for (i = 1; i <= len; i++) {
        if (i == len || p[i] == '/') {
            problem = segment_problem(p + seg_start, i - seg_start, i == len);
            if (problem != NULL) {
                return problem;
            }
            seg_start = i + 1;
            continue;
        }
        problem = refused_raw(p[i]);
        if (problem != NULL) {
            return problem;
        }
        if (p[i] == '%') {
            problem = escape_problem(p + i, len - i);
            if (problem != NULL) {
                return problem;
            }
            i += 2;
        }
    }
    return NULL;
}

bp_err
bp_path_check(const char *path, size_t len, const char **why)
{
    const char *problem = path_problem((const unsigned char *)path, len);

    if (problem == NULL) {
        return BP_OK;
    }
    if (why != NULL) {
        *why = problem;
    }
    return BP_ERR_MALFORMED;
}
