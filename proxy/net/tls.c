/*
 * TLS through memory BIOs inside the libuv loop: ciphertext read from the socket is fed to OpenSSL and
 * the plaintext lands in the connection's ordinary input buffer; plaintext to send is encrypted into
 * one heap block per write (the only copy TLS needs). No call here ever blocks. px_tls_start gives the
 * stream the TLS transport (px_tls_transport, at the end of this file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "conf/conf.h"
#include "proxy/log.h"
#include "proxy/net/tls.h"

#define TLS_CBUF_SIZE (17 * 1024)          /* one TLS record and then some */
#define PX_TLS_PLAINTEXT PX_IO_DATA
#define PX_TLS_HANDSHAKE PX_IO_HANDSHAKE

static const struct px_transport px_tls_transport;

struct px_tls {
    SSL *ssl;
    BIO *rbio, *wbio;                      /* network to OpenSSL, OpenSSL to network */
    uint8_t *cbuf;                         /* ciphertext read buffer */
    uint8_t handshake_done;
    char error[160];                       /* why the last TLS step failed */
};

static const char *tls_error(void)
{
    unsigned long e = ERR_get_error();
    static _Thread_local char buf[160];

    if (!e)
        return "TLS error";
    ERR_error_string_n(e, buf, sizeof(buf));
    return buf;
}

static int set_protocols(SSL_CTX *ctx, unsigned mask)
{
    int min = mask & CONF_TLS_V1_2 ? TLS1_2_VERSION : TLS1_3_VERSION;
    int max = mask & CONF_TLS_V1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;

    return SSL_CTX_set_min_proto_version(ctx, min) && SSL_CTX_set_max_proto_version(ctx, max) ? 0 : -1;
}

void *px_tls_server_ctx(const struct conf *c)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (!ctx)
        goto fail;
    if (set_protocols(ctx, c->tls_protocol_mask) < 0 ||
        SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, c->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        goto fail;
    if (c->tls_ca_file) {
        /* Client certificates are optional, but one that is presented must verify. */
        if (SSL_CTX_load_verify_locations(ctx, c->tls_ca_file, NULL) != 1)
            goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
fail:
    px_error("TLS setup for clients failed: %s", tls_error());
    SSL_CTX_free(ctx);
    return NULL;
}

void *px_tls_client_ctx(const struct conf_server *s)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx)
        goto fail;
    if (set_protocols(ctx, CONF_TLS_V1_2 | CONF_TLS_V1_3) < 0)
        goto fail;
    if (s->tls_mode >= CONF_STLS_VERIFY_CA) {
        if ((s->tls_ca_file ? SSL_CTX_load_verify_locations(ctx, s->tls_ca_file, NULL)
                            : SSL_CTX_set_default_verify_paths(ctx)) != 1)
            goto fail;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
fail:
    px_error("TLS setup for server \"%s\" failed: %s", s->name, tls_error());
    SSL_CTX_free(ctx);
    return NULL;
}

void px_tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

struct tls_write {
    uv_write_t req;
    struct px_conn *conn;
    uint8_t data[];
};

/* Sends whatever OpenSSL has produced for the network. 0 or -1. */
static int flush(struct px_conn *c)
{
    size_t n = BIO_ctrl_pending(c->tls->wbio);
    struct tls_write *w;
    uv_buf_t b;

    if (n == 0)
        return 0;
    w = malloc(sizeof(*w) + n);
    if (!w)
        return -1;
    if (BIO_read(c->tls->wbio, w->data, (int)n) != (int)n) {
        free(w);
        return -1;
    }
    w->conn = c;
    b = uv_buf_init((char *)w->data, (unsigned)n);
    if (uv_write(&w->req, &c->h.stream, &b, 1, px_conn_write_done) < 0) {
        free(w);
        return -1;
    }
    return 0;
}

