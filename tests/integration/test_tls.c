/*
 * Hardening issue, TLS on both sides against a test CA made with the openssl CLI: psql with
 * sslmode=require and verify-full, client certificates, pglane to a PostgreSQL that requires TLS
 * (server_tls_mode = verify-full), tls_mode = require refusing plaintext clients, and
 * SCRAM-SHA-256-PLUS channel binding (libpq channel_binding=require; a raw TLS SCRAM client that
 * tampers with the binding or downgrades).
 */
#include "tests/integration/harness.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static struct h_pg g_pg;
static char g_tls[H_PATH];          /* certificates for pglane and the clients */

#define TLS_DB "tlsdb"              /* pg_hba: hostssl only */

/* ------------------------------------------------------------------------------------------ setup */

static int openssl(const char *const *args)
{
    const char *argv[40];
    int n = 0;
    argv[n++] = "openssl";
    for (int i = 0; args[i] && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *out = NULL;
    int rc = h_run(argv, NULL, 30000, &out);
    if (rc != 0)
        fprintf(stderr, "openssl %s failed (%d):\n%s\n", args[0], rc, out);
    free(out);
    return rc;
}

static const char *tls_path(const char *name)
{
    static char bufs[8][H_PATH + 64];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", g_tls, name);
    return b;
}

/* A self-signed CA <name>.crt / <name>.key. */
static int make_ca(const char *name, const char *cn)
{
    char key[H_PATH + 64], crt[H_PATH + 64], subj[128];
    snprintf(key, sizeof key, "%s/%s.key", g_tls, name);
    snprintf(crt, sizeof crt, "%s/%s.crt", g_tls, name);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    const char *args[] = { "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                           "-keyout", key, "-out", crt, "-days", "3", "-subj", subj,
                           "-addext", "basicConstraints=critical,CA:TRUE",
                           "-addext", "keyUsage=critical,keyCertSign,cRLSign", NULL };
    return openssl(args);
}

/* <name>.crt / <name>.key signed by <ca>, with the given extensions (one per line). */
static int make_cert(const char *name, const char *ca, const char *cn, const char *ext)
{
    char key[H_PATH + 64], csr[H_PATH + 64], crt[H_PATH + 64], extf[H_PATH + 64];
    char cakey[H_PATH + 64], cacrt[H_PATH + 64], subj[128];
    snprintf(key, sizeof key, "%s/%s.key", g_tls, name);
    snprintf(csr, sizeof csr, "%s/%s.csr", g_tls, name);
    snprintf(crt, sizeof crt, "%s/%s.crt", g_tls, name);
    snprintf(extf, sizeof extf, "%s/%s.ext", g_tls, name);
    snprintf(cakey, sizeof cakey, "%s/%s.key", g_tls, ca);
    snprintf(cacrt, sizeof cacrt, "%s/%s.crt", g_tls, ca);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    if (h_write_file(extf, ext) != 0)
        return -1;
    const char *req[] = { "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                          "-keyout", key, "-out", csr, "-subj", subj, NULL };
    const char *sign[] = { "x509", "-req", "-in", csr, "-CA", cacrt, "-CAkey", cakey, "-CAcreateserial",
                           "-out", crt, "-days", "3", "-extfile", extf, NULL };
    if (openssl(req) != 0 || openssl(sign) != 0)
        return -1;
    return chmod(key, 0600);
}

/* Copies a file into the cluster's directory, owned by the server's user with mode 0600. */
static int install_for_pg(const char *src, const char *name, char *dst, size_t n)
{
    snprintf(dst, n, "%s/%s", g_pg.dir, name);
    char *text = h_read_file(src);
    int rc = text ? h_write_file(dst, text) : -1;
    free(text);
    if (rc == 0 && geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        rc = pw && chown(dst, pw->pw_uid, pw->pw_gid) == 0 ? 0 : -1;
    }
    return rc == 0 ? chmod(dst, 0600) : -1;
}

/* ssl = on with the test server certificate; database tlsdb only over TLS (hostssl), others as before. */
static int pg_enable_tls(void)
{
    char crt[H_PATH + 32], key[H_PATH + 32], ca[H_PATH + 32], path[H_PATH + 32], conf[4 * H_PATH];
    if (install_for_pg(tls_path("server.crt"), "server.crt", crt, sizeof crt) != 0 ||
        install_for_pg(tls_path("server.key"), "server.key", key, sizeof key) != 0 ||
        install_for_pg(tls_path("ca.crt"), "ca.crt", ca, sizeof ca) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/pg_hba.conf", g_pg.datadir);
    char *hba = h_read_file(path);
    if (!hba)
        return -1;
    snprintf(conf, sizeof conf,
             "hostssl " TLS_DB " all 127.0.0.1/32 scram-sha-256\n"
             "hostnossl " TLS_DB " all 127.0.0.1/32 reject\n%s", hba);
    free(hba);
    if (h_write_file(path, conf) != 0)
        return -1;
    snprintf(conf, sizeof conf,
             "ALTER SYSTEM SET ssl = on; ALTER SYSTEM SET ssl_cert_file = '%s'; "
             "ALTER SYSTEM SET ssl_key_file = '%s'; ALTER SYSTEM SET ssl_ca_file = '%s'", crt, key, ca);
    PGconn *s = h_pg_super(&g_pg, "postgres");
    if (!s)
        return -1;
    int rc = 0;
    for (char *stmt = strtok(conf, ";"); stmt && rc == 0; stmt = strtok(NULL, ";"))
        rc = h_exec(s, stmt);
    rc = rc ? rc : h_exec(s, "SELECT pg_reload_conf()");
    rc = rc ? rc : h_exec(s, "CREATE DATABASE " TLS_DB " OWNER " H_USER);
    /* The reload is asynchronous: wait until a new session sees ssl = on. */
    int64_t deadline = h_now_ms() + 10000;
    while (rc == 0) {
        PGconn *t = h_pg_super(&g_pg, "postgres");
        char *v = t ? h_query1(t, "SHOW ssl") : NULL;
        int on = v && strcmp(v, "on") == 0;
        free(v);
        PQfinish(t);
        if (on)
            break;
        if (h_now_ms() > deadline)
            rc = -1;
        usleep(50000);
    }
    PQfinish(s);
    return rc;
}

static int fixtures(void)
{
    snprintf(g_tls, sizeof g_tls, "%s/tls", h_scratch_dir());
    if (mkdir(g_tls, 0700) != 0)
        return -1;
    static const char server_ext[] = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                                     "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n";
    static const char client_ext[] = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                                     "extendedKeyUsage=clientAuth\n";
    if (make_ca("ca", "pglane test CA") != 0 || make_ca("otherca", "some other CA") != 0 ||
        make_cert("server", "ca", "localhost", server_ext) != 0 ||
        make_cert("client", "ca", H_USER, client_ext) != 0 ||
        make_cert("otherclient", "otherca", H_USER, client_ext) != 0)
        return -1;
    return pg_enable_tls();
}

/* ------------------------------------------------------------------------------------------ helpers */

/* Standard config with client-side TLS (tls_mode as given, certificate of the test CA) and extra lines. */
static void tls_conf(char *buf, size_t n, const char *mode, const char *extra)
{
    char pglane[3 * H_PATH + 256];
    snprintf(pglane, sizeof pglane,
             "server_idle_timeout = 60s\ntls_mode = %s\ntls_cert_file = %s\ntls_key_file = %s\n%s",
             mode, tls_path("server.crt"), tls_path("server.key"), extra ? extra : "");
    h_conf(buf, n, "transaction", 2, "scram-sha-256", pglane);
}

/* Conninfo to pglane with explicit host and extra keywords. */
static void ci_for(const struct h_pglane *l, const char *host, const char *extra, char *buf, size_t n)
{
    snprintf(buf, n, "host=%s port=%d user=" H_USER " password=" H_PASSWORD " dbname=" H_DB
             " connect_timeout=10 %s", host, l->port, extra);
}

/* psql -c '\conninfo' -c 'SELECT 42' with conninfo; returns psql's exit code, output in *out. */
static int psql_conninfo(const char *ci, char **out)
{
    const char *argv[] = { "psql", "-X", "-A", "-t", "-d", ci, "-c", "\\conninfo", "-c", "SELECT 40 + 2", NULL };
    int rc = h_run(argv, NULL, 20000, out);
    fprintf(stderr, "psql \"%s\" -> %d:\n%s", ci, rc, *out);
    return rc;
}

static void assert_psql_tls_ok(const char *ci)
{
    char *out = NULL;
    assert_int_equal(psql_conninfo(ci, &out), 0);
    assert_non_null(strstr(out, "SSL connection (protocol: TLSv1."));
    assert_non_null(strstr(out, "\n42\n"));
    free(out);
}

static void assert_psql_fails(const char *ci, const char *why)
{
    char *out = NULL;
    int rc = psql_conninfo(ci, &out);
    assert_int_not_equal(rc, 0);
    assert_int_not_equal(rc, -1);
    if (!strstr(out, why))
        print_error("expected \"%s\" in psql's output\n", why);
    assert_non_null(strstr(out, why));
    free(out);
}

static void assert_query_ok(PGconn *c)
{
    char *v = h_query1(c, "SELECT 'ok'");
    assert_non_null(v);
    assert_string_equal(v, "ok");
    free(v);
}

/* ------------------------------------------------------------------------------------------ tests */

/* psql through pglane with sslmode=require, and verify-full against the test CA (by name and by IP). */
static void test_psql_require_and_verify_full(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096], ci[2048], extra[H_PATH + 128];
    tls_conf(conf, sizeof conf, "allow", NULL);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);

    ci_for(&l, "127.0.0.1", "sslmode=require", ci, sizeof ci);
    assert_psql_tls_ok(ci);
    snprintf(extra, sizeof extra, "sslmode=verify-full sslrootcert=%s", tls_path("ca.crt"));
    ci_for(&l, "localhost", extra, ci, sizeof ci);
    assert_psql_tls_ok(ci);
    ci_for(&l, "127.0.0.1", extra, ci, sizeof ci);
    assert_psql_tls_ok(ci);

    /* The verification is real: another CA's root does not verify pglane's certificate. */
    snprintf(extra, sizeof extra, "sslmode=verify-full sslrootcert=%s", tls_path("otherca.crt"));
    ci_for(&l, "localhost", extra, ci, sizeof ci);
    assert_psql_fails(ci, "certificate verify failed");

    /* libpq sees TLS 1.2 or 1.3, and tls_mode = allow still admits plaintext clients. */
    snprintf(extra, sizeof extra, "sslmode=verify-full sslrootcert=%s", tls_path("ca.crt"));
    ci_for(&l, "localhost", extra, ci, sizeof ci);
    PGconn *c = PQconnectdb(ci);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(PQsslInUse(c), 1);
    const char *proto = PQsslAttribute(c, "protocol");
    assert_non_null(proto);
    assert_true(strcmp(proto, "TLSv1.2") == 0 || strcmp(proto, "TLSv1.3") == 0);
    assert_query_ok(c);
    PQfinish(c);
    c = h_connect(&l, "sslmode=disable");
    H_ASSERT_CONNECTED(c);
    assert_int_equal(PQsslInUse(c), 0);
    assert_query_ok(c);
    PQfinish(c);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* tls_ca_file set: a client certificate from the test CA is accepted, one from another CA refused. */
static void test_client_certificates(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096], ci[4 * H_PATH + 256], extra[4 * H_PATH], ca_line[H_PATH + 32];
    snprintf(ca_line, sizeof ca_line, "tls_ca_file = %s\n", tls_path("ca.crt"));
    tls_conf(conf, sizeof conf, "require", ca_line);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);

    snprintf(extra, sizeof extra, "sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s", tls_path("ca.crt"),
             tls_path("client.crt"), tls_path("client.key"));
    ci_for(&l, "localhost", extra, ci, sizeof ci);
    PGconn *c = PQconnectdb(ci);
    H_ASSERT_CONNECTED(c);
    assert_int_equal(PQsslInUse(c), 1);
    assert_query_ok(c);
    PQfinish(c);

    snprintf(extra, sizeof extra, "sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s", tls_path("ca.crt"),
             tls_path("otherclient.crt"), tls_path("otherclient.key"));
    ci_for(&l, "localhost", extra, ci, sizeof ci);
    c = PQconnectdb(ci);
    fprintf(stderr, "client certificate of another CA: %s", PQerrorMessage(c));
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    PQfinish(c);

    /* The refused handshake did not disturb pglane. */
    snprintf(extra, sizeof extra, "sslmode=require sslcert=%s sslkey=%s", tls_path("client.crt"),
             tls_path("client.key"));
    ci_for(&l, "127.0.0.1", extra, ci, sizeof ci);
    c = PQconnectdb(ci);
    H_ASSERT_CONNECTED(c);
    assert_query_ok(c);
    PQfinish(c);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* A pglane whose [server.pg] has the given TLS lines; clients connect in plaintext. */
static void start_server_tls_lane(struct h_pglane *l, const char *mode, const char *ca)
{
    char conf[4096], lines[H_PATH + 128];
    h_conf(conf, sizeof conf, "transaction", 2, "scram-sha-256", NULL);
    if (ca)
        snprintf(lines, sizeof lines, "port = @PGPORT@\nserver_tls_mode = %s\nserver_tls_ca_file = %s\n", mode, ca);
    else
        snprintf(lines, sizeof lines, "port = @PGPORT@\nserver_tls_mode = %s\n", mode);
    h_conf_replace(conf, sizeof conf, "port = @PGPORT@\n", lines);
    if (strcmp(mode, "verify-full") != 0 || strstr(ca, "otherca") == NULL) {
        assert_int_equal(h_pglane_start(l, &g_pg, conf), 0);
        return;
    }
    /* No login can succeed through this one: wait until it listens instead. */
    assert_int_equal(h_pglane_spawn(l, &g_pg, conf), 0);
    int64_t deadline = h_now_ms() + 10000;
    int fd;
    while ((fd = h_raw_connect(l->port)) < 0 && h_now_ms() < deadline && h_pglane_alive(l))
        usleep(20000);
    assert_true(fd >= 0);
    close(fd);
}

/* Through l to database tlsdb: 1 if a query ran, and then whether the backend saw TLS. */
static int tlsdb_query(const struct h_pglane *l, int *backend_ssl)
{
    PGconn *c = h_connect(l, "dbname=" TLS_DB " sslmode=disable");
    PGresult *r = NULL;
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        r = PQexec(c, "SELECT ssl::int FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
        ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        if (ok)
            *backend_ssl = atoi(PQgetvalue(r, 0, 0));
    }
    if (!ok)
        fprintf(stderr, "tlsdb through pglane: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok;
}

/*
 * PostgreSQL with ssl = on and hostssl-only access to tlsdb: pglane with server_tls_mode =
 * verify-full (test CA) gets in over TLS; disable and a wrong CA are refused with an error to the
 * client, and pglane keeps serving.
 */
static void test_server_requires_tls(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    /* The cluster really refuses plaintext for tlsdb. */
    struct h_pglane direct = { .port = g_pg.port, .direct = 1, .pg = &g_pg };
    PGconn *d = h_connect(&direct, "dbname=" TLS_DB " sslmode=disable");
    assert_int_not_equal(PQstatus(d), CONNECTION_OK);
    PQfinish(d);

    struct h_pglane l;
    int ssl = -1;
    start_server_tls_lane(&l, "verify-full", tls_path("ca.crt"));
    assert_true(tlsdb_query(&l, &ssl));
    assert_int_equal(ssl, 1);
    assert_true(tlsdb_query(&l, &ssl));   /* a pooled TLS connection, reused */
    assert_int_equal(h_pglane_stop(&l), 0);

    start_server_tls_lane(&l, "require", NULL);
    assert_true(tlsdb_query(&l, &ssl));
    assert_int_equal(ssl, 1);
    assert_int_equal(h_pglane_stop(&l), 0);

    start_server_tls_lane(&l, "disable", NULL);
    assert_false(tlsdb_query(&l, &ssl));
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);

    start_server_tls_lane(&l, "verify-full", tls_path("otherca.crt"));
    assert_false(tlsdb_query(&l, &ssl));
    assert_true(h_pglane_alive(&l));
    char *log = h_pglane_log(&l);
    assert_non_null(strstr(log, "certificate"));
    free(log);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* tls_mode = require: a plaintext StartupMessage gets ErrorResponse 28000 naming TLS, then the close. */
static void test_require_refuses_plaintext(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096];
    tls_conf(conf, sizeof conf, "require", NULL);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);

    int fd = h_raw_connect(l.port);
    assert_true(fd >= 0);
    uint8_t buf[256];
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_USER, H_DB);
    assert_int_equal(h_raw_send(fd, buf, n), 0);
    uint8_t *body = NULL;
    uint32_t len = 0;
    int t = h_raw_read_msg(fd, 5000, &body, &len);
    assert_int_equal(t, 'E');
    const char *st = h_error_field(body, len, 'C'), *msg = h_error_field(body, len, 'M');
    fprintf(stderr, "plaintext client: %s %s\n", st ? st : "", msg ? msg : "");
    assert_non_null(st);
    assert_string_equal(st, "28000");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "TLS"));
    free(body);
    assert_int_equal(h_raw_read_msg(fd, 3000, &body, &len), H_RAW_EOF);
    close(fd);

    /* GSSENCRequest is declined with 'N'. */
    fd = h_raw_connect(l.port);
    assert_true(fd >= 0);
    const uint8_t gss[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30 };
    assert_int_equal(h_raw_send(fd, gss, sizeof gss), 0);
    assert_int_equal(h_raw_read_byte(fd, 3000), 'N');
    close(fd);

    PGconn *c = h_connect(&l, "sslmode=disable");
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    fprintf(stderr, "libpq sslmode=disable: %s", PQerrorMessage(c));
    assert_non_null(strstr(PQerrorMessage(c), "TLS"));
    PQfinish(c);
    c = h_connect(&l, "sslmode=require");
    H_ASSERT_CONNECTED(c);
    assert_int_equal(PQsslInUse(c), 1);
    assert_query_ok(c);
    PQfinish(c);
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

