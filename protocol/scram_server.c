/*
 * SCRAM-SHA-256 with pglane as the server, as PostgreSQL's backend does it: the client's user name
 * is ignored (the startup packet names the user) and channel binding is not offered.
 */
#include "protocol/scram_internal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#define MALFORMED "malformed SCRAM message"

static int fail(struct proto_scram_server *st, const char **err, const char *msg)
{
    st->state = PROTO__SCRAM_FAILED;
    if (err != NULL)
        *err = msg;
    return -1;
}

/*
 * Reads the gs2 header ("n,," or "y,,") at *cur. "y" means the client could bind but believes
 * the server cannot; that is true, since pglane never offers SCRAM-SHA-256-PLUS, so it is accepted.
 * Returns NULL, setting *state to the FIRST_* state to enter, or a static error message.
 */
static const char *read_gs2(const char **cur, int *state)
{
    const char *p = *cur;
    if (p[0] == 'p' && p[1] == '=')
        return "channel binding not supported";
    if ((p[0] != 'n' && p[0] != 'y') || p[1] != ',')
        return MALFORMED;
    *state = p[0] == 'y' ? PROTO__SCRAM_FIRST_Y : PROTO__SCRAM_FIRST_N;
    if (p[2] == 'a' && p[3] == '=')
        return "SCRAM authorization identity not supported";
    if (p[2] != ',')
        return MALFORMED;
    *cur = p + 3;
    return NULL;
}

/* client-first-message-bare: "n=<user>,r=<nonce>[,ext...]". Returns NULL or an error message. */
static const char *read_first_bare(const char *p, struct proto__span *nonce)
{
    struct proto__span user, ext;
    if (p[0] == 'm' && p[1] == '=')
        return "unsupported SCRAM extension";
    if (proto__scram_attr(&p, 'n', &user) < 0 || proto__scram_attr(&p, 'r', nonce) < 0 ||
        !proto__scram_printable(*nonce))
        return MALFORMED;
    while (*p != '\0')
        if (proto__scram_attr(&p, 0, &ext) < 0)
            return MALFORMED;
    return NULL;
}

int proto_scram_server_first(struct proto_scram_server *st, const struct proto_scram_secret *secret,
                             const char *client_first, size_t len, const char *server_nonce,
                             char *out, size_t outcap, size_t *outlen, const char **err)
{
    char msg[PROTO_SCRAM_MAX_MSG], salt[PROTO_SCRAM_MAX_SALT * 2];
    const char *p = msg, *e;
    struct proto__span cnonce, snonce = { server_nonce, strlen(server_nonce) };
    int state = PROTO__SCRAM_FAILED;
    st->state = PROTO__SCRAM_FAILED;
    if (proto__scram_copy(client_first, len, msg, sizeof msg) < 0)
        return fail(st, err, MALFORMED);
    if ((e = read_gs2(&p, &state)) != NULL || (e = read_first_bare(p, &cnonce)) != NULL)
        return fail(st, err, e);
    if (!proto__scram_printable(snonce) || secret->iterations < 1 ||
        secret->iterations > PROTO__SCRAM_MAX_ITER || secret->salt_len < 1 ||
        secret->salt_len > PROTO_SCRAM_MAX_SALT ||
        proto__b64_encode(secret->salt, (size_t)secret->salt_len, salt, sizeof salt) < 0)
        return fail(st, err, "invalid SCRAM server nonce or secret");
    int n = snprintf(st->nonce, sizeof st->nonce, "%.*s%s", (int)cnonce.n, cnonce.p, server_nonce);
    if (n < 0 || (size_t)n >= sizeof st->nonce)
        return fail(st, err, MALFORMED);
    n = snprintf(st->server_first, sizeof st->server_first, "r=%s,s=%s,i=%d", st->nonce, salt,
                 secret->iterations);
    if (n < 0 || (size_t)n >= sizeof st->server_first)
        return fail(st, err, MALFORMED);
    if (proto__scram_emit(st->server_first, (size_t)n, out, outcap, outlen) < 0)
        return fail(st, err, "SCRAM output buffer too small");
    memcpy(st->client_first_bare, p, strlen(p) + 1);   /* fits: p points into msg, as large */
    st->secret = *secret;
    st->state = state;
    return 0;
}

