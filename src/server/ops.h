/* Operation handlers: one per request type that needs the HSM. Each runs on a pool
 * thread (never the loop thread), reads req's [in] fields and fills its [out]
 * fields (see req.h). By the time a handler runs, dispatch.c has checked the form
 * of the request: the flag, the number of inputs (1..max_batch, or exactly 2 for
 * VERIFY), a known mechanism, and decoded base64 inputs when msg->binary.
 *
 * A handler resolves the token (NO_SUCH_SLOT), asks access.h whether this client may
 * use it (UNAUTHORIZED, THROTTLED), checks the PIN (PIN_INCORRECT), finds the key
 * (KEY_NOT_FOUND), checks what the module would reject vaguely (DATA_INVALID,
 * UNSUPPORTED), runs the operation, and returns P11N_OK with req->out filled, or the
 * failing rc with req->err set (p11n_req_fail). HSM_ERROR messages start with the
 * CKR_ name. Batches succeed or fail whole: "item <k>: <message>". */
#ifndef P11N_OPS_H
#define P11N_OPS_H

#include "req.h"

P11N_MUST_USE p11n_rc p11n_op_list(struct p11n_req *req);    /* LIST, with or without pin */
P11N_MUST_USE p11n_rc p11n_op_sign(struct p11n_req *req);    /* SIGN */
P11N_MUST_USE p11n_rc p11n_op_verify(struct p11n_req *req);  /* VERIFY */
P11N_MUST_USE p11n_rc p11n_op_encrypt(struct p11n_req *req); /* ENCRYPT */
P11N_MUST_USE p11n_rc p11n_op_decrypt(struct p11n_req *req); /* DECRYPT */

#endif
