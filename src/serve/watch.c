/* Change watcher thread (see watch.h).
 *
 * What wakes it on PostgreSQL: a notification. A second connection (bp_store_listener) LISTENs
 * for the NOTIFY that the change log's triggers send at every change, from any node or CLI; its
 * socket is in the thread's poll set, and a notification starts one check at once (PostgreSQL
 * delivers it after the commit, so no settling is needed, and only real changes notify, so no
 * rationing either). When that connection is lost, notifications sent meanwhile are lost too: the
 * listener reconnects with a backoff, and its return starts a check, which catches up from the
 * change seq. The timed poll stays as the safety net meanwhile.
 *
 * What wakes it on SQLite. SQLite has no cross-process notification, but every commit writes a file: the
 * -wal file in WAL mode, the database file otherwise (and a checkpoint copies into it). The
 * thread sleeps in poll() on an inotify descriptor watching both files, so it wakes as soon as
 * any process (the CLI, another server, this server's audit writer) writes a commit, and also
 * when a process that had them open for writing closes them: the CLI closes the database after
 * its COMMIT and before it exits, so that event comes after the commit is fully visible. The
 * timed poll (reload_interval) stays as the fallback for filesystems that deliver no events
 * (network mounts) and for inotify being unavailable (e.g. out of instances).
 *
 * What a check costs. The change token (PRAGMA data_version plus this connection's own write
 * count) says whether anything was committed; only then the change seq (MAX(seq) of the change
 * log that the store's triggers fill) says whether a credential, token or instance changed; only
 * then the tables are rebuilt. Audit batches and our own last-used flushes move the token but
 * never the seq, so under traffic the watcher reads two small values per check and rebuilds
 * nothing.
 *
 * Coalescing. One commit is several writes and SQLite publishes it only after the last, so an
 * event-driven check runs EVENT_DELAY_US after the first event of a burst. A busy audit writer
 * produces a stream of events that never change the seq: after events led to a check that found
 * nothing new, the thread stops listening for EVENT_GAP_US and then takes whatever queued
 * meanwhile (the kernel merges repeats) in one check, so the audit writer costs at most one check
 * and one wake-up per EVENT_GAP_US. An event can still come before its commit is published (the writer
 * preempted between its last write and SQLite's shared-index update), so a check that followed
 * events is repeated a few times shortly after (SETTLE_US) while no further event comes. Idle,
 * the thread sleeps in ppoll() until the timed poll: no busy waiting.
 *
 * Reports. Waking fast is not enough for a script that runs `key create` and uses the key at
 * once: on a loaded machine the watcher thread may get the CPU only after the CLI has exited and
 * the script's request has been answered with the old tables. So each server reports in the store
 * how far it has applied the change log, and the CLI waits for those reports before it returns
 * (bp_watch_wait_applied, "reports" below).
 *
 * Why bp_watch_sync: an access token is handed to its client the moment /oauth/token answers;
 * if the client calls /proxy/ before the watcher noticed the commit, the token would not be in
 * the table yet and the request would get a 401 for a token we just issued. The OAuth thread
 * therefore wakes the watcher and waits for a check that began after its commit before it
 * releases the response.
 *
 * Expired tokens need no timed reload: expiry is checked on every request against the clock. */
#include "serve/watch.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "core/log.h"
#include "http/http.h"
#include "lib/alloc.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/rand.h"
#include "lib/sdnotify.h"
#include "lib/version.h"
#include "limits/limits.h"
#include "metrics/metrics.h"
#include "store/store.h"

#define FLUSH_INTERVAL_MS 1000
#define PURGE_INTERVAL_MS (3600 * 1000)
/* Expired OAuth rows are kept a day, so introspection and logs near the expiry still see them. */
#define PURGE_GRACE_S (24 * 3600)
/* Change-log rows are kept a day: enough for a later reader that applies them as deltas to
 * catch up after a pause, small enough to stay a small table. */
#define CHANGES_KEEP_S (24 * 3600)
/* Change rows read per query while applying deltas. */
#define DELTA_BATCH 1000
/* Behind by more than this many seqs, a full reload is cheaper than the deltas (a bulk import,
 * a restore): each delta costs a query, a full reload one pass. */
#define DELTA_MAX 20000
/* An event-driven check runs this long after the first event of a burst: one commit is several
 * writes some tens of microseconds apart, and SQLite publishes it only after the last one, so a
 * check at the first write would find nothing yet. */
#define EVENT_DELAY_US 300
/* After file events led to a check that found nothing new, further events wait this long: a busy
 * audit writer then costs at most one check per EVENT_GAP_US. A check that published a change
 * starts no such wait, so changes arriving one after another are each seen at once; a change
 * that lands just after an audit commit is seen up to this much later. */
#define EVENT_GAP_US 10000
/* Re-checks after an event-driven check, in microseconds after it, while no new event arrives:
 * a writer preempted between its last write and publishing the commit is seen within these
 * instead of at the next timed poll. */
static const int64_t SETTLE_US[] = {2000, 10000, 50000};
/* A running server reports its progress at every reload and at least this often, so that its
 * row tells a live server from one that died without removing it. */
#define HEARTBEAT_MS (10 * 1000)
/* A report that failed is tried again after this long. */
#define REPORT_RETRY_MS 1000
/* A report older than this is from a server presumed dead (the CLI stops waiting for it). */
#define REPORT_STALE_S 60
/* Rate limits are shared by the nodes that reported within this (three heartbeats), counted
 * this often (issue 12): a node that stops is out of the count within about half a minute,
 * meanwhile the others allow a little less than the limit, never more. */
#define NODE_LIVE_S 30
#define SHARE_INTERVAL_MS (5 * 1000)
/* Rows of servers that stopped reporting are deleted after a day. */
#define REPORT_FORGET_S (24 * 3600)
#define HOST_MAX 256
#define MAX_FILES 2
#define FILE_EVENTS (IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF)

