#include "lib/rand.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <openssl/rand.h>

#include "lib/clock.h"

bp_err
bp_rand_bytes(void *out, size_t n)
{
    if (RAND_bytes(out, (int)n) != 1) {
        return BP_ERR_IO;
    }
    return BP_OK;
}

void
bp_hex_encode(const void *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

bp_err
bp_rand_hex(char *out, size_t nbytes)
{
    unsigned char tmp[64];
    bp_err rc;

    if (nbytes > sizeof(tmp)) {
        return BP_ERR_INVALID;
    }
    rc = bp_rand_bytes(tmp, nbytes);
    if (rc != BP_OK) {
        return rc;
    }
    bp_hex_encode(tmp, nbytes, out);
    return BP_OK;
}

/* 128 bits (big-endian) as 26 Crockford base32 digits, five bits at a time from the least
 * significant end: the first digit carries the top 3 bits. */
static void
ulid_encode(const unsigned char bytes[16], char out[BP_ULID_LEN + 1])
{
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint64_t hi = 0;
    uint64_t lo = 0;

    for (int i = 0; i < 8; i++) {
        hi = hi << 8 | bytes[i];
        lo = lo << 8 | bytes[8 + i];
    }
    for (int i = BP_ULID_LEN - 1; i >= 0; i--) {
        out[i] = b32[lo & 31];
        lo = lo >> 5 | hi << 59;
        hi >>= 5;
    }
    out[BP_ULID_LEN] = '\0';
}

static bp_err
ulid_from(bp_err (*rand)(void *out, size_t n), char out[BP_ULID_LEN + 1])
{
    unsigned char bytes[16];
    uint64_t ms = (uint64_t)bp_clock_wall_ms();
    bp_err rc;

    for (int i = 5; i >= 0; i--) {
        bytes[i] = (unsigned char)(ms & 0xff);
        ms >>= 8;
    }
    rc = rand(bytes + 6, 10);
    if (rc != BP_OK) {
        return rc;
    }
    ulid_encode(bytes, out);
    return BP_OK;
}

bp_err
bp_ulid(char out[BP_ULID_LEN + 1])
{
    return ulid_from(bp_rand_bytes, out);
}

bp_err
bp_ulid_id(char out[BP_ULID_LEN + 1])
{
    return ulid_from(bp_rand_id_bytes, out);
}

/* Bytes drawn per refill of a thread's id buffer: one RAND_bytes call serves 256 UUIDs. */
#define ID_BATCH 4096

struct id_pool {
    unsigned char bytes[ID_BATCH];
    size_t used;      /* bytes already handed out; ID_BATCH when empty */
    unsigned gen;     /* fork_gen when filled */
};

static _Thread_local struct id_pool id_pool = {.used = ID_BATCH};
/* Bumped in a forked child, so that it never hands out ids its parent's buffer also holds. */
static atomic_uint fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
after_fork_in_child(void)
{
    atomic_fetch_add(&fork_gen, 1);
}

static void
register_atfork(void)
{
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

bp_err
bp_rand_id_bytes(void *out, size_t n)
{
    struct id_pool *p = &id_pool;
    unsigned char *dst = out;
    unsigned gen = atomic_load_explicit(&fork_gen, memory_order_relaxed);

    if (n > ID_BATCH) {
        return bp_rand_bytes(out, n);
    }
    if (p->used == ID_BATCH || p->gen != gen || ID_BATCH - p->used < n) {
        pthread_once(&atfork_once, register_atfork);
        if (RAND_bytes(p->bytes, ID_BATCH) != 1) {
            p->used = ID_BATCH;
            return BP_ERR_IO;
        }
        p->used = 0;
        p->gen = gen;
    }
    memcpy(dst, p->bytes + p->used, n);
    /* Handed out once: wiped so that a later memory disclosure cannot tell past ids. */
    memset(p->bytes + p->used, 0, n);
    p->used += n;
    return BP_OK;
}

void
bp_uuid7_format(uint64_t unix_ms, const unsigned char rnd[BP_UUID7_RANDOM_BYTES], char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    size_t o = 0;

    for (int i = 5; i >= 0; i--) {
        b[i] = (unsigned char)(unix_ms & 0xff);
        unix_ms >>= 8;
    }
    memcpy(b + 6, rnd, BP_UUID7_RANDOM_BYTES);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70); /* version 7 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 9562 variant */
    for (size_t i = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
}

bp_err
bp_uuid7(char out[BP_UUID_LEN + 1])
{
    unsigned char rnd[BP_UUID7_RANDOM_BYTES];
    bp_err rc = bp_rand_id_bytes(rnd, sizeof(rnd));

    if (rc != BP_OK) {
        return rc;
    }
    bp_uuid7_format((uint64_t)bp_clock_wall_ms(), rnd, out);
    out[BP_UUID_LEN] = '\0';
    return BP_OK;
}
