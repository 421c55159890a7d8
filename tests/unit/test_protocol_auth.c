/*
 * Unit tests of protocol/ authentication: MD5 against values computed with Python's hashlib,
 * SCRAM-SHA-256 against RFC 7677's example, both roles against each other, and hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/proto.h"
#include "protocol/scram_internal.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- MD5: expected values from python3 hashlib ---- */

static const uint8_t salt1234[4] = { 1, 2, 3, 4 };
#define PG_STORED "md532e12f215ba27cb750c9e093ce4b5127"     /* user postgres, password "password" */
#define PG_RESPONSE "md598511ceaec347a656f032c7f2a16ef17"   /* ... with salt 01 02 03 04 */

static void test_md5_vectors(void **state)
{
    (void)state;
    char out[PROTO_MD5_LEN];
    proto_md5_stored("postgres", "password", out);
    assert_string_equal(out, PG_STORED);
    proto_md5_response("postgres", "password", salt1234, out);
    assert_string_equal(out, PG_RESPONSE);
    proto_md5_response("postgres", PG_STORED, salt1234, out);
    assert_string_equal(out, PG_RESPONSE);
}

static void test_md5_verify(void **state)
{
    (void)state;
    static const uint8_t other_salt[4] = { 1, 2, 3, 5 };
    assert_int_equal(proto_md5_verify("postgres", "password", salt1234, PG_RESPONSE), 1);
    assert_int_equal(proto_md5_verify("postgres", PG_STORED, salt1234, PG_RESPONSE), 1);
    assert_int_equal(proto_md5_verify("postgres", "wrong", salt1234, PG_RESPONSE), 0);
    assert_int_equal(proto_md5_verify("other", "password", salt1234, PG_RESPONSE), 0);
    assert_int_equal(proto_md5_verify("postgres", "password", other_salt, PG_RESPONSE), 0);
    assert_int_equal(proto_md5_verify("postgres", "password", salt1234, ""), 0);
    assert_int_equal(proto_md5_verify("postgres", "password", salt1234, PG_RESPONSE "0"), 0);
    assert_int_equal(proto_md5_verify("postgres", "password", salt1234, "md598511ceaec347a656f032c7f2a16ef1"), 0);
    /* The stored hash itself is not a valid response. */
    assert_int_equal(proto_md5_verify("postgres", "password", salt1234, PG_STORED), 0);
}

/* ---- SCRAM: RFC 7677 section 3 ---- */

#define RFC_CNONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_SNONCE "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_NONCE RFC_CNONCE RFC_SNONCE
#define RFC_CLIENT_FIRST "n,,n=user,r=" RFC_CNONCE
#define RFC_SERVER_FIRST "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
/* The stored secret of "pencil" with the RFC's salt and count (python3 hashlib/hmac). */
#define RFC_SECRET "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" \
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
/* base64 of the ClientKey of that secret. */
#define RFC_CLIENT_KEY_B64 "pg/JI9Z+hkSpLRa5btpe9GVrDHJcSEN0viVTVXaZbos="
/* RFC 7677's exchange with the "y,," header: proof and signature from python3. */
#define RFC_Y_CLIENT_FINAL "c=eSws,r=" RFC_NONCE ",p=FoqiHTtQEDE8lz1CdaEe3tK4mS+iMDTl77SPyDS53DY="
#define RFC_Y_SERVER_FINAL "v=dI4KpiQJwBr1+V+K6U1dA6l6I4I9DUNXWND4pcpRU3U="

static const uint8_t rfc_salt[16] = { 0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                      0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81 };

static const uint8_t rfc_client_key[32] = {
    0xa6, 0x0f, 0xc9, 0x23, 0xd6, 0x7e, 0x86, 0x44, 0xa9, 0x2d, 0x16, 0xb9, 0x6e, 0xda, 0x5e, 0xf4,
    0x65, 0x6b, 0x0c, 0x72, 0x5c, 0x48, 0x43, 0x74, 0xbe, 0x25, 0x53, 0x55, 0x76, 0x99, 0x6e, 0x8b
};

/*
 * The client side of the RFC vector. proto_scram_client_first always sends "n=", so the vector's
 * "n=user" comes from proto_scram_client_first_user (added to proto.h for this and other peers).
 */
static void test_scram_rfc_client(void **state)
{
    (void)state;
    struct proto_scram_client c;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t n;
    const char *err = NULL;
    memset(&c, 0, sizeof c);
    assert_int_equal(proto_scram_client_first_user(&c, "user", RFC_CNONCE, out, sizeof out, &n), 0);
    assert_string_equal(out, RFC_CLIENT_FIRST);
    assert_int_equal(n, strlen(RFC_CLIENT_FIRST));
    assert_int_equal(proto_scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), "pencil",
                                              NULL, NULL, out, sizeof out, &n, &err), 0);
    assert_string_equal(out, RFC_CLIENT_FINAL);
    assert_int_equal(n, strlen(RFC_CLIENT_FINAL));
    assert_int_equal(proto_scram_client_verify(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err), 0);
}

