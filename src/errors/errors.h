#ifndef BP_ERRORS_ERRORS_H
#define BP_ERRORS_ERRORS_H

#include "lib/err.h"

/* Answers a request's refusal in Core's error shape (DESIGN §2), from the error catalog's rows
 * (errcat/: status, error_detail.code, message, challenge and Retry-After headers). Handlers
 * answer refusals with bp_errors_respond; the audit record and the access log take the code from
 * here too. */

struct bp_http_req;

/* The error_detail.code of rc. */
const char *bp_errors_code(bp_err rc);

/* Answers req with rc in Core's error shape (DESIGN §2):
 * {"error":"<message>","error_detail":{"code":"<CODE>","message":"<message>"}}, with
 * WWW-Authenticate for 401s and for a 403 insufficient scope (needed_scope: the scope's name,
 * e.g. "proxy:write"; NULL otherwise) and Retry-After for 503. reason (static text that never
 * quotes the request; NULL for the row's message) becomes the message. rc and reason are
 * recorded in the request's facts for the finish hooks. */
void bp_errors_respond(struct bp_http_req *req, bp_err rc, const char *needed_scope, const char *reason);
/* The same with its own Retry-After (seconds; 0: the row's) and extra header lines (each
 * "Name: value\r\n", at most 256 bytes; NULL for none): a 429's RateLimit-* headers. */
void bp_errors_respond_retry(struct bp_http_req *req, bp_err rc, const char *reason, int retry_after_s,
                             const char *extra_headers);

#endif
