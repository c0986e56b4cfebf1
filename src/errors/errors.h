#ifndef BP_ERRORS_ERRORS_H
#define BP_ERRORS_ERRORS_H

#include <stddef.h>

#include "lib/err.h"

/* DESIGN §2's error catalog and Core's error shape: the only mapping from a request's bp_err to
 * its status, error_detail.code, message and challenge headers. Handlers answer refusals with
 * bp_errors_respond; the audit record and the access log take the code from here too. */

struct bp_http_req;

struct bp_errors_row {
    bp_err rc;
    int status;
    const char *code;              /* error_detail.code: Core's catalog, or PROXY_* */
    const char *message;           /* the usual message; a check's reason replaces it */
    const char *www_authenticate;  /* the challenge of a 401, NULL otherwise */
};

/* The row of rc; an error without one maps to 500 GEN_INTERNAL_ERROR. Never NULL. */
const struct bp_errors_row *bp_errors_row(bp_err rc);
/* Every row, for documents generated from the catalog. */
const struct bp_errors_row *bp_errors_catalog(size_t *out_n);
/* The error_detail.code of rc. */
const char *bp_errors_code(bp_err rc);

/* Answers req with rc in Core's error shape (DESIGN §2):
 * {"error":"<message>","error_detail":{"code":"<CODE>","message":"<message>"}}, with
 * WWW-Authenticate for 401s and for a 403 insufficient scope (needed_scope: the scope's name,
 * e.g. "proxy:write"; NULL otherwise) and Retry-After for 503. reason (static text that never
 * quotes the request; NULL for the row's message) becomes the message. rc and reason are
 * recorded in the request's facts for the finish hooks. */
void bp_errors_respond(struct bp_http_req *req, bp_err rc, const char *needed_scope, const char *reason);

#endif