struct watched_file {
    const char *path; /* borrowed from the store */
    int wd;           /* inotify watch descriptor, -1 when not watched (yet) */
};

struct bp_watch {
    struct bp_store *store;
    /* PostgreSQL: the connection that LISTENs for the change log's notifications; NULL on
     * SQLite, whose commits are seen through file events. */
    struct bp_store_listener *listener;
    bool notified;        /* the listener asked for a check (watcher thread only) */
    bool loaded;          /* tables were published from the store at least once */
    int64_t next_wait_log_ms; /* monotonic: when "still waiting for the store" may be logged again */
    char node[256];       /* this server's node_name, for its report */
    int64_t started_at;   /* wall seconds, for its report */
    bool listener_warned; /* a loss of the listener was logged and not yet its return */
    struct bp_server *server;
    int64_t interval_ms;
    pthread_t thread;
    int wake_fd;    /* eventfd: bp_watch_sync and bp_watch_stop wake the thread */
    int inotify_fd; /* -1: timed poll only */
    struct watched_file files[MAX_FILES];
    size_t n_files;
    pthread_mutex_t lock;
    pthread_cond_t done_cond; /* bp_watch_sync callers wait on it */
    bool stop;                /* under lock */
    bool sync_wanted;         /* under lock: a bp_watch_sync waits for a check */
    int64_t cycles_started;   /* under lock */
    int64_t cycles_done;      /* under lock: the latest check whose reload (if any) is published */
    /* The watcher thread's own state. */
    bool have_token; /* false until the first check: the token is then unknown */
    int64_t token;   /* change token when the tables last matched the store */
    int64_t seq;     /* change seq the published tables were built from */
    _Atomic int64_t published_seq; /* seq, for other threads (bp_watch_applied_seq) */
    int64_t reloads;        /* publishes, full or by delta */
    /* Of those, full: the first load, and whenever deltas cannot do. Written by the watcher
     * thread before it reports the seq, read by others (bp_watch_full_reloads). */
    _Atomic int64_t full_reloads;
    int64_t last_purge_ms; /* monotonic; 0 = never */
    int64_t last_share_ms; /* monotonic: when the rate limits' node count was last taken */
    /* This server's row in the store's watchers table (see "reports" below). */
    char id[sizeof("watcher_") + BP_ULID_LEN];
    char host[HOST_MAX];
    int64_t reported_seq;   /* -1 until a report succeeded */
    int64_t last_report_ms; /* monotonic: the latest attempt, successful or not */
    bool report_ok;         /* the latest attempt succeeded (a failure is logged once) */
    /* The last-used flush: 0, or the wall second from which stamps must be found by walking the
     * tables (a failed write, an overflowed log). */
    int64_t walk_from;
};

static bp_err
put_key(const struct bp_key_rec *k, void *arg)
{
    (void)bp_tables_put_key(arg, k); /* a malformed row is left out, as documented */
    return BP_OK;
}

/* A full load: every key goes from the store's row straight into the new snapshot, never into
 * a list of records first (at a million keys that list alone was 300 MiB at start-up). */
static bp_err
load_tables(struct bp_store *store)
{
    struct bp_live_token *tokens = NULL;
    struct bp_instance_rec *insts = NULL;
    size_t n_tokens = 0;
    size_t n_insts = 0;
    struct bp_tables *t = bp_tables_new();
    int64_t start_ms = bp_clock_mono_ms();
    int64_t keys_ms;
    size_t n_creds;
    bp_err rc;

    rc = bp_store_key_each(store, put_key, t);
    if (rc != BP_OK) {
        goto done;
    }
    keys_ms = bp_clock_mono_ms() - start_ms;
    rc = bp_store_token_list_live(store, bp_clock_wall_s(), &tokens, &n_tokens);
    if (rc != BP_OK) {
        goto done;
    }
    rc = bp_store_instance_list(store, &insts, &n_insts);
    if (rc != BP_OK) {
        goto done;
    }
    for (size_t i = 0; i < n_tokens; i++) {
        (void)bp_tables_put_token(t, &tokens[i]);
    }
    bp_tables_set_instances(t, insts, n_insts);
    n_creds = bp_tables_cred_count(t);
    bp_tables_publish(t);
    t = NULL;
    bp_metrics_tables_published(n_creds, n_insts);
    /* A full load is rare after start-up (changes are deltas), and its time is what start-up
     * and recovery wait for: worth a line. */
    BP_DEBUG("credential tables loaded", BP_LINT("credentials", n_creds), BP_LINT("instances", n_insts),
             BP_LINT("keys_ms", keys_ms), BP_LINT("total_ms", bp_clock_mono_ms() - start_ms));
done:
    bp_tables_release(t);
    bp_live_tokens_free(tokens, n_tokens);
    bp_instance_recs_free(insts, n_insts);
    /* The store's own buffers were allocated between the table's rows: give the pages they
     * leave free back to the system, or a full load's transient stays in RSS for good. */
    malloc_trim(0);
    return rc;
}

bp_err
bp_watch_load_now(struct bp_store *store, int64_t *out_token)
{
    int64_t seq = 0;
    /* The seq is read before the tables: a change committed in between is then seen again by the
     * first check, never lost. */
    bp_err rc = bp_store_change_seq(store, &seq);

    if (rc != BP_OK) {
        return rc;
    }
    rc = load_tables(store);
    if (rc == BP_OK) {
        *out_token = seq;
    }
    return rc;
}

/* ---- applying the change log as deltas ----
 *
 * Each change row names an entity; applying it reads that entity's current state and puts it
 * into (or takes it out of) a new snapshot that shares everything else with the current one
 * (auth.h, bp_tables_edit): the cost is a few queries and O(log32 N) trie nodes, whatever the
 * number of credentials. Reading the current state (not the state at that seq) is what makes
 * this exact: applying a row twice, or a row whose entity changed again since, publishes the
 * entity as it is now, and the later row is applied the same way.
 *
 * What a delta cannot do, a full reload does: an entity whose row is gone (deleted: its digest
 * is no longer known), a kind this binary does not know, and a log that no longer holds every
 * row after our position (purged: the first seq it holds is past ours + 1). */