static void test_scram_rfc_client_keys(void **state)
{
    (void)state;
    struct proto_scram_client c;
    struct proto_scram_secret sec;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t n;
    const char *err = NULL;
    assert_int_equal(proto_scram_parse_secret(RFC_SECRET, &sec), 0);
    assert_int_equal(proto_scram_client_first_user(&c, "user", RFC_CNONCE, out, sizeof out, &n), 0);
    assert_int_equal(proto_scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), NULL,
                                              rfc_client_key, sec.server_key, out, sizeof out, &n, &err), 0);
    assert_string_equal(out, RFC_CLIENT_FINAL);
    assert_int_equal(proto_scram_client_verify(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err), 0);
}

/* One client-final-message for server_first and password, through kc (NULL: no cache). */
static void client_final_with(struct proto_scram_keycache *kc, const char *server_first, const char *password,
                              char *out, size_t cap)
{
    struct proto_scram_client c;
    size_t n;
    const char *err = NULL;

    memset(&c, 0, sizeof c);
    assert_int_equal(proto_scram_client_first_user(&c, "user", RFC_CNONCE, out, cap, &n), 0);
    c.keycache = kc;
    assert_int_equal(proto_scram_client_final(&c, server_first, strlen(server_first), password, NULL, NULL, out,
                                              cap, &n, &err), 0);
}

/* The keys derived from a password are reused only for the same salt, iteration count and password: a
 * second login with the RFC vector derives nothing and still answers the vector's proof; another
 * password, salt or count derives again and answers what an uncached client answers. */
static void test_scram_client_keycache(void **state)
{
    static const char other_salt[] = "r=" RFC_NONCE ",s=QSXCR+Q6sek8bf92,i=4096";
    static const char other_count[] = "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4097";
    static const struct {
        const char *server_first, *password;
        uint64_t derived;                /* derivations so far, after this login */
    } logins[] = {
        { RFC_SERVER_FIRST, "pencil", 1 }, { RFC_SERVER_FIRST, "pencil", 1 },
        { RFC_SERVER_FIRST, "pencil2", 2 }, { other_salt, "pencil2", 3 }, { other_count, "pencil2", 4 },
        { RFC_SERVER_FIRST, "pencil", 5 }, { RFC_SERVER_FIRST, "pencil", 5 },
    };
    struct proto_scram_keycache kc;
    char out[PROTO_SCRAM_MAX_MSG], want[PROTO_SCRAM_MAX_MSG];

    (void)state;
    memset(&kc, 0, sizeof kc);
    for (size_t i = 0; i < sizeof logins / sizeof logins[0]; i++) {
        client_final_with(&kc, logins[i].server_first, logins[i].password, out, sizeof out);
        client_final_with(NULL, logins[i].server_first, logins[i].password, want, sizeof want);
        assert_string_equal(out, want);
        if (strcmp(logins[i].server_first, RFC_SERVER_FIRST) == 0)
            assert_true((strcmp(out, RFC_CLIENT_FINAL) == 0) == (strcmp(logins[i].password, "pencil") == 0));
        assert_int_equal(kc.derived, logins[i].derived);
    }
}

static void test_scram_rfc_server(void **state)
{
    (void)state;
    struct proto_scram_server s;
    struct proto_scram_secret sec;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t n;
    const char *err = NULL;
    assert_int_equal(proto_scram_parse_secret(RFC_SECRET, &sec), 0);
    assert_int_equal(proto_scram_server_first(&s, &sec, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
                                              RFC_SNONCE, out, sizeof out, &n, &err), 0);
    assert_string_equal(out, RFC_SERVER_FIRST);
    assert_int_equal(n, strlen(RFC_SERVER_FIRST));
    assert_int_equal(proto_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
                                              out, sizeof out, &n, &err), 0);
    assert_string_equal(out, RFC_SERVER_FINAL);
    assert_memory_equal(s.client_key, rfc_client_key, 32);
}

/* "y,,": accepted (pglane offers no -PLUS), and the final message must carry c=eSws. */
static void test_scram_rfc_server_y(void **state)
{
    (void)state;
    struct proto_scram_server s;
    struct proto_scram_secret sec;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t n;
    const char *err = NULL;
    const char *first = "y,,n=user,r=" RFC_CNONCE;
    assert_int_equal(proto_scram_parse_secret(RFC_SECRET, &sec), 0);
    assert_int_equal(proto_scram_server_first(&s, &sec, first, strlen(first), RFC_SNONCE,
                                              out, sizeof out, &n, &err), 0);
    assert_int_equal(proto_scram_server_final(&s, RFC_Y_CLIENT_FINAL, strlen(RFC_Y_CLIENT_FINAL),
                                              out, sizeof out, &n, &err), 0);
    assert_string_equal(out, RFC_Y_SERVER_FINAL);
    /* The "n,," final after a "y,," first is a channel binding mismatch. */
    assert_int_equal(proto_scram_server_first(&s, &sec, first, strlen(first), RFC_SNONCE,
                                              out, sizeof out, &n, &err), 0);
    err = NULL;
    assert_int_equal(proto_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL),
                                              out, sizeof out, &n, &err), -1);
    assert_non_null(err);
}

