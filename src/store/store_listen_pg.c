/* PostgreSQL backend: a connection of its own that LISTENs for the change log's notifications
 * (issue 9 item 4), so that a server wakes the moment another node or the CLI commits a change.
 *
 * The triggers of migration 4 send NOTIFY blnkproxy_changes with the new seq at every logged
 * change; PostgreSQL delivers it after the commit, so a check that follows it sees the change.
 * The connection is idle otherwise: its socket goes into the watcher's poll set, and readable
 * means notifications (or the server closing it). A notification sent while the listener is
 * disconnected is lost for good, so every (re)connection is reported as a reason to check: the
 * watcher then catches up from the change seq, which is the truth; the notifications are only a
 * faster way to learn that it moved. */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "lib/alloc.h"
#include "lib/clock.h"
#include "lib/secret.h"
#include "store/pg-int.h"

#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 2000

struct bp_store_listener {
    PGconn *conn;       /* NULL while down */
    char *dsn;          /* wiped on close */
    char *where;        /* masked, for messages */
    int64_t retry_at_ms; /* monotonic: next connection attempt while down */
    int64_t backoff_ms;
    char errmsg[512];
};

/* Connects and LISTENs; false (reason kept) when either fails. */
static bool
listen_connect(struct bp_store_listener *l)
{
    PGresult *res;

    l->conn = bp_pg__connect(l->dsn, l->where, l->errmsg, sizeof(l->errmsg));
    if (l->conn == NULL) {
        return false;
    }
    res = bp_pq.PQexec(l->conn, "LISTEN blnkproxy_changes");
    if (bp_pq.PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(l->errmsg, sizeof(l->errmsg), "cannot LISTEN on the store at %s", l->where);
        bp_pq.PQclear(res);
        bp_pq.PQfinish(l->conn);
        l->conn = NULL;
        return false;
    }
    bp_pq.PQclear(res);
    if (bp_pq.PQsetnonblocking(l->conn, 1) != 0) {
        snprintf(l->errmsg, sizeof(l->errmsg), "cannot set up the notification connection to %s", l->where);
        bp_pq.PQfinish(l->conn);
        l->conn = NULL;
        return false;
    }
    return true;
}

bp_err
bp_pg__listener_open(struct bp_store *s, struct bp_store_listener **out)
{
    struct pg_store *st = bp_pg__of(s);
    struct bp_store_listener *l = bp_calloc(1, sizeof(*l));

    l->dsn = bp_strdup(st->dsn);
    l->where = bp_strdup(st->where);
    l->backoff_ms = RETRY_MIN_MS;
    /* Down at first: the first bp_store_listener_poll connects, and says so. */
    *out = l;
    return BP_OK;
}

int
bp_store_listener_fd(const struct bp_store_listener *l)
{
    return l != NULL && l->conn != NULL ? bp_pq.PQsocket(l->conn) : -1;
}

int64_t
bp_store_listener_retry_in_ms(const struct bp_store_listener *l)
{
    int64_t left;

    if (l == NULL || l->conn != NULL) {
        return -1;
    }
    left = l->retry_at_ms - bp_clock_mono_ms();
    return left > 0 ? left : 0;
}

const char *
bp_store_listener_last_error(const struct bp_store_listener *l)
{
    return l->errmsg;
}

static void
went_down(struct bp_store_listener *l)
{
    snprintf(l->errmsg, sizeof(l->errmsg), "the notification connection to the store at %s was lost", l->where);
    bp_pq.PQfinish(l->conn);
    l->conn = NULL;
    l->retry_at_ms = bp_clock_mono_ms();
}

enum bp_store_listener_event
bp_store_listener_poll(struct bp_store_listener *l)
{
    enum bp_store_listener_event ev = BP_LISTENER_NOTHING;
    PGnotify *note;

    if (l->conn == NULL) {
        if (bp_clock_mono_ms() < l->retry_at_ms) {
            return BP_LISTENER_NOTHING;
        }
        if (!listen_connect(l)) {
            l->retry_at_ms = bp_clock_mono_ms() + l->backoff_ms;
            l->backoff_ms = l->backoff_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : l->backoff_ms * 2;
            return BP_LISTENER_DOWN;
        }
        l->backoff_ms = RETRY_MIN_MS;
        return BP_LISTENER_CONNECTED;
    }
    if (!bp_pq.PQconsumeInput(l->conn) || bp_pq.PQstatus(l->conn) != CONNECTION_OK) {
        went_down(l);
        return BP_LISTENER_LOST;
    }
    /* A server closing the connection first sends a FATAL message (libpq takes it as a notice),
     * then ends the stream: the socket stays readable and the next call sees the end. */
    while ((note = bp_pq.PQnotifies(l->conn)) != NULL) {
        ev = BP_LISTENER_NOTIFIED;
        bp_pq.PQfreemem(note);
    }
    return ev;
}

void
bp_store_listener_close(struct bp_store_listener *l)
{
    if (l == NULL) {
        return;
    }
    bp_pq.PQfinish(l->conn);
    bp_wipe(l->dsn, strlen(l->dsn));
    bp_free(l->dsn);
    bp_free(l->where);
    bp_free(l);
}
