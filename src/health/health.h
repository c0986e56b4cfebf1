#ifndef BP_HEALTH_HEALTH_H
#define BP_HEALTH_HEALTH_H

/* The health of each Blnk Core instance (issue 14): a small state machine per instance, shared by
 * every worker thread.
 *
 *   up    ──(health.failures consecutive failures)──▶ down
 *   down  ──(health.cooldown passed: one trial request or a probe goes through)──▶ trial
 *   trial ──(success)──▶ up          trial ──(failure)──▶ down (a new cool-down)
 *
 * A failure is what says Core cannot serve: a connect error, a timeout, a 502, 503 or 504 answer
 * to a proxied request (bp_health_status_fails), any 5xx to the probe; any other
 * answer (4xx included: Core is up and said no) is a success. While down, requests for the
 * instance are refused at once (503 PROXY_INSTANCE_UNAVAILABLE) instead of each waiting for a
 * timeout. The active probe (health.probe_interval) reports into the same state, so a probe can
 * bring an instance back before any client tries.
 *
 * Threads: the state is atomics; a healthy instance costs one relaxed load to admit and one load
 * to report (no store while nothing changes, so workers do not fight over its cache line). The
 * registry of instances is guarded by a mutex, taken only when tables are built and metrics
 * rendered. A slot lives until the process ends (an instance removed and added again keeps its
 * slot; the count is bounded by the instances ever configured). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

struct bp_health;

/* When to call an instance down and how long to wait before trying it again. */
struct bp_health_conf {
    int failures;        /* consecutive failures that make an up instance down; 0: never */
    int64_t cooldown_ms; /* time down before one trial request (or a probe) may go */
};

/* The slots of n instances (ids[i], names[i]; a name may be NULL), written to out[i]: existing
 * ones keep their state, new ones start up. These become the instances the metrics show (the
 * published set); instances left out disappear from the metrics but keep their slot. */
void bp_health_track(const char *const *ids, const char *const *names, size_t n, struct bp_health **out);

/* Whether a request for h may go to Core at now_ms (monotonic). true with *out_trial set: this
 * request is the one trial of a down instance; its outcome must be reported (or released). */
bool bp_health_admit(struct bp_health *h, int64_t now_ms, bool *out_trial);

/* Whether Core's answer status to a proxied request says Core cannot serve: 502, 503, 504. A 500
 * is Core answering about that request — a client that can make Core fail its own requests must
 * not be able to take the instance down for every other client. */
bool bp_health_status_fails(int status);

/* An exchange with Core ended: ok or not (connect error, timeout, a failing status).
 * trial: this was the request bp_health_admit made the trial. */
void bp_health_report(struct bp_health *h, const struct bp_health_conf *c, bool ok, bool trial, int64_t now_ms);

/* A trial that ended without telling anything about Core (the client left, the request was
 * refused before it was sent): the next request may be the trial. */
void bp_health_release(struct bp_health *h);

bool bp_health_is_up(const struct bp_health *h);

/* Calls fn for every published instance, in the order they were tracked, under the registry's
 * lock (fn must not call back into this module). */
void bp_health_each(void (*fn)(void *arg, const char *id, const char *name, bool up), void *arg);

/* Forgets every slot (tests, and the end of the process under the leak checker). */
void bp_health_reset(void);

/* ---- a one-off check of an instance's Core (check.c) ---- */

struct bp_health_check_target {
    const char *id;
    const char *url;           /* the instance's base URL */
    const char *secret_key;    /* NULL: none */
    size_t secret_key_len;
    const char *ca_file;       /* NULL: the system's */
};

struct bp_health_check {
    bool healthy;              /* Core answered 2xx */
    bool answered;             /* Core answered at all: status and time_ms are set */
    int status;
    int64_t time_ms;
    char url[2100];            /* what was called (never the secret) */
    char problem[400];         /* what is wrong, in words; "none: …" when healthy */
    char hint[256];            /* what to do about it, or "" */
};

/* Calls GET /health on t's Core with its secret key, through the upstream client, within
 * total_timeout_ms; blocks (never call it on a loop). BP_OK with the verdict in *out, else the
 * request could not be made at all. */
bp_err bp_health_check_once(const struct bp_health_check_target *t, int64_t total_timeout_ms,
                            struct bp_health_check *out);

#endif
