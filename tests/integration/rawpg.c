/*
 * Raw v3 protocol client for the differential tests (see rawpg.h).
 */
#include "tests/integration/rawpg.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "protocol/proto.h"
#include "tests/integration/harness.h"

unsigned (*rp_resolve_function)(const char *name);

/* ---------------------------------------------------------------- normalised output */

struct tokens {
    char *out;
    size_t n;
    char last[160];
    int repeat;
};

static void tok_flush(struct tokens *t)
{
    size_t l = strlen(t->out);

    if (!t->last[0])
        return;
    if (t->repeat > 1)
        snprintf(t->out + l, t->n - l, "%s%s*%d", l ? " " : "", t->last, t->repeat);
    else
        snprintf(t->out + l, t->n - l, "%s%s", l ? " " : "", t->last);
    t->last[0] = 0;
    t->repeat = 0;
}

static void tok_add(struct tokens *t, const char *tok)
{
    if (t->last[0] && strcmp(t->last, tok) == 0) {
        t->repeat++;
        return;
    }
    tok_flush(t);
    snprintf(t->last, sizeof t->last, "%s", tok);
    t->repeat = 1;
}

/* A value shown in a token: at most 40 bytes, control characters as '.'. */
static void shown(char *dst, size_t n, const uint8_t *p, size_t len)
{
    size_t k = 0;

    for (size_t i = 0; i < len && k + 4 < n && i < 40; i++)
        dst[k++] = isprint(p[i]) ? (char)p[i] : '.';
    if (len > 40 && k + 4 < n) {
        dst[k++] = '.';
        dst[k++] = '.';
    }
    dst[k] = 0;
}

int rp_show_params;

/* One backend message as a token; "" for messages left out. */
static void normalise(int type, const uint8_t *body, uint32_t len, char *tok, size_t n)
{
    char v[64];
    const char *s;

    tok[0] = 0;
    switch (type) {
    case 'S':
        if (rp_show_params && len > 1) {
            const char *name = (const char *)body;
            size_t nl = strnlen(name, len);

            snprintf(tok, n, "S(%s=%.*s)", name, nl + 1 < len ? (int)strnlen(name + nl + 1, len - nl - 1) : 0,
                     nl + 1 < len ? name + nl + 1 : "");
        }
        return;
    case 'K':
        return;
    case 'E':
    case 'N':
        s = h_error_field(body, len, 'C');
        snprintf(tok, n, "%c(%s)", type, s ? s : "?");
        return;
    case 'C':
        snprintf(tok, n, "C(%s)", (const char *)body);
        return;
    case 'Z':
        snprintf(tok, n, "Z(%c)", len ? body[0] : '?');
        return;
    case 'T':
        snprintf(tok, n, "T(%u)", len >= 2 ? (unsigned)(body[0] << 8 | body[1]) : 0);
        return;
    case 'D':
        if (len >= 6) {
            int32_t l = (int32_t)proto_get_u32(body + 2);

            if (l < 0)
                snprintf(v, sizeof v, "NULL");
            else
                shown(v, sizeof v, body + 6, (uint32_t)l <= len - 6 ? (size_t)l : len - 6);
        } else {
            v[0] = 0;
        }
        snprintf(tok, n, "D[%s]", v);
        return;
    case 'd':
        shown(v, sizeof v, body, len);
        snprintf(tok, n, "d[%s]", v);
        return;
    case 'V':
        if (len >= 4 && (int32_t)proto_get_u32(body) >= 0) {
            shown(v, sizeof v, body + 4, len - 4);
            snprintf(tok, n, "V[%s]", v);
        } else {
            snprintf(tok, n, "V[NULL]");
        }
        return;
    case 'A':
        if (len > 4) {
            const char *ch = (const char *)body + 4;
            const char *payload = ch + strnlen(ch, len - 4) + 1;

            snprintf(tok, n, "A(%s:%s)", ch, payload < (const char *)body + len ? payload : "");
        }
        return;
    default:
        snprintf(tok, n, "%c", type);
        return;
    }
}

