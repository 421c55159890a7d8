/*
 * Message builders: each appends one whole message to a proto_buf. Failures (allocation) are
 * recorded in the buffer's sticky flag, which the caller checks once.
 */
#include "protocol/proto.h"

#include <string.h>

/* Fields of ErrorResponse and NoticeResponse. */
enum { FIELD_SEVERITY = 'S', FIELD_SEVERITY_NL = 'V', FIELD_SQLSTATE = 'C', FIELD_MESSAGE = 'M',
       FIELD_DETAIL = 'D', FIELD_HINT = 'H' };

static void put_field(struct proto_buf *b, uint8_t code, const char *value)
{
    if (value == NULL)
        return;
    proto_put_u8(b, code);
    proto_put_cstr(b, value);
}

static void build_report(struct proto_buf *b, uint8_t type, const char *severity,
                         const char *sqlstate, const char *message, const char *detail,
                         const char *hint)
{
    size_t start = proto_msg_begin(b, type);
    put_field(b, FIELD_SEVERITY, severity);
    put_field(b, FIELD_SEVERITY_NL, severity);
    put_field(b, FIELD_SQLSTATE, sqlstate);
    put_field(b, FIELD_MESSAGE, message);
    put_field(b, FIELD_DETAIL, detail);
    put_field(b, FIELD_HINT, hint);
    proto_put_u8(b, 0);
    proto_msg_end(b, start);
}

void proto_build_error(struct proto_buf *b, const char *severity, const char *sqlstate,
                       const char *message, const char *detail, const char *hint)
{
    build_report(b, PROTO_BE_ERROR, severity, sqlstate, message, detail, hint);
}

void proto_build_notice(struct proto_buf *b, const char *severity, const char *sqlstate,
                        const char *message)
{
    build_report(b, PROTO_BE_NOTICE, severity, sqlstate, message, NULL, NULL);
}

void proto_build_error_rewrite(struct proto_buf *b, const uint8_t *body, uint32_t len,
                               const char *codes, const char *const *values)
{
    const uint8_t *p = body, *end = body + len;
    size_t start = proto_msg_begin(b, PROTO_BE_ERROR);

    while (p < end && *p) {
        uint8_t code = *p++;
        const uint8_t *z = memchr(p, 0, (size_t)(end - p));
        const char *which = strchr(codes, code);

        if (!z)
            break;
        proto_put_u8(b, code);
        proto_put_cstr(b, which ? values[which - codes] : (const char *)p);
        p = z + 1;
    }
    proto_put_u8(b, 0);
    proto_msg_end(b, start);
}

void proto_build_param_status(struct proto_buf *b, const char *name, const char *value)
{
    size_t start = proto_msg_begin(b, PROTO_BE_PARAM_STATUS);
    proto_put_cstr(b, name);
    proto_put_cstr(b, value);
    proto_msg_end(b, start);
}

void proto_build_backend_key(struct proto_buf *b, uint32_t pid, uint32_t key)
{
    size_t start = proto_msg_begin(b, PROTO_BE_BACKEND_KEY);
    proto_put_u32(b, pid);
    proto_put_u32(b, key);
    proto_msg_end(b, start);
}

void proto_build_ready(struct proto_buf *b, char status)
{
    size_t start = proto_msg_begin(b, PROTO_BE_READY);
    proto_put_u8(b, (uint8_t)status);
    proto_msg_end(b, start);
}

/* An 'R' message: the code, then n bytes of data. */
static void build_auth(struct proto_buf *b, uint32_t code, const void *data, size_t n)
{
    size_t start = proto_msg_begin(b, PROTO_BE_AUTH);
    proto_put_u32(b, code);
    proto_put_bytes(b, data, n);
    proto_msg_end(b, start);
}

void proto_build_auth_ok(struct proto_buf *b)
{
    build_auth(b, PROTO_AUTH_OK, NULL, 0);
}

void proto_build_auth_cleartext(struct proto_buf *b)
{
    build_auth(b, PROTO_AUTH_CLEARTEXT, NULL, 0);
}

void proto_build_auth_md5(struct proto_buf *b, const uint8_t salt[4])
{
    build_auth(b, PROTO_AUTH_MD5, salt, 4);
}

void proto_build_auth_sasl(struct proto_buf *b, const char *const *mechanisms, int n)
{
    size_t start = proto_msg_begin(b, PROTO_BE_AUTH);
    proto_put_u32(b, PROTO_AUTH_SASL);
    for (int i = 0; i < n; i++)
        proto_put_cstr(b, mechanisms[i]);
    proto_put_u8(b, 0);
    proto_msg_end(b, start);
}

void proto_build_auth_sasl_continue(struct proto_buf *b, const void *data, size_t n)
{
    build_auth(b, PROTO_AUTH_SASL_CONTINUE, data, n);
}

void proto_build_auth_sasl_final(struct proto_buf *b, const void *data, size_t n)
{
    build_auth(b, PROTO_AUTH_SASL_FINAL, data, n);
}

void proto_build_query(struct proto_buf *b, const char *sql)
{
    size_t start = proto_msg_begin(b, PROTO_FE_QUERY);
    proto_put_cstr(b, sql);
    proto_msg_end(b, start);
}

static void build_empty(struct proto_buf *b, uint8_t type)
{
    size_t start = proto_msg_begin(b, type);
    proto_msg_end(b, start);
}

void proto_build_terminate(struct proto_buf *b)
{
    build_empty(b, PROTO_FE_TERMINATE);
}

void proto_build_sync(struct proto_buf *b)
{
    build_empty(b, PROTO_FE_SYNC);
}

/* Untyped packets: the length field comes first, so the offset passed to _end is b->len. */
void proto_build_startup(struct proto_buf *b, const char *const *names, const char *const *values, int n)
{
    size_t start = b->len;
    proto_put_u32(b, 0);
    proto_put_u32(b, PROTO_VERSION_3);
    for (int i = 0; i < n; i++) {
        proto_put_cstr(b, names[i]);
        proto_put_cstr(b, values[i]);
    }
    proto_put_u8(b, 0);
    proto_msg_end(b, start);
}

void proto_build_cancel(struct proto_buf *b, uint32_t pid, uint32_t key)
{
    proto_put_u32(b, 16);
    proto_put_u32(b, PROTO_CANCEL_REQUEST);
    proto_put_u32(b, pid);
    proto_put_u32(b, key);
}

void proto_build_ssl_request(struct proto_buf *b)
{
    proto_put_u32(b, 8);
    proto_put_u32(b, PROTO_SSL_REQUEST);
}

void proto_build_password(struct proto_buf *b, const char *password)
{
    size_t start = proto_msg_begin(b, PROTO_FE_PASSWORD);
    proto_put_cstr(b, password);
    proto_msg_end(b, start);
}

/* SASLInitialResponse. data NULL means "no initial response", sent as length -1. */
void proto_build_sasl_initial(struct proto_buf *b, const char *mechanism, const void *data, size_t n)
{
    size_t start = proto_msg_begin(b, PROTO_FE_PASSWORD);
    proto_put_cstr(b, mechanism);
    if (data == NULL) {
        proto_put_u32(b, UINT32_MAX);
    } else if (n > INT32_MAX) {
        b->failed = 1;
    } else {
        proto_put_u32(b, (uint32_t)n);
        proto_put_bytes(b, data, n);
    }
    proto_msg_end(b, start);
}

void proto_build_sasl_response(struct proto_buf *b, const void *data, size_t n)
{
    size_t start = proto_msg_begin(b, PROTO_FE_PASSWORD);
    proto_put_bytes(b, data, n);
    proto_msg_end(b, start);
}
