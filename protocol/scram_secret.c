/*
 * SCRAM-SHA-256 secrets in PostgreSQL's stored form
 * "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", and random nonces.
 */
#include "protocol/scram_internal.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define SECRET_PREFIX "SCRAM-SHA-256$"

/* The span [p, first `sep` or end of string); *next is past the separator, or NULL if none. */
static struct proto__span field(const char *p, char sep, const char **next)
{
    const char *end = strchr(p, sep);
    struct proto__span v = { p, end != NULL ? (size_t)(end - p) : strlen(p) };
    *next = end != NULL ? end + 1 : NULL;
    return v;
}

static int decode_key(struct proto__span v, uint8_t out[PROTO_SCRAM_KEY_LEN])
{
    return proto__b64_decode(v.p, v.n, out, PROTO_SCRAM_KEY_LEN) == PROTO_SCRAM_KEY_LEN ? 0 : -1;
}

int proto_scram_parse_secret(const char *s, struct proto_scram_secret *out)
{
    const char *p = s, *after_iter, *after_salt, *after_stored, *none;
    if (strncmp(p, SECRET_PREFIX, strlen(SECRET_PREFIX)) != 0)
        return -1;
    p += strlen(SECRET_PREFIX);
    struct proto__span iter = field(p, ':', &after_iter);
    if (after_iter == NULL || proto__scram_iter(iter, &out->iterations) < 0)
        return -1;
    struct proto__span salt = field(after_iter, '$', &after_salt);
    if (after_salt == NULL)
        return -1;
    int n = proto__b64_decode(salt.p, salt.n, out->salt, sizeof out->salt);
    if (n < 1)
        return -1;
    out->salt_len = n;
    struct proto__span stored = field(after_salt, ':', &after_stored);
    if (after_stored == NULL || decode_key(stored, out->stored_key) < 0)
        return -1;
    struct proto__span server = field(after_stored, ':', &none);
    if (none != NULL || decode_key(server, out->server_key) < 0)
        return -1;
    return 0;
}

int proto_scram_make_secret(const char *password, const uint8_t *salt, int salt_len, int iterations,
                            struct proto_scram_secret *out)
{
    uint8_t client_key[PROTO_SCRAM_KEY_LEN];
    if (salt_len < 1 || salt_len > PROTO_SCRAM_MAX_SALT)
        return -1;
    if (proto__scram_keys(password, salt, salt_len, iterations, client_key, out->server_key) < 0)
        return -1;
    int rc = proto__sha256(client_key, sizeof client_key, out->stored_key);
    OPENSSL_cleanse(client_key, sizeof client_key);
    if (rc < 0)
        return -1;
    memcpy(out->salt, salt, (size_t)salt_len);
    out->salt_len = salt_len;
    out->iterations = iterations;
    return 0;
}

static int mock_part(const uint8_t key[PROTO_SCRAM_KEY_LEN], const char *label, const char *user,
                     uint8_t out[PROTO_SCRAM_KEY_LEN])
{
    char msg[PROTO_SCRAM_MAX_MSG];
    size_t l = strlen(label), u = strlen(user);

    if (l + 1 + u > sizeof msg)
        u = sizeof msg - l - 1;   /* a longer user name cannot log in anyway; its prefix keys it */
    memcpy(msg, label, l);
    msg[l] = ':';
    memcpy(msg + l + 1, user, u);
    return proto__hmac(key, msg, l + 1 + u, out);
}

int proto_scram_mock_secret(const uint8_t key[PROTO_SCRAM_KEY_LEN], const char *user,
                            struct proto_scram_secret *out)
{
    uint8_t salt[PROTO_SCRAM_KEY_LEN];

    memset(out, 0, sizeof *out);
    if (mock_part(key, "salt", user, salt) < 0 || mock_part(key, "stored", user, out->stored_key) < 0 ||
        mock_part(key, "server", user, out->server_key) < 0)
        return -1;
    memcpy(out->salt, salt, 16);   /* PostgreSQL's salts are 16 bytes too */
    out->salt_len = 16;
    out->iterations = PROTO_SCRAM_DEFAULT_ITERATIONS;
    return 0;
}

/* Each random byte picks one of 64 characters, so the nonce is uniform over the base64 alphabet. */
int proto_scram_nonce(char *out, size_t n)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t raw[64];
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done < sizeof raw ? n - done : sizeof raw;
        if (RAND_bytes(raw, (int)chunk) != 1)
            return -1;
        for (size_t i = 0; i < chunk; i++)
            out[done + i] = alphabet[raw[i] & 63];
        done += chunk;
    }
    out[n] = '\0';
    return 0;
}
