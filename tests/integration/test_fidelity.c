/*
 * Protocol fidelity of startup parameters and prepared statements (issue 23, items 3-7 and 10):
 * every test runs the same sequence once directly against PostgreSQL 15 and once through pglane in
 * transaction pooling (lane of size 1, so that clients share one server connection, or size 2), and
 * asserts that both give the same SQLSTATEs, messages and results.
 *
 * Startup packets with arbitrary parameters are sent by a small raw client (md5 authentication as
 * md5user, which both PostgreSQL and pglane accept over TCP); everything else uses libpq.
 */
#include "tests/integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "protocol/proto.h"

static struct h_pg g_pg;
static struct h_pglane g_tx1;      /* transaction pooling, lane size 1 */
static struct h_pglane g_tx2;      /* transaction pooling, lane size 2 */
static struct h_pglane g_direct;   /* PostgreSQL itself */
static struct h_pglane g_scram;    /* transaction pooling, SCRAM for clients (as PostgreSQL asks app) */

static int fixtures(void)
{
    char conf[4096];

    g_direct = (struct h_pglane){ .port = g_pg.port, .direct = 1, .pg = &g_pg };
    h_conf(conf, sizeof conf, "transaction", 1, "md5", NULL);
    if (h_pglane_start(&g_tx1, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_tx1);
    h_conf(conf, sizeof conf, "transaction", 2, "md5", NULL);
    if (h_pglane_start(&g_tx2, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_tx2);
    h_conf(conf, sizeof conf, "transaction", 1, "scram-sha-256", NULL);
    if (h_pglane_start(&g_scram, &g_pg, conf) != 0)
        return -1;
    h_pglane_keep(&g_scram);
    return 0;
}

/* ------------------------------------------------------------------ raw login */

struct login {
    int fd;                       /* after ReadyForQuery, else -1 */
    char err_sev[16], err_state[6], err_msg[256], err_detail[256];
    char notice_state[6];
    int nnotices;
    int got_v;                    /* NegotiateProtocolVersion */
    uint32_t v_version, v_nopts;
    char v_opt[64];
    int nparams;
    char pname[64][64], pvalue[64][128];
};

static void copy_field(char *dst, size_t n, const uint8_t *body, uint32_t len, char code)
{
    const char *v = h_error_field(body, len, code);

    snprintf(dst, n, "%s", v ? v : "");
}

/*
 * Logs in as md5user/appdb with the given extra startup parameters (names[i] = values[i]) and
 * protocol version. Fills *out; returns 0 when logged in (out->fd open), 1 when refused.
 */
static int raw_login(const struct h_pglane *l, uint32_t version, const char *const *names,
                     const char *const *values, int n, struct login *out)
{
    static uint8_t pkt[10000];
    size_t len = 8;
    const char *fixed[] = { "user", H_MD5_USER, "database", H_DB };

    memset(out, 0, sizeof(*out));
    out->fd = -1;
    for (int i = 0; i < 4; i++) {
        memcpy(pkt + len, fixed[i], strlen(fixed[i]) + 1);
        len += strlen(fixed[i]) + 1;
    }
    for (int i = 0; i < n; i++) {
        assert_true(len + strlen(names[i]) + strlen(values[i]) + 3 < sizeof(pkt));
        memcpy(pkt + len, names[i], strlen(names[i]) + 1);
        len += strlen(names[i]) + 1;
        memcpy(pkt + len, values[i], strlen(values[i]) + 1);
        len += strlen(values[i]) + 1;
    }
    pkt[len++] = 0;
    h_put32(pkt, (uint32_t)len);
    h_put32(pkt + 4, version);
    int fd = h_raw_connect(l->port);
    assert_true(fd >= 0);
    assert_int_equal(h_raw_send(fd, pkt, len), 0);
    for (;;) {
        uint8_t *body = NULL;
        uint32_t blen = 0;
        int t = h_raw_read_msg(fd, 10000, &body, &blen);

        if (t < 0) {
            print_error("raw login through port %d: %d before ReadyForQuery\n", l->port, t);
            fail();
        }
        if (t == 'R' && blen >= 4 && h_get32(body) == 5) {
            char resp[PROTO_MD5_LEN];
            uint8_t msg[64];

            proto_md5_response(H_MD5_USER, H_MD5_PASSWORD, body + 4, resp);
            msg[0] = 'p';
            h_put32(msg + 1, (uint32_t)(4 + strlen(resp) + 1));
            memcpy(msg + 5, resp, strlen(resp) + 1);
            assert_int_equal(h_raw_send(fd, msg, 5 + strlen(resp) + 1), 0);
        } else if (t == 'R') {
            assert_int_equal(h_get32(body), 0);
        } else if (t == 'v') {
            out->got_v = 1;
            out->v_version = h_get32(body);
            out->v_nopts = h_get32(body + 4);
            if (out->v_nopts > 0)
                snprintf(out->v_opt, sizeof(out->v_opt), "%s", (const char *)body + 8);
        } else if (t == 'S' && out->nparams < 64) {
            snprintf(out->pname[out->nparams], 64, "%s", (const char *)body);
            snprintf(out->pvalue[out->nparams], 128, "%s", (const char *)body + strlen((const char *)body) + 1);
            out->nparams++;
        } else if (t == 'N') {
            out->nnotices++;
            copy_field(out->notice_state, sizeof(out->notice_state), body, blen, 'C');
        } else if (t == 'E') {
            copy_field(out->err_sev, sizeof(out->err_sev), body, blen, 'V');
            copy_field(out->err_state, sizeof(out->err_state), body, blen, 'C');
            copy_field(out->err_msg, sizeof(out->err_msg), body, blen, 'M');
            copy_field(out->err_detail, sizeof(out->err_detail), body, blen, 'D');
            free(body);
            close(fd);
            return 1;
        } else if (t == 'Z') {
            free(body);
            out->fd = fd;
            return 0;
        }
        free(body);
    }
}

static const char *param_of(const struct login *lg, const char *name)
{
    for (int i = 0; i < lg->nparams; i++)
        if (strcmp(lg->pname[i], name) == 0)
            return lg->pvalue[i];
    return NULL;
}

/* Runs a simple query on a raw connection: the first value (static copy, "" if none), or the
 * SQLSTATE prefixed with "E:" on error. */
static const char *raw_query1(int fd, const char *sql)
{
    static char val[256];
    uint8_t msg[512];
    size_t n = strlen(sql) + 1;

    msg[0] = 'Q';
    h_put32(msg + 1, (uint32_t)(4 + n));
    memcpy(msg + 5, sql, n);
    assert_int_equal(h_raw_send(fd, msg, 5 + n), 0);
    val[0] = 0;
    for (;;) {
        uint8_t *body = NULL;
        uint32_t blen = 0;
        int t = h_raw_read_msg(fd, 10000, &body, &blen);

        assert_true(t >= 0);
        if (t == 'D' && blen >= 6 && !val[0]) {
            uint32_t l = h_get32(body + 2);
            if (l != 0xffffffffu)
                snprintf(val, sizeof(val), "%.*s", (int)l, (const char *)body + 6);
        } else if (t == 'E') {
            snprintf(val, sizeof(val), "E:%s", h_error_field(body, blen, 'C'));
        }
        free(body);
        if (t == 'Z')
            return val;
    }
}

static void raw_close(struct login *lg)
{
    if (lg->fd >= 0)
        close(lg->fd);
    lg->fd = -1;
}

/* The same refused login directly and through pglane: FATAL, same SQLSTATE, message and detail. */
static void expect_refused_alike(const struct h_pglane *l, const char *name, const char *value,
                                 const char *sqlstate)
{
    const char *nv[] = { name }, *vv[] = { value };
    struct login d, p;

    assert_int_equal(raw_login(&g_direct, 3u << 16, nv, vv, 1, &d), 1);
    assert_int_equal(raw_login(l, 3u << 16, nv, vv, 1, &p), 1);
    assert_string_equal(d.err_state, sqlstate);
    assert_string_equal(p.err_sev, "FATAL");
    assert_string_equal(p.err_sev, d.err_sev);
    assert_string_equal(p.err_state, d.err_state);
    assert_string_equal(p.err_msg, d.err_msg);
    assert_string_equal(p.err_detail, d.err_detail);
}

/* ------------------------------------------------------------------ item 3 */

/* A refused startup value is refused as PostgreSQL refuses it, and never leaks the settings of the
 * client that used the connection before. */
static void test_bad_startup_value_refused_no_leak(void **state)
{
    (void)state;
    const char *an[] = { "application_name", "TimeZone" }, *av[] = { "leaky", "Asia/Tokyo" };
    struct login a, c, d;

    assert_int_equal(raw_login(&g_tx1, 3u << 16, an, av, 2, &a), 0);
    assert_string_equal(raw_query1(a.fd, "SHOW TimeZone"), "Asia/Tokyo");
    expect_refused_alike(&g_tx1, "client_encoding", "NOPE", "22023");
    expect_refused_alike(&g_tx1, "DateStyle", "Bogus", "22023");
    expect_refused_alike(&g_tx1, "TimeZone", "Nowhere/Bad", "22023");
    /* A plain client on the same (only) server connection has PostgreSQL's defaults. */
    assert_int_equal(raw_login(&g_direct, 3u << 16, NULL, NULL, 0, &d), 0);
    assert_int_equal(raw_login(&g_tx1, 3u << 16, NULL, NULL, 0, &c), 0);
    char tz[64];
    snprintf(tz, sizeof tz, "%s", raw_query1(d.fd, "SHOW TimeZone"));
    assert_string_equal(raw_query1(c.fd, "SHOW TimeZone"), tz);
    assert_string_equal(raw_query1(c.fd, "SHOW application_name"), "");
    assert_string_equal(raw_query1(d.fd, "SHOW application_name"), "");
    /* ... and the first client still has its own. */
    assert_string_equal(raw_query1(a.fd, "SHOW application_name"), "leaky");
    assert_string_equal(raw_query1(a.fd, "SHOW TimeZone"), "Asia/Tokyo");
    raw_close(&a);
    raw_close(&c);
    raw_close(&d);
    h_pass();
}

/* Startup role=...: the role is the client's in each of its transactions and no other client's.
 * When applying it fails later (membership revoked), the client gets PostgreSQL's error as a FATAL
 * and is closed: its statements never run without its settings. (PostgreSQL keeps a role already
 * set, so this is where pglane cannot match and says so.) */
static void test_failed_setting_sync_closes(void **state)
{
    (void)state;
    const char *nv[] = { "role" }, *vv[] = { "fid_role" };
    struct login a, b;
    char st[6];

    assert_int_equal(h_pg_exec(&g_pg, H_DB, "DROP ROLE IF EXISTS fid_role; CREATE ROLE fid_role; "
                                            "GRANT fid_role TO " H_MD5_USER), 0);
    assert_int_equal(raw_login(&g_tx1, 3u << 16, nv, vv, 1, &a), 0);
    assert_int_equal(raw_login(&g_tx1, 3u << 16, NULL, NULL, 0, &b), 0);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(raw_query1(a.fd, "SELECT current_user"), "fid_role");
        assert_string_equal(raw_query1(b.fd, "SELECT current_user"), H_MD5_USER);
    }
    assert_int_equal(h_pg_exec(&g_pg, H_DB, "REVOKE fid_role FROM " H_MD5_USER), 0);
    uint8_t q[32] = { 'Q' };
    const char *sql = "SELECT current_user";
    h_put32(q + 1, (uint32_t)(4 + strlen(sql) + 1));
    memcpy(q + 5, sql, strlen(sql) + 1);
    assert_int_equal(h_raw_send(a.fd, q, 5 + strlen(sql) + 1), 0);
    assert_int_equal(h_raw_expect_error_or_close(a.fd, 10000, st), 1);
    assert_string_equal(st, "42501");
    uint8_t *body = NULL;
    uint32_t blen;
    assert_int_equal(h_raw_read_msg(a.fd, 10000, &body, &blen), H_RAW_EOF);
    raw_close(&a);
    assert_string_equal(raw_query1(b.fd, "SELECT current_user"), H_MD5_USER);
    raw_close(&b);
    assert_int_equal(h_pg_exec(&g_pg, H_DB, "DROP ROLE fid_role"), 0);
    h_pass();
}

/* ------------------------------------------------------------------ item 4 */

static void test_unknown_startup_parameter(void **state)
{
    (void)state;
    expect_refused_alike(&g_tx1, "foo", "bar", "42704");
    expect_refused_alike(&g_tx1, "replication", "bogus", "22023");
    h_pass();
}

/* A valid GUC in the startup packet holds for that client in every transaction, and for no other. */
static void test_startup_guc_applied(void **state)
{
    (void)state;
    const char *nv[] = { "statement_timeout" }, *vv[] = { "1234" };
    const struct h_pglane *lanes[] = { &g_direct, &g_tx1 };

    for (int i = 0; i < 2; i++) {
        struct login a, b;

        assert_int_equal(raw_login(lanes[i], 3u << 16, nv, vv, 1, &a), 0);
        assert_int_equal(raw_login(lanes[i], 3u << 16, NULL, NULL, 0, &b), 0);
        for (int round = 0; round < 3; round++) {
            assert_string_equal(raw_query1(a.fd, "SHOW statement_timeout"), "1234ms");
            assert_string_equal(raw_query1(b.fd, "SHOW statement_timeout"), "0");
        }
        assert_string_equal(raw_query1(a.fd, "SELECT current_setting('statement_timeout')"), "1234ms");
        raw_close(&a);
        raw_close(&b);
    }
    h_pass();
}

/* 40 parameters and replication=false are accepted, as PostgreSQL accepts them. */
static void test_many_parameters_and_replication_false(void **state)
{
    (void)state;
    static char names[40][24];
    const char *nv[40], *vv[40];
    const struct h_pglane *lanes[] = { &g_direct, &g_tx1 };

    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "fid.p%d", i);
        nv[i] = names[i];
        vv[i] = "v";
    }
    for (int i = 0; i < 2; i++) {
        struct login a;

        assert_int_equal(raw_login(lanes[i], 3u << 16, nv, vv, 40, &a), 0);
        assert_string_equal(raw_query1(a.fd, "SHOW fid.p39"), "v");
        raw_close(&a);
        const char *reps[] = { "false", "off", "0", "no" };
        for (int r = 0; r < 4; r++) {
            const char *rn[] = { "replication" }, *rv[] = { reps[r] };

            assert_int_equal(raw_login(lanes[i], 3u << 16, rn, rv, 1, &a), 0);
            assert_string_equal(raw_query1(a.fd, "SELECT 7"), "7");
            raw_close(&a);
        }
    }
    h_pass();
}

