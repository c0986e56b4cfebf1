#ifndef BP_OAUTH_OAUTH_H
#define BP_OAUTH_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth-t.h"
#include "lib/err.h"

/* OAuth 2.0 (DESIGN §5, §6; RFC 6749, 7636, 7009, 7662, 8414): the token, authorize, revoke and
 * introspect endpoints, operator passwords, and the pieces they are made of.
 *
 * Threads: endpoint requests are answered by bp_oauth_handle on the endpoint handler's threads
 * (never on a loop thread: it hashes passwords and writes the store). A struct bp_oauth is used
 * by one thread at a time and owns one store connection. */

struct bp_config;

/* Token formats (BP_ACCESS_TOKEN_PREFIX, BP_OAUTH_TOKEN_LEN, ...) are auth's: auth/auth-t.h. */

/* ---- Operator passwords (Argon2id) ---- */

/* Hashes a password with Argon2id and a fresh random salt into an allocated encoded string
 * ("$argon2id$v=19$m=…,t=…,p=…$salt$hash"). BP_ERR_INVALID for an empty or over-long password. */
bp_err bp_password_hash(const char *password, size_t len, char **out_encoded);
/* BP_OK when password matches encoded, BP_ERR_INVALID when not (or encoded is malformed).
 * Takes the same time whether or not the operator exists when given a dummy hash. */
bp_err bp_password_verify(const char *encoded, const char *password, size_t len);

/* ---- Token text ---- */

/* Writes prefix + 64 lowercase hex from 32 CSPRNG bytes, NUL-terminated, into out
 * (BP_OAUTH_TOKEN_LEN + 1 bytes). prefix is one of the three above. */
bp_err bp_oauth_token_generate(const char *prefix, char out[BP_OAUTH_TOKEN_LEN + 1]);
/* True when text is exactly prefix + 64 lowercase hex. */
bool bp_oauth_token_is_well_formed(const char *prefix, const char *text, size_t len);

/* ---- The endpoints' HTTP handler ---- */

struct bp_http_handler;
struct bp_oauth_endpoint;
struct bp_oauth;
struct bp_oauth_request;
struct bp_oauth_response;
struct bp_operator_rec;
struct bp_store;

/* Another set of store-backed endpoints answered on the OAuth threads, with their state (the
 * admin API, admin/): the endpoint reads its requests like its own and calls handle on one of
 * its threads. */
struct bp_oauth_service {
    const char *group;                                  /* the requests' group in logs and metrics */
    bool (*owns_path)(const char *path, size_t len);
    /* The requests that verify a password: run on the sign-in threads. */
    bool (*is_signin)(const char *method, size_t method_len, const char *path, size_t path_len);
    /* On the loop thread, before a call is queued: true when it answered the call itself, with no
     * store and no thread (a call without a credential). NULL: never. */
    bool (*answer_at_once)(void *arg, const struct bp_oauth_request *req, struct bp_oauth_response *out);
    /* On a service thread. An answer with status 401 counts as a failed authentication of the
     * request's peer (rate_limit.auth_failures, as on /proxy/): answer 401 only when the
     * credential or password presented was refused. */
    void (*handle)(void *arg, struct bp_oauth *o, const struct bp_oauth_request *req,
                   struct bp_oauth_response *out);
    void *arg;
};

struct bp_oauth_endpoint_opts {
    const struct bp_config *cfg;   /* the start configuration (oauth.*, db); copied */
    /* Called on an OAuth thread after it issued an access token and before the answer leaves:
     * returns once the credential tables include the token (bounded), so the client can use it
     * on /proxy/ at once. NULL: no wait. */
    void (*tables_sync)(void *arg);
    void *tables_sync_arg;
    const struct bp_oauth_service *service; /* NULL: none */
};

/* The handler serve registers for "/oauth", "/oauth/..." and
 * "/.well-known/oauth-authorization-server": it reads the request on the loop and answers it
 * on one of oauth.threads threads (each with its own store connection), queueing at most 64 per
 * thread (then 503). Nothing runs until bp_oauth_endpoint_start. */
bp_err bp_oauth_endpoint_new(const struct bp_oauth_endpoint_opts *opts, struct bp_oauth_endpoint **out);
const struct bp_http_handler *bp_oauth_endpoint_handler(const struct bp_oauth_endpoint *ep);
/* Starts the threads. port and tls_port (0: none) are the ones the server bound: the default
 * issuer names the TLS one (https) when there is one, else port (http). */
bp_err bp_oauth_endpoint_start(struct bp_oauth_endpoint *ep, int port, int tls_port);
/* Finishes the queued requests (their clients still wait) and joins the threads. Call after the
 * server stopped. */
