/* The request table: one row per request type. A new operation is a row here plus
 * a handler in op_<name>.c. Rows say how many inputs a request takes; everything
 * else a handler needs checked before it runs (mechanism, base64) is checked here
 * too, so that form errors come first, as PROTOCOL.md's order of checks says. */
#include "dispatch.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "b64.h"
#include "conn.h"
#include "log.h"
#include "ops.h"
#include "reactor.h"
#include "req.h"

struct p11n_op {
    P11net__ProtoMessageType flag;
    const char *name;
    size_t min_in;     /* inputs in data */
    size_t max_in;     /* 0: --max-batch */
    int uses_data;     /* LIST ignores data, so the prototype's empty item is fine */
    p11n_rc (*handler)(struct p11n_req *req);
};

static const struct p11n_op op_table[] = {
    {P11NET__PROTO_MESSAGE_TYPE__LIST, "LIST", 0, 0, 0, p11n_op_list},
    {P11NET__PROTO_MESSAGE_TYPE__ENCRYPT, "ENCRYPT", 1, 0, 1, p11n_op_encrypt},
    {P11NET__PROTO_MESSAGE_TYPE__SIGN, "SIGN", 1, 0, 1, p11n_op_sign},
    {P11NET__PROTO_MESSAGE_TYPE__DECRYPT, "DECRYPT", 1, 0, 1, p11n_op_decrypt},
    {P11NET__PROTO_MESSAGE_TYPE__VERIFY, "VERIFY", 2, 2, 1, p11n_op_verify},
};

P11net__ErrorCode p11n_dispatch_code(p11n_rc rc)
{
    switch (rc) {
    case P11N_OK: return P11NET__ERROR_CODE__NONE;
    case P11N_E_BAD_REQUEST: return P11NET__ERROR_CODE__BAD_REQUEST;
    case P11N_E_UNSUPPORTED: return P11NET__ERROR_CODE__UNSUPPORTED;
    case P11N_E_NO_SUCH_SLOT: return P11NET__ERROR_CODE__NO_SUCH_SLOT;
    case P11N_E_PIN_INCORRECT: return P11NET__ERROR_CODE__PIN_INCORRECT;
    case P11N_E_KEY_NOT_FOUND: return P11NET__ERROR_CODE__KEY_NOT_FOUND;
    case P11N_E_SIGNATURE_INVALID: return P11NET__ERROR_CODE__SIGNATURE_INVALID;
    case P11N_E_DATA_INVALID: return P11NET__ERROR_CODE__DATA_INVALID;
    case P11N_E_BUSY: return P11NET__ERROR_CODE__BUSY;
    case P11N_E_TOO_LARGE: return P11NET__ERROR_CODE__TOO_LARGE;
    case P11N_E_UNAUTHORIZED: return P11NET__ERROR_CODE__UNAUTHORIZED;
    case P11N_E_THROTTLED: return P11NET__ERROR_CODE__THROTTLED;
    case P11N_E_SHUTTING_DOWN: return P11NET__ERROR_CODE__SHUTTING_DOWN;
    default: return P11NET__ERROR_CODE__HSM_ERROR; /* HSM_ERROR, NOMEM, STALE, ... */
    }
}

/* Copies a client-chosen id into buf for a log line: at most 32 printable bytes. */
static const char *loggable_id(const char *id, char buf[40])
{
    size_t i;
    for (i = 0; id[i] && i < 32; i++) buf[i] = (id[i] >= 0x20 && id[i] < 0x7f && id[i] != '"') ? id[i] : '?';
    buf[i] = 0;
    return buf;
}

static double ms_since(uint64_t start_ns)
{
    return (double)(uv_hrtime() - start_ns) / 1e6;
}

/* Sends the reply to msg (which may be NULL when the frame did not decode). */
static void answer(struct p11n_conn *c, const p11n_msg *msg, p11n_rc rc, const char *message,
                   struct p11n_strvec *out)
{
    P11net__ProtoMessage reply = P11NET__PROTO_MESSAGE__INIT;
    char *err_data[1] = {(char *)message};

    if (msg) {
        reply.id = msg->id;
        reply.seq = msg->seq;
    }
    if (rc == P11N_OK) {
        reply.n_data = out ? out->len : 0;
        reply.data = out ? out->items : NULL;
    } else {
        reply.err = 1;
        reply.code = p11n_dispatch_code(rc);
        reply.n_data = 1;
        reply.data = err_data;
    }
    p11n_conn_reply(c, &reply);
}

void p11n_dispatch_run(struct p11n_req *req)
{
    req->rc = req->op->handler(req);
    /* LIST without a PIN names the tokens: only those this client may use. */
    if (req->rc == P11N_OK && req->op->flag == P11NET__PROTO_MESSAGE_TYPE__LIST && req->pin.len == 0)
        p11n_access_filter_tokens(req->grant, &req->out);
    if (req->rc != P11N_OK && !req->err[0]) snprintf(req->err, sizeof(req->err), "%s", p11n_rc_name(req->rc));
}

