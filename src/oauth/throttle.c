/* Rate limits of the authorize page, shared by every OAuth thread behind one mutex.
 *
 * Sign-in: BP_OAUTH_THROTTLE_MAX_FAILURES attempts per name, or per peer address, within
 * BP_OAUTH_THROTTLE_WINDOW_MS (started by the first one) block further attempts until the window
 * ends. Counting per name stops guessing one operator's password from many addresses; per peer
 * stops one address spraying many names. An attempt is counted (reserved) before the password is
 * verified, under the same lock as the check, so parallel attempts cannot exceed the limit; a
 * successful sign-in gives the reservation back.
 *
 * Anonymous sessions: each cookieless GET of the authorize page stores a session row, so their
 * creation is limited per peer (BP_OAUTH_SESSION_MAX_PER_PEER per BP_OAUTH_SESSION_WINDOW_MS)
 * and over all peers together (BP_OAUTH_SESSION_MAX_GLOBAL per window): with the session TTL that
 * bounds the rows however many addresses an attacker has.
 *
 * A peer is an IPv4 address, or an IPv6 /64 (bp_ip_peer_key): one subscriber holds a whole /64
 * as easily as one address.
 *
 * Each limit has its own fixed-size table keyed by a digest of the name or address, so memory stays
 * bounded whatever attackers send, and a flood of one kind cannot push out entries of the other.
 * When a table is full, the entry whose window started earliest is forgotten, but never one that
 * is currently blocking: with every slot blocking, new keys are refused rather than a block being
 * lost. Process-local: each server process counts on its own. */
#include <pthread.h>
#include <string.h>

#include "auth/auth.h"
#include "lib/ipnet.h"
#include "oauth/oauth-int.h"

#define THROTTLE_SLOTS 4096

struct slot {
    unsigned char key[16];
    int64_t window_start_ms;
    int count;
    bool used;
};

