/* The server's life: reactors and listeners up, serve, and on SIGTERM/SIGINT drain.
 *
 * Draining: listeners close at once; every reactor (reactor.c) answers the requests
 * it has already read, answers anything read after the signal SHUTTING_DOWN, and
 * closes each connection as soon as it owes nothing; --drain-timeout bounds the wait
 * for a request that never finishes. A drained reactor closes its handles, so its
 * loop ends after libuv has also waited for its pool work, and its thread tells the
 * main loop. When the last one has, the main loop closes its own handles and
 * returns; the threads are joined, and only then is the HSM finalized, once nothing
 * uses it. */
#include <stdlib.h>

#include "listener.h"
#include "log.h"
#include "reactor.h"
#include "server.h"

/* Main loop: closes its own handles once every reactor has finished. */
static void check_done(struct p11n_server *srv)
{
    int all;

    pthread_mutex_lock(&srv->done_lock);
    all = srv->n_done == srv->n_reactors && !srv->done_closed;
    if (all) srv->done_closed = 1;
    pthread_mutex_unlock(&srv->done_lock);
    if (!all) return;
    p11n_log(P11N_LOG_INFO, "drained");
    uv_close((uv_handle_t *)&srv->reactor_done, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
}

static void reactor_done_cb(uv_async_t *a)
{
    check_done(a->data);
}

void p11n_server_reactor_done(struct p11n_server *srv)
{
    pthread_mutex_lock(&srv->done_lock);
    srv->n_done++;
    if (!srv->done_closed) uv_async_send(&srv->reactor_done);
    pthread_mutex_unlock(&srv->done_lock);
}

static void begin_drain(struct p11n_server *srv)
{
    atomic_store(&srv->draining, 1);
    p11n_listener_close_all(srv);
    p11n_reactors_drain(srv);
    check_done(srv); /* when there are no reactors */
}

static void signal_cb(uv_signal_t *s, int signum)
{
    struct p11n_server *srv = s->data;

    if (atomic_load(&srv->draining)) return;
    p11n_log(P11N_LOG_INFO, "signal=%d draining conns=%zu", signum, atomic_load(&srv->n_conns));
    begin_drain(srv);
}

p11n_rc p11n_server_run(struct p11n_server *srv)
{
    p11n_rc rc;

    pthread_mutex_init(&srv->done_lock, NULL);
    uv_async_init(srv->loop, &srv->reactor_done, reactor_done_cb);
    srv->reactor_done.data = srv;
    uv_signal_init(srv->loop, &srv->sigterm);
    uv_signal_init(srv->loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&srv->sigint, signal_cb, SIGINT);

    rc = p11n_reactors_start(srv);
    for (size_t i = 0; i < srv->cfg.n_listen && rc == P11N_OK; i++) rc = p11n_listener_open(srv, srv->cfg.listen[i]);
    if (rc != P11N_OK) begin_drain(srv);
    uv_run(srv->loop, UV_RUN_DEFAULT);
    p11n_reactors_join(srv);
    pthread_mutex_destroy(&srv->done_lock);
    return rc;
}