int rp_read(struct rp_conn *c, int want_z, int min_msgs, int quiet_ms, int timeout_ms, char *out, size_t n)
{
    struct tokens t = { out, n, "", 0 };
    int64_t deadline = h_now_ms() + timeout_ms;
    int zs = 0, msgs = 0;

    out[0] = 0;
    while (!c->eof) {
        int64_t left = deadline - h_now_ms();
        int wait;
        uint8_t *body;
        uint32_t len;
        int type;
        char tok[160];

        if (want_z > 0 && zs >= want_z)
            break;
        if (left <= 0) {
            tok_add(&t, "TIMEOUT");
            break;
        }
        wait = (int)left;
        if (want_z == RP_WAIT_QUIET && msgs >= min_msgs && wait > quiet_ms)
            wait = quiet_ms;
        type = h_raw_read_msg(c->fd, wait, &body, &len);
        if (type == H_RAW_TIMEOUT) {
            if (want_z == RP_WAIT_QUIET && msgs >= min_msgs)
                break;
            continue;
        }
        if (type == H_RAW_EOF || type == H_RAW_BAD) {
            c->eof = 1;
            tok_add(&t, "EOF");
            break;
        }
        msgs++;
        zs += type == 'Z';
        normalise(type, body, len, tok, sizeof tok);
        free(body);
        if (tok[0])
            tok_add(&t, tok);
    }
    tok_flush(&t);
    return msgs;
}

/* ---------------------------------------------------------------- batches */

/* Expands "\n" and "@<n>K" / "@<n>M" in an argument. */
static void put_arg(struct proto_buf *b, const char *p, size_t len, int nul)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\\' && i + 1 < len && p[i + 1] == 'n') {
            proto_put_u8(b, '\n');
            i++;
        } else if (p[i] == '@' && i + 1 < len && isdigit((unsigned char)p[i + 1])) {
            char *end;
            unsigned long k = strtoul(p + i + 1, &end, 10);
            size_t size = k * (*end == 'M' ? 1024u * 1024u : 1024u);

            for (size_t j = 0; j < size; j++)
                proto_put_u8(b, 'x');
            i = (size_t)(end - p);
        } else {
            proto_put_u8(b, (uint8_t)p[i]);
        }
    }
    if (nul)
        proto_put_u8(b, 0);
}

/* The expanded length of an argument (for Bind's length words). */
static size_t arg_len(const char *p, size_t len)
{
    struct proto_buf b;
    size_t n;

    proto_buf_init(&b);
    put_arg(&b, p, len, 0);
    n = b.len;
    proto_buf_free(&b);
    return n;
}

struct args {
    const char *a[64];
    size_t l[64];
    int n;
};

static void split_args(const char *p, size_t len, struct args *a)
{
    size_t s = 0;

    a->n = 0;
    for (size_t i = 0; i <= len && a->n < 64; i++)
        if (i == len || p[i] == '|') {
            a->a[a->n] = p + s;
            a->l[a->n++] = i - s;
            s = i + 1;
        }
}

static const char *arg(const struct args *a, int i, size_t *len)
{
    *len = i < a->n ? a->l[i] : 0;
    return i < a->n ? a->a[i] : "";
}