/* Protocol 3.2 and a _pq_ option: NegotiateProtocolVersion (3.0, the option refused), then login. */
static void test_negotiate_protocol_version(void **state)
{
    (void)state;
    const char *nv[] = { "_pq_.fidelity" }, *vv[] = { "on" };
    struct login d, p;

    assert_int_equal(raw_login(&g_direct, (3u << 16) | 2, nv, vv, 1, &d), 0);
    assert_int_equal(raw_login(&g_tx1, (3u << 16) | 2, nv, vv, 1, &p), 0);
    assert_true(d.got_v);
    assert_true(p.got_v);
    assert_int_equal(p.v_version, d.v_version);
    assert_int_equal(p.v_version, 3u << 16);
    assert_int_equal(p.v_nopts, d.v_nopts);
    assert_string_equal(p.v_opt, d.v_opt);
    assert_string_equal(p.v_opt, "_pq_.fidelity");
    assert_string_equal(raw_query1(p.fd, "SELECT 1"), "1");
    raw_close(&d);
    raw_close(&p);
    /* A plain 3.0 login gets none. */
    assert_int_equal(raw_login(&g_tx1, 3u << 16, NULL, NULL, 0, &p), 0);
    assert_false(p.got_v);
    raw_close(&p);
    h_pass();
}

