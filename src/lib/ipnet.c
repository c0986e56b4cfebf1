/* IP addresses and networks (ipnet.h). Parsing is inet_pton's, on a bounded copy. */
#include "lib/ipnet.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/alloc.h"
#include "lib/buf.h"
#include "lib/bug.h"

static const unsigned char v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool
is_v4(const struct bp_ip *ip)
{
    return memcmp(ip->b, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

/* Parses the address and says which family it was written in. */
static bool
parse_family(const char *text, size_t len, struct bp_ip *out, bool *out_v4)
{
    char buf[BP_IP_TEXT_MAX];

    if (len == 0 || len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, out->b + 12) == 1) {
        memcpy(out->b, v4_mapped_prefix, sizeof(v4_mapped_prefix));
        *out_v4 = true;
        return true;
    }
    *out_v4 = false;
    return inet_pton(AF_INET6, buf, out->b) == 1;
}

bool
bp_ip_parse(const char *text, size_t len, struct bp_ip *out)
{
    bool v4;

    return parse_family(text, len, out, &v4);
}

bool
bp_ip_from_sockaddr(const void *sockaddr, struct bp_ip *out)
{
    const struct sockaddr *sa = sockaddr;

    if (sa->sa_family == AF_INET) {
        memcpy(out->b, v4_mapped_prefix, sizeof(v4_mapped_prefix));
        memcpy(out->b + 12, &((const struct sockaddr_in *)sockaddr)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out->b, &((const struct sockaddr_in6 *)sockaddr)->sin6_addr, 16);
        return true;
    }
    return false;
}

void
bp_ip_format(const struct bp_ip *ip, char *out)
{
    if (is_v4(ip)) {
        inet_ntop(AF_INET, ip->b + 12, out, BP_IP_TEXT_MAX);
    } else {
        inet_ntop(AF_INET6, ip->b, out, BP_IP_TEXT_MAX);
    }
}

void
bp_ip_peer_key(const struct bp_ip *ip, struct bp_ip *out)
{
    *out = *ip;
    if (!is_v4(ip)) {
        memset(out->b + 8, 0, 8);
    }
}

bool
bp_ipnet_parse(const char *text, size_t len, struct bp_ipnet *out)
{
    const char *slash = memchr(text, '/', len);
    size_t addr_len = slash ? (size_t)(slash - text) : len;
    unsigned bits;
    bool v4;

    if (!parse_family(text, addr_len, &out->addr, &v4)) {
        return false;
    }
    bits = v4 ? 32 : 128;
    if (slash != NULL) {
        size_t digits = len - addr_len - 1;
        unsigned v = 0;
        if (digits == 0 || digits > 3) {
            return false;
        }
        for (size_t i = 0; i < digits; i++) {
            char ch = slash[1 + i];
            if (ch < '0' || ch > '9') {
                return false;
            }
            v = v * 10 + (unsigned)(ch - '0');
        }
        if (v > bits) {
            return false;
        }
        bits = v;
    }
    out->bits = bits + (v4 ? 96 : 0);
    /* Host bits must be zero. */
    for (unsigned i = out->bits; i < 128; i++) {
        if (out->addr.b[i / 8] & (0x80u >> (i % 8))) {
            return false;
        }
    }
    return true;
}

bool
bp_ipnet_contains(const struct bp_ipnet *net, const struct bp_ip *ip)
{
    unsigned full = net->bits / 8;
    unsigned rest = net->bits % 8;

    if (memcmp(net->addr.b, ip->b, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    return ((net->addr.b[full] ^ ip->b[full]) & (unsigned char)(0xff00u >> rest)) == 0;
}

bp_err
bp_ipnet_list_parse(const char *text, size_t max, struct bp_ipnet **out, size_t *out_n, char *bad,
                    size_t bad_cap)
{
    size_t items = 1;
    struct bp_ipnet *nets;
    size_t n = 0;
    const char *p = text;

    *out = NULL;
    *out_n = 0;
    if (*text == '\0') {
        return BP_OK;
    }
    for (const char *q = text; *q != '\0'; q++) {
        items += *q == ',';
    }
    if (items > max) {
        if (bad != NULL) {
            snprintf(bad, bad_cap, "more than %zu networks", max);
        }
        return BP_ERR_INVALID;
    }
    nets = bp_calloc(items, sizeof(*nets));
    for (;;) {
        const char *end = strchr(p, ',');
        const char *a = p;
        const char *b = end != NULL ? end : p + strlen(p);
        while (a < b && (*a == ' ' || *a == '\t')) {
            a++;
        }
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) {
            b--;
        }
        if (!bp_ipnet_parse(a, (size_t)(b - a), &nets[n])) {
            if (bad != NULL) {
                size_t shown = (size_t)(b - a) < 64 ? (size_t)(b - a) : 64;
                snprintf(bad, bad_cap, "'%.*s'", (int)shown, a);
            }
            bp_free(nets);
            return BP_ERR_INVALID;
        }
        n++;
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    *out = nets;
    *out_n = n;
    return BP_OK;
}

bool
bp_ipnet_list_contains(const struct bp_ipnet *nets, size_t n, const struct bp_ip *ip)
{
    for (size_t i = 0; i < n; i++) {
        if (bp_ipnet_contains(&nets[i], ip)) {
            return true;
        }
    }
    return false;
}

char *
bp_ipnet_list_canonical(const char *text, size_t max, char *bad, size_t bad_cap)
{
    struct bp_ipnet *nets = NULL;
    size_t n = 0;
    struct bp_buf b;

    if (bad != NULL && bad_cap > 0) {
        bad[0] = '\0';
    }
    if (bp_ipnet_list_parse(text, max, &nets, &n, bad, bad_cap) != BP_OK || n == 0) {
        bp_free(nets);
        return NULL;
    }
    bp_buf_init(&b, n * (BP_IP_TEXT_MAX + 5));
    for (size_t i = 0; i < n; i++) {
        char addr[BP_IP_TEXT_MAX];
        char item[BP_IP_TEXT_MAX + 6];
        bp_ip_format(&nets[i].addr, addr);
        snprintf(item, sizeof(item), "%s%s/%u", i > 0 ? "," : "", addr,
                 is_v4(&nets[i].addr) && nets[i].bits >= 96 ? nets[i].bits - 96 : nets[i].bits);
        BP_BUG_ON(bp_buf_append_str(&b, item) != BP_OK);
    }
    bp_free(nets);
    return bp_buf_take(&b, NULL);
}
