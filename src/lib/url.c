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

static bool
is_alnum_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 3986 characters allowed anywhere in a URI, less '#' (no fragment, RFC 6749 §3.1.2) and ','
 * (the CLI prints the list comma-separated and people paste it back). */
static bool
uri_char_ok(char c)
{
    return is_alnum_char(c) || (c != '\0' && strchr("-._~:/?[]@!$&'()*+;=%", c) != NULL);
}

/* True for ":" followed by a port 1..65535, or the empty string. */
static bool
port_ok(const char *p, size_t n)
{
    uint64_t port;

    if (n == 0) {
        return true;
    }
    return p[0] == ':' && n >= 2 && n <= 6 && bp_str_parse_u64(p + 1, n - 1, 65535, &port) == BP_OK &&
           port > 0;
}

const char *
bp_url_check_redirect(const char *uri)
{
    size_t len = strlen(uri);
    bool https = strncmp(uri, "https://", 8) == 0;
    const char *host;
    size_t auth_len;
    size_t host_len;

    if (len == 0 || len > BP_URL_REDIRECT_MAX) {
        return "must be 1..2000 characters";
    }
    if (strchr(uri, '#') != NULL) {
        return "must not have a fragment (#)";
    }
    for (size_t i = 0; i < len; i++) {
        if (!uri_char_ok(uri[i])) {
            return "has a character that is not allowed (spaces, commas, non-ASCII)";
        }
        if (uri[i] == '%' && (bp_hex_digit_value((unsigned char)uri[i + 1]) < 0 ||
                              bp_hex_digit_value((unsigned char)uri[i + 2]) < 0)) {
            return "has a bad percent-encoding";
        }
    }
    if (!https && strncmp(uri, "http://", 7) != 0) {
        return "must be an absolute https:// URI (http:// only for 127.0.0.1, [::1] or localhost)";
    }
    host = uri + (https ? 8 : 7);
    auth_len = strcspn(host, "/?");
    if (memchr(host, '@', auth_len) != NULL) {
        return "must not carry a user name or password";
    }
    if (auth_len > 0 && host[0] == '[') {
        const char *close = memchr(host, ']', auth_len);
        host_len = close != NULL ? (size_t)(close - host) + 1 : 0;
        for (size_t i = 1; host_len > 0 && i + 1 < host_len; i++) {
            if (!(bp_hex_digit_value((unsigned char)host[i]) >= 0 || host[i] == ':' || host[i] == '.')) {
                host_len = 0;
            }
        }
    } else {
        host_len = strcspn(host, ":/?");
        for (size_t i = 0; i < host_len; i++) {
            if (!(is_alnum_char(host[i]) || host[i] == '-' || host[i] == '.')) {
                host_len = 0;
            }
        }
    }
    if (host_len == 0 || host_len > auth_len || !port_ok(host + host_len, auth_len - host_len)) {
        return "has no valid host";
    }
    if (!https && !((host_len == 9 && strncmp(host, "127.0.0.1", 9) == 0) ||
                    (host_len == 9 && strncmp(host, "localhost", 9) == 0) ||
                    (host_len == 5 && strncmp(host, "[::1]", 5) == 0))) {
        return "must use https:// (http:// is allowed only for 127.0.0.1, [::1] and localhost)";
    }
    return NULL;
}
