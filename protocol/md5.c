/*
 * PostgreSQL's MD5 password scheme: the stored form "md5" + hex(md5(password || user)) and the
 * salted response a client sends, "md5" + hex(md5(hex(stored) || salt)).
 */
#include "protocol/proto.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MD5_DIGEST 16
#define MD5_HEX (2 * MD5_DIGEST)

/* out = "md5" + hex(md5(a || b)), NUL-terminated. Returns 0, or -1 (out is then ""). */
static int md5_hex2(const void *a, size_t an, const void *b, size_t bn, char out[PROTO_MD5_LEN])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t digest[MD5_DIGEST];
    int ok = 0;
    out[0] = '\0';
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, a, an) == 1 && EVP_DigestUpdate(ctx, b, bn) == 1 &&
        EVP_DigestFinal_ex(ctx, digest, NULL) == 1)
        ok = 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    memcpy(out, "md5", 3);
    for (int i = 0; i < MD5_DIGEST; i++) {
        out[3 + 2 * i] = hex[digest[i] >> 4];
        out[4 + 2 * i] = hex[digest[i] & 15];
    }
    out[3 + MD5_HEX] = '\0';
    return 0;
}

void proto_md5_stored(const char *user, const char *password, char out[PROTO_MD5_LEN])
{
    (void)md5_hex2(password, strlen(password), user, strlen(user), out);
}

/* A secret that is already the stored form, as PostgreSQL recognises it. */
static int is_md5_hash(const char *s)
{
    return strncmp(s, "md5", 3) == 0 && strlen(s) == PROTO_MD5_LEN - 1;
}

void proto_md5_response(const char *user, const char *secret, const uint8_t salt[4],
                        char out[PROTO_MD5_LEN])
{
    char stored[PROTO_MD5_LEN];
    if (is_md5_hash(secret)) {
        memcpy(stored, secret, PROTO_MD5_LEN);
    } else if (md5_hex2(secret, strlen(secret), user, strlen(user), stored) < 0) {
        out[0] = '\0';
        return;
    }
    (void)md5_hex2(stored + 3, MD5_HEX, salt, 4, out);
    OPENSSL_cleanse(stored, sizeof stored);
}

int proto_md5_verify(const char *user, const char *secret, const uint8_t salt[4], const char *response)
{
    char expected[PROTO_MD5_LEN];
    proto_md5_response(user, secret, salt, expected);
    int ok = expected[0] != '\0' && strlen(response) == PROTO_MD5_LEN - 1 &&
             CRYPTO_memcmp(expected, response, PROTO_MD5_LEN - 1) == 0;
    OPENSSL_cleanse(expected, sizeof expected);
    return ok;
}
