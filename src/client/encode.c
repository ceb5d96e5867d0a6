#include "encode.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "b64.h"
#include "strvec.h"

/* Whether input i of req travels base64-encoded by us (raw bytes given) or as
 * the caller's text. See p11net_request in client.h. */
static int encode_input(const p11net_request *req, size_t i)
{
    if (req->op == P11NET_OP_DECRYPT) return 0;
    if (req->op == P11NET_OP_VERIFY && i == 1) return 0;
    return req->target.binary != 0;
}

static p11n_rc push_input(struct p11n_strvec *v, const p11net_data *d, int b64)
{
    struct p11n_slice s = p11n_slice_of(d->p, d->len);
    struct p11n_buf enc = {0};
    p11n_rc rc;

    if (!b64) {
        /* protobuf strings end at the first NUL: refuse rather than truncate. */
        P11N_ENSURE(d->len == 0 || memchr(d->p, 0, d->len) == NULL, P11N_E_USAGE);
        return p11n_strvec_push(v, s);
    }
    rc = p11n_b64_encode(s, &enc);
    if (rc == P11N_OK) rc = p11n_strvec_take(v, &enc);
    p11n_buf_cleanup(&enc);
    return rc;
}

p11n_rc p11n_request_encode(const p11net_request *req, const char *id, int32_t seq, struct p11n_buf *out)
{
    p11n_msg msg = P11NET__PROTO_MESSAGE__INIT;
    struct p11n_strvec data = {0};
    p11n_rc rc = P11N_OK;
    const p11net_target *t = &req->target;

    P11N_ENSURE(req->op >= P11NET_OP_PING && req->op <= P11NET_OP_VERIFY, P11N_E_USAGE);
    P11N_ENSURE(req->op != P11NET_OP_VERIFY || req->n_inputs == 2, P11N_E_USAGE);
    P11N_ENSURE(req->n_inputs == 0 || req->inputs != NULL, P11N_E_USAGE);
    for (size_t i = 0; i < req->n_inputs && rc == P11N_OK; i++)
        rc = push_input(&data, &req->inputs[i], encode_input(req, i));
    if (rc == P11N_OK) {
        /* The generated struct wants non-const char *; pack only reads them. */
        msg.id = (char *)(id ? id : "");
        msg.seq = seq;
        msg.flag = (P11net__ProtoMessageType)req->op;
        msg.slot = t->slot;
        msg.pin = (char *)(t->pin ? t->pin : "");
        msg.token = (char *)(t->token ? t->token : "");
        msg.key = (char *)(t->key ? t->key : "");
        msg.mechanism = (P11net__Mechanism)t->mech;
        msg.binary = t->binary != 0;
        msg.n_data = data.len;
        msg.data = data.items;
        rc = p11n_msg_append_frame(&msg, out);
    }
    p11n_strvec_cleanup(&data);
    return rc;
}

void p11n_error_set(p11net_error *err, p11net_status st, p11net_code code, const char *fmt, ...)
{
    va_list ap;

    if (!err) return;
    err->status = st;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

int p11n_reply_check(const p11n_msg *msg, p11net_error *err)
{
    if (!msg->err) return P11NET_OK;
    p11n_error_set(err, P11NET_ERR_SERVER, (p11net_code)msg->code, "%s: %s",
                   p11net_code_name((p11net_code)msg->code),
                   msg->n_data > 0 && msg->data[0] ? msg->data[0] : "(no message)");
    return P11NET_ERR_SERVER;
}

p11net_status p11n_status_of(p11n_rc rc)
{
    switch (rc) {
    case P11N_OK: return P11NET_OK;
    case P11N_E_TIMEOUT: return P11NET_ERR_TIMEOUT;
    case P11N_E_CLOSED: return P11NET_ERR_CLOSED;
    case P11N_E_PROTOCOL:
    case P11N_E_TOO_LARGE: return P11NET_ERR_PROTOCOL;
    case P11N_E_NOMEM: return P11NET_ERR_NOMEM;
    case P11N_E_USAGE: return P11NET_ERR_USAGE;
    case P11N_E_TLS: return P11NET_ERR_TLS;
    default: return P11NET_ERR_IO;
    }
}
