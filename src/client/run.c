/* `p11net run -n N FILE` (PROTOCOL.md section 6): N clients, each with its own
 * connection playing the whole requests file (R times with --repeat), keeping up
 * to K requests in flight (--pipeline).
 *
 * All clients run on one libuv loop in this thread (see uvconn.h for why).
 * Each client plays its lines strictly in file order. A Decrypt or Verify line
 * refers to the latest earlier Encrypt or Sign of the same data on the same slot
 * (resolved once, when the file is loaded); when its turn comes and that
 * request's reply has not arrived yet, the client stops submitting until it
 * has. "Same slot" compares the resolved selector (slot id, or token label,
 * however written). A Decrypt/Verify with no such earlier request, or whose
 * request failed, is counted as failed without being sent; one whose result
 * differs from its Data (Decrypt) is failed too. A request whose connection
 * ends before its reply is lost, as is every line the client had not sent yet. */
#include <openssl/crypto.h>
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
#include "csv.h"
#include "encode.h"
#include "hist.h"
#include "secret.h"
#include "uvconn.h"

#define FILE_MAX (256u << 20)
#define REPLY_MAX (64u << 20)

/* One request line of the file, with owned copies of its fields. */
struct line {
    int lineno;
    p11net_op op;
    enum p11n_csv_slot slot_kind;
    uint64_t slot;
    char *label;     /* token label or NULL */
    char *slot_text; /* as written, for output */
    char *pin;       /* wiped at exit; never printed */
    char *data;
    size_t data_len;
    int dep;         /* Decrypt/Verify: index of the Encrypt/Sign it uses, or -1 */
    int dep_wraps;   /* dep comes later in the file: only a previous pass has it */
};

struct run_opts {
    long clients, pipeline, repeat;
    int quiet;
};

struct runner;

/* A request in flight: one of a client's `pipeline` slots. */
struct inflight {
    int busy;
    size_t line;
    uint64_t id;
    uint32_t inst; /* which submission of an Encrypt/Sign line this is */
    uint64_t t0;   /* uv_hrtime at send */
};

struct rclient {
    struct runner *r;
    unsigned idx;
    struct p11n_uvconn *conn;
    uv_timer_t timer;     /* no reply for --timeout: give up on this connection */
    int connected, done;
    uint64_t pass;
    size_t next;          /* cursor: next line to play in this pass */
    size_t inflight;
    uint64_t next_id;
    struct inflight *slots;
    uint32_t *sub_inst;   /* per line: submissions so far of this Encrypt/Sign */
    uint32_t *done_inst;  /* per line: the latest submission whose reply arrived */
    char **result;        /* per line: its ciphertext/signature, NULL if it failed */
    uint64_t answered;    /* ok + failed of this client */
};

struct runner {
    uv_loop_t loop;
    const char *file;
    struct line *lines;
    size_t n_lines;
    struct run_opts opt;
    struct p11n_addr addr;
    struct p11n_tls_ctx *tls_ctx;  /* --tls-*: shared by every connection */
    char servername[256];
    struct p11n_uvconn_tls tls;
    const p11net_target *base;  /* --key / --mech apply to every line */
    int timeout_ms;
    struct rclient *clients;
    unsigned open_clients;
    uint64_t ok, failed;
    struct p11n_hist hist;
    struct p11n_buf frame;      /* scratch for encoding, wiped (holds PINs) */
};

/* ---- loading the file ----------------------------------------------------- */

static char *dup_slice(struct p11n_slice s)
{
    char *p = malloc(s.len + 1);
    if (p) {
        if (s.len) memcpy(p, s.p, s.len);
        p[s.len] = '\0';
    }
    return p;
}

static int same_slot(const struct line *a, const struct line *b)
{
    if (a->slot_kind != b->slot_kind) return 0;
    return a->slot_kind == P11N_CSV_SLOT_ID ? a->slot == b->slot : strcmp(a->label, b->label) == 0;
}

static void resolve_deps(struct line *lines, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct line *l = &lines[i];
        p11net_op want = l->op == P11NET_OP_DECRYPT ? P11NET_OP_ENCRYPT : P11NET_OP_SIGN;
        l->dep = -1;
        if (l->op != P11NET_OP_DECRYPT && l->op != P11NET_OP_VERIFY) continue;
        /* The latest earlier line; failing that, one later in the file, which
         * only the previous pass (with --repeat) has played. */
        for (size_t k = 1; k <= n - 1 && l->dep < 0; k++) {
            size_t j = (i + n - k) % n;
            const struct line *e = &lines[j];
            if (e->op == want && same_slot(e, l) && e->data_len == l->data_len &&
                memcmp(e->data, l->data, l->data_len) == 0) {
                l->dep = (int)j;
                l->dep_wraps = j > i;
            }
        }
    }
}

