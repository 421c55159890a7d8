/*
 * protocol/ — PostgreSQL v3 wire protocol: framing over byte buffers, startup packet parsing,
 * message builders and parsers, MD5 and SCRAM-SHA-256 for both roles. Pure: no sockets, no
 * libuv, no logging, no globals. Every parser points into the caller's buffer and copies nothing.
 */
#ifndef PGLANE_PROTO_H
#define PGLANE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MUSTCHECK __attribute__((warn_unused_result))

/* Frontend (client to server) message types. */
enum {
    PROTO_FE_BIND = 'B', PROTO_FE_CLOSE = 'C', PROTO_FE_COPY_DATA = 'd', PROTO_FE_COPY_DONE = 'c',
    PROTO_FE_COPY_FAIL = 'f', PROTO_FE_DESCRIBE = 'D', PROTO_FE_EXECUTE = 'E', PROTO_FE_FLUSH = 'H',
    PROTO_FE_FUNCTION_CALL = 'F', PROTO_FE_PARSE = 'P', PROTO_FE_PASSWORD = 'p', PROTO_FE_QUERY = 'Q',
    PROTO_FE_SYNC = 'S', PROTO_FE_TERMINATE = 'X'
};

/* A frontend message PostgreSQL answers with a ReadyForQuery (it ends a Sync group or is one). */
static inline int proto_fe_gets_ready(uint8_t type)
{
    return type == PROTO_FE_SYNC || type == PROTO_FE_QUERY || type == PROTO_FE_FUNCTION_CALL;
}

/* A frontend message a server reading COPY FROM STDIN takes as part of the copy: the data, its end
 * (CopyDone, CopyFail), and Flush and Sync, which it reads and ignores there. */
static inline int proto_fe_in_copy(uint8_t type)
{
    return type == PROTO_FE_COPY_DATA || type == PROTO_FE_COPY_DONE || type == PROTO_FE_COPY_FAIL ||
           type == PROTO_FE_FLUSH || type == PROTO_FE_SYNC;
}

/* Backend (server to client) message types. */
enum {
    PROTO_BE_AUTH = 'R', PROTO_BE_BACKEND_KEY = 'K', PROTO_BE_BIND_COMPLETE = '2',
    PROTO_BE_CLOSE_COMPLETE = '3', PROTO_BE_COMMAND_COMPLETE = 'C', PROTO_BE_COPY_DATA = 'd',
    PROTO_BE_COPY_DONE = 'c', PROTO_BE_COPY_IN = 'G', PROTO_BE_COPY_OUT = 'H', PROTO_BE_COPY_BOTH = 'W',
    PROTO_BE_DATA_ROW = 'D', PROTO_BE_EMPTY_QUERY = 'I', PROTO_BE_ERROR = 'E',
    PROTO_BE_FUNCTION_RESULT = 'V', PROTO_BE_NEGOTIATE_VERSION = 'v', PROTO_BE_NO_DATA = 'n',
    PROTO_BE_NOTICE = 'N', PROTO_BE_NOTIFICATION = 'A', PROTO_BE_PARAM_DESC = 't',
    PROTO_BE_PARAM_STATUS = 'S', PROTO_BE_PARSE_COMPLETE = '1', PROTO_BE_PORTAL_SUSPENDED = 's',
    PROTO_BE_READY = 'Z', PROTO_BE_ROW_DESC = 'T'
};

/* Authentication request codes carried by 'R'. */
enum {
    PROTO_AUTH_OK = 0, PROTO_AUTH_CLEARTEXT = 3, PROTO_AUTH_MD5 = 5, PROTO_AUTH_SASL = 10,
    PROTO_AUTH_SASL_CONTINUE = 11, PROTO_AUTH_SASL_FINAL = 12
};

#define PROTO_HEADER_LEN 5              /* type byte + int32 length */
#define PROTO_VERSION_3 196608          /* 3.0 */
#define PROTO_SSL_REQUEST 80877103
#define PROTO_GSSENC_REQUEST 80877104
#define PROTO_CANCEL_REQUEST 80877102

