#ifndef BP_LIB_URL_H
#define BP_LIB_URL_H

#define BP_URL_MAX_LEN 2048

/* Checks a Core instance's base URL (http:// or https://, a host and an optional port, a path;
 * no user info, query or fragment, no whitespace or non-ASCII) and gives its normalised form in
 * *out_url (allocated: lowercase scheme, no trailing '/'). Returns NULL when it is good, else
 * why not (static text that never quotes the URL). */
const char *bp_url_normalise_base(const char *url, char **out_url);

#endif