static void free_lines(struct line *lines, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p11n_wipe_str(lines[i].pin);
        free(lines[i].pin);
        free(lines[i].label);
        free(lines[i].slot_text);
        free(lines[i].data);
    }
    free(lines);
}

/* Reads and parses the file. Returns 0, or -1 after printing FILE:LINE: why. */
static int load(struct runner *r)
{
    struct p11n_buf text = {0};
    size_t cap = 0, off = 0;
    int lineno = 0, rc = 0;

    if (p11n_cli_read_file(r->file, &text, FILE_MAX) < 0) return -1;
    while (off < text.len && rc == 0) {
        const uint8_t *nl = memchr(text.data + off, '\n', text.len - off);
        size_t len = nl ? (size_t)(nl - (text.data + off)) : text.len - off;
        struct p11n_csv_line cl;
        const char *why = NULL;
        struct line *l;

        lineno++;
        switch (p11n_csv_parse_line(p11n_slice_of(text.data + off, len), &cl, &why)) {
        case P11N_CSV_SKIP: break;
        case P11N_CSV_ERROR:
            fprintf(stderr, "p11net run: %s:%d: %s\n", r->file, lineno, why);
            rc = -1;
            break;
        case P11N_CSV_REQUEST:
            if (r->n_lines == cap) {
                struct line *grown = realloc(r->lines, (cap = cap ? cap * 2 : 64) * sizeof(*grown));
                if (!grown) {
                    rc = -1;
                    break;
                }
                r->lines = grown;
            }
            l = &r->lines[r->n_lines++];
            memset(l, 0, sizeof(*l));
            l->lineno = lineno;
            l->op = cl.op;
            l->slot_kind = cl.slot_kind;
            l->slot = cl.slot;
            l->label = cl.slot_kind == P11N_CSV_SLOT_LABEL ? dup_slice(p11n_slice_of(cl.label, strlen(cl.label))) : NULL;
            l->slot_text = dup_slice(cl.slot_text);
            l->pin = dup_slice(cl.pin);
            l->data = dup_slice(cl.data);
            l->data_len = cl.data.len;
            if (!l->slot_text || !l->pin || !l->data || (cl.slot_kind == P11N_CSV_SLOT_LABEL && !l->label)) rc = -1;
            break;
        }
        off += len + (nl ? 1 : 0);
    }
    p11n_buf_cleanup(&text); /* the file holds PINs */
    if (rc == 0) resolve_deps(r->lines, r->n_lines);
    return rc;
}

/* ---- playing ------------------------------------------------------------- */

static void client_pump(struct rclient *c);

static double ms_of(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* One output line per answered request. Shows slot and data, never the PIN. */
static void report(struct rclient *c, const struct line *l, int ok, const char *code, const char *detail,
                   uint64_t ns)
{
    if (ok)
        c->r->ok++;
    else
        c->r->failed++;
    c->answered++;
    if (c->r->opt.quiet) return;
    printf("client=%u line=%d op=%s slot=%s %s ms=%.3f", c->idx, l->lineno, p11n_csv_op_name(l->op), l->slot_text,
           ok ? "ok" : "failed", ms_of(ns));
    if (code) printf(" code=%s", code);
    if (detail) printf(" %s=%s", ok ? "data" : "msg", detail);
    putchar('\n');
}

static void client_close(struct rclient *c, p11n_rc why)
{
    if (c->conn) p11n_uvconn_close(c->conn, why);
}

static void arm_timer(struct rclient *c);

/* Fills a request for line l of client c; the Decrypt/Verify input comes from
 * the earlier result. */
static p11n_rc send_line(struct rclient *c, size_t li, struct inflight *s)
{
    struct runner *r = c->r;
    const struct line *l = &r->lines[li];
    p11net_request req;
    p11net_data in[2];
    char id[24];
    p11n_rc rc;

    memset(&req, 0, sizeof(req));
    req.op = l->op;
    req.target = *r->base;
    req.target.slot = l->slot;
    req.target.token = l->label;
    /* List without a slot lists tokens: a PIN would make it a key listing. */
    req.target.pin = l->op == P11NET_OP_LIST && l->slot_kind == P11N_CSV_SLOT_NONE ? NULL : l->pin;
    req.target.binary = 0;
    in[0].p = l->data, in[0].len = l->data_len;
    if (l->op == P11NET_OP_DECRYPT) {
        in[0].p = c->result[l->dep], in[0].len = strlen(c->result[l->dep]);
    } else if (l->op == P11NET_OP_VERIFY) {
        in[1].p = c->result[l->dep], in[1].len = strlen(c->result[l->dep]);
    }
    req.inputs = in;
    req.n_inputs = l->op == P11NET_OP_VERIFY ? 2 : l->op >= P11NET_OP_ENCRYPT ? 1 : 0;

    s->busy = 1;
    s->line = li;
    s->id = ++c->next_id;
    s->inst = 0;
    if (l->op == P11NET_OP_ENCRYPT || l->op == P11NET_OP_SIGN) s->inst = ++c->sub_inst[li];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)s->id);
    r->frame.len = 0;
    rc = p11n_request_encode(&req, id, (int32_t)(s - c->slots), &r->frame);
    if (rc == P11N_OK) rc = p11n_uvconn_send(c->conn, p11n_buf_slice(&r->frame));
    if (r->frame.data) OPENSSL_cleanse(r->frame.data, r->frame.len); /* the frame held the PIN */
    s->t0 = uv_hrtime();
    return rc;
}