static int build(struct proto_buf *b, char type, const char *argp, size_t arglen, int has_args)
{
    struct args a;
    size_t start, l0, l1;
    const char *s0, *s1;

    split_args(argp, has_args ? arglen : 0, &a);
    if (!has_args)
        a.n = 0;
    s0 = arg(&a, 0, &l0);
    s1 = arg(&a, 1, &l1);
    switch (type) {
    case 'Q':
        start = proto_msg_begin(b, 'Q');
        put_arg(b, argp, has_args ? arglen : 0, 1);
        break;
    case 'P': {
        int noids = 0;
        unsigned oids[16];
        size_t l2;
        const char *s2 = arg(&a, 2, &l2);

        for (size_t i = 0; i < l2 && noids < 16;) {
            oids[noids++] = (unsigned)strtoul(s2 + i, NULL, 10);
            while (i < l2 && s2[i] != ',')
                i++;
            i++;
        }
        start = proto_msg_begin(b, 'P');
        put_arg(b, s0, l0, 1);
        put_arg(b, s1, l1, 1);
        proto_put_u16(b, (uint16_t)noids);
        for (int i = 0; i < noids; i++)
            proto_put_u32(b, oids[i]);
        break;
    }
    case 'B':
        start = proto_msg_begin(b, 'B');
        put_arg(b, s0, l0, 1);
        put_arg(b, s1, l1, 1);
        proto_put_u16(b, 0);                          /* all parameters text */
        proto_put_u16(b, (uint16_t)(a.n > 2 ? a.n - 2 : 0));
        for (int i = 2; i < a.n; i++) {
            if (a.l[i] == 2 && memcmp(a.a[i], "\\N", 2) == 0) {
                proto_put_u32(b, 0xffffffffu);
                continue;
            }
            proto_put_u32(b, (uint32_t)arg_len(a.a[i], a.l[i]));
            put_arg(b, a.a[i], a.l[i], 0);
        }
        proto_put_u16(b, 0);                          /* results text */
        break;
    case 'D':
    case 'C':
        start = proto_msg_begin(b, (uint8_t)type);
        proto_put_u8(b, l0 ? (uint8_t)s0[0] : 'P');
        put_arg(b, s1, l1, 1);
        break;
    case 'E':
        start = proto_msg_begin(b, 'E');
        put_arg(b, s0, l0, 1);
        proto_put_u32(b, l1 ? (uint32_t)strtoul(s1, NULL, 10) : 0);
        break;
    case 'F': {
        char name[128];
        unsigned oid;

        snprintf(name, sizeof name, "%.*s", (int)l0, s0);
        oid = rp_resolve_function && !isdigit((unsigned char)name[0]) ? rp_resolve_function(name)
                                                                        : (unsigned)strtoul(name, NULL, 10);
        start = proto_msg_begin(b, 'F');
        proto_put_u32(b, oid);
        proto_put_u16(b, 0);
        proto_put_u16(b, (uint16_t)(a.n - 1));
        for (int i = 1; i < a.n; i++) {
            proto_put_u32(b, (uint32_t)arg_len(a.a[i], a.l[i]));
            put_arg(b, a.a[i], a.l[i], 0);
        }
        proto_put_u16(b, 0);
        break;
    }
    case 'd':
        start = proto_msg_begin(b, 'd');
        put_arg(b, argp, has_args ? arglen : 0, 0);
        break;
    case 'f':
        start = proto_msg_begin(b, 'f');
        put_arg(b, argp, has_args ? arglen : 0, 1);
        break;
    case 'M': {                                       /* any message: M{type|hex bytes of its body} */
        start = proto_msg_begin(b, l0 ? (uint8_t)s0[0] : 'Q');
        for (size_t i = 0; i + 1 < l1; i += 2) {
            unsigned v;

            if (sscanf(s1 + i, "%2x", &v) != 1)
                return -1;
            proto_put_u8(b, (uint8_t)v);
        }
        break;
    }
    case 'L':                                         /* a bare header: L{type|length} */
        proto_put_u8(b, l0 ? (uint8_t)s0[0] : 'Q');
        proto_put_u32(b, l1 ? (uint32_t)strtoul(s1, NULL, 10) : 0);
        return b->failed ? -1 : 0;
    case 'c':
    case 'S':
    case 'H':
    case 'X':
    case 'y':
        start = proto_msg_begin(b, (uint8_t)type);
        break;
    default:
        return -1;
    }
    proto_msg_end(b, start);
    return b->failed ? -1 : 0;
}

static int send_buf(struct rp_conn *c, struct proto_buf *b)
{
    int r = b->len ? h_raw_send(c->fd, b->data, b->len) : 0;

    proto_buf_reset(b);
    return r;
}

