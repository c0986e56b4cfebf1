#ifndef BP_AUTH_AUTH_H
#define BP_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth-t.h"
#include "lib/buf.h"
#include "lib/err.h"

/* Credentials (DESIGN §5): their formats (auth-t.h), API key digests and generation, scope
 * names, the credential and instance tables the request path reads, and the request path's
 * authentication (which header carries the credential, and what it is) and authorisation
 * against a pinned snapshot of those tables, which the caller passes in. */

/* Writes a fresh key ("blnk_" + 64 lowercase hex from 32 CSPRNG bytes) and NUL into out. */
bp_err bp_apikey_generate(char out[BP_APIKEY_LEN + 1]);
/* True when text is exactly "blnk_" + 64 lowercase hex digits. */
bool bp_apikey_is_well_formed(const char *text, size_t len);
/* True when text is exactly prefix + 64 lowercase hex digits (an OAuth token's shape). */
bool bp_auth_token_is_well_formed(const char *prefix, const char *text, size_t len);
/* SHA-256 of the bytes. */
void bp_digest(const void *text, size_t len, unsigned char out[BP_DIGEST_LEN]);

/* Parses a comma-separated scope list ("proxy:read,proxy:write", "*"), refusing unknown scopes
 * and empty items with BP_ERR_INVALID. *out_bits gets BP_SCOPE_* bits. */
bp_err bp_scopes_parse(const char *text, unsigned *out_bits);
/* Canonical text of scope bits ("*", "proxy:read", "proxy:read,proxy:write") into out. */
void bp_scopes_format(unsigned bits, char *out, size_t cap);

/* Where a credential may be used from and how fast (issue 12), as `key|client create|update` and
 * the admin API set them: each part only when it was given. */
struct bp_cred_limits {
    bool allow_set;
    char *allow_from; /* canonical ("10.0.0.0/8,2001:db8::/32"); NULL: any address */
    bool rate_set;
    char *rate_limit; /* canonical ("100/s", "0" = none); NULL: the server's rate_limit.default */
    int64_t burst;    /* 0: the rate's count */
};
void bp_cred_limits_cleanup(struct bp_cred_limits *l);
/* "any", or addresses and networks separated by commas (at most BP_ALLOW_FROM_MAX): false for a
 * bad or empty list, its first bad item (if any) in bad. */
bool bp_cred_limits_allow(struct bp_cred_limits *l, const char *text, char *bad, size_t bad_cap);
/* "<n>/s|m|h|d", "0" (no limit) or "default" (rate_limit.default): false when malformed. */
bool bp_cred_limits_rate(struct bp_cred_limits *l, const char *text);
/* Requests at once, with the rate given before: false unless 1..BP_RATE_COUNT_MAX and that rate
 * limits. */
bool bp_cred_limits_burst(struct bp_cred_limits *l, uint64_t burst);

/* The name of what a route needs ("proxy:read" or "proxy:write"), for a 403's challenge. */
const char *bp_scope_needed_name(unsigned needed);

/* A credential row's strings (auth-t.h): its id ("key_…", "token_…"), its name (the key's, or
 * the token's client name), and who acts for the audit log (the key's id, or the token's client
 * id). Valid as long as the row: while the snapshot that holds it is pinned. */
const char *bp_cred_id(const struct bp_cred *c);
const char *bp_cred_name(const struct bp_cred *c);
const char *bp_cred_actor_id(const struct bp_cred *c);

/* ---- Last-used stamps ----
 *
 * A request that authenticated notes its use (bp_auth_authenticate does): the row's stamp, and
 * for an API key, once per key per wall second, a note in the log that the watcher takes once a
 * second and writes to the store. The work follows the uses, never the number of keys. Any
 * thread. */
struct bp_used_log {
    struct bp_buf notes; /* per use: the int64 wall second, then the key id and its NUL */
    /* Uses were left out (the log was full): the keys used since `since` must be found by their
     * rows' stamps instead. */
    bool overflowed;
    int64_t since; /* wall second this log began: it holds every API key use from then on */
};