enum delta_result { DELTA_APPLIED, DELTA_NEED_FULL, DELTA_FAILED };

/* Puts or removes the token rows of one access-token or client change. */
static enum delta_result
apply_tokens(struct bp_store *store, struct bp_tables *t, int64_t now, const char *token_id, const char *client_id)
{
    struct bp_live_token *toks = NULL;
    size_t n = 0;

    if (bp_store_token_list_changed(store, now, token_id, client_id, &toks, &n) != BP_OK) {
        return DELTA_FAILED;
    }
    if (token_id != NULL && n == 0) {
        bp_live_tokens_free(toks, n); /* PostgreSQL hands out an empty array */
        return DELTA_NEED_FULL; /* the row was deleted: which digest to take out is unknown */
    }
    for (size_t i = 0; i < n; i++) {
        if (!toks[i].live || bp_tables_put_token(t, &toks[i]) != BP_OK) {
            (void)bp_tables_remove_cred(t, toks[i].digest);
        }
    }
    bp_live_tokens_free(toks, n);
    return DELTA_APPLIED;
}

static enum delta_result
apply_change(struct bp_store *store, struct bp_tables *t, const struct bp_change_rec *c, int64_t now,
             bool *insts_changed)
{
    if (strcmp(c->kind, "api_key") == 0) {
        struct bp_key_rec k;
        bp_err rc = bp_store_key_get(store, c->entity_id, &k);
        if (rc == BP_ERR_NOT_FOUND) {
            return DELTA_NEED_FULL;
        }
        if (rc != BP_OK) {
            return DELTA_FAILED;
        }
        /* Revoked and expired keys stay in the table: the request path tells them apart. */
        if (bp_tables_put_key(t, &k) != BP_OK) {
            (void)bp_tables_remove_cred(t, k.digest);
        }
        bp_key_rec_cleanup(&k);
        return DELTA_APPLIED;
    }
    if (strcmp(c->kind, "access_token") == 0) {
        return apply_tokens(store, t, now, c->entity_id, NULL);
    }
    if (strcmp(c->kind, "oauth_client") == 0) {
        /* Its name, restriction and expiry live in its tokens' rows of the table. */
        return apply_tokens(store, t, now, NULL, c->entity_id);
    }
    if (strcmp(c->kind, "instance") == 0) {
        *insts_changed = true; /* few: rebuilt whole once per batch */
        return DELTA_APPLIED;
    }
    return DELTA_NEED_FULL;
}

/* Applies the change rows after *seq and publishes the result; *seq moves to the last row
 * applied. DELTA_NEED_FULL when only a full reload can bring the tables up to date. */
static enum delta_result
apply_deltas(struct bp_store *store, int64_t *seq, int64_t target)
{
    struct bp_tables *cur = bp_tables_acquire();
    struct bp_tables *t = NULL;
    int64_t at = *seq;
    int64_t now = bp_clock_wall_s();
    bool insts_changed = false;
    enum delta_result res = DELTA_APPLIED;

    if (cur == NULL || target - at > DELTA_MAX) {
        res = DELTA_NEED_FULL;
        goto done;
    }
    t = bp_tables_edit(cur);
    for (;;) {
        struct bp_change_rec *rows = NULL;
        size_t n = 0;
        int64_t first = 0;
        if (bp_store_changes_since(store, at, DELTA_BATCH, &rows, &n, &first) != BP_OK) {
            res = DELTA_FAILED;
            goto done;
        }
        if (n > 0 && first > at + 1) {
            /* The rows between may have been purged: we cannot prove we have them all. */
            bp_change_recs_free(rows, n);
            res = DELTA_NEED_FULL;
            goto done;
        }
        for (size_t i = 0; i < n && res == DELTA_APPLIED; i++) {
            res = apply_change(store, t, &rows[i], now, &insts_changed);
            at = rows[i].seq;
        }
        bp_change_recs_free(rows, n);
        if (res != DELTA_APPLIED) {
            goto done;
        }
        if (n < DELTA_BATCH) {
            break;
        }
    }
    if (insts_changed) {
        struct bp_instance_rec *insts = NULL;
        size_t n_insts = 0;
        if (bp_store_instance_list(store, &insts, &n_insts) != BP_OK) {
            res = DELTA_FAILED;
            goto done;
        }
        bp_tables_set_instances(t, insts, n_insts);
        bp_instance_recs_free(insts, n_insts);
    }
    bp_metrics_tables_published(bp_tables_cred_count(t), bp_tables_instance_count(t));
    bp_tables_publish(t);
    t = NULL;
    *seq = at;
done:
    bp_tables_release(t);
    bp_tables_release(cur);
    return res;
}

/* ---- reports: how far each running server has applied the change log ----
 *
 * A change is in effect only once every running server has published it, and only the servers
 * know when that is. Each server keeps one row in the store's watchers table with the change
 * seq its published tables include, written right after each publish and as a heartbeat while
 * idle, and deleted when it stops. A process that just committed a change (the CLI) waits in
 * bp_watch_wait_applied until every live row has reached its seq: the file events make that a
 * matter of milliseconds, the rows make it certain, even when the watcher thread is scheduled
 * after the CLI has exited and the caller's next request is already on its way. */

int64_t
bp_watch_applied_seq(struct bp_watch *w)
{
    return atomic_load(&w->published_seq);
}