/* ------------------------------------------------------------------------------------------ channel binding */

/* A TLS connection made by hand (SSLRequest, then OpenSSL on the blocking socket). */
struct raw_tls {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
};

static int raw_tls_open(struct raw_tls *t, int port)
{
    static const uint8_t sslreq[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
    struct timeval tv = { .tv_sec = 5 };

    memset(t, 0, sizeof *t);
    t->fd = h_raw_connect(port);
    if (t->fd < 0 || h_raw_send(t->fd, sslreq, sizeof sslreq) != 0 || h_raw_read_byte(t->fd, 5000) != 'S')
        return -1;
    setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    t->ctx = SSL_CTX_new(TLS_client_method());
    t->ssl = t->ctx ? SSL_new(t->ctx) : NULL;
    if (!t->ssl || SSL_set_fd(t->ssl, t->fd) != 1 || SSL_connect(t->ssl) != 1)
        return -1;
    return 0;
}

static void raw_tls_close(struct raw_tls *t)
{
    if (t->ssl)
        SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    if (t->fd >= 0)
        close(t->fd);
}

static int tls_send(struct raw_tls *t, const void *p, size_t n)
{
    return SSL_write(t->ssl, p, (int)n) == (int)n ? 0 : -1;
}

static int tls_read_exact(struct raw_tls *t, uint8_t *p, size_t n)
{
    while (n > 0) {
        int r = SSL_read(t->ssl, p, (int)n);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One backend message: its type, body in buf (NUL-terminated), *len. -1 on EOF/timeout/oversize. */
static int tls_read_msg(struct raw_tls *t, uint8_t *buf, size_t cap, uint32_t *len)
{
    uint8_t h[5];
    if (tls_read_exact(t, h, 5) < 0)
        return -1;
    *len = ((uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4]) - 4;
    if (*len + 1 > cap || tls_read_exact(t, buf, *len) < 0)
        return -1;
    buf[*len] = 0;
    return h[0];
}

static int b64(const uint8_t *in, size_t n, char *out)
{
    return EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* tls-server-end-point data a client computes from pglane's certificate (ECDSA with SHA-256). */
static size_t expected_binding(uint8_t *out)
{
    FILE *f = fopen(tls_path("server.crt"), "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    unsigned int n = 0;
    assert_int_equal(X509_digest(x, EVP_sha256(), out, &n), 1);
    X509_free(x);
    return n;
}

enum { CB_OK, CB_TAMPER };

/*
 * SCRAM over a hand-made TLS connection: selects mech with the gs2 header gs2 ("n,,", "y,," or
 * "p=tls-server-end-point,,"), sending the right binding or a tampered one. *offered_plus tells
 * whether AuthenticationSASL listed SCRAM-SHA-256-PLUS. Returns 1 if AuthenticationOk came, 0 on an
 * ErrorResponse (its SQLSTATE and message in sqlstate/msg), -1 on anything else.
 */
static int scram_over_tls(int port, const char *mech, const char *gs2, int how, int *offered_plus,
                          char sqlstate[6], char *msg, size_t msgcap)
{
    struct raw_tls t;
    uint8_t buf[4096], hash[EVP_MAX_MD_SIZE];
    uint32_t len;
    int type, rc = -1;
    const char *cnonce = "rOprNGfwEbeRWgbNEkqO0123";
    char first_bare[128], first[256], final[2048], without_proof[1024], cb[512], auth[4096];
    uint8_t cbin[256], salted[32], ckey[32], stored[32], sig[32], proof[32], salt[128];
    size_t hlen = expected_binding(hash);

    if (how == CB_TAMPER)
        hash[hlen - 1] ^= 0x01;
    if (raw_tls_open(&t, port) < 0)
        goto out;
    size_t n = h_raw_startup(buf, sizeof buf, 196608, H_USER, H_DB);
    if (tls_send(&t, buf, n) < 0 || (type = tls_read_msg(&t, buf, sizeof buf, &len)) != 'R' || len < 4 ||
        buf[3] != 10)
        goto out;
    *offered_plus = 0;
    for (const char *m = (const char *)buf + 4; *m; m += strlen(m) + 1)
        *offered_plus |= strcmp(m, "SCRAM-SHA-256-PLUS") == 0;

    snprintf(first_bare, sizeof first_bare, "n=,r=%s", cnonce);
    snprintf(first, sizeof first, "%s%s", gs2, first_bare);
    size_t ml = strlen(mech) + 1, fl = strlen(first);
    buf[0] = 'p';
    h_put32(buf + 1, (uint32_t)(4 + ml + 4 + fl));
    memcpy(buf + 5, mech, ml);
    h_put32(buf + 5 + ml, (uint32_t)fl);
    memcpy(buf + 9 + ml, first, fl);
    if (tls_send(&t, buf, 9 + ml + fl) < 0)
        goto out;
    type = tls_read_msg(&t, buf, sizeof buf, &len);
    if (type == 'E')
        goto error;
    if (type != 'R' || len < 4 || buf[3] != 11)
        goto out;
    /* server-first-message: r=<nonce>,s=<salt>,i=<iterations> */
    char server_first[512];
    snprintf(server_first, sizeof server_first, "%.500s", (const char *)buf + 4);
    char *r = strstr(server_first, "r="), *sp = strstr(server_first, ",s="), *ip = strstr(server_first, ",i=");
    assert_true(r && sp && ip);
    char nonce[256], salt64[256];
    snprintf(nonce, sizeof nonce, "%.*s", (int)(sp - r - 2), r + 2);
    snprintf(salt64, sizeof salt64, "%.*s", (int)(ip - sp - 3), sp + 3);
    int iter = atoi(ip + 3);
    int slen = EVP_DecodeBlock(salt, (const unsigned char *)salt64, (int)strlen(salt64));
    assert_true(slen > 0);
    /* EVP_DecodeBlock counts the bytes of the padding too */
    for (size_t k = strlen(salt64); k > 0 && salt64[k - 1] == '='; k--)
        slen--;

    size_t gl = strlen(gs2), cl = gl;
    memcpy(cbin, gs2, gl);
    if (gs2[0] == 'p') {
        memcpy(cbin + gl, hash, hlen);
        cl += hlen;
    }
    b64(cbin, cl, cb);
    snprintf(without_proof, sizeof without_proof, "c=%.400s,r=%.255s", cb, nonce);
    assert_int_equal(PKCS5_PBKDF2_HMAC(H_PASSWORD, (int)strlen(H_PASSWORD), salt, slen, iter, EVP_sha256(), 32,
                                       salted), 1);
    unsigned int hl = 0;
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, ckey, &hl);
    SHA256(ckey, 32, stored);
    snprintf(auth, sizeof auth, "%s,%s,%s", first_bare, server_first, without_proof);
    HMAC(EVP_sha256(), stored, 32, (const unsigned char *)auth, strlen(auth), sig, &hl);
    for (int i = 0; i < 32; i++)
        proof[i] = ckey[i] ^ sig[i];
    char proof64[64];
    b64(proof, 32, proof64);
    snprintf(final, sizeof final, "%s,p=%s", without_proof, proof64);
    size_t fn = strlen(final);
    buf[0] = 'p';
    h_put32(buf + 1, (uint32_t)(4 + fn));
    memcpy(buf + 5, final, fn);
    if (tls_send(&t, buf, 5 + fn) < 0)
        goto out;
    type = tls_read_msg(&t, buf, sizeof buf, &len);
    if (type == 'E')
        goto error;
    if (type != 'R' || len < 4 || buf[3] != 12)       /* AuthenticationSASLFinal */
        goto out;
    type = tls_read_msg(&t, buf, sizeof buf, &len);
    rc = type == 'R' && len >= 4 && buf[3] == 0 ? 1 : -1;   /* AuthenticationOk */
    goto out;
error:
    snprintf(sqlstate, 6, "%s", h_error_field(buf, len, 'C') ? h_error_field(buf, len, 'C') : "");
    snprintf(msg, msgcap, "%s", h_error_field(buf, len, 'M') ? h_error_field(buf, len, 'M') : "");
    rc = 0;
out:
    raw_tls_close(&t);
    return rc;
}

/* libpq channel_binding=require works through pglane over TLS; PLUS is never offered in plaintext;
 * a tampered binding, a downgrade ("y" after PLUS was offered) and PLUS without binding data fail. */
static void test_channel_binding(void **state)
{
    (void)state;
    H_SKIP_IF_DIRECT();
    struct h_pglane l;
    char conf[4096], ci[2048], sqlstate[6], msg[256];
    int plus = -1;
    tls_conf(conf, sizeof conf, "allow", NULL);
    assert_int_equal(h_pglane_start(&l, &g_pg, conf), 0);

    ci_for(&l, "127.0.0.1", "sslmode=require channel_binding=require", ci, sizeof ci);
    assert_psql_tls_ok(ci);
    PGconn *c = PQconnectdb(ci);
    H_ASSERT_CONNECTED(c);
    assert_query_ok(c);
    PQfinish(c);
    /* libpq refuses to connect when the server does not bind: plaintext gets no PLUS */
    ci_for(&l, "127.0.0.1", "sslmode=disable channel_binding=require", ci, sizeof ci);
    c = PQconnectdb(ci);
    assert_int_not_equal(PQstatus(c), CONNECTION_OK);
    PQfinish(c);
    int fd = h_raw_connect(l.port);
    uint8_t st[256], *body = NULL;
    uint32_t len = 0;
    size_t n = h_raw_startup(st, sizeof st, 196608, H_USER, H_DB);
    assert_int_equal(h_raw_send(fd, st, n), 0);
    assert_int_equal(h_raw_read_msg(fd, 5000, &body, &len), 'R');
    assert_true(len >= 4 && body[3] == 10);
    assert_string_equal((const char *)body + 4, "SCRAM-SHA-256");
    assert_int_equal(body[4 + strlen("SCRAM-SHA-256") + 1], 0);     /* the only mechanism */
    free(body);
    close(fd);

    /* The hand-made client is right: the correct binding logs in. */
    assert_int_equal(scram_over_tls(l.port, "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,", CB_OK, &plus,
                                    sqlstate, msg, sizeof msg), 1);
    assert_int_equal(plus, 1);
    /* and so does plain SCRAM with "n" */
    assert_int_equal(scram_over_tls(l.port, "SCRAM-SHA-256", "n,,", CB_OK, &plus, sqlstate, msg, sizeof msg), 1);

    assert_int_equal(scram_over_tls(l.port, "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,", CB_TAMPER, &plus,
                                    sqlstate, msg, sizeof msg), 0);
    fprintf(stderr, "tampered binding: %s %s\n", sqlstate, msg);
    assert_string_equal(sqlstate, "28000");          /* PostgreSQL 15's answer to a wrong binding */
    assert_string_equal(msg, "SCRAM channel binding check failed");
    char *log = h_pglane_log(&l);
    assert_non_null(strstr(log, "SCRAM channel binding check failed"));   /* and the log says it */
    free(log);
    assert_int_equal(scram_over_tls(l.port, "SCRAM-SHA-256", "y,,", CB_OK, &plus, sqlstate, msg, sizeof msg), 0);
    fprintf(stderr, "downgrade: %s %s\n", sqlstate, msg);
    assert_string_equal(sqlstate, "28000");
    assert_string_equal(msg, "SCRAM channel binding negotiation error");
    assert_int_equal(scram_over_tls(l.port, "SCRAM-SHA-256-PLUS", "n,,", CB_OK, &plus, sqlstate, msg, sizeof msg), 0);
    assert_string_equal(sqlstate, "08P01");
    assert_string_equal(msg, "malformed SCRAM message");     /* the detail names PLUS, as PostgreSQL's does */
    assert_int_equal(scram_over_tls(l.port, "SCRAM-SHA-256", "p=tls-server-end-point,,", CB_OK, &plus, sqlstate, msg,
                                    sizeof msg), 0);
    assert_int_equal(scram_over_tls(l.port, "SCRAM-SHA-256-PLUS", "p=tls-unique,,", CB_OK, &plus, sqlstate, msg,
                                    sizeof msg), 0);
    assert_true(h_pglane_alive(&l));
    assert_int_equal(h_pglane_stop(&l), 0);
    h_pass();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        H_TEST(test_psql_require_and_verify_full),
        H_TEST(test_client_certificates),
        H_TEST(test_server_requires_tls),
        H_TEST(test_require_refuses_plaintext),
        H_TEST(test_channel_binding),
    };
    return H_RUN_GROUP("integration: TLS", tests, .pg = &g_pg, .setup = fixtures);
}
