#include "conn.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dispatch.h"
#include "log.h"
#include "reactor.h"
#include "tls.h"

#define READ_BUF_SIZE P11N_READ_BUF_SIZE

/* Output buffers larger than this are given back after each flush, so a burst of
 * big replies does not pin memory on a connection that then goes idle. */
#define OUT_KEEP_CAP 16384

struct write_req {
    uv_write_t req;
    struct p11n_conn *conn;
    struct p11n_buf data;
    size_t replies;
};

static void feed(struct p11n_conn *c, struct p11n_slice chunk);
static void try_close_idle(struct p11n_conn *c);
static void tls_read(struct p11n_conn *c, struct p11n_slice cipher);
static void send_bytes(struct p11n_conn *c, struct p11n_buf *bytes, size_t replies);
static void schedule_flush(struct p11n_conn *c);

struct p11n_conn *p11n_conn_new(struct p11n_reactor *r)
{
    struct p11n_conn *c = calloc(1, sizeof(*c));

    if (!c) return NULL;
    c->srv = r->srv;
    c->r = r;
    c->id = atomic_fetch_add(&r->srv->next_conn_id, 1) + 1;
    c->refs = 1;
    c->h.handle.data = c;
    p11n_frame_decoder_init(&c->dec, r->srv->cfg.max_frame);
    c->next = r->conns;
    if (r->conns) r->conns->prev = c;
    r->conns = c;
    return c;
}

static void conn_free(struct p11n_conn *c)
{
    p11n_frame_decoder_cleanup(&c->dec);
    p11n_buf_cleanup(&c->backlog);
    p11n_buf_cleanup(&c->out);
    p11n_tls_conn_free(c->tls);
    p11n_strvec_cleanup(&c->names);
    free(c);
}

void p11n_conn_unref(struct p11n_conn *c)
{
    if (--c->refs == 0) conn_free(c);
}

static void close_cb(uv_handle_t *h)
{
    p11n_conn_unref(h->data);
}

void p11n_conn_close(struct p11n_conn *c, const char *reason)
{
    struct p11n_reactor *r = c->r;

    if (c->closing) return;
    c->closing = 1;
    p11n_log(P11N_LOG_INFO, "conn=%llu peer=%s reason=%s inflight=%zu", (unsigned long long)c->id, c->peer,
             reason, c->inflight);
    if (c->prev)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = c->prev = NULL;
    if (!c->rejected) atomic_fetch_sub(&c->srv->n_conns, 1);
    atomic_fetch_sub(&r->load, 1);
    uv_close(&c->h.handle, close_cb);
    p11n_reactor_conns_gone(r);
}

int p11n_conn_has_input(struct p11n_conn *c)
{
    uv_os_fd_t fd;
    char byte;

    if (p11n_frame_pending(&c->dec)) return 1;
    return uv_fileno(&c->h.handle, &fd) == 0 && recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct p11n_conn *c = h->data;

    (void)suggested;
    buf->base = (char *)c->r->read_buf;
    buf->len = sizeof(c->r->read_buf);
}

static void pause_reading(struct p11n_conn *c)
{
    if (c->reading) uv_read_stop(&c->h.stream);
    c->reading = 0;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct p11n_conn *c = s->data;

    if (nread > 0) {
        if (c->tls)
            tls_read(c, p11n_slice_of(buf->base, (size_t)nread));
        else
            feed(c, p11n_slice_of(buf->base, (size_t)nread));
        /* The bytes may have held PINs; frames were decoded and copied by now. */
        OPENSSL_cleanse(buf->base, (size_t)nread);
        if (!c->closing)
            c->partial_since_ms =
                p11n_frame_pending(&c->dec) || (c->tls && !p11n_tls_ready(c->tls)) ? uv_now(&c->r->loop) : 0;
        return;
    }
    if (nread == 0) return; /* EAGAIN */
    if (nread == UV_EOF) {
        /* The peer may have only shut down its sending side: answer what was read,
         * then close. */
        c->eof = 1;
        pause_reading(c);
        try_close_idle(c);
        return;
    }
    p11n_conn_close(c, uv_err_name((int)nread));
}

