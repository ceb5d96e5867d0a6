/* `p11net bench`: closed-loop load. C connections each keep K requests of one
 * kind in flight (a batch of B inputs each) for D seconds; every reply is
 * answered at once by the same request again.
 *
 * The connections are shared out among --threads threads (default: one per core,
 * at most one per connection), each a libuv loop with its own counters and
 * histogram, merged at the end. One thread for all was the bottleneck at a few
 * connections: its wake-ups for one connection preempted the server's work for
 * another (RSA at 2 connections: 2,383/s from one client thread, 2,694/s from two).
 * Client and server share two cores here, and 256 connections x 8 must cost the
 * client as little CPU as possible.
 * For the same reason the K request frames are encoded once, before the run: a
 * request differs only in its seq (its pipeline slot, by which replies are
 * matched), so the hot path is: decode reply, record latency, resend a ready
 * frame. Verify and decrypt inputs are made once with the blocking library. */
#include <math.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "addr.h"
#include "cliopt.h"
#include "cmds.h"
#include "ctls.h"
#include "encode.h"
#include "hist.h"
#include "uvconn.h"

#define REPLY_MAX (64u << 20)
#define MAX_BATCH 4096

struct bench_opts {
    p11net_op op;
    long connections, pipeline, batch;
    long threads; /* 0: min(connections, cores) */
    double duration;
    const char *data;
};

struct bench;

struct bconn {
    struct bench *b;
    struct p11n_uvconn *conn;
    uint64_t *t0;      /* per pipeline slot: send time, 0 when idle */
    unsigned inflight;
    int connected;
};

/* One thread's share of the run. frames are shared by every thread, read-only;
 * opt.connections is this thread's share. */
struct bench {
    uv_thread_t thread;
    uv_loop_t loop;
    uv_timer_t stop_timer, progress_timer, drain_timer;
    struct bench_opts opt;
    struct p11n_addr addr;
    struct p11n_tls_ctx *tls_ctx;  /* --tls-*: this thread's, for all its connections */
    char servername[256];
    struct p11n_uvconn_tls tls;
    struct p11n_buf *frames;  /* per pipeline slot, wiped at the end (hold the PIN) */
    struct bconn *conns;
    unsigned open_conns;
    unsigned connected_conns;
    int started;              /* the measured window has begun */
    int stopping;
    uint64_t t_start, t_stop;
    uint64_t ops, errors, lost_conns;
    uint64_t last_ops, last_t;
    struct p11n_hist hist;
    int drain_ms;
    int loop_ok;
    int progress; /* print progress lines (one thread, on a terminal) */
};

static void stop_all(struct bench *b);
static void drain_cb(uv_timer_t *t);
static void stop_cb(uv_timer_t *t);

/* --op names, indexed by p11net_op. */
static const char *const op_names[] = {"ping", "list", "encrypt", "sign", "decrypt", "verify"};

static void bconn_send(struct bconn *bc, unsigned slot)
{
    struct p11n_buf *f = &bc->b->frames[slot];
    bc->t0[slot] = uv_hrtime();
    bc->inflight++;
    if (p11n_uvconn_send(bc->conn, p11n_buf_slice(f)) != P11N_OK) p11n_uvconn_close(bc->conn, P11N_E_IO);
}

static void fill_pipeline(struct bconn *bc)
{
    for (unsigned k = 0; k < (unsigned)bc->b->opt.pipeline; k++) bconn_send(bc, k);
}

/* The measured window starts once every connection is up (TCP and, with TLS, the
 * handshake): setting up connections is not what bench measures, and a slow
 * handshake must not eat a short --duration. */
static void start_window(struct bench *b)
{
    if (b->started || b->stopping) return;
    b->started = 1;
    b->t_start = b->last_t = uv_hrtime();
    uv_timer_start(&b->stop_timer, stop_cb, (uint64_t)llround(b->opt.duration * 1000), 0);
    for (long i = 0; i < b->opt.connections; i++)
        if (b->conns[i].conn && b->conns[i].connected) fill_pipeline(&b->conns[i]);
}

/* Connections still not up after the timeout: measure with those that are. */
static void connect_timeout_cb(uv_timer_t *t)
{
    start_window(t->data);
}

static void on_connect(struct p11n_uvconn *conn)
{
    struct bconn *bc = conn->data;
    struct bench *b = bc->b;
    bc->connected = 1;
    if (b->stopping) {
        p11n_uvconn_close(conn, P11N_OK);
        return;
    }
    if (b->started) {
        fill_pipeline(bc); /* a latecomer after the connect timeout */
        return;
    }
    if (++b->connected_conns == b->open_conns) start_window(b);
}

