#ifndef BP_OPS_OPS_H
#define BP_OPS_OPS_H

/* What operators see: the operational endpoints (DESIGN §2: GET /healthz, /readyz, /metrics,
 * answered from memory on the loop, no credential), the 404 for paths nothing else serves, and
 * the two finish hooks every request runs: its access-log line and its metrics. serve registers
 * them; http knows neither. */

struct bp_http_handler;
struct bp_http_hook;

/* The handler for "/healthz", "/readyz" and "/metrics" (GET and HEAD), and the catch-all for
 * every other path (404 in Core's error shape). Static; valid for the process's life. */
const struct bp_http_handler *bp_ops_handler(void);
/* GET /proxy/openapi.json: the OpenAPI document `blnkproxy openapi` prints, without a credential;
 * rendered per worker at start and on each reload, never per request (spec.c). Static. */
const struct bp_http_handler *bp_ops_openapi_handler(void);
/* One JSON access-log line per request: ids and numbers only (no header values, no body, no
 * query string, which may hold secrets). */
const struct bp_http_hook *bp_ops_access_log_hook(void);
/* The request's metrics: count, latency, upstream latency, by group, method, status class and
 * instance. */
const struct bp_http_hook *bp_ops_metrics_hook(void);

#endif