int px_tls_start(struct px_conn *c, void *ctx, int server_side, const char *verify_host)
{
    struct px_tls *t = calloc(1, sizeof(*t));

    if (!t)
        return -1;
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        free(t);
        return -1;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    c->tls = t;
    c->io = &px_tls_transport;
    if (server_side) {
        SSL_set_accept_state(t->ssl);
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    if (verify_host) {
        SSL_set_tlsext_host_name(t->ssl, verify_host);
        if (SSL_set1_host(t->ssl, verify_host) != 1)
            return -1;
    }
    SSL_do_handshake(t->ssl);           /* produces the ClientHello */
    return flush(c);
}

void px_tls_free(struct px_conn *c)
{
    if (!c->tls)
        return;
    SSL_free(c->tls->ssl);             /* frees both BIOs */
    free(c->tls->cbuf);
    free(c->tls);
    c->tls = NULL;
    c->io = &px_plain_transport;
}

static int tls_alloc(struct px_conn *c, uv_buf_t *buf)
{
    if (!c->tls->cbuf)
        c->tls->cbuf = malloc(TLS_CBUF_SIZE);
    if (!c->tls->cbuf)
        return -1;
    *buf = uv_buf_init((char *)c->tls->cbuf, TLS_CBUF_SIZE);
    return 0;
}

int px_tls_handshake_done(const struct px_conn *c)
{
    return c->tls && c->tls->handshake_done;
}

const char *px_tls_error(const struct px_conn *c)
{
    return c->tls && c->tls->error[0] ? c->tls->error : NULL;
}

const char *px_tls_version(const struct px_conn *c)
{
    return c->tls ? SSL_get_version(c->tls->ssl) : NULL;
}

/*
 * tls-server-end-point channel binding data (RFC 5929 section 4.1): the hash of the certificate this
 * side presented, with the hash function of the certificate's signature algorithm, SHA-256 when that
 * is MD5 or SHA-1. Fails for signature algorithms without a single digest (e.g. Ed25519), as
 * PostgreSQL does.
 */
int px_tls_endpoint_hash(const struct px_conn *c, uint8_t *out, size_t cap, size_t *outlen)
{
    X509 *cert = c->tls && c->tls->handshake_done ? SSL_get_certificate(c->tls->ssl) : NULL;
    int md_nid = NID_undef, pk_nid;
    const EVP_MD *md;
    unsigned int n = 0;
    uint8_t buf[EVP_MAX_MD_SIZE];

    if (!cert || !OBJ_find_sigid_algs(X509_get_signature_nid(cert), &md_nid, &pk_nid))
        return -1;
    if (md_nid == NID_md5 || md_nid == NID_sha1)
        md_nid = NID_sha256;
    md = EVP_get_digestbynid(md_nid);
    if (!md || X509_digest(cert, md, buf, &n) != 1 || n > cap)
        return -1;
    memcpy(out, buf, n);
    *outlen = n;
    return 0;
}

/*
 * Feeds n ciphertext bytes (in cbuf) to OpenSSL and moves the plaintext into c->in. Returns
 * PX_TLS_PLAINTEXT if plaintext arrived, PX_TLS_HANDSHAKE if the handshake just completed (and maybe
 * plaintext too), 0 if nothing for the caller, or -1 on a TLS error or a close by the peer.
 */
static int tls_on_read(struct px_conn *c, size_t n, const char **err)
{
    struct px_tls *t = c->tls;
    int ret = 0, r;

    *err = NULL;
    if (BIO_write(t->rbio, t->cbuf, (int)n) != (int)n)
        return -1;
    if (!t->handshake_done) {
        r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);

            if (flush(c) < 0)
                return -1;
            if (e == SSL_ERROR_WANT_READ)
                return 0;
            *err = tls_error();
            snprintf(t->error, sizeof(t->error), "%s", *err);
            return -1;
        }
        t->handshake_done = 1;
        ret = PX_TLS_HANDSHAKE;
    }
    for (;;) {
        if (px_buf_reserve(&c->in, 4096) < 0)
            return -1;
        r = SSL_read(t->ssl, c->in.data + c->in.len, (int)(c->in.cap - c->in.len));
        if (r > 0) {
            c->in.len += (uint32_t)r;
            ret |= PX_TLS_PLAINTEXT;
            continue;
        }
        r = SSL_get_error(t->ssl, r);
        if (r == SSL_ERROR_WANT_READ)
            break;
        if (r != SSL_ERROR_ZERO_RETURN)
            *err = tls_error();
        return (ret & PX_TLS_PLAINTEXT) ? ret : -1;
    }
    if (flush(c) < 0)
        return -1;
    return ret;
}

int px_tls_write(struct px_conn *c, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    if (SSL_write(c->tls->ssl, data, (int)n) != (int)n)
        return -1;
    return flush(c);
}


static void tls_alloc_read(struct px_conn *c, uv_buf_t *buf)
{
    if (tls_alloc(c, buf) < 0)
        *buf = uv_buf_init(NULL, 0);
}

/* Ciphertext arrived: UV_EPROTO, or PX_IO_* bits (0: nothing for the connection). */
static int tls_decode(struct px_conn *c, size_t n)
{
    const char *err;
    int r = tls_on_read(c, n, &err);

    if (r < 0) {
        if (err)
            px_info("%c-%llu TLS: %s", c->ops->tag, (unsigned long long)c->id, err);
        return UV_EPROTO;
    }
    return r;
}

/* Encrypts src's scanned bytes towards dst at once; a long queue behind them stops src's reads. */
static int tls_forward(struct px_conn *src, struct px_conn *dst)
{
    struct px_buf *b = &src->in;

    if (px_tls_write(dst, b->data + b->start, b->pos - b->start) < 0)
        return UV_EPROTO;
    b->start = b->pos;
    px_conn_backpressure(src, dst);
    return 0;
}

static const struct px_transport px_tls_transport = {
    .alloc = tls_alloc_read,
    .decode = tls_decode,
    .forward = tls_forward,
    .send = px_tls_write,
    .free = px_tls_free,
};