static void on_reply(struct p11n_uvconn *conn, p11n_msg *msg)
{
    struct bconn *bc = conn->data;
    struct bench *b = bc->b;
    int32_t slot = msg->seq;
    int err = msg->err;

    if (slot < 0 || slot >= b->opt.pipeline || bc->t0[slot] == 0) {
        fprintf(stderr, "p11net bench: unexpected reply seq %d\n", (int)slot);
        p11n_msg_free(msg);
        p11n_uvconn_close(conn, P11N_E_PROTOCOL);
        return;
    }
    if (err && b->errors == 0)
        fprintf(stderr, "p11net bench: first error: %s: %s\n", p11net_code_name((p11net_code)msg->code),
                msg->n_data ? msg->data[0] : "");
    p11n_msg_free(msg);
    bc->inflight--;
    if (!b->stopping) {
        /* Only replies inside the measured window count. */
        p11n_hist_record(&b->hist, uv_hrtime() - bc->t0[slot]);
        if (err)
            b->errors += (uint64_t)b->opt.batch;
        else
            b->ops += (uint64_t)b->opt.batch;
        bconn_send(bc, (unsigned)slot);
        return;
    }
    bc->t0[slot] = 0;
    if (bc->inflight == 0) p11n_uvconn_close(conn, P11N_OK);
}

static void on_close(struct p11n_uvconn *conn, p11n_rc why)
{
    struct bconn *bc = conn->data;
    struct bench *b = bc->b;
    if (why != P11N_OK && !b->stopping) {
        if (b->lost_conns++ == 0)
            fprintf(stderr, "p11net bench: connection %s (%s)\n", bc->connected ? "lost" : "failed",
                    p11n_uvconn_why(conn, why));
        b->errors += (uint64_t)bc->inflight * (uint64_t)b->opt.batch;
    }
    bc->conn = NULL;
    if (bc->connected && !b->started) b->connected_conns--;
    if (--b->open_conns == 0) {
        stop_all(b);
        return;
    }
    /* The rest may all be up now. */
    if (!b->started && b->connected_conns == b->open_conns) start_window(b);
}

static const struct p11n_uvconn_cbs bench_cbs = {on_connect, on_reply, on_close};

static void close_timer(uv_timer_t *t)
{
    if (!uv_is_closing((uv_handle_t *)t)) uv_close((uv_handle_t *)t, NULL);
}

/* Ends the measured window; connections close once their replies are in. */
static void stop_cb(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (b->stopping) return;
    b->stopping = 1;
    b->t_stop = uv_hrtime();
    for (long i = 0; i < b->opt.connections; i++) {
        struct bconn *bc = &b->conns[i];
        if (bc->conn && (bc->inflight == 0 || !bc->connected)) p11n_uvconn_close(bc->conn, P11N_OK);
    }
    uv_timer_start(&b->drain_timer, drain_cb, (uint64_t)b->drain_ms, 0);
    if (b->open_conns == 0) stop_all(b);
}

/* Drain over (or every connection closed): close what is left. */
static void drain_cb(uv_timer_t *t)
{
    struct bench *b = t->data;
    for (long i = 0; i < b->opt.connections; i++)
        if (b->conns[i].conn) p11n_uvconn_close(b->conns[i].conn, P11N_OK);
    close_timer(&b->stop_timer);
    close_timer(&b->progress_timer);
    close_timer(&b->drain_timer);
}

static void stop_all(struct bench *b)
{
    if (!b->stopping) {
        b->stopping = 1;
        b->t_stop = uv_hrtime();
    }
    drain_cb(&b->drain_timer);
}

static void progress_cb(uv_timer_t *t)
{
    struct bench *b = t->data;
    uint64_t now = uv_hrtime();
    double dt = (double)(now - b->last_t) / 1e9;
    fprintf(stderr, "  %5.1fs ops=%llu errors=%llu rate=%.0f/s p99_ms=%.3f\n", (double)(now - b->t_start) / 1e9,
            (unsigned long long)b->ops, (unsigned long long)b->errors,
            dt > 0 ? (double)(b->ops - b->last_ops) / dt : 0.0, (double)p11n_hist_quantile(&b->hist, 0.99) / 1e6);
    b->last_ops = b->ops;
    b->last_t = now;
}

