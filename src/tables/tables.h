#ifndef BP_TABLES_TABLES_H
#define BP_TABLES_TABLES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "store/store.h"

/* The read-mostly tables that loop threads share (DESIGN §8): credentials and instances, built
 * from the store by the watcher thread and published by an atomic pointer swap. A published
 * snapshot is immutable except for the credentials' last-used stamps, which are relaxed atomics.
 *
 * Threads: build/publish on the watcher thread; acquire/release/lookup on any thread. A pinned
 * snapshot stays valid until its release, however many newer ones are published meanwhile. */

struct bp_secret;

enum bp_cred_kind { BP_CRED_API_KEY = 1, BP_CRED_ACCESS_TOKEN = 2 };

struct bp_cred {
    enum bp_cred_kind kind;
    char *id;                  /* "key_…" or "token_…" */
    char *actor_id;            /* who acts, for the audit log: the key id, or the token's client id */
    char *name;                /* the key's name, or the token's client name */
    unsigned char digest[32];  /* SHA-256 of the presented key */
    unsigned scopes;           /* BP_SCOPE_* bits */
    char **instances;          /* NULL when unrestricted */
    size_t n_instances;
    int64_t expires_at;        /* wall seconds, 0 = never */
    bool revoked;
    atomic_llong used_at;      /* wall seconds of the latest use in this process, 0 = none */
};

struct bp_instance {
    char *id;
    char *url;                 /* base URL without trailing '/' */
    struct bp_secret *secret;  /* Core secret key, NULL when none */
    char *ca_file;             /* NULL: system CAs */
    bool enabled;
};

struct bp_tables;

/* Builds a snapshot from store records (copies everything it keeps). tokens are the live OAuth
 * access tokens (bp_store_token_list_live). */
bp_err bp_tables_build(const struct bp_key_rec *keys, size_t n_keys, const struct bp_live_token *tokens,
                       size_t n_tokens, const struct bp_instance_rec *insts, size_t n_insts,
                       struct bp_tables **out);
/* Makes t the current snapshot (takes ownership) and drops the publisher's reference to the old one. */
void bp_tables_publish(struct bp_tables *t);
/* Pins the current snapshot; NULL before the first publish. Release with bp_tables_release. */
struct bp_tables *bp_tables_acquire(void);
void bp_tables_release(struct bp_tables *t);
/* Drops the current snapshot at shutdown. */
void bp_tables_shutdown(void);

const struct bp_cred *bp_tables_find_cred(const struct bp_tables *t, const unsigned char digest[32]);
const struct bp_instance *bp_tables_find_instance(const struct bp_tables *t, const char *id, size_t len);
size_t bp_tables_cred_count(const struct bp_tables *t);
/* Walks credentials; used by the last-used flusher. */
struct bp_cred *bp_tables_cred_at(struct bp_tables *t, size_t i);

#endif
