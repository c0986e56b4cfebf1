/* Every audit step of a proxied request, in one place (issue 10):
 *   reserve  before forwarding, a place in the audit queue: a request whose record could not be
 *            kept is answered 503 instead of reaching Core ("every call attributable");
 *   hold     when the response starts: with audit.writes (or .reads) = sync, its bytes wait in
 *            memory until the record is durable;
 *   record   when the request finishes: the record, described without allocating or formatting
 *            (audit-t.h: views of what the request holds), goes to the audit queue; a held
 *            response is let go by the writer's done, or at once when the record was shed.
 *            A held answer too long to buffer (proxy.c streams it) cannot wait for its end: its
 *            record goes when it starts (bp_proxy__audit_record_now), and the stream waits,
 *            paused at the write bound, until that record is durable.
 * The record carries ids and numbers only: no header values, no body, no query string (it may
 * hold secrets). The created resource's id was read from Core's answer by proxy.c. */
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "auth/auth.h"
#include "config/config.h"
#include "errors/errors.h"
#include "http/parser.h"
#include "lib/bug.h"
#include "lib/clock.h"
#include "lib/ipnet.h"
#include "lib/str.h"
#include "proxy/proxy-int.h"

#define PROXY_PREFIX_LEN 6 /* "/proxy" */
/* A request refused before its path was checked (no credential, a bad one) keeps at most this
 * much of its raw path: an anonymous client must not store kilobytes per request (issue 11). */
#define RAW_PATH_MAX 256

static struct bp_audit_text
text_of(const char *s)
{
    return (struct bp_audit_text){s, s != NULL ? strlen(s) : 0};
}

/* A write is what needs proxy:write: the matched route says; without a route, the method does. */
static bool
is_write(const struct bp_http_head *h, const struct bp_proxy_req *st)
{
    if (st->route != NULL) {
        return (st->route->scope & BP_SCOPE_WRITE) != 0;
    }
    return !bp_str_eq(h->method, h->method_len, "GET") && !bp_str_eq(h->method, h->method_len, "HEAD");
}

static int
audit_mode(struct bp_http_req *req, const struct bp_proxy_req *st)
{
    const struct bp_proxy_conf *pc = bp_http_req_app(req);
    const struct bp_config *cfg = bp_http_req_cfg(req);

    if (pc->audit == NULL) {
        return BP_AUDIT_OFF;
    }
    return is_write(bp_http_req_head(req), st) ? cfg->audit_writes : cfg->audit_reads;
}

bool
bp_proxy__audit_reserve(struct bp_http_req *req, struct bp_proxy_req *st)
{
    const struct bp_proxy_conf *pc = bp_http_req_app(req);

    int mode = audit_mode(req, st);

    if (mode == BP_AUDIT_OFF) {
        return true;
    }
    /* Its answer would wait for a record that cannot be written (a full disk): refused now,
     * before Core acts on it. */
    if (mode == BP_AUDIT_SYNC && bp_audit_stalled(pc->audit)) {
        return false;
    }
    st->audit_reserved = bp_audit_reserve(pc->audit);
    return st->audit_reserved;
}

bool
bp_proxy__audit_hold(void *self, struct bp_http_req *req)
{
    const struct bp_proxy *p = self;
    const struct bp_proxy_req *st = bp_http_req_state_for(req, &p->handler);

    return st != NULL && audit_mode(req, st) == BP_AUDIT_SYNC;
}

/* The route's action label when the request was forwarded (Core may have acted on it); what it
 * attempted, marked "refused: …", when the proxy refused it; nothing for a read, or when the
 * client left before it was forwarded (issue 8: a refusal never reads like a success). */
static void
set_action(struct bp_audit_req_rec *rec, const struct bp_proxy_req *st, bp_err outcome)
{
    if (st->route->action == NULL) {
        return;
    }
    if (st->forwarded || st->replayed) {
        rec->action = text_of(st->route->action);
        return;
    }
    if (outcome == BP_OK || outcome == BP_ERR_CLIENT_CLOSED) {
        return;
    }
    rec->action = text_of(st->route->action);
    rec->refused = true;
}

static void
describe(struct bp_http_req *req, const struct bp_proxy_req *st, struct bp_audit_req_rec *rec)
{
    const struct bp_http_head *h = bp_http_req_head(req);
    const struct bp_http_facts *f = bp_http_req_facts(req);

    rec->time_us = bp_clock_wall_us();
    rec->request_id = text_of(bp_http_req_id(req)[0] != '\0' ? bp_http_req_id(req) : NULL);
    if (st->cred != NULL) {
        rec->actor = st->cred->kind == BP_CRED_ACCESS_TOKEN ? BP_AUDIT_ACTOR_OAUTH_CLIENT : BP_AUDIT_ACTOR_API_KEY;
        rec->actor_id = text_of(bp_cred_actor_id(st->cred));
        rec->actor_name = text_of(bp_cred_name(st->cred));
    }
    /* The instance the request was for, or asked for when it was refused before one was found:
     * only an id of the right shape is kept (DESIGN §2's check), so a record never holds
     * arbitrary query bytes. */
    if (st->instance != NULL) {
        rec->instance_id = text_of(st->instance->id);
    } else if (st->asked_instance != NULL) {
        rec->instance_id = (struct bp_audit_text){st->asked_instance, st->asked_instance_len};
    }
    rec->method = (struct bp_audit_text){h->method, h->method_len};
    if (st->route != NULL) {
        rec->route = text_of(st->route->pattern);
        rec->category = text_of(st->route->category);
        set_action(rec, st, f->outcome);
    }
    /* The Core path as asked (query excluded); for a request refused before its path was
     * checked, the raw path after "/proxy". */
    if (st->core_path != NULL) {
        rec->path = (struct bp_audit_text){st->core_path, st->core_path_len};
    } else if (h->path_len > PROXY_PREFIX_LEN) {
        size_t n = h->path_len - PROXY_PREFIX_LEN;
        rec->path = (struct bp_audit_text){h->path + PROXY_PREFIX_LEN, n < RAW_PATH_MAX ? n : RAW_PATH_MAX};
    }
    rec->core_status = f->upstream_status;
    rec->status = f->status;
    rec->latency_us = f->total_us;
    rec->client_addr = text_of(bp_http_req_peer(req));
    if (st->resource_id != NULL) {
        rec->resource_id = (struct bp_audit_text){st->resource_id, st->resource_id_len};
    }
    rec->replayed = st->replayed;
    if (f->outcome != BP_OK) {
        rec->error = text_of(bp_errors_code(f->outcome));
    }
}