/* Opens a thread's loop, timers and connections (not yet running). */
static int shard_setup(struct bench *b)
{
    if (p11n_hist_init(&b->hist) != P11N_OK || uv_loop_init(&b->loop) != 0) return -1;
    b->loop_ok = 1;
    if (!(b->conns = calloc((size_t)b->opt.connections, sizeof(*b->conns)))) return -1;
    uv_timer_init(&b->loop, &b->stop_timer);
    uv_timer_init(&b->loop, &b->progress_timer);
    uv_timer_init(&b->loop, &b->drain_timer);
    b->stop_timer.data = b->progress_timer.data = b->drain_timer.data = b;
    for (long i = 0; i < b->opt.connections; i++) {
        struct bconn *bc = &b->conns[i];
        bc->b = b;
        if (!(bc->t0 = calloc((size_t)b->opt.pipeline, sizeof(*bc->t0))) ||
            p11n_uvconn_open_tls(&b->loop, &b->addr, REPLY_MAX, b->tls_ctx ? &b->tls : NULL, &bench_cbs, bc,
                                 &bc->conn) != P11N_OK) {
            fprintf(stderr, "p11net bench: cannot start connection %ld\n", i);
            b->lost_conns++;
            bc->conn = NULL;
            continue;
        }
        b->open_conns++;
    }
    return 0;
}

static void shard_run(void *arg)
{
    struct bench *b = arg;

    b->t_start = b->last_t = uv_hrtime();
    uv_timer_start(&b->stop_timer, connect_timeout_cb, (uint64_t)b->drain_ms, 0);
    if (b->progress) uv_timer_start(&b->progress_timer, progress_cb, 1000, 1000);
    if (b->open_conns == 0) stop_all(b);
    uv_run(&b->loop, UV_RUN_DEFAULT);
}

/* Closes what shard_setup opened; the loop must have run to its end, or not at all. */
static void shard_cleanup(struct bench *b)
{
    if (b->loop_ok) {
        /* A loop that never ran still has its handles: close them now. */
        for (long i = 0; b->conns && i < b->opt.connections; i++)
            if (b->conns[i].conn) p11n_uvconn_close(b->conns[i].conn, P11N_OK);
        close_timer(&b->stop_timer);
        close_timer(&b->progress_timer);
        close_timer(&b->drain_timer);
        uv_run(&b->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&b->loop) != 0) fprintf(stderr, "p11net bench: internal error: handles left open\n");
    }
    for (long i = 0; b->conns && i < b->opt.connections; i++) free(b->conns[i].t0);
    free(b->conns);
    p11n_hist_cleanup(&b->hist);
    p11n_tls_ctx_free(b->tls_ctx);
}

/* Makes the inputs of the benchmarked request, signing or encrypting once
 * first for verify and decrypt. *keep holds what the inputs point into. */
static int prepare(const struct p11n_cliopts *o, const struct bench_opts *bo, p11net_request *req,
                   p11net_data *in, p11net_reply **keep)
{
    p11net_data msg = {bo->data, strlen(bo->data)};
    p11net_client *c;
    p11net_error err;
    int rc = P11NET_OK;

    p11n_cliopts_target(o, &req->target);
    req->op = bo->op;
    req->inputs = in;
    req->n_inputs = bo->op >= P11NET_OP_ENCRYPT ? (size_t)bo->batch : 0;
    if (bo->op == P11NET_OP_LIST && !o->have_pin) memset(&req->target, 0, sizeof(req->target));
    for (size_t i = 0; i < req->n_inputs; i++) in[i] = msg;
    if (bo->op != P11NET_OP_VERIFY && bo->op != P11NET_OP_DECRYPT) return 0;
    if (!(c = p11n_cli_connect(o))) return -1;
    if (bo->op == P11NET_OP_VERIFY)
        rc = p11net_sign(c, &req->target, &msg, 1, keep, &err);
    else
        rc = p11net_encrypt(c, &req->target, &msg, 1, keep, &err);
    p11net_close(c);
    if (rc != P11NET_OK) {
        fprintf(stderr, "p11net bench: preparing the %s input: %s\n", bo->op == P11NET_OP_VERIFY ? "verify" : "decrypt",
                err.message);
        return -1;
    }
    if (bo->op == P11NET_OP_VERIFY) {
        in[1].p = p11net_reply_item(*keep, 0);
        in[1].len = strlen(in[1].p);
        req->n_inputs = 2;
    } else {
        for (size_t i = 0; i < req->n_inputs; i++) in[i].p = p11net_reply_item(*keep, 0), in[i].len = strlen(in[i].p);
    }
    return 0;
}