/* Length caps (the int32 length field, which counts itself). */
#define PROTO_MAX_STARTUP_LEN 10004      /* startup packet: PostgreSQL's 10,000 bytes after the length word */
#define PROTO_MAX_PREAUTH_LEN 65535      /* password and SASL messages: PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH */
#define PROTO_MAX_FE_SMALL_LEN 10000     /* frontend Sync, Describe, Execute, Close, CopyFail...: as PostgreSQL */
#define PROTO_MAX_FE_LARGE_LEN 0x3ffffffe /* frontend Query, Parse, Bind, CopyData, FunctionCall: as PostgreSQL */
#define PROTO_MAX_SMALL_LEN 65536        /* backend types that are never legitimately large */
#define PROTO_MAX_LARGE_LEN 0x3fffffff   /* 1 GB - 1: backend DataRow, RowDescription, ErrorResponse, ... */

enum proto_phase {
    PROTO_PHASE_PREAUTH,    /* frontend messages before authentication completed */
    PROTO_PHASE_FRONTEND,   /* frontend messages after authentication */
    PROTO_PHASE_BACKEND     /* backend messages */
};

/* The largest legal value of the length field for a message of this type in this phase. */
uint32_t proto_max_len(uint8_t type, enum proto_phase phase);

enum proto_frame_result { PROTO_FRAME_ERROR = -1, PROTO_FRAME_NEED_MORE = 0, PROTO_FRAME_OK = 1 };

struct proto_frame {
    uint8_t type;
    uint32_t len;           /* body length: the length field minus 4 */
    const uint8_t *body;    /* points into the caller's buffer (NULL from proto_frame_header) */
};

/*
 * Reads the 5-byte header at buf. Returns PROTO_FRAME_OK with f->type and f->len set (f->body NULL),
 * PROTO_FRAME_NEED_MORE if avail < 5, or PROTO_FRAME_ERROR with *err set to proto_err_bad_length when
 * the length is below 4, proto_err_too_long when it is above proto_max_len(type, phase).
 */
extern const char proto_err_bad_length[], proto_err_too_long[];
int proto_frame_header(const uint8_t *buf, size_t avail, enum proto_phase phase,
                       struct proto_frame *f, const char **err) PROTO_MUSTCHECK;

/*
 * Reads one whole message at buf. PROTO_FRAME_OK: *f describes it and *consumed = 5 + f->len.
 * PROTO_FRAME_NEED_MORE: the message is incomplete (the caller keeps the bytes and reads more).
 * PROTO_FRAME_ERROR: as proto_frame_header.
 */
int proto_frame_next(const uint8_t *buf, size_t avail, enum proto_phase phase,
                     struct proto_frame *f, size_t *consumed, const char **err) PROTO_MUSTCHECK;

/*
 * The frame cursor: the streaming state of one direction of a connection over the caller's buffer
 * data[0, len). *pos is the next byte not yet stepped over; *remain counts the body bytes of the
 * current message still to step over, when its header was stepped over before all of its body was
 * held (the body is streamed through). The caller owns the buffer and both counters (proxy/ keeps
 * them in struct px_buf) and moves them itself when it drops or compacts bytes.
 *
 * proto_cursor_next first steps *pos over the held bytes of a streamed body. Then, at a boundary, it
 * reads the header at *pos: PROTO_FRAME_OK with f->type and f->len, f->body pointing at the body if
 * the whole message is held (else NULL), *remain 0 and *pos still at the header. PROTO_FRAME_NEED_MORE
 * when the streamed body or the 5-byte header is not all held yet; PROTO_FRAME_ERROR as
 * proto_frame_header. After OK the caller steps over the message: whole (*pos += 5 + f->len) or with
 * proto_cursor_stream, which steps over the header at *pos and sets *remain from its length field
 * (which may have been rewritten since proto_cursor_next read it).
 */
