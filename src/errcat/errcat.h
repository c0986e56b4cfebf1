#ifndef BP_ERRCAT_ERRCAT_H
#define BP_ERRCAT_ERRCAT_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"

/* The error catalog as data (DESIGN §2): for each bp_err a request can be refused with, the HTTP
 * status, Core's error_detail.code, the message and the headers that go with it. http/errors.c
 * answers requests from these rows and the OpenAPI document (openapi/) describes the same rows,
 * so the two cannot disagree. Data only: no HTTP and no JSON here. */

struct bp_errcat_row {
    bp_err rc;
    int status;
    const char *code;             /* error_detail.code: "AUTH_INVALID_API_KEY" */
    const char *message;          /* the default message; a check's fixed reason may replace it */
    const char *www_authenticate; /* the WWW-Authenticate value, NULL for none; "<scope>" stands
                                   * for the scope the route needs */
    int retry_after_s;            /* Retry-After in seconds, 0 for none */
    bool sent;                    /* false: recorded in the audit log only (the client is gone) */
};

/* The row for rc; rc without a row of its own gets the 500 GEN_INTERNAL_ERROR row. Never NULL. */
const struct bp_errcat_row *bp_errcat_find(bp_err rc);

/* Every row, the 500 row last; *out_n is how many. */
const struct bp_errcat_row *bp_errcat_rows(size_t *out_n);

#endif
