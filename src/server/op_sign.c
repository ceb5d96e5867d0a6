/* SIGN and VERIFY. */
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "op_common.h"
#include "ops.h"

/* ECDSA_SHA256 hashes in software (CKM_ECDSA signs a digest); *msg is replaced by
 * a view of digest then. */
static void prepare_input(const struct p11n_op_ctx *c, struct p11n_slice *msg, uint8_t digest[SHA256_DIGEST_LENGTH])
{
    if (!c->prehash_sha256) return;
    SHA256(msg->p, msg->len, digest);
    *msg = p11n_slice_of(digest, SHA256_DIGEST_LENGTH);
}

/* Thread: req's pool thread. Every input signed on one session with one key; the
 * batch fails whole at its first failing item. */
p11n_rc p11n_op_sign(struct p11n_req *req)
{
    struct p11n_op_ctx c;
    struct p11n_buf sig = {0};
    p11n_rc rc = P11N_OK;

    P11N_TRY(p11n_op_begin(&c, req, P11N_USE_SIGN));
    for (size_t k = 0; k < req->n_in && rc == P11N_OK; k++) {
        uint8_t digest[SHA256_DIGEST_LENGTH];
        struct p11n_slice msg = req->in[k];

        prepare_input(&c, &msg, digest);
        sig.len = 0;
        rc = p11n_hsm_sign(&c.job, &c.key, c.mech, msg, &sig);
        if (rc != P11N_OK) {
            rc = p11n_op_fail_item(&c, k, rc, NULL);
            break;
        }
        rc = p11n_op_push_b64(req, p11n_buf_slice(&sig));
        if (rc != P11N_OK) rc = p11n_op_fail_item(&c, k, rc, "out of memory");
    }
    p11n_buf_cleanup(&sig);
    p11n_op_end(&c);
    return rc;
}

/* Thread: req's pool thread. in[0] message, in[1] signature (base64 text unless
 * binary, where dispatch decoded it already). */
p11n_rc p11n_op_verify(struct p11n_req *req)
{
    struct p11n_op_ctx c;
    struct p11n_buf store = {0};
    struct p11n_slice msg, sig;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    p11n_rc rc;

    P11N_TRY(p11n_op_begin(&c, req, P11N_USE_VERIFY));
    if (req->n_in != 2) {
        p11n_op_end(&c);
        return p11n_req_fail(req, P11N_E_BAD_REQUEST, "VERIFY takes a message and a signature");
    }
    msg = req->in[0];
    rc = p11n_op_b64_input(req, req->in[1], &store, &sig);
    if (rc != P11N_OK) {
        rc = p11n_req_fail(req, P11N_E_BAD_REQUEST, "signature is not base64");
    } else {
        prepare_input(&c, &msg, digest);
        rc = p11n_hsm_verify(&c.job, &c.key, c.mech, msg, sig);
        if (rc == P11N_OK)
            rc = p11n_strvec_pushf(&req->out, "valid");
        else
            rc = p11n_op_fail(&c, rc);
    }
    p11n_buf_cleanup(&store);
    p11n_op_end(&c);
    return rc;
}
