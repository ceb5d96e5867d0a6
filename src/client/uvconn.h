/* One p11net connection driven by a libuv loop: the engine under `run` and
 * `bench`, where one thread drives hundreds of connections (the client shares
 * two cores with the server, so a thread per connection would steal its CPU).
 *
 * Runs on the loop thread only. Frames to send are copied into an output buffer
 * that is written once per loop turn (Redis-style), so callers never keep a
 * buffer alive for libuv. Replies are decoded with src/common's frame decoder and
 * handed to on_reply one by one.
 *
 * TLS (optional) goes through src/common/tls.c's memory-BIO engine: frames queue
 * in plaintext until the handshake is done, then each flush encrypts what is
 * queued; on_connect comes once the handshake has completed. */
#ifndef P11N_CLIENT_UVCONN_H
#define P11N_CLIENT_UVCONN_H

#include <uv.h>

#include "addr.h"
#include "frame.h"
#include "proto.h"
#include "tls.h"

struct p11n_uvconn;

/* TLS for p11n_uvconn_open: the context (shared by many connections, owned by
 * the caller, alive until every on_close) and the name the server must carry. */
struct p11n_uvconn_tls {
    struct p11n_tls_ctx *ctx;
    const char *servername;
};

struct p11n_uvconn_cbs {
    /* The connection is established. A failed connect calls on_close only. */
    void (*on_connect)(struct p11n_uvconn *c);
    /* One reply; the callee owns msg (free with p11n_msg_free). */
    void (*on_reply)(struct p11n_uvconn *c, p11n_msg *msg);
    /* The connection is gone (EOF, error, or p11n_uvconn_close); why says which
     * (P11N_OK for a local close). Called once; c is freed right after it returns. */
    void (*on_close)(struct p11n_uvconn *c, p11n_rc why);
};

struct p11n_uvconn {
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    uv_connect_t connect_req;
    uv_write_t write_req;
    const struct p11n_uvconn_cbs *cbs;
    void *data;                 /* the caller's */
    struct p11n_frame_decoder dec;
    struct p11n_buf out;        /* frames queued for the next write */
    struct p11n_buf writing;    /* frames handed to libuv, alive until write_cb */
    int write_busy;
    int closing;
    p11n_rc close_why;
    struct p11n_tls_conn *tls;  /* NULL for plaintext */
    struct p11n_buf plain;      /* decrypted bytes, parsed at once */
    char error[160];            /* why TLS failed (close_why P11N_E_TLS) */
};

/* Starts connecting to addr on loop. On P11N_OK *out lives until on_close,
 * which always comes (with P11N_E_IO when the connect fails). */
P11N_MUST_USE p11n_rc p11n_uvconn_open(uv_loop_t *loop, const struct p11n_addr *addr, size_t max_frame,
                                       const struct p11n_uvconn_cbs *cbs, void *data, struct p11n_uvconn **out);
/* The same over TLS (tls NULL: plaintext). */
P11N_MUST_USE p11n_rc p11n_uvconn_open_tls(uv_loop_t *loop, const struct p11n_addr *addr, size_t max_frame,
                                           const struct p11n_uvconn_tls *tls, const struct p11n_uvconn_cbs *cbs,
                                           void *data, struct p11n_uvconn **out);
/* A short reason for a close with why P11N_E_TLS (else p11n_rc_name(why)). */
const char *p11n_uvconn_why(const struct p11n_uvconn *c, p11n_rc why);
/* Queues one encoded frame (copied) for sending. P11N_E_CLOSED once closing. */
P11N_MUST_USE p11n_rc p11n_uvconn_send(struct p11n_uvconn *c, struct p11n_slice frame);
/* Closes the connection; on_close(c, why) follows from the loop. Idempotent. */
void p11n_uvconn_close(struct p11n_uvconn *c, p11n_rc why);

#endif
