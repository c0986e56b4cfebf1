#ifndef BP_OPENAPI_OPENAPI_H
#define BP_OPENAPI_OPENAPI_H

#include <stddef.h>

#include "lib/err.h"

/* The OpenAPI 3.1 document of the Proxy API (`blnkproxy openapi`), generated from the route
 * table a server would run with (the built-in rows adjusted by the configuration's "routes") and
 * the error catalog (errcat/): one operation per route under /proxy, with its scope, audit
 * action and the proxy's refusals; Core's own answers pass through as "default". */

struct bp_buf;
struct bp_config;

/* For a document the proxy serves itself (GET /proxy/openapi.json): without oauth.issuer its
 * server is "/", the host that served it, since the listen address is often not what clients
 * reach (a load balancer, port 0). */
#define BP_OPENAPI_SERVED 1u

/* Appends the document as JSON text (two-space indented, keys in a fixed order) to out. cfg
 * gives the routes (and the servers entry: oauth.issuer, else http://<listen>, or "/" with
 * BP_OPENAPI_SERVED in flags). On a bad "routes" entry writes the router's reason to err and
 * returns BP_ERR_INVALID; out is then unchanged. */
bp_err bp_openapi_render(const struct bp_config *cfg, unsigned flags, struct bp_buf *out, char *err,
                         size_t err_len);

#endif
