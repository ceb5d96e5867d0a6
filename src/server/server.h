/* The server as a whole: what every module of p11netd may reach. */
#ifndef P11N_SERVER_H
#define P11N_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "config.h"
#include "err.h"

/* A stream handle of either kind p11netd serves or listens on: TCP or Unix. */
union p11n_stream {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
};

struct p11n_hsm;
struct p11n_access;
struct p11n_conn;
struct p11n_listener;
struct p11n_tls_ctx;
struct p11n_reactor;

struct p11n_server {
    uv_loop_t *loop;               /* the main loop: listeners and signals */
    struct p11n_config cfg;        /* read-only once the loop runs (other threads read it) */
    struct p11n_hsm *hsm;          /* thread-safe */
    struct p11n_access *access;    /* thread-safe */
    struct p11n_tls_ctx *tls;      /* NULL without --tls-cert */
    struct p11n_reactor *reactors; /* n_reactors event loops (reactor.h); fixed while running */
    unsigned n_reactors;
    atomic_size_t n_conns;         /* open conns not rejected, all reactors: --max-conns */
    atomic_uint_fast64_t next_conn_id;
    atomic_int draining;           /* SIGTERM/SIGINT seen */
    atomic_size_t hsm_outstanding; /* requests queued to or running on the HSM, all reactors */
    atomic_uint_fast64_t hsm_call_ns_avg; /* running average of a request's HSM time */

    /* main loop thread only */
    struct p11n_listener *listeners;
    uv_signal_t sigterm, sigint;
    uv_async_t reactor_done;       /* a reactor's thread has finished */
    pthread_mutex_t done_lock;     /* guards n_done, done_closed */
    unsigned n_done;
    int done_closed;               /* reactor_done is closed: nothing may be sent */
};

#endif

/* Runs the server until it has drained after SIGTERM/SIGINT. srv->cfg, hsm and
 * access must be set. Returns P11N_OK after a clean drain, P11N_E_USAGE or
 * P11N_E_IO when a listener could not be opened. Thread: main (it becomes the loop
 * thread). */
P11N_MUST_USE p11n_rc p11n_server_run(struct p11n_server *srv);
/* A reactor's thread, as it ends (drained). */
void p11n_server_reactor_done(struct p11n_server *srv);