/* Submits lines until the pipeline is full, the file is played, or the next line
 * waits for an earlier reply. */
static void client_pump(struct rclient *c)
{
    struct runner *r = c->r;

    while (!c->done && c->connected && c->inflight < (size_t)r->opt.pipeline) {
        const struct line *l;
        size_t li;

        if (c->next == r->n_lines) {
            c->next = 0;
            c->pass++;
        }
        if (c->pass == (uint64_t)r->opt.repeat || r->n_lines == 0) {
            if (c->inflight == 0) {
                c->done = 1;
                client_close(c, P11N_OK);
            }
            return;
        }
        li = c->next;
        l = &r->lines[li];
        if (l->op == P11NET_OP_DECRYPT || l->op == P11NET_OP_VERIFY) {
            const char *want = l->op == P11NET_OP_DECRYPT ? "Encrypt" : "Sign";
            char msg[64];
            if (l->dep < 0 || (l->dep_wraps && c->pass == 0) || c->sub_inst[l->dep] == 0) {
                snprintf(msg, sizeof(msg), "no_earlier_%s", want);
                c->next++;
                report(c, l, 0, NULL, msg, 0);
                continue;
            }
            if (c->done_inst[l->dep] < c->sub_inst[l->dep]) return; /* wait for that reply */
            if (!c->result[l->dep]) {
                snprintf(msg, sizeof(msg), "earlier_%s_failed", want);
                c->next++;
                report(c, l, 0, NULL, msg, 0);
                continue;
            }
        }
        for (size_t k = 0; k < (size_t)r->opt.pipeline; k++) {
            if (c->slots[k].busy) continue;
            c->next++;
            c->inflight++;
            if (send_line(c, li, &c->slots[k]) != P11N_OK) {
                client_close(c, P11N_E_IO);
                return;
            }
            break;
        }
    }
}

/* Joins the reply's items with " | " for one output line. */
static void join_items(const p11n_msg *msg, char *out, size_t cap)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < msg->n_data && off + 1 < cap; i++)
        off += (size_t)snprintf(out + off, cap - off, "%s%s", i ? " | " : "", msg->data[i]);
}

static void on_reply(struct p11n_uvconn *conn, p11n_msg *msg)
{
    struct rclient *c = conn->data;
    struct runner *r = c->r;
    struct inflight *s;
    const struct line *l;
    uint64_t ns;
    char detail[1024];
    char *end = NULL;
    uint64_t id = strtoull(msg->id ? msg->id : "", &end, 10);

    if (msg->seq < 0 || msg->seq >= r->opt.pipeline || !(s = &c->slots[msg->seq])->busy || s->id != id) {
        /* Not a reply to anything we sent: the server broke the protocol. */
        fprintf(stderr, "p11net run: client %u: unexpected reply id '%s'\n", c->idx, msg->id ? msg->id : "");
        p11n_msg_free(msg);
        client_close(c, P11N_E_PROTOCOL);
        return;
    }
    ns = uv_hrtime() - s->t0;
    p11n_hist_record(&r->hist, ns);
    l = &r->lines[s->line];
    s->busy = 0;
    c->inflight--;

    if (msg->err) {
        snprintf(detail, sizeof(detail), "%s", msg->n_data ? msg->data[0] : "");
        report(c, l, 0, p11net_code_name((p11net_code)msg->code), detail, ns);
    } else if (l->op == P11NET_OP_ENCRYPT || l->op == P11NET_OP_SIGN) {
        int good = msg->n_data == 1;
        report(c, l, good, NULL, good ? msg->data[0] : "wrong_number_of_results", ns);
    } else if (l->op == P11NET_OP_DECRYPT) {
        int good = msg->n_data == 1 && strlen(msg->data[0]) == l->data_len && memcmp(msg->data[0], l->data, l->data_len) == 0;
        report(c, l, good, NULL, good ? msg->data[0] : "mismatch", ns);
    } else {
        join_items(msg, detail, sizeof(detail));
        report(c, l, 1, NULL, detail, ns);
    }
    /* An Encrypt/Sign result is kept for the Decrypt/Verify lines that refer to it. */
    if (s->inst && s->inst >= c->done_inst[s->line]) {
        c->done_inst[s->line] = s->inst;
        free(c->result[s->line]);
        c->result[s->line] = !msg->err && msg->n_data == 1 ? strdup(msg->data[0]) : NULL;
    }
    p11n_msg_free(msg);
    arm_timer(c);
    client_pump(c);
}

