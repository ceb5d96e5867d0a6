/* A client connection (a libuv handle), owned by the loop thread of its reactor.
 *
 * Life cycle. Accepted by listener.c and adopted by a reactor (reactor.h); reads
 * frames and hands each to dispatch.c; queues replies (p11n_conn_reply) that are
 * written once per loop turn (p11n_conn_flush_all, from the reactor's check handle). A conn is freed only when
 * its handle's close callback has run AND no request still points at it (refs == 0),
 * so a worker that finishes after the client left finds a valid conn marked closing
 * and just drops its reply.
 *
 * Backpressure. `inflight` counts requests read and not yet written back. At
 * max_inflight the conn stops reading (uv_read_stop), keeping any unparsed bytes of
 * the last read in `backlog`; it resumes from the write callback that brings
 * inflight down. Both the input and the output side thus stay bounded. */
#ifndef P11N_CONN_H
#define P11N_CONN_H

#include <uv.h>

#include "buf.h"
#include "frame.h"
#include "proto.h"
#include "reactor.h"
#include "server.h"
#include "strvec.h"

struct p11n_conn {
    union p11n_stream h;
    struct p11n_server *srv;
    struct p11n_reactor *r;          /* whose loop thread serves it, for life */
    struct p11n_conn *next, *prev;   /* r->conns */
    struct p11n_conn *flush_next;    /* on the flush list while out has bytes */
    uint64_t id;
    char peer[64];                   /* address for logs and, without TLS, client identity */
    char identity[128];              /* who the client is for access decisions */

    struct p11n_frame_decoder dec;
    struct p11n_buf backlog;         /* unparsed bytes kept while reading is paused */
    struct p11n_buf out;             /* replies queued, not yet handed to the socket */
    size_t out_replies;              /* replies in out */
    size_t inflight;                 /* requests read, reply not yet written */
    size_t refs;                     /* 1 for the open handle + 1 per request in the pool */
    uint64_t partial_since_ms;       /* loop time of the last byte while a frame is partial; 0 if none */
    unsigned reading : 1;            /* uv_read_start is in effect */
    unsigned eof : 1;                /* peer finished sending */
    unsigned closing : 1;            /* uv_close called or about to be */
    unsigned close_when_flushed : 1; /* a fatal error reply is queued */
    unsigned on_flush_list : 1;
    unsigned rejected : 1;           /* over --max-conns: one BUSY frame, then close */
    unsigned pipelines : 1;          /* sent a request before the last was answered: never inline (reactor.h) */
    struct p11n_tls_conn *tls;       /* NULL for plaintext */
    struct p11n_strvec names;        /* verified client certificate names (CN, SANs) */
    const struct p11n_grant *grant;  /* ACL rule for this client (access.h), set with the first request */
    unsigned grant_set : 1;          /* grant has been looked up (after the handshake) */
};

/* Starts serving an opened stream. `rejected` conns only get a BUSY reply. */
P11N_MUST_USE p11n_rc p11n_conn_start(struct p11n_conn *c);
/* Allocates a conn on r and links it into r->conns; the caller initializes and
 * opens c->h at once (p11n_conn_close may then be called at any time). */
struct p11n_conn *p11n_conn_new(struct p11n_reactor *r);
/* Queues one reply frame; counts it against inflight when the frame answers a
 * request that was read. */
void p11n_conn_reply(struct p11n_conn *c, const p11n_msg *reply);
/* Queues an error reply and closes the connection once it has been written. */
void p11n_conn_fail(struct p11n_conn *c, p11n_rc code, const char *message);
/* Closes the connection now (pending replies are dropped). */
void p11n_conn_close(struct p11n_conn *c, const char *reason);
/* Whether c's client has sent bytes that are not yet parsed into a request: a
 * partial frame in the decoder, or unread bytes in the socket (one non-blocking
 * peek). */
int p11n_conn_has_input(struct p11n_conn *c);
/* Drops one request reference; frees c when it was the last. */
void p11n_conn_unref(struct p11n_conn *c);
/* Writes every queued reply; called once per loop turn. */
void p11n_conn_flush_all(struct p11n_reactor *r);
/* Closes connections whose partial frame has waited longer than idle_timeout_s. */
void p11n_conn_sweep_idle(struct p11n_reactor *r);
/* Drain: closes each conn as soon as it has nothing in flight. */
void p11n_conn_drain(struct p11n_reactor *r);

#endif
