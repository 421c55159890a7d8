/* Result sets of the admin console: RowDescription with text columns, DataRows, CommandComplete. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/* One merged row: its cells as NUL-terminated text (NULL for SQL NULL), malloc'd. */
struct mrow {
    char **v;
    int src;                       /* for 'F': the row whose 'M' column won */
};

/* Parses the DataRow at p (len bytes left) into ncols cells: bytes used, 0 if malformed. */
static size_t parse_row(const uint8_t *p, size_t len, int ncols, char **v)
{
    size_t off = 7;

    if (len < 7 || p[0] != 'D' || proto_get_u32(p + 1) + 1 > len || proto_get_u16(p + 5) != ncols)
        return 0;
    for (int i = 0; i < ncols; i++) {
        uint32_t n;

        if (off + 4 > len)
            return 0;
        n = proto_get_u32(p + off);
        off += 4;
        if (n == 0xffffffffu) {
            v[i] = NULL;
            continue;
        }
        if (n > len - off || !(v[i] = malloc(n + 1)))
            return 0;
        memcpy(v[i], p + off, n);
        v[i][n] = 0;
        off += n;
    }
    return off;
}

static int same_keys(char *const *a, char *const *b, const char *ops, int ncols)
{
    for (int i = 0; i < ncols; i++)
        if (ops[i] == 'k' && (!a[i] != !b[i] || (a[i] && strcmp(a[i], b[i]) != 0)))
            return 0;
    return 1;
}

/* a's cell gets the sum of a and b: integers stay integers, anything else keeps three decimals. */
static void cell_sum(char **a, const char *b)
{
    char buf[64];

    if (!b || !*a) {
        if (!*a && b)
            *a = strdup(b);
        return;
    }
    if (!strpbrk(*a, ".eE") && !strpbrk(b, ".eE"))
        snprintf(buf, sizeof(buf), "%lld", strtoll(*a, NULL, 10) + strtoll(b, NULL, 10));
    else
        snprintf(buf, sizeof(buf), "%.3f", strtod(*a, NULL) + strtod(b, NULL));
    free(*a);
    *a = strdup(buf);
}

static void cell_take(char **a, const char *b)
{
    free(*a);
    *a = b ? strdup(b) : NULL;
}

/* The column ops sorts by ('S'), for qsort's comparator (one console command runs at a time per
 * worker). */
static _Thread_local int sort_col;

static int by_sort_col_desc(const void *a, const void *b)
{
    const char *x = ((const struct mrow *)a)->v[sort_col], *y = ((const struct mrow *)b)->v[sort_col];
    double dx = x ? strtod(x, NULL) : 0, dy = y ? strtod(y, NULL) : 0;

    return (dx < dy) - (dx > dy);
}

void px_table_merge_rows(struct px_table *t, const uint8_t *rows, size_t len, const char *ops,
                         void (*fix)(char **v), int limit)
{
    const char *sorted = strchr(ops, 'S');
    struct mrow *m = NULL;
    char **v = NULL;
    int n = 0, cap = 0, nc = t->ncols;

    while (len > 0) {
        size_t used;
        int j;

        if (!v && !(v = calloc((size_t)nc, sizeof(*v))))
            break;
        if (!(used = parse_row(rows, len, nc, v)))
            break;
        rows += used;
        len -= used;
        for (j = 0; j < n && !same_keys(m[j].v, v, ops, nc); j++)
            ;
        if (j == n) {              /* a row no earlier part had: kept as it is */
            if (n == cap && px_grow((void **)&m, &cap, 16, sizeof(*m)) < 0)
                break;
            m[n].v = v;
            m[n++].src = 0;
            v = NULL;
            continue;
        }
        for (int i = 0; i < nc; i++) {
            switch (ops[i]) {
            case 's':
            case 'S':
                cell_sum(&m[j].v[i], v[i]);
                break;
            case 'm':
            case 'M':
                if (v[i] && (!m[j].v[i] || strtod(v[i], NULL) > strtod(m[j].v[i], NULL))) {
                    cell_take(&m[j].v[i], v[i]);
                    if (ops[i] == 'M' && i + 1 < nc && ops[i + 1] == 'F')
                        cell_take(&m[j].v[i + 1], v[i + 1]);
                }
                break;
            default:               /* 'k', 'f', 'F': the first part's (the console's own worker) */
                break;
            }
        }
        for (int i = 0; i < nc; i++)
            free(v[i]);
        memset(v, 0, sizeof(*v) * (size_t)nc);
    }
    if (v) {
        for (int i = 0; i < nc; i++)
            free(v[i]);
        free(v);
    }
    if (sorted && n > 1) {
        sort_col = (int)(sorted - ops);
        qsort(m, (size_t)n, sizeof(*m), by_sort_col_desc);
    }
    for (int j = 0; j < n; j++) {
        int shown = limit <= 0 || j < limit;

        if (fix && shown)
            fix(m[j].v);
        for (int i = 0; i < nc; i++) {
            if (shown && m[j].v[i])
                px_table_cell(t, "%s", m[j].v[i]);
            else if (shown)
                px_table_null(t);
            free(m[j].v[i]);
        }
        free(m[j].v);
    }
    free(m);
}
