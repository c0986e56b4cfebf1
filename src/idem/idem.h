#ifndef BP_IDEM_IDEM_H
#define BP_IDEM_IDEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/workq.h"
#include "lib/err.h"
#include "store/store.h"

/* Idempotency-Key (DESIGN §4b, issue 12): the header's syntax, the digests that name a request's
 * scope and fingerprint, and the store calls on remembered answers, made off the loop threads.
 *
 * The proxy decides what an entry means for a request (proxy/idempotency.c); this module only
 * computes and stores. Its threads each hold their own store connection; a periodic job on the
 * same queue deletes expired entries.
 *
 * Threads: bp_idem_new, _stop and _free on serve's main thread; bp_idem_submit on any thread
 * (the op's done runs where its work.inbox says). The digest functions are pure. */

#define BP_IDEM_KEY_MAX 255
#define BP_IDEM_DIGEST_LEN 32

/* BP_OK when the Idempotency-Key value v[0..len) is 1..255 printable ASCII characters (space to
 * '~'); BP_ERR_MALFORMED with a fixed reason otherwise. */
bp_err bp_idem_key_check(const char *v, size_t len, const char **reason);

/* The scope (credential, instance, method, route pattern, key) and the fingerprint (method,
 * Core path, query without instance_id, original body) as SHA-256 digests of their parts, each
 * part length-prefixed so that no two different lists of parts give one input. */
void bp_idem_scope(const char *actor, const char *instance, const char *method, size_t method_len,
                   const char *route, const char *key, size_t key_len, unsigned char out[BP_IDEM_DIGEST_LEN]);
void bp_idem_fingerprint(const char *method, size_t method_len, const char *path, size_t path_len,
                         const char *query, size_t query_len, const char *body, size_t body_len,
                         unsigned char out[BP_IDEM_DIGEST_LEN]);

struct bp_idem;

struct bp_idem_opts {
    const char *dsn;           /* the store (serve's db) */
    int threads;               /* at least 1 */
    size_t max_queued;         /* submit refuses beyond this (BP_ERR_LIMIT) */
    int64_t purge_interval_ms; /* how often expired entries are deleted; 0: never */
};

/* Starts the threads (their store connections are made lazily, so a PostgreSQL store that is
 * down at start is reached once it answers). */
bp_err bp_idem_new(const struct bp_idem_opts *opts, struct bp_idem **out);
/* Lets queued ops finish (their dones are posted as usual), then joins. NULL is a no-op. */
void bp_idem_stop(struct bp_idem *idem);
void bp_idem_free(struct bp_idem *idem);

enum bp_idem_op_kind {
    BP_IDEM_OP_CLAIM,   /* bp_store_idem_claim(claim) → rec, owned */
    BP_IDEM_OP_FINISH,  /* bp_store_idem_finish(scope, rec) */
    BP_IDEM_OP_RELEASE, /* bp_store_idem_release(scope) */
};

/* One store call. The caller allocates it, fills kind, scope and what the kind reads, sets
 * work.done and work.inbox, and owns it again when done runs (rc then holds the call's result;
 * BP_ERR_CANCELLED in work.status when the queue stopped first). rec's buffers belong to the op:
 * bp_idem_rec_cleanup(&op->rec) before freeing it. */
struct bp_idem_op {
    struct bp_work work; /* first */
    enum bp_idem_op_kind kind;
    unsigned char scope[BP_IDEM_DIGEST_LEN];
    unsigned char fingerprint[BP_IDEM_DIGEST_LEN];
    int64_t lease_until;    /* CLAIM */
    int64_t expires_at;     /* CLAIM */
    bool take_over;         /* CLAIM */
    struct bp_idem_rec rec; /* CLAIM: the entry; FINISH: the outcome */
    bool owned;             /* CLAIM */
    bp_err rc;
};

/* BP_ERR_LIMIT when max_queued ops wait, BP_ERR_CANCELLED when stopping: done will not run. */
bp_err bp_idem_submit(struct bp_idem *idem, struct bp_idem_op *op);

#endif
