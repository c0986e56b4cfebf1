/* Base URLs of Core instances: what `instance add --url` and the admin API accept. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "lib/alloc.h"
#include "lib/str.h"
#include "lib/url.h"

static bool
is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

static bool
is_ipv6_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' || c == '.';
}

/* Checks host[:port] (len bytes); returns a reason or NULL. */
static const char *
check_authority(const char *a, size_t len)
{
    size_t i = 0;
    uint64_t port;

    if (memchr(a, '@', len) != NULL) {
        return "user info (user@host) is not allowed";
    }
    if (len > 0 && a[0] == '[') {
        for (i = 1; i < len && a[i] != ']'; i++) {
            if (!is_ipv6_char(a[i])) {
                return "bad IPv6 address";
            }
        }
        if (i >= len || i == 1) {
            return "bad IPv6 address";
        }
        i++;
    } else {
        while (i < len && a[i] != ':') {
            if (!is_host_char(a[i])) {
                return "bad character in host";
            }
            i++;
        }
        if (i == 0) {
            return "missing host";
        }
    }
    if (i == len) {
        return NULL;
    }
    if (a[i] != ':') {
        return "bad host";
    }
    i++;
    if (bp_str_parse_u64(a + i, len - i, 65535, &port) != BP_OK || port == 0) {
        return "port must be 1..65535";
    }
    return NULL;
}

const char *
bp_url_normalise_base(const char *url, char **out_url)
{
    size_t len = strlen(url);
    size_t scheme_len;
    const char *auth;
    const char *slash;
    const char *why;
    char *out;

    if (len == 0 || len > BP_URL_MAX_LEN) {
        return "must be 1..2048 characters";
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f) {
            return "whitespace, control and non-ASCII characters are not allowed";
        }
        if (c == '?' || c == '#') {
            return "a query or fragment is not allowed";
        }
    }
    if (strncasecmp(url, "http://", 7) == 0) {
        scheme_len = 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        scheme_len = 8;
    } else {
        return "must start with http:// or https://";
    }
    auth = url + scheme_len;
    slash = strchr(auth, '/');
    why = check_authority(auth, slash != NULL ? (size_t)(slash - auth) : strlen(auth));
    if (why != NULL) {
        return why;
    }
    out = bp_strdup(url);
    for (size_t i = 0; i < scheme_len - 3; i++) {
        out[i] = (char)(out[i] >= 'A' && out[i] <= 'Z' ? out[i] + 32 : out[i]);
    }
    /* The base URL gets Core paths appended, which start with '/'. */
    while (len > scheme_len && out[len - 1] == '/') {
        out[--len] = '\0';
    }
    *out_url = out;
    return NULL;
}
