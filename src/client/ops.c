/* One blocking call per operation, each a p11net_submit + p11net_wait, and the
 * reply accessors. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "client_impl.h"
#include "secret.h"
#include "encode.h"

p11net_reply *p11n_reply_wrap(p11n_msg *msg)
{
    p11net_reply *r = malloc(sizeof(*r));
    if (!r) {
        p11n_msg_free(msg);
        return NULL;
    }
    r->msg = msg;
    return r;
}

size_t p11net_reply_count(const p11net_reply *r)
{
    return r ? r->msg->n_data : 0;
}

const char *p11net_reply_item(const p11net_reply *r, size_t i)
{
    if (!r || i >= r->msg->n_data) return NULL;
    return r->msg->data[i] ? r->msg->data[i] : "";
}

int p11net_reply_decode(const p11net_reply *r, size_t i, unsigned char **bytes, size_t *len)
{
    const char *item = p11net_reply_item(r, i);
    struct p11n_buf out = {0};
    p11n_rc rc;

    *bytes = NULL;
    *len = 0;
    if (!item) return P11NET_ERR_USAGE;
    /* Reserve one byte so an empty result still yields a non-NULL buffer. */
    rc = p11n_buf_reserve(&out, 1, SIZE_MAX);
    if (rc == P11N_OK) rc = p11n_b64_decode(p11n_slice_of(item, strlen(item)), &out);
    if (rc != P11N_OK) {
        p11n_buf_cleanup(&out);
        return rc == P11N_E_NOMEM ? P11NET_ERR_NOMEM : P11NET_ERR_PROTOCOL;
    }
    *bytes = out.data;
    *len = out.len;
    return P11NET_OK;
}

void p11net_reply_free(p11net_reply *r)
{
    if (!r) return;
    /* Replies carry plaintexts: wipe them, not only the (empty) PIN. */
    for (size_t i = 0; i < r->msg->n_data; i++) p11n_wipe_str(r->msg->data[i]);
    p11n_msg_free(r->msg);
    free(r);
}

void p11net_free(void *p, size_t len)
{
    if (!p) return;
    OPENSSL_cleanse(p, len);
    free(p);
}

/* Submits one request and waits for its reply within the handle's timeout. */
static int call(p11net_client *c, p11net_op op, const p11net_target *t, const p11net_data *in, size_t n,
                p11net_reply **out, p11net_error *err)
{
    p11net_request req;
    p11net_reply *reply = NULL;
    uint64_t id;
    int st;

    memset(&req, 0, sizeof(req));
    req.op = op;
    if (t) req.target = *t;
    req.inputs = in;
    req.n_inputs = n;
    if (out) *out = NULL;
    if ((st = p11net_submit(c, &req, &id, err)) != P11NET_OK) return st;
    if ((st = p11net_wait(c, id, p11n_client_timeout(c), &reply, err)) != P11NET_OK) return st;
    if (out)
        *out = reply;
    else
        p11net_reply_free(reply);
    if (err) p11n_error_set(err, P11NET_OK, P11NET_CODE_NONE, "ok");
    return P11NET_OK;
}

int p11net_ping(p11net_client *c, p11net_error *err)
{
    return call(c, P11NET_OP_PING, NULL, NULL, 0, NULL, err);
}

int p11net_list_tokens(p11net_client *c, p11net_reply **out, p11net_error *err)
{
    return call(c, P11NET_OP_LIST, NULL, NULL, 0, out, err);
}

int p11net_list_keys(p11net_client *c, const p11net_target *t, p11net_reply **out, p11net_error *err)
{
    return call(c, P11NET_OP_LIST, t, NULL, 0, out, err);
}

int p11net_sign(p11net_client *c, const p11net_target *t, const p11net_data *msgs, size_t n, p11net_reply **out,
                p11net_error *err)
{
    return call(c, P11NET_OP_SIGN, t, msgs, n, out, err);
}

int p11net_verify(p11net_client *c, const p11net_target *t, p11net_data msg, const char *sig_b64,
                  p11net_error *err)
{
    p11net_data in[2] = {msg, {sig_b64, sig_b64 ? strlen(sig_b64) : 0}};
    return call(c, P11NET_OP_VERIFY, t, in, 2, NULL, err);
}

int p11net_encrypt(p11net_client *c, const p11net_target *t, const p11net_data *plain, size_t n,
                   p11net_reply **out, p11net_error *err)
{
    return call(c, P11NET_OP_ENCRYPT, t, plain, n, out, err);
}

int p11net_decrypt(p11net_client *c, const p11net_target *t, const p11net_data *cipher, size_t n,
                   p11net_reply **out, p11net_error *err)
{
    return call(c, P11NET_OP_DECRYPT, t, cipher, n, out, err);
}
