/*
 * libFuzzer target: SCRAM-SHA-256 message parsing in both roles, and stored secrets. The first
 * byte picks the mode; the rest is one or two messages separated by the first '\n'. The keys are
 * RFC 7677's test vector (user "user", password "pencil"), so its messages make complete exchanges.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto.h"
#include "protocol/scram_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

#define RFC_PASSWORD "pencil"
#define RFC_SALT "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_ITER 4096
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CLIENT_NONCE
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_CLIENT_NONCE RFC_SERVER_NONCE \
    ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* The client side derives keys from the password only for cheap iteration counts: a fuzzed
 * "i=9999999" would make one input take seconds without reaching any new parsing code. */
#define MAX_FUZZ_ITER 4096

static struct proto_scram_secret secret;
static uint8_t client_key[PROTO_SCRAM_KEY_LEN], server_key[PROTO_SCRAM_KEY_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    uint8_t salt[PROTO_SCRAM_MAX_SALT];
    int n = proto__b64_decode(RFC_SALT, strlen(RFC_SALT), salt, sizeof salt);

    (void)argc;
    (void)argv;
    CHECK(n == 16);
    CHECK(proto_scram_make_secret(RFC_PASSWORD, salt, n, RFC_ITER, &secret) == 0);
    CHECK(proto__scram_keys(RFC_PASSWORD, salt, n, RFC_ITER, client_key, server_key) == 0);

    /* The harness is only useful if the seeds can complete an exchange: check RFC 7677 once. */
    struct proto_scram_server st;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t outlen;
    const char *err;
    memset(&st, 0, sizeof st);
    CHECK(proto_scram_server_first(&st, &secret, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
                                   RFC_SERVER_NONCE, out, sizeof out, &outlen, &err) == 0);
    CHECK(proto_scram_server_final(&st, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, sizeof out,
                                   &outlen, &err) == 0);
    CHECK(strcmp(out, RFC_SERVER_FINAL) == 0);
    return 0;
}

static void check_out(int rc, const char *out, size_t outcap, size_t outlen)
{
    if (rc == 0)
        CHECK(outlen < outcap && strlen(out) == outlen);
}

/* pglane as the server: client-first-message, then client-final-message. */
static void server_side(const char *a, size_t an, const char *b, size_t bn, size_t outcap)
{
    struct proto_scram_server st;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t outlen = 0;
    const char *err = NULL;

    memset(&st, 0, sizeof st);
    int rc = proto_scram_server_first(&st, &secret, a, an, RFC_SERVER_NONCE, out, outcap, &outlen,
                                      &err);
    CHECK(rc == 0 || err != NULL);
    check_out(rc, out, outcap, outlen);
    /* Called even after a failure: the state must refuse it. */
    err = NULL;
    int rc2 = proto_scram_server_final(&st, b, bn, out, outcap, &outlen, &err);
    CHECK(rc2 == 0 || err != NULL);
    CHECK(rc == 0 || rc2 < 0);
    check_out(rc2, out, outcap, outlen);
}

/* The iteration count of a server-first-message, or 0 when it cannot be read cheaply. */
static long iterations_of(const char *msg)
{
    const char *p = strstr(msg, ",i=");
    long n = 0;

    if (p == NULL)
        return 0;
    for (p += 3; *p >= '0' && *p <= '9'; p++)
        if ((n = n * 10 + (*p - '0')) > MAX_FUZZ_ITER)
            return 0;
    return n;
}

/* pglane as the client: server-first-message, then server-final-message. */
static void client_side(const char *a, size_t an, const char *b, size_t bn, size_t outcap,
                        const char *a_cstr, int use_password)
{
    struct proto_scram_client st;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t outlen = 0;
    const char *err = NULL;

    memset(&st, 0, sizeof st);
    CHECK(proto_scram_client_first_user(&st, "user", RFC_CLIENT_NONCE, out, sizeof out, &outlen) == 0);
    CHECK(strcmp(out, "n,,n=user,r=" RFC_CLIENT_NONCE) == 0);
    const char *password = use_password && iterations_of(a_cstr) > 0 ? RFC_PASSWORD : NULL;
    int rc = proto_scram_client_final(&st, a, an, password, client_key, server_key, out, outcap,
                                      &outlen, &err);
    CHECK(rc == 0 || err != NULL);
    check_out(rc, out, outcap, outlen);
    err = NULL;
    int rc2 = proto_scram_client_verify(&st, b, bn, &err);
    CHECK(rc2 == 0 || err != NULL);
    CHECK(rc == 0 || rc2 < 0);
}

static void secret_side(const char *s)
{
    struct proto_scram_secret sec;

    if (proto_scram_parse_secret(s, &sec) == 0)
        CHECK(sec.iterations >= 1 && sec.salt_len >= 1 && sec.salt_len <= PROTO_SCRAM_MAX_SALT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    /* One NUL-terminated copy: the parsers take lengths, but parse_secret and the harness's own
     * iteration peek want C strings. The NUL is not part of the lengths passed. */
    char *text = malloc(size);
    CHECK(text != NULL);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t n = size - 1;
    char *nl = memchr(text, '\n', n);
    const char *a = text, *b = nl != NULL ? nl + 1 : text + n;
    size_t an = nl != NULL ? (size_t)(nl - text) : n, bn = nl != NULL ? n - an - 1 : 0;
    size_t outcap = mode & 0x80 ? 24 : PROTO_SCRAM_MAX_MSG;

    /* Exact-size copies of the two messages, so reads past a length show up under ASan. */
    char *ma = malloc(an ? an : 1), *mb = malloc(bn ? bn : 1);
    CHECK(ma != NULL && mb != NULL);
    memcpy(ma, a, an);
    memcpy(mb, b, bn);
    switch (mode % 3) {
    case 0:
        server_side(ma, an, mb, bn, outcap);
        break;
    case 1:
        if (nl != NULL)
            *nl = '\0';     /* iterations_of reads the first message as a C string */
        client_side(ma, an, mb, bn, outcap, text, (mode & 0x40) != 0);
        break;
    default:
        secret_side(text);
        break;
    }
    free(ma);
    free(mb);
    free(text);
    return 0;
}