static void
record_durable(void *arg)
{
    bp_http_hold_release(arg); /* on the writer's thread: the release posts to the loop */
}

/* Submits the record; a held response is released when it is durable, or at once when the
 * record was shed. */
static void
submit(struct bp_http_req *req, struct bp_proxy_req *st, struct bp_audit_req_rec *rec,
       struct bp_http_hold *hold)
{
    const struct bp_proxy_conf *pc = bp_http_req_app(req);
    bp_err rc;

    /* A refusal (nothing reached Core) does not wait for a record that cannot be written now
     * (a full disk): its record is queued and the answer goes. */
    if (hold != NULL && !st->forwarded && bp_audit_stalled(pc->audit)) {
        (void)bp_audit_submit_req(pc->audit, rec, st->audit_reserved, NULL, NULL);
        st->audit_reserved = false;
        st->audit_submitted = true;
        bp_http_hold_release(hold);
        return;
    }
    /* Only a request refused before it was forwarded gets here without a place: when the queue
     * is full its record is shed (counted and logged by the audit module). */
    rc = bp_audit_submit_req(pc->audit, rec, st->audit_reserved, hold != NULL ? record_durable : NULL, hold);
    st->audit_reserved = false;
    st->audit_submitted = true;
    if (rc != BP_OK && hold != NULL) {
        bp_http_hold_release(hold); /* shed: nothing to wait for */
    }
}

/* No valid credential, or over the credential's rate: nothing was forwarded, and the client can
 * send these as fast as it likes, so they are counted per credential and peer (an IPv4 address or
 * an IPv6 /64: one subscriber) rather than recorded one by one (audit.h), and the answer waits
 * for nothing. */
static void
note_refusal(struct bp_http_req *req, const struct bp_audit_req_rec *rec, struct bp_http_hold *hold)
{
    const struct bp_proxy_conf *pc = bp_http_req_app(req);
    char peer_key[BP_IP_TEXT_MAX + 4];
    struct bp_ip ip;

    if (rec->client_addr.p != NULL && bp_ip_parse(rec->client_addr.p, rec->client_addr.len, &ip)) {
        struct bp_ip key;
        bp_ip_peer_key(&ip, &key);
        bp_ip_format(&key, peer_key);
        if (strchr(peer_key, ':') != NULL) {
            size_t n = strlen(peer_key);
            snprintf(peer_key + n, sizeof(peer_key) - n, "/64");
        }
    } else {
        snprintf(peer_key, sizeof(peer_key), "%.*s", (int)rec->client_addr.len,
                 rec->client_addr.p != NULL ? rec->client_addr.p : "");
    }
    bp_audit_note_refusal(pc->audit, rec, peer_key);
    if (hold != NULL) {
        bp_http_hold_release(hold);
    }
}

void
bp_proxy__audit_record_now(struct bp_http_req *req, struct bp_proxy_req *st, struct bp_http_hold *hold)
{
    struct bp_audit_req_rec rec = {0};

    if (audit_mode(req, st) != BP_AUDIT_SYNC) {
        bp_http_hold_release(hold); /* not this hook's hold: there is no other */
        return;
    }
    describe(req, st, &rec);
    /* The record says what is known as the answer starts: the status sent, Core's status, the
     * resource id from its first bytes, and the time to here. */
    rec.latency_us = bp_http_req_age_us(req);
    submit(req, st, &rec, hold);
}

void
bp_proxy__audit_finish(void *self, struct bp_http_req *req, struct bp_http_hold *hold)
{
    const struct bp_proxy *p = self;
    struct bp_proxy_req *st = bp_http_req_state_for(req, &p->handler);
    struct bp_audit_req_rec rec = {0};

    if (st == NULL || audit_mode(req, st) == BP_AUDIT_OFF) {
        BP_BUG_ON(hold != NULL);
        return;
    }
    if (st->audit_submitted) {
        return; /* a held stream's record went at its start; its durability releases the hold */
    }
    describe(req, st, &rec);
    /* Refusals a client can repeat as fast as it sends are counted, not recorded one by one:
     * those without a valid credential, and those over the credential's rate (which name it). */
    if ((rec.actor == BP_AUDIT_ACTOR_ANONYMOUS || st->outcome_rate_limited) && !st->audit_reserved) {
        note_refusal(req, &rec, hold);
        return;
    }
    submit(req, st, &rec, hold);
}