static void test_scram_secret(void **state)
{
    (void)state;
    struct proto_scram_secret parsed, made;
    memset(&made, 0, sizeof made);
    assert_int_equal(proto_scram_parse_secret(RFC_SECRET, &parsed), 0);
    assert_int_equal(parsed.iterations, 4096);
    assert_int_equal(parsed.salt_len, 16);
    assert_memory_equal(parsed.salt, rfc_salt, 16);
    assert_int_equal(proto_scram_make_secret("pencil", rfc_salt, 16, 4096, &made), 0);
    assert_int_equal(made.iterations, 4096);
    assert_int_equal(made.salt_len, 16);
    assert_memory_equal(made.stored_key, parsed.stored_key, 32);
    assert_memory_equal(made.server_key, parsed.server_key, 32);
    assert_int_equal(proto_scram_make_secret("pencil", rfc_salt, 0, 4096, &made), -1);
    assert_int_equal(proto_scram_make_secret("pencil", rfc_salt, 16, 0, &made), -1);
    assert_int_equal(proto_scram_make_secret("pencil", rfc_salt, PROTO_SCRAM_MAX_SALT + 1, 1, &made), -1);
}

static const char *const bad_secrets[] = {
    "",
    "md532e12f215ba27cb750c9e093ce4b5127",
    "SCRAM-SHA-256$",
    "SCRAM-SHA-256$4096",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
    "SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
    "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
    "SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
    "SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ=$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4q=="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=:",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU",
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU= ",
    "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    ":wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
};

static void test_scram_bad_secrets(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad_secrets); i++) {
        struct proto_scram_secret s;
        if (proto_scram_parse_secret(bad_secrets[i], &s) != -1)
            fail_msg("bad secret %zu accepted", i);
    }
}

static void test_scram_nonce(void **state)
{
    (void)state;
    char a[25], b[25];
    assert_int_equal(proto_scram_nonce(a, 24), 0);
    assert_int_equal(proto_scram_nonce(b, 24), 0);
    assert_int_equal(strlen(a), 24);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 24; i++)
        assert_true(a[i] > 0x20 && a[i] < 0x7f && a[i] != ',');
}

/* One whole exchange; returns the result of server_final and leaves the states for inspection. */
static int exchange(struct proto_scram_server *s, struct proto_scram_client *c,
                    const struct proto_scram_secret *sec, const char *password,
                    const uint8_t *client_key, const uint8_t *server_key)
{
    char cn[25], sn[25], m1[PROTO_SCRAM_MAX_MSG], m2[PROTO_SCRAM_MAX_MSG], m3[PROTO_SCRAM_MAX_MSG];
    size_t n1, n2, n3;
    const char *err = NULL;
    assert_int_equal(proto_scram_nonce(cn, 24), 0);
    assert_int_equal(proto_scram_nonce(sn, 24), 0);
    assert_int_equal(proto_scram_client_first(c, cn, m1, sizeof m1, &n1), 0);
    assert_int_equal(strncmp(m1, "n,,n=,r=", 8), 0);
    assert_int_equal(proto_scram_server_first(s, sec, m1, n1, sn, m2, sizeof m2, &n2, &err), 0);
    assert_int_equal(proto_scram_client_final(c, m2, n2, password, client_key, server_key,
                                              m3, sizeof m3, &n3, &err), 0);
    int r = proto_scram_server_final(s, m3, n3, m2, sizeof m2, &n2, &err);
    if (r == 0)
        assert_int_equal(proto_scram_client_verify(c, m2, n2, &err), 0);
    else
        assert_non_null(err);
    return r;
}

static void test_scram_roundtrip(void **state)
{
    (void)state;
    struct proto_scram_secret sec;
    struct proto_scram_server s, s2;
    struct proto_scram_client c, c2;
    uint8_t salt[16];
    char saltchars[17];
    assert_int_equal(proto_scram_nonce(saltchars, 16), 0);
    memcpy(salt, saltchars, 16);
    assert_int_equal(proto_scram_make_secret("s3cret pass", salt, 16, PROTO_SCRAM_DEFAULT_ITERATIONS, &sec), 0);
    assert_int_equal(exchange(&s, &c, &sec, "s3cret pass", NULL, NULL), 0);
    /* Pass-through: the ClientKey recovered from the client authenticates pglane to a server. */
    assert_int_equal(exchange(&s2, &c2, &sec, NULL, s.client_key, sec.server_key), 0);
    /* A wrong password is refused, and so is a ClientKey that does not match. */
    assert_int_equal(exchange(&s2, &c2, &sec, "s3cret pasS", NULL, NULL), -1);
    uint8_t wrong_key[32];
    memcpy(wrong_key, s.client_key, 32);
    wrong_key[0] ^= 1;
    assert_int_equal(exchange(&s2, &c2, &sec, NULL, wrong_key, sec.server_key), -1);
}

/*
 * SASLprep as PostgreSQL applies it: RFC 4013's own examples, the mappings a typed password meets
 * (a no-break space, a ligature, full-width letters), and every case where the bytes stay as they are
 * (NULL): ASCII, not UTF-8, prohibited or unassigned code points, a bidi violation, nothing left.
 */
