#include "uvconn.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

/* One read buffer per thread, for the loop it runs: read_cb consumes every byte
 * before the next alloc_cb (the decoder copies split frames), so connections can
 * share it instead of holding 64 KiB each. Per thread, because `p11net bench` runs
 * a loop in each of its threads. */
static _Thread_local uint8_t read_buf[65536];

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h, (void)hint;
    buf->base = (char *)read_buf;
    buf->len = sizeof(read_buf);
}

static void closed_cb(uv_handle_t *h)
{
    struct p11n_uvconn *c = h->data;
    c->cbs->on_close(c, c->close_why);
    p11n_frame_decoder_cleanup(&c->dec);
    p11n_buf_cleanup(&c->out);
    p11n_buf_cleanup(&c->writing);
    p11n_tls_conn_free(c->tls);
    p11n_buf_cleanup(&c->plain);
    free(c);
}

const char *p11n_uvconn_why(const struct p11n_uvconn *c, p11n_rc why)
{
    return why == P11N_E_TLS && c->error[0] ? c->error : p11n_rc_name(why);
}

static void tls_failed(struct p11n_uvconn *c)
{
    snprintf(c->error, sizeof(c->error), "TLS: %s", p11n_tls_error(c->tls));
    p11n_uvconn_close(c, P11N_E_TLS);
}

void p11n_uvconn_close(struct p11n_uvconn *c, p11n_rc why)
{
    if (c->closing) return;
    c->closing = 1;
    c->close_why = why;
    uv_close(&c->u.h, closed_cb);
}

static void flush(struct p11n_uvconn *c);

static void write_cb(uv_write_t *w, int status)
{
    struct p11n_uvconn *c = w->data;
    c->write_busy = 0;
    c->writing.len = 0; /* kept (not freed) for reuse: the steady state allocates nothing */
    if (status < 0) {
        p11n_uvconn_close(c, status == UV_ECANCELED ? c->close_why : P11N_E_CLOSED);
        return;
    }
    if (!c->closing) flush(c);
}

/* Hands the queued frames to libuv unless a write is already in flight; the
 * next one goes from write_cb, so many frames of one loop turn share a write. */
static void flush(struct p11n_uvconn *c)
{
    struct p11n_buf tmp;
    uv_buf_t b;

    if (c->write_busy || c->closing) return;
    if (c->tls) {
        /* Handshake records, or the queued frames once it is done, encrypted. */
        c->writing.len = 0;
        if (p11n_tls_ready(c->tls) && c->out.len) {
            if (p11n_tls_write(c->tls, p11n_buf_slice(&c->out)) != P11N_OK) {
                tls_failed(c);
                return;
            }
            OPENSSL_cleanse(c->out.data, c->out.len); /* frames may hold PINs */
            c->out.len = 0;
        }
        if (p11n_tls_take_output(c->tls, &c->writing) != P11N_OK) {
            p11n_uvconn_close(c, P11N_E_NOMEM);
            return;
        }
        if (c->writing.len == 0) return;
    } else {
        if (c->out.len == 0) return;
        tmp = c->writing, c->writing = c->out, c->out = tmp;
    }
    b = uv_buf_init((char *)c->writing.data, (unsigned)c->writing.len);
    c->write_req.data = c;
    if (uv_write(&c->write_req, &c->u.s, &b, 1, write_cb) != 0) {
        p11n_uvconn_close(c, P11N_E_CLOSED);
        return;
    }
    c->write_busy = 1;
}

p11n_rc p11n_uvconn_send(struct p11n_uvconn *c, struct p11n_slice frame)
{
    P11N_ENSURE(!c->closing, P11N_E_CLOSED);
    P11N_TRY(p11n_buf_append(&c->out, frame, SIZE_MAX));
    flush(c);
    return P11N_OK;
}

/* Decodes the frames in chunk and hands each to on_reply. */
static void parse(struct p11n_uvconn *c, struct p11n_slice chunk)
{
    struct p11n_slice body;
    p11n_rc why = P11N_OK;
    enum p11n_parse r = P11N_PARSE_NEED_MORE;

    while (!c->closing && (r = p11n_frame_next(&c->dec, &chunk, &body, &why)) == P11N_PARSE_FRAME) {
        p11n_msg *msg = NULL;
        if (p11n_msg_decode(body, &msg) != P11N_OK) {
            p11n_uvconn_close(c, P11N_E_PROTOCOL);
            return;
        }
        c->cbs->on_reply(c, msg);
    }
    if (!c->closing && r == P11N_PARSE_ERROR) p11n_uvconn_close(c, P11N_E_PROTOCOL);
}

