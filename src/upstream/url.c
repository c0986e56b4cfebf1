/* Splitting a Core URL ("http[s]://host[:port]/path?query") into what the client needs: the
 * origin (scheme, host, port) and the request target, sent as is. Instance URLs are validated when
 * they are stored (cli/cmd_instance.c); this refuses only what the client could not send
 * faithfully: user info, whitespace or control bytes (they would break the request line), an
 * unknown scheme, a bad port, an empty host. */
#include "upstream/upstream-int.h"

#include <string.h>
#include <strings.h>

#include "lib/str.h"

static bool
is_host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

static bool
is_ipv6_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
}

static bp_err
parse_authority(const char *a, size_t len, struct bp_upstream__url *out, const char **out_why)
{
    size_t i = 0;
    uint64_t port = 0;

    if (memchr(a, '@', len) != NULL) {
        *out_why = "user info in the URL";
        return BP_ERR_INVALID;
    }
    if (len > 0 && a[0] == '[') {
        for (i = 1; i < len && a[i] != ']'; i++) {
            if (!is_ipv6_char((unsigned char)a[i])) {
                *out_why = "bad IPv6 address in the URL";
                return BP_ERR_INVALID;
            }
        }
        if (i >= len || i == 1) {
            *out_why = "bad IPv6 address in the URL";
            return BP_ERR_INVALID;
        }
        out->host = a + 1;
        out->host_len = i - 1;
        i++;
    } else {
        while (i < len && a[i] != ':') {
            if (!is_host_char((unsigned char)a[i])) {
                *out_why = "bad character in the URL's host";
                return BP_ERR_INVALID;
            }
            i++;
        }
        if (i == 0) {
            *out_why = "no host in the URL";
            return BP_ERR_INVALID;
        }
        out->host = a;
        out->host_len = i;
    }
    if (i == len) {
        return BP_OK;
    }
    if (a[i] != ':' || bp_str_parse_u64(a + i + 1, len - i - 1, 65535, &port) != BP_OK ||
        port == 0) {
        *out_why = "bad port in the URL";
        return BP_ERR_INVALID;
    }
    out->port = (uint16_t)port;
    out->port_given = true;
    return BP_OK;
}

bp_err
bp_upstream__url_parse(const char *url, struct bp_upstream__url *out, const char **out_why)
{
    struct bp_upstream__url u;
    const char *auth;
    const char *end;
    size_t auth_len;
    size_t len = strlen(url);

    memset(&u, 0, sizeof(u));
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == 0x7f) {
            *out_why = "whitespace or control byte in the URL";
            return BP_ERR_INVALID;
        }
    }
    if (strncasecmp(url, "http://", 7) == 0) {
        auth = url + 7;
        u.port = 80;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        auth = url + 8;
        u.tls = true;
        u.port = 443;
    } else {
        *out_why = "the URL is not http:// or https://";
        return BP_ERR_INVALID;
    }
    /* The authority ends at the path, the query or a fragment. */
    auth_len = strcspn(auth, "/?#");
    if (parse_authority(auth, auth_len, &u, out_why) != BP_OK) {
        return BP_ERR_INVALID;
    }
    /* A fragment is the client's business and never sent (as curl did). */
    end = strchr(auth + auth_len, '#');
    if (end == NULL) {
        end = url + len;
    }
    u.target = auth + auth_len;
    u.target_len = (size_t)(end - u.target);
    if (u.target_len == 0) {
        u.target = "/";
        u.target_len = 1;
    } else if (u.target[0] == '?') {
        /* "http://h?q": the request line still needs a path. */
        *out_why = "a query without a path in the URL";
        return BP_ERR_INVALID;
    }
    *out = u;
    return BP_OK;
}