/* Everything a startup packet of protocol `version` gets before the server closes (at most n bytes). */
static size_t raw_refusal(int port, uint32_t version, uint8_t *out, size_t n)
{
    uint8_t pkt[256];
    size_t len = h_raw_startup(pkt, sizeof pkt, version, H_MD5_USER, H_DB), got = 0;
    int fd, c;

    fd = h_raw_connect(port);
    assert_true(fd >= 0);
    assert_int_equal(h_raw_send(fd, pkt, len), 0);
    while (got < n && (c = h_raw_read_byte(fd, 10000)) >= 0)
        out[got++] = (uint8_t)c;
    assert_true(got < n);
    close(fd);
    return got;
}

/* A protocol version other than 3.x is refused as PostgreSQL refuses it: 4.0 and later with a FATAL
 * 0A000 and PostgreSQL's message; 2.0 and 1.0 in the old protocol's format, byte for byte. */
static void test_unsupported_protocol_version(void **state)
{
    (void)state;
    static const uint32_t newer[] = { 4u << 16, (7u << 16) | 5 }, older[] = { 2u << 16, (1u << 16) | 3 };

    for (size_t i = 0; i < sizeof(newer) / sizeof(newer[0]); i++) {
        struct login d, p;

        assert_int_equal(raw_login(&g_direct, newer[i], NULL, NULL, 0, &d), 1);
        assert_int_equal(raw_login(&g_tx1, newer[i], NULL, NULL, 0, &p), 1);
        assert_string_equal(d.err_state, "0A000");
        assert_string_equal(p.err_sev, d.err_sev);
        assert_string_equal(p.err_state, d.err_state);
        assert_string_equal(p.err_msg, d.err_msg);
    }
    for (size_t i = 0; i < sizeof(older) / sizeof(older[0]); i++) {
        uint8_t d[256], p[256];
        size_t dn = raw_refusal(g_direct.port, older[i], d, sizeof(d));
        size_t pn = raw_refusal(g_tx1.port, older[i], p, sizeof(p));

        assert_true(dn > 10 && d[0] == 'E' && d[dn - 1] == 0);
        if (pn != dn || memcmp(p, d, dn) != 0)
            fail_msg("protocol %u.%u: pglane sent [%.*s] (%zu bytes), PostgreSQL [%.*s] (%zu bytes)", older[i] >> 16,
                     older[i] & 0xffff, (int)pn, (const char *)p, pn, (int)dn, (const char *)d, dn);
    }
    h_pass();
}

/* ------------------------------------------------------------------ before the login */

/*
 * One broken login: `first` is sent, then its answer read (a single byte after an SSLRequest;
 * messages up to the authentication request after a StartupMessage), then `second` (if any), and
 * everything up to the close. PostgreSQL closes without a word on a length it cannot take, and
 * answers other mistakes with a FATAL.
 */
enum pre_wait { PRE_BYTE, PRE_AUTH };
struct pre_case {
    const char *name;
    int scram;                  /* as app (SCRAM in PostgreSQL and g_scram), else as md5user */
    enum pre_wait wait;
    uint8_t first[10100];
    size_t nfirst;
    uint8_t second[70000];
    size_t nsecond;             /* 0: nothing more is sent and the last read is skipped */
    int second_is_end;          /* the client ends its stream instead of sending `second` */
};

static void pre_token(char *out, size_t n, int t, const uint8_t *body, uint32_t len)
{
    size_t at = strlen(out);

    if (t == 'E') {
        const char *v = h_error_field(body, len, 'V'), *c = h_error_field(body, len, 'C');
        const char *m = h_error_field(body, len, 'M'), *d = h_error_field(body, len, 'D');

        snprintf(out + at, n - at, "E(%s %s %s%s%s) ", v ? v : "", c ? c : "", m ? m : "", d ? " | " : "", d ? d : "");
    }
    else if (t == 'R')
        snprintf(out + at, n - at, "R(%u) ", len >= 4 ? h_get32(body) : 99u);
    else if (t == H_RAW_EOF)
        snprintf(out + at, n - at, "EOF");
    else if (t < 0)
        snprintf(out + at, n - at, "TIMEOUT(%d)", t);
    else
        snprintf(out + at, n - at, "%c ", t);
}

/* Compares one case's answers: 0 when pglane's equals PostgreSQL's (or, with `known`, pglane's
 * documented answer), else 1 after printing both. */
static int compare_answers(const char *name, const char *pg, const char *pgl, const char *known)
{
    if (known != NULL && strcmp(pgl, known) != 0) {
        print_error("%s: pglane [%s], expected its documented answer [%s]\n", name, pgl, known);
        return 1;
    }
    if (known == NULL && strcmp(pg, pgl) != 0) {
        print_error("%s: PostgreSQL [%s], pglane [%s]\n", name, pg, pgl);
        return 1;
    }
    if (known != NULL)
        print_message("known %s: PostgreSQL [%s], pglane [%s]\n", name, pg, pgl);
    else
        print_message("same %s: [%s]\n", name, pg);
    return 0;
}

