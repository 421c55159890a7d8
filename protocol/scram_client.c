/*
 * SCRAM-SHA-256 with pglane as the client of PostgreSQL, as libpq does it: no channel binding
 * ("n,,"), and the server's first message must carry exactly r, s and i.
 */
#include "protocol/scram_internal.h"

#include <string.h>

#include <openssl/crypto.h>

#define MALFORMED "malformed SCRAM server message"

static int fail(struct proto_scram_client *st, const char **err, const char *msg)
{
    st->state = PROTO__SCRAM_FAILED;
    if (err != NULL)
        *err = msg;
    return -1;
}

/* Appends s (n bytes) at *pos in buf, keeping room for a NUL. 0 or -1. */
static int append(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (n >= cap - *pos)
        return -1;
    memcpy(buf + *pos, s, n);
    *pos += n;
    buf[*pos] = '\0';
    return 0;
}

/* Appends the user name escaped as RFC 5802 saslname: ',' as "=2C", '=' as "=3D". */
static int append_saslname(char *buf, size_t cap, size_t *pos, const char *user)
{
    for (; *user != '\0'; user++) {
        const char *s = *user == ',' ? "=2C" : *user == '=' ? "=3D" : user;
        if (append(buf, cap, pos, s, s == user ? 1 : 3) < 0)
            return -1;
    }
    return 0;
}

int proto_scram_client_first_user(struct proto_scram_client *st, const char *user,
                                  const char *client_nonce, char *out, size_t outcap, size_t *outlen)
{
    struct proto__span nonce = { client_nonce, strlen(client_nonce) };
    char *bare = st->client_first_bare;
    size_t pos = 0;
    st->state = PROTO__SCRAM_FAILED;
    st->keycache = NULL;
    if (!proto__scram_printable(nonce) || nonce.n >= sizeof st->nonce)
        return -1;
    bare[0] = '\0';
    if (append(bare, sizeof st->client_first_bare, &pos, "n=", 2) < 0 ||
        append_saslname(bare, sizeof st->client_first_bare, &pos, user) < 0 ||
        append(bare, sizeof st->client_first_bare, &pos, ",r=", 3) < 0 ||
        append(bare, sizeof st->client_first_bare, &pos, nonce.p, nonce.n) < 0)
        return -1;
    size_t opos = 0;
    if (out == NULL || outcap == 0)
        return -1;
    out[0] = '\0';
    if (append(out, outcap, &opos, "n,,", 3) < 0 || append(out, outcap, &opos, bare, pos) < 0)
        return -1;
    memcpy(st->nonce, nonce.p, nonce.n + 1);
    if (outlen != NULL)
        *outlen = opos;
    st->state = PROTO__SCRAM_FIRST_N;
    return 0;
}

int proto_scram_client_first(struct proto_scram_client *st, const char *client_nonce,
                             char *out, size_t outcap, size_t *outlen)
{
    return proto_scram_client_first_user(st, "", client_nonce, out, outcap, outlen);
}

struct server_first {
    struct proto__span nonce;
    uint8_t salt[PROTO_SCRAM_MAX_SALT];
    int salt_len;
    int iterations;
};

/* server-first-message: "r=<client nonce + server nonce>,s=<salt>,i=<iterations>". */
static const char *read_server_first(const struct proto_scram_client *st, const char *msg,
                                     struct server_first *sf)
{
    const char *p = msg;
    struct proto__span salt, iter;
    size_t cn = strlen(st->nonce);
    if (p[0] == 'm' && p[1] == '=')
        return "unsupported SCRAM extension";
    if (proto__scram_attr(&p, 'r', &sf->nonce) < 0 || proto__scram_attr(&p, 's', &salt) < 0 ||
        proto__scram_attr(&p, 'i', &iter) < 0 || *p != '\0')
        return MALFORMED;
    if (!proto__scram_printable(sf->nonce) || sf->nonce.n <= cn ||
        memcmp(sf->nonce.p, st->nonce, cn) != 0)
        return "SCRAM nonce mismatch";
    sf->salt_len = proto__b64_decode(salt.p, salt.n, sf->salt, sizeof sf->salt);
    if (sf->salt_len < 1)
        return "invalid SCRAM salt";
    if (proto__scram_iter(iter, &sf->iterations) < 0)
        return "invalid SCRAM iteration count";
    return NULL;
}

/* Computes the proof for final_without_proof and remembers the expected ServerSignature. */
static int make_proof(struct proto_scram_client *st, const char *server_first,
                      struct proto__span final_without_proof, const uint8_t *client_key,
                      const uint8_t *server_key, uint8_t proof[PROTO_SCRAM_KEY_LEN])
{
    uint8_t stored[PROTO_SCRAM_KEY_LEN], sig[PROTO_SCRAM_KEY_LEN];
    if (proto__sha256(client_key, PROTO_SCRAM_KEY_LEN, stored) < 0 ||
        proto__scram_sign(stored, st->client_first_bare, server_first, final_without_proof, sig) < 0 ||
        proto__scram_sign(server_key, st->client_first_bare, server_first, final_without_proof,
                          st->server_signature) < 0)
        return -1;
    for (int i = 0; i < PROTO_SCRAM_KEY_LEN; i++)
        proof[i] = client_key[i] ^ sig[i];
    return 0;
}

/* The keys from the password: the cached ones when the salt, the count and the password are those they
 * were derived from, else derived now (and cached). */
