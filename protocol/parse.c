/*
 * Parsers of the message bodies the proxy must understand. Each checks every length against the
 * body it was given and points into that body; none copies.
 */
#include "protocol/proto.h"

#include <string.h>

/*
 * Reads the NUL-terminated string at body[*pos], which must end before len. Returns the string
 * and advances *pos past its NUL, or returns NULL.
 */
static const char *take_cstr(const uint8_t *body, uint32_t len, uint32_t *pos)
{
    if (*pos >= len)
        return NULL;
    const uint8_t *nul = memchr(body + *pos, '\0', len - *pos);
    if (nul == NULL)
        return NULL;
    const char *s = (const char *)body + *pos;
    *pos = (uint32_t)(nul - body) + 1;
    return s;
}

static void set_error_field(struct proto_error_fields *out, uint8_t code, const char *value,
                            const char **severity_nl)
{
    switch (code) {
    case 'S': out->severity = value; break;
    case 'V': *severity_nl = value; break;
    case 'C': out->sqlstate = value; break;
    case 'M': out->message = value; break;
    case 'D': out->detail = value; break;
    case 'H': out->hint = value; break;
    default: break;     /* other fields are skipped, as the protocol allows */
    }
}

/*
 * ErrorResponse / NoticeResponse. severity is the non-localized 'V' field when present (servers
 * since 9.6 send it), else 'S'. The field list terminator must be the last byte.
 */
int proto_parse_error(const uint8_t *body, uint32_t len, struct proto_error_fields *out)
{
    const char *severity_nl = NULL;
    uint32_t pos = 0;
    memset(out, 0, sizeof *out);
    for (;;) {
        if (pos >= len)
            return -1;
        uint8_t code = body[pos++];
        if (code == 0)
            break;
        const char *value = take_cstr(body, len, &pos);
        if (value == NULL)
            return -1;
        set_error_field(out, code, value, &severity_nl);
    }
    if (pos != len)
        return -1;
    if (severity_nl != NULL)
        out->severity = severity_nl;
    return 0;
}

int proto_parse_param_status(const uint8_t *body, uint32_t len, const char **name, const char **value)
{
    uint32_t pos = 0;
    const char *n = take_cstr(body, len, &pos);
    const char *v = take_cstr(body, len, &pos);
    if (n == NULL || v == NULL || pos != len)
        return -1;
    *name = n;
    *value = v;
    return 0;
}

int proto_parse_backend_key(const uint8_t *body, uint32_t len, uint32_t *pid, uint32_t *key)
{
    if (len != 8)
        return -1;
    *pid = proto_get_u32(body);
    *key = proto_get_u32(body + 4);
    return 0;
}

/* Checks the data expected after each known code; unknown codes pass through unchecked. */
static int auth_data_ok(uint32_t code, const uint8_t *data, uint32_t n)
{
    switch (code) {
    case PROTO_AUTH_OK:
    case PROTO_AUTH_CLEARTEXT:
        return n == 0;
    case PROTO_AUTH_MD5:
        return n == 4;
    case PROTO_AUTH_SASL:
        return n >= 1 && data[n - 1] == '\0';   /* a list of names ended by an empty one */
    default:
        return 1;
    }
}

int proto_parse_auth(const uint8_t *body, uint32_t len, uint32_t *code,
                     const uint8_t **data, uint32_t *n)
{
    if (len < 4)
        return -1;
    uint32_t c = proto_get_u32(body);
    if (!auth_data_ok(c, body + 4, len - 4))
        return -1;
    *code = c;
    *data = body + 4;
    *n = len - 4;
    return 0;
}

int proto_parse_ready(const uint8_t *body, uint32_t len, char *status)
{
    if (len != 1 || (body[0] != 'I' && body[0] != 'T' && body[0] != 'E'))
        return -1;
    *status = (char)body[0];
    return 0;
}

/* A body that is exactly one NUL-terminated string. */
static int parse_one_cstr(const uint8_t *body, uint32_t len, const char **s)
{
    uint32_t pos = 0;
    const char *v = take_cstr(body, len, &pos);
    if (v == NULL || pos != len)
        return -1;
    *s = v;
    return 0;
}

int proto_parse_command_complete(const uint8_t *body, uint32_t len, const char **tag)
{
    return parse_one_cstr(body, len, tag);
}

int proto_parse_password(const uint8_t *body, uint32_t len, const char **password)
{
    return parse_one_cstr(body, len, password);
}

/* SASLInitialResponse: mechanism, int32 length (-1: no data), data. *data is NULL for -1. */
int proto_parse_sasl_initial(const uint8_t *body, uint32_t len, const char **mechanism,
                             const uint8_t **data, uint32_t *n, const char **err)
{
    uint32_t pos = 0;
    const char *mech = take_cstr(body, len, &pos), *why = NULL;

    *mechanism = mech;
    if (mech == NULL) {
        why = "invalid string in message";
    } else if (len - pos < 4) {
        why = "insufficient data left in message";
    } else {
        uint32_t dlen = proto_get_u32(body + pos);

        pos += 4;
        if (dlen == UINT32_MAX) {                   /* -1: no initial response */
            *data = NULL;
            *n = 0;
            if (pos != len)
                why = "invalid message format";
        } else if (dlen > 0x7fffffff || dlen > len - pos) {
            why = "insufficient data left in message";
        } else if (dlen != len - pos) {
            why = "invalid message format";
        } else {
            *data = body + pos;
            *n = dlen;
        }
    }
    if (err != NULL)
        *err = why;
    return why ? -1 : 0;
}
