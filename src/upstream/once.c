/* bp_upstream_once: one exchange on a private libevent loop, waited for (upstream.h). The client
 * is the proxy's own, so a command-line check sees what the proxy would: the same DNS, TLS
 * verification, CA file and error causes. */
#include <event2/event.h>
#include <stdio.h>

#include "upstream/upstream-int.h"
#include "upstream/upstream.h"

struct once {
    struct event_base *base;
    struct bp_upstream *u;
    struct bp_upstream_outcome *out;
    bool done;
};

static void
on_answer(void *arg, bp_err rc, const struct bp_upstream_resp *resp)
{
    struct once *o = arg;
    const char *cause;

    o->done = true;
    o->out->rc = rc;
    if (rc == BP_OK) {
        o->out->status = resp->status;
        o->out->upstream_us = resp->upstream_us;
    } else if ((cause = bp_upstream__failure(o->u, &o->out->kind)) != NULL) {
        snprintf(o->out->cause, sizeof(o->out->cause), "%s", cause);
    }
    event_base_loopbreak(o->base);
}

bp_err
bp_upstream_once(const struct bp_upstream_req *req, const struct bp_upstream_opts *opts,
                 struct bp_upstream_outcome *out)
{
    struct once o = {.out = out};
    bp_err rc;

    *out = (struct bp_upstream_outcome){0};
    o.base = event_base_new();
    if (o.base == NULL) {
        return BP_ERR_NOMEM;
    }
    rc = bp_upstream_new(o.base, opts, &o.u);
    if (rc == BP_OK) {
        rc = bp_upstream_send(o.u, req, on_answer, &o, NULL);
    }
    /* The client's own timeouts end the transfer; the loop runs until its callback has. */
    while (rc == BP_OK && !o.done && event_base_dispatch(o.base) == 0) {
    }
    bp_upstream_free(o.u);
    /* Lets a DNS lookup cancelled by the free finish its bookkeeping (upstream.h). */
    event_base_loop(o.base, EVLOOP_NONBLOCK);
    event_base_free(o.base);
    return rc;
}