static int bench_opt(void *ctx, int opt, const char *arg)
{
    struct bench_opts *o = ctx;
    char *end = NULL;
    switch (opt) {
    case 'o':
        for (int i = 0; i < 6; i++)
            if (strcmp(arg, op_names[i]) == 0) return o->op = (p11net_op)i, 0;
        fprintf(stderr, "p11net bench: --op: unknown operation '%s'\n", arg);
        return -1;
    case 'c': return p11n_cli_number("--connections", arg, 1, 100000, &o->connections);
    case 'p': return p11n_cli_number("--pipeline", arg, 1, 4096, &o->pipeline);
    case 'b': return p11n_cli_number("--batch", arg, 1, MAX_BATCH, &o->batch);
    case 'd':
        o->duration = strtod(arg, &end);
        if (!end || *end || !(o->duration > 0 && o->duration <= 86400)) {
            fprintf(stderr, "p11net bench: --duration: '%s' is not a number of seconds\n", arg);
            return -1;
        }
        return 0;
    case 'D': o->data = arg; return 0;
    case 'T': return p11n_cli_number("--threads", arg, 1, 256, &o->threads);
    }
    return -1;
}

int p11n_cmd_bench(int argc, char **argv)
{
    static const struct option extra[] = {
        {"op", required_argument, NULL, 'o'},
        {"connections", required_argument, NULL, 'c'},
        {"pipeline", required_argument, NULL, 'p'},
        {"batch", required_argument, NULL, 'b'},
        {"duration", required_argument, NULL, 'd'},
        {"data", required_argument, NULL, 'D'},
        {"threads", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    static const struct p11n_cli_cmd cmd = {
        "bench", "[OPTIONS]",
        "Closed-loop load: each connection keeps --pipeline requests in flight for --duration\n"
        "seconds. Ends with the line\n"
        "  ops=<n> errors=<n> rate=<ops/s> p50_ms=<x> p90_ms=<x> p99_ms=<x> p999_ms=<x>\n"
        "(ops counts operations: a batch of 16 is 16; latencies are per request).",
        "  --op OP              ping (default), list, sign, verify, encrypt, decrypt\n"
        "  -c, --connections N  connections (default 1)\n"
        "  -p, --pipeline K     requests in flight per connection (default 1)\n"
        "  -b, --batch B        inputs per request (default 1; verify: 1)\n"
        "  -d, --duration S     seconds (default 10)\n"
        "  --data TEXT          the input (default \"p11net bench\")\n"
        "  --threads T          client threads, connections shared out among them\n"
        "                       (default: one per core, at most one per connection)\n",
        extra, "c:p:b:d:", bench_opt};
    struct bench_opts bo = {P11NET_OP_PING, 1, 1, 1, 0, 10.0, "p11net bench"};
    struct p11n_cliopts o;
    struct bench *b = calloc(1, sizeof(*b));
    p11net_request req;
    p11net_data *in = calloc(MAX_BATCH + 1, sizeof(*in));
    p11net_reply *keep = NULL;
    const char *why = NULL;
    struct bench *shards = NULL;
    long n_shards = 0, t_started;
    double secs, rate = 0.0;
    int first, st = P11N_EXIT_USAGE, use_tls;

    if (!b || !in) {
        free(b), free(in);
        return P11N_EXIT_FAIL;
    }
    memset(&req, 0, sizeof(req));
    signal(SIGPIPE, SIG_IGN);
    first = p11n_cli_parse(argc, argv, &cmd, &o, &bo);
    if (first < 0) {
        st = first == -1 ? P11N_EXIT_OK : P11N_EXIT_USAGE;
        goto out;
    }
    if (first != argc) {
        fprintf(stderr, "p11net bench: takes no operands (try --help)\n");
        goto out;
    }
    if (bo.op >= P11NET_OP_ENCRYPT && ((!o.have_slot && !o.token) || !o.have_pin)) {
        fprintf(stderr, "p11net bench: --op %s needs --slot or --token and a PIN\n", op_names[bo.op]);
        goto out;
    }
    if (bo.op == P11NET_OP_VERIFY && bo.batch != 1) {
        fprintf(stderr, "p11net bench: verify takes one message per request (--batch 1)\n");
        goto out;
    }
    if (p11n_ctls_wanted(&o.conn)) {
        char why_tls[256] = "";
        if (p11n_ctls_setup(&o.conn, o.server, &b->tls_ctx, b->servername, sizeof(b->servername), why_tls,
                            sizeof(why_tls)) != P11N_OK) {
            fprintf(stderr, "p11net bench: TLS: %s\n", why_tls);
            st = P11N_EXIT_USAGE;
            goto out;
        }
        b->tls.ctx = b->tls_ctx;
        b->tls.servername = b->servername;
    }
    if (p11n_addr_resolve(o.server, &b->addr, &why) != P11N_OK) {
        fprintf(stderr, "p11net bench: server address '%s': %s\n", o.server, why ? why : "invalid");
        goto out;
    }
    st = P11N_EXIT_FAIL;
    b->opt = bo;
    b->drain_ms = o.conn.timeout_ms > 0 ? o.conn.timeout_ms : 30000;
    if (prepare(&o, &bo, &req, in, &keep) < 0) goto out;
    b->frames = calloc((size_t)bo.pipeline, sizeof(*b->frames));
    if (!b->frames || p11n_hist_init(&b->hist) != P11N_OK) goto out;
    for (long k = 0; k < bo.pipeline; k++)
        if (p11n_request_encode(&req, "", (int32_t)k, &b->frames[k]) != P11N_OK) goto out;
    if (bo.threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        bo.threads = cores > 0 ? cores : 1;
    }
    if (bo.threads > bo.connections) bo.threads = bo.connections;
    if (!(shards = calloc((size_t)bo.threads, sizeof(*shards)))) goto out;
    n_shards = bo.threads;
    use_tls = b->tls_ctx != NULL;
    for (long t = 0; t < n_shards; t++) {
        struct bench *s = &shards[t];
        s->opt = bo;
        s->opt.connections = bo.connections / n_shards + (t < bo.connections % n_shards);
        s->addr = b->addr;
        s->frames = b->frames;
        /* A TLS context per thread: OpenSSL caches inside certificates as it
         * verifies them, and ThreadSanitizer flags that when threads share them. */
        if (use_tls) {
            char why_tls[256] = "";
            if (t == 0) {
                s->tls_ctx = b->tls_ctx;
                b->tls_ctx = NULL;
                memcpy(s->servername, b->servername, sizeof(s->servername));
            } else if (p11n_ctls_setup(&o.conn, o.server, &s->tls_ctx, s->servername, sizeof(s->servername),
                                       why_tls, sizeof(why_tls)) != P11N_OK) {
                fprintf(stderr, "p11net bench: TLS: %s\n", why_tls);
                goto out;
            }
            s->tls.ctx = s->tls_ctx;
            s->tls.servername = s->servername;
        }
        s->drain_ms = b->drain_ms;
        s->progress = n_shards == 1 && isatty(STDERR_FILENO);
        if (shard_setup(s) != 0) goto out;
    }
    for (t_started = 0; t_started < n_shards; t_started++)
        if (uv_thread_create(&shards[t_started].thread, shard_run, &shards[t_started]) != 0) break;
    for (long t = 0; t < t_started; t++) uv_thread_join(&shards[t].thread);
    if (t_started < n_shards) {
        fprintf(stderr, "p11net bench: cannot start thread %ld\n", t_started);
        goto out;
    }

    /* Each thread measured its own window; their rates add up. */
    for (long t = 0; t < n_shards; t++) {
        struct bench *s = &shards[t];
        secs = (double)(s->t_stop - s->t_start) / 1e9;
        rate += secs > 0 ? (double)s->ops / secs : 0.0;
        b->ops += s->ops;
        b->errors += s->errors;
        b->lost_conns += s->lost_conns;
        p11n_hist_merge(&b->hist, &s->hist);
    }
    printf("ops=%llu errors=%llu rate=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n",
           (unsigned long long)b->ops, (unsigned long long)b->errors, rate,
           (double)p11n_hist_quantile(&b->hist, 0.50) / 1e6, (double)p11n_hist_quantile(&b->hist, 0.90) / 1e6,
           (double)p11n_hist_quantile(&b->hist, 0.99) / 1e6, (double)p11n_hist_quantile(&b->hist, 0.999) / 1e6);
    fflush(stdout);
    st = b->errors == 0 && b->lost_conns == 0 && b->ops > 0 ? P11N_EXIT_OK : P11N_EXIT_FAIL;
out:
    for (long t = 0; shards && t < n_shards; t++) shard_cleanup(&shards[t]);
    free(shards);
    for (long k = 0; b->frames && k < bo.pipeline; k++) p11n_buf_cleanup(&b->frames[k]);
    free(b->frames);
    p11n_hist_cleanup(&b->hist);
    p11n_tls_ctx_free(b->tls_ctx);
    p11net_reply_free(keep);
    free(in);
    free(b);
    p11n_cliopts_cleanup(&o);
    return st;
}