static void
report(struct bp_watch *w)
{
    /* Every publish is followed by a report: the place to let other threads know the seq. */
    atomic_store(&w->published_seq, w->seq);
    struct bp_watcher_rec rec = {
        .id = w->id,
        .host = w->host,
        .pid = (int64_t)getpid(),
        .seq = w->seq,
        .seen_at = bp_clock_wall_s(),
        .node = w->node,
        .version = (char *)bp_version_get(),
        .started_at = w->started_at,
    };

    w->last_report_ms = bp_clock_mono_ms();
    if (bp_store_watcher_put(w->store, &rec) != BP_OK) {
        if (w->report_ok) {
            BP_WARN("could not report the applied change position in the store; the CLI waits up to 2 s "
                    "for this server until a report succeeds",
                    BP_LSTR("error", bp_store_last_error(w->store)));
        }
        w->report_ok = false;
        return;
    }
    w->report_ok = true;
    w->reported_seq = w->seq;
}

static void
host_name(char out[HOST_MAX])
{
    if (gethostname(out, HOST_MAX) != 0) {
        out[0] = '\0';
    }
    out[HOST_MAX - 1] = '\0';
}

/* Whether the row is from a server that still runs: it reported recently and, on this host, its
 * process exists. */
static bool
row_is_live(const struct bp_watcher_rec *r, const char *host, int64_t now_s);

const char *
bp_watch_row_state(const struct bp_watcher_rec *r, int64_t now_s)
{
    char host[HOST_MAX];

    host_name(host);
    if (strcmp(r->host, host) == 0 && kill((pid_t)r->pid, 0) != 0 && errno == ESRCH) {
        return "gone";
    }
    return row_is_live(r, host, now_s) ? "live" : "stale";
}

static bool
row_is_live(const struct bp_watcher_rec *r, const char *host, int64_t now_s)
{
    if (r->seen_at < now_s - REPORT_STALE_S) {
        return false;
    }
    if (strcmp(r->host, host) == 0 && kill((pid_t)r->pid, 0) != 0 && errno == ESRCH) {
        return false;
    }
    return true;
}

/* Deletes the rows of servers that are gone: dead processes on this host, and rows nobody
 * refreshed for a day (other hosts). Not our own. */
static void
forget_dead_rows(struct bp_watch *w)
{
    struct bp_watcher_rec *rows = NULL;
    size_t n = 0;
    int64_t now_s = bp_clock_wall_s();

    if (bp_store_watcher_list(w->store, &rows, &n) != BP_OK) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        bool dead = rows[i].seen_at < now_s - REPORT_FORGET_S ||
                    (strcmp(rows[i].host, w->host) == 0 && !row_is_live(&rows[i], w->host, now_s));
        if (dead && strcmp(rows[i].id, w->id) != 0) {
            bp_store_watcher_delete(w->store, rows[i].id);
        }
    }
    bp_watcher_recs_free(rows, n);
}

/* Counts the live nodes for the rate limits' shares (limits/limits.h) and forgets the limits'
 * idle entries. A store that does not answer keeps the count it had. */
static void
share_limits(struct bp_watch *w)
{
    struct bp_watcher_rec *rows = NULL;
    size_t n = 0;
    unsigned live = 0;
    int64_t now_s = bp_clock_wall_s();

    w->last_share_ms = bp_clock_mono_ms();
    bp_limits_sweep(bp_clock_mono_us());
    if (bp_store_watcher_list(w->store, &rows, &n) != BP_OK) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        live += rows[i].seen_at >= now_s - NODE_LIVE_S && row_is_live(&rows[i], w->host, now_s);
    }
    bp_watcher_recs_free(rows, n);
    live = live > 0 ? live : 1; /* this node, before its first report */
    if (live != bp_limits_nodes()) {
        BP_INFO("rate limits are shared by the live nodes", BP_LINT("nodes", (int64_t)live));
    }
    bp_limits_set_nodes(live);
    bp_metrics_rate_limit_nodes(live);
}

/* Sleeps ms milliseconds (the CLI's wait; never on a loop thread). */
static void
sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

bp_err
bp_watch_wait_applied(struct bp_store *store, int64_t seq, int64_t timeout_ms, size_t *out_behind)
{
    char host[HOST_MAX];
    int64_t start_ms = bp_clock_mono_ms();

    host_name(host);
    for (;;) {
        struct bp_watcher_rec *rows = NULL;
        size_t n = 0;
        size_t behind = 0;
        int64_t now_s = bp_clock_wall_s();
        bp_err rc = bp_store_watcher_list(store, &rows, &n);

        if (rc != BP_OK) {
            return rc;
        }
        for (size_t i = 0; i < n; i++) {
            if (rows[i].seq < seq && row_is_live(&rows[i], host, now_s)) {
                behind++;
            }
        }
        bp_watcher_recs_free(rows, n);
        if (behind == 0 || bp_clock_mono_ms() - start_ms >= timeout_ms) {
            *out_behind = behind;
            return BP_OK;
        }
        /* A server publishes within a few milliseconds: look every millisecond at first (a look
         * is one small read), then less often for a server that is slow to answer. */
        sleep_ms(bp_clock_mono_ms() - start_ms < 50 ? 1 : 10);
    }
}

/* Expired access tokens leave the tables here: their expiry logs no change row, and a full
 * reload (which used to leave them out) is now rare. */
static void
drop_expired_tokens(void)
{
    struct bp_tables *cur = bp_tables_acquire();
    struct bp_tables *t;
    size_t n;

    if (cur == NULL) {
        return;
    }
    t = bp_tables_edit(cur);
    bp_tables_release(cur);
    n = bp_tables_drop_expired_tokens(t, bp_clock_wall_s());
    if (n == 0) {
        bp_tables_release(t);
        return;
    }
    bp_metrics_tables_published(bp_tables_cred_count(t), bp_tables_instance_count(t));
    bp_tables_publish(t);
    BP_DEBUG("expired access tokens taken out of the tables", BP_LINT("tokens", (int64_t)n));
}

