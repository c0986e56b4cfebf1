#ifndef BP_LIB_URL_H
#define BP_LIB_URL_H

#define BP_URL_MAX_LEN 2048

/* Checks a Core instance's base URL (http:// or https://, a host and an optional port, a path;
 * no user info, query or fragment, no whitespace or non-ASCII) and gives its normalised form in
 * *out_url (allocated: lowercase scheme, no trailing '/'). Returns NULL when it is good, else
 * why not (static text that never quotes the URL). */
const char *bp_url_normalise_base(const char *url, char **out_url);

#define BP_URL_REDIRECT_MAX 2000

/* Checks an OAuth client's redirect URI: an absolute https URI, or http for a loopback host only
 * (RFC 8252 §7.3, RFC 9700 §2.1), with no fragment, no userinfo and no comma (lists of them are
 * comma-joined). Returns NULL when valid, else why (static text). */
const char *bp_url_check_redirect(const char *uri);

#endif
