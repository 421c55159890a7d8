/*
 * Log escaping (proxy/log.c, issue 24 item 2): bytes from clients cannot forge a line or drive a
 * terminal. px_log_escape writes control bytes, DEL, C1 controls and bytes that are not valid UTF-8
 * as \xNN and a backslash as \\, keeps printable ASCII and valid UTF-8, and never writes half an
 * escape at the end of its buffer; px_log writes exactly one line, starting with a timestamp, cut
 * at 2 kB.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "proxy/proxy.h"

static const char *esc(const char *in, size_t n)
{
    static char out[1024];

    assert_int_equal(px_log_escape(out, sizeof out, in, n), n);
    return out;
}

#define ESC(lit) esc(lit, sizeof(lit) - 1)

static void test_escape_controls(void **state)
{
    (void)state;
    assert_string_equal(ESC("plain text: 1 + 2 = 3"), "plain text: 1 + 2 = 3");
    assert_string_equal(ESC("u\n2026-12-03 00:00:00.000 ERROR x"), "u\\x0a2026-12-03 00:00:00.000 ERROR x");
    assert_string_equal(ESC("a\rb\tc\x1b[31md\x7f"), "a\\x0db\\x09c\\x1b[31md\\x7f");
    assert_string_equal(ESC("nul\0after"), "nul\\x00after");
    /* a backslash is doubled, so an escape in the input cannot pose as one pglane wrote */
    assert_string_equal(ESC("C:\\x0a"), "C:\\\\x0a");
}

static void test_escape_utf8(void **state)
{
    (void)state;
    /* valid UTF-8 stays readable: é, €, 😀 */
    assert_string_equal(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    /* C1 controls (U+0085 NEL, U+009B CSI) are controls for some terminals */
    assert_string_equal(ESC("a\xc2\x85" "b\xc2\x9b" "c"), "a\\xc2\\x85b\\xc2\\x9bc");
    /* U+00A0, the first code point after C1, is kept */
    assert_string_equal(ESC("\xc2\xa0"), "\xc2\xa0");
    /* a lone C1 byte, a stray continuation byte, 0xff, an overlong "/" and NUL, a surrogate,
     * a code point past U+10FFFF, a sequence cut short by the end of the input */
    assert_string_equal(ESC("\x9b\x80\xff"), "\\x9b\\x80\\xff");
    assert_string_equal(ESC("\xc0\xaf\xc0\x80"), "\\xc0\\xaf\\xc0\\x80");
    assert_string_equal(ESC("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");
    assert_string_equal(ESC("\xed\xa0\x80"), "\\xed\\xa0\\x80");
    assert_string_equal(ESC("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");
    assert_string_equal(ESC("x\xe2\x82"), "x\\xe2\\x82");
    /* a sequence broken by a newline: both escaped */
    assert_string_equal(ESC("\xe2\n\xac"), "\\xe2\\x0a\\xac");
}

/* A full buffer ends the output at a whole character or escape; the return says how far it got. */
static void test_escape_cap(void **state)
{
    (void)state;
    char out[8];

    memset(out, '#', sizeof out);
    assert_int_equal(px_log_escape(out, 7, "abc\ndef", 7), 3);
    assert_string_equal(out, "abc");                 /* "abc\x0a" and its NUL need 8 bytes */
    assert_int_equal(px_log_escape(out, 8, "abc\ndef", 7), 4);
    assert_string_equal(out, "abc\\x0a");
    assert_int_equal(px_log_escape(out, 6, "ab\\\\cd", 6), 3);
    assert_string_equal(out, "ab\\\\");
    assert_int_equal(px_log_escape(out, 6, "abcd\xe2\x82\xac", 7), 4);
    assert_string_equal(out, "abcd");                /* the 3-byte character does not fit whole */
    assert_int_equal(px_log_escape(out, 1, "abc", 3), 0);
    assert_string_equal(out, "");
    assert_int_equal(px_log_escape(out, 0, "abc", 3), 0);
}

/* Captures what px_log writes to stderr. */
static char *capture_log(const char *msg)
{
    char path[] = "/tmp/pglane-unit-log-XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    char *buf = calloc(1, 65536);
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0 && buf);
    unlink(path);
    fflush(stderr);
    assert_int_equal(dup2(fd, 2), 2);
    px_log(CONF_LOG_ERROR, "C-1 x/%s: closing", msg);
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    n = read(fd, buf, 65535);
    close(fd);
    assert_true(n > 0);
    return buf;
}

static int starts_with_stamp(const char *s)
{
    static const char pat[] = "dddd-dd-dd dd:dd:dd.ddd ";

    for (size_t i = 0; i < sizeof pat - 1; i++)
        if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
            return 0;
    return 1;
}

static void test_one_line_per_event(void **state)
{
    (void)state;
    char *big = malloc(5001), *out;

    px_log_set_level(CONF_LOG_INFO);
    out = capture_log("u\r\n2026-12-03 00:00:00.000 ERROR FORGED-LINE\x1b[2J");
    assert_true(starts_with_stamp(out));
    assert_non_null(strstr(out, " ERROR C-1 x/u\\x0d\\x0a2026-12-03 00:00:00.000 ERROR FORGED-LINE\\x1b[2J: closing\n"));
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);   /* one line */
    free(out);

    /* a long message is cut at 2 kB and marked, still one line */
    assert_non_null(big);
    for (int i = 0; i < 5000; i++)
        big[i] = i % 10 == 9 ? '\n' : 'A';
    big[5000] = '\0';
    out = capture_log(big);
    assert_true(starts_with_stamp(out));
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    assert_non_null(strstr(out, "AAAAAAAAA\\x0aAAAAAAAAA\\x0a"));
    assert_true(strlen(out) > 2048 && strlen(out) < 2048 + 3 * 2048 / 10 + 64);
    assert_string_equal(out + strlen(out) - 4, "...\n");
    assert_null(strstr(out, ": closing"));
    free(out);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_controls),
        cmocka_unit_test(test_escape_utf8),
        cmocka_unit_test(test_escape_cap),
        cmocka_unit_test(test_one_line_per_event),
    };

    return cmocka_run_group_tests_name("unit: proxy log escaping", tests, NULL, NULL);
}
