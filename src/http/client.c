/* Who the client is: the connection's peer, unless that peer is a trusted proxy
 * (trusted_proxies), whose X-Forwarded-For and X-Forwarded-Proto are then believed.
 *
 * The chain is read from the right, as nginx's realip module does with real_ip_recursive: each
 * trusted proxy appends the address it got the request from, so the rightmost address that is not
 * a trusted proxy is the first one no trusted party vouches for, and that is the client. What lies
 * left of it came from the client itself and is not forwarded: Core's gin takes the leftmost
 * X-Forwarded-For entry as the client (ClientIP), and would otherwise take whatever the client
 * wrote. An entry that is not a bare IP address ends the walk (the client is then the last good
 * one); a chain of trusted proxies only names its leftmost as the client. From a peer that is not
 * trusted, nothing a client sent about addresses is believed or forwarded. */
#include <stdint.h>
#include <string.h>

#include "http/http-int.h"
#include "lib/arena.h"
#include "lib/str.h"

/* At most this many X-Forwarded-For entries are looked at, from the right: more proxies than
 * this between the client and us is not a real deployment, and the walk stays bounded. */
#define XFF_ENTRIES_MAX 32

void
bp_http__conf_trust(struct bp_http_conf *conf, const struct bp_config *cfg)
{
    conf->trusted = NULL;
    conf->n_trusted = 0;
    if (cfg->trusted_proxies != NULL) {
        (void)bp_ipnet_list_parse(cfg->trusted_proxies, 256, &conf->trusted, &conf->n_trusted, NULL, 0);
    }
}

struct entry {
    const char *text;
    size_t len;
};

/* The X-Forwarded-For entries, in order over every such header, the last XFF_ENTRIES_MAX of them
 * kept (a ring: the ones before are never reached by the walk from the right). Returns how many
 * are kept; *out_first is where the oldest is. */
static size_t
xff_entries(const struct bp_http_head *h, struct entry *ring, size_t *out_first)
{
    size_t total = 0;

    for (size_t i = 0; i < h->n_headers; i++) {
        const struct bp_http_header *hd = &h->headers[i];
        size_t p = 0;
        if (!bp_str_ieq(hd->name, hd->name_len, "X-Forwarded-For")) {
            continue;
        }
        while (p <= hd->value_len) {
            size_t start = p;
            size_t end;
            while (p < hd->value_len && hd->value[p] != ',') {
                p++;
            }
            end = p;
            while (start < end && (hd->value[start] == ' ' || hd->value[start] == '\t')) {
                start++;
            }
            while (end > start && (hd->value[end - 1] == ' ' || hd->value[end - 1] == '\t')) {
                end--;
            }
            ring[total % XFF_ENTRIES_MAX] = (struct entry){hd->value + start, end - start};
            total++;
            p++; /* past the comma (or the end) */
        }
    }
    *out_first = total > XFF_ENTRIES_MAX ? total % XFF_ENTRIES_MAX : 0;
    return total > XFF_ENTRIES_MAX ? XFF_ENTRIES_MAX : total;
}

/* X-Forwarded-Proto from a trusted proxy: one header whose value is exactly http or https. */
static bool
forwarded_https(const struct bp_http_head *h)
{
    const struct bp_http_header *found = NULL;

    for (size_t i = 0; i < h->n_headers; i++) {
        if (bp_str_ieq(h->headers[i].name, h->headers[i].name_len, "X-Forwarded-Proto")) {
            if (found != NULL) {
                return false;
            }
            found = &h->headers[i];
        }
    }
    return found != NULL && bp_str_ieq(found->value, found->value_len, "https");
}

void
bp_http__req_client(struct bp_http_req *r)
{
    const struct bp_conn *c = r->conn;
    const struct bp_http_conf *conf = r->conf;
    struct entry ring[XFF_ENTRIES_MAX];
    struct bp_ip client_ip[XFF_ENTRIES_MAX];
    size_t first = 0;
    size_t n;
    size_t client = SIZE_MAX; /* index (in order, 0 = oldest kept) of the client's entry */
    char *chain;
    size_t len = 0;

    memcpy(r->client, c->peer, sizeof(r->client));
    r->forwarded_for = NULL;
    r->forwarded_for_len = 0;
    r->https = c->ssl != NULL;
    if (conf->n_trusted == 0 || !c->peer_known ||
        !bp_ipnet_list_contains(conf->trusted, conf->n_trusted, &c->peer_ip)) {
        return;
    }
    r->https = r->https || forwarded_https(r->head);
    n = xff_entries(r->head, ring, &first);
    for (size_t k = n; k-- > 0;) {
        const struct entry *e = &ring[(first + k) % XFF_ENTRIES_MAX];
        if (!bp_ip_parse(e->text, e->len, &client_ip[k])) {
            break;
        }
        client = k;
        if (!bp_ipnet_list_contains(conf->trusted, conf->n_trusted, &client_ip[k])) {
            break;
        }
    }
    if (client == SIZE_MAX) {
        return; /* no address to believe: the peer is the client */
    }
    bp_ip_format(&client_ip[client], r->client);
    /* The chain from the client on, each address in its canonical form. */
    chain = bp_arena_alloc(&r->arena, (n - client) * (BP_IP_TEXT_MAX + 2));
    for (size_t k = client; k < n; k++) {
        char text[BP_IP_TEXT_MAX];
        size_t tlen;
        bp_ip_format(&client_ip[k], text);
        tlen = strlen(text);
        if (k > client) {
            memcpy(chain + len, ", ", 2);
            len += 2;
        }
        memcpy(chain + len, text, tlen);
        len += tlen;
    }
    r->forwarded_for = chain;
    r->forwarded_for_len = len;
}
