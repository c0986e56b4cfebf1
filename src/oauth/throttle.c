/* Sign-in throttling for the authorize page: BP_OAUTH_THROTTLE_MAX_FAILURES failed sign-ins per
 * name, or per peer address, within BP_OAUTH_THROTTLE_WINDOW_MS block further attempts until the
 * window (started by the first failure) ends. Counting per name stops guessing one operator's
 * password from many addresses; per peer stops one address spraying many names.
 *
 * Threads: shared by every OAuth thread, behind one mutex. The table is fixed-size and keyed by a
 * digest of the name or address, so its memory stays bounded whatever attackers send; when it is
 * full the entry whose window started earliest is forgotten. Process-local: each server process
 * counts its own failures. */
#include <pthread.h>
#include <string.h>

#include "auth/auth.h"
#include "oauth/oauth-int.h"

#define THROTTLE_SLOTS 4096

struct slot {
    unsigned char key[16];
    int64_t window_start_ms;
    int failures;
    bool used;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[THROTTLE_SLOTS];

static void
make_key(char kind, const char *text, unsigned char out[16])
{
    unsigned char d[BP_DIGEST_LEN];
    char tag[2] = {kind, ':'};
    size_t n = strlen(text);
    unsigned char buf[2 + 512];

    if (n > sizeof(buf) - 2) {
        n = sizeof(buf) - 2;
    }
    memcpy(buf, tag, 2);
    memcpy(buf + 2, text, n);
    bp_digest(buf, n + 2, d);
    memcpy(out, d, 16);
}

/* Caller holds mu. An entry whose window has ended is dropped on the way. */
static struct slot *
find(const unsigned char key[16], int64_t now_ms)
{
    for (size_t i = 0; i < THROTTLE_SLOTS; i++) {
        struct slot *s = &slots[i];
        if (s->used && memcmp(s->key, key, 16) == 0) {
            if (now_ms - s->window_start_ms >= BP_OAUTH_THROTTLE_WINDOW_MS) {
                s->used = false;
                return NULL;
            }
            return s;
        }
    }
    return NULL;
}

static struct slot *
claim(const unsigned char key[16], int64_t now_ms)
{
    struct slot *victim = &slots[0];

    for (size_t i = 0; i < THROTTLE_SLOTS; i++) {
        struct slot *s = &slots[i];
        if (!s->used || now_ms - s->window_start_ms >= BP_OAUTH_THROTTLE_WINDOW_MS) {
            victim = s;
            break;
        }
        if (s->window_start_ms < victim->window_start_ms) {
            victim = s;
        }
    }
    memcpy(victim->key, key, 16);
    victim->window_start_ms = now_ms;
    victim->failures = 0;
    victim->used = true;
    return victim;
}

static bool
blocked_locked(char kind, const char *text, int64_t now_ms)
{
    unsigned char key[16];
    struct slot *s;

    if (text == NULL) {
        return false;
    }
    make_key(kind, text, key);
    s = find(key, now_ms);
    return s != NULL && s->failures >= BP_OAUTH_THROTTLE_MAX_FAILURES;
}

static void
fail_locked(char kind, const char *text, int64_t now_ms)
{
    unsigned char key[16];
    struct slot *s;

    if (text == NULL) {
        return;
    }
    make_key(kind, text, key);
    s = find(key, now_ms);
    if (s == NULL) {
        s = claim(key, now_ms);
    }
    s->failures++;
}

bool
bp_oauth__throttle_blocked(const char *name, const char *peer, int64_t now_ms)
{
    bool blocked;

    pthread_mutex_lock(&mu);
    blocked = blocked_locked('n', name, now_ms) || blocked_locked('p', peer, now_ms);
    pthread_mutex_unlock(&mu);
    return blocked;
}

void
bp_oauth__throttle_fail(const char *name, const char *peer, int64_t now_ms)
{
    pthread_mutex_lock(&mu);
    fail_locked('n', name, now_ms);
    fail_locked('p', peer, now_ms);
    pthread_mutex_unlock(&mu);
}

void
bp_oauth__throttle_success(const char *name, int64_t now_ms)
{
    unsigned char key[16];
    struct slot *s;

    if (name == NULL) {
        return;
    }
    make_key('n', name, key);
    pthread_mutex_lock(&mu);
    s = find(key, now_ms);
    if (s != NULL) {
        s->used = false;
    }
    pthread_mutex_unlock(&mu);
}