/* TLS input: advances the handshake (on_connect once it completes), parses
 * decrypted frames, and sends whatever TLS wants sent. */
static void tls_input(struct p11n_uvconn *c, struct p11n_slice cipher)
{
    int was_ready = p11n_tls_ready(c->tls);
    p11n_rc rc = p11n_tls_feed(c->tls, cipher);

    while (rc == P11N_OK && !c->closing) {
        c->plain.len = 0;
        rc = p11n_tls_read(c->tls, &c->plain, sizeof(read_buf));
        if (!was_ready && p11n_tls_ready(c->tls)) {
            was_ready = 1;
            c->cbs->on_connect(c);
        }
        if (c->plain.len) parse(c, p11n_buf_slice(&c->plain));
        OPENSSL_cleanse(c->plain.data, c->plain.len);
        if (c->plain.len < sizeof(read_buf)) break;
    }
    if (c->closing) return;
    if (rc == P11N_E_CLOSED) {
        p11n_uvconn_close(c, P11N_E_CLOSED);
        return;
    }
    if (rc != P11N_OK) {
        tls_failed(c);
        return;
    }
    flush(c);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct p11n_uvconn *c = s->data;

    if (n < 0) {
        p11n_uvconn_close(c, n == UV_EOF ? P11N_E_CLOSED : P11N_E_IO);
        return;
    }
    if (c->tls)
        tls_input(c, p11n_slice_of(buf->base, (size_t)n));
    else
        parse(c, p11n_slice_of(buf->base, (size_t)n));
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct p11n_uvconn *c = req->data;
    if (c->closing) return;
    if (status < 0 || uv_read_start(&c->u.s, alloc_cb, read_cb) != 0) {
        p11n_uvconn_close(c, P11N_E_IO);
        return;
    }
    if (c->tls) {
        tls_input(c, p11n_slice_of(NULL, 0)); /* sends the ClientHello */
        return;
    }
    c->cbs->on_connect(c);
    flush(c);
}

p11n_rc p11n_uvconn_open(uv_loop_t *loop, const struct p11n_addr *addr, size_t max_frame,
                         const struct p11n_uvconn_cbs *cbs, void *data, struct p11n_uvconn **out)
{
    return p11n_uvconn_open_tls(loop, addr, max_frame, NULL, cbs, data, out);
}

p11n_rc p11n_uvconn_open_tls(uv_loop_t *loop, const struct p11n_addr *addr, size_t max_frame,
                             const struct p11n_uvconn_tls *tls, const struct p11n_uvconn_cbs *cbs, void *data,
                             struct p11n_uvconn **out)
{
    struct p11n_uvconn *c = calloc(1, sizeof(*c));
    int rc;

    P11N_ENSURE(c != NULL, P11N_E_NOMEM);
    if (tls && p11n_tls_conn_new(tls->ctx, tls->servername, &c->tls) != P11N_OK) {
        free(c);
        return P11N_E_TLS;
    }
    c->cbs = cbs;
    c->data = data;
    p11n_frame_decoder_init(&c->dec, max_frame);
    c->connect_req.data = c;
    if (addr->ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&addr->ss;
        rc = uv_pipe_init(loop, &c->u.pipe, 0);
        c->u.h.data = c;
        if (rc == 0) uv_pipe_connect(&c->connect_req, &c->u.pipe, un->sun_path, connect_cb);
    } else {
        rc = uv_tcp_init(loop, &c->u.tcp);
        c->u.h.data = c;
        if (rc == 0) {
            uv_tcp_nodelay(&c->u.tcp, 1);
            /* A refused connect after init still owns a handle: report it
             * through on_close like any other failure. */
            if (uv_tcp_connect(&c->connect_req, &c->u.tcp, (const struct sockaddr *)&addr->ss, connect_cb) != 0)
                p11n_uvconn_close(c, P11N_E_IO);
        }
    }
    if (rc != 0) { /* init failed: there is no handle to close */
        p11n_frame_decoder_cleanup(&c->dec);
        p11n_tls_conn_free(c->tls);
        free(c);
        return P11N_E_IO;
    }
    *out = c;
    return P11N_OK;
}
