/*
 * SCRAM-SHA-256 with pglane as the server, as PostgreSQL's backend does it: the client's user name
 * is ignored (the startup packet names the user). Channel binding (SCRAM-SHA-256-PLUS with
 * tls-server-end-point, RFC 5802 and 5929) when the caller set it up with proto_scram_server_bind.
 */
#include "protocol/scram_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#define MALFORMED "malformed SCRAM message"
#define CB_TYPE "tls-server-end-point"

/*
 * Every refusal carries PostgreSQL 15's SQLSTATE, message and detail (auth-scram.c), so that a
 * client cannot tell pglane's SCRAM from PostgreSQL's by its errors. Returns -1.
 */
static int refuse(struct proto_scram_server *st, const char **err, const char *sqlstate, const char *msg,
                  const char *detail_fmt, ...) __attribute__((format(printf, 5, 6)));
static int refuse(struct proto_scram_server *st, const char **err, const char *sqlstate, const char *msg,
                  const char *detail_fmt, ...)
{
    st->state = PROTO__SCRAM_FAILED;
    st->err_state = sqlstate;
    st->wrong_proof = 0;
    snprintf(st->err_msg, sizeof st->err_msg, "%s", msg);
    st->err_detail[0] = '\0';
    if (detail_fmt != NULL) {
        va_list ap;

        va_start(ap, detail_fmt);
        vsnprintf(st->err_detail, sizeof st->err_detail, detail_fmt, ap);
        va_end(ap);
    }
    if (err != NULL)
        *err = st->err_msg;
    return -1;
}

/* A failure that is pglane's own (no PostgreSQL counterpart: buffers, randomness): XX000. */
static int fail(struct proto_scram_server *st, const char **err, const char *msg)
{
    return refuse(st, err, "XX000", msg, NULL);
}

/* A malformed message, with PostgreSQL's detail. */
#define MALFORMED_AS(st, err, ...) refuse(st, err, "08P01", MALFORMED, __VA_ARGS__)

