/* LIST: the tokens (no PIN) or the keys of one token (with a PIN). */
#include "op_common.h"
#include "ops.h"
#include "server.h"

/* Thread: req's pool thread. */
p11n_rc p11n_op_list(struct p11n_req *req)
{
    struct p11n_op_ctx c;
    p11n_rc rc;

    if (req->pin.len == 0) {
        char err[P11N_HSM_ERR_MAX] = "";
        rc = p11n_hsm_list_tokens(req->server->hsm, &req->out, err, sizeof(err));
        if (rc != P11N_OK) {
            p11n_strvec_cleanup(&req->out);
            return p11n_req_fail(req, rc, "%s", err[0] ? err : p11n_rc_name(rc));
        }
        return P11N_OK;
    }
    P11N_TRY(p11n_op_begin_token(&c, req));
    rc = p11n_hsm_list_keys(&c.job, &req->out);
    if (rc != P11N_OK) rc = p11n_op_fail(&c, rc);
    p11n_op_end(&c);
    return rc;
}
