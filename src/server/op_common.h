/* What every op handler does before and after its own work, written once:
 * resolve the token (NO_SUCH_SLOT) -> access.h (UNAUTHORIZED, THROTTLED) -> PIN
 * (PIN_INCORRECT, reported to access.h) -> borrow a session -> mechanism fits the
 * operation (UNSUPPORTED) -> find the key (KEY_NOT_FOUND, UNSUPPORTED).
 * Thread: the pool thread that owns req. */
#ifndef P11N_OP_COMMON_H
#define P11N_OP_COMMON_H

#include "hsm.h"
#include "req.h"

struct p11n_op_ctx {
    struct p11n_req *req;
    struct p11n_hsm_job job;    /* token, borrowed session, verified PIN */
    struct p11n_key key;        /* valid after p11n_op_begin with a key use */
    enum p11n_mech mech;        /* what to run on the HSM (ECDSA: over a SHA-256 digest) */
    int prehash_sha256;         /* ECDSA_SHA256: hash the input in software first */
};

/* Runs the prelude for an operation that needs a key for `use`. On failure req->rc
 * and req->err are set, nothing is held, and the rc is returned. On P11N_OK the
 * caller must call p11n_op_end. */
P11N_MUST_USE p11n_rc p11n_op_begin(struct p11n_op_ctx *c, struct p11n_req *req, enum p11n_key_use use);
/* The same without the key (LIST with a PIN). */
P11N_MUST_USE p11n_rc p11n_op_begin_token(struct p11n_op_ctx *c, struct p11n_req *req);
/* Returns the session. */
void p11n_op_end(struct p11n_op_ctx *c);

/* Fails req with rc and the HSM layer's message (job.err) or msg; in a batch of
 * more than one input, "item <k>: " goes in front. Clears any outputs already produced, since a batch
 * fails whole. Returns rc. */
p11n_rc p11n_op_fail(struct p11n_op_ctx *c, p11n_rc rc);
p11n_rc p11n_op_fail_item(struct p11n_op_ctx *c, size_t k, p11n_rc rc, const char *msg);

/* Decodes a base64 text input (ciphertext, signature) unless dispatch already did
 * (msg->binary). *out views either the input or store. P11N_E_BAD_REQUEST. */
P11N_MUST_USE p11n_rc p11n_op_b64_input(const struct p11n_req *req, struct p11n_slice in, struct p11n_buf *store,
                                        struct p11n_slice *out);
/* Appends base64(bytes) to req->out. */
P11N_MUST_USE p11n_rc p11n_op_push_b64(struct p11n_req *req, struct p11n_slice bytes);

#endif