/* Parses frames out of chunk and dispatches them, until chunk is used up, the conn
 * must close, or max_inflight is reached; in the last case the rest of chunk goes
 * to the backlog and reading pauses. */
static void feed(struct p11n_conn *c, struct p11n_slice chunk)
{
    struct p11n_slice body;
    p11n_rc why = P11N_OK;

    for (;;) {
        if (c->closing || c->close_when_flushed) return;
        if (c->inflight >= c->srv->cfg.max_inflight) {
            if (chunk.len && p11n_buf_append(&c->backlog, chunk, SIZE_MAX) != P11N_OK) {
                p11n_conn_close(c, "nomem");
                return;
            }
            if (c->reading)
                p11n_log(P11N_LOG_DEBUG, "conn=%llu paused inflight=%zu backlog=%zu", (unsigned long long)c->id,
                         c->inflight, c->backlog.len);
            pause_reading(c);
            return;
        }
        switch (p11n_frame_next(&c->dec, &chunk, &body, &why)) {
        case P11N_PARSE_NEED_MORE:
            return;
        case P11N_PARSE_ERROR:
            p11n_log(P11N_LOG_WARN, "conn=%llu frame refused rc=%s", (unsigned long long)c->id, p11n_rc_name(why));
            p11n_conn_fail(c, why, why == P11N_E_TOO_LARGE ? "frame larger than --max-frame" : "out of memory");
            return;
        case P11N_PARSE_FRAME:
            p11n_dispatch_frame(c, body);
            break;
        }
    }
}

/* Resumes a conn paused by backpressure: first the bytes it already read, then the
 * socket. */
static void resume_reading(struct p11n_conn *c)
{
    struct p11n_buf pending;

    if (c->reading || c->closing || c->eof || c->close_when_flushed) return;
    if (c->inflight >= c->srv->cfg.max_inflight) return;
    if (c->backlog.len) {
        pending = c->backlog;
        memset(&c->backlog, 0, sizeof(c->backlog));
        feed(c, p11n_buf_slice(&pending));
        p11n_buf_cleanup(&pending);
        if (c->closing || c->inflight >= c->srv->cfg.max_inflight) return;
    }
    if (c->tls && p11n_tls_ready(c->tls)) {
        /* Records OpenSSL decrypted-ahead while the conn was paused. */
        tls_read(c, p11n_slice_of(NULL, 0));
        if (c->closing || c->inflight >= c->srv->cfg.max_inflight) return;
    }
    if (c->r->draining && c->inflight == 0) return; /* try_close_idle will close it */
    if (uv_read_start(&c->h.stream, alloc_cb, read_cb) != 0) {
        p11n_conn_close(c, "read_start");
        return;
    }
    c->reading = 1;
    if (p11n_frame_pending(&c->dec)) c->partial_since_ms = uv_now(&c->r->loop);
}

/* Closes c when nothing more is owed to or expected from it. */
static void try_close_idle(struct p11n_conn *c)
{
    if (c->closing || c->inflight > 0) return;
    if (c->close_when_flushed) p11n_conn_close(c, "error_sent");
    else if (c->eof) p11n_conn_close(c, "eof");
    else if (c->r->draining) p11n_conn_close(c, "drain");
}

static void replies_written(struct p11n_conn *c, size_t n)
{
    c->inflight -= n;
    resume_reading(c);
    try_close_idle(c);
}

p11n_rc p11n_conn_start(struct p11n_conn *c)
{
    if (c->rejected) {
        p11n_conn_fail(c, P11N_E_BUSY, "server at its connection limit");
        /* Under TLS the BUSY frame can only go out after a handshake. */
        if (c->tls && uv_read_start(&c->h.stream, alloc_cb, read_cb) == 0) c->reading = 1;
        return P11N_OK;
    }
    p11n_log(P11N_LOG_DEBUG, "conn=%llu peer=%s open reactor=%u conns=%zu", (unsigned long long)c->id, c->peer,
             c->r->index, atomic_load(&c->srv->n_conns));
    resume_reading(c);
    return c->closing ? P11N_E_IO : P11N_OK;
}