/* Reads one message into out. Returns its type (below 0 at the close or a timeout); *auth is set
 * when it asks for authentication. */
static int pre_read(int fd, char *out, size_t n, int *auth)
{
    uint8_t *body;
    uint32_t len;
    int t = h_raw_read_msg(fd, 10000, &body, &len);

    pre_token(out, n, t, body, len);
    *auth = t == 'R' && len >= 4 && h_get32(body) != 0;
    free(body);
    return t;
}

/* The normalised answers of one port to c. */
static void pre_run(int port, const struct pre_case *c, char *out, size_t n)
{
    int fd = h_raw_connect(port), t, auth = 0;

    out[0] = 0;
    assert_true(fd >= 0);
    assert_int_equal(h_raw_send(fd, c->first, c->nfirst), 0);
    if (c->wait == PRE_BYTE)
        pre_token(out, n, h_raw_read_byte(fd, 10000), NULL, 0);
    else
        do
            t = pre_read(fd, out, n, &auth);
        while (t >= 0 && t != 'E' && !auth);
    if (c->nsecond > 0 || c->second_is_end) {
        if (c->second_is_end)
            shutdown(fd, SHUT_WR);
        else
            h_raw_send(fd, c->second, c->nsecond);      /* may fail once the peer has closed */
        while (pre_read(fd, out, n, &auth) >= 0)
            ;
    }
    close(fd);
}

/* A message header of `type` claiming `length`, and `body` bytes of 'x' after it (the last a NUL). */
static size_t pre_msg(uint8_t *p, char type, uint32_t length, size_t body)
{
    p[0] = (uint8_t)type;
    h_put32(p + 1, length);
    memset(p + 5, 'x', body);
    if (body > 0)
        p[4 + body] = 0;
    return 5 + body;
}

/* Lengths, types and repeats before the login: the same answer as PostgreSQL's, silence included. */
static void test_prelogin_mistakes(void **state)
{
    static struct pre_case c;
    static char d[4096], p[4096];
    int failures = 0;
    (void)state;

    for (int i = 0;; i++) {
        memset(&c, 0, sizeof c);
        c.wait = PRE_AUTH;
        switch (i) {
        case 0:     /* a startup packet shorter than its version word */
            c.name = "startup_length_7";
            h_put32(c.first, 7);
            c.nfirst = 7;
            break;
        case 1:     /* longer than PostgreSQL takes: the header alone */
            c.name = "startup_length_10005";
            h_put32(c.first, 10005);
            c.nfirst = 4;
            break;
        case 2:
            c.name = "startup_length_2g";
            h_put32(c.first, 0x7fffffff);
            c.nfirst = 4;
            break;
        case 3: {   /* 10,004 bytes, PostgreSQL's largest: a long application_name fills it */
            c.name = "startup_length_10004";
            size_t at = h_raw_startup(c.first, sizeof c.first, 3u << 16, H_MD5_USER, H_DB) - 1;
            memcpy(c.first + at, "application_name", 17);
            at += 17;
            memset(c.first + at, 'a', 10004 - at - 2);
            at = 10004 - 2;
            c.first[at++] = 0;
            c.first[at++] = 0;
            h_put32(c.first, 10004);
            c.nfirst = 10004;
            break;
        }
        case 4:     /* a second SSLRequest after the first was declined */
            c.name = "ssl_request_twice";
            c.wait = PRE_BYTE;
            h_put32(c.first, 8);
            h_put32(c.first + 4, PROTO_SSL_REQUEST);
            c.nfirst = 8;
            memcpy(c.second, c.first, 8);
            c.nsecond = 8;
            break;
        case 5:     /* md5: a Query where the password belongs */
        case 6:     /* md5: a password message shorter than its length word */
        case 7:     /* md5: longer than PostgreSQL's 65,535 (the header alone) */
        case 8:     /* md5: 9,000 bytes, which PostgreSQL reads and finds wrong */
        case 9:     /* md5: the client leaves instead of answering */
        case 10:    /* SCRAM: a Query where the SASLInitialResponse belongs */
        case 11:    /* SCRAM: a bad length */
        case 12:    /* SCRAM: the client leaves instead of answering */
            c.scram = i >= 10;
            c.nfirst = h_raw_startup(c.first, sizeof c.first, 3u << 16, c.scram ? H_USER : H_MD5_USER, H_DB);
            if (i == 5 || i == 10) {
                c.name = i == 5 ? "md5_query_for_password" : "scram_query_for_response";
                c.nsecond = pre_msg(c.second, 'Q', 13, 9);
            } else if (i == 6 || i == 11) {
                c.name = i == 6 ? "md5_password_length_3" : "scram_response_length_3";
                c.nsecond = pre_msg(c.second, 'p', 3, 0);
            } else if (i == 7) {
                c.name = "md5_password_length_65536";
                c.nsecond = pre_msg(c.second, 'p', 65536, 0);
            } else if (i == 8) {
                c.name = "md5_password_length_9000";
                c.nsecond = pre_msg(c.second, 'p', 9000, 8996);
            } else {
                c.name = i == 9 ? "md5_end_for_password" : "scram_end_for_response";
                c.second_is_end = 1;
            }
            break;
        case 13:    /* an SSLRequest with 4 bytes more */
            c.name = "ssl_request_length_12";
            c.wait = PRE_BYTE;
            h_put32(c.first, 12);
            h_put32(c.first + 4, PROTO_SSL_REQUEST);
            c.nfirst = 12;
            break;
        case 14:    /* a CancelRequest without its key */
        case 15:    /* a CancelRequest with 4 bytes more */
            c.name = i == 14 ? "cancel_length_12" : "cancel_length_20";
            c.nfirst = i == 14 ? 12 : 20;
            h_put32(c.first, (uint32_t)c.nfirst);
            h_put32(c.first + 4, PROTO_CANCEL_REQUEST);
            break;
        case 16:    /* parameters: no terminator, data after it, no user, a name without value */
        case 17:
        case 18:
        case 19: {
            static const char *const lists[] = { "user\0md5user\0database\0appdb\0",
                                                 "user\0md5user\0\0x\0", "database\0appdb\0\0",
                                                 "user\0md5user\0database\0" };
            static const size_t lens[] = { 28, 16, 16, 22 };     /* the literals' bytes, no NUL added */
            static const char *const names[] = { "startup_no_terminator", "startup_data_after_terminator",
                                                 "startup_no_user", "startup_name_without_value" };
            c.name = names[i - 16];
            memcpy(c.first + 8, lists[i - 16], lens[i - 16]);
            c.nfirst = 8 + lens[i - 16];
            h_put32(c.first, (uint32_t)c.nfirst);
            h_put32(c.first + 4, 3u << 16);
            break;
        }
        case 21:    /* md5: a password message with two strings, an empty one, one without its NUL */
        case 22:
        case 23: {
            static const char *const bodies[] = { "abc\0def", "", "abc" };
            static const size_t blens[] = { 8, 1, 3 };
            static const char *const names[] = { "md5_password_two_strings", "md5_password_empty",
                                                 "md5_password_without_nul" };
            c.name = names[i - 21];
            c.nfirst = h_raw_startup(c.first, sizeof c.first, 3u << 16, H_MD5_USER, H_DB);
            c.second[0] = 'p';
            h_put32(c.second + 1, (uint32_t)(4 + blens[i - 21]));
            memcpy(c.second + 5, bodies[i - 21], blens[i - 21]);
            c.nsecond = 5 + blens[i - 21];
            break;
        }
        case 20:    /* md5: 65,535 bytes, PostgreSQL's largest */
            c.name = "md5_password_length_65535";
            c.nfirst = h_raw_startup(c.first, sizeof c.first, 3u << 16, H_MD5_USER, H_DB);
            c.nsecond = pre_msg(c.second, 'p', 65535, 65531);
            break;
        default:
            c.name = NULL;
        }
        if (c.name == NULL)
            break;
        pre_run(g_pg.port, &c, d, sizeof d);
        pre_run(c.scram ? g_scram.port : g_tx1.port, &c, p, sizeof p);
        failures += compare_answers(c.name, d, p, NULL);
    }
    assert_int_equal(failures, 0);
    h_pass();
}

