#include "reactor.h"

#include <stdlib.h>
#include <unistd.h>

#include "conn.h"
#include "dispatch.h"
#include "listener.h"
#include "log.h"
#include "req.h"

/* How often connections with a partial frame are checked against --idle-timeout. */
#define IDLE_SWEEP_MS 1000
/* Requests run inline only while HSM calls average less than this. The hand-off it
 * saves costs ~0.1 ms, nothing next to a slower call, and while a reactor is in a
 * call, its connection's next requests wait (reactor.h). */
#define INLINE_MAX_CALL_NS (5 * 1000 * 1000)

/* Runs req's handler and folds its duration into the server's running average
 * (1/8 weight; updates from threads racing may be lost, which only blurs it). */
static void run_timed(struct p11n_req *req)
{
    struct p11n_server *srv = req->server;
    uint64_t t0 = uv_hrtime(), avg;

    p11n_dispatch_run(req);
    avg = atomic_load(&srv->hsm_call_ns_avg);
    atomic_store(&srv->hsm_call_ns_avg, avg - avg / 8 + (uv_hrtime() - t0) / 8);
}

static void work_cb(uv_work_t *w)
{
    run_timed(p11n_req_of_work(w));
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct p11n_req *req = p11n_req_of_work(w);

    req->conn->r->pooled--;
    atomic_fetch_sub(&req->server->hsm_outstanding, 1);
    if (status != 0) p11n_req_fail(req, P11N_E_HSM, "request cancelled");
    p11n_dispatch_finish(req);
}

void p11n_reactor_submit(struct p11n_reactor *r, struct p11n_req *req)
{
    /* Another request of this conn is still unanswered: its client pipelines. */
    if (req->conn->inflight > 1) req->conn->pipelines = 1;
    req->next = NULL;
    *r->ready_tail = req;
    r->ready_tail = &req->next;
    r->n_ready++;
}

/* Starts the requests read this turn, in arrival order: inline only when it is the
 * only one, on the reactor's only connection, whose client does not pipeline, the
 * reactor has nothing in the pool, HSM calls are quick, and fewer HSM calls than
 * --workers are outstanding server-wide (so inline runs never put more threads on
 * the HSM than the pool alone would); else all in the pool. See reactor.h. */
static void start_ready(struct p11n_reactor *r)
{
    struct p11n_server *srv = r->srv;
    struct p11n_req *req = r->ready, *next;
    struct p11n_conn *c = req->conn;
    int alone = c == r->conns && !c->next && !c->closing;
    int run_inline = 0;

    /* The slot is taken before it is checked, so two reactors cannot both take the
     * last one. */
    if (alone && !c->pipelines && r->n_ready == 1 && r->pooled == 0 && !srv->cfg.no_inline &&
        atomic_load(&srv->hsm_call_ns_avg) < INLINE_MAX_CALL_NS) {
        run_inline = atomic_fetch_add(&srv->hsm_outstanding, 1) < srv->cfg.workers;
        if (!run_inline) atomic_fetch_sub(&srv->hsm_outstanding, 1);
    }
    r->ready = NULL;
    r->ready_tail = &r->ready;
    r->n_ready = 0;
    if (run_inline) {
        atomic_store(&r->in_call, 1);
        run_timed(req);
        atomic_store(&r->in_call, 0);
        atomic_fetch_sub(&srv->hsm_outstanding, 1);
        /* Sent before this reply went out: the client pipelines, and its next
         * requests would again wait for each call here (reactor.h). */
        if (p11n_conn_has_input(c)) c->pipelines = 1;
        p11n_dispatch_finish(req);
        return;
    }
    for (; req; req = next) {
        next = req->next;
        r->pooled++;
        atomic_fetch_add(&srv->hsm_outstanding, 1);
        if (uv_queue_work(&r->loop, &req->work, work_cb, after_work_cb) != 0) {
            r->pooled--;
            atomic_fetch_sub(&srv->hsm_outstanding, 1);
            p11n_req_fail(req, P11N_E_HSM, "could not queue the request");
            p11n_dispatch_finish(req);
        }
    }
}

static void turn_cb(uv_check_t *h)
{
    struct p11n_reactor *r = h->data;

    /* Replies first (pings, form errors), so none waits behind an inline call. */
    p11n_conn_flush_all(r);
    if (!r->ready) return;
    start_ready(r);
    p11n_conn_flush_all(r);
}