void bp_oauth_endpoint_stop(struct bp_oauth_endpoint *ep);
/* After the server was freed. NULL is a no-op. */
void bp_oauth_endpoint_free(struct bp_oauth_endpoint *ep);

/* ---- Endpoints ---- */

struct bp_oauth;

/* One HTTP request to an OAuth endpoint, as the http module parsed it. Borrowed: valid for the
 * duration of bp_oauth_handle. Header values are NULL when absent; n_* counts repeats. */
struct bp_oauth_request {
    const char *method;
    size_t method_len;
    const char *path;          /* "/oauth/token", "/.well-known/oauth-authorization-server", … */
    size_t path_len;
    const char *query;         /* without '?', NULL when none */
    size_t query_len;
    const char *authorization;
    size_t authorization_len;
    size_t n_authorization;
    const char *content_type;
    size_t content_type_len;
    const char *cookie;
    size_t cookie_len;
    const char *csrf_token;    /* X-CSRF-Token (the admin API's cookie-authenticated writes) */
    size_t csrf_token_len;
    const char *body;
    size_t body_len;
    const char *peer;          /* client address, for sign-in throttling */
    bool tls;                  /* the client connection is TLS (sets Secure on cookies) */
};

/* The answer. Everything is allocated by bp_oauth_handle and freed by bp_oauth_response_cleanup. */
struct bp_oauth_response {
    int status;
    char *headers;             /* extra header lines, each "Name: value\r\n"; NULL when none */
    const char *content_type;  /* static string, NULL when no body */
    char *body;
    size_t body_len;
    bool tables_changed;       /* a new access token exists, or a credential or instance changed:
                                  the request path must know it before the client does (see
                                  bp_server_hooks.tables_sync) */
};

/* True for the paths bp_oauth_handle answers: "/oauth/…" and
 * "/.well-known/oauth-authorization-server". */
bool bp_oauth_owns_path(const char *path, size_t len);

/* Makes the endpoint state for one thread: its own store connection on cfg->db (already
 * migrated by serve), opened at its first call. cfg must outlive it. */
bp_err bp_oauth_open(const struct bp_config *cfg, struct bp_oauth **out);
void bp_oauth_close(struct bp_oauth *o);
/* Answers one request. Never fails: store trouble becomes a 500/503 answer in the endpoint's
 * error shape. Never logs a secret, code, token or password. */
void bp_oauth_handle(struct bp_oauth *o, const struct bp_oauth_request *req, struct bp_oauth_response *out);
/* The thread's store connection, for a service's handle; opened at the first call. NULL when it
 * cannot be opened (logged): the service answers 503, and the next call tries again. */
struct bp_store *bp_oauth_store(struct bp_oauth *o);
/* An operator's sign-in, as the authorize page does it (also the admin API's): the attempt is
 * counted against name and peer first (BP_ERR_LIMIT: too many failures; refuse without
 * verifying), then one Argon2id verification runs whether or not the name exists. BP_OK with
 * *out filled (an enabled operator whose password matched), else BP_ERR_AUTH_INVALID_KEY; or the
 * store's error when it could not be read (nothing verified, and the attempt not counted). */
bp_err bp_oauth_signin(struct bp_oauth *o, const char *name, const char *password, const char *peer,
                       struct bp_operator_rec *out);
/* The value of the cookie named name in a Cookie header when it is exactly 64 lowercase hex
 * digits (a session id): true and a NUL-terminated copy in out. The first well-formed one wins. */
bool bp_oauth_cookie_hex64(const char *cookie, size_t len, const char *name, char out[65]);
/* An operator's role (issue 13): admin (everything), auditor (reads the admin API), approver
 * (the authorize page only). */
enum bp_oauth_role {
    BP_OAUTH_ROLE_UNKNOWN = 0,
    BP_OAUTH_ROLE_APPROVER,
    BP_OAUTH_ROLE_AUDITOR,
    BP_OAUTH_ROLE_ADMIN,
};
/* The role a stored or typed name stands for; UNKNOWN for anything else (NULL too). */
enum bp_oauth_role bp_oauth_role_parse(const char *role);
/* Whether an operator with this role may approve apps on the authorize page (admin, approver). */
bool bp_oauth_may_approve(const char *role);
/* Sets a header on an answer being built ("Name: value\r\n" appended). */
void bp_oauth_add_header(struct bp_oauth_response *out, const char *name, const char *value);
void bp_oauth_response_cleanup(struct bp_oauth_response *r);

#endif
