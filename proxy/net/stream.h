/*
 * proxy/net/ — the stream layer: one connection's socket, its input buffer, forwarding to a peer
 * with backpressure, and plaintext or TLS behind one transport table. A stream knows nothing of what
 * owns it: the owner (a client, a server connection) hands it a px_stream_ops at creation and the
 * stream calls only those. Socket chores (listen, connect, peer address) are in proxy/net/sock.h.
 */
#ifndef PGLANE_PROXY_NET_STREAM_H
#define PGLANE_PROXY_NET_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PX_MUSTCHECK __attribute__((warn_unused_result))

struct proxy;

/* The libuv handle of a socket, whichever kind it is (the one declaration of this union). */
union px_handle {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
};

/* ---- per-connection input buffer ---- */
/*
 * Bytes read from one socket. data[start, pos) are scanned and ready to forward to the peer,
 * data[pos, len) are not scanned yet (a partial header or a message that must be read whole).
 * `remain` counts body bytes of the message being streamed that have not arrived yet. The storage is
 * taken lazily when the socket becomes readable and given back when empty, so that idle connections
 * hold no buffer. Owner: the connection that reads into it.
 */
#define PX_BUF_SIZE 16384
#define PX_BUF_MAX (64u * 1024 * 1024)  /* the largest message pglane ever holds whole */
#define PX_READ_MIN 2048                 /* room a read gets at least (the buffer is compacted for it) */
#define PX_WAIT_BUF_MAX (64u * 1024)     /* a queued client's unread bytes before its reads stop */

struct px_buf {
    uint8_t *data;
    uint32_t cap, start, pos, len;
    uint32_t remain;
};

int px_buf_reserve(struct px_buf *b, uint32_t need) PX_MUSTCHECK;  /* room for `need` more bytes */
void px_buf_compact(struct px_buf *b);
void px_buf_release(struct px_buf *b);   /* frees storage if empty */
void px_buf_pool_drain(void);

/* ---- streams ---- */
struct px_conn;

/* What a stream tells its owner. Every member but on_handshake is required. */
struct px_stream_ops {
    char tag;                                        /* log prefix of the connection id: 'C', 'S' */
    void (*on_read)(struct px_conn *c);              /* new bytes in c->in */
    void (*on_eof)(struct px_conn *c, int status);   /* the peer closed or the socket failed (reads stopped) */
    void (*on_sent)(struct px_conn *c);              /* c's forward completed, or c's reads were unblocked */
    void (*on_closed)(struct px_conn *c);            /* the handle is closed and no write is in flight: free */
    struct px_conn *(*peer)(struct px_conn *c);      /* the stream whose bytes c's writes carry, or NULL */
    void (*on_handshake)(struct px_conn *c);         /* the TLS handshake completed (NULL: nothing to do) */
};

/* How bytes cross the socket: plaintext (proxy/net/stream.c) or TLS (proxy/net/tls.c). */
#define PX_IO_DATA 1          /* decode: new bytes for the owner in c->in */
#define PX_IO_HANDSHAKE 2     /* decode: the TLS handshake just completed */
struct px_transport {
    /* Room for the next read from the socket; a zero-length buffer on failure. */
    void (*alloc)(struct px_conn *c, uv_buf_t *buf);
    /* n bytes arrived in the buffer alloc gave: PX_IO_* bits, or a negative libuv error. */
    int (*decode)(struct px_conn *c, size_t n);
    /* Writes src->in.data[start, pos) to dst (dst's transport). 0, or a negative libuv error. */
    int (*forward)(struct px_conn *src, struct px_conn *dst);
    /* Writes a copy of data to c. 0 or -1. */
    int (*send)(struct px_conn *c, const void *data, size_t n);
    void (*free)(struct px_conn *c);   /* the transport's own state, when the stream is freed */
};
extern const struct px_transport px_plain_transport;

struct px_conn {
    union px_handle h;
    struct proxy *px;
    const struct px_stream_ops *ops;   /* the owner's callbacks */
    const struct px_transport *io;     /* plaintext until px_tls_start */
    uint64_t id;
    uint8_t reading;      /* uv_read_start is in force */
    uint8_t writing;      /* wreq is in flight, carrying data[start, pos) of `in` */
    uint8_t closing;      /* uv_close called */
    uint8_t eof;          /* the peer closed its side */
    uint8_t handle_closed; /* close_cb ran: free once no write of ours is in flight */
    uint8_t blocked;      /* reads stopped because the peer's write queue is above PX_QUEUE_HIGH */
    uint8_t lingering;    /* px_conn_linger: our side is shut down, the peer's EOF is awaited */
    struct px_tls *tls;   /* NULL for plaintext */
    uint32_t wend;        /* end offset in `in` of the forward in flight */
    struct px_buf in;
    uv_write_t *wreq;     /* only while a forward waits for a full socket (rare: kept off idle memory) */
};

/* Sets up a stream owned by ops (the handle itself is initialised by the caller, proxy/net/sock.h);
 * ids count up from 1 across all streams of the process. */
void px_conn_init(struct proxy *px, struct px_conn *c, const struct px_stream_ops *ops);
void px_conn_read_start(struct px_conn *c);
void px_conn_close(struct px_conn *c);   /* idempotent; memory is freed after close_cb */
void px_conn_read_stop(struct px_conn *c);
/* Closes once the peer has closed its side: ours is shut down (after queued writes), what the peer
 * still sends is discarded, and its EOF (or an error) closes the handle. A server connection closed so
 * gives its backend time to end before the connection counts as gone. 0, or -1 (TLS, already closing,
 * the peer already gone, not connected: call px_conn_close). px_conn_close ends the wait early. */
int px_conn_linger(struct px_conn *c);
/* Shuts the socket down for writing once queued writes are out; reading goes on. */
int px_conn_shutdown(struct px_conn *c);
/* Sends a copy of bytes (for pglane's own messages; never the forwarding path). 0 or -1. */
int px_conn_send_copy(struct px_conn *c, const void *data, size_t n);
/* Sends a proto_buf's bytes as an error and reports failure through the connection. */
void px_conn_send_error(struct px_conn *c, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Forwards src->in.data[start, pos) to dst: one non-blocking send, and a uv_write of the rest with src's
 * reads stopped until it completes. Returns 0, or a negative libuv error.
 */
int px_forward(struct px_conn *src, struct px_conn *dst);
/*
 * Bytes queued towards a peer (TLS records, or copies such as renamed Binds) above PX_QUEUE_HIGH
 * stop src's reads (src->blocked) until the queue drains below half of it: a client streaming a
 * large message never piles it up in pglane's memory.
 */
#define PX_QUEUE_HIGH (512u * 1024)
void px_conn_backpressure(struct px_conn *src, struct px_conn *dst);
void px_conn_unblock_peer(uv_stream_t *dst);   /* after a write of dst completed */
/* The completion of a uv_write whose request was malloc'ed with its bytes after it (a copy, a TLS
 * record): frees it and resumes the peer a full queue stopped. */
void px_conn_write_done(uv_write_t *req, int status);
void px_conn_unblock(struct px_conn *c);        /* resumes c now (its peer went away) */

#endif