static void sweep_cb(uv_timer_t *t)
{
    p11n_conn_sweep_idle(t->data);
}

static void drain_timeout_cb(uv_timer_t *t)
{
    struct p11n_reactor *r = t->data;
    struct p11n_conn *c, *next;

    p11n_log(P11N_LOG_ERROR, "drain_timeout after=%llus reactor=%u conns=%zu",
             (unsigned long long)r->srv->cfg.drain_timeout_s, r->index, atomic_load(&r->load));
    for (c = r->conns; c; c = next) {
        next = c->next;
        p11n_conn_close(c, "drain_timeout");
    }
}

/* Closes the reactor's own handles; its loop then ends once pool work is done. */
static void finish(struct p11n_reactor *r)
{
    if (r->finished) return;
    r->finished = 1;
    /* Requests of conns that just closed: they run, and their replies are dropped. */
    if (r->ready) start_ready(r);
    uv_close((uv_handle_t *)&r->turn, NULL);
    uv_close((uv_handle_t *)&r->sweep, NULL);
    uv_close((uv_handle_t *)&r->drain_timer, NULL);
    pthread_mutex_lock(&r->lock);
    r->wake_closed = 1;
    pthread_mutex_unlock(&r->lock);
    uv_close((uv_handle_t *)&r->wake, NULL);
}

void p11n_reactor_conns_gone(struct p11n_reactor *r)
{
    if (r->draining && !r->conns) finish(r);
}

static void begin_drain(struct p11n_reactor *r)
{
    if (r->draining) return;
    r->draining = 1;
    uv_timer_start(&r->drain_timer, drain_timeout_cb, r->srv->cfg.drain_timeout_s * 1000, 0);
    /* The timer must not keep the loop alive once everything else is done. */
    uv_unref((uv_handle_t *)&r->drain_timer);
    p11n_conn_drain(r);
    p11n_reactor_conns_gone(r);
}

/* Closes an accepted socket that will not be served, and takes back what counted
 * it (r: the reactor it was given to, if any). */
static void forget(struct p11n_server *srv, struct p11n_reactor *r, int fd, int rejected)
{
    close(fd);
    if (r) atomic_fetch_sub(&r->load, 1);
    if (!rejected) atomic_fetch_sub(&srv->n_conns, 1);
}

static void adopt(struct p11n_reactor *r, struct p11n_handoff *h)
{
    struct p11n_conn *c = p11n_conn_new(r);
    int rc;

    if (!c) {
        forget(r->srv, r, h->fd, h->rejected);
        return;
    }
    c->rejected = h->rejected;
    if (h->is_unix) {
        uv_pipe_init(&r->loop, &c->h.pipe, 0);
        rc = uv_pipe_open(&c->h.pipe, h->fd);
    } else {
        uv_tcp_init(&r->loop, &c->h.tcp);
        rc = uv_tcp_open(&c->h.tcp, h->fd);
    }
    if (rc != 0) close(h->fd); /* the handle does not own it */
    p11n_listener_serve(c, h->is_unix, rc == 0);
}

static void wake_cb(uv_async_t *a)
{
    struct p11n_reactor *r = a->data;
    struct p11n_handoff *h, *next;
    int drain;

    pthread_mutex_lock(&r->lock);
    h = r->handoffs;
    r->handoffs = NULL;
    r->handoffs_tail = &r->handoffs;
    drain = r->drain_requested;
    pthread_mutex_unlock(&r->lock);
    for (; h; h = next) {
        next = h->next;
        adopt(r, h);
        free(h);
    }
    if (drain) begin_drain(r);
}

static p11n_rc reactor_init(struct p11n_server *srv, struct p11n_reactor *r, unsigned index)
{
    r->srv = srv;
    r->index = index;
    r->ready_tail = &r->ready;
    r->handoffs_tail = &r->handoffs;
    if (uv_loop_init(&r->loop) != 0) return P11N_E_NOMEM;
    pthread_mutex_init(&r->lock, NULL);
    uv_check_init(&r->loop, &r->turn);
    r->turn.data = r;
    uv_check_start(&r->turn, turn_cb);
    uv_timer_init(&r->loop, &r->sweep);
    r->sweep.data = r;
    uv_timer_start(&r->sweep, sweep_cb, IDLE_SWEEP_MS, IDLE_SWEEP_MS);
    uv_timer_init(&r->loop, &r->drain_timer);
    r->drain_timer.data = r;
    uv_async_init(&r->loop, &r->wake, wake_cb);
    r->wake.data = r;
    return P11N_OK;
}