int proto_cursor_next(const uint8_t *data, uint32_t *pos, uint32_t len, uint32_t *remain,
                      enum proto_phase phase, struct proto_frame *f, const char **err) PROTO_MUSTCHECK;
void proto_cursor_stream(const uint8_t *data, uint32_t *pos, uint32_t *remain);

/* Startup packets: the first message of a connection, which has no type byte. */
enum proto_startup_kind {
    PROTO_STARTUP_V3, PROTO_STARTUP_SSL, PROTO_STARTUP_GSSENC, PROTO_STARTUP_CANCEL
};

/* As many as a startup packet can hold ("a\0\0" each): PostgreSQL limits only the packet's length. */
#define PROTO_MAX_STARTUP_PARAMS ((PROTO_MAX_STARTUP_LEN - 9) / 3)

struct proto_startup {
    enum proto_startup_kind kind;
    uint32_t version;
    uint32_t cancel_pid, cancel_key;            /* PROTO_STARTUP_CANCEL */
    int nparams;
    struct { const char *name, *value; } params[PROTO_MAX_STARTUP_PARAMS]; /* point into buf */
};

/*
 * Parses a startup packet. Returns PROTO_FRAME_OK (and *consumed), PROTO_FRAME_NEED_MORE, or
 * PROTO_FRAME_ERROR with *err a static message and *sqlstate the SQLSTATE to answer with
 * ("08P01" protocol violation, "0A000" unsupported protocol version: then out->version is the
 * version asked for and *err the calling thread's, valid until its next call). A length
 * PostgreSQL cannot take sets *err to proto_err_startup_length: PostgreSQL closes without a word.
 * An SSLRequest or GSSENCRequest may carry bytes after its code, and a CancelRequest may be short
 * or long (missing words read as 0), as PostgreSQL reads them.
 */
extern const char proto_err_startup_length[];
int proto_parse_startup(const uint8_t *buf, size_t avail, struct proto_startup *out,
                        size_t *consumed, const char **err, const char **sqlstate) PROTO_MUSTCHECK;

/* PostgreSQL 15's refusal of protocol version `code` (the calling thread's buffer, valid until its
 * next call); also its answer to a second SSLRequest or GSSENCRequest, read as a version. */
const char *proto_unsupported_version(uint32_t code);

/* Value of a startup parameter, or NULL; of its last occurrence when the packet repeats it, as
 * PostgreSQL reads a repeated user, database or options (the last one wins). */
const char *proto_startup_get(const struct proto_startup *s, const char *name);

/* One setting of a StartupMessage's "options": name (any '-' turned into '_') and value. */
struct proto_option {
    const char *name, *value;
};

/*
 * Splits a StartupMessage's "options" value as PostgreSQL does: words separated by white space, a
 * backslash taking the next character literally (pg_split_opts); then each switch must be
 * "-c name=value", "-cname=value" or "--name=value" (PostgreSQL's own switches other than those
 * are not supported); a "--" ends the switches, as for getopt. The strings are written into work (at least strlen(opts) + 1 bytes), out gets
 * up to max settings in order. Returns their count, or -1 with a message in err (errlen bytes) and
 * *sqlstate: "42601" for a setting without a value (as PostgreSQL), "0A000" for another switch,
 * "08P01" for a word that is no switch, "54000" for more than max settings.
 */
int proto_split_options(const char *opts, char *work, size_t worklen, struct proto_option *out, int max,
                        char *err, size_t errlen, const char **sqlstate);

/*
 * A growable output buffer with typed puts and a sticky failure flag (allocation failure), checked
 * once at the end. Owner: whoever declared it; proto_buf_free releases the storage.
 */
struct proto_buf {
    uint8_t *data;
    size_t len, cap;
    int failed;
};

