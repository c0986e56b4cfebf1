#ifndef BP_ADMIN_ADMIN_H
#define BP_ADMIN_ADMIN_H

#include "lib/err.h"

/* The admin API (issue 13; docs/ADMIN_API.md): JSON over HTTP under /admin/api/, for signed-in
 * operators (a console session cookie) and for admin tokens made with the CLI. Roles: admin
 * (everything), auditor (reads only); approver (the authorize page only) is refused. Every
 * change is written with its audit record in one transaction, the operator as its actor.
 *
 * It runs as a service of the OAuth endpoint (oauth/oauth.h, struct bp_oauth_service): the
 * endpoint reads the request on the loop and calls the service on one of its threads, with that
 * thread's store connection; sign-ins go to the password threads and share the authorize
 * page's throttle. */

struct bp_admin;
struct bp_oauth_service;

struct bp_admin_opts {
    /* The node's name, for the audit records: a buffer serve fills once the port is bound,
     * before any request can arrive. */
    const char *node;
    /* audit.signing_key: the Ed25519 private key (PEM file) that signs the checkpoints made with
     * POST /audit/checkpoints; NULL: they are unsigned. Read once, by bp_admin_new. */
    const char *signing_key;
};

/* BP_ERR_INVALID (logged) when opts->signing_key cannot be loaded. */
bp_err bp_admin_new(const struct bp_admin_opts *opts, struct bp_admin **out);
/* The service to pass in struct bp_oauth_endpoint_opts; valid while a lives. */
const struct bp_oauth_service *bp_admin_service(const struct bp_admin *a);
/* NULL is a no-op. */
void bp_admin_free(struct bp_admin *a);

/* The handler of the console's pages, "/admin" and "/admin/…" (but the API): static files
 * answered on the loop. */
struct bp_http_handler;
const struct bp_http_handler *bp_admin_console_handler(void);

#endif