static void
maybe_purge(struct bp_watch *w)
{
    int64_t now_ms = bp_clock_mono_ms();

    if (w->last_purge_ms != 0 && now_ms - w->last_purge_ms < PURGE_INTERVAL_MS) {
        return;
    }
    w->last_purge_ms = now_ms;
    if (bp_store_oauth_purge(w->store, bp_clock_wall_s() - PURGE_GRACE_S) != BP_OK) {
        BP_WARN("could not purge expired OAuth tokens, codes and sessions");
    }
    if (bp_store_change_purge(w->store, bp_clock_wall_s() - CHANGES_KEEP_S) != BP_OK) {
        BP_WARN("could not purge old rows of the change log");
    }
    drop_expired_tokens();
    forget_dead_rows(w);
}

static void
deadline_after(int64_t ms, struct timespec *out)
{
    clock_gettime(CLOCK_MONOTONIC, out);
    out->tv_nsec += (long)(ms % 1000) * 1000000L;
    out->tv_sec += (time_t)(ms / 1000) + out->tv_nsec / 1000000000L;
    out->tv_nsec %= 1000000000L;
}

/* The stamps of one flush. */
struct flush {
    int64_t from; /* the table walk's: stamps at or after this wall second */
    const char **ids;
    int64_t *at;
    size_t n;
    size_t cap;
};

static void
flush_add(struct flush *f, const char *id, int64_t at)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->ids = bp_realloc(f->ids, f->cap * sizeof(*f->ids));
        f->at = bp_realloc(f->at, f->cap * sizeof(*f->at));
    }
    f->ids[f->n] = id;
    f->at[f->n] = at;
    f->n++;
}

static void
flush_collect(struct bp_cred *c, void *arg)
{
    struct flush *f = arg;
    unsigned used = atomic_load_explicit(&c->used_at, memory_order_relaxed);

    if (c->kind == BP_CRED_API_KEY && used != 0 && used >= f->from) {
        flush_add(f, bp_cred_id(c), used);
    }
}

/* Writes the API key uses noted since the previous flush (auth.h: the work follows the uses).
 * Only when the log overflowed, or the previous write failed, are the stamps found by walking
 * the tables instead, from when the missing notes began: nothing is lost either way. Only API
 * keys keep a last-used time in the store; access tokens are short-lived and have none. */
static void
flush_last_used(struct bp_watch *w)
{
    struct bp_used_log log;
    struct flush f = {.from = w->walk_from};
    struct bp_tables *t = NULL;
    const char *id;
    int64_t at;
    size_t pos = 0;

    bp_auth_take_used(&log, bp_clock_wall_s());
    if (log.overflowed && (f.from == 0 || log.since < f.from)) {
        f.from = log.since;
    }
    while (bp_used_log_next(&log, &pos, &id, &at)) {
        flush_add(&f, id, at);
    }
    if (f.from != 0 && (t = bp_tables_acquire()) != NULL) {
        bp_tables_each_cred(t, flush_collect, &f);
    }
    if (f.n > 0 && bp_store_key_touch(w->store, f.ids, f.at, f.n) != BP_OK) {
        BP_WARN("could not record last_used_at; retried at the next flush", BP_LINT("keys", f.n));
        if (w->walk_from == 0 || log.since < w->walk_from) {
            w->walk_from = log.since;
        }
    } else {
        w->walk_from = 0;
    }
    bp_tables_release(t);
    bp_used_log_cleanup(&log);
    bp_free(f.ids);
    bp_free(f.at);
}

/* One check: token → seq → reload, each step only when the one before says so. Returns whether
 * the store answered; *out_reloaded is set when new tables were published. token and seq are
 * remembered only once the tables match them, so a failed reload is retried by the next check. */
/* The store was unreachable when serve started: migrate it (several nodes may do so at once; the
 * store serialises them) and publish the first tables, which ends the "starting" state. */
static bool
first_load(struct bp_watch *w, bool *out_reloaded)
{
    int64_t seq = 0;

    if (bp_store_migrate(w->store, NULL, NULL) != BP_OK || bp_watch_load_now(w->store, &seq) != BP_OK) {
        if (bp_clock_mono_ms() >= w->next_wait_log_ms) {
            BP_WARN("still waiting for the store; /readyz answers 503 and /proxy/ 503 until it answers",
                    BP_LSTR("error", bp_store_last_error(w->store)));
            w->next_wait_log_ms = bp_clock_mono_ms() + 10000;
        }
        return false;
    }
    BP_INFO("store answers; credentials loaded", BP_LINT("change_seq", seq));
    bp_sdnotify("STATUS=serving; the store answered and the credentials are loaded");
    w->loaded = true;
    w->seq = seq;
    w->have_token = false;
    w->reloads++;
    w->full_reloads++;
    *out_reloaded = true;
    report(w);
    forget_dead_rows(w);
    return true;
}

static bool
check_once(struct bp_watch *w, bool *out_reloaded)
{
    int64_t token = 0;
    int64_t seq = 0;

    if (!w->loaded) {
        return first_load(w, out_reloaded);
    }
    if (bp_store_change_token(w->store, &token) != BP_OK) {
        return false;
    }
    if (w->have_token && token == w->token) {
        return true; /* nothing committed since the last check */
    }
    /* The seq is read before the tables, so a change committed meanwhile moves the token again
     * and is looked at by the next check. */
    if (bp_store_change_seq(w->store, &seq) != BP_OK) {
        return false;
    }
    if (seq != w->seq) {
        int64_t applied = w->seq;
        enum delta_result res = apply_deltas(w->store, &applied, seq);
        if (res == DELTA_FAILED) {
            return false;
        }
        if (res == DELTA_NEED_FULL) {
            if (load_tables(w->store) != BP_OK) {
                return false;
            }
            w->full_reloads++;
            applied = seq;
        }
        w->reloads++;
        *out_reloaded = true;
        w->seq = applied;
        report(w); /* first: the CLI may be waiting for exactly this */
        BP_DEBUG("tables published", BP_LINT("reloads", w->reloads), BP_LINT("full_reloads", w->full_reloads),
                 BP_LINT("change_seq", applied));
    }
    w->token = token;
    w->have_token = true;
    return true;
}