static void timeout_cb(uv_timer_t *t)
{
    struct rclient *c = t->data;
    fprintf(stderr, "p11net run: client %u: no reply for %d ms, giving up\n", c->idx, c->r->timeout_ms);
    client_close(c, P11N_E_TIMEOUT);
}

static void arm_timer(struct rclient *c)
{
    uv_timer_start(&c->timer, timeout_cb, (uint64_t)c->r->timeout_ms, 0);
}

static void on_connect(struct p11n_uvconn *conn)
{
    struct rclient *c = conn->data;
    c->connected = 1;
    arm_timer(c);
    client_pump(c);
}

static void on_close(struct p11n_uvconn *conn, p11n_rc why)
{
    struct rclient *c = conn->data;
    if (why != P11N_OK)
        fprintf(stderr, "p11net run: client %u: connection %s (%s)\n", c->idx,
                c->connected ? "lost" : "failed", p11n_uvconn_why(conn, why));
    c->conn = NULL;
    c->done = 1;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, NULL);
}

static const struct p11n_uvconn_cbs run_cbs = {on_connect, on_reply, on_close};

static int start_clients(struct runner *r)
{
    r->clients = calloc((size_t)r->opt.clients, sizeof(*r->clients));
    if (!r->clients) return -1;
    for (unsigned i = 0; i < (unsigned)r->opt.clients; i++) {
        struct rclient *c = &r->clients[i];
        c->r = r;
        c->idx = i;
        c->slots = calloc((size_t)r->opt.pipeline, sizeof(*c->slots));
        c->sub_inst = calloc(r->n_lines + 1, sizeof(*c->sub_inst));
        c->done_inst = calloc(r->n_lines + 1, sizeof(*c->done_inst));
        c->result = calloc(r->n_lines + 1, sizeof(*c->result));
        if (!c->slots || !c->sub_inst || !c->done_inst || !c->result) return -1;
        uv_timer_init(&r->loop, &c->timer);
        c->timer.data = c;
        if (p11n_uvconn_open_tls(&r->loop, &r->addr, REPLY_MAX, r->tls_ctx ? &r->tls : NULL, &run_cbs, c, &c->conn) != P11N_OK) {
            c->conn = NULL;
            c->done = 1;
            uv_close((uv_handle_t *)&c->timer, NULL);
            fprintf(stderr, "p11net run: client %u: cannot start a connection\n", i);
            continue;
        }
        uv_timer_start(&c->timer, timeout_cb, (uint64_t)r->timeout_ms, 0); /* connect timeout */
    }
    return 0;
}

static void free_clients(struct runner *r)
{
    for (unsigned i = 0; r->clients && i < (unsigned)r->opt.clients; i++) {
        struct rclient *c = &r->clients[i];
        for (size_t k = 0; c->result && k < r->n_lines; k++) free(c->result[k]);
        free(c->result);
        free(c->sub_inst);
        free(c->done_inst);
        free(c->slots);
    }
    free(r->clients);
}

static int run_opt(void *ctx, int opt, const char *arg)
{
    struct run_opts *o = ctx;
    switch (opt) {
    case 'n': return p11n_cli_number("-n", arg, 1, 100000, &o->clients);
    case 'p': return p11n_cli_number("--pipeline", arg, 1, 4096, &o->pipeline);
    case 'r': return p11n_cli_number("--repeat", arg, 1, 1000000, &o->repeat);
    case 'q': o->quiet = 1; return 0;
    }
    return -1;
}

