/* The server's life: listeners up, serve, and on SIGTERM/SIGINT drain.
 *
 * Draining: listeners close at once; requests already read run to the end and are
 * answered; anything read after the signal is answered SHUTTING_DOWN; each
 * connection closes as soon as it owes nothing. When the last one has closed, the
 * loop's own handles close and uv_run returns, after libuv has also waited for any
 * pool work still running, so the HSM is finalized only once nothing uses it.
 * --drain-timeout bounds the wait for a request that never finishes. */
#include <stdlib.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "server.h"

/* How often connections with a partial frame are checked against --idle-timeout. */
#define IDLE_SWEEP_MS 1000

static uv_timer_t sweep_timer;

static void flush_cb(uv_check_t *h)
{
    p11n_conn_flush_all(h->data);
}

static void sweep_cb(uv_timer_t *t)
{
    p11n_conn_sweep_idle(t->data);
}

static void close_own_handles(struct p11n_server *srv)
{
    uv_close((uv_handle_t *)&srv->flush, NULL);
    uv_close((uv_handle_t *)&sweep_timer, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->drain_timer, NULL);
}

void p11n_server_drained(struct p11n_server *srv)
{
    static int stopped;

    if (stopped) return;
    stopped = 1;
    p11n_log(P11N_LOG_INFO, "drained");
    close_own_handles(srv);
}

static void drain_timeout_cb(uv_timer_t *t)
{
    struct p11n_server *srv = t->data;
    struct p11n_conn *c, *next;

    p11n_log(P11N_LOG_ERROR, "drain_timeout after=%llus conns=%zu", (unsigned long long)srv->cfg.drain_timeout_s,
             srv->n_conns);
    for (c = srv->conns; c; c = next) {
        next = c->next;
        p11n_conn_close(c, "drain_timeout");
    }
}

static void signal_cb(uv_signal_t *s, int signum)
{
    struct p11n_server *srv = s->data;

    if (srv->draining) return;
    srv->draining = 1;
    p11n_log(P11N_LOG_INFO, "signal=%d draining conns=%zu", signum, srv->n_conns);
    p11n_listener_close_all(srv);
    uv_timer_start(&srv->drain_timer, drain_timeout_cb, srv->cfg.drain_timeout_s * 1000, 0);
    /* The timer must not keep the loop alive once everything else is done. */
    uv_unref((uv_handle_t *)&srv->drain_timer);
    p11n_conn_drain(srv);
    if (!srv->conns) p11n_server_drained(srv);
}

p11n_rc p11n_server_run(struct p11n_server *srv)
{
    p11n_rc rc = P11N_OK;

    uv_check_init(srv->loop, &srv->flush);
    srv->flush.data = srv;
    uv_check_start(&srv->flush, flush_cb);
    uv_timer_init(srv->loop, &sweep_timer);
    sweep_timer.data = srv;
    uv_timer_start(&sweep_timer, sweep_cb, IDLE_SWEEP_MS, IDLE_SWEEP_MS);
    uv_timer_init(srv->loop, &srv->drain_timer);
    srv->drain_timer.data = srv;
    uv_signal_init(srv->loop, &srv->sigterm);
    uv_signal_init(srv->loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&srv->sigint, signal_cb, SIGINT);

    for (size_t i = 0; i < srv->cfg.n_listen && rc == P11N_OK; i++) rc = p11n_listener_open(srv, srv->cfg.listen[i]);
    if (rc != P11N_OK) {
        p11n_listener_close_all(srv);
        close_own_handles(srv);
    }
    uv_run(srv->loop, UV_RUN_DEFAULT);
    return rc;
}
