#ifndef BP_SERVE_WATCH_H
#define BP_SERVE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

/* The change watcher: one thread that notices changes committed to the store by any process
 * (the CLI, another server) and rebuilds and publishes the credential and instance tables. It
 * wakes on file events for the database and its -wal file (inotify; SQLite) or on the change
 * log's notifications (a LISTEN connection of its own; PostgreSQL), so a change made by the CLI
 * is published within a few milliseconds, usually before the CLI has exited; it also polls every
 * reload interval, as the fallback where no file events arrive (e.g. network filesystems) and
 * while the notification connection is down (a check follows its return). It
 * rebuilds only when the store's change seq moved (bp_store_change_seq): audit writes and
 * last-used stamps never cause a rebuild. It also flushes last-used stamps in batches, purges
 * expired OAuth rows and old change-log rows about once an hour, and reports store readiness.
 * It owns its own store connection; nothing else touches it. */

struct bp_store;
struct bp_server;
struct bp_watch;

/* Loads and publishes the tables once, synchronously: the server must not accept before.
 * *out_token is the store's change position read before loading (opaque), for bp_watch_start. */
bp_err bp_watch_load_now(struct bp_store *store, int64_t *out_token);
struct bp_watch_opts {
    int64_t interval_ms; /* the timed poll */
    int64_t token;       /* what bp_watch_load_now returned, when loaded */
    bool loaded;         /* false: the store was unreachable at start (PostgreSQL); the thread
                            migrates and loads as soon as it answers, and reports readiness as
                            "starting" until then */
    const char *node;    /* this server's node name, for its report in the store; copied */
};

/* Starts the thread. It takes ownership of store. server may be NULL (no readiness reports).
 * Registers this server in the store (see bp_watch_wait_applied) before it returns, when the
 * store answers. */
bp_err bp_watch_start(struct bp_store *store, struct bp_server *server, const struct bp_watch_opts *opts,
                      struct bp_watch **out);
/* Asks the watcher for an immediate check and waits until a check that began after this call
 * has finished (and, when the store had changed, its reload is published), or timeout_ms
 * passed. Any thread (the OAuth threads call it after issuing a token). */
void bp_watch_sync(struct bp_watch *w, int64_t timeout_ms);
/* The change seq that the tables this server has published include (any thread). */
int64_t bp_watch_applied_seq(struct bp_watch *w);
/* How many full reloads the watcher made since start (its other publishes applied change-log
 * rows as deltas); counted before the seq they publish is reported. For tests and diagnostics. */
int64_t bp_watch_full_reloads(struct bp_watch *w);
/* Stops the thread after a final last-used flush, removes this server's report from the store
 * and closes the store. */
void bp_watch_stop(struct bp_watch *w);

/* For a process that has just committed a change (the CLI), on its own store connection: waits
 * until every running server that uses this store has published tables that include change
 * seq `seq` (bp_store_change_seq after the commit), or until timeout_ms passed. *out_behind gets
 * how many running servers had not by then: 0 when all had, or when none runs. A server counts
 * as running while it reports (at least every 10 s) and, on this host, while its process exists;
 * each reports its progress right after publishing, so the wait is usually a few milliseconds.
 * Sleeps between looks: never call it on a loop thread. */
bp_err bp_watch_wait_applied(struct bp_store *store, int64_t seq, int64_t timeout_ms, size_t *out_behind);

struct bp_watcher_rec;
/* What a server's report says of it at now_s (wall seconds), as bp_watch_wait_applied judges it:
 * "live" (reported within a minute), "stale" (no report for a minute: presumed dead, not
 * waited for), or "gone" (on this host, and its process no longer exists). Static text. */
const char *bp_watch_row_state(const struct bp_watcher_rec *r, int64_t now_s);

#endif