void bp_auth_note_use(const struct bp_cred *c, int64_t now_s);
/* Hands over the log so far (the caller cleans it up) and starts the next at now_s. */
void bp_auth_take_used(struct bp_used_log *out, int64_t now_s);
/* The next note from *pos (start at 0); false after the last. */
bool bp_used_log_next(const struct bp_used_log *log, size_t *pos, const char **out_id, int64_t *out_at);
void bp_used_log_cleanup(struct bp_used_log *log);

/* ---- The credential and instance tables (DESIGN §8) ----
 *
 * The read-mostly tables that loop threads share: credentials and instances, built from the
 * store by the watcher thread and published by an atomic pointer swap. A published snapshot is
 * immutable except for the credentials' last-used stamps, which are relaxed atomics.
 *
 * Threads: build/publish on the watcher thread; acquire/ref/release/lookup on any thread. A
 * pinned snapshot stays valid until its release, however many newer ones are published. */

struct bp_tables;
struct bp_key_rec;
struct bp_live_token;
struct bp_instance_rec;

/* Builds a snapshot from store records (copies everything it keeps). tokens are the live OAuth
 * access tokens (bp_store_token_list_live). */
bp_err bp_tables_build(const struct bp_key_rec *keys, size_t n_keys, const struct bp_live_token *tokens,
                       size_t n_tokens, const struct bp_instance_rec *insts, size_t n_insts,
                       struct bp_tables **out);
/* An empty unpublished snapshot (no credentials, no instances), to fill with the calls below:
 * how a full load puts rows in as the store hands them over. */
struct bp_tables *bp_tables_new(void);
/* Changes by delta (O(log32 N) each, never a copy of the table). bp_tables_edit gives a new
 * unpublished snapshot that shares everything with `from` (which stays unchanged and valid for
 * whoever pins it); the calls below change only an unpublished snapshot, then publish it.
 * put_* replaces the credential with the same digest; a row with unparseable scopes is refused
 * (BP_ERR_INVALID) and left out. remove_cred says whether the digest was there. */
struct bp_tables *bp_tables_edit(struct bp_tables *from);
bp_err bp_tables_put_key(struct bp_tables *t, const struct bp_key_rec *k);
bp_err bp_tables_put_token(struct bp_tables *t, const struct bp_live_token *tok);
bool bp_tables_remove_cred(struct bp_tables *t, const unsigned char digest[32]);
/* Takes out the access tokens expired at now (wall seconds) and returns how many. A token's
 * expiry logs no change (the request path checks it on every use), so the watcher calls this
 * now and then to keep them from piling up: O(N), hourly, not per change. API keys stay: an
 * expired key answers "expired", as the CLI lists it. */
size_t bp_tables_drop_expired_tokens(struct bp_tables *t, int64_t now);
/* Replaces the instance rows (few: they are rebuilt whole). */
void bp_tables_set_instances(struct bp_tables *t, const struct bp_instance_rec *insts, size_t n_insts);
/* Makes t the current snapshot (takes ownership) and drops the publisher's reference to the old one. */
void bp_tables_publish(struct bp_tables *t);
/* Pins the current snapshot; NULL before the first publish. Release with bp_tables_release. */
struct bp_tables *bp_tables_acquire(void);
/* Bumped by every publish: a thread that keeps a snapshot pinned re-acquires only when it moved. */
unsigned bp_tables_generation(void);
/* One more pin on a snapshot already pinned (no lock). */
struct bp_tables *bp_tables_ref(struct bp_tables *t);
/* NULL is a no-op. */
void bp_tables_release(struct bp_tables *t);
/* Drops the current snapshot at shutdown. */
void bp_tables_shutdown(void);

