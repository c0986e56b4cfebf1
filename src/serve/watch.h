#ifndef BP_SERVE_WATCH_H
#define BP_SERVE_WATCH_H

#include <stdint.h>

#include "lib/err.h"

/* The change watcher: one thread that polls the store for external commits (SQLite
 * PRAGMA data_version), rebuilds and publishes the credential and instance tables within the
 * reload interval (DESIGN §5: ≤ 2 s), flushes last-used stamps in batches, purges expired OAuth
 * rows about once an hour, and reports store readiness. It owns its own store connection;
 * nothing else touches it. */

struct bp_store;
struct bp_server;
struct bp_watch;

/* Loads and publishes the tables once, synchronously: the server must not accept before.
 * *out_token is the store's change token read before loading, for bp_watch_start. */
bp_err bp_watch_load_now(struct bp_store *store, int64_t *out_token);
/* Starts the thread. It takes ownership of store. server may be NULL (no readiness reports).
 * token is the one bp_watch_load_now returned. */
bp_err bp_watch_start(struct bp_store *store, struct bp_server *server, int64_t interval_ms, int64_t token,
                      struct bp_watch **out);
/* Asks the watcher for an immediate reload and waits until a reload that began after this call
 * has been published, or timeout_ms passed. Any thread (the OAuth threads call it after issuing
 * a token). */
void bp_watch_sync(struct bp_watch *w, int64_t timeout_ms);
/* Stops the thread after a final last-used flush and closes the store. */
void bp_watch_stop(struct bp_watch *w);

#endif
