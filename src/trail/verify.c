/* audit verify (trail.h): every chain walked from its start (its first record, the checkpoint
 * its last purge left, or --since), each record's hash recomputed and its link to the one before
 * checked, the chain's end matched with its head; then what lies outside the chains; then a
 * checkpoint kept elsewhere matched against the records it names. The first break is reported:
 * it says which record and what kind of change it shows. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "lib/alloc.h"
#include "store/store.h"
#include "trail/trail-int.h"

#define PAGE 5000
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

/* Text from json_dumps goes back to whatever allocator jansson was given (the CLI's wipes). */
static void
json_text_free(char *t)
{
    json_malloc_t m;
    json_free_t f;

    json_get_alloc_funcs(&m, &f);
    f(t);
}

/* One chain's expectations: where its last purge left it and what the given checkpoint says. */
struct expect {
    int64_t purged_upto; /* 0: never purged */
    char purged_head[BP_AUDIT_HEX];
    int64_t cp_n; /* 0: not in the given checkpoint */
    char cp_head[BP_AUDIT_HEX];
    bool cp_seen;
};

static void breaks(struct bp_trail_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
breaks(struct bp_trail_report *r, const char *fmt, ...)
{
    va_list ap;

    if (r->broken) {
        return;
    }
    r->broken = true;
    va_start(ap, fmt);
    vsnprintf(r->first_break, sizeof(r->first_break), fmt, ap);
    va_end(ap);
}

static void
copy_hex(char out[BP_AUDIT_HEX], const char *s)
{
    if (s != NULL && strlen(s) == BP_AUDIT_HEX - 1) {
        memcpy(out, s, BP_AUDIT_HEX);
    } else {
        memcpy(out, "?", 2);
    }
}

/* The signature of a stored or given checkpoint, against the key when there is one. */
static bool
signature_ok(const struct bp_trail_verify_opts *o, struct bp_trail_report *r, const char *body,
             const char *sig, const char *what)
{
    if (sig == NULL) {
        if (o->key != NULL) {
            breaks(r,
                   "%s is not signed, and a key was given: it may have been made by someone without the key",
                   what);
            return false;
        }
        return true;
    }
    if (o->key == NULL) {
        r->signatures_unchecked++;
        return true;
    }
    if (!bp_trail__check(o->key, body, sig)) {
        breaks(
            r,
            "%s does not carry a valid signature of the given key: it was changed, or made with another key",
            what);
        return false;
    }
    r->signatures_checked++;
    return true;
}

/* The latest purge checkpoint of each chain, into ex (parallel to heads). */
static bp_err
load_purges(struct bp_store *s, const struct bp_trail_verify_opts *o, const struct bp_audit_head *heads,
            size_t n, struct expect *ex, struct bp_trail_report *r)
{
    struct bp_audit_checkpoint *cps = NULL;
    size_t n_cps = 0;
    bp_err err = bp_store_audit_checkpoint_list(s, 0, "purge", 0, &cps, &n_cps);

    for (size_t i = 0; err == BP_OK && i < n_cps && !r->broken; i++) {
        json_t *body = json_loads(cps[i].body, 0, NULL);
        json_t *p = body != NULL ? json_object_get(body, "purged") : NULL;
        const char *chain = json_string_value(json_object_get(p, "chain"));
        const char *head = json_string_value(json_object_get(p, "head"));
        int64_t upto = json_integer_value(json_object_get(p, "upto"));
        char what[96];

        snprintf(what, sizeof(what), "purge checkpoint %s", cps[i].id != NULL ? cps[i].id : "?");
        if (chain == NULL || head == NULL || upto <= 0) {
            breaks(r, "%s does not parse: it was changed", what);
        } else if (signature_ok(o, r, cps[i].body, cps[i].signature, what)) {
            for (size_t h = 0; h < n; h++) {
                if (strcmp(heads[h].chain, chain) == 0 && upto > ex[h].purged_upto) {
                    ex[h].purged_upto = upto;
                    copy_hex(ex[h].purged_head, head);
                }
            }
        }
        json_decref(body);
    }
    bp_audit_checkpoints_free(cps, n_cps);
    return err;
}

/* The given checkpoint's chains into ex; a chain it names that the store no longer has, or has
 * fewer records of, is a break. */
static bp_err
load_checkpoint(const struct bp_trail_verify_opts *o, const struct bp_audit_head *heads, size_t n,
                struct expect *ex, struct bp_trail_report *r)
{
    json_error_t jerr;
    json_t *cp = json_loads(o->checkpoint_text, 0, &jerr);
    json_t *chains = cp != NULL ? json_object_get(cp, "chains") : NULL;
    const char *sig = cp != NULL ? json_string_value(json_object_get(cp, "signature")) : NULL;
    char *body = NULL;
    char *sig_copy;
    bool ok;
    size_t i;
    json_t *c;

    if (!json_is_array(chains)) {
        snprintf(r->first_break, sizeof(r->first_break),
                 "the checkpoint file is not a blnkproxy checkpoint (a JSON object with \"chains\")");
        json_decref(cp);
        return BP_ERR_INVALID;
    }
    /* The signature's string dies with its member: keep a copy. */
    sig_copy = sig != NULL ? bp_strdup(sig) : NULL;
    json_object_del(cp, "signature");
    body = json_dumps(cp, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    ok = signature_ok(o, r, body, sig_copy, "the given checkpoint");
    json_text_free(body);
    bp_free(sig_copy);
    if (!ok) {
        json_decref(cp);
        return BP_OK;
    }
    json_array_foreach(chains, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "chain"));
        const char *head = json_string_value(json_object_get(c, "head"));
        int64_t cn = json_integer_value(json_object_get(c, "n"));
        size_t h;

        if (name == NULL || head == NULL || cn < 0) {
            breaks(r, "the checkpoint file's chain %zu does not parse", i);
            break;
        }
        for (h = 0; h < n && strcmp(heads[h].chain, name) != 0; h++) {
        }
        if (h == n) {
            if (cn > 0) {
                breaks(r, "chain %s, which the checkpoint holds with %lld records, is gone from the store",
                       name, (long long)cn);
            }
            continue;
        }
        if (heads[h].n < cn) {
            breaks(r,
                   "chain %s has %lld records where the checkpoint counted %lld: records were removed and "
                   "its head "
                   "rewritten",
                   name, (long long)heads[h].n, (long long)cn);
            continue;
        }
        ex[h].cp_n = cn;
        copy_hex(ex[h].cp_head, head);
    }
    json_decref(cp);
    return BP_OK;
}