/*
 * A login as md5user with the startup parameters kv (name, value, ...; n strings) and the right
 * password when asked: what comes back up to ReadyForQuery or the close, normalised as by pre_run.
 */
static void login_tokens(int port, const char *const *kv, int n, char *out, size_t cap)
{
    uint8_t pkt[1024], msg[64], *body;
    uint32_t len;
    size_t at = 8;
    int fd = h_raw_connect(port), t;

    out[0] = 0;
    assert_true(fd >= 0);
    for (int i = 0; i < n; i++) {
        memcpy(pkt + at, kv[i], strlen(kv[i]) + 1);
        at += strlen(kv[i]) + 1;
    }
    pkt[at++] = 0;
    h_put32(pkt, (uint32_t)at);
    h_put32(pkt + 4, 3u << 16);
    assert_int_equal(h_raw_send(fd, pkt, at), 0);
    for (;;) {
        t = h_raw_read_msg(fd, 10000, &body, &len);
        if (t == 'S' || t == 'K' || (t == 'R' && len >= 4 && h_get32(body) == 0)) {
            free(body);
            continue;
        }
        pre_token(out, cap, t, body, len);
        if (t == 'R' && len >= 8 && h_get32(body) == 5) {
            char resp[PROTO_MD5_LEN];

            proto_md5_response(H_MD5_USER, H_MD5_PASSWORD, body + 4, resp);
            msg[0] = 'p';
            h_put32(msg + 1, (uint32_t)(4 + strlen(resp) + 1));
            memcpy(msg + 5, resp, strlen(resp) + 1);
            assert_int_equal(h_raw_send(fd, msg, 5 + strlen(resp) + 1), 0);
        }
        free(body);
        if (t < 0 || t == 'Z')
            break;
    }
    close(fd);
}

/* Logins PostgreSQL refuses after the password (or before it) are refused alike through pglane. */
static void test_login_refusals(void **state)
{
    /* `known`: a documented limit, pglane's own clear refusal instead of PostgreSQL's answer */
    static const char no_replication[] = "E(FATAL 08004 pglane does not proxy replication connections) EOF";
    static const struct { const char *name; const char *kv[6]; int n; const char *known; } cases[] = {
        { "unknown_database", { "user", H_MD5_USER, "database", "nosuchdb" }, 4, NULL },
        { "database_defaults_to_user", { "user", H_MD5_USER }, 2, NULL },
        { "empty_database", { "user", H_MD5_USER, "database", "" }, 4, NULL },
        { "empty_user", { "user", "", "database", H_DB }, 4, NULL },
        { "replication_true", { "user", H_MD5_USER, "database", H_DB, "replication", "true" }, 6, no_replication },
        { "replication_database", { "user", H_MD5_USER, "database", H_DB, "replication", "database" }, 6,
          no_replication },
        { "replication_bad", { "user", H_MD5_USER, "database", H_DB, "replication", "maybe" }, 6, NULL },
        { "long_database_name",
          { "user", H_MD5_USER, "database", "d123456789012345678901234567890123456789012345678901234567890123456789" },
          4, NULL },
        { "long_database_name_truncated_to_existing",
          { "user", H_MD5_USER, "database", "appdb_" "12345678901234567890123456789012345678901234567890123456789" },
          4, NULL },
        { "ok", { "user", H_MD5_USER, "database", H_DB }, 4, NULL },
    };
    static char d[2048], p[2048];
    int failures = 0;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        login_tokens(g_pg.port, cases[i].kv, cases[i].n, d, sizeof d);
        login_tokens(g_tx1.port, cases[i].kv, cases[i].n, p, sizeof p);
        failures += compare_answers(cases[i].name, d, p, cases[i].known);
    }
    assert_int_equal(failures, 0);
    h_pass();
}

/*
 * The SCRAM exchange's mistakes, as app (SCRAM in PostgreSQL's pg_hba and in g_scram): a
 * SASLInitialResponse of `mech` with `first`, then, after a SASLContinue, `final` with "{r}"
 * replaced by the combined nonce the server sent (without `first`, `final` is the
 * client-first-message sent alone after the empty SASLContinue).
 */
struct sasl_case {
    const char *name, *mech, *first, *final;
    int first_len;              /* the data length word (0: first's length; -1: none; -2: no NUL, no length) */
    int nbytes;                 /* the data bytes sent (0: first's length) */
};