void proto_buf_init(struct proto_buf *b);
void proto_buf_free(struct proto_buf *b);
void proto_buf_reset(struct proto_buf *b);           /* len = 0, keeps storage, clears failed */
void proto_put_u8(struct proto_buf *b, uint8_t v);
void proto_put_u16(struct proto_buf *b, uint16_t v);  /* network byte order */
void proto_put_u32(struct proto_buf *b, uint32_t v);
void proto_put_bytes(struct proto_buf *b, const void *p, size_t n);
void proto_put_cstr(struct proto_buf *b, const char *s);  /* with its NUL */
size_t proto_msg_begin(struct proto_buf *b, uint8_t type); /* returns the offset to pass to _end */
void proto_msg_end(struct proto_buf *b, size_t start);      /* fills in the length field */

/* Big-endian reads (no bounds checks: the caller checked the length); inline, as every message
 * header goes through proto_get_u32. */
static inline uint16_t proto_get_u16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t proto_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Builders. Each appends one whole message to b. */
void proto_build_error(struct proto_buf *b, const char *severity, const char *sqlstate,
                       const char *message, const char *detail, const char *hint);
void proto_build_notice(struct proto_buf *b, const char *severity, const char *sqlstate,
                        const char *message);
/* An ErrorResponse with the fields of body (an ErrorResponse body) in their order, except that the
 * value of a field whose code is codes[i] is values[i]. A field without its NUL ends the copy. */
void proto_build_error_rewrite(struct proto_buf *b, const uint8_t *body, uint32_t len,
                               const char *codes, const char *const *values);
void proto_build_param_status(struct proto_buf *b, const char *name, const char *value);
void proto_build_backend_key(struct proto_buf *b, uint32_t pid, uint32_t key);
void proto_build_ready(struct proto_buf *b, char status);     /* 'I', 'T' or 'E' */
void proto_build_auth_ok(struct proto_buf *b);
void proto_build_auth_cleartext(struct proto_buf *b);
void proto_build_auth_md5(struct proto_buf *b, const uint8_t salt[4]);
void proto_build_auth_sasl(struct proto_buf *b, const char *const *mechanisms, int n);
void proto_build_auth_sasl_continue(struct proto_buf *b, const void *data, size_t n);
void proto_build_auth_sasl_final(struct proto_buf *b, const void *data, size_t n);
void proto_build_query(struct proto_buf *b, const char *sql);
void proto_build_terminate(struct proto_buf *b);
void proto_build_sync(struct proto_buf *b);
/* StartupMessage v3.0 from parallel arrays of names and values (NULL-terminated pairs, count n). */
void proto_build_startup(struct proto_buf *b, const char *const *names, const char *const *values, int n);
void proto_build_cancel(struct proto_buf *b, uint32_t pid, uint32_t key);
void proto_build_ssl_request(struct proto_buf *b);
void proto_build_password(struct proto_buf *b, const char *password);   /* 'p' with a C string */
void proto_build_sasl_initial(struct proto_buf *b, const char *mechanism, const void *data, size_t n);
void proto_build_sasl_response(struct proto_buf *b, const void *data, size_t n);

/* Parsers of message bodies (body/len as returned in a proto_frame). Return 0 or -1 if malformed. */
struct proto_error_fields {
    const char *severity, *sqlstate, *message, *detail, *hint;  /* point into the body; NULL if absent */
};
int proto_parse_error(const uint8_t *body, uint32_t len, struct proto_error_fields *out) PROTO_MUSTCHECK;
int proto_parse_param_status(const uint8_t *body, uint32_t len,
                             const char **name, const char **value) PROTO_MUSTCHECK;
int proto_parse_backend_key(const uint8_t *body, uint32_t len, uint32_t *pid, uint32_t *key) PROTO_MUSTCHECK;
/* 'R': *code is the auth request code; *data and *n the remainder (salt, SASL mechanisms or data). */
int proto_parse_auth(const uint8_t *body, uint32_t len, uint32_t *code,
                     const uint8_t **data, uint32_t *n) PROTO_MUSTCHECK;
