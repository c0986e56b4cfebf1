#ifndef BP_PROXY_PROXY_H
#define BP_PROXY_PROXY_H

#include <stddef.h>

#include "lib/err.h"

/* The /proxy/ handler (DESIGN §2): the fixed check order on the head, the body, transaction
 * defaults, the request to Core and Core's answer relayed; and the audit finish hook, which
 * records every proxied request (holding a write's answer until its record is durable when
 * audit.writes is sync). serve registers both; http knows neither. */

struct bp_audit;
struct bp_route;
struct bp_tables;
struct bp_http_handler;
struct bp_http_hook;
struct bp_proxy;

/* The proxy's part of a live configuration (bp_server_spec.app): the route table and the audit
 * log its requests go to (NULL: none). routes must outlive it; owned_routes (may be NULL) is
 * freed with it (bp_free). Immutable once made. */
struct bp_proxy_conf;
struct bp_proxy_conf *bp_proxy_conf_new(const struct bp_route *routes, size_t n_routes,
                                        struct bp_route *owned_routes, struct bp_audit *audit);
/* void * so that it can be the server's app_free. NULL is a no-op. */
void bp_proxy_conf_free(void *conf);

/* Where the proxy takes its credential and instance tables from: the current snapshot's
 * generation, and a pin on it. serve passes auth's publication (bp_tables_generation,
 * bp_tables_acquire); tests may pass their own. */
struct bp_proxy_tables {
    unsigned (*generation)(void);
    struct bp_tables *(*acquire)(void);
};

/* idem (may be NULL: Idempotency-Key is forwarded as sent) must outlive the proxy's requests. */
struct bp_idem;
bp_err bp_proxy_new(const struct bp_proxy_tables *tables, struct bp_idem *idem, struct bp_proxy **out);
/* The handler for "/proxy" and "/proxy/..." and the audit hook; valid while p lives. */
const struct bp_http_handler *bp_proxy_handler(const struct bp_proxy *p);
const struct bp_http_hook *bp_proxy_audit_hook(const struct bp_proxy *p);
/* After the server that used it was freed. NULL is a no-op. */
void bp_proxy_free(struct bp_proxy *p);

#endif