static void test_saslprep(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "I\xC2\xADX", "IX" },                 /* RFC 4013: soft hyphen mapped to nothing */
        { "\xC2\xAA", "a" },                    /* RFC 4013: feminine ordinal, NFKC */
        { "\xE2\x85\xA8", "IX" },               /* RFC 4013: Roman numeral nine */
        { "a\xC2\xA0" "b", "a b" },             /* no-break space */
        { "\xEF\xAC\x81sh", "fish" },           /* ligature fi */
        { "\xEF\xBC\xA1\xEF\xBC\xA2", "AB" },   /* full-width A B */
        { "p\xC3\xA4ssw\xC3\xB6rd", "p\xC3\xA4ssw\xC3\xB6rd" },   /* already NFKC */
        { "pa\xCC\x88ss", "p\xC3\xA4ss" },      /* combining diaeresis composed */
        { "user", NULL },                       /* ASCII: as it is */
        { "a\x07" "b", NULL },                  /* ASCII control: as it is, as PostgreSQL does */
        { "\xD8\xA7" "1", NULL },               /* RFC 4013: RandALCat first, not last */
        { "\xD8\xA7x\xD8\xA7", NULL },          /* RandALCat with an LCat letter */
        { "\xC8\xA1", NULL },                   /* U+0221, unassigned in Unicode 3.2 */
        { "\xEE\x80\x80", NULL },               /* private use */
        { "\xC2\xAD", NULL },                   /* nothing left */
        { "\xE9t\xE9", NULL },                  /* LATIN1 bytes, not UTF-8 */
        { "\xC3", NULL },                       /* truncated UTF-8 */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *got = proto_saslprep(cases[i].in);
        if (cases[i].out == NULL) {
            if (got != NULL)
                fail_msg("case %zu: expected the bytes as they are, got \"%s\"", i, got);
        } else {
            if (got == NULL)
                fail_msg("case %zu: expected \"%s\", got the bytes as they are", i, cases[i].out);
            assert_string_equal(got, cases[i].out);
        }
        free(got);
    }
    /* The secret follows: a password and its SASLprep form give the same keys. */
    struct proto_scram_secret a, b;
    assert_int_equal(proto_scram_make_secret("\xEF\xAC\x81sh\xC2\xA0pw", salt1234, 4, 4096, &a), 0);
    assert_int_equal(proto_scram_make_secret("fish pw", salt1234, 4, 4096, &b), 0);
    assert_memory_equal(a.stored_key, b.stored_key, PROTO_SCRAM_KEY_LEN);
    assert_memory_equal(a.server_key, b.server_key, PROTO_SCRAM_KEY_LEN);
    assert_int_equal(proto_scram_make_secret("fish\xC2\xA0pw", salt1234, 4, 4096, &a), 0);
    assert_memory_equal(a.stored_key, b.stored_key, PROTO_SCRAM_KEY_LEN);
    assert_int_equal(proto_scram_make_secret("fishpw", salt1234, 4, 4096, &a), 0);
    assert_memory_not_equal(a.stored_key, b.stored_key, PROTO_SCRAM_KEY_LEN);
}

/* A stand-in secret for an unknown user: stable per (key, user), 16-byte salt, 4096 iterations, and
 * no password (not even an empty one) passes its proof. */
static void test_scram_mock_secret(void **state)
{
    (void)state;
    struct proto_scram_secret a, b, other, otherkey;
    struct proto_scram_server s;
    struct proto_scram_client c;
    uint8_t key[32], key2[32];
    memset(key, 7, sizeof key);
    memset(key2, 8, sizeof key2);
    assert_int_equal(proto_scram_mock_secret(key, "ghost", &a), 0);
    assert_int_equal(proto_scram_mock_secret(key, "ghost", &b), 0);
    assert_int_equal(proto_scram_mock_secret(key, "ghost2", &other), 0);
    assert_int_equal(proto_scram_mock_secret(key2, "ghost", &otherkey), 0);
    assert_int_equal(a.salt_len, 16);
    assert_int_equal(a.iterations, PROTO_SCRAM_DEFAULT_ITERATIONS);
    assert_memory_equal(&a, &b, sizeof a);
    assert_memory_not_equal(a.salt, other.salt, 16);
    assert_memory_not_equal(a.salt, otherkey.salt, 16);
    assert_memory_not_equal(a.stored_key, other.stored_key, 32);
    assert_int_equal(exchange(&s, &c, &a, "", NULL, NULL), -1);
    assert_int_equal(exchange(&s, &c, &a, "ghost", NULL, NULL), -1);
    char longuser[2000];
    memset(longuser, 'u', sizeof longuser - 1);
    longuser[sizeof longuser - 1] = '\0';
    assert_int_equal(proto_scram_mock_secret(key, longuser, &b), 0);
}

/* The proof's decoder reads base64 as PostgreSQL does: unused bits ignored, no whitespace, padding
 * only where a quantum may end, and a quantum after padding gives as many bytes as the padded one. */
