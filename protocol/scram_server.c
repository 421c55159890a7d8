/*
 * SCRAM-SHA-256 with pglane as the server, as PostgreSQL's backend does it: the client's user name
 * is ignored (the startup packet names the user). Channel binding (SCRAM-SHA-256-PLUS with
 * tls-server-end-point, RFC 5802 and 5929) when the caller set it up with proto_scram_server_bind.
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

int proto_scram_server_bind(struct proto_scram_server *st, const uint8_t *hash, size_t n, int plus)
{
    if (n > sizeof st->cbind)
        return -1;
    memcpy(st->cbind, hash, n);
    st->cbind_len = n;
    st->plus_offered = 1;
    st->plus_selected = plus != 0;
    st->state = PROTO__SCRAM_BOUND;
    return 0;
}

#define CB_TYPE "tls-server-end-point"

/*
 * Reads the gs2 header ("n,,", "y,," or "p=tls-server-end-point,,") at *cur and keeps a copy in
 * st->gs2. "y" means the client could bind but believes the server cannot: accepted when pglane did
 * not offer SCRAM-SHA-256-PLUS, a downgrade otherwise. Returns NULL, setting *state to the FIRST_*
 * state to enter, or a static error message.
 */
static const char *read_gs2(struct proto_scram_server *st, const char **cur, int *state)
{
    const char *p = *cur, *end;

    if (p[0] == 'p' && p[1] == '=') {
        if (!st->plus_offered)
            return "channel binding not supported";
        if (!st->plus_selected)
            return "SCRAM-SHA-256 was selected but the message asks for channel binding";
        if (strncmp(p + 2, CB_TYPE, strlen(CB_TYPE)) != 0 || p[2 + strlen(CB_TYPE)] != ',')
            return "unsupported SCRAM channel binding type";
        *state = PROTO__SCRAM_FIRST_P;
        p += 2 + strlen(CB_TYPE);
    } else if ((p[0] == 'n' || p[0] == 'y') && p[1] == ',') {
        if (st->plus_selected)
            return "SCRAM-SHA-256-PLUS was selected but the message has no channel binding";
        if (p[0] == 'y' && st->plus_offered)
            return "SCRAM channel binding negotiation error (the client believes the server cannot bind)";
        *state = p[0] == 'y' ? PROTO__SCRAM_FIRST_Y : PROTO__SCRAM_FIRST_N;
        p += 1;
    } else {
        return MALFORMED;
    }
    /* p is at the ',' that ends the flag */
    if (p[1] == 'a' && p[2] == '=')
        return "SCRAM authorization identity not supported";
    if (p[1] != ',')
        return MALFORMED;
    end = p + 2;
    if ((size_t)(end - *cur) >= sizeof st->gs2)
        return MALFORMED;
    memcpy(st->gs2, *cur, (size_t)(end - *cur));
    st->gs2[end - *cur] = 0;
    *cur = end;
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
    if (st->state != PROTO__SCRAM_BOUND) {
        st->plus_offered = st->plus_selected = 0;
        st->cbind_len = 0;
    }
    st->state = PROTO__SCRAM_FAILED;
    if (proto__scram_copy(client_first, len, msg, sizeof msg) < 0)
        return fail(st, err, MALFORMED);
    if ((e = read_gs2(st, &p, &state)) != NULL || (e = read_first_bare(p, &cnonce)) != NULL)
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
    uint8_t input[sizeof st->gs2 + PROTO_SCRAM_MAX_CBIND];
    char cbind[2 * sizeof input];
    size_t gs2len = strlen(st->gs2), inlen = gs2len;
    struct proto__span c, r, v;
    int n;

    /* c= is base64(gs2 header [+ channel binding data]): "biws" for "n,,", "eSws" for "y,,". */
    memcpy(input, st->gs2, gs2len);
    if (st->state == PROTO__SCRAM_FIRST_P) {
        memcpy(input + gs2len, st->cbind, st->cbind_len);
        inlen += st->cbind_len;
    }
    n = proto__b64_encode(input, inlen, cbind, sizeof cbind);
    if (n < 0)
        return MALFORMED;
    if (proto__scram_attr(&p, 'c', &c) < 0 || proto__scram_attr(&p, 'r', &r) < 0)
        return MALFORMED;
    if (c.n != (size_t)n || CRYPTO_memcmp(c.p, cbind, (size_t)n) != 0)
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
    if (st->state != PROTO__SCRAM_FIRST_N && st->state != PROTO__SCRAM_FIRST_Y &&
        st->state != PROTO__SCRAM_FIRST_P)
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