static void schedule_flush(struct p11n_conn *c)
{
    if (c->on_flush_list) return;
    c->on_flush_list = 1;
    c->refs++; /* the flush list holds a reference until flush_all has run */
    c->flush_next = c->r->flush_list;
    c->r->flush_list = c;
}

void p11n_conn_reply(struct p11n_conn *c, const p11n_msg *reply)
{
    if (c->closing) return;
    if (p11n_msg_append_frame(reply, &c->out) != P11N_OK) {
        p11n_conn_close(c, "nomem");
        return;
    }
    c->out_replies++;
    schedule_flush(c);
}

void p11n_conn_fail(struct p11n_conn *c, p11n_rc code, const char *message)
{
    P11net__ProtoMessage reply = P11NET__PROTO_MESSAGE__INIT;
    char *data[1] = {(char *)message};

    reply.err = 1;
    reply.code = p11n_dispatch_code(code);
    reply.n_data = 1;
    reply.data = data;
    if (!c->tls || p11n_tls_ready(c->tls)) pause_reading(c);
    c->close_when_flushed = 1;
    c->inflight++; /* this reply answers no request, but is accounted like one */
    p11n_conn_reply(c, &reply);
}

static void write_cb(uv_write_t *w, int status)
{
    struct write_req *wr = (struct write_req *)w;
    struct p11n_conn *c = wr->conn;

    p11n_buf_cleanup(&wr->data);
    if (status < 0)
        p11n_conn_close(c, uv_err_name(status));
    else if (!c->closing)
        replies_written(c, wr->replies);
    free(wr);
    p11n_conn_unref(c);
}

/* Writes bytes (which answer `replies` requests) to the socket: synchronously when
 * the socket takes them all, else through a write request that takes over the
 * storage of bytes (bytes is left empty either way). */
static void send_bytes(struct p11n_conn *c, struct p11n_buf *bytes, size_t replies)
{
    uv_buf_t b;
    struct write_req *wr;
    int n;

    if (c->closing || bytes->len == 0) return;
    b = uv_buf_init((char *)bytes->data, (unsigned)bytes->len);
    n = uv_try_write(&c->h.stream, &b, 1);
    if (n == (int)bytes->len) {
        bytes->len = 0;
        if (bytes->cap > OUT_KEEP_CAP) p11n_buf_cleanup(bytes);
        if (replies) replies_written(c, replies);
        return;
    }
    if (n < 0 && n != UV_EAGAIN && n != UV_ENOSYS) {
        p11n_conn_close(c, uv_err_name(n));
        return;
    }
    if (n > 0) p11n_buf_consume(bytes, (size_t)n);
    wr = calloc(1, sizeof(*wr));
    if (!wr) {
        p11n_conn_close(c, "nomem");
        return;
    }
    wr->conn = c;
    wr->data = *bytes;
    wr->replies = replies;
    memset(bytes, 0, sizeof(*bytes));
    c->refs++;
    b = uv_buf_init((char *)wr->data.data, (unsigned)wr->data.len);
    if ((n = uv_write(&wr->req, &c->h.stream, &b, 1, write_cb)) != 0) {
        c->refs--;
        p11n_buf_cleanup(&wr->data);
        free(wr);
        p11n_conn_close(c, uv_err_name(n));
    }
}