static void test_b64_lenient(void **state)
{
    static const struct { const char *in; int bytes; const char *out; } cases[] = {
        { "QQ==", 1, "A" }, { "QR==", 1, "A" }, { "QUI=", 2, "AB" }, { "QUJ=", 2, "AB" }, { "QUJD", 3, "ABC" },
        { "QQ==QUJD", 2, "AA" }, { "", 0, "" }, { "QQ", -1, NULL }, { "Q===", -1, NULL }, { " QQ=", -1, NULL },
        { "QQ=\n", -1, NULL }, { "QU!D", -1, NULL },
    };
    uint8_t out[16];
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int r = proto__b64_decode_lenient(cases[i].in, strlen(cases[i].in), out, sizeof out);

        if (r != cases[i].bytes || (r > 0 && memcmp(out, cases[i].out, (size_t)r) != 0))
            fail_msg("%s: %d bytes", cases[i].in, r);
    }
    assert_int_equal(proto__b64_decode_lenient("QUJD", 4, out, 2), -1);     /* beyond cap */
}

/* The server must refuse these client-first-messages without crashing. */
static const char *const bad_client_first[] = {
    "", "n", "n,", "n,,", "n,,n=", "n,,n=,", "n,,r=abc", "n,,n=,x=abc",
    "x,,n=,r=abc", "nn,n=,r=abc", "n,a=bob,n=,r=abc", "p=tls-server-end-point,,n=,r=abc",
    "n,,m=ext,n=,r=abc", "n,,n=,r=ab\x01" "c", "n,,n=,r=ab c", "n,,n=,r=abc,1=x", "n,,n=,r=abc,,",
    "n,,n=,r=\x80\x81",
};

static void test_scram_server_first_bad(void **state)
{
    (void)state;
    struct proto_scram_secret sec;
    struct proto_scram_server s;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t n;
    assert_int_equal(proto_scram_parse_secret(RFC_SECRET, &sec), 0);
    for (size_t i = 0; i < ARRAY_LEN(bad_client_first); i++) {
        const char *err = NULL;
        const char *m = bad_client_first[i];
        char *copy = malloc(strlen(m) ? strlen(m) : 1);   /* no NUL: the parser must not need one */
        memcpy(copy, m, strlen(m));
        if (proto_scram_server_first(&s, &sec, copy, strlen(m), "snonce", out, sizeof out, &n, &err) != -1)
            fail_msg("client-first %zu accepted: %s", i, m);
        assert_non_null(err);
        free(copy);
    }
    const char *err = NULL;
    const char *cb = "p=tls-server-end-point,,n=,r=abc";
    assert_int_equal(proto_scram_server_first(&s, &sec, cb, strlen(cb), "x", out, sizeof out, &n, &err), -1);
    assert_string_equal(err, "malformed SCRAM message");       /* PostgreSQL's words, and its detail */
    assert_string_equal(s.err_state, "08P01");
    assert_string_equal(s.err_detail, "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM "
                                      "message includes channel binding data.");
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,,n=,r=ab\x01", 11, "x", out, sizeof out, &n, &err), -1);
    assert_string_equal(err, "non-printable characters in SCRAM nonce");
    assert_string_equal(s.err_detail, "");
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,,n=,r=abc,\x01=x", 15, "x", out, sizeof out, &n, &err),
                     -1);
    assert_string_equal(s.err_detail, "Attribute expected, but found invalid character \"0x01\".");
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,a=bob,n=,r=abc", 16, "x", out, sizeof out, &n, &err), -1);
    assert_string_equal(s.err_state, "0A000");
    /* As PostgreSQL: a comma after the nonce, and an empty client nonce, are accepted. */
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,,n=,r=abc,", 12, "x", out, sizeof out, &n, &err), 0);
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,,n=,r=", 8, "x", out, sizeof out, &n, &err), 0);
    assert_string_equal(out, "r=x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    /* An embedded NUL, an overlong message, a bad server nonce, a short output buffer. */
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,,n=,r=a\0bc", 12, "x", out, sizeof out, &n, &err), -1);
    char big[2 * PROTO_SCRAM_MAX_MSG];
    memset(big, 'a', sizeof big);
    memcpy(big, "n,,n=,r=", 8);
    assert_int_equal(proto_scram_server_first(&s, &sec, big, sizeof big, "x", out, sizeof out, &n, &err), -1);
    assert_int_equal(proto_scram_server_first(&s, &sec, big, PROTO_SCRAM_MAX_MSG - 1, "xyz", out, sizeof out,
                                              &n, &err), -1);   /* nonce too long for the reply */
    assert_string_equal(s.err_state, "08P01");
    assert_string_equal(s.err_detail, "pglane takes SCRAM client nonces of up to 472 bytes.");
    assert_int_equal(proto_scram_server_first(&s, &sec, big, 8 + 472, "xyz", out, sizeof out, &n, &err), 0);
    assert_int_equal(proto_scram_server_first(&s, &sec, big, 8 + 473, "xyz", out, sizeof out, &n, &err), -1);
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,,n=,r=abc", 11, "a,b", out, sizeof out, &n, &err), -1);
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,,n=,r=abc", 11, "", out, sizeof out, &n, &err), -1);
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,,n=,r=abc", 11, "x", out, 10, &n, &err), -1);
    /* Extensions after the nonce are allowed, and so is a user name (ignored). */
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,,n=bob,r=abc,x=1", 18, "x", out, sizeof out,
                                              &n, &err), 0);
    assert_string_equal(out, "r=abcx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
}