/* Housekeeping, after the check so that it never delays one: our own writes move the token
 * (not the seq), which the next check reads past. */
static void
housekeep(struct bp_watch *w, int64_t *last_flush)
{
    int64_t since_report_ms;

    if (bp_clock_mono_ms() - *last_flush >= FLUSH_INTERVAL_MS) {
        flush_last_used(w);
        *last_flush = bp_clock_mono_ms();
    }
    /* A failed report is retried, rarely enough that a store refusing writes is not hammered. */
    since_report_ms = bp_clock_mono_ms() - w->last_report_ms;
    if ((w->reported_seq != w->seq && since_report_ms >= REPORT_RETRY_MS) ||
        since_report_ms >= HEARTBEAT_MS) {
        report(w);
    }
    if (bp_clock_mono_ms() - w->last_share_ms >= SHARE_INTERVAL_MS) {
        share_limits(w);
        bp_metrics_traffic_tick(bp_clock_wall_s()); /* the console's traffic view, per minute */
    }
    maybe_purge(w);
}

/* ---- file events ---- */

/* (Re)adds the watches that are missing: a -wal file that did not exist yet, or one that was
 * deleted and created again. Called at start and on every timed poll. */
static void
files_arm(struct bp_watch *w)
{
    if (w->inotify_fd < 0) {
        return;
    }
    for (size_t i = 0; i < w->n_files; i++) {
        if (w->files[i].wd < 0) {
            w->files[i].wd = inotify_add_watch(w->inotify_fd, w->files[i].path, FILE_EVENTS);
        }
    }
}

/* ---- change notifications (PostgreSQL) ---- */

/* Takes what the listener has (or lets it reconnect) and turns it into a check when a change was
 * committed, or when it (re)connected: notifications sent while it was down are lost, and the
 * change seq is what tells whether any change was. */
static void
listener_handle(struct bp_watch *w)
{
    switch (bp_store_listener_poll(w->listener)) {
    case BP_LISTENER_NOTIFIED:
        w->notified = true;
        break;
    case BP_LISTENER_CONNECTED:
        w->notified = true;
        if (w->listener_warned) {
            BP_INFO("listening for store changes again");
            w->listener_warned = false;
        }
        break;
    case BP_LISTENER_LOST:
    case BP_LISTENER_DOWN:
        if (!w->listener_warned) {
            BP_WARN("cannot listen for store changes; seen by the timed poll until the store answers",
                    BP_LSTR("error", bp_store_listener_last_error(w->listener)),
                    BP_LINT("poll_ms", w->interval_ms));
            w->listener_warned = true;
        }
        break;
    case BP_LISTENER_NOTHING:
        break;
    }
}

static void
listener_open(struct bp_watch *w)
{
    if (bp_store_listener_open(w->store, &w->listener) != BP_OK) {
        w->listener = NULL;
        return;
    }
    /* Connected before the server says "listening", so that a change made right after is
     * noticed at once; its first check is moot (the tables were just loaded). */
    listener_handle(w);
    w->notified = false;
}

static void
files_open(struct bp_watch *w)
{
    const char *paths[MAX_FILES];

    w->inotify_fd = -1;
    w->n_files = bp_store_commit_files(w->store, paths, MAX_FILES);
    for (size_t i = 0; i < w->n_files; i++) {
        w->files[i] = (struct watched_file){.path = paths[i], .wd = -1};
    }
    if (w->n_files == 0) {
        listener_open(w);
        return;
    }
    w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->inotify_fd < 0) {
        BP_WARN("cannot watch the database files; changes are seen at the next timed poll",
                BP_LSTR("error", strerror(errno)));
        return;
    }
    files_arm(w);
    if (w->files[0].wd < 0) {
        BP_WARN("cannot watch the database file; changes are seen at the next timed poll",
                BP_LSTR("error", strerror(errno)));
    }
}

/* Forgets a watch the kernel dropped or whose file went away; files_arm re-adds it by path. */
static void
files_forget(struct bp_watch *w, int wd, uint32_t mask)
{
    for (size_t i = 0; i < w->n_files; i++) {
        if (w->files[i].wd == wd) {
            if (!(mask & IN_IGNORED)) {
                inotify_rm_watch(w->inotify_fd, wd);
            }
            w->files[i].wd = -1;
        }
    }
}

/* Reads every queued event. Returns whether any says a watched file changed (or events were
 * lost), i.e. whether a check is due. */
static bool
files_drain(struct bp_watch *w)
{
    /* Aligned for struct inotify_event, as inotify(7) shows. */
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool changed = false;
    ssize_t n;

    while ((n = read(w->inotify_fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            changed = true; /* every event we subscribed to, and an overflow, mean "look" */
            if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                files_forget(w, ev->wd, ev->mask);
            }
            p += sizeof(*ev) + ev->len;
        }
    }
    return changed;
}

static void
drain_wake_fd(int fd)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof(v));
    (void)n; /* nonblocking: EAGAIN when a concurrent read already cleared it */
}

/* ---- the thread ---- */

/* When the next checks are due, and why. Times are monotonic microseconds. */
struct schedule {
    int64_t next_poll_us;   /* the timed fallback poll */
    int64_t event_check_us; /* the check for events received so far; 0 = none scheduled */
    int64_t quiet_until_us; /* events wait until then (see EVENT_GAP_US) */
    size_t settle_step;     /* index into SETTLE_US of the next re-check; past the end = none */
    int64_t settle_base_us; /* the event-driven check the re-checks follow */
    bool store_ok;          /* the latest check's outcome */
};

static bool
quiet(const struct schedule *sc, int64_t now)
{
    return now < sc->quiet_until_us;
}