static void sasl_run(int port, const struct sasl_case *c, char *out, size_t n)
{
    uint8_t msg[512], *body;
    uint32_t len;
    size_t at = 5, flen = c->first ? strlen(c->first) : 0;
    int fd = h_raw_connect(port), t, auth = 0;
    char nonce[128] = "", final[256];

    out[0] = 0;
    assert_true(fd >= 0);
    at = h_raw_startup(msg, sizeof msg, 3u << 16, H_USER, H_DB);
    assert_int_equal(h_raw_send(fd, msg, at), 0);
    do
        t = pre_read(fd, out, n, &auth);
    while (t >= 0 && t != 'E' && !auth);
    assert_non_null(strstr(out, "R(10)"));
    msg[0] = 'p';
    at = 5;
    if (c->first_len == -2) {                       /* the mechanism's bytes alone: no NUL, no length */
        memcpy(msg + at, c->mech, strlen(c->mech));
        at += strlen(c->mech);
    } else {
        memcpy(msg + at, c->mech, strlen(c->mech) + 1);
        at += strlen(c->mech) + 1;
        h_put32(msg + at, c->first_len != 0 ? (uint32_t)c->first_len : (uint32_t)flen);
        at += 4;
        if (c->nbytes > 0)
            flen = (size_t)c->nbytes;               /* an embedded NUL: the bytes go past it */
        memcpy(msg + at, c->first ? c->first : "", flen);
        at += flen;
    }
    h_put32(msg + 1, (uint32_t)at - 1);
    h_raw_send(fd, msg, at);
    t = h_raw_read_msg(fd, 10000, &body, &len);
    pre_token(out, n, t, body, len);
    if (t == 'R' && len >= 4 && h_get32(body) == 11 && c->first == NULL && c->final) {
        /* no initial response: the client-first-message goes alone, then one more answer is read */
        h_put32(msg + 1, (uint32_t)(4 + strlen(c->final)));
        memcpy(msg + 5, c->final, strlen(c->final));
        h_raw_send(fd, msg, 5 + strlen(c->final));
    } else if (t == 'R' && len > 6 && h_get32(body) == 11 && c->final) {
        const char *r = strstr((const char *)body + 4, "r="), *end = r ? strchr(r, ',') : NULL;
        const char *hole = strstr(c->final, "{r}");

        assert_non_null(end);
        snprintf(nonce, sizeof nonce, "%.*s", (int)(end - r - 2), r + 2);
        if (hole)
            snprintf(final, sizeof final, "%.*s%s%s", (int)(hole - c->final), c->final, nonce, hole + 3);
        else
            snprintf(final, sizeof final, "%s", c->final);
        msg[0] = 'p';
        h_put32(msg + 1, (uint32_t)(4 + strlen(final)));
        memcpy(msg + 5, final, strlen(final));
        h_raw_send(fd, msg, 5 + strlen(final));
    }
    free(body);
    while (t >= 0 && pre_read(fd, out, n, &auth) >= 0)
        ;
    close(fd);
}

#define ZERO_PROOF "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

/* Each mistake in a SCRAM exchange gets PostgreSQL's SQLSTATE, message and detail. */
static void test_sasl_mistakes(void **state)
{
    static const struct sasl_case cases[] = {
        { "unknown_mechanism", "FOO", "n,,n=,r=abc", NULL, 0, 0 },
        { "plus_without_tls", "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=,r=abc", NULL, 0, 0 },
        { "no_data_then_bad_first", "SCRAM-SHA-256", NULL, "x,,n=,r=abc", -1, 0 },
        { "no_data_then_first", "SCRAM-SHA-256", NULL, "n,,n=,r=abc", -1, 0 },
        { "empty_data", "SCRAM-SHA-256", "", NULL, 0, 0 },
        { "data_length_past_end", "SCRAM-SHA-256", "n,,n=,r=abc", NULL, 400, 0 },
        { "bad_flag", "SCRAM-SHA-256", "x,,n=,r=abc", NULL, 0, 0 },
        { "binding_data_without_plus", "SCRAM-SHA-256", "p=tls-server-end-point,,n=,r=abc", NULL, 0, 0 },
        { "authzid", "SCRAM-SHA-256", "n,a=someone,n=,r=abc", NULL, 0, 0 },
        { "extension", "SCRAM-SHA-256", "n,,m=ext,n=,r=abc", NULL, 0, 0 },
        { "no_nonce", "SCRAM-SHA-256", "n,,n=,x=abc", NULL, 0, 0 },
        { "no_user_attr", "SCRAM-SHA-256", "n,,r=abc", NULL, 0, 0 },
        { "final_wrong_proof", "SCRAM-SHA-256", "n,,n=,r=abc", "c=biws,r={r},p=" ZERO_PROOF, 0, 0 },
        { "final_y_wrong_proof", "SCRAM-SHA-256", "y,,n=,r=abc", "c=eSws,r={r},p=" ZERO_PROOF, 0, 0 },
        { "final_wrong_nonce", "SCRAM-SHA-256", "n,,n=,r=abc", "c=biws,r=abcWRONG,p=" ZERO_PROOF, 0, 0 },
        { "final_wrong_binding", "SCRAM-SHA-256", "n,,n=,r=abc", "c=eSws,r={r},p=" ZERO_PROOF, 0, 0 },
        { "final_no_proof", "SCRAM-SHA-256", "n,,n=,r=abc", "c=biws,r={r}", 0, 0 },
        { "final_bad_base64", "SCRAM-SHA-256", "n,,n=,r=abc", "c=biws,r={r},p=!!!!", 0, 0 },
        { "final_short_proof", "SCRAM-SHA-256", "n,,n=,r=abc", "c=biws,r={r},p=AAAA", 0, 0 },
        { "final_garbage", "SCRAM-SHA-256", "n,,n=,r=abc", "garbage", 0, 0 },
        { "final_extension_before_proof", "SCRAM-SHA-256", "n,,n=,r=abc", "c=biws,r={r},x=1,p=" ZERO_PROOF, 0, 0 },
        { "first_trailing_comma", "SCRAM-SHA-256", "n,,n=,r=abc,", "c=biws,r={r},p=" ZERO_PROOF, 0, 0 },
        { "first_empty_nonce", "SCRAM-SHA-256", "n,,n=,r=", "c=biws,r={r},p=" ZERO_PROOF, 0, 0 },
        { "first_space_in_nonce", "SCRAM-SHA-256", "n,,n=,r=ab c", NULL, 0, 0 },
        { "first_no_comma_after_flag", "SCRAM-SHA-256", "n;,n=,r=abc", NULL, 0, 0 },
        { "first_attribute_in_gs2", "SCRAM-SHA-256", "n,b,n=,r=abc", NULL, 0, 0 },
        { "first_extension_not_letter", "SCRAM-SHA-256", "n,,n=,r=abc,1=x", NULL, 0, 0 },
        { "first_no_equals", "SCRAM-SHA-256", "n,,n,r=abc", NULL, 0, 0 },
        { "first_with_nul", "SCRAM-SHA-256", "n,,n=,r=a\0bc", NULL, 12, 12 },
        { "final_garbage_after_proof", "SCRAM-SHA-256", "n,,n=,r=abc", "c=biws,r={r},p=" ZERO_PROOF ",x=1", 0, 0 },
        { "final_attr_not_letter", "SCRAM-SHA-256", "n,,n=,r=abc", "c=biws,r={r},1=x,p=" ZERO_PROOF, 0, 0 },
        { "final_proof_no_equals", "SCRAM-SHA-256", "n,,n=,r=abc", "c=biws,r={r},p", 0, 0 },
        { "final_noncanonical_proof", "SCRAM-SHA-256", "n,,n=,r=abc",
          "c=biws,r={r},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=", 0, 0 },
        { "final_empty", "SCRAM-SHA-256", "n,,n=,r=abc", "", 0, 0 },
        { "mechanism_without_nul", "SCRAM-SHA-256", NULL, NULL, -2, 0 },
        { "data_length_short", "SCRAM-SHA-256", "n,,n=,r=abc", NULL, 5, 0 },
    };
    static char d[4096], p[4096];
    int failures = 0;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sasl_run(g_pg.port, &cases[i], d, sizeof d);
        sasl_run(g_scram.port, &cases[i], p, sizeof p);
        failures += compare_answers(cases[i].name, d, p, NULL);
    }
    assert_int_equal(failures, 0);
    h_pass();
}

