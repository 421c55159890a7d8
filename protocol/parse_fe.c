/*
 * Parsers of the frontend message bodies of the extended protocol (Parse, Bind, Describe, Close,
 * Execute), checked as strictly as PostgreSQL's own reading of them (postgres.c, exec_*_message).
 * Each checks every length against the body it was given and points into that body; none copies.
 */
#include "protocol/proto.h"

#include <string.h>

/* The NUL-terminated string at body[*pos] (ending before len) and its length; NULL if none. */
static const char *cstr(const uint8_t *body, uint32_t len, uint32_t *pos, uint32_t *n)
{
    const uint8_t *nul;
    const char *s;

    if (*pos >= len || !(nul = memchr(body + *pos, 0, len - *pos)))
        return NULL;
    s = (const char *)body + *pos;
    *n = (uint32_t)(nul - (body + *pos));
    *pos += *n + 1;
    return s;
}

/* The int16 count at body[*pos], advancing past it; -1 if it does not fit. */
static int count16(const uint8_t *body, uint32_t len, uint32_t *pos, uint16_t *n)
{
    if (len - *pos < 2)
        return -1;
    *n = proto_get_u16(body + *pos);
    *pos += 2;
    return 0;
}

/* Steps over n items of `size` bytes at body[*pos]; returns where they start, or NULL. */
static const uint8_t *array(const uint8_t *body, uint32_t len, uint32_t *pos, uint32_t n, uint32_t size)
{
    const uint8_t *p = body + *pos;

    if ((uint64_t)n * size > len - *pos)
        return NULL;
    *pos += n * size;
    return p;
}

int proto_parse_fe_parse(const uint8_t *body, uint32_t len, struct proto_fe_parse *out)
{
    uint32_t pos = 0;

    memset(out, 0, sizeof(*out));
    if (!(out->name = cstr(body, len, &pos, &out->name_len)) ||
        !(out->query = cstr(body, len, &pos, &out->query_len)) ||
        count16(body, len, &pos, &out->ntypes) < 0 ||
        !(out->types = array(body, len, &pos, out->ntypes, 4)))
        return -1;
    return pos == len ? 0 : -1;
}

int proto_parse_fe_bind_names(const uint8_t *body, uint32_t len, struct proto_fe_bind *out)
{
    uint32_t pos = 0;

    memset(out, 0, sizeof(*out));
    if (!(out->portal = cstr(body, len, &pos, &out->portal_len)) ||
        !(out->statement = cstr(body, len, &pos, &out->statement_len)))
        return -1;
    out->names_len = pos;
    return 0;
}

/* Steps over nparams values (int32 length, -1 for NULL, then the bytes). */
static int values(const uint8_t *body, uint32_t len, uint32_t *pos, uint16_t nparams)
{
    for (uint32_t i = 0; i < nparams; i++) {
        uint32_t n;

        if (len - *pos < 4)
            return -1;
        n = proto_get_u32(body + *pos);
        *pos += 4;
        if (n == 0xffffffffu)
            continue;
        if (n > 0x7fffffffu || n > len - *pos)
            return -1;
        *pos += n;
    }
    return 0;
}

int proto_parse_fe_bind(const uint8_t *body, uint32_t len, struct proto_fe_bind *out)
{
    uint32_t pos;

    if (proto_parse_fe_bind_names(body, len, out) < 0)
        return -1;
    pos = out->names_len;
    if (count16(body, len, &pos, &out->nformats) < 0 ||
        !(out->formats = array(body, len, &pos, out->nformats, 2)) ||
        count16(body, len, &pos, &out->nparams) < 0)
        return -1;
    /* One format code applies to every parameter; more must be one per parameter. */
    if (out->nformats > 1 && out->nformats != out->nparams)
        return -1;
    out->params = body + pos;
    if (values(body, len, &pos, out->nparams) < 0 ||
        count16(body, len, &pos, &out->nresults) < 0 ||
        !(out->results = array(body, len, &pos, out->nresults, 2)))
        return -1;
    return pos == len ? 0 : -1;
}

static int target(const uint8_t *body, uint32_t len, struct proto_fe_target *out)
{
    uint32_t pos = 1;

    memset(out, 0, sizeof(*out));
    if (len < 1 || (body[0] != 'S' && body[0] != 'P') || !(out->name = cstr(body, len, &pos, &out->name_len)))
        return -1;
    out->kind = body[0];
    return pos == len ? 0 : -1;
}

int proto_parse_fe_describe(const uint8_t *body, uint32_t len, struct proto_fe_target *out)
{
    return target(body, len, out);
}

int proto_parse_fe_close(const uint8_t *body, uint32_t len, struct proto_fe_target *out)
{
    return target(body, len, out);
}

int proto_parse_fe_execute(const uint8_t *body, uint32_t len, struct proto_fe_execute *out)
{
    uint32_t pos = 0;

    memset(out, 0, sizeof(*out));
    if (!(out->portal = cstr(body, len, &pos, &out->portal_len)) || len - pos != 4)
        return -1;
    out->max_rows = (int32_t)proto_get_u32(body + pos);
    return 0;
}
