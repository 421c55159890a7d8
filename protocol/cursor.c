/*
 * The frame cursor: where the next message boundary is in a connection's buffer, and how much of the
 * current message is still to come when it is streamed through rather than held whole.
 */
#include "protocol/proto.h"

int proto_cursor_next(const uint8_t *data, uint32_t *pos, uint32_t len, uint32_t *remain,
                      enum proto_phase phase, struct proto_frame *f, const char **err)
{
    uint32_t avail = len - *pos;
    int r;

    if (*remain) {
        uint32_t n = *remain < avail ? *remain : avail;

        *pos += n;
        *remain -= n;
        if (*remain)
            return PROTO_FRAME_NEED_MORE;
        avail = len - *pos;
    }
    r = proto_frame_header(data + *pos, avail, phase, f, err);
    if (r == PROTO_FRAME_OK && avail - PROTO_HEADER_LEN >= f->len)
        f->body = data + *pos + PROTO_HEADER_LEN;
    return r;
}

void proto_cursor_stream(const uint8_t *data, uint32_t *pos, uint32_t *remain)
{
    *pos += PROTO_HEADER_LEN;
    *remain = proto_get_u32(data + *pos - 4) - 4;
}
