#include "router/router.h"

#include <string.h>

#include "lib/bug.h"
#include "lib/str.h"

/*
 * Route lookup over a table of rows (DESIGN §3).
 *
 * Threads: pure function over an immutable table; any loop thread may call it. No allocation.
 *
 * Precedence: when several rows match, the one whose first differing segment is a literal wins
 * (so "/transactions/bulk" is the bulk row, not "/transactions/:id"), as in Core's own router;
 * rows with the same shape keep table order.
 *
 * Captures never stand in for Core administration. The table has "POST /:id/metadata", whose
 * first segment is a capture, so without a guard "/api-keys/metadata" or "/hooks/metadata"
 * would be forwarded, and Core's router (which prefers its static routes and backtracks) might
 * hand them to an admin handler. Core's real metadata route takes an entity id (ldg_…, bln_…,
 * txn_…, idt_…), never a resource name, so a capture is refused when:
 *   - it is in the first segment and the segment is one of Core's first-level resource names
 *     (any ASCII case), or starts with the name of a "/name*" admin family of DESIGN §3;
 *   - the path up to and including the captured segment is a Core admin path whose last segment
 *     is a literal ("/search/reindex" must not pass as "POST /search/:collection").
 * The guard applies only to captures: an operator who adds a literal "/api-keys" row to the
 * table gets what they asked for. Percent-encoded aliases such as "%72eindex" never get here:
 * bp_path_check refuses encoded unreserved characters.
 */

/* Resource names Core serves at the first segment; a first-segment capture never binds them. */
static const char *const reserved_first[] = {
    "api-keys",
    "backup",
    "hooks",
    "search",
    "transactions",
    "balances-snapshots",
    "mocked-account",
    "accounts",
    "balance-monitors",
    "ledgers",
    "balances",
    "identities",
    "reconciliation",
    "refund-transaction",
    "multi-search",
    "health",
};

/* DESIGN §3 admin families written "/name*": any first segment starting with these is theirs. */
static const char *const reserved_first_prefix[] = {
    "api-keys", "backup", "hooks", "accounts", "balance-monitors",
};

/* Core admin paths below a non-admin first segment, ending in a literal. */
static const char *const admin_paths[] = {
    "/search/reindex",
    "/transactions/recover",
};

struct seg_iter {
    const char *s;
    size_t len;
    size_t pos;
    bool done;
};

/* s must start with '/'; segments are the pieces between slashes after it. */
static void
seg_iter_init(struct seg_iter *it, const char *s, size_t len)
{
    it->s = s;
    it->len = len;
    it->pos = 1;
    it->done = false;
}

static bool
seg_iter_next(struct seg_iter *it, const char **out, size_t *out_len)
{
    const char *start;
    const char *slash;
    size_t n;

    if (it->done) {
        return false;
    }
    start = it->s + it->pos;
    slash = memchr(start, '/', it->len - it->pos);
    if (slash != NULL) {
        n = (size_t)(slash - start);
        it->pos += n + 1;
    } else {
        n = it->len - it->pos;
        it->done = true;
    }
    *out = start;
    *out_len = n;
    return true;
}

static bool
istarts_with(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && bp_str_ieq(s, n, prefix);
}

/* seg is the segment at index idx; path[0..prefix_len) ends with it. */
static bool
capture_is_denied(size_t idx, const char *seg, size_t seg_len, const char *path, size_t prefix_len)
{
    size_t i;

    if (idx == 0) {
        for (i = 0; i < BP_ARRAY_LEN(reserved_first); i++) {
            if (bp_str_ieq(seg, seg_len, reserved_first[i])) {
                return true;
            }
        }
        for (i = 0; i < BP_ARRAY_LEN(reserved_first_prefix); i++) {
            if (istarts_with(seg, seg_len, reserved_first_prefix[i])) {
                return true;
            }
        }
    }
    for (i = 0; i < BP_ARRAY_LEN(admin_paths); i++) {
        if (bp_str_ieq(path, prefix_len, admin_paths[i])) {
            return true;
        }
    }
    return false;
}

static bool
method_matches(const struct bp_route *r, const char *method, size_t method_len)
{
    if (bp_str_eq(method, method_len, r->method)) {
        return true;
    }
    /* DESIGN §2: HEAD is a GET without a body and needs the same scope. */
    return bp_str_eq(method, method_len, "HEAD") && strcmp(r->method, "GET") == 0;
}

static bool
pattern_matches(const char *pattern, const char *path, size_t path_len)
{
    struct seg_iter pi;
    struct seg_iter si;
    const char *pseg;
    const char *sseg;
    size_t plen;
    size_t slen;
    size_t idx = 0;

    seg_iter_init(&pi, pattern, strlen(pattern));
    seg_iter_init(&si, path, path_len);
    for (;;) {
        bool hp = seg_iter_next(&pi, &pseg, &plen);
        bool hs = seg_iter_next(&si, &sseg, &slen);

        if (!hp || !hs) {
            return hp == hs;
        }
        if (plen > 0 && pseg[0] == ':') {
            size_t prefix_len = (size_t)(sseg - path) + slen;
            if (slen == 0 || capture_is_denied(idx, sseg, slen, path, prefix_len)) {
                return false;
            }
        } else if (plen != slen || memcmp(pseg, sseg, slen) != 0) {
            return false;
        }
        idx++;
    }
}

/* True when pattern a beats pattern b: both matched the same path, so they have the same number
 * of segments; the first segment where one is a literal and the other a capture decides. */
static bool
pattern_beats(const char *a, const char *b)
{
    struct seg_iter ai;
    struct seg_iter bi;
    const char *as;
    const char *bs;
    size_t alen;
    size_t blen;

    seg_iter_init(&ai, a, strlen(a));
    seg_iter_init(&bi, b, strlen(b));
    while (seg_iter_next(&ai, &as, &alen) && seg_iter_next(&bi, &bs, &blen)) {
        bool acap = alen > 0 && as[0] == ':';
        bool bcap = blen > 0 && bs[0] == ':';

        if (acap != bcap) {
            return bcap;
        }
    }
    return false;
}

const struct bp_route *
bp_route_match(const struct bp_route *table, size_t n, const char *method, size_t method_len,
               const char *path, size_t path_len)
{
    const struct bp_route *best = NULL;
    size_t i;

    if (table == NULL || method == NULL || path == NULL || path_len == 0 || path[0] != '/') {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        const struct bp_route *r = &table[i];

        BP_DEBUG_ASSERT(r->pattern != NULL && r->pattern[0] == '/');
        if (!method_matches(r, method, method_len)) {
            continue;
        }
        if (!pattern_matches(r->pattern, path, path_len)) {
            continue;
        }
        if (best == NULL || pattern_beats(r->pattern, best->pattern)) {
            best = r;
        }
    }
    return best;
}