/* Checks record rec of chain h against what comes before it. */
static void
check_rec(const struct bp_audit_head *h, struct expect *ex, const struct bp_audit_rec *rec, int64_t *expect_n,
          char prev[BP_AUDIT_HEX], int64_t *last_seq, struct bp_trail_report *r)
{
    char digest[BP_AUDIT_HEX];

    if (rec->chain_n != *expect_n) {
        breaks(r, "chain %s: record %lld is missing (the next one there is %lld, %s): removed", h->chain,
               (long long)*expect_n, (long long)rec->chain_n, rec->id != NULL ? rec->id : "?");
        return;
    }
    if (prev[0] != '\0' && strcmp(rec->prev_hash, prev) != 0) {
        breaks(r, "chain %s: record %lld (%s) does not follow record %lld: one of them was replaced or moved",
               h->chain, (long long)rec->chain_n, rec->id != NULL ? rec->id : "?",
               (long long)rec->chain_n - 1);
        return;
    }
    bp_store_audit_digest(rec, digest);
    if (strcmp(digest, rec->hash) != 0) {
        breaks(r, "chain %s: record %lld (%s, seq %lld) was changed: its fields no longer give its hash",
               h->chain, (long long)rec->chain_n, rec->id != NULL ? rec->id : "?", (long long)rec->seq);
        return;
    }
    if (*last_seq != 0 && rec->seq <= *last_seq) {
        breaks(
            r,
            "chain %s: record %lld (%s) has seq %lld, not after its predecessor's %lld: rows were reordered",
            h->chain, (long long)rec->chain_n, rec->id != NULL ? rec->id : "?", (long long)rec->seq,
            (long long)*last_seq);
        return;
    }
    if (ex->purged_upto == rec->chain_n && strcmp(rec->hash, ex->purged_head) != 0) {
        breaks(r, "chain %s: record %lld differs from the one its purge checkpoint names", h->chain,
               (long long)rec->chain_n);
        return;
    }
    if (ex->cp_n == rec->chain_n) {
        if (strcmp(rec->hash, ex->cp_head) != 0) {
            breaks(
                r,
                "chain %s: record %lld (%s) differs from the one the checkpoint names: it, or one before it, "
                "was changed after the checkpoint",
                h->chain, (long long)rec->chain_n, rec->id != NULL ? rec->id : "?");
            return;
        }
        ex->cp_seen = true;
    }
    memcpy(prev, rec->hash, BP_AUDIT_HEX);
    *last_seq = rec->seq;
    (*expect_n)++;
    r->records++;
}

static bp_err
walk_chain(struct bp_store *s, const struct bp_trail_verify_opts *o, const struct bp_audit_head *h,
           struct expect *ex, struct bp_trail_report *r)
{
    char prev[BP_AUDIT_HEX] = "";
    int64_t expect_n = 1, after = 0, last_seq = 0;
    bool first = true;
    bp_err err = BP_OK;