/* 'Z': the transaction status byte. */
int proto_parse_ready(const uint8_t *body, uint32_t len, char *status) PROTO_MUSTCHECK;
/* 'C': the command tag (a NUL-terminated string inside body). */
int proto_parse_command_complete(const uint8_t *body, uint32_t len, const char **tag) PROTO_MUSTCHECK;
/* 'p' answering SASL: SASLInitialResponse (mechanism, data; *data NULL for the length -1, "no
 * initial response"). -1 with *err (may be NULL) in PostgreSQL's words, checked in its order; then
 * *mechanism is set if the mechanism itself was read (PostgreSQL checks it before the data). */
int proto_parse_sasl_initial(const uint8_t *body, uint32_t len, const char **mechanism,
                             const uint8_t **data, uint32_t *n, const char **err) PROTO_MUSTCHECK;
/* 'p' answering cleartext/MD5: the NUL-terminated password. */
int proto_parse_password(const uint8_t *body, uint32_t len, const char **password) PROTO_MUSTCHECK;

/*
 * Frontend message bodies of the extended protocol (body/len as in a proto_frame). Each returns 0,
 * or -1 if PostgreSQL would refuse the body: a string without its NUL, a count or a length beyond
 * the bytes, bytes left over. Counts are unsigned 16-bit, as PostgreSQL reads them (a count whose
 * top bit is set is a large count, not a negative one). Strings point into the body, NUL-terminated
 * there; nothing is copied.
 */
struct proto_fe_parse {                 /* 'P' */
    const char *name, *query;           /* name "" is the unnamed statement */
    uint32_t name_len, query_len;
    uint16_t ntypes;                    /* parameter types declared (OID 0: unspecified) */
    const uint8_t *types;               /* ntypes big-endian int32 OIDs */
};
int proto_parse_fe_parse(const uint8_t *body, uint32_t len, struct proto_fe_parse *out) PROTO_MUSTCHECK;

struct proto_fe_bind {                  /* 'B' */
    const char *portal, *statement;     /* "" is the unnamed portal / statement */
    uint32_t portal_len, statement_len;
    uint32_t names_len;                 /* bytes of both names with their NULs (the format count follows) */
    uint16_t nformats, nparams, nresults;
    const uint8_t *formats;             /* nformats int16 codes: none (text), one for all, or nparams */
    const uint8_t *params;              /* nparams values: int32 length (-1 is NULL), then its bytes */
    const uint8_t *results;             /* nresults int16 result format codes */
};
/* A Bind's names alone, as proxy/ reads a large Bind whose values have not all arrived: 0 if the
 * portal and statement names both end within len (the fields after names_len are left zero). */
int proto_parse_fe_bind_names(const uint8_t *body, uint32_t len, struct proto_fe_bind *out) PROTO_MUSTCHECK;
int proto_parse_fe_bind(const uint8_t *body, uint32_t len, struct proto_fe_bind *out) PROTO_MUSTCHECK;

struct proto_fe_target {                /* 'D' and 'C' */
    uint8_t kind;                       /* 'S' a prepared statement, 'P' a portal */
    const char *name;
    uint32_t name_len;
};
int proto_parse_fe_describe(const uint8_t *body, uint32_t len, struct proto_fe_target *out) PROTO_MUSTCHECK;
int proto_parse_fe_close(const uint8_t *body, uint32_t len, struct proto_fe_target *out) PROTO_MUSTCHECK;

struct proto_fe_execute {               /* 'E' */
    const char *portal;
    uint32_t portal_len;
    int32_t max_rows;                   /* 0 or negative: all rows */
};
int proto_parse_fe_execute(const uint8_t *body, uint32_t len, struct proto_fe_execute *out) PROTO_MUSTCHECK;

/* MD5 ("md5" + 32 hex digits + NUL = 36 bytes). */
#define PROTO_MD5_LEN 36
/* out = "md5" + hex(md5(password || user)): the form PostgreSQL stores. */
void proto_md5_stored(const char *user, const char *password, char out[PROTO_MD5_LEN]);
/*
 * out = "md5" + hex(md5(hex(md5(password || user)) || salt)): what a client sends. `secret` is the
 * plaintext password or an already stored "md5..." hash.
 */
