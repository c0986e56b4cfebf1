#ifndef BP_TRAIL_TRAIL_H
#define BP_TRAIL_TRAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* The tamper-evident audit trail (issue 13) above the store's hash chains (store_chain.c):
 * checkpoints, signed with an Ed25519 key when one is configured; the purge that leaves one for
 * what it removes; and the verifier that walks every chain.
 *
 * A checkpoint is a JSON object: every chain's head (name, count, last hash) at one moment, or,
 * for a purge, the prefix of one chain it removed. Its signature covers its canonical text (the
 * object without "signature", keys sorted, compact, ASCII): a copy kept elsewhere, however it was
 * reformatted, can be checked with the public key alone. */

struct bp_store;
struct bp_trail_key;

/* Reads an Ed25519 key from a PEM file: a private key (which signs and checks) or, for
 * need_private false, a public key too. NULL with a reason in err. */
struct bp_trail_key *bp_trail_key_load(const char *path, bool need_private, char *err, size_t err_cap);
/* As bp_trail_key_load, from PEM text[0..len) (a key sent to the admin API). An encrypted key is
 * refused, never asked a passphrase for. err never quotes the text. */
struct bp_trail_key *bp_trail_key_from_pem(const char *text, size_t len, bool need_private, char *err,
                                           size_t err_cap);
/* True when k holds the private key (it can sign), not only the public one. */
bool bp_trail_key_has_private(const struct bp_trail_key *k);
void bp_trail_key_free(struct bp_trail_key *k);

/* Makes a checkpoint of every chain's head now (kind "periodic" or "manual"), signs it when key
 * is not NULL and stores it. *out_json (may be NULL) gets its exported text (allocated). With
 * unchanged_skip set, nothing is made when no head moved since the newest stored checkpoint of
 * that kind of the last day (*out_json NULL). */
bp_err bp_trail_checkpoint(struct bp_store *s, const char *kind, const char *node,
                           const struct bp_trail_key *key, bool unchanged_skip, char **out_json);
/* The exported text of a stored checkpoint (its body with the signature added). */
char *bp_trail_checkpoint_text(const char *body, const char *signature);

/* Deletes records older than before_us (store.h bp_store_audit_purge), leaving for each chain a
 * checkpoint of what went, signed when key is not NULL. */
bp_err bp_trail_purge(struct bp_store *s, int64_t before_us, const char *node, const struct bp_trail_key *key,
                      int64_t *out_deleted);

struct bp_trail_verify_opts {
    int64_t since_us;               /* 0: from each chain's first record */
    const char *checkpoint_text;    /* a checkpoint kept elsewhere, or NULL */
    const struct bp_trail_key *key; /* checks signatures when not NULL */
};

struct bp_trail_report {
    int64_t chains;
    int64_t records;            /* records checked */
    int64_t legacy;             /* rows from before schema 10 (not covered) */
    int64_t purged;             /* chains whose start is a purge checkpoint */
    int64_t checkpoint_matched; /* the given checkpoint's chains found intact */
    int64_t checkpoint_purged;  /* its chains whose checked record was purged since */
    int64_t signatures_checked;
    int64_t signatures_unchecked; /* signed, but no key given */
    bool broken;
    char first_break[512]; /* what and where, when broken */
};

/* Walks every chain (and what lies outside them) and reports the first break. BP_OK when the
 * walk finished, broken or not; an error only when it could not read, or the checkpoint text
 * does not parse (first_break says why). */
bp_err bp_trail_verify(struct bp_store *s, const struct bp_trail_verify_opts *o, struct bp_trail_report *r);

#endif