/* After the RFC's server-first, these client-final-messages must be refused. */
static const char *const bad_client_final[] = {
    "",
    "c=biws",
    "c=biws,r=" RFC_NONCE,
    "c=biws,r=" RFC_NONCE ",",
    "c=biws,r=" RFC_NONCE ",p=",
    "c=biws,r=" RFC_NONCE ",p=!!!!",
    "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ",
    "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ==",
    "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndQ=",
    "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=",
    "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1",
    "c=biws,r=" RFC_NONCE "X,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "c=biws,r=" RFC_CNONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "c=eSws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "c=biwsX,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "r=" RFC_NONCE ",c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "c=biws,r=" RFC_NONCE ",,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
};

static void server_at_final(struct proto_scram_server *s)
{
    struct proto_scram_secret sec;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t n;
    const char *err;
    assert_int_equal(proto_scram_parse_secret(RFC_SECRET, &sec), 0);
    assert_int_equal(proto_scram_server_first(s, &sec, RFC_CLIENT_FIRST, strlen(RFC_CLIENT_FIRST),
                                              RFC_SNONCE, out, sizeof out, &n, &err), 0);
}

static void test_scram_server_final_bad(void **state)
{
    (void)state;
    struct proto_scram_server s;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t n;
    const char *err;
    for (size_t i = 0; i < ARRAY_LEN(bad_client_final); i++) {
        const char *m = bad_client_final[i];
        server_at_final(&s);
        err = NULL;
        char *copy = malloc(strlen(m) ? strlen(m) : 1);
        memcpy(copy, m, strlen(m));
        if (proto_scram_server_final(&s, copy, strlen(m), out, sizeof out, &n, &err) != -1)
            fail_msg("client-final %zu accepted: %s", i, m);
        assert_non_null(err);
        free(copy);
    }
    /* The wrong proof is told apart from a malformed message (28P01 against 08P01). */
    server_at_final(&s);
    const char *wrong = "c=biws,r=" RFC_NONCE ",p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=";
    assert_int_equal(proto_scram_server_final(&s, wrong, strlen(wrong), out, sizeof out, &n, &err), -1);
    assert_int_equal(s.wrong_proof, 1);
    assert_string_equal(s.err_state, "28P01");
    server_at_final(&s);
    const char *garbage = "c=biws,r=" RFC_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=,x=1";
    assert_int_equal(proto_scram_server_final(&s, garbage, strlen(garbage), out, sizeof out, &n, &err), -1);
    assert_int_equal(s.wrong_proof, 0);
    assert_string_equal(s.err_detail, "Garbage found at the end of client-final-message.");
    /* An extension before the proof is allowed by the grammar but changes the AuthMessage. */
    server_at_final(&s);
    const char *ext = "c=biws,r=" RFC_NONCE ",x=1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    assert_int_equal(proto_scram_server_final(&s, ext, strlen(ext), out, sizeof out, &n, &err), -1);
    /* Out of order: a fresh state, a repeated final, a failed exchange that is retried. */
    struct proto_scram_server fresh;
    memset(&fresh, 0, sizeof fresh);
    assert_int_equal(proto_scram_server_final(&fresh, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
                                              sizeof out, &n, &err), -1);
    server_at_final(&s);
    assert_int_equal(proto_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out, 10,
                                              &n, &err), -1);   /* output too small */
    assert_int_equal(proto_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
                                              sizeof out, &n, &err), -1);
    server_at_final(&s);
    assert_int_equal(proto_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
                                              sizeof out, &n, &err), 0);
    assert_int_equal(proto_scram_server_final(&s, RFC_CLIENT_FINAL, strlen(RFC_CLIENT_FINAL), out,
                                              sizeof out, &n, &err), -1);
}

/* After the RFC's client-first, these server-first-messages must be refused. */
static const char *const bad_server_first[] = {
    "",
    "r=" RFC_NONCE,
    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==",
    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=10000001",
    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999999999999",
    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x",
    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,",
    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=1",
    "r=" RFC_NONCE ",s=,i=4096",
    "r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",
    "r=" RFC_NONCE ",s=W22ZaJ0S NY7soEsUEjb6gQ==,i=4096",
    "r=" RFC_CNONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "r=XOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "r=rOprNGfwEb,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=" RFC_NONCE ",i=4096",
    "m=x,r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "e=other-error",
};

static void client_at_final(struct proto_scram_client *c)
{
    char out[PROTO_SCRAM_MAX_MSG];
    size_t n;
    assert_int_equal(proto_scram_client_first_user(c, "user", RFC_CNONCE, out, sizeof out, &n), 0);
}

