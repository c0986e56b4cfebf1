#ifndef BP_AUDIT_AUDIT_H
#define BP_AUDIT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit-t.h"
#include "lib/err.h"

/* The audit log (issue 4): one record per /proxy/ request and per administrative change.
 *
 * Requests: loop threads hand records to a bounded queue; one writer thread commits them in
 * batches (group commit) on its own store connection. A record whose submitter asked to be told
 * (sync mode) is reported durable only after its batch committed, or, while the store fails,
 * after it was appended and fsynced to the spool file; spooled records are moved into the store
 * when it answers again. Nothing is dropped silently: a record refused because the queue is full
 * is counted and logged (the http module refuses such requests with 503 before forwarding).
 *
 * Administrative changes made by the CLI are written directly, in the CLI's own store
 * connection (bp_audit_admin). */

/* Record content conventions (issue 8). A request record's action is the route's label (DESIGN
 * §3) only when the request was forwarded to Core; a request the proxy refused keeps what it
 * attempted as "refused: <label>", so a search for a label finds only what Core may have done.
 * CLI records have the category "admin". */
#define BP_AUDIT_REFUSED_PREFIX "refused: "
#define BP_AUDIT_CATEGORY_ADMIN "admin"

struct bp_config;
struct bp_store;
struct bp_audit_rec;
struct bp_audit;

/* Starts the writer thread with its own store connection on cfg->db (already migrated), replays
 * any spool left by an earlier run, and starts the retention purge (cfg->audit_retention_days). */
bp_err bp_audit_start(const struct bp_config *cfg, struct bp_audit **out);
/* Names the node whose records these are (serve's node_name): the writer stamps it on every
 * record it commits from then on. Once, after start; cfg->node_name, when set, is used at start.
 * bp_audit_await_node makes the writer commit nothing until it is set (stop excepted): for a
 * server whose default name holds a port it learns only once it listens. */
void bp_audit_set_node(struct bp_audit *a, const char *node);
void bp_audit_await_node(struct bp_audit *a);
/* Queues rec, taking ownership of it and its strings (allocated with bp_malloc and friends) in
 * every case. When done is not NULL it is called on the writer thread, exactly once, after the
 * record is durable; it must only hand off (e.g. wake a loop thread). Returns BP_ERR_LIMIT when
 * the queue is full (rec is freed and counted as shed; done is not called). */
bp_err bp_audit_submit(struct bp_audit *a, struct bp_audit_rec *rec, void (*done)(void *arg), void *arg);
/* True while neither the store nor the spool can be written (a full disk): a request whose record
 * must be durable before its answer (sync) is answered 503 before it is forwarded, since its
 * record could not be, until space returns. Records already queued wait in memory. */
bool bp_audit_stalled(const struct bp_audit *a);
/* True when the queue is at its limit: the http module answers 503 instead of forwarding. */
bool bp_audit_full(const struct bp_audit *a);
/* Takes one place in the queue for a record that will be submitted later (a request about to be
 * forwarded), so that record can never be refused. False when the queue is full: answer 503. */
bool bp_audit_reserve(struct bp_audit *a);
/* Queues rec into a place taken with bp_audit_reserve: never refused, otherwise like
 * bp_audit_submit. */
void bp_audit_submit_reserved(struct bp_audit *a, struct bp_audit_rec *rec, void (*done)(void *arg), void *arg);
/* The record of a proxied request, described by its loop thread (audit-t.h): copied before
 * this returns, otherwise like bp_audit_submit_reserved when reserved (a place taken with
 * bp_audit_reserve) and like bp_audit_submit when not (BP_ERR_LIMIT: shed, done not called). */
bp_err bp_audit_submit_req(struct bp_audit *a, const struct bp_audit_req_rec *rec, bool reserved,
                           void (*done)(void *arg), void *arg);
/* A request refused before authentication (it showed no valid credential), or refused for its
 * credential's rate limit (issue 12: a client over its limit sends as fast as it likes), described
 * as for bp_audit_submit_req: not one record each, but one per credential (none for the first
 * kind), peer_key (the client's IPv4 address or IPv6 /64, as text), error and status per
 * audit.refusal_window, holding the first one's details, how many there were
 * (repeat_count) and when the last came (last_time_us). Never waits and never fails; the
 * records go to the queue when the window closes (early when 1,024 kinds are open, and at
 * stop). Any thread. */
void bp_audit_note_refusal(struct bp_audit *a, const struct bp_audit_req_rec *rec, const char *peer_key);
/* Records accepted and not yet durable: queued, plus the batch being committed (for /metrics and
 * the limit, so a stuck commit cannot hide a growing backlog). */
size_t bp_audit_depth(const struct bp_audit *a);
/* Commits everything queued (spooling it if the store fails), calls every pending done, stops
 * the writer and closes its store. NULL is a no-op. */
void bp_audit_stop(struct bp_audit *a);

/* Writes one administrative record now, on an open store (the CLI's): actor is the OS user
 * (actor_type "cli"), node the host name, category BP_AUDIT_CATEGORY_ADMIN. action is a label like "Key created"; resource_id the
 * object changed; instance_id may be NULL. */
bp_err bp_audit_admin(struct bp_store *s, const char *action, const char *resource_id, const char *instance_id);
/* As bp_audit_admin, for one of several records of one command: operation_id (its request_id)
 * is the same in each, so that they read as one change (a key rotation: "Key rotated" on the old
 * key and "Key created" on the new one). */
bp_err bp_audit_admin_op(struct bp_store *s, const char *action, const char *resource_id, const char *instance_id,
                         const char *operation_id);
/* Who made an administrative change through the admin API (issue 13): the operator. */
struct bp_audit_admin_actor {
    const char *type;          /* "operator" */
    const char *id;
    const char *name;
    const char *node;          /* the node that served the request */
    const char *client_addr;   /* the operator's address */
};
/* As bp_audit_admin_op, made by actor (an operator of the admin API); NULL: the OS user on this
 * host, as the CLI's records are. */
bp_err bp_audit_admin_by(struct bp_store *s, const struct bp_audit_admin_actor *actor, const char *action,
                         const char *resource_id, const char *instance_id, const char *operation_id);

/* A stored record as a JSON object (new reference), as `audit list --json` prints it. */
struct json_t *bp_audit_rec_json(const struct bp_audit_rec *r);
/* "2026-11-24T10:00:00.123456Z" into out[28]. */
void bp_audit_format_time_us(int64_t t_us, char out[28]);

/* The lines of an export (`audit export`, the admin API's GET /audit/export), appended to b: the
 * record as bp_audit_rec_json gives it, compact, and "\n"; or as CSV (the header line, then one
 * per record; CRLF ends; a cell starting with = + - @ gets a leading ' so that no spreadsheet
 * runs it). Each appends its whole line, or nothing and BP_ERR_LIMIT when b's maximum would be
 * passed. */
struct bp_buf;
bp_err bp_audit_jsonl_row(struct bp_buf *b, const struct bp_audit_rec *r);
bp_err bp_audit_csv_header(struct bp_buf *b);
bp_err bp_audit_csv_row(struct bp_buf *b, const struct bp_audit_rec *r);

/* Frees a heap record from bp_calloc and its strings. */
void bp_audit_rec_free(struct bp_audit_rec *rec);

#endif