/* ParameterStatus carries the values as PostgreSQL normalises them; an application_name over 63
 * bytes is truncated with PostgreSQL's 42622 NOTICE. */
static void test_parameter_status_normalised(void **state)
{
    (void)state;
    static char longname[80];
    memset(longname, 'a', 70);
    longname[70] = 0;
    const char *nv[] = { "DateStyle", "client_encoding", "TimeZone", "application_name" };
    const char *vv[] = { "German", "latin1", "utc", longname };
    const char *check[] = { "DateStyle", "client_encoding", "TimeZone", "application_name" };

    for (int round = 0; round < 2; round++) {       /* the second from pglane's record of the values */
        struct login d, p;

        assert_int_equal(raw_login(&g_direct, 3u << 16, nv, vv, 4, &d), 0);
        assert_int_equal(raw_login(&g_tx1, 3u << 16, nv, vv, 4, &p), 0);
        for (int i = 0; i < 4; i++) {
            assert_non_null(param_of(&d, check[i]));
            assert_non_null(param_of(&p, check[i]));
            assert_string_equal(param_of(&p, check[i]), param_of(&d, check[i]));
        }
        assert_string_equal(param_of(&p, "DateStyle"), "German, DMY");
        assert_string_equal(param_of(&p, "client_encoding"), "LATIN1");
        assert_string_equal(param_of(&p, "TimeZone"), "UTC");
        assert_int_equal(strlen(param_of(&p, "application_name")), 63);
        assert_int_equal(p.nnotices, d.nnotices);
        assert_string_equal(p.notice_state, d.notice_state);
        assert_string_equal(p.notice_state, "42622");
        assert_string_equal(raw_query1(p.fd, "SHOW DateStyle"), "German, DMY");
        raw_close(&d);
        raw_close(&p);
    }
    h_pass();
}

/* ------------------------------------------------------------------ items 5, 6, 7: libpq */

static const char *state_of(const PGresult *r)
{
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return s ? s : "";
}

/* PQprepare: "" on success, else the SQLSTATE; msg (if not NULL) gets the primary message. */
static const char *prepare_state(PGconn *c, const char *name, const char *sql, char *msg, size_t n)
{
    static char st[6];
    PGresult *r = PQprepare(c, name, sql, 0, NULL);

    snprintf(st, sizeof st, "%s", PQresultStatus(r) == PGRES_COMMAND_OK ? "" : state_of(r));
    if (msg) {
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(msg, n, "%s", m ? m : "");
    }
    PQclear(r);
    return st;
}

/* PQexecPrepared without parameters: the first value, or "E:<sqlstate>". */
static const char *exec_prepared(PGconn *c, const char *name)
{
    static char out[128];
    PGresult *r = PQexecPrepared(c, name, 0, NULL, NULL, NULL, 0);

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
    else
        snprintf(out, sizeof out, "E:%s", state_of(r));
    PQclear(r);
    return out;
}

static const char *exec1(PGconn *c, const char *sql)
{
    static char out[128];
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) == PGRES_COMMAND_OK)
        snprintf(out, sizeof out, "OK");
    else
        snprintf(out, sizeof out, "E:%s", state_of(r));
    PQclear(r);
    return out;
}

/* Item 5: re-preparing a name gives 42P05 naming the client's statement and never redefines it. */
static void test_reprepare_existing_name(void **state)
{
    (void)state;
    const struct h_pglane *lanes[] = { &g_direct, &g_tx1 };

    for (int i = 0; i < 2; i++) {
        PGconn *c = h_connect(lanes[i], NULL);
        char msg[128];

        H_ASSERT_CONNECTED(c);
        assert_string_equal(prepare_state(c, "s3", "select 1", NULL, 0), "");
        assert_string_equal(prepare_state(c, "s3", "select 1", msg, sizeof msg), "42P05");
        assert_string_equal(msg, "prepared statement \"s3\" already exists");
        assert_string_equal(prepare_state(c, "s3", "select 2", msg, sizeof msg), "42P05");
        assert_string_equal(msg, "prepared statement \"s3\" already exists");
        assert_string_equal(exec_prepared(c, "s3"), "1");
        /* The same with the text a server already has, inside a transaction. */
        assert_string_equal(exec1(c, "BEGIN"), "OK");
        assert_string_equal(prepare_state(c, "s3", "select 2", msg, sizeof msg), "42P05");
        assert_string_equal(exec1(c, "ROLLBACK"), "OK");
        assert_string_equal(exec_prepared(c, "s3"), "1");
        PQfinish(c);
    }
    h_pass();
}

/* Item 5 in one pipeline: the second Parse of a name fails, the rest up to the Sync is skipped. */
static void test_reprepare_in_pipeline(void **state)
{
    (void)state;
    const struct h_pglane *lanes[] = { &g_direct, &g_tx1 };

    for (int i = 0; i < 2; i++) {
        PGconn *c = h_connect(lanes[i], NULL);
        ExecStatusType want[] = { PGRES_COMMAND_OK, PGRES_FATAL_ERROR, PGRES_FATAL_ERROR };
        const char *states[] = { "", "42P05", "" };
        PGresult *r;

        H_ASSERT_CONNECTED(c);
        /* "select 5" is known to the server (and to pglane) from an earlier statement. */
        assert_string_equal(prepare_state(c, "warm5", "select 5", NULL, 0), "");
        assert_int_equal(PQenterPipelineMode(c), 1);
        assert_int_equal(PQsendPrepare(c, "p5", "select 5", 0, NULL), 1);
        assert_int_equal(PQsendPrepare(c, "p5", "select 6", 0, NULL), 1);
        assert_int_equal(PQsendPrepare(c, "p6", "select 6", 0, NULL), 1);
        assert_int_equal(PQpipelineSync(c), 1);
        for (int k = 0; k < 3; k++) {
            assert_int_equal(h_wait_result(c, 10000), 0);
            r = PQgetResult(c);
            assert_non_null(r);
            ExecStatusType st = PQresultStatus(r);
            /* libpq reports the skipped one as PGRES_PIPELINE_ABORTED */
            if (k == 2)
                assert_int_equal(st, PGRES_PIPELINE_ABORTED);
            else
                assert_int_equal(st, want[k]);
            assert_string_equal(state_of(r), states[k]);
            if (k == 1)
                assert_string_equal(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
                                    "prepared statement \"p5\" already exists");
            PQclear(r);
            assert_null(PQgetResult(c));
        }
        r = PQgetResult(c);
        assert_int_equal(PQresultStatus(r), PGRES_PIPELINE_SYNC);
        PQclear(r);
        assert_int_equal(PQexitPipelineMode(c), 1);
        assert_string_equal(exec_prepared(c, "p5"), "5");
        assert_string_equal(exec_prepared(c, "p6"), "E:26000");
        PQfinish(c);
    }
    h_pass();
}