static void test_scram_client_bad(void **state)
{
    (void)state;
    struct proto_scram_client c;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t n;
    const char *err;
    for (size_t i = 0; i < ARRAY_LEN(bad_server_first); i++) {
        const char *m = bad_server_first[i];
        client_at_final(&c);
        err = NULL;
        char *copy = malloc(strlen(m) ? strlen(m) : 1);
        memcpy(copy, m, strlen(m));
        if (proto_scram_client_final(&c, copy, strlen(m), "pencil", NULL, NULL, out, sizeof out, &n, &err) != -1)
            fail_msg("server-first %zu accepted: %s", i, m);
        assert_non_null(err);
        free(copy);
    }
    /* No credential at all. */
    client_at_final(&c);
    assert_int_equal(proto_scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), NULL, NULL,
                                              NULL, out, sizeof out, &n, &err), -1);
    /* Bad nonces for client_first, and out of order calls. */
    assert_int_equal(proto_scram_client_first(&c, "", out, sizeof out, &n), -1);
    assert_int_equal(proto_scram_client_first(&c, "a,b", out, sizeof out, &n), -1);
    assert_int_equal(proto_scram_client_first(&c, "abc", out, 5, &n), -1);
    assert_int_equal(proto_scram_client_verify(&c, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL), &err), -1);
    /* The user name is escaped as saslname. */
    assert_int_equal(proto_scram_client_first_user(&c, "a,b=c", "xyz", out, sizeof out, &n), 0);
    assert_string_equal(out, "n,,n=a=2Cb=3Dc,r=xyz");
}

static const char *const bad_server_final[] = {
    "", "v=", "v=!!", "e=invalid-proof", "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=", "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    RFC_SERVER_FINAL ",x=1", RFC_SERVER_FINAL ",", "x" RFC_SERVER_FINAL,
};

static void test_scram_client_verify_bad(void **state)
{
    (void)state;
    struct proto_scram_client c;
    char out[PROTO_SCRAM_MAX_MSG];
    size_t n;
    const char *err;
    for (size_t i = 0; i < ARRAY_LEN(bad_server_final); i++) {
        const char *m = bad_server_final[i];
        client_at_final(&c);
        assert_int_equal(proto_scram_client_final(&c, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST), "pencil",
                                                  NULL, NULL, out, sizeof out, &n, &err), 0);
        err = NULL;
        if (proto_scram_client_verify(&c, m, strlen(m), &err) != -1)
            fail_msg("server-final %zu accepted: %s", i, m);
        assert_non_null(err);
    }
}

/* Deterministic mutations of valid messages: every call must return 0 or -1 (ASan checks reads). */
static uint32_t lcg(uint32_t *x)
{
    *x = *x * 1664525u + 1013904223u;
    return *x >> 8;
}

static size_t mutate(const char *src, char *dst, size_t cap, uint32_t *seed)
{
    size_t n = strlen(src);
    memcpy(dst, src, n);
    for (uint32_t k = lcg(seed) % 4 + 1; k > 0; k--) {
        uint32_t r = lcg(seed);
        if (r % 3 == 0 && n > 0)
            n = r / 3 % n;                                  /* truncate */
        else if (n > 0)
            dst[r / 3 % n] = "=,abz09+/\x01\xff"[r % 11];      /* replace a byte */
        else if (n < cap)
            dst[n++] = ',';
    }
    return n;
}

static void test_scram_mutations(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    char m[PROTO_SCRAM_MAX_MSG], out[PROTO_SCRAM_MAX_MSG];
    size_t n, outn;
    const char *err;
    for (int i = 0; i < 3000; i++) {
        struct proto_scram_server s;
        struct proto_scram_client c;
        char *heap;
        n = mutate(RFC_CLIENT_FIRST, m, sizeof m, &seed);
        heap = malloc(n + 1);
        memcpy(heap, m, n);
        int r = proto_scram_server_first(&s, &(struct proto_scram_secret){ .iterations = 1, .salt_len = 1 },
                                         heap, n, "x", out, sizeof out, &outn, &err);
        assert_true(r == 0 || r == -1);
        free(heap);
        server_at_final(&s);
        n = mutate(RFC_CLIENT_FINAL, m, sizeof m, &seed);
        heap = malloc(n + 1);
        memcpy(heap, m, n);
        r = proto_scram_server_final(&s, heap, n, out, sizeof out, &outn, &err);
        assert_true(r == -1 || (n == strlen(RFC_CLIENT_FINAL) && memcmp(heap, RFC_CLIENT_FINAL, n) == 0));
        free(heap);
        client_at_final(&c);
        n = mutate(RFC_SERVER_FIRST, m, sizeof m, &seed);
        heap = malloc(n + 1);
        memcpy(heap, m, n);
        r = proto_scram_client_final(&c, heap, n, NULL, rfc_client_key, rfc_client_key, out, sizeof out,
                                     &outn, &err);
        assert_true(r == 0 || r == -1);
        free(heap);
    }
}

/* Channel binding (SCRAM-SHA-256-PLUS, tls-server-end-point): the gs2 flag must agree with the
 * mechanism and with what was offered, and c= must carry the gs2 header plus the binding data. */
