/* Result sets of the admin console: RowDescription with text columns, DataRows, CommandComplete. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "proxy/admin/console.h"

#define TEXT_OID 25
#define INT4_OID 23
#define INT8_OID 20

static uint32_t type_oid(char c, int16_t *len)
{
    switch (c) {
    case 'i': *len = 4; return INT4_OID;
    case 'q': *len = 8; return INT8_OID;
    default: *len = -1; return TEXT_OID;
    }
}

void px_table_begin(struct px_table *t, const char *const *cols)
{
    px_table_begin_typed(t, cols, NULL);
}

void px_table_begin_typed(struct px_table *t, const char *const *cols, const char *types)
{
    size_t start;

    memset(t, 0, sizeof(*t));
    proto_buf_init(&t->b);
    while (cols[t->ncols])
        t->ncols++;
    start = proto_msg_begin(&t->b, 'T');
    proto_put_u16(&t->b, (uint16_t)t->ncols);
    for (int i = 0; i < t->ncols; i++) {
        int16_t typlen;
        uint32_t oid = type_oid(types ? types[i] : 's', &typlen);

        proto_put_cstr(&t->b, cols[i]);
        proto_put_u32(&t->b, 0);            /* table oid */
        proto_put_u16(&t->b, 0);            /* column number */
        proto_put_u32(&t->b, oid);
        proto_put_u16(&t->b, (uint16_t)typlen);
        proto_put_u32(&t->b, 0xffffffffu);  /* typmod -1 */
        proto_put_u16(&t->b, 0);            /* text format */
    }
    proto_msg_end(&t->b, start);
}

static void cell_start(struct px_table *t)
{
    if (t->cells == 0) {
        t->row_start = proto_msg_begin(&t->b, 'D');
        proto_put_u16(&t->b, (uint16_t)t->ncols);
    }
}

static void cell_done(struct px_table *t)
{
    if (++t->cells == t->ncols) {
        proto_msg_end(&t->b, t->row_start);
        t->cells = 0;
        t->nrows++;
    }
}

void px_table_cell(struct px_table *t, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    int n;

    cell_start(t);
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(small))
        n = sizeof(small) - 1;     /* cells are short; longer text is cut */
    proto_put_u32(&t->b, (uint32_t)n);
    proto_put_bytes(&t->b, small, (size_t)n);
    cell_done(t);
}

void px_table_null(struct px_table *t)
{
    cell_start(t);
    proto_put_u32(&t->b, 0xffffffffu);
    cell_done(t);
}

static void send_or_close(struct px_client *cl, struct proto_buf *b)
{
    if (b->failed || px_conn_send_copy(&cl->conn, b->data, b->len) < 0)
        px_client_close(cl, "cannot write to admin client");
    proto_buf_free(b);
}

void px_table_send(struct px_table *t, struct px_client *cl, const char *tag)
{
    size_t start;

    start = proto_msg_begin(&t->b, 'C');
    proto_put_cstr(&t->b, tag);
    proto_msg_end(&t->b, start);
    proto_build_ready(&t->b, 'I');
    send_or_close(cl, &t->b);
}

void px_admin_error(struct px_client *cl, const char *sqlstate, const char *message, const char *hint)
{
    struct proto_buf b;

    proto_buf_init(&b);
    proto_build_error(&b, "ERROR", sqlstate, message, NULL, hint);
    proto_build_ready(&b, 'I');
    send_or_close(cl, &b);
}

void px_admin_done(struct px_client *cl, const char *tag, const char *notice)
{
    struct proto_buf b;
    size_t start;

    proto_buf_init(&b);
    if (notice)
        proto_build_notice(&b, "NOTICE", "00000", notice);
    start = proto_msg_begin(&b, 'C');
    proto_put_cstr(&b, tag);
    proto_msg_end(&b, start);
    proto_build_ready(&b, 'I');
    send_or_close(cl, &b);
}
