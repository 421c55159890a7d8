/*
 * Message framing: reads the 5-byte header of typed v3 messages, checks the length field
 * against per-type, per-phase caps, and points at complete message bodies in the caller's buffer.
 */
#include "protocol/proto.h"

/*
 * Frontend types that may carry user data of any size. PostgreSQL's own backend allows the
 * large limit for exactly these and 10,000 bytes for the others (postgres.c, SocketBackend; the
 * same during COPY FROM STDIN), and ends the session without a word above either: pglane's caps
 * are the same numbers, so a length PostgreSQL would refuse never reaches a server.
 */
static int frontend_is_large(uint8_t type)
{
    switch (type) {
    case PROTO_FE_QUERY:
    case PROTO_FE_PARSE:
    case PROTO_FE_BIND:
    case PROTO_FE_COPY_DATA:
    case PROTO_FE_FUNCTION_CALL:
        return 1;
    default:
        return 0;
    }
}

/*
 * Backend types that may be large: libpq's VALID_LONG_MESSAGE_TYPE (T, D, d, V, E, N, A) plus
 * ParameterDescription, which holds 4 bytes for each of up to 65535 parameters.
 */
static int backend_is_large(uint8_t type)
{
    switch (type) {
    case PROTO_BE_ROW_DESC:
    case PROTO_BE_DATA_ROW:
    case PROTO_BE_COPY_DATA:
    case PROTO_BE_FUNCTION_RESULT:
    case PROTO_BE_ERROR:
    case PROTO_BE_NOTICE:
    case PROTO_BE_NOTIFICATION:
    case PROTO_BE_PARAM_DESC:
        return 1;
    default:
        return 0;
    }
}

_Static_assert(PROTO_MAX_FE_SMALL_LEN <= PROTO_MAX_PREAUTH_LEN && PROTO_MAX_FE_SMALL_LEN <= PROTO_MAX_SMALL_LEN &&
               PROTO_MAX_FE_SMALL_LEN <= PROTO_MAX_FE_LARGE_LEN && PROTO_MAX_SMALL_LEN <= PROTO_MAX_LARGE_LEN,
               "proto_frame_header skips the lookup below the least limit");

uint32_t proto_max_len(uint8_t type, enum proto_phase phase)
{
    switch (phase) {
    case PROTO_PHASE_PREAUTH:
        return PROTO_MAX_PREAUTH_LEN;
    case PROTO_PHASE_FRONTEND:
        return frontend_is_large(type) ? PROTO_MAX_FE_LARGE_LEN : PROTO_MAX_FE_SMALL_LEN;
    case PROTO_PHASE_BACKEND:
        return backend_is_large(type) ? PROTO_MAX_LARGE_LEN : PROTO_MAX_SMALL_LEN;
    }
    return PROTO_MAX_SMALL_LEN;
}

const char proto_err_bad_length[] = "invalid message length";
const char proto_err_too_long[] = "message too long";

static int fail(const char **err, const char *msg)
{
    if (err != NULL)
        *err = msg;
    return PROTO_FRAME_ERROR;
}

int proto_frame_header(const uint8_t *buf, size_t avail, enum proto_phase phase,
                       struct proto_frame *f, const char **err)
{
    if (avail < PROTO_HEADER_LEN)
        return PROTO_FRAME_NEED_MORE;
    uint32_t len = proto_get_u32(buf + 1);
    if (len < 4)
        return fail(err, proto_err_bad_length);
    if (len > PROTO_MAX_FE_SMALL_LEN && len > proto_max_len(buf[0], phase))   /* the least of the limits */
        return fail(err, proto_err_too_long);
    f->type = buf[0];
    f->len = len - 4;
    f->body = NULL;
    return PROTO_FRAME_OK;
}

int proto_frame_next(const uint8_t *buf, size_t avail, enum proto_phase phase,
                     struct proto_frame *f, size_t *consumed, const char **err)
{
    struct proto_frame h;
    int r = proto_frame_header(buf, avail, phase, &h, err);
    if (r != PROTO_FRAME_OK)
        return r;
    if (avail - PROTO_HEADER_LEN < h.len)
        return PROTO_FRAME_NEED_MORE;
    h.body = buf + PROTO_HEADER_LEN;
    *f = h;
    *consumed = PROTO_HEADER_LEN + (size_t)h.len;
    return PROTO_FRAME_OK;
}
