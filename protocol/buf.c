/*
 * Growable output buffer with typed big-endian puts and a sticky failure flag, plus the
 * big-endian readers. Callers build a whole message and check `failed` once at the end.
 */
#include "protocol/proto.h"

#include <stdlib.h>
#include <string.h>

#define BUF_MIN_CAP 256

void proto_buf_init(struct proto_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}

void proto_buf_free(struct proto_buf *b)
{
    free(b->data);
    proto_buf_init(b);
}

void proto_buf_reset(struct proto_buf *b)
{
    b->len = 0;
    b->failed = 0;
}

/* Makes room for n more bytes. Returns 0, or -1 and sets the sticky flag. */
static int reserve(struct proto_buf *b, size_t n)
{
    if (b->failed)
        return -1;
    if (n <= b->cap - b->len)
        return 0;
    if (n > SIZE_MAX / 2 - b->len) {
        b->failed = 1;
        return -1;
    }
    size_t need = b->len + n;
    size_t cap = b->cap ? b->cap : BUF_MIN_CAP;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void proto_put_bytes(struct proto_buf *b, const void *p, size_t n)
{
    if (n == 0 || reserve(b, n) < 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void proto_put_u8(struct proto_buf *b, uint8_t v)
{
    proto_put_bytes(b, &v, 1);
}

void proto_put_u16(struct proto_buf *b, uint16_t v)
{
    uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    proto_put_bytes(b, p, sizeof p);
}

void proto_put_u32(struct proto_buf *b, uint32_t v)
{
    uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    proto_put_bytes(b, p, sizeof p);
}

void proto_put_cstr(struct proto_buf *b, const char *s)
{
    proto_put_bytes(b, s, strlen(s) + 1);
}

/*
 * Writes the type byte and a placeholder length. The returned offset is that of the length
 * field, so proto_msg_end also serves messages without a type byte (startup packets): record
 * b->len, put a placeholder u32, and pass that offset to proto_msg_end.
 */
size_t proto_msg_begin(struct proto_buf *b, uint8_t type)
{
    proto_put_u8(b, type);
    size_t start = b->len;
    proto_put_u32(b, 0);
    return start;
}

void proto_msg_end(struct proto_buf *b, size_t start)
{
    if (b->failed || start > b->len || b->len - start < 4)
        return;
    size_t n = b->len - start;
    if (n > UINT32_MAX) {
        b->failed = 1;
        return;
    }
    uint8_t *p = b->data + start;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
}