/* A re-check is moot while a check for newer events is scheduled: that one comes instead. */
static bool
settle_active(const struct schedule *sc)
{
    return sc->event_check_us == 0 && sc->settle_step < BP_ARRAY_LEN(SETTLE_US);
}

static int64_t
max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t
next_due_us(const struct bp_watch *w, const struct schedule *sc, int64_t now)
{
    int64_t due = sc->next_poll_us;

    if (sc->event_check_us != 0 && sc->event_check_us < due) {
        due = sc->event_check_us;
    }
    /* A re-check waits out a quiet period: events may be queued that make it moot. */
    if (settle_active(sc)) {
        int64_t at = max64(sc->settle_base_us + SETTLE_US[sc->settle_step], sc->quiet_until_us);
        due = at < due ? at : due;
    }
    /* The queue is not listened to while quiet: look at it when the quiet period ends. */
    if (w->inotify_fd >= 0 && sc->event_check_us == 0 && quiet(sc, now) && sc->quiet_until_us < due) {
        due = sc->quiet_until_us;
    }
    /* A listener that is down tries to reconnect when its backoff says. */
    if (w->listener != NULL && bp_store_listener_fd(w->listener) < 0) {
        int64_t at = now + bp_store_listener_retry_in_ms(w->listener) * 1000;
        due = at < due ? at : due;
    }
    return due;
}

/* Sleeps until the next check is due, a file event arrives, or bp_watch_sync/stop wakes it.
 *
 * The inotify descriptor is left out while a check for earlier events is scheduled (that check
 * covers the new ones; the kernel queues and merges them meanwhile) and during a quiet period;
 * when a quiet period ends with events queued, their commits are long done and the check runs at
 * once. Under a stream of audit commits that is one wake-up per check. */
static void
wait_for_work(struct bp_watch *w, struct schedule *sc)
{
    /* The listener's socket goes last, so that the inotify slot keeps its index. */
    struct pollfd pfd[3] = {{.fd = w->wake_fd, .events = POLLIN},
                            {.fd = w->inotify_fd, .events = POLLIN},
                            {.fd = -1, .events = POLLIN}};
    int64_t now = bp_clock_mono_us();
    bool listen = w->inotify_fd >= 0 && sc->event_check_us == 0 && !quiet(sc, now);
    int64_t wait_us = max64(next_due_us(w, sc, now) - now, 0);
    struct timespec ts = {.tv_sec = (time_t)(wait_us / 1000000),
                          .tv_nsec = (long)(wait_us % 1000000) * 1000L};
    int n;

    if (!listen) {
        pfd[1].fd = -1; /* ppoll skips negative descriptors */
    }
    if (w->listener != NULL) {
        pfd[2].fd = bp_store_listener_fd(w->listener);
    }
    n = ppoll(pfd, 3, &ts, NULL);
    if (n > 0 && (pfd[0].revents & POLLIN)) {
        drain_wake_fd(w->wake_fd);
    }
    if (w->listener != NULL &&
        ((pfd[2].fd >= 0 && pfd[2].revents != 0) ||
         (pfd[2].fd < 0 && bp_store_listener_retry_in_ms(w->listener) == 0))) {
        listener_handle(w);
    }
    now = bp_clock_mono_us();
    if (listen) {
        if (n > 0 && (pfd[1].revents & POLLIN) && files_drain(w)) {
            sc->event_check_us = now + EVENT_DELAY_US;
        }
    } else if (w->inotify_fd >= 0 && sc->event_check_us == 0 && !quiet(sc, now) && files_drain(w)) {
        sc->event_check_us = now;
    }
}

/* /readyz: ready; starting (no tables yet); degraded (the store does not answer), with why. */
static void
set_readiness(struct bp_watch *w, bool ok)
{
    char reason[300];

    if (ok) {
        bp_server_set_readiness(w->server, BP_READY, NULL);
        return;
    }
    snprintf(reason, sizeof(reason), "%s: %s", w->loaded ? "store unreachable" : "waiting for the store",
             bp_store_last_error(w->store));
    bp_server_set_readiness(w->server, w->loaded ? BP_DEGRADED : BP_STARTING, reason);
}

/* Runs one check if one is due now; sync means a bp_watch_sync asked. */
static void
maybe_check(struct bp_watch *w, struct schedule *sc, int64_t *last_flush, bool sync)
{
    int64_t now = bp_clock_mono_us();
    bool poll_due = now >= sc->next_poll_us;
    bool event_due = sc->event_check_us != 0 && now >= sc->event_check_us;
    bool settle_due =
        settle_active(sc) && !quiet(sc, now) && now >= sc->settle_base_us + SETTLE_US[sc->settle_step];
    /* A notification comes after its commit: one check at once, no settling, no quiet period. */
    bool notified = w->notified;
    bool reloaded = false;
    bool from_events;
    int64_t cycle;
    bool ok;

    if (!sync && !poll_due && !event_due && !settle_due && !notified) {
        return;
    }
    w->notified = false;
    pthread_mutex_lock(&w->lock);
    cycle = ++w->cycles_started;
    pthread_mutex_unlock(&w->lock);

    if (poll_due) {
        files_arm(w);
        sc->next_poll_us = now + w->interval_ms * 1000;
    }
    /* Events that arrived meanwhile are covered by this check: take them off the queue. A check
     * that follows events is repeated shortly after (SETTLE_US) while no new ones come. */
    from_events = (w->inotify_fd >= 0 && files_drain(w)) || sc->event_check_us != 0;
    if (from_events) {
        sc->event_check_us = 0;
        sc->settle_step = 0;
        sc->settle_base_us = now;
    } else if (settle_due) {
        sc->settle_step++;
    }
    ok = check_once(w, &reloaded);
    /* Checks can run many times a second: say it when the store starts failing, not each time. */
    if (!ok && sc->store_ok && w->loaded) {
        BP_WARN("store check failed; serving /proxy/ with the last loaded credentials, OAuth answers 503",
                BP_LSTR("error", bp_store_last_error(w->store)));
    } else if (ok && !sc->store_ok && w->loaded) {
        BP_INFO("store answers again");
    }
    sc->store_ok = ok;
    bp_metrics_store_up(ok);
    /* Only events that led to nothing new start a quiet period: under a stream of audit commits
     * that bounds the checks, while a real change never waits behind one. */
    if (from_events) {
        sc->quiet_until_us = reloaded ? 0 : now + EVENT_GAP_US;
    }
    if (w->server != NULL) {
        set_readiness(w, ok);
    }

    pthread_mutex_lock(&w->lock);
    w->cycles_done = cycle;
    pthread_cond_broadcast(&w->done_cond);
    pthread_mutex_unlock(&w->lock);
    /* A server that has not loaded yet serves no credential: no report for the CLI to wait on. */
    if (w->loaded) {
        housekeep(w, last_flush);
    }
}

