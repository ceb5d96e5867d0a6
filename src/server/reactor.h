/* A reactor: one event-loop thread that owns a share of the connections.
 *
 * Why several. With one loop thread, every request crossed two threads on its way
 * (loop -> worker -> loop), and on a small machine those wake-ups queued behind the
 * signing threads: RSA-2048 from 2 connections on 2 cores ran at ~70% of p11-kit,
 * whose process per connection crosses no thread at all. So p11netd runs
 * --io-threads reactors (default: one per core), each on a thread of its own. The
 * main loop only accepts (and handles signals): it hands each new connection to
 * the reactor with the fewest, and the connection stays there for life.
 *
 * Running requests. The requests a reactor reads in one loop turn are started at the
 * end of that turn (the `turn` check handle). The reactor runs a request itself (no
 * hand-off in either direction: the p11-kit-like path) only when nobody can be
 * kept waiting by it: the request is the only one read, its connection is the
 * reactor's only one and has never pipelined, none of the reactor's requests is in
 * the worker pool, the HSM has fewer than --workers requests outstanding, and HSM
 * calls have been quick (under 5 ms on average: the hand-off saved is ~0.1 ms,
 * which matters only next to a quick call). Otherwise they all go to the libuv
 * pool (--workers), so pipelined requests and many connections still use every
 * core, no more threads than --workers call the HSM at once, and a slow or hung HSM
 * call never holds up another connection (new ones go to another reactor).
 *
 * Pipelining. While its reactor is in a call, the connection's next requests are
 * not read, so a client that pipelines would have them run one after another
 * instead of side by side (RSA, 1 connection, 2 in flight: 700/s against 1,000/s
 * in the pool). So a connection is marked `pipelines`, for life, as soon as the
 * server sees it send a request before the last one was answered: two unanswered
 * at once, or bytes waiting in its socket when an inline call returns (a peek,
 * before the reply goes out). One inline call per pipelining connection is the
 * most it can get. --no-inline sends everything to the pool.
 *
 * Threads. Everything in a reactor and its conns belongs to its loop thread, except
 * the fields marked [lock], through which other threads hand it connections and
 * requests to drain or close (then uv_async_send wakes it). */
#ifndef P11N_REACTOR_H
#define P11N_REACTOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "buf.h"
#include "server.h"

struct p11n_conn;
struct p11n_req;

/* A connection accepted by the main loop and waiting for its reactor to adopt it. */
struct p11n_handoff {
    struct p11n_handoff *next;
    int fd;
    int is_unix;
    int rejected; /* over --max-conns, or the server is draining: one BUSY frame, then close */
};

#define P11N_READ_BUF_SIZE 65536

struct p11n_reactor {
    struct p11n_server *srv;
    uv_loop_t loop;
    uv_thread_t thread;
    unsigned index;
    atomic_size_t load;            /* open conns: read by the acceptor to balance */
    atomic_int in_call;            /* running an HSM call inline: the acceptor avoids it */

    /* Loop thread only. */
    struct p11n_conn *conns;       /* intrusive list of open connections */
    struct p11n_conn *flush_list;  /* conns with replies queued this loop turn */
    struct p11n_req *ready, **ready_tail; /* requests read this turn, not yet started */
    size_t n_ready;
    size_t pooled;                 /* requests of this reactor in the worker pool */
    int draining;                  /* drain requested: new requests get SHUTTING_DOWN */
    int finished;                  /* drained: its handles are closing */
    uv_check_t turn;               /* end of each loop turn: start requests, write replies */
    uv_timer_t sweep;              /* --idle-timeout for partial frames */
    uv_timer_t drain_timer;        /* --drain-timeout: then every conn is closed */
    uv_async_t wake;               /* other threads: see the [lock] fields */
    /* One read buffer for all of the reactor's connections: the loop thread parses
     * each read completely before the next, so an idle connection owns no read
     * buffer at all. */
    uint8_t read_buf[P11N_READ_BUF_SIZE];
    struct p11n_buf tls_plain;     /* decrypted input, parsed at once */

    pthread_mutex_t lock;
    struct p11n_handoff *handoffs, **handoffs_tail; /* [lock] accepted, not yet adopted, in order */
    int drain_requested;           /* [lock] */
    int wake_closed;               /* [lock] wake is closed: nothing may be sent */
};

/* Sets up --io-threads reactors, each with a thread of its own. On failure, those
 * that did start are in srv->reactors, to be drained. */
P11N_MUST_USE p11n_rc p11n_reactors_start(struct p11n_server *srv);
/* Joins the reactor threads (after the main loop has returned) and frees them. */
void p11n_reactors_join(struct p11n_server *srv);

/* Main loop: gives an accepted socket to a reactor (the fewest connections). */
void p11n_reactor_hand_off(struct p11n_server *srv, int fd, int is_unix, int rejected);
/* Any thread: asks every reactor to drain: conns close as soon as they owe nothing,
 * those still busy after --drain-timeout are closed anyway, and then the reactor's
 * loop and thread end, with p11n_server_reactor_done. */
void p11n_reactors_drain(struct p11n_server *srv);

/* Loop thread: queues a prepared request to start at the end of this loop turn. */
void p11n_reactor_submit(struct p11n_reactor *r, struct p11n_req *req);
/* Loop thread: a conn has closed; a draining reactor with none left finishes. */
void p11n_reactor_conns_gone(struct p11n_reactor *r);

#endif
