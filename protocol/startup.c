/*
 * Startup packets: StartupMessage v3, SSLRequest, GSSENCRequest and CancelRequest, the untyped
 * first message of a connection. Parameters point into the caller's buffer.
 */
#include "protocol/proto.h"

#include <stdio.h>
#include <string.h>

#define SQLSTATE_PROTOCOL_VIOLATION "08P01"
#define SQLSTATE_FEATURE_NOT_SUPPORTED "0A000"

static int fail(const char **err, const char **sqlstate, const char *msg, const char *state)
{
    if (err != NULL)
        *err = msg;
    if (sqlstate != NULL)
        *sqlstate = state;
    return PROTO_FRAME_ERROR;
}

static int violation(const char **err, const char **sqlstate, const char *msg)
{
    return fail(err, sqlstate, msg, SQLSTATE_PROTOCOL_VIOLATION);
}

/* PostgreSQL 15's words for every layout mistake in the parameter list (postmaster.c). */
static const char bad_layout[] = "invalid startup packet layout: expected terminator as last byte";

/*
 * Reads the name\0value\0 ... \0 list in [p, end). The list terminator must be the last byte of
 * the packet, as PostgreSQL requires. Returns NULL or a static error message.
 */
static const char *parse_params(const uint8_t *p, const uint8_t *end, struct proto_startup *out)
{
    out->nparams = 0;
    for (;;) {
        if (p >= end)
            return bad_layout;
        if (*p == '\0')
            return p + 1 == end ? NULL : bad_layout;
        const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
        if (nul == NULL)
            return bad_layout;
        const uint8_t *val = nul + 1;
        if (val >= end)
            return bad_layout;
        const uint8_t *vnul = memchr(val, '\0', (size_t)(end - val));
        if (vnul == NULL)
            return bad_layout;
        if (out->nparams >= PROTO_MAX_STARTUP_PARAMS)
            return "too many startup parameters";
        out->params[out->nparams].name = (const char *)p;
        out->params[out->nparams].value = (const char *)val;
        out->nparams++;
        p = vnul + 1;
    }
}

const char *proto_unsupported_version(uint32_t code)
{
    static _Thread_local char msg[96];      /* per thread: workers parse at once */

    snprintf(msg, sizeof(msg), "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0", code >> 16,
             code & 0xffff);
    return msg;
}

/* The word at off of a packet of len bytes, 0 past its end (PostgreSQL reads a short packet from a
 * zeroed buffer). */
static uint32_t word_or_zero(const uint8_t *buf, uint32_t len, uint32_t off)
{
    return off + 4 <= len ? proto_get_u32(buf + off) : 0;
}

/* Classifies a complete packet of len bytes. */
static int parse_complete(const uint8_t *buf, uint32_t len, struct proto_startup *out,
                          const char **err, const char **sqlstate)
{
    uint32_t code = proto_get_u32(buf + 4);
    out->version = code;
    out->nparams = 0;
    switch (code) {
    case PROTO_SSL_REQUEST:         /* bytes after the code are ignored, as by PostgreSQL */
    case PROTO_GSSENC_REQUEST:
        out->kind = code == PROTO_SSL_REQUEST ? PROTO_STARTUP_SSL : PROTO_STARTUP_GSSENC;
        return PROTO_FRAME_OK;
    case PROTO_CANCEL_REQUEST:      /* any length: what is missing reads as 0 and matches no key */
        out->kind = PROTO_STARTUP_CANCEL;
        out->cancel_pid = word_or_zero(buf, len, 8);
        out->cancel_key = word_or_zero(buf, len, 12);
        return PROTO_FRAME_OK;
    default:
        break;
    }
    /* Any 3.x is accepted; the caller sees the minor version in out->version. Another major version
     * is refused in PostgreSQL 15's words. */
    if (code >> 16 != 3)
        return fail(err, sqlstate, proto_unsupported_version(code), SQLSTATE_FEATURE_NOT_SUPPORTED);
    out->kind = PROTO_STARTUP_V3;
    const char *msg = parse_params(buf + 8, buf + len, out);
    if (msg != NULL)
        return violation(err, sqlstate, msg);
    return PROTO_FRAME_OK;
}