void proto_md5_response(const char *user, const char *secret, const uint8_t salt[4],
                        char out[PROTO_MD5_LEN]);
/* 1 if response matches the secret (plaintext or "md5..." hash), else 0. Constant time compare. */
int proto_md5_verify(const char *user, const char *secret, const uint8_t salt[4], const char *response);

/* SCRAM-SHA-256 (RFC 5802 / RFC 7677 as PostgreSQL uses it; channel binding tls-server-end-point). */
#define PROTO_SCRAM_KEY_LEN 32
#define PROTO_SCRAM_MAX_SALT 64
#define PROTO_SCRAM_MAX_MSG 512
#define PROTO_SCRAM_MAX_CBIND 64     /* tls-server-end-point data: a hash of up to 512 bits */
#define PROTO_SCRAM_DEFAULT_ITERATIONS 4096

struct proto_scram_secret {
    int iterations;
    uint8_t salt[PROTO_SCRAM_MAX_SALT];
    int salt_len;
    uint8_t stored_key[PROTO_SCRAM_KEY_LEN];
    uint8_t server_key[PROTO_SCRAM_KEY_LEN];
};

/* Parses "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>". 0 or -1. */
int proto_scram_parse_secret(const char *s, struct proto_scram_secret *out) PROTO_MUSTCHECK;
/*
 * The password as PostgreSQL and libpq feed it to SCRAM: RFC 4013 SASLprep (libidn's profile, with
 * unassigned code points refused as PostgreSQL refuses them). NULL when the bytes are used as they are:
 * ASCII, not UTF-8, refused by the profile, or mapped to nothing. Otherwise a malloc'd string.
 */
char *proto_saslprep(const char *password);
/* Derives a secret from a plaintext password (after proto_saslprep). 0 or -1. */
int proto_scram_make_secret(const char *password, const uint8_t *salt, int salt_len, int iterations,
                            struct proto_scram_secret *out) PROTO_MUSTCHECK;
/*
 * A stand-in secret for a user without a usable one (not in the auth_file, an md5 hash, an empty
 * password): salt and keys are HMAC-SHA-256(key, label ":" user), so the same user always gets the
 * same salt within one process (as a real user does) and no password matches it. With it, SCRAM
 * answers an unknown user exactly like a known one and fails only at the proof. 0 or -1.
 */
int proto_scram_mock_secret(const uint8_t key[PROTO_SCRAM_KEY_LEN], const char *user,
                            struct proto_scram_secret *out) PROTO_MUSTCHECK;
/* Fills out with n random printable nonce characters (RAND_bytes, base64 alphabet) and a NUL. */
int proto_scram_nonce(char *out, size_t n) PROTO_MUSTCHECK;

/* pglane as the SCRAM server to its clients. */
struct proto_scram_server {
    struct proto_scram_secret secret;
    char client_first_bare[PROTO_SCRAM_MAX_MSG];
    char server_first[PROTO_SCRAM_MAX_MSG];
    char nonce[PROTO_SCRAM_MAX_MSG];        /* client nonce + server nonce */
    uint8_t client_key[PROTO_SCRAM_KEY_LEN]; /* recovered from a verified proof */
    int state;
    /* Channel binding (SCRAM-SHA-256-PLUS, tls-server-end-point), see proto_scram_server_bind. */
    uint8_t cbind[PROTO_SCRAM_MAX_CBIND];
    size_t cbind_len;
    int plus_offered, plus_selected;
    /* After a -1: PostgreSQL's SQLSTATE, message (also *err) and detail ("" for none) for the same
     * mistake; wrong_proof is 1 when it was the proof (the wrong password: 28P01). */
    const char *err_state;
    char err_msg[96], err_detail[160];
    int wrong_proof;
};
/*
 * Call before proto_scram_server_first on a TLS connection where SCRAM-SHA-256-PLUS was offered:
 * hash is the tls-server-end-point data (the hash of pglane's certificate, RFC 5929), plus says
 * whether the client selected SCRAM-SHA-256-PLUS. Then "p=tls-server-end-point" must come with PLUS
 * and its binding must match; "y" (client thinks the server cannot bind) is a downgrade and fails.
 * Without this call channel binding is not offered. Returns 0, or -1 if hash is too long.
 */
