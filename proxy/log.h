/*
 * Logging (proxy/log.c): one escaped line per event on stderr. Every layer of proxy/ may include it.
 */
#ifndef PGLANE_PROXY_LOG_H
#define PGLANE_PROXY_LOG_H

#include <stddef.h>

#include "conf/conf.h"

void px_log_set_level(enum conf_log_level level);
/* workers > 1: lines logged by this thread carry "[wN]" after the level (-1: none, the default). */
void px_log_set_worker(int id);
int px_log_enabled(enum conf_log_level level);
/* Writes one line: every byte outside printable ASCII and valid, non-control UTF-8 becomes \xNN and
 * "\" becomes "\\"; messages are cut at 2 kB. Callers cap client-supplied names with PX_LOG_NAME. */
void px_log(enum conf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Escapes in[0, n) into out (NUL-terminated, at most cap - 1 bytes); returns the input bytes used. */
size_t px_log_escape(char *out, size_t cap, const char *in, size_t n);
#define PX_LOG_NAME "%.64s"   /* format of a client-supplied name in a log line: at most 64 bytes */
#define px_error(...) px_log(CONF_LOG_ERROR, __VA_ARGS__)
#define px_warn(...) px_log(CONF_LOG_WARNING, __VA_ARGS__)
#define px_info(...) px_log(CONF_LOG_INFO, __VA_ARGS__)
#define px_debug(...) do { if (px_log_enabled(CONF_LOG_DEBUG)) px_log(CONF_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