const char proto_err_startup_length[] = "invalid length of startup packet";

int proto_parse_startup(const uint8_t *buf, size_t avail, struct proto_startup *out,
                        size_t *consumed, const char **err, const char **sqlstate)
{
    if (avail < 4)
        return PROTO_FRAME_NEED_MORE;
    /* Check the length before waiting for the rest, so a bogus length fails at once. */
    uint32_t len = proto_get_u32(buf);
    if (len < 8 || len > PROTO_MAX_STARTUP_LEN)
        return violation(err, sqlstate, proto_err_startup_length);
    if (avail < len)
        return PROTO_FRAME_NEED_MORE;
    int r = parse_complete(buf, len, out, err, sqlstate);
    if (r == PROTO_FRAME_OK)
        *consumed = len;
    return r;
}

const char *proto_startup_get(const struct proto_startup *s, const char *name)
{
    for (int i = s->nparams - 1; i >= 0; i--)
        if (strcmp(s->params[i].name, name) == 0)
            return s->params[i].value;
    return NULL;
}

/* The next word of opts at *pos, as pg_split_opts reads it, written at work + *w; NULL at the end. */
static char *next_word(const char *opts, size_t *pos, char *work, size_t *w)
{
    const char *p = opts + *pos;
    char *word = work + *w, *o = word;
    int escaped = 0;

    while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
        p++;
    if (*p == '\0')
        return NULL;
    for (; *p; p++) {
        if (!escaped && (*p == ' ' || (*p >= '\t' && *p <= '\r')))
            break;
        if (!escaped && *p == '\\')
            escaped = 1;
        else {
            escaped = 0;
            *o++ = *p;
        }
    }
    *o++ = '\0';
    *pos = (size_t)(p - opts);
    *w = (size_t)(o - work);
    return word;
}

int proto_split_options(const char *opts, char *work, size_t worklen, struct proto_option *out, int max,
                        char *err, size_t errlen, const char **sqlstate)
{
    size_t pos = 0, w = 0;
    int n = 0, ended = 0;
    char *word;

    if (worklen < strlen(opts) + 1) {
        snprintf(err, errlen, "startup options too long");
        *sqlstate = "54000";
        return -1;
    }
    while ((word = next_word(opts, &pos, work, &w)) != NULL) {
        const char *flag = word[1] == '-' ? "--" : "-c ";
        char *arg, *eq;

        if (strcmp(word, "--") == 0 && !ended) {
            ended = 1;             /* the end of the switches, as for getopt: only words may follow */
            continue;
        }
        if (ended || word[0] != '-' || word[1] == '\0') {
            snprintf(err, errlen, "pglane: \"%.64s\" in startup parameter \"options\" is not supported; "
                                  "only -c name=value and --name=value are", word);
            *sqlstate = SQLSTATE_PROTOCOL_VIOLATION;
            return -1;
        }
        if (word[1] != 'c' && word[1] != '-') {
            snprintf(err, errlen, "pglane: switch \"%.64s\" in startup parameter \"options\" is not "
                                  "supported; only -c name=value and --name=value are", word);
            *sqlstate = SQLSTATE_FEATURE_NOT_SUPPORTED;
            return -1;
        }
        arg = word + 2;
        if (word[1] == 'c' && *arg == '\0' && (arg = next_word(opts, &pos, work, &w)) == NULL) {
            snprintf(err, errlen, "invalid command-line argument for server process: -c");
            *sqlstate = "42601";
            return -1;
        }
        if ((eq = strchr(arg, '=')) == NULL) {
            snprintf(err, errlen, "%s%.64s requires a value", flag, arg);
            *sqlstate = "42601";
            return -1;
        }
        if (n == max) {
            snprintf(err, errlen, "pglane: more than %d settings in startup parameter \"options\"", max);
            *sqlstate = "54000";
            return -1;
        }
        *eq = '\0';
        for (char *c = arg; *c; c++)
            if (*c == '-')
                *c = '_';
        out[n].name = arg;
        out[n].value = eq + 1;
        n++;
    }
    return n;
}