/* PostgreSQL's sanitize_char: a printable character quoted, anything else in hex. */
static const char *show_char(char c, char buf[8])
{
    if (c >= 0x21 && c <= 0x7e)
        snprintf(buf, 8, "'%c'", c);
    else
        snprintf(buf, 8, "0x%02x", (unsigned char)c);
    return buf;
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

/*
 * The value of attribute `name` at *cur (any letter if name is 0, stored in *got), up to the next
 * ',' or the end; *cur moves past that ','. As PostgreSQL's read_attr_value / read_any_attr.
 */
static int read_attr(struct proto_scram_server *st, const char **err, const char **cur, char name,
                     char *got, struct proto__span *v)
{
    const char *p = *cur, *end;
    char b[8];

    if (name != 0 && p[0] != name)
        return MALFORMED_AS(st, err, "Expected attribute \"%c\" but found \"%s\".", name, show_char(p[0], b));
    if (name == 0) {
        if (p[0] == '\0')
            return MALFORMED_AS(st, err, "Attribute expected, but found end of string.");
        if (!((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= 'A' && p[0] <= 'Z')))
            return MALFORMED_AS(st, err, "Attribute expected, but found invalid character \"%s\".",
                                show_char(p[0], b));
    }
    if (p[1] != '=')
        return MALFORMED_AS(st, err, "Expected character \"=\" for attribute \"%c\".", p[0]);
    if (got != NULL)
        *got = p[0];
    v->p = p + 2;
    end = strchr(v->p, ',');
    v->n = end ? (size_t)(end - v->p) : strlen(v->p);
    *cur = end ? end + 1 : v->p + v->n;
    return 0;
}

/* The whole-message checks PostgreSQL makes before reading a SCRAM message. */
static int copy_message(struct proto_scram_server *st, const char **err, const char *in, size_t len, char *msg,
                        size_t cap)
{
    if (len == 0)
        return MALFORMED_AS(st, err, "The message is empty.");
    if (in == NULL || memchr(in, '\0', len) != NULL)
        return MALFORMED_AS(st, err, "Message length does not match input length.");
    if (proto__scram_copy(in, len, msg, cap) < 0)
        return refuse(st, err, "08P01", MALFORMED, "pglane takes SCRAM messages of up to %d bytes.", (int)cap - 1);
    return 0;
}

/*
 * client-first-message: gs2 header ("n,,", "y,," or "p=tls-server-end-point,,"), then
 * "[m=...,]n=<user>,r=<nonce>[,ext...]". Checked in PostgreSQL's order with its errors. "y" means
 * the client could bind but believes the server cannot: a downgrade when pglane offered -PLUS.
 */
static int read_first(struct proto_scram_server *st, const char **err, const char *p, int *state,
                      struct proto__span *cnonce, const char **bare)
{
    struct proto__span v;
    char b[8];

    switch (p[0]) {
    case 'n':
    case 'y':
        if (st->plus_selected)
            return MALFORMED_AS(st, err, "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not "
                                "include channel binding data.");
        if (p[0] == 'y' && st->plus_offered)
            return refuse(st, err, "28000", "SCRAM channel binding negotiation error",
                          "The client supports SCRAM channel binding but thinks the server does not.  However, "
                          "this server does support channel binding.");
        *state = p[0] == 'y' ? PROTO__SCRAM_FIRST_Y : PROTO__SCRAM_FIRST_N;
        if (p[1] != ',')
            return MALFORMED_AS(st, err, "Comma expected, but found character \"%s\".", show_char(p[1], b));
        p += 2;
        break;
    case 'p':
        if (!st->plus_selected)
            return MALFORMED_AS(st, err, "The client selected SCRAM-SHA-256 without channel binding, but the "
                                "SCRAM message includes channel binding data.");
        if (read_attr(st, err, &p, 'p', NULL, &v) < 0)
            return -1;
        if (v.n != strlen(CB_TYPE) || memcmp(v.p, CB_TYPE, v.n) != 0) {
            char type[31], msg[96];
            size_t i;

            for (i = 0; i < v.n && i < sizeof type - 1; i++)
                type[i] = v.p[i] >= 0x21 && v.p[i] <= 0x7e ? v.p[i] : '?';
            type[i] = '\0';
            snprintf(msg, sizeof msg, "unsupported SCRAM channel-binding type \"%s\"", type);
            return refuse(st, err, "08P01", msg, NULL);
        }
        *state = PROTO__SCRAM_FIRST_P;
        break;
    default:
        return MALFORMED_AS(st, err, "Unexpected channel-binding flag \"%s\".", show_char(p[0], b));
    }
    if (p[0] == 'a')
        return refuse(st, err, "0A000", "client uses authorization identity, but it is not supported", NULL);
    if (p[0] != ',')
        return MALFORMED_AS(st, err, "Unexpected attribute \"%s\" in client-first-message.", show_char(p[0], b));
    *bare = ++p;
    if (p[0] == 'm')
        return refuse(st, err, "0A000", "client requires an unsupported SCRAM extension", NULL);
    if (read_attr(st, err, &p, 'n', NULL, &v) < 0 || read_attr(st, err, &p, 'r', NULL, cnonce) < 0)
        return -1;
    if (cnonce->n > 0 && !proto__scram_printable(*cnonce))     /* empty passes, as in PostgreSQL */
        return refuse(st, err, "08P01", "non-printable characters in SCRAM nonce", NULL);
    while (*p != '\0')
        if (read_attr(st, err, &p, 0, NULL, &v) < 0)
            return -1;
    return 0;
}

int proto_scram_server_first(struct proto_scram_server *st, const struct proto_scram_secret *secret,
                             const char *client_first, size_t len, const char *server_nonce,
                             char *out, size_t outcap, size_t *outlen, const char **err)
{
    char msg[PROTO_SCRAM_MAX_MSG], salt[PROTO_SCRAM_MAX_SALT * 2];
    const char *bare = NULL;
    struct proto__span cnonce, snonce = { server_nonce, strlen(server_nonce) };
    int state = PROTO__SCRAM_FAILED;
    if (st->state != PROTO__SCRAM_BOUND) {
        st->plus_offered = st->plus_selected = 0;
        st->cbind_len = 0;
    }
    st->state = PROTO__SCRAM_FAILED;
    if (copy_message(st, err, client_first, len, msg, sizeof msg) < 0 ||
        read_first(st, err, msg, &state, &cnonce, &bare) < 0)
        return -1;
    if (!proto__scram_printable(snonce) || secret->iterations < 1 ||
        secret->iterations > PROTO__SCRAM_MAX_ITER || secret->salt_len < 1 ||
        secret->salt_len > PROTO_SCRAM_MAX_SALT ||
        proto__b64_encode(secret->salt, (size_t)secret->salt_len, salt, sizeof salt) < 0)
        return fail(st, err, "invalid SCRAM server nonce or secret");
    int n = snprintf(st->nonce, sizeof st->nonce, "%.*s%s", (int)cnonce.n, cnonce.p, server_nonce);
    if (n >= 0 && (size_t)n < sizeof st->nonce)
        n = snprintf(st->server_first, sizeof st->server_first, "r=%s,s=%s,i=%d", st->nonce, salt,
                     secret->iterations);
    if (n < 0 || (size_t)n >= sizeof st->server_first)       /* the client's nonce: pglane's limit */
        return refuse(st, err, "08P01", MALFORMED, "pglane takes SCRAM client nonces of up to %d bytes.",
                      (int)(sizeof st->server_first - 1) - snprintf(NULL, 0, "r=%s,s=%s,i=%d", server_nonce, salt,
                                                                   secret->iterations));
    if (proto__scram_emit(st->server_first, (size_t)n, out, outcap, outlen) < 0)
        return fail(st, err, "SCRAM output buffer too small");
    memcpy(st->client_first_bare, bare, strlen(bare) + 1);   /* fits: bare points into msg, as large */
    st->secret = *secret;
    st->state = state;
    return 0;
}

/*
 * client-final-message: "c=<gs2 header b64>,r=<nonce>[,ext...],p=<proof>", read in PostgreSQL's
 * order: the binding, the nonce, attributes up to the proof, the proof's length, nothing after it;
 * then the nonce is compared. Sets *without_proof to the part before ",p=".
 */
static int read_final(struct proto_scram_server *st, const char **err, const char *msg,
                      struct proto__span *without_proof, uint8_t proof[PROTO_SCRAM_KEY_LEN])
{
    const char *p = msg, *before;
    struct proto__span c, r, v;
    char attr = 0;

    if (read_attr(st, err, &p, 'c', NULL, &c) < 0)
        return -1;
    if (st->state == PROTO__SCRAM_FIRST_P) {
        uint8_t input[sizeof("p=" CB_TYPE ",,") - 1 + PROTO_SCRAM_MAX_CBIND];
        char cbind[2 * sizeof input];
        size_t hl = strlen("p=" CB_TYPE ",,");
        int n;

        memcpy(input, "p=" CB_TYPE ",,", hl);
        memcpy(input + hl, st->cbind, st->cbind_len);
        n = proto__b64_encode(input, hl + st->cbind_len, cbind, sizeof cbind);
        if (n < 0 || c.n != (size_t)n || CRYPTO_memcmp(c.p, cbind, (size_t)n) != 0)
            return refuse(st, err, "28000", "SCRAM channel binding check failed", NULL);
    } else if (!(c.n == 4 && memcmp(c.p, "biws", 4) == 0 && st->state == PROTO__SCRAM_FIRST_N) &&
               !(c.n == 4 && memcmp(c.p, "eSws", 4) == 0 && st->state == PROTO__SCRAM_FIRST_Y)) {
        return refuse(st, err, "08P01", "unexpected SCRAM channel-binding attribute in client-final-message", NULL);
    }
    if (read_attr(st, err, &p, 'r', NULL, &r) < 0)
        return -1;
    do {
        before = p;
        if (read_attr(st, err, &p, 0, &attr, &v) < 0)
            return -1;
    } while (attr != 'p');
    /* PostgreSQL decodes into (length * 3 / 4) bytes and wants exactly the key's length */
    uint8_t decoded[PROTO_SCRAM_MAX_MSG * 3 / 4];
    if (proto__b64_decode_lenient(v.p, v.n, decoded, v.n * 3 / 4) != PROTO_SCRAM_KEY_LEN)
        return MALFORMED_AS(st, err, "Malformed proof in client-final-message.");
    memcpy(proof, decoded, PROTO_SCRAM_KEY_LEN);
    if (*p != '\0')
        return MALFORMED_AS(st, err, "Garbage found at the end of client-final-message.");
    if (r.n != strlen(st->nonce) || memcmp(r.p, st->nonce, r.n) != 0)
        return refuse(st, err, "08P01", "invalid SCRAM response", "Nonce does not match.");
    without_proof->p = msg;
    without_proof->n = (size_t)(before - msg) - 1;   /* before follows a ',' here */
    return 0;
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
    if (st->state != PROTO__SCRAM_FIRST_N && st->state != PROTO__SCRAM_FIRST_Y &&
        st->state != PROTO__SCRAM_FIRST_P)
        return fail(st, err, "SCRAM exchange out of order");
    if (copy_message(st, err, client_final, len, msg, sizeof msg) < 0 ||
        read_final(st, err, msg, &without_proof, proof) < 0)
        return -1;
    if (check_proof(st, without_proof, proof) < 0) {
        refuse(st, err, "28P01", "SCRAM proof is wrong (password authentication failed)", NULL);
        st->wrong_proof = 1;
        return -1;
    }
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
