/* The server as a whole: what every module of p11netd may reach. */
#ifndef P11N_SERVER_H
#define P11N_SERVER_H

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

struct p11n_server {
    uv_loop_t *loop;               /* the one loop thread owns everything below ... */
    struct p11n_config cfg;        /* read-only once the loop runs (pool threads read it) */
    struct p11n_hsm *hsm;          /* thread-safe */
    struct p11n_access *access;    /* thread-safe */
    struct p11n_tls_ctx *tls;      /* NULL without --tls-cert */

    /* ... loop thread only from here */
    struct p11n_listener *listeners;
    struct p11n_conn *conns;       /* intrusive list of open connections */
    struct p11n_conn *flush_list;  /* conns with replies queued this loop turn */
    size_t n_conns;
    size_t inflight;               /* requests read and not yet answered, all conns */
    uint64_t next_conn_id;
    int draining;                  /* SIGTERM/SIGINT seen */
    uv_signal_t sigterm, sigint;
    uv_check_t flush;              /* writes queued replies once per loop turn */
    uv_timer_t drain_timer;
};

#endif

/* Runs the server until it has drained after SIGTERM/SIGINT. srv->cfg, hsm and
 * access must be set. Returns P11N_OK after a clean drain, P11N_E_USAGE or
 * P11N_E_IO when a listener could not be opened. Thread: main (it becomes the loop
 * thread). */
P11N_MUST_USE p11n_rc p11n_server_run(struct p11n_server *srv);
/* Called by conn.c when the last connection of a draining server has closed. */
void p11n_server_drained(struct p11n_server *srv);