/*
 * client-final-message: "c=<gs2 header b64>,r=<nonce>[,ext...],p=<proof>". Sets *without_proof
 * to the part before ",p=" and decodes the proof. Returns NULL or an error message.
 */
static const char *read_final(const struct proto_scram_server *st, const char *msg,
                              struct proto__span *without_proof, uint8_t proof[PROTO_SCRAM_KEY_LEN])
{
    const char *p = msg;
    const char *cbind = st->state == PROTO__SCRAM_FIRST_Y ? "eSws" : "biws";
    struct proto__span c, r, v;
    if (proto__scram_attr(&p, 'c', &c) < 0 || proto__scram_attr(&p, 'r', &r) < 0)
        return MALFORMED;
    if (c.n != 4 || memcmp(c.p, cbind, 4) != 0)
        return "SCRAM channel binding check failed";
    if (r.n != strlen(st->nonce) || memcmp(r.p, st->nonce, r.n) != 0)
        return "SCRAM nonce mismatch";
    while (!(p[0] == 'p' && p[1] == '='))
        if (*p == '\0' || proto__scram_attr(&p, 0, &v) < 0)
            return MALFORMED;
    without_proof->p = msg;
    without_proof->n = (size_t)(p - msg) - 1;   /* p follows a ',' here */
    if (proto__scram_attr(&p, 'p', &v) < 0 || *p != '\0' ||
        proto__b64_decode(v.p, v.n, proof, PROTO_SCRAM_KEY_LEN) != PROTO_SCRAM_KEY_LEN)
        return MALFORMED;
    return NULL;
}

/* Recovers ClientKey = proof XOR ClientSignature and checks SHA-256(ClientKey) == StoredKey. */
static int check_proof(struct proto_scram_server *st, struct proto__span without_proof,
                       const uint8_t proof[PROTO_SCRAM_KEY_LEN])
{
    uint8_t sig[PROTO_SCRAM_KEY_LEN], key[PROTO_SCRAM_KEY_LEN], stored[PROTO_SCRAM_KEY_LEN];
    int ok = 0;
    if (proto__scram_sign(st->secret.stored_key, st->client_first_bare, st->server_first,
                          without_proof, sig) == 0) {
        for (int i = 0; i < PROTO_SCRAM_KEY_LEN; i++)
            key[i] = proof[i] ^ sig[i];
        ok = proto__sha256(key, sizeof key, stored) == 0 &&
             CRYPTO_memcmp(stored, st->secret.stored_key, PROTO_SCRAM_KEY_LEN) == 0;
        if (ok)
            memcpy(st->client_key, key, sizeof key);
    }
    OPENSSL_cleanse(key, sizeof key);
    return ok ? 0 : -1;
}

int proto_scram_server_final(struct proto_scram_server *st, const char *client_final, size_t len,
                             char *out, size_t outcap, size_t *outlen, const char **err)
{
    char msg[PROTO_SCRAM_MAX_MSG], text[PROTO_SCRAM_MAX_MSG];
    uint8_t proof[PROTO_SCRAM_KEY_LEN], sig[PROTO_SCRAM_KEY_LEN];
    struct proto__span without_proof;
    const char *e;
    if (st->state != PROTO__SCRAM_FIRST_N && st->state != PROTO__SCRAM_FIRST_Y)
        return fail(st, err, "SCRAM exchange out of order");
    if (proto__scram_copy(client_final, len, msg, sizeof msg) < 0)
        return fail(st, err, MALFORMED);
    if ((e = read_final(st, msg, &without_proof, proof)) != NULL)
        return fail(st, err, e);
    if (check_proof(st, without_proof, proof) < 0)
        return fail(st, err, "SCRAM proof is wrong (password authentication failed)");
    if (proto__scram_sign(st->secret.server_key, st->client_first_bare, st->server_first,
                          without_proof, sig) < 0)
        return fail(st, err, "SCRAM signature failed");
    memcpy(text, "v=", 2);
    int n = proto__b64_encode(sig, sizeof sig, text + 2, sizeof text - 2);
    if (n < 0 || proto__scram_emit(text, (size_t)n + 2, out, outcap, outlen) < 0)
        return fail(st, err, "SCRAM output buffer too small");
    st->state = PROTO__SCRAM_DONE;
    return 0;
}
