/*
 * SCRAM-SHA-256 building blocks shared by the server and client roles: the SHA-256 primitives,
 * key derivation, and bounds-safe readers of "a=value,b=value" messages.
 */
#include "protocol/scram_internal.h"

#include <stdlib.h>
#include <string.h>

#include <stringprep.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

int proto__hmac(const uint8_t key[PROTO_SCRAM_KEY_LEN], const void *msg, size_t n,
                uint8_t out[PROTO_SCRAM_KEY_LEN])
{
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key, PROTO_SCRAM_KEY_LEN, msg, n, out, &len) == NULL)
        return -1;
    return len == PROTO_SCRAM_KEY_LEN ? 0 : -1;
}

int proto__sha256(const void *in, size_t n, uint8_t out[PROTO_SCRAM_KEY_LEN])
{
    unsigned int len = 0;
    if (EVP_Digest(in, n, out, &len, EVP_sha256(), NULL) != 1)
        return -1;
    return len == PROTO_SCRAM_KEY_LEN ? 0 : -1;
}

char *proto_saslprep(const char *password)
{
    const unsigned char *p = (const unsigned char *)password;
    char *out = NULL;

    while (*p != 0 && *p < 0x80)
        p++;
    if (*p == 0)
        return NULL;               /* ASCII: as it is, as PostgreSQL leaves it (control bytes too) */
    if (stringprep_profile(password, &out, "SASLprep", STRINGPREP_NO_UNASSIGNED) != STRINGPREP_OK) {
        free(out);
        return NULL;
    }
    if (out != NULL && out[0] == '\0') {
        free(out);
        return NULL;
    }
    return out;
}

int proto__scram_keys(const char *password, const uint8_t *salt, int salt_len, int iterations,
                      uint8_t client_key[PROTO_SCRAM_KEY_LEN], uint8_t server_key[PROTO_SCRAM_KEY_LEN])
{
    uint8_t salted[PROTO_SCRAM_KEY_LEN];
    char *prepped = proto_saslprep(password);
    const char *pw = prepped != NULL ? prepped : password;
    size_t plen = strlen(pw);
    int rc = -1;
    if (plen <= INT32_MAX && salt_len >= 1 && iterations >= 1 && iterations <= PROTO__SCRAM_MAX_ITER &&
        PKCS5_PBKDF2_HMAC(pw, (int)plen, salt, salt_len, iterations, EVP_sha256(),
                          PROTO_SCRAM_KEY_LEN, salted) == 1 &&
        proto__hmac(salted, "Client Key", 10, client_key) == 0 &&
        proto__hmac(salted, "Server Key", 10, server_key) == 0)
        rc = 0;
    OPENSSL_cleanse(salted, sizeof salted);
    if (prepped != NULL) {
        OPENSSL_cleanse(prepped, strlen(prepped));
        free(prepped);
    }
    return rc;
}

int proto__scram_copy(const char *in, size_t len, char *buf, size_t cap)
{
    if (in == NULL || len >= cap || memchr(in, '\0', len) != NULL)
        return -1;
    memcpy(buf, in, len);
    buf[len] = '\0';
    return 0;
}

static int is_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int proto__scram_attr(const char **cur, char name, struct proto__span *v)
{
    const char *p = *cur;
    if ((name != 0 ? p[0] != name : !is_letter(p[0])) || p[1] != '=')
        return -1;
    const char *val = p + 2;
    const char *end = strchr(val, ',');
    if (end == NULL) {
        end = val + strlen(val);
        *cur = end;
    } else {
        if (end[1] == '\0')
            return -1;
        *cur = end + 1;
    }
    v->p = val;
    v->n = (size_t)(end - val);
    return 0;
}

int proto__scram_printable(struct proto__span v)
{
    if (v.n == 0)
        return 0;
    for (size_t i = 0; i < v.n; i++)
        if (v.p[i] < 0x21 || v.p[i] > 0x7e || v.p[i] == ',')
            return 0;
    return 1;
}

int proto__scram_iter(struct proto__span v, int *iterations)
{
    long long n = 0;
    if (v.n == 0 || v.n > 10)
        return -1;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        n = n * 10 + (v.p[i] - '0');
    }
    if (n < 1 || n > PROTO__SCRAM_MAX_ITER)
        return -1;
    *iterations = (int)n;
    return 0;
}

int proto__scram_sign(const uint8_t key[PROTO_SCRAM_KEY_LEN], const char *client_first_bare,
                      const char *server_first, struct proto__span final_without_proof,
                      uint8_t out[PROTO_SCRAM_KEY_LEN])
{
    char msg[3 * PROTO_SCRAM_MAX_MSG];
    size_t a = strlen(client_first_bare), b = strlen(server_first), c = final_without_proof.n;
    if (a + b + c + 2 > sizeof msg)
        return -1;
    memcpy(msg, client_first_bare, a);
    msg[a] = ',';
    memcpy(msg + a + 1, server_first, b);
    msg[a + 1 + b] = ',';
    memcpy(msg + a + b + 2, final_without_proof.p, c);
    return proto__hmac(key, msg, a + b + c + 2, out);
}

int proto__scram_emit(const char *s, size_t n, char *out, size_t outcap, size_t *outlen)
{
    if (out == NULL || n >= outcap)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    if (outlen != NULL)
        *outlen = n;
    return 0;
}