void p11n_dispatch_finish(struct p11n_req *req)
{
    struct p11n_conn *c = req->conn;
    char idbuf[40];

    p11n_log(P11N_LOG_DEBUG, "conn=%llu req=\"%s\" op=%s n=%zu rc=%s ms=%.3f", (unsigned long long)c->id,
             loggable_id(req->msg->id, idbuf), req->op->name, req->n_in, p11n_rc_name(req->rc),
             ms_since(req->t_start_ns));
    answer(c, req->msg, req->rc, req->err, &req->out);
    p11n_req_free(req);
    p11n_conn_unref(c);
}

static const struct p11n_op *find_op(P11net__ProtoMessageType flag)
{
    for (size_t i = 0; i < sizeof(op_table) / sizeof(op_table[0]); i++)
        if (op_table[i].flag == flag) return &op_table[i];
    return NULL;
}

p11n_rc p11n_dispatch_prepare(struct p11n_req *req, size_t max_batch)
{
    p11n_msg *msg = req->msg;
    const struct p11n_op *op = find_op(msg->flag);
    size_t max_in;
    p11n_rc rc;

    if (!op) return p11n_req_fail(req, P11N_E_BAD_REQUEST, "unknown request type %d", (int)msg->flag);
    req->op = op;
    rc = p11n_secret_set(&req->pin, msg->pin, strlen(msg->pin));
    p11n_wipe_str(msg->pin);
    if (rc != P11N_OK) return p11n_req_fail(req, rc, "pin longer than %d bytes", P11N_SECRET_MAX);
    max_in = op->max_in ? op->max_in : max_batch;

    if (msg->mechanism < P11NET__MECHANISM__MECH_DEFAULT || msg->mechanism > P11NET__MECHANISM__EDDSA)
        return p11n_req_fail(req, P11N_E_BAD_REQUEST, "unknown mechanism %d", (int)msg->mechanism);
    if (!op->uses_data) return P11N_OK;
    if (msg->n_data < op->min_in || msg->n_data > max_in)
        return p11n_req_fail(req, P11N_E_BAD_REQUEST, "%s takes %zu to %zu inputs, not %zu", op->name, op->min_in,
                             max_in, msg->n_data);
    req->n_in = msg->n_data;
    req->in = calloc(req->n_in, sizeof(*req->in));
    if (!req->in) return p11n_req_fail(req, P11N_E_NOMEM, "out of memory");
    if (msg->binary) {
        req->in_store = calloc(req->n_in, sizeof(*req->in_store));
        if (!req->in_store) return p11n_req_fail(req, P11N_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < req->n_in; i++) {
        struct p11n_slice text = p11n_slice_of(msg->data[i], strlen(msg->data[i]));
        if (!msg->binary) {
            req->in[i] = text;
            continue;
        }
        if (p11n_b64_decode(text, &req->in_store[i]) != P11N_OK)
            return p11n_req_fail(req, P11N_E_BAD_REQUEST, "item %zu: data is not valid base64", i);
        req->in[i] = p11n_buf_slice(&req->in_store[i]);
    }
    return P11N_OK;
}

void p11n_dispatch_frame(struct p11n_conn *c, struct p11n_slice body)
{
    struct p11n_server *srv = c->srv;
    struct p11n_req *req;
    p11n_msg *msg = NULL;
    p11n_rc rc;

    c->inflight++;
    rc = p11n_msg_decode(body, &msg);
    /* The raw bytes may hold a PIN; the decoded copy is all that is needed now. */
    OPENSSL_cleanse((void *)body.p, body.len);
    if (rc != P11N_OK) {
        answer(c, NULL, P11N_E_BAD_REQUEST, "frame body is not a ProtoMessage", NULL);
        return;
    }
    if (c->r->draining) {
        answer(c, msg, P11N_E_SHUTTING_DOWN, "server is shutting down; request not executed", NULL);
        p11n_msg_free(msg);
        return;
    }
    if (msg->flag == P11NET__PROTO_MESSAGE_TYPE__ACK) {
        /* A ping never needs the HSM: answer on the loop thread. */
        struct p11n_strvec out = {0};
        char *version = "p11netd " P11N_VERSION;
        out.items = &version;
        out.len = 1;
        answer(c, msg, P11N_OK, NULL, &out);
        p11n_msg_free(msg);
        return;
    }
    if (!(req = calloc(1, sizeof(*req)))) {
        answer(c, msg, P11N_E_NOMEM, "out of memory", NULL);
        p11n_msg_free(msg);
        return;
    }
    req->msg = msg;
    req->server = srv;
    req->conn = c;
    req->t_start_ns = uv_hrtime();
    snprintf(req->client_id, sizeof(req->client_id), "%s", c->identity);
    /* Frames arrive only after a TLS handshake, so the names are final here; the
     * ACL is immutable, so the rule found once serves every request of c. */
    if (!c->grant_set) {
        c->grant = p11n_access_grant(srv->access, &c->names, c->identity);
        c->grant_set = 1;
        p11n_log(P11N_LOG_DEBUG, "conn=%llu identity=\"%s\" acl=%s", (unsigned long long)c->id, c->identity,
                 c->grant ? "rule" : "none");
    }
    req->grant = c->grant;
    if ((rc = p11n_dispatch_prepare(req, srv->cfg.max_batch)) != P11N_OK) {
        answer(c, msg, rc, req->err, NULL);
        p11n_req_free(req);
        return;
    }
    c->refs++; /* the request points at c until p11n_dispatch_finish */
    p11n_reactor_submit(c->r, req);
}
