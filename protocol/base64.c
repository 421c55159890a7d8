/*
 * Base64 (RFC 4648 alphabet, padded) for SCRAM. The decoder is strict because its input comes
 * from the network: no whitespace, padding only at the end, unused bits zero.
 */
#include "protocol/scram_internal.h"

#include <limits.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int proto__b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    if (n > (size_t)INT_MAX / 4 * 3 - 3 || cap < (n + 2) / 3 * 4 + 1)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t acc = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            acc |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            acc |= in[i + 2];
        out[o++] = alphabet[acc >> 18 & 63];
        out[o++] = alphabet[acc >> 12 & 63];
        out[o++] = i + 1 < n ? alphabet[acc >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[acc & 63] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

static int digit(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes one quantum of 4 characters, of which `data` (2..4) are not padding. Returns bytes or -1. */
static int quantum(const char *in, size_t data, uint8_t *out)
{
    uint32_t acc = 0;
    for (size_t j = 0; j < 4; j++) {
        int d = j < data ? digit(in[j]) : 0;
        if (d < 0)
            return -1;
        acc = acc << 6 | (uint32_t)d;
    }
    /* Bits below the last whole byte must be zero, so that each byte string has one encoding. */
    if ((data == 2 && (acc & 0xffff) != 0) || (data == 3 && (acc & 0xff) != 0))
        return -1;
    out[0] = (uint8_t)(acc >> 16);
    out[1] = (uint8_t)(acc >> 8);
    out[2] = (uint8_t)acc;
    return (int)data - 1;
}

int proto__b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n % 4 != 0 || n > (size_t)INT_MAX)
        return -1;
    size_t pad = 0;
    if (n > 0 && in[n - 1] == '=')
        pad = in[n - 2] == '=' ? 2 : 1;
    size_t total = n / 4 * 3 - pad;
    if (total > cap)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint8_t tmp[3];
        size_t data = i + 4 == n ? 4 - pad : 4;
        int got = quantum(in + i, data, tmp);
        if (got < 0)
            return -1;
        for (int k = 0; k < got; k++)
            out[o++] = tmp[k];
    }
    return (int)o;
}

int proto__b64_decode_lenient(const char *in, size_t n, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    size_t o = 0;
    int pos = 0, end = 0;

    for (size_t i = 0; i < n; i++) {
        int d = 0;

        if (in[i] == '=') {
            if (!end) {
                if (pos != 2 && pos != 3)
                    return -1;
                end = pos - 1;                  /* 1: one byte in this quantum, 2: two */
            }
        } else if ((d = digit(in[i])) < 0) {
            return -1;                          /* whitespace included */
        }
        acc = acc << 6 | (uint32_t)d;
        if (++pos == 4) {
            int bytes = end == 0 ? 3 : end;

            if (o + (size_t)bytes > cap)
                return -1;
            out[o++] = (uint8_t)(acc >> 16);
            if (bytes > 1)
                out[o++] = (uint8_t)(acc >> 8);
            if (bytes > 2)
                out[o++] = (uint8_t)acc;
            acc = 0;
            pos = 0;
        }
    }
    return pos == 0 && o <= (size_t)INT_MAX ? (int)o : -1;
}