/* Sends the replies queued in c->out, through TLS when the conn has it. */
static void flush(struct p11n_conn *c)
{
    struct p11n_buf cipher = {0};
    size_t replies = c->out_replies;

    if (c->closing || c->out.len == 0) return;
    if (!c->tls) {
        c->out_replies = 0;
        send_bytes(c, &c->out, replies);
        return;
    }
    if (!p11n_tls_ready(c->tls)) return; /* tls_read flushes once the handshake is done */
    if (p11n_tls_write(c->tls, p11n_buf_slice(&c->out)) != P11N_OK ||
        p11n_tls_take_output(c->tls, &cipher) != P11N_OK) {
        p11n_log(P11N_LOG_WARN, "conn=%llu tls_error=\"%s\"", (unsigned long long)c->id, p11n_tls_error(c->tls));
        p11n_conn_close(c, "tls_error");
        return;
    }
    c->out.len = 0;
    c->out_replies = 0;
    if (c->out.cap > OUT_KEEP_CAP) p11n_buf_cleanup(&c->out);
    send_bytes(c, &cipher, replies);
    p11n_buf_cleanup(&cipher);
}

/* TLS input: hands what arrived (possibly nothing, to drain records OpenSSL already
 * holds) to TLS, sends what the handshake wants sent, and feeds the plaintext to
 * the frame parser until TLS has no more or backpressure pauses the conn. */
static void tls_read(struct p11n_conn *c, struct p11n_slice cipher)
{
    /* Plaintext is decrypted in steps of one read buffer; it is parsed at once. */
    struct p11n_buf *plain = &c->r->tls_plain;
    struct p11n_buf out = {0};
    int was_ready = p11n_tls_ready(c->tls);
    p11n_rc rc = p11n_tls_feed(c->tls, cipher);

    while (rc == P11N_OK) {
        plain->len = 0;
        rc = p11n_tls_read(c->tls, plain, READ_BUF_SIZE);
        if (!was_ready && p11n_tls_ready(c->tls)) {
            was_ready = 1;
            /* The identity is the verified certificate's: CN first, then SANs. */
            if (p11n_tls_peer_names(c->tls, &c->names) == P11N_OK && c->names.len)
                snprintf(c->identity, sizeof(c->identity), "%s", c->names.items[0]);
            p11n_log(P11N_LOG_DEBUG, "conn=%llu tls_ready identity=\"%s\"", (unsigned long long)c->id, c->identity);
            if (c->out.len) schedule_flush(c); /* e.g. the BUSY of a rejected conn */
        }
        if (plain->len) feed(c, p11n_buf_slice(plain));
        OPENSSL_cleanse(plain->data, plain->len);
        if (plain->len < READ_BUF_SIZE || c->closing || c->inflight >= c->srv->cfg.max_inflight) break;
    }
    if (p11n_tls_take_output(c->tls, &out) == P11N_OK) send_bytes(c, &out, 0);
    p11n_buf_cleanup(&out);
    if (rc != P11N_OK && !c->closing) {
        if (rc == P11N_E_TLS)
            p11n_log(P11N_LOG_WARN, "conn=%llu peer=%s tls_error=\"%s\"", (unsigned long long)c->id, c->peer,
                     p11n_tls_error(c->tls));
        p11n_conn_close(c, rc == P11N_E_CLOSED ? "tls_close_notify" : "tls_error");
    }
}

void p11n_conn_flush_all(struct p11n_reactor *r)
{
    struct p11n_conn *c, *next;

    c = r->flush_list;
    r->flush_list = NULL;
    for (; c; c = next) {
        next = c->flush_next;
        c->flush_next = NULL;
        c->on_flush_list = 0;
        flush(c);
        p11n_conn_unref(c);
    }
}

void p11n_conn_sweep_idle(struct p11n_reactor *r)
{
    uint64_t now = uv_now(&r->loop), limit = r->srv->cfg.idle_timeout_s * 1000;
    struct p11n_conn *c, *next;

    for (c = r->conns; c; c = next) {
        next = c->next;
        /* A paused conn is waiting on us, not on its client. */
        if (c->reading && c->partial_since_ms && now - c->partial_since_ms >= limit)
            p11n_conn_close(c, "idle_partial_frame");
    }
}

void p11n_conn_drain(struct p11n_reactor *r)
{
    struct p11n_conn *c, *next;

    for (c = r->conns; c; c = next) {
        next = c->next;
        try_close_idle(c);
    }
}
