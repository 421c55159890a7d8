/*
 * One line per event on stderr: time, level, message (callers put the connection id first).
 * Messages carry bytes from clients (user and database names, admin commands) and servers, so every
 * line is escaped here, in one place: a line always starts with a timestamp and holds no raw control
 * byte that could forge a line or drive a terminal.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "proxy/proxy.h"

#define LOG_MSG_MAX 2048   /* a message longer than this is cut (and marked with "...") */

static _Atomic int current_level = CONF_LOG_INFO;   /* set by any worker's start or reload */

void px_log_set_level(enum conf_log_level level)
{
    atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

int px_log_enabled(enum conf_log_level level)
{
    return (int)level <= atomic_load_explicit(&current_level, memory_order_relaxed);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes) that is printable (not a C1 control), or 0. */
static size_t utf8_printable(const uint8_t *p, size_t n)
{
    size_t len, i;
    uint32_t cp;

    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        len = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        len = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        len = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
        return 0;   /* overlong, surrogate, out of range, or a C1 control (U+0080..U+009F) */
    return len;
}

size_t px_log_escape(char *out, size_t cap, const char *in, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)in;
    size_t o = 0, i = 0, u;

    if (cap == 0)
        return 0;
    while (i < n) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
            if (o + 1 >= cap)
                break;
            out[o++] = (char)p[i++];
        } else if (p[i] == '\\') {
            if (o + 2 >= cap)
                break;
            out[o++] = '\\';
            out[o++] = '\\';
            i++;
        } else if (p[i] >= 0x80 && (u = utf8_printable(p + i, n - i)) > 0) {
            if (o + u >= cap)
                break;
            memcpy(out + o, p + i, u);
            o += u;
            i += u;
        } else {
            if (o + 4 >= cap)
                break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[p[i] >> 4];
            out[o++] = hex[p[i] & 15];
            i++;
        }
    }
    out[o] = '\0';
    return i;
}

void px_log(enum conf_log_level level, const char *fmt, ...)
{
    static const char *const names[] = { "ERROR", "WARNING", "INFO", "DEBUG" };
    char msg[LOG_MSG_MAX + 1], line[4 * LOG_MSG_MAX + 64], stamp[32];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    size_t n, used;
    int r, cut;

    if (!px_log_enabled(level))
        return;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    va_start(ap, fmt);
    r = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    cut = (size_t)r >= sizeof(msg);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))   /* libpq's messages end in "\n" */
        n--;
    r = snprintf(line, sizeof(line), "%s.%03d %s ", stamp, (int)(tv.tv_usec / 1000), names[level]);
    used = px_log_escape(line + r, sizeof(line) - (size_t)r - 4, msg, n);
    if (cut || used < n)
        strcat(line, "...");
    fprintf(stderr, "%s\n", line);
}