static void test_scram_channel_binding(void **state)
{
    (void)state;
    struct proto_scram_secret sec;
    struct proto_scram_server s;
    uint8_t hash[32];
    char out[PROTO_SCRAM_MAX_MSG], final[PROTO_SCRAM_MAX_MSG], cb[128];
    uint8_t input[64];
    size_t n;
    const char *err = NULL;
    const char *first = "p=tls-server-end-point,,n=,r=abc";
    for (int i = 0; i < 32; i++)
        hash[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(proto_scram_make_secret("pw", (const uint8_t *)"saltsalt", 8, 4096, &sec), 0);

    /* PLUS selected, binding offered: accepted; the right c= reaches the proof check */
    memset(&s, 0, sizeof s);
    assert_int_equal(proto_scram_server_bind(&s, hash, sizeof hash, 1), 0);
    assert_int_equal(proto_scram_server_first(&s, &sec, first, strlen(first), "xyz", out, sizeof out, &n, &err), 0);
    memcpy(input, "p=tls-server-end-point,,", 24);
    memcpy(input + 24, hash, 32);
    assert_true(proto__b64_encode(input, 56, cb, sizeof cb) > 0);
    snprintf(final, sizeof final, "c=%s,r=abcxyz,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", cb);
    assert_int_equal(proto_scram_server_final(&s, final, strlen(final), out, sizeof out, &n, &err), -1);
    assert_non_null(strstr(err, "proof"));
    /* a binding that differs in one byte fails the channel binding check */
    memset(&s, 0, sizeof s);
    assert_int_equal(proto_scram_server_bind(&s, hash, sizeof hash, 1), 0);
    assert_int_equal(proto_scram_server_first(&s, &sec, first, strlen(first), "xyz", out, sizeof out, &n, &err), 0);
    input[55] ^= 1;
    assert_true(proto__b64_encode(input, 56, cb, sizeof cb) > 0);
    snprintf(final, sizeof final, "c=%s,r=abcxyz,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", cb);
    assert_int_equal(proto_scram_server_final(&s, final, strlen(final), out, sizeof out, &n, &err), -1);
    assert_string_equal(err, "SCRAM channel binding check failed");
    /* "n,," with c=biws is fine */
    memset(&s, 0, sizeof s);
    assert_int_equal(proto_scram_server_bind(&s, hash, sizeof hash, 0), 0);
    assert_int_equal(proto_scram_server_first(&s, &sec, "n,,n=,r=abc", 11, "xyz", out, sizeof out, &n, &err), 0);
    snprintf(final, sizeof final, "c=biws,r=abcxyz,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert_int_equal(proto_scram_server_final(&s, final, strlen(final), out, sizeof out, &n, &err), -1);
    assert_non_null(strstr(err, "proof"));

    static const struct { int plus; const char *first; } bad[] = {
        { 0, "y,,n=,r=abc" },                       /* downgrade: PLUS was offered */
        { 1, "n,,n=,r=abc" },                       /* PLUS selected without binding */
        { 1, "y,,n=,r=abc" },
        { 0, "p=tls-server-end-point,,n=,r=abc" },  /* binding without PLUS */
        { 1, "p=tls-unique,,n=,r=abc" },            /* unsupported type */
        { 1, "p=tls-server-end-pointx,,n=,r=abc" },
        { 1, "p=tls-server-end-point,a=u,n=,r=abc" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&s, 0, sizeof s);
        assert_int_equal(proto_scram_server_bind(&s, hash, sizeof hash, bad[i].plus), 0);
        err = NULL;
        if (proto_scram_server_first(&s, &sec, bad[i].first, strlen(bad[i].first), "xyz", out, sizeof out, &n,
                                     &err) != -1)
            fail_msg("accepted: plus=%d %s", bad[i].plus, bad[i].first);
        assert_non_null(err);
    }
    uint8_t big[PROTO_SCRAM_MAX_CBIND + 1] = { 0 };
    assert_int_equal(proto_scram_server_bind(&s, big, sizeof big, 1), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_md5_vectors),
        cmocka_unit_test(test_md5_verify),
        cmocka_unit_test(test_scram_rfc_client),
        cmocka_unit_test(test_scram_rfc_client_keys),
        cmocka_unit_test(test_scram_client_keycache),
        cmocka_unit_test(test_scram_rfc_server),
        cmocka_unit_test(test_scram_rfc_server_y),
        cmocka_unit_test(test_scram_secret),
        cmocka_unit_test(test_scram_bad_secrets),
        cmocka_unit_test(test_scram_nonce),
        cmocka_unit_test(test_scram_roundtrip),
        cmocka_unit_test(test_scram_mock_secret),
        cmocka_unit_test(test_b64_lenient),
        cmocka_unit_test(test_scram_server_first_bad),
        cmocka_unit_test(test_scram_server_final_bad),
        cmocka_unit_test(test_scram_client_bad),
        cmocka_unit_test(test_scram_client_verify_bad),
        cmocka_unit_test(test_scram_mutations),
        cmocka_unit_test(test_scram_channel_binding),
        cmocka_unit_test(test_saslprep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
