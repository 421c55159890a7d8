/*
 * px_put_text (proxy/util.c): the text values pglane writes into its own SQL read the same whatever
 * the connection's client_encoding and standard_conforming_strings. Plain ASCII stays a quoted
 * literal; a backslash or a byte of another encoding is written as hex with the encoding it is in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/proxy.h"

static void expect_text(const char *v, const char *encoding, const char *want)
{
    struct proto_buf q;

    proto_buf_init(&q);
    px_put_text(&q, v, strlen(v), encoding);
    proto_put_u8(&q, 0);
    assert_false(q.failed);
    assert_string_equal((const char *)q.data, want);
    proto_buf_free(&q);
}

static void test_put_text(void **state)
{
    (void)state;
    expect_text("public", "UTF8", "'public'");
    expect_text("it's", "LATIN1", "'it''s'");
    expect_text("", "UTF8", "''");
    expect_text("a\\b", "UTF8", "pg_catalog.convert_from(pg_catalog.decode('615c62','hex'),'UTF8')");
    /* LATIN1 ü, and an SJIS character whose second byte is a backslash */
    expect_text("\xfcx", "LATIN1", "pg_catalog.convert_from(pg_catalog.decode('fc78','hex'),'LATIN1')");
    expect_text("\x83\x5c", "SJIS", "pg_catalog.convert_from(pg_catalog.decode('835c','hex'),'SJIS')");
    /* an encoding pglane cannot vouch for, or none: the bytes as they are */
    expect_text("\xfc", "LATIN1'; x", "pg_catalog.convert_from(pg_catalog.decode('fc','hex'),'SQL_ASCII')");
    expect_text("\xfc", NULL, "pg_catalog.convert_from(pg_catalog.decode('fc','hex'),'SQL_ASCII')");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
