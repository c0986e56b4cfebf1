#ifndef BP_LIB_IPNET_H
#define BP_LIB_IPNET_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"

/* IP addresses and networks (CIDR), IPv4 and IPv6 in one form: an IPv4 address is held as its
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d), so one comparison serves both families. */

#define BP_IP_TEXT_MAX 46 /* INET6_ADDRSTRLEN: the longest canonical text, with its NUL */

struct bp_ip {
    unsigned char b[16];
};

struct bp_ipnet {
    struct bp_ip addr; /* with the host bits cleared */
    unsigned bits;     /* prefix length in the 128-bit form (an IPv4 /8 is 104) */
};

/* A bare address, "192.0.2.1" or "2001:db8::1" (no brackets, port or zone): true when text[0..len)
 * is one. */
bool bp_ip_parse(const char *text, size_t len, struct bp_ip *out);
/* From a socket address (AF_INET or AF_INET6); false for any other family. */
bool bp_ip_from_sockaddr(const void *sockaddr, struct bp_ip *out);
/* Canonical text (IPv4 dotted for IPv4 and IPv4-mapped addresses) into out[BP_IP_TEXT_MAX]. */
void bp_ip_format(const struct bp_ip *ip, char *out);

/* The peer a per-client limit counts: an IPv4 address as it is, an IPv6 address's /64 (what one
 * subscriber gets: an attacker holds a whole /64 as easily as one address). */
void bp_ip_peer_key(const struct bp_ip *ip, struct bp_ip *out);

/* "ADDRESS" or "ADDRESS/BITS" (0..32 for IPv4, 0..128 for IPv6); host bits must be zero, as in
 * "10.0.0.0/8": "10.0.0.1/8" is refused, since it is more likely a typo than meant. */
bool bp_ipnet_parse(const char *text, size_t len, struct bp_ipnet *out);
bool bp_ipnet_contains(const struct bp_ipnet *net, const struct bp_ip *ip);

/* A comma-separated list of networks (spaces around items allowed, at most max of them) into a
 * new array (free with bp_free; NULL and 0 for an empty list). BP_ERR_INVALID for a bad item, whose
 * text (up to 64 bytes) goes into bad when given. */
bp_err bp_ipnet_list_parse(const char *text, size_t max, struct bp_ipnet **out, size_t *out_n, char *bad,
                           size_t bad_cap);
/* The list in its canonical text ("10.0.0.0/8,2001:db8::/32": each network's address as
 * bp_ip_format writes it, and its prefix length in its own family), so that one restriction
 * written two ways is stored one way. NULL for an empty or bad list (bad as above). */
char *bp_ipnet_list_canonical(const char *text, size_t max, char *bad, size_t bad_cap);
bool bp_ipnet_list_contains(const struct bp_ipnet *nets, size_t n, const struct bp_ip *ip);

#endif