const struct bp_cred *bp_tables_find_cred(const struct bp_tables *t, const unsigned char digest[32]);
const struct bp_instance *bp_tables_find_instance(const struct bp_tables *t, const char *id, size_t len);
size_t bp_tables_cred_count(const struct bp_tables *t);
size_t bp_tables_instance_count(const struct bp_tables *t);
/* The i-th instance row (sorted by id), i < bp_tables_instance_count(t). */
const struct bp_instance *bp_tables_instance_at(const struct bp_tables *t, size_t i);
/* Calls fn on every credential (in digest order); used by the last-used flusher. */
void bp_tables_each_cred(struct bp_tables *t, void (*fn)(struct bp_cred *c, void *arg), void *arg);
/* Trie nodes allocated by this process so far (a diagnostic: what one change costs). */
size_t bp_tables_nodes_allocated(void);

/* ---- Authentication and authorisation on the request path (DESIGN §2, §5) ---- */

/* True when text has the exact format of a blnkproxy credential that authorises requests: an
 * API key ("blnk_" + 64 lowercase hex) or an OAuth access token ("blnk_at_" + 64 lowercase hex).
 * A refresh token, a client secret, a Core secret or anything else is not one. */
bool bp_auth_is_credential(const char *text, size_t len);

/* The headers of a request that may carry its credential (DESIGN §2): for each name, the value
 * of the first such header (NULL when there is none) and how many there were. */
struct bp_auth_headers {
    const char *authorization;
    size_t authorization_len;
    size_t n_authorization;
    const char *blnk_key; /* X-Blnk-Key, as the official Blnk SDKs send their key */
    size_t blnk_key_len;
    size_t n_blnk_key;
};

/* Resolves the request's credential (DESIGN §2). Authorization wins when present: "Bearer" and
 * the credential, exactly one such header. Without Authorization, a single X-Blnk-Key whose value
 * is a credential (bp_auth_is_credential) is taken as one, exactly as if it came as Bearer; any
 * other X-Blnk-Key is not a credential (the request has none). Either way the caller never
 * forwards X-Blnk-Key. Returns BP_OK with *out set, or BP_ERR_AUTH_MISSING (none),
 * BP_ERR_AUTH_INVALID_KEY (not Bearer, malformed, unknown, revoked API key, or several
 * Authorization headers), BP_ERR_AUTH_EXPIRED_KEY, BP_ERR_AUTH_INVALID_TOKEN (a "blnk_at_"
 * access token that is malformed, unknown, expired or revoked — revoked tokens and tokens of
 * revoked clients are not in the table at all — or a refresh token as Bearer). On failure *out
 * is the credential that was found but refused (expired or revoked; for the audit log's actor)
 * or NULL, and *why (may be NULL) says why. Records the use (last_used_at) on success. No
 * allocation, no I/O. */
bp_err bp_auth_authenticate(const struct bp_tables *t, const struct bp_auth_headers *h, int64_t now_s,
                            const struct bp_cred **out, enum bp_auth_failure *why);
/* BP_OK when the credential's scopes cover needed (BP_SCOPE_* bits), else BP_ERR_AUTH_SCOPE. */
bp_err bp_auth_check_scope(const struct bp_cred *c, unsigned needed);
/* The credential's instance restriction, NULL when it may use every instance. */
const struct bp_instance_list *bp_cred_instances(const struct bp_cred *c);
/* BP_OK when the credential may be used from addr (the client's address as text, "192.0.2.1" or
 * "2001:db8::1"), else BP_ERR_AUTH_IP_NOT_ALLOWED: addr is outside the credential's allow-list,
 * or not an address at all (a Unix socket's peer has none) while the credential has a list. */
bp_err bp_auth_check_peer(const struct bp_cred *c, const char *addr);
/* BP_OK when the credential may use the instance, else BP_ERR_AUTH_INSTANCE. */
bp_err bp_auth_check_instance(const struct bp_cred *c, const char *id, size_t len);
/* DESIGN §2: the instance of a request without instance_id. BP_OK with *out_id (the credential's,
 * NUL-terminated, valid as long as the credential) when the credential is restricted to exactly
 * one instance; else BP_ERR_MISSING_INSTANCE_ID and, when why is not NULL, *why is a fixed
 * reason for the client saying why none is implied. */
bp_err bp_auth_implied_instance(const struct bp_cred *c, const char **out_id, const char **why);

#endif