static void *
watch_main(void *arg)
{
    struct bp_watch *w = arg;
    int64_t last_flush = bp_clock_mono_ms();
    struct schedule sc = {
        .next_poll_us = bp_clock_mono_us() + w->interval_ms * 1000,
        .settle_step = BP_ARRAY_LEN(SETTLE_US),
        .store_ok = true,
    };

    for (;;) {
        bool sync;

        wait_for_work(w, &sc);
        pthread_mutex_lock(&w->lock);
        if (w->stop) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        sync = w->sync_wanted;
        w->sync_wanted = false;
        pthread_mutex_unlock(&w->lock);
        maybe_check(w, &sc, &last_flush, sync);
    }
    flush_last_used(w); /* the uses of the last second */
    return NULL;
}

static void
cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

static void
watch_free(struct bp_watch *w)
{
    bp_store_listener_close(w->listener);
    if (w->inotify_fd >= 0) {
        close(w->inotify_fd);
    }
    if (w->wake_fd >= 0) {
        close(w->wake_fd);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->done_cond);
    bp_free(w);
}

bp_err
bp_watch_start(struct bp_store *store, struct bp_server *server, const struct bp_watch_opts *opts,
               struct bp_watch **out)
{
    struct bp_watch *w = bp_calloc(1, sizeof(*w));

    w->store = store;
    w->server = server;
    w->interval_ms = opts->interval_ms > 0 ? opts->interval_ms : 1;
    w->seq = opts->token;
    atomic_init(&w->published_seq, opts->token);
    atomic_init(&w->full_reloads, 0);
    w->loaded = opts->loaded;
    snprintf(w->node, sizeof(w->node), "%s", opts->node != NULL ? opts->node : "");
    w->started_at = bp_clock_wall_s();
    pthread_mutex_init(&w->lock, NULL);
    cond_init_monotonic(&w->done_cond);
    w->reported_seq = -1;
    w->report_ok = true;
    w->inotify_fd = -1;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        BP_WARN("cannot create the watcher's wake-up descriptor", BP_LSTR("error", strerror(errno)));
        watch_free(w);
        return BP_ERR_IO;
    }
    files_open(w);
    memcpy(w->id, "watcher_", sizeof("watcher_") - 1);
    if (bp_ulid(w->id + sizeof("watcher_") - 1) != BP_OK) {
        watch_free(w);
        return BP_ERR_IO;
    }
    host_name(w->host);
    if (w->loaded) {
        /* Before the thread starts, so that a CLI started after "listening" waits for this
         * server. A server still waiting for its store reports once it has loaded. */
        report(w);
        forget_dead_rows(w);
    }
    /* The server starts "starting" (http.h): ready now when the tables were loaded, else it
     * stays so, with the store's error as the reason, until the thread's first load. */
    if (server != NULL) {
        set_readiness(w, w->loaded);
    }
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        bp_store_watcher_delete(w->store, w->id);
        watch_free(w);
        return BP_ERR_IO;
    }
    /* Named, so an operator (or a CPU measurement) finds it under /proc/PID/task. */
    pthread_setname_np(w->thread, "bp-watch");
    BP_DEBUG("watching the store for changes", BP_LINT("file_events", w->inotify_fd >= 0),
             BP_LINT("notifications", w->listener != NULL && bp_store_listener_fd(w->listener) >= 0),
             BP_LINT("poll_ms", w->interval_ms));
    *out = w;
    return BP_OK;
}

static void
wake(struct bp_watch *w)
{
    uint64_t one = 1;
    ssize_t n = write(w->wake_fd, &one, sizeof(one));
    (void)n; /* cannot fail short of the counter overflowing, which a pending wake-up covers */
}

void
bp_watch_sync(struct bp_watch *w, int64_t timeout_ms)
{
    struct timespec until;
    int64_t target;

    if (w == NULL) {
        return;
    }
    deadline_after(timeout_ms > 0 ? timeout_ms : 0, &until);
    pthread_mutex_lock(&w->lock);
    /* The check running now may have read the store before the caller's commit: wait for the
     * next one to start and finish. */
    target = w->cycles_started + 1;
    w->sync_wanted = true;
    wake(w);
    while (w->cycles_done < target && !w->stop) {
        if (pthread_cond_timedwait(&w->done_cond, &w->lock, &until) == ETIMEDOUT) {
            break;
        }
    }
    pthread_mutex_unlock(&w->lock);
}

void
bp_watch_stop(struct bp_watch *w)
{
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    wake(w);
    pthread_cond_broadcast(&w->done_cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    /* The final flush ran; from now on no CLI needs to wait for this server. */
    if (bp_store_watcher_delete(w->store, w->id) != BP_OK) {
        BP_WARN("could not remove this server's report from the store; the CLI ignores it once the "
                "process is gone",
                BP_LSTR("error", bp_store_last_error(w->store)));
    }
    bp_store_close(w->store);
    w->store = NULL;
    watch_free(w);
}

int64_t
bp_watch_full_reloads(struct bp_watch *w)
{
    return atomic_load(&w->full_reloads);
}