int rp_send(struct rp_conn *c, const char *batch)
{
    struct proto_buf b;
    const char *p = batch;
    int rc = 0, partial = 0;

    proto_buf_init(&b);
    while (rc == 0 && *p) {
        char type;
        const char *argp = NULL;
        size_t arglen = 0;
        int depth;

        while (*p == ' ')
            p++;
        if (!*p)
            break;
        type = *p++;
        if (type == '/') {
            struct timespec ts = { 0, 50 * 1000 * 1000 };

            rc = send_buf(c, &b);
            nanosleep(&ts, NULL);
            continue;
        }
        if (type == '.') {         /* what precedes, then the end of the client's stream (half-close) */
            rc = send_buf(c, &b);
            if (rc == 0 && shutdown(c->fd, SHUT_WR) < 0)
                rc = -1;
            continue;
        }
        if (type == '~') {         /* the next message only in part: its header */
            partial = 1;
            continue;
        }
        if (*p == '{') {
            argp = ++p;
            for (depth = 1; *p && depth; p++)
                depth += *p == '{' ? 1 : *p == '}' ? -1 : 0;
            if (depth) {
                rc = -1;
                break;
            }
            arglen = (size_t)(p - 1 - argp);
        }
        size_t before = b.len;

        rc = build(&b, type, argp ? argp : "", arglen, argp != NULL);
        if (rc == 0 && partial && b.len > before + 5)
            b.len = before + 5;
        partial = 0;
        if (rc < 0)
            fprintf(stderr, "rawpg: bad batch notation at '%c' in %s\n", type, batch);
    }
    if (rc == 0)
        rc = send_buf(c, &b);
    proto_buf_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- connecting */

const char *rp_pipeline;
int rp_pipeline_at;

/* Sends bytes, then the pipelined batch (when `at` is where it goes) in the same segment: the socket
 * is corked around both, so that the receiver reads them together. */
static int send_login(struct rp_conn *c, const void *data, size_t n, int at)
{
    int on = 1, off = 0, r;

    if (!rp_pipeline || rp_pipeline_at != at)
        return h_raw_send(c->fd, data, n);
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    r = h_raw_send(c->fd, data, n);
    if (r == 0)
        r = rp_send(c, rp_pipeline);
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
    rp_pipeline = NULL;
    return r;
}

static int send_auth(struct rp_conn *c, uint8_t type, const void *data, size_t n, int last)
{
    struct proto_buf b;
    size_t start;
    int r;

    proto_buf_init(&b);
    start = proto_msg_begin(&b, type);
    proto_put_bytes(&b, data, n);
    proto_msg_end(&b, start);
    r = send_login(c, b.data, b.len, last ? RP_WITH_AUTH : -1);
    proto_buf_free(&b);
    return r;
}

int rp_connect(struct rp_conn *c, int port, const char *user, const char *password, const char *db,
               const char *params, char *refusal, size_t n)
{
    const char *names[32], *values[32];
    char pbuf[1024];
    int np = 0;
    struct proto_buf b;
    struct proto_scram_client scram;
    char msg[PROTO_SCRAM_MAX_MSG];
    size_t outlen;
    const char *err;
    struct tokens t = { refusal, n, "", 0 };

    refusal[0] = 0;
    c->eof = 0;
    c->fd = h_raw_connect(port);
    if (c->fd < 0) {
        snprintf(refusal, n, "CONNECT-FAILED");
        return -1;
    }
    names[np] = "user";
    values[np++] = user;
    names[np] = "database";
    values[np++] = db;
    snprintf(pbuf, sizeof pbuf, "%s", params ? params : "");
    for (char *save = NULL, *kv = strtok_r(pbuf, " ", &save); kv && np < 32; kv = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(kv, '=');

        if (!eq)
            continue;
        *eq = 0;
        names[np] = kv;
        values[np++] = eq + 1;
    }
    proto_buf_init(&b);
    proto_build_startup(&b, names, values, np);
    if (send_login(c, b.data, b.len, RP_WITH_STARTUP) < 0) {
        proto_buf_free(&b);
        snprintf(refusal, n, "SEND-FAILED");
        return -1;
    }
    proto_buf_free(&b);
    for (;;) {
        uint8_t *body;
        uint32_t len;
        int type = h_raw_read_msg(c->fd, 10000, &body, &len);
        char tok[160];

        if (type < 0) {
            tok_add(&t, type == H_RAW_TIMEOUT ? "TIMEOUT" : "EOF");
            c->eof = type != H_RAW_TIMEOUT;
            tok_flush(&t);
            return -1;
        }
        if (type == 'R' && len >= 4) {
            uint32_t code = proto_get_u32(body);
            int r = 0;

            if (code == 5 && len >= 8) {
                char resp[PROTO_MD5_LEN];

                proto_md5_response(user, password, body + 4, resp);
                r = send_auth(c, 'p', resp, strlen(resp) + 1, 1);
            } else if (code == 3) {
                r = send_auth(c, 'p', password, strlen(password) + 1, 1);
            } else if (code == 10) {
                struct proto_buf sb;

                if (proto_scram_client_first(&scram, "rawpgclientnonce0123456789", msg, sizeof msg, &outlen) < 0)
                    r = -1;
                proto_buf_init(&sb);
                proto_put_cstr(&sb, "SCRAM-SHA-256");
                proto_put_u32(&sb, (uint32_t)outlen);
                proto_put_bytes(&sb, msg, outlen);
                if (r == 0)
                    r = send_auth(c, 'p', sb.data, sb.len, 0);
                proto_buf_free(&sb);
            } else if (code == 11) {
                r = proto_scram_client_final(&scram, (const char *)body + 4, len - 4, password, NULL, NULL, msg,
                                             sizeof msg, &outlen, &err);
                if (r == 0)
                    r = send_auth(c, 'p', msg, outlen, 1);
            } else if (code == 12) {
                r = proto_scram_client_verify(&scram, (const char *)body + 4, len - 4, &err);
            }
            free(body);
            if (r < 0) {
                snprintf(refusal, n, "AUTH-FAILED");
                return -1;
            }
            continue;
        }
        normalise(type, body, len, tok, sizeof tok);
        free(body);
        if (type == 'Z') {
            tok_flush(&t);
            return 0;
        }
        if (tok[0])
            tok_add(&t, tok);
        if (type == 'E') {
            /* refused: the server closes next */
            uint8_t *b2;
            uint32_t l2;
            int t2 = h_raw_read_msg(c->fd, 5000, &b2, &l2);

            free(b2);
            tok_add(&t, t2 == H_RAW_EOF ? "EOF" : "NO-EOF");
            c->eof = 1;
            tok_flush(&t);
            return -1;
        }
    }
}

void rp_close(struct rp_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}