static int password_keys(struct proto_scram_keycache *kc, const struct server_first *sf, const char *password,
                         uint8_t ck[PROTO_SCRAM_KEY_LEN], uint8_t sk[PROTO_SCRAM_KEY_LEN])
{
    uint8_t digest[PROTO_SCRAM_KEY_LEN];

    if (kc == NULL)
        return proto__scram_keys(password, sf->salt, sf->salt_len, sf->iterations, ck, sk);
    if (proto__sha256(password, strlen(password), digest) < 0)
        return -1;
    if (kc->valid && kc->salt_len == sf->salt_len && kc->iterations == sf->iterations &&
        memcmp(kc->salt, sf->salt, (size_t)sf->salt_len) == 0 &&
        CRYPTO_memcmp(kc->password_digest, digest, sizeof digest) == 0) {
        memcpy(ck, kc->client_key, PROTO_SCRAM_KEY_LEN);
        memcpy(sk, kc->server_key, PROTO_SCRAM_KEY_LEN);
        return 0;
    }
    kc->valid = 0;
    if (proto__scram_keys(password, sf->salt, sf->salt_len, sf->iterations, ck, sk) < 0)
        return -1;
    kc->derived++;
    memcpy(kc->password_digest, digest, sizeof digest);
    memcpy(kc->salt, sf->salt, (size_t)sf->salt_len);
    kc->salt_len = sf->salt_len;
    kc->iterations = sf->iterations;
    memcpy(kc->client_key, ck, PROTO_SCRAM_KEY_LEN);
    memcpy(kc->server_key, sk, PROTO_SCRAM_KEY_LEN);
    kc->valid = 1;
    return 0;
}

/* Fills the keys from the password, or copies the given ones when password is NULL. */
static int get_keys(struct proto_scram_keycache *kc, const struct server_first *sf, const char *password,
                    const uint8_t *client_key, const uint8_t *server_key, uint8_t ck[PROTO_SCRAM_KEY_LEN],
                    uint8_t sk[PROTO_SCRAM_KEY_LEN])
{
    if (password != NULL)
        return password_keys(kc, sf, password, ck, sk);
    if (client_key == NULL || server_key == NULL)
        return -1;
    memcpy(ck, client_key, PROTO_SCRAM_KEY_LEN);
    memcpy(sk, server_key, PROTO_SCRAM_KEY_LEN);
    return 0;
}

int proto_scram_client_final(struct proto_scram_client *st, const char *server_first, size_t len,
                             const char *password, const uint8_t *client_key, const uint8_t *server_key,
                             char *out, size_t outcap, size_t *outlen, const char **err)
{
    char msg[PROTO_SCRAM_MAX_MSG], text[PROTO_SCRAM_MAX_MSG], b64[64];
    uint8_t ck[PROTO_SCRAM_KEY_LEN], sk[PROTO_SCRAM_KEY_LEN], proof[PROTO_SCRAM_KEY_LEN];
    struct server_first sf;
    const char *e;
    size_t pos = 0;
    if (st->state != PROTO__SCRAM_FIRST_N)
        return fail(st, err, "SCRAM exchange out of order");
    if (proto__scram_copy(server_first, len, msg, sizeof msg) < 0)
        return fail(st, err, MALFORMED);
    if ((e = read_server_first(st, msg, &sf)) != NULL)
        return fail(st, err, e);
    if (get_keys(st->keycache, &sf, password, client_key, server_key, ck, sk) < 0)
        return fail(st, err, "SCRAM key derivation failed");
    text[0] = '\0';
    int bad = append(text, sizeof text, &pos, "c=biws,r=", 9) < 0 ||
              append(text, sizeof text, &pos, sf.nonce.p, sf.nonce.n) < 0;
    struct proto__span without_proof = { text, pos };
    bad = bad || make_proof(st, msg, without_proof, ck, sk, proof) < 0;
    OPENSSL_cleanse(ck, sizeof ck);
    OPENSSL_cleanse(sk, sizeof sk);
    int n = bad ? -1 : proto__b64_encode(proof, sizeof proof, b64, sizeof b64);
    if (n < 0 || append(text, sizeof text, &pos, ",p=", 3) < 0 ||
        append(text, sizeof text, &pos, b64, (size_t)n) < 0 ||
        proto__scram_emit(text, pos, out, outcap, outlen) < 0)
        return fail(st, err, "SCRAM client-final-message does not fit");
    st->state = PROTO__SCRAM_FINAL;
    return 0;
}

int proto_scram_client_verify(struct proto_scram_client *st, const char *server_final, size_t len,
                              const char **err)
{
    char msg[PROTO_SCRAM_MAX_MSG];
    uint8_t sig[PROTO_SCRAM_KEY_LEN];
    const char *p = msg;
    struct proto__span v;
    if (st->state != PROTO__SCRAM_FINAL)
        return fail(st, err, "SCRAM exchange out of order");
    if (proto__scram_copy(server_final, len, msg, sizeof msg) < 0)
        return fail(st, err, MALFORMED);
    if (msg[0] == 'e' && msg[1] == '=')
        return fail(st, err, "SCRAM server reported an error");
    if (proto__scram_attr(&p, 'v', &v) < 0 || *p != '\0' ||
        proto__b64_decode(v.p, v.n, sig, sizeof sig) != PROTO_SCRAM_KEY_LEN)
        return fail(st, err, MALFORMED);
    if (CRYPTO_memcmp(sig, st->server_signature, PROTO_SCRAM_KEY_LEN) != 0)
        return fail(st, err, "SCRAM server signature is wrong");
    st->state = PROTO__SCRAM_DONE;
    return 0;
}