    if (o->since_us != 0) {
        int64_t start = 0;
        err = bp_store_audit_chain_start(s, h->chain, o->since_us, &start);
        if (err != BP_OK) {
            return err;
        }
        if (start == 0) {
            /* Nothing of this chain at or after --since. */
            return BP_OK;
        }
        after = start - 1;
    }
    while (!r->broken) {
        struct bp_audit_rec *recs = NULL;
        size_t n = 0;

        err = bp_store_audit_chain_page(s, h->chain, after, PAGE, &recs, &n);
        if (err != BP_OK) {
            return err;
        }
        for (size_t i = 0; i < n && !r->broken; i++) {
            if (first) {
                first = false;
                expect_n = recs[i].chain_n;
                if (o->since_us != 0) {
                    /* Trusted as found: the walk proves what follows it. */
                } else if (expect_n == 1) {
                    memcpy(prev, ZERO_HASH, sizeof(ZERO_HASH));
                } else if (ex->purged_upto >= expect_n - 1) {
                    if (ex->purged_upto == expect_n - 1) {
                        memcpy(prev, ex->purged_head, BP_AUDIT_HEX);
                    }
                    r->purged++;
                } else {
                    breaks(
                        r,
                        "chain %s: records 1 to %lld are missing and no purge checkpoint accounts for them",
                        h->chain, (long long)expect_n - 1);
                    break;
                }
            }
            check_rec(h, ex, &recs[i], &expect_n, prev, &last_seq, r);
        }
        if (n > 0) {
            after = recs[n - 1].chain_n;
        }
        bp_audit_recs_free(recs, n);
        if (n < PAGE) {
            break;
        }
    }
    if (r->broken) {
        return BP_OK;
    }
    if (first) {
        /* No record left: every one was purged, or (without --since) removed. */
        if (o->since_us == 0 && h->n > 0 &&
            !(ex->purged_upto == h->n && strcmp(ex->purged_head, h->head) == 0)) {
            breaks(r, "chain %s: its head counts %lld records and none is there, nor did a purge take them",
                   h->chain, (long long)h->n);
        } else if (h->n > 0) {
            r->purged += o->since_us == 0;
        }
    } else if (expect_n - 1 != h->n) {
        breaks(r,
               "chain %s: the last record is %lld but its head counts %lld: records after %lld were removed",
               h->chain, (long long)expect_n - 1, (long long)h->n, (long long)expect_n - 1);
    } else if (strcmp(prev, h->head) != 0) {
        breaks(r, "chain %s: the last record is not the one its head names: it was replaced", h->chain);
    }
    if (!r->broken && ex->cp_n > 0 && !ex->cp_seen) {
        if (ex->purged_upto >= ex->cp_n) {
            r->checkpoint_purged++;
        } else if (o->since_us == 0) {
            breaks(r, "chain %s: record %lld, which the checkpoint names, is missing", h->chain,
                   (long long)ex->cp_n);
        }
    } else if (!r->broken && ex->cp_n > 0) {
        r->checkpoint_matched++;
    }
    return BP_OK;
}

bp_err
bp_trail_verify(struct bp_store *s, const struct bp_trail_verify_opts *o, struct bp_trail_report *r)
{
    struct bp_audit_head *heads = NULL;
    struct bp_audit_strays strays;
    struct expect *ex = NULL;
    size_t n = 0;
    bp_err err;

    memset(r, 0, sizeof(*r));
    err = bp_store_audit_heads(s, &heads, &n);
    if (err != BP_OK) {
        return err;
    }
    ex = bp_calloc(n > 0 ? n : 1, sizeof(*ex));
    r->chains = (int64_t)n;
    err = load_purges(s, o, heads, n, ex, r);
    if (err == BP_OK && o->checkpoint_text != NULL) {
        err = load_checkpoint(o, heads, n, ex, r);
    }
    for (size_t i = 0; err == BP_OK && i < n && !r->broken; i++) {
        err = walk_chain(s, o, &heads[i], &ex[i], r);
    }
    if (err == BP_OK && !r->broken) {
        err = bp_store_audit_strays(s, &strays);
        if (err == BP_OK) {
            r->legacy = strays.legacy_n;
            if (strays.unchained > 0) {
                breaks(r,
                       "%lld record(s) belong to no chain, the first with seq %lld: rows were added by hand",
                       (long long)strays.unchained, (long long)strays.first_unchained_seq);
            } else if (strays.headless_chain != NULL) {
                breaks(
                    r,
                    "records name chain %s, which has no head: rows were added by hand, or its head removed",
                    strays.headless_chain);
            }
        }
        bp_audit_strays_cleanup(&strays);
    }
    bp_free(ex);
    bp_audit_heads_free(heads, n);
    return err;
}