struct table {
    struct slot slots[THROTTLE_SLOTS];
    int limit;
    int64_t window_ms;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct table signin = {.limit = BP_OAUTH_THROTTLE_MAX_FAILURES,
                              .window_ms = BP_OAUTH_THROTTLE_WINDOW_MS};
static struct table sessions = {.limit = BP_OAUTH_SESSION_MAX_PER_PEER,
                                .window_ms = BP_OAUTH_SESSION_WINDOW_MS};
/* Anonymous sessions created by everyone in the current window. */
static int64_t sessions_window_start_ms = -1;
static int sessions_in_window;

static void
make_key(char kind, const char *text, unsigned char out[16])
{
    unsigned char d[BP_DIGEST_LEN];
    char tag[2] = {kind, ':'};
    size_t n = strlen(text);
    unsigned char buf[2 + 512];
    char peer[BP_IP_TEXT_MAX];
    struct bp_ip ip;

    /* An address counts as its peer (its /64 for IPv6); names as they are. */
    if (kind != 'n' && bp_ip_parse(text, n, &ip)) {
        bp_ip_peer_key(&ip, &ip);
        bp_ip_format(&ip, peer);
        text = peer;
        n = strlen(peer);
    }
    if (n > sizeof(buf) - 2) {
        n = sizeof(buf) - 2;
    }
    memcpy(buf, tag, 2);
    memcpy(buf + 2, text, n);
    bp_digest(buf, n + 2, d);
    memcpy(out, d, 16);
}

static bool
expired(const struct table *t, const struct slot *s, int64_t now_ms)
{
    return now_ms - s->window_start_ms >= t->window_ms;
}

static bool
blocking(const struct table *t, const struct slot *s, int64_t now_ms)
{
    return s->used && !expired(t, s, now_ms) && s->count >= t->limit;
}

/* Caller holds mu. An entry whose window has ended is dropped on the way. */
static struct slot *
find(struct table *t, const unsigned char key[16], int64_t now_ms)
{
    for (size_t i = 0; i < THROTTLE_SLOTS; i++) {
        struct slot *s = &t->slots[i];
        if (s->used && memcmp(s->key, key, 16) == 0) {
            if (expired(t, s, now_ms)) {
                s->used = false;
                return NULL;
            }
            return s;
        }
    }
    return NULL;
}

/* A slot for a new key: a free or ended one, else the non-blocking one whose window started
 * earliest (never keep, the slot the caller already holds). NULL when every other slot is
 * blocking. Caller holds mu. */
static struct slot *
claim(struct table *t, const unsigned char key[16], int64_t now_ms, const struct slot *keep)
{
    struct slot *victim = NULL;

    for (size_t i = 0; i < THROTTLE_SLOTS; i++) {
        struct slot *s = &t->slots[i];
        if (s == keep) {
            continue;
        }
        if (!s->used || expired(t, s, now_ms)) {
            victim = s;
            break;
        }
        if (!blocking(t, s, now_ms) && (victim == NULL || s->window_start_ms < victim->window_start_ms)) {
            victim = s;
        }
    }
    if (victim == NULL) {
        return NULL;
    }
    memcpy(victim->key, key, 16);
    victim->window_start_ms = now_ms;
    victim->count = 0;
    victim->used = true;
    return victim;
}

/* The slot that counts key, claiming one when it has none; NULL when it is blocked or no slot
 * can be had. *fresh says whether it was just claimed. Caller holds mu. */
static struct slot *
slot_for_attempt(struct table *t, const unsigned char key[16], int64_t now_ms, const struct slot *keep,
                 bool *fresh)
{
    struct slot *s = find(t, key, now_ms);

    *fresh = false;
    if (s != NULL) {
        return s->count >= t->limit ? NULL : s;
    }
    *fresh = true;
    return claim(t, key, now_ms, keep);
}

bool
bp_oauth__throttle_blocked(const char *name, const char *peer, int64_t now_ms)
{
    unsigned char key[16];
    struct slot *s;
    bool blocked = false;

    pthread_mutex_lock(&mu);
    if (name != NULL) {
        make_key('n', name, key);
        s = find(&signin, key, now_ms);
        blocked = s != NULL && s->count >= signin.limit;
    }
    if (!blocked && peer != NULL) {
        make_key('p', peer, key);
        s = find(&signin, key, now_ms);
        blocked = s != NULL && s->count >= signin.limit;
    }
    pthread_mutex_unlock(&mu);
    return blocked;
}

bool
bp_oauth__throttle_reserve(const char *name, const char *peer, int64_t now_ms)
{
    unsigned char nkey[16];
    unsigned char pkey[16];
    struct slot *ns = NULL;
    struct slot *ps = NULL;
    bool nfresh = false;
    bool pfresh = false; /* a fresh peer slot needs no undo: nothing fails after it */
    bool ok = true;

    if (name != NULL) {
        make_key('n', name, nkey);
    }
    if (peer != NULL) {
        make_key('p', peer, pkey);
    }
    pthread_mutex_lock(&mu);
    if (name != NULL) {
        ns = slot_for_attempt(&signin, nkey, now_ms, NULL, &nfresh);
        ok = ns != NULL;
    }
    if (ok && peer != NULL) {
        ps = slot_for_attempt(&signin, pkey, now_ms, ns, &pfresh);
        ok = ps != NULL;
    }
    if (ok) {
        if (ns != NULL) {
            ns->count++;
        }
        if (ps != NULL) {
            ps->count++;
        }
    } else if (ns != NULL && nfresh) {
        ns->used = false; /* nothing was counted: give the slot back */
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

void
bp_oauth__throttle_success(const char *name, const char *peer, int64_t now_ms)
{
    unsigned char key[16];
    struct slot *s;

    pthread_mutex_lock(&mu);
    if (name != NULL) {
        make_key('n', name, key);
        s = find(&signin, key, now_ms);
        if (s != NULL) {
            s->used = false;
        }
    }
    if (peer != NULL) {
        make_key('p', peer, key);
        s = find(&signin, key, now_ms);
        if (s != NULL && s->count > 0) {
            s->count--; /* the reservation was not a failure */
        }
    }
    pthread_mutex_unlock(&mu);
}

void
bp_oauth__throttle_unreserve(const char *name, const char *peer, int64_t now_ms)
{
    const char *who[2] = {name, peer};
    const char kind[2] = {'n', 'p'};
    unsigned char key[16];
    struct slot *s;

    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < 2; i++) {
        if (who[i] == NULL) {
            continue;
        }
        make_key(kind[i], who[i], key);
        s = find(&signin, key, now_ms);
        if (s != NULL && s->count > 0) {
            s->count--;
        }
    }
    pthread_mutex_unlock(&mu);
}

bool
bp_oauth__session_rate_take(const char *peer, int64_t now_ms, int64_t *out_retry_after_s)
{
    unsigned char key[16];
    struct slot *s;
    bool fresh = false;
    bool ok;

    *out_retry_after_s = 0;
    if (peer == NULL) {
        return true;
    }
    make_key('s', peer, key);
    pthread_mutex_lock(&mu);
    if (sessions_window_start_ms < 0 || now_ms - sessions_window_start_ms >= BP_OAUTH_SESSION_WINDOW_MS) {
        sessions_window_start_ms = now_ms;
        sessions_in_window = 0;
    }
    if (sessions_in_window >= BP_OAUTH_SESSION_MAX_GLOBAL) {
        int64_t left_ms = BP_OAUTH_SESSION_WINDOW_MS - (now_ms - sessions_window_start_ms);
        *out_retry_after_s = left_ms > 0 ? (left_ms + 999) / 1000 : 1;
        pthread_mutex_unlock(&mu);
        return false;
    }
    s = slot_for_attempt(&sessions, key, now_ms, NULL, &fresh);
    ok = s != NULL;
    if (ok) {
        s->count++;
        sessions_in_window++;
    } else {
        struct slot *held = find(&sessions, key, now_ms);
        /* Blocked: until this peer's window ends. Table full: until the earliest window could. */
        int64_t left_ms =
            held != NULL ? sessions.window_ms - (now_ms - held->window_start_ms) : sessions.window_ms;
        *out_retry_after_s = left_ms > 0 ? (left_ms + 999) / 1000 : 1;
    }
    pthread_mutex_unlock(&mu);
    return ok;
}
