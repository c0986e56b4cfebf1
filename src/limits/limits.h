#ifndef BP_LIMITS_LIMITS_H
#define BP_LIMITS_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/ipnet.h"
#include "lib/rate.h"

/* Request rate limits (issue 12): per credential — an API key, or an OAuth client with every
 * token it holds — and, per peer, on failed authentication (an IPv4 address, or an IPv6 /64).
 *
 * Each limit is a GCRA (the token bucket written as one timestamp: the theoretical arrival time
 * of the next request), so a credential costs one 8-byte time, updated in place, and the answer
 * is exact at any rate: `burst` requests at once, then one every period/count.
 *
 * In a cluster each node enforces its share of a credential's limit: the rate divided by the
 * number of live nodes (bp_limits_set_nodes), and the burst likewise (at least 1). Failed
 * authentications are counted by each node on its own (a guesser spread over n nodes gets n
 * times the allowance: still the same order, and no node waits on another). No request waits for the
 * store; behind a balancer that spreads a client's requests over the nodes, the client gets the
 * configured rate; when they all land on one node, less (never more).
 *
 * Memory: an entry per credential that has a limit and was used while its bucket was not full,
 * and per peer that failed to authenticate recently (at most BP_LIMITS_PEERS_MAX; when that many
 * peers are tracked, a new one is not, and its failures only get their 401). bp_limits_sweep
 * forgets entries whose bucket is full again.
 *
 * Threads: any; entries are spread over striped locks, one uncontended lock per call. */

#define BP_LIMITS_PEERS_MAX 65536

struct bp_limits_verdict {
    bool allowed;
    uint32_t limit;         /* this node's burst: RateLimit-Limit */
    uint32_t remaining;     /* requests this node would still allow at once */
    int64_t retry_after_ms; /* when refused: until the next one is allowed */
    int64_t reset_ms;       /* until the bucket is full again */
};

/* The number of live nodes that share each limit (1 until set; 0 is taken as 1). */
void bp_limits_set_nodes(unsigned n);
unsigned bp_limits_nodes(void);

/* One request of credential `id` (the key's id, or the client id of a token) under rate and
 * burst (0: the rate's count); a rate with count 0 allows everything. */
void bp_limits_take(const char *id, const struct bp_rate *rate, uint32_t burst, int64_t now_us,
                    struct bp_limits_verdict *out);

/* Failed authentication per peer: whether peer has spent its allowance of failures (rate and
 * burst as above), and then how long until its next attempt is taken (*retry_after_ms); and the
 * note of one more failure. */
bool bp_limits_peer_blocked(const struct bp_ip *peer, const struct bp_rate *rate, uint32_t burst,
                            int64_t now_us, int64_t *retry_after_ms);
/* The key under which failures of the peer at address text `addr` count (the address, or its
 * /64 for IPv6); false when addr is NULL or not an address. */
bool bp_limits_peer_key(const char *addr, struct bp_ip *out);
void bp_limits_peer_failed(const struct bp_ip *peer, const struct bp_rate *rate, uint32_t burst,
                           int64_t now_us);
/* For a caller that counts a failure before it knows the outcome, so that attempts in flight
 * count too: takes one failure from peer's allowance, or returns false (and how long until the
 * next is taken, *retry_after_ms) when it is spent; one lock, so a burst cannot slip between a
 * check and its count. bp_limits_peer_refund gives one back when the attempt succeeded. */
bool bp_limits_peer_take_failure(const struct bp_ip *peer, const struct bp_rate *rate, uint32_t burst,
                                 int64_t now_us, int64_t *retry_after_ms);
void bp_limits_peer_refund(const struct bp_ip *peer, const struct bp_rate *rate, uint32_t burst,
                           int64_t now_us);

/* Forgets the entries whose bucket is full again at now_us: the watcher calls it now and then. */
void bp_limits_sweep(int64_t now_us);
/* Entries held (credentials, peers), for tests and metrics. */
size_t bp_limits_credentials(void);
size_t bp_limits_peers(void);

#endif