int proto_scram_server_bind(struct proto_scram_server *st, const uint8_t *hash, size_t n, int plus) PROTO_MUSTCHECK;
/*
 * Takes the client-first-message (from SASLInitialResponse data) and produces the server-first-message
 * into out (NUL-terminated, *outlen bytes). server_nonce is printable, chosen by the caller.
 * Returns 0, or -1 with *err set (malformed message, channel binding requested).
 */
int proto_scram_server_first(struct proto_scram_server *st, const struct proto_scram_secret *secret,
                             const char *client_first, size_t len, const char *server_nonce,
                             char *out, size_t outcap, size_t *outlen, const char **err) PROTO_MUSTCHECK;
/*
 * Takes the client-final-message, checks nonce and proof, and produces the server-final-message
 * ("v=...") into out. Returns 0 if the proof is right, -1 with *err otherwise (wrong password or
 * malformed message).
 */
int proto_scram_server_final(struct proto_scram_server *st, const char *client_final, size_t len,
                             char *out, size_t outcap, size_t *outlen, const char **err) PROTO_MUSTCHECK;

/* pglane as the SCRAM client to PostgreSQL. */
/*
 * The ClientKey and ServerKey last derived from a plaintext password (PBKDF2, the server's iteration
 * count: about a millisecond of CPU at 4096), for the next login that offers the same salt and count
 * with the same password: a server keeps a role's salt until its password changes, so every login of a
 * pool after the first skips the derivation. Zeroed: empty. `derived` counts the derivations.
 */
struct proto_scram_keycache {
    uint8_t password_digest[PROTO_SCRAM_KEY_LEN];   /* SHA-256 of the password: no copy of it is kept */
    uint8_t salt[PROTO_SCRAM_MAX_SALT];
    int salt_len, iterations, valid;
    uint8_t client_key[PROTO_SCRAM_KEY_LEN], server_key[PROTO_SCRAM_KEY_LEN];
    uint64_t derived;
};

struct proto_scram_client {
    char client_first_bare[PROTO_SCRAM_MAX_MSG];
    char nonce[PROTO_SCRAM_MAX_MSG];
    uint8_t server_signature[PROTO_SCRAM_KEY_LEN];
    int state;
    struct proto_scram_keycache *keycache;   /* optional, set after the first message (which clears it):
                                              * used and filled when a password is given */
};
/* Produces the client-first-message "n,,n=,r=<nonce>" (PostgreSQL ignores the user name). */
int proto_scram_client_first(struct proto_scram_client *st, const char *client_nonce,
                             char *out, size_t outcap, size_t *outlen) PROTO_MUSTCHECK;
/*
 * The same with an explicit user name in n= (escaped as RFC 5802 saslname), for peers other than
 * PostgreSQL and for RFC 7677's test vector. -1 if the nonce is not printable or out is too small.
 */
int proto_scram_client_first_user(struct proto_scram_client *st, const char *user,
                                  const char *client_nonce, char *out, size_t outcap,
                                  size_t *outlen) PROTO_MUSTCHECK;
/*
 * Takes the server-first-message and produces the client-final-message. The credential is either the
 * plaintext password, or (password NULL) a ClientKey and ServerKey recovered from a client's SCRAM
 * exchange with pglane (valid when the server stores the same secret).
 */
int proto_scram_client_final(struct proto_scram_client *st, const char *server_first, size_t len,
                             const char *password, const uint8_t *client_key, const uint8_t *server_key,
                             char *out, size_t outcap, size_t *outlen, const char **err) PROTO_MUSTCHECK;
/* Checks the server-final-message's signature. 0 or -1 with *err. */
int proto_scram_client_verify(struct proto_scram_client *st, const char *server_final, size_t len,
                              const char **err) PROTO_MUSTCHECK;

#endif
