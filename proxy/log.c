/* One line per event on stderr: time, level, message (callers put the connection id first). */
#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "proxy/proxy.h"

static enum conf_log_level current_level = CONF_LOG_INFO;

void px_log_set_level(enum conf_log_level level)
{
    current_level = level;
}

int px_log_enabled(enum conf_log_level level)
{
    return level <= current_level;
}

void px_log(enum conf_log_level level, const char *fmt, ...)
{
    static const char *const names[] = { "ERROR", "WARNING", "INFO", "DEBUG" };
    char line[2048], stamp[32];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n;

    if (!px_log_enabled(level))
        return;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
    n = snprintf(line, sizeof(line), "%s.%03d %s ", stamp, (int)(tv.tv_usec / 1000), names[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
