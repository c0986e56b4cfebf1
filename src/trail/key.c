/* Ed25519 keys for checkpoint signatures, through OpenSSL's EVP interface. The private key never
 * leaves this file: callers hold an opaque handle and get hex signatures and a key id (the first
 * 16 hex digits of the SHA-256 of the raw public key), which names the key without revealing it. */
#include <stdio.h>
#include <string.h>

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

struct bp_trail_key *
bp_trail_key_load(const char *path, bool need_private, char *err, size_t err_cap)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *pkey = NULL;
    bool priv = false;
    struct bp_trail_key *k;
    unsigned char raw[32];
    unsigned char md[BP_SHA256_LEN];
    size_t raw_len = sizeof(raw);
    char hex[2 * BP_SHA256_LEN + 1];

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
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519 || EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len) != 1) {
        EVP_PKEY_free(pkey);
        snprintf(err, err_cap,
                 "%s is not an Ed25519 key (make one with `openssl genpkey -algorithm ed25519`)", path);
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
