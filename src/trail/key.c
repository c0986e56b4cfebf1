/* Ed25519 keys for checkpoint signatures, through OpenSSL's EVP interface. The private key never
 * leaves this file: callers hold an opaque handle and get hex signatures and a key id (the first
 * 16 hex digits of the SHA-256 of the raw public key), which names the key without revealing it. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lib/alloc.h"
#include "lib/sha256.h"
#include "trail/trail-int.h"

struct bp_trail_key {
    EVP_PKEY *pkey;
    bool has_private;
    char id[17];
};

static void
to_hex(const unsigned char *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 0xF];
    }
    out[2 * n] = '\0';
}

/* The handle for pkey (consumed): NULL with a reason in err when it is not an Ed25519 key. what
 * names where it came from, for that reason. */
static struct bp_trail_key *
key_new(EVP_PKEY *pkey, bool priv, const char *what, char *err, size_t err_cap)
{
    struct bp_trail_key *k;
    unsigned char raw[32];
    unsigned char md[BP_SHA256_LEN];
    size_t raw_len = sizeof(raw);
    char hex[2 * BP_SHA256_LEN + 1];

    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519 || EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len) != 1) {
        EVP_PKEY_free(pkey);
        snprintf(err, err_cap,
                 "%s is not an Ed25519 key (make one with `openssl genpkey -algorithm ed25519`)", what);
        return NULL;
    }
    k = bp_calloc(1, sizeof(*k));
    k->pkey = pkey;
    k->has_private = priv;
    bp_sha256(raw, raw_len, md);
    to_hex(md, sizeof(md), hex);
    memcpy(k->id, hex, 16);
    k->id[16] = '\0';
    return k;
}

struct bp_trail_key *
bp_trail_key_load(const char *path, bool need_private, char *err, size_t err_cap)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *pkey = NULL;
    bool priv = false;

    if (f == NULL) {
        snprintf(err, err_cap, "cannot read the key file %s", path);
        return NULL;
    }
    pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    if (pkey != NULL) {
        priv = true;
    } else if (!need_private) {
        rewind(f);
        pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    }
    fclose(f);
    if (pkey == NULL) {
        snprintf(err, err_cap,
                 "%s holds no %s (make one with `openssl genpkey -algorithm ed25519 -out FILE`)", path,
                 need_private ? "PEM private key" : "PEM key");
        return NULL;
    }
    return key_new(pkey, priv, path, err, err_cap);
}

/* A server reading a key sent to it must never ask for a passphrase (OpenSSL's default callback
 * would read one from a terminal): an encrypted key is simply no key. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

struct bp_trail_key *
bp_trail_key_from_pem(const char *text, size_t len, bool need_private, char *err, size_t err_cap)
{
    BIO *bio = len <= INT_MAX ? BIO_new_mem_buf(text, (int)len) : NULL;
    EVP_PKEY *pkey = NULL;
    bool priv = false;

    if (bio == NULL) {
        snprintf(err, err_cap, "the key cannot be read");
        return NULL;
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (pkey != NULL) {
        priv = true;
    } else if (!need_private) {
        (void)BIO_reset(bio);
        pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    }
    BIO_free(bio);
    /* What failed to parse stays queued on this thread otherwise, for the next OpenSSL user on
     * it to misread as its own failure. */
    ERR_clear_error();
    if (pkey == NULL) {
        snprintf(err, err_cap, "%s",
                 need_private ? "not a PEM private key (make one with `openssl genpkey -algorithm ed25519`)"
                              : "not a PEM key (the public one: `openssl pkey -in KEY -pubout`)");
        return NULL;
    }
    return key_new(pkey, priv, "the key", err, err_cap);
}

bool
bp_trail_key_has_private(const struct bp_trail_key *k)
{
    return k->has_private;
}

void
bp_trail_key_free(struct bp_trail_key *k)
{
    if (k == NULL) {
        return;
    }
    EVP_PKEY_free(k->pkey);
    bp_free(k);
}

const char *
bp_trail__key_id(const struct bp_trail_key *k)
{
    return k->id;
}

bool
bp_trail__sign(const struct bp_trail_key *k, const char *text, char out[BP_TRAIL_SIG_HEX])
{
    EVP_MD_CTX *ctx;
    unsigned char sig[64];
    size_t sig_len = sizeof(sig);
    bool ok;

    if (!k->has_private || (ctx = EVP_MD_CTX_new()) == NULL) {
        return false;
    }
    ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
         EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)text, strlen(text)) == 1 && sig_len == 64;
    EVP_MD_CTX_free(ctx);
    if (ok) {
        to_hex(sig, sig_len, out);
    }
    return ok;
}

static int
hex_val(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

bool
bp_trail__check(const struct bp_trail_key *k, const char *text, const char *sig_hex)
{
    unsigned char sig[64];
    EVP_MD_CTX *ctx;
    bool ok;

    if (sig_hex == NULL || strlen(sig_hex) != 2 * sizeof(sig)) {
        return false;
    }
    for (size_t i = 0; i < sizeof(sig); i++) {
        int hi = hex_val(sig_hex[2 * i]), lo = hex_val(sig_hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        sig[i] = (unsigned char)(hi << 4 | lo);
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL) {
        return false;
    }
    ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
         EVP_DigestVerify(ctx, sig, sizeof(sig), (const unsigned char *)text, strlen(text)) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}
