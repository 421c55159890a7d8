/*
 * Helpers shared by protocol/'s SCRAM files: strict base64, the SHA-256 primitives and bounds-safe
 * readers of SCRAM attributes. Internal to protocol/; not part of the public API in proto.h.
 */
#ifndef PGLANE_SCRAM_INTERNAL_H
#define PGLANE_SCRAM_INTERNAL_H

#include "protocol/proto.h"

#define PROTO__SCRAM_MAX_ITER 10000000

/*
 * The exchange's progress, kept in the public structs' `int state` (proto.h fixes that type).
 * FIRST_Y records that the client sent the "y,," gs2 header, which its final message must echo.
 */
enum proto__scram_state {
    PROTO__SCRAM_INIT = 0,
    PROTO__SCRAM_FIRST_N,
    PROTO__SCRAM_FIRST_Y,
    PROTO__SCRAM_FIRST_P,        /* "p=tls-server-end-point": the final c= carries the binding */
    PROTO__SCRAM_FINAL,
    PROTO__SCRAM_DONE,
    PROTO__SCRAM_FAILED,
    /* proto_scram_server_bind was called: proto_scram_server_first trusts the binding fields only
     * then (callers may hand it an uninitialised struct otherwise) */
    PROTO__SCRAM_BOUND = 0x5c4b1d
};

/* A slice of a NUL-terminated message. */
struct proto__span {
    const char *p;
    size_t n;
};

/* Padded base64 of n bytes into out. Returns the text length (a NUL follows) or -1 if cap is short. */
int proto__b64_encode(const uint8_t *in, size_t n, char *out, size_t cap) PROTO_MUSTCHECK;
/* Strict padded base64 (no whitespace, canonical). Returns the byte count or -1 (bad, or > cap). */
int proto__b64_decode(const char *in, size_t n, uint8_t *out, size_t cap) PROTO_MUSTCHECK;
/* Base64 read as PostgreSQL's pg_b64_decode reads a SCRAM proof: unused bits ignored, and once a
 * quantum ended in padding, later quanta give as many bytes as that one did. Returns the byte count
 * or -1 (bad, or > cap). */
int proto__b64_decode_lenient(const char *in, size_t n, uint8_t *out, size_t cap) PROTO_MUSTCHECK;

/* HMAC-SHA-256 with a 32-byte key and SHA-256. Return 0 or -1. */
int proto__hmac(const uint8_t key[PROTO_SCRAM_KEY_LEN], const void *msg, size_t n,
                uint8_t out[PROTO_SCRAM_KEY_LEN]) PROTO_MUSTCHECK;
int proto__sha256(const void *in, size_t n, uint8_t out[PROTO_SCRAM_KEY_LEN]) PROTO_MUSTCHECK;
/* ClientKey and ServerKey from SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iter). 0 or -1. */
int proto__scram_keys(const char *password, const uint8_t *salt, int salt_len, int iterations,
                      uint8_t client_key[PROTO_SCRAM_KEY_LEN],
                      uint8_t server_key[PROTO_SCRAM_KEY_LEN]) PROTO_MUSTCHECK;

/* Copies an untrusted message into buf as a C string. -1 if it does not fit or holds a NUL. */
int proto__scram_copy(const char *in, size_t len, char *buf, size_t cap) PROTO_MUSTCHECK;
/*
 * Reads the attribute "<name>=<value>" at *cur (name 0: any letter). The value runs to the next
 * ',' or the end; *cur moves past the ','. A ',' followed by the end is malformed. 0 or -1.
 */
int proto__scram_attr(const char **cur, char name, struct proto__span *v) PROTO_MUSTCHECK;
/* 1 if v is a non-empty run of printable ASCII other than ',' (RFC 5802 "printable"), else 0. */
int proto__scram_printable(struct proto__span v) PROTO_MUSTCHECK;
/* Decimal iteration count in [1, PROTO__SCRAM_MAX_ITER]. 0 or -1. */
int proto__scram_iter(struct proto__span v, int *iterations) PROTO_MUSTCHECK;
/* HMAC(key, client_first_bare "," server_first "," final_without_proof). 0 or -1. */
int proto__scram_sign(const uint8_t key[PROTO_SCRAM_KEY_LEN], const char *client_first_bare,
                      const char *server_first, struct proto__span final_without_proof,
                      uint8_t out[PROTO_SCRAM_KEY_LEN]) PROTO_MUSTCHECK;
/* Copies n bytes and a NUL into out. 0, or -1 if outcap < n + 1. */
int proto__scram_emit(const char *s, size_t n, char *out, size_t outcap,
                      size_t *outlen) PROTO_MUSTCHECK;

#endif