/* Item 6: Parse in a failed transaction gives 25P02 and creates nothing. */
static void test_parse_in_failed_transaction(void **state)
{
    (void)state;
    const struct h_pglane *lanes[] = { &g_direct, &g_tx1 };

    for (int i = 0; i < 2; i++) {
        PGconn *warm = h_connect(lanes[i], NULL), *c = h_connect(lanes[i], NULL);

        H_ASSERT_CONNECTED(warm);
        H_ASSERT_CONNECTED(c);
        /* Another client prepares the same text first: pglane's server connection has it. */
        assert_string_equal(prepare_state(warm, "w4", "select 4", NULL, 0), "");
        assert_string_equal(exec_prepared(warm, "w4"), "4");
        assert_string_equal(exec1(c, "BEGIN"), "OK");
        assert_string_equal(exec1(c, "select 1/0"), "E:22012");
        assert_string_equal(prepare_state(c, "s4", "select 4", NULL, 0), "25P02");
        assert_int_equal(PQtransactionStatus(c), PQTRANS_INERROR);
        assert_string_equal(exec1(c, "ROLLBACK"), "OK");
        assert_string_equal(exec_prepared(c, "s4"), "E:26000");
        /* In a healthy transaction the Parse of a known text works and the statement lives on. */
        assert_string_equal(exec1(c, "BEGIN"), "OK");
        assert_string_equal(prepare_state(c, "s4", "select 4", NULL, 0), "");
        assert_string_equal(exec1(c, "COMMIT"), "OK");
        assert_string_equal(exec_prepared(c, "s4"), "4");
        PQfinish(c);
        PQfinish(warm);
    }
    h_pass();
}

/* Item 7: the unnamed statement survives Sync and stays the client's own. */
static void test_unnamed_statement_is_the_clients(void **state)
{
    (void)state;
    const struct h_pglane *lanes[] = { &g_direct, &g_tx1, &g_tx2 };

    for (int i = 0; i < 3; i++) {
        PGconn *a = h_connect(lanes[i], NULL), *b = h_connect(lanes[i], NULL);

        H_ASSERT_CONNECTED(a);
        H_ASSERT_CONNECTED(b);
        /* b uses the unnamed statement of nobody yet: 26000 */
        assert_string_equal(exec_prepared(b, ""), "E:26000");
        assert_string_equal(prepare_state(a, "", "select 'mine'", NULL, 0), "");
        assert_string_equal(prepare_state(b, "", "select 'other'", NULL, 0), "");
        assert_string_equal(exec_prepared(b, ""), "other");
        assert_string_equal(exec_prepared(a, ""), "mine");
        /* b holds a server in a transaction: a's next use may land on another one. A simple Query
         * (BEGIN, COMMIT) drops the unnamed statement of its own client only. */
        assert_string_equal(exec1(b, "BEGIN"), "OK");
        assert_string_equal(exec_prepared(b, ""), "E:26000");
        assert_string_equal(exec1(b, "ROLLBACK"), "OK");
        assert_string_equal(exec1(b, "BEGIN"), "OK");
        assert_string_equal(prepare_state(b, "", "select 'other2'", NULL, 0), "");
        assert_string_equal(exec_prepared(b, ""), "other2");
        if (lanes[i] != &g_tx1)
            assert_string_equal(exec_prepared(a, ""), "mine");
        assert_string_equal(exec1(b, "COMMIT"), "OK");
        assert_string_equal(exec_prepared(a, ""), "mine");
        assert_string_equal(exec_prepared(b, ""), "E:26000");
        assert_string_equal(prepare_state(b, "", "select 'other3'", NULL, 0), "");
        assert_string_equal(exec1(a, "select 5"), "5");
        assert_string_equal(exec_prepared(a, ""), "E:26000");
        assert_string_equal(exec_prepared(b, ""), "other3");
        PQfinish(a);
        PQfinish(b);
    }
    h_pass();
}

/* ------------------------------------------------------------------ item 10 */

/* A legal 70 MB Bind runs through pglane, unnamed and with a named statement. */
static void test_bind_over_64mb(void **state)
{
    (void)state;
    const size_t n = 70u * 1024 * 1024;
    char *big = malloc(n + 1);
    const struct h_pglane *lanes[] = { &g_direct, &g_tx1 };

    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = 0;
    for (int i = 0; i < 2; i++) {
        PGconn *c = h_connect(lanes[i], NULL);
        const char *vals[] = { big };
        PGresult *r;

        H_ASSERT_CONNECTED(c);
        r = PQexecParams(c, "select length($1)", 1, NULL, vals, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            print_error("70 MB Bind: %s", PQerrorMessage(c));
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "73400320");
        PQclear(r);
        assert_string_equal(prepare_state(c, "big", "select length($1)", NULL, 0), "");
        r = PQexecPrepared(c, "big", 1, vals, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        assert_string_equal(PQgetvalue(r, 0, 0), "73400320");
        PQclear(r);
        assert_string_equal(exec_prepared(c, "big"), "E:08P01");
        PQfinish(c);
    }
    /* A Parse over 64 MB is the documented limit of the mapping: a clear 54000 ERROR, not "out of
     * memory" (PostgreSQL itself would take it); the connection goes on, as after any error. */
    memcpy(big, "select '", 8);
    big[n - 1] = '\'';
    PGconn *c = h_connect(&g_tx1, NULL);
    H_ASSERT_CONNECTED(c);
    PGresult *r = PQprepare(c, "huge", big, 0, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    if (strcmp(state_of(r), "54000") != 0)
        print_error("huge Parse: %s\n", PQresultErrorMessage(r));
    assert_string_equal(state_of(r), "54000");
    PQclear(r);
    assert_string_equal(exec1(c, "select 8"), "8");
    assert_string_equal(exec_prepared(c, "huge"), "E:26000");
    PQfinish(c);
    free(big);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_bad_startup_value_refused_no_leak),
        H_TEST(test_failed_setting_sync_closes),
        H_TEST(test_unknown_startup_parameter),
        H_TEST(test_unsupported_protocol_version),
        H_TEST(test_prelogin_mistakes),
        H_TEST(test_sasl_mistakes),
        H_TEST(test_login_refusals),
        H_TEST(test_startup_guc_applied),
        H_TEST(test_many_parameters_and_replication_false),
        H_TEST(test_negotiate_protocol_version),
        H_TEST(test_parameter_status_normalised),
        H_TEST(test_reprepare_existing_name),
        H_TEST(test_reprepare_in_pipeline),
        H_TEST(test_parse_in_failed_transaction),
        H_TEST(test_unnamed_statement_is_the_clients),
        H_TEST(test_bind_over_64mb),
    };
    return H_RUN_GROUP("integration: protocol fidelity (startup, prepared statements)", tests,
                       .pg = &g_pg, .setup = fixtures);
}
