#ifndef BP_AUTH_AUTH_T_H
#define BP_AUTH_AUTH_T_H

/* Types of the auth module that other modules hold or embed without calling into auth: scope
 * bits (route rows carry them), credential formats, and the rows of the credential and
 * instance tables. Types and constants only (STYLE §2). */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Scopes (DESIGN §5): what a credential may do, and what a route needs. */
#define BP_SCOPE_READ 1u
#define BP_SCOPE_WRITE 2u
#define BP_SCOPE_ALL 0xffffu /* "*" */

/* Credential formats (DESIGN §5). API keys: "blnk_" + 64 lowercase hex. OAuth secrets: a
 * prefix + 64 lowercase hex (32 CSPRNG bytes); access tokens are the ones that authorise
 * requests, refresh tokens and client secrets never do. */
#define BP_APIKEY_PREFIX "blnk_"
#define BP_APIKEY_HEX_LEN 64
#define BP_APIKEY_LEN (5 + BP_APIKEY_HEX_LEN)
#define BP_APIKEY_LIST_PREFIX_LEN (5 + 8) /* "blnk_" + first 8 hex, shown in listings */
#define BP_DIGEST_LEN 32
#define BP_ACCESS_TOKEN_PREFIX "blnk_at_"
#define BP_REFRESH_TOKEN_PREFIX "blnk_rt_"
#define BP_CLIENT_SECRET_PREFIX "blnk_cs_"
#define BP_ADMIN_TOKEN_PREFIX "blnk_ad_"   /* an operator's admin API token (issue 13) */
#define BP_OAUTH_TOKEN_HEX_LEN 64
#define BP_OAUTH_TOKEN_LEN (8 + BP_OAUTH_TOKEN_HEX_LEN)

struct bp_ipnet;
struct bp_secret;

enum bp_cred_kind { BP_CRED_API_KEY = 1, BP_CRED_ACCESS_TOKEN = 2 };

/* A credential's instance restriction: the instance ids it may use. */
struct bp_instance_list {
    uint32_t n;
    const char *ids[];
};

/* What a credential is held to besides its scopes: the instances it may use, the networks its
 * requests may come from and its own request rate (issue 12). Credentials with the same restriction share one copy
 * (interned by the tables), so a million keys restricted to one instance hold a million
 * pointers, not a million copies of its id. An empty list allows nothing: a restriction never
 * fails open. */
struct bp_cred_restriction {
    const struct bp_instance_list *instances; /* NULL: every instance */
    const struct bp_ipnet *allow;             /* n_allow networks, when allow_restricted */
    uint32_t n_allow;
    bool allow_restricted;                    /* false: from anywhere */
    bool rate_set;                            /* false: the configured default rate applies */
    uint32_t rate_count;                      /* requests per rate_period_s (lib/rate.h); 0: none */
    uint32_t rate_period_s;
    uint32_t rate_burst;                      /* 0: rate_count */
};

/* A row of the credential table. One allocation holds the row and its strings, and the row is
 * as small as it can be: at a million keys every byte here is a megabyte of every node's RSS
 * (issue 9). The strings follow the row: the id, the name (the key's, or the token's client
 * name), then for an access token its client id; read them with bp_cred_id, bp_cred_name and
 * bp_cred_actor_id (auth.h). Times are wall seconds; used_at is 32-bit (unsigned, good until
 * 2106) because it is a last-used stamp, not a deadline. */
struct bp_cred {
    unsigned char digest[BP_DIGEST_LEN]; /* SHA-256 of the presented key */
    int64_t expires_at;                  /* 0 = never */
    const struct bp_cred_restriction *restriction; /* NULL when unrestricted */
    atomic_uint used_at;                 /* latest use in this process, 0 = none */
    atomic_uint refs;                    /* snapshots share a row until the last one holding it goes */
    uint16_t scopes;                     /* BP_SCOPE_* bits */
    uint8_t kind;                        /* enum bp_cred_kind */
    bool revoked;
    char text[];                         /* "id\0name\0[client id\0]" */
};

/* A row of the instance table. */
struct bp_instance {
    char *id;
    char *url;                 /* base URL without trailing '/' */
    struct bp_secret *secret;  /* Core secret key, NULL when none */
    char *ca_file;             /* NULL: system CAs */
    bool enabled;
    struct bp_health *health;  /* its health (health/health.h): shared by every snapshot */
};

/* Why authentication failed, for metrics and the audit log. */
enum bp_auth_failure {
    BP_AUTH_FAIL_NONE = 0,
    BP_AUTH_FAIL_MISSING,
    BP_AUTH_FAIL_UNKNOWN,   /* not Bearer, malformed, unknown, several headers */
    BP_AUTH_FAIL_EXPIRED,
    BP_AUTH_FAIL_REVOKED,
};

#endif