int p11n_cmd_run(int argc, char **argv)
{
    static const struct option extra[] = {
        {"clients", required_argument, NULL, 'n'},
        {"pipeline", required_argument, NULL, 'p'},
        {"repeat", required_argument, NULL, 'r'},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    static const struct p11n_cli_cmd cmd = {
        "run", "-n N [OPTIONS] FILE",
        "Starts N clients at once, each with its own connection playing the whole requests file\n"
        "(Type,Slot,PIN,Data lines). Prints one line per reply, then the summary line\n"
        "  requests=<n> ok=<n> failed=<n> lost=<n> elapsed_s=<x> rate=<req/s> p50_ms=<x> p99_ms=<x>\n"
        "Exit status: 0 when nothing was lost, 1 otherwise, 2 for bad usage.",
        "  -n, --clients N      concurrent clients (default 1)\n"
        "  -p, --pipeline K     requests in flight per client (default 1)\n"
        "  -r, --repeat R       play the file R times (default 1)\n"
        "  -q, --quiet          only the summary line\n"
        "  --key, --mech        apply to every request; --timeout: no reply for that long = lost\n",
        extra, "n:p:r:q", run_opt};
    struct run_opts ro = {1, 1, 1, 0};
    struct p11n_cliopts o;
    struct runner *r = calloc(1, sizeof(*r));
    p11net_target base;
    const char *why = NULL;
    uint64_t t0, requests, lost;
    double elapsed;
    int first, st = P11N_EXIT_USAGE;

    if (!r) return P11N_EXIT_FAIL;
    signal(SIGPIPE, SIG_IGN);
    first = p11n_cli_parse(argc, argv, &cmd, &o, &ro);
    if (first < 0) {
        st = first == -1 ? P11N_EXIT_OK : P11N_EXIT_USAGE;
        goto out_opts;
    }
    if (argc - first != 1) {
        fprintf(stderr, "p11net run: expected one FILE (try --help)\n");
        goto out_opts;
    }
    if (p11n_ctls_wanted(&o.conn)) {
        char why_tls[256] = "";
        if (p11n_ctls_setup(&o.conn, o.server, &r->tls_ctx, r->servername, sizeof(r->servername), why_tls,
                            sizeof(why_tls)) != P11N_OK) {
            fprintf(stderr, "p11net run: TLS: %s\n", why_tls);
            st = P11N_EXIT_USAGE;
            goto out_opts;
        }
        r->tls.ctx = r->tls_ctx;
        r->tls.servername = r->servername;
    }
    r->file = argv[first];
    r->opt = ro;
    if (load(r) < 0) goto out;
    if (p11n_addr_resolve(o.server, &r->addr, &why) != P11N_OK) {
        fprintf(stderr, "p11net run: server address '%s': %s\n", o.server, why ? why : "invalid");
        goto out;
    }
    st = P11N_EXIT_FAIL;
    p11n_cliopts_target(&o, &base);
    r->base = &base;
    r->timeout_ms = o.conn.timeout_ms;
    if (p11n_hist_init(&r->hist) != P11N_OK || uv_loop_init(&r->loop) != 0) goto out;
    t0 = uv_hrtime();
    if (start_clients(r) < 0) {
        fprintf(stderr, "p11net run: out of memory\n");
        uv_run(&r->loop, UV_RUN_DEFAULT); /* let the started ones finish closing */
    } else {
        uv_run(&r->loop, UV_RUN_DEFAULT);
    }
    elapsed = (double)(uv_hrtime() - t0) / 1e9;
    if (uv_loop_close(&r->loop) != 0) fprintf(stderr, "p11net run: internal error: handles left open\n");

    requests = (uint64_t)ro.clients * (uint64_t)ro.repeat * r->n_lines;
    lost = requests - r->ok - r->failed;
    printf("requests=%llu ok=%llu failed=%llu lost=%llu elapsed_s=%.3f rate=%.1f p50_ms=%.3f p99_ms=%.3f\n",
           (unsigned long long)requests, (unsigned long long)r->ok, (unsigned long long)r->failed,
           (unsigned long long)lost, elapsed, elapsed > 0 ? (double)(r->ok + r->failed) / elapsed : 0.0,
           ms_of(p11n_hist_quantile(&r->hist, 0.50)), ms_of(p11n_hist_quantile(&r->hist, 0.99)));
    fflush(stdout);
    st = lost == 0 ? P11N_EXIT_OK : P11N_EXIT_FAIL;
out:
    free_clients(r);
    free_lines(r->lines, r->n_lines);
    p11n_hist_cleanup(&r->hist);
    p11n_buf_cleanup(&r->frame);
out_opts:
    p11n_tls_ctx_free(r->tls_ctx);
    p11n_cliopts_cleanup(&o);
    free(r);
    return st;
}