static void reactor_thread(void *arg)
{
    struct p11n_reactor *r = arg;

    uv_run(&r->loop, UV_RUN_DEFAULT);
    p11n_server_reactor_done(r->srv);
}

/* Closes the handles of a reactor that never got a thread, on this thread. */
static void discard(struct p11n_reactor *r)
{
    begin_drain(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    p11n_buf_cleanup(&r->tls_plain);
    pthread_mutex_destroy(&r->lock);
}

p11n_rc p11n_reactors_start(struct p11n_server *srv)
{
    unsigned n = srv->cfg.io_threads ? srv->cfg.io_threads : 1, i, ready;

    srv->reactors = calloc(n, sizeof(*srv->reactors));
    P11N_ENSURE(srv->reactors != NULL, P11N_E_NOMEM);
    for (ready = 0; ready < n; ready++)
        if (reactor_init(srv, &srv->reactors[ready], ready) != P11N_OK) break;
    for (i = 0; i < ready; i++)
        if (uv_thread_create(&srv->reactors[i].thread, reactor_thread, &srv->reactors[i]) != 0) break;
    /* Those without a thread are closed here; those with one drain when told. */
    for (unsigned j = i; j < ready; j++) discard(&srv->reactors[j]);
    srv->n_reactors = i;
    return i == n ? P11N_OK : P11N_E_NOMEM;
}

void p11n_reactors_join(struct p11n_server *srv)
{
    for (unsigned i = 0; i < srv->n_reactors; i++) {
        struct p11n_reactor *r = &srv->reactors[i];
        uv_thread_join(&r->thread);
        uv_loop_close(&r->loop);
        p11n_buf_cleanup(&r->tls_plain);
        pthread_mutex_destroy(&r->lock);
    }
    free(srv->reactors);
    srv->reactors = NULL;
    srv->n_reactors = 0;
}

/* Queues work for r's loop thread; false when r has finished. */
static int send_to(struct p11n_reactor *r, struct p11n_handoff *h, int drain)
{
    int ok;

    pthread_mutex_lock(&r->lock);
    ok = !r->wake_closed;
    if (ok) {
        if (h) {
            *r->handoffs_tail = h;
            r->handoffs_tail = &h->next;
        }
        if (drain) r->drain_requested = 1;
        uv_async_send(&r->wake);
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

/* The reactor for a new connection: one not inside an HSM call if there is one
 * (a call that hangs must not hold up newcomers), then the fewest connections. */
static struct p11n_reactor *pick(struct p11n_server *srv)
{
    struct p11n_reactor *best = &srv->reactors[0];
    int best_busy = atomic_load(&best->in_call);
    size_t best_load = atomic_load(&best->load);

    for (unsigned i = 1; i < srv->n_reactors; i++) {
        struct p11n_reactor *r = &srv->reactors[i];
        int busy = atomic_load(&r->in_call);
        size_t load = atomic_load(&r->load);
        if (busy < best_busy || (busy == best_busy && load < best_load)) {
            best = r;
            best_busy = busy;
            best_load = load;
        }
    }
    return best;
}

void p11n_reactor_hand_off(struct p11n_server *srv, int fd, int is_unix, int rejected)
{
    struct p11n_reactor *best;
    struct p11n_handoff *h = calloc(1, sizeof(*h));

    if (!h || srv->n_reactors == 0) {
        free(h);
        forget(srv, NULL, fd, rejected);
        return;
    }
    h->fd = fd;
    h->is_unix = is_unix;
    h->rejected = rejected;
    best = pick(srv);
    atomic_fetch_add(&best->load, 1);
    if (!send_to(best, h, 0)) {
        forget(srv, best, fd, rejected);
        free(h);
    }
}

void p11n_reactors_drain(struct p11n_server *srv)
{
    for (unsigned i = 0; i < srv->n_reactors; i++) send_to(&srv->reactors[i], NULL, 1);
}
