#include "req.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

p11n_rc p11n_req_fail(struct p11n_req *req, p11n_rc rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(req->err, sizeof(req->err), fmt, ap);
    va_end(ap);
    req->rc = rc;
    return rc;
}

void p11n_req_free(struct p11n_req *req)
{
    if (!req) return;
    if (req->in_store) {
        for (size_t i = 0; i < req->n_in; i++) p11n_buf_cleanup(&req->in_store[i]);
        free(req->in_store);
    }
    free(req->in);
    /* Inputs may be plaintexts: wipe them before the message is freed. */
    if (req->msg)
        for (size_t i = 0; i < req->msg->n_data; i++) p11n_wipe_str(req->msg->data[i]);
    p11n_msg_free(req->msg);
    p11n_secret_cleanup(&req->pin);
    p11n_strvec_cleanup(&req->out);
    free(req);
}
