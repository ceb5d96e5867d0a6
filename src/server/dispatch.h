/* From a frame to a request: decode, check the form, route, reply. Loop threads,
 * except p11n_dispatch_run.
 * dispatch.c is also the one place that turns p11n_rc into PROTOCOL.md's ErrorCode. */
#ifndef P11N_DISPATCH_H
#define P11N_DISPATCH_H

#include "buf.h"
#include "proto.h"

struct p11n_conn;

/* Handles one frame body read on c: answers it at once (ping, bad form, draining)
 * or hands it to c's reactor, which runs it inline or in the worker pool. The body's bytes are wiped once decoded, since
 * they may hold a PIN. Counts the request in c->inflight. */
void p11n_dispatch_frame(struct p11n_conn *c, struct p11n_slice body);

struct p11n_req;
/* Checks the form of req->msg (type, mechanism, number of inputs, base64 when
 * binary), moves the PIN into req->pin (wiping the message's copy) and fills
 * req->op and req's inputs. P11N_OK, or the failing rc with req->err set. Pure:
 * no I/O, no HSM (the fuzz harness calls it directly). */
P11N_MUST_USE p11n_rc p11n_dispatch_prepare(struct p11n_req *req, size_t max_batch);

/* Runs a prepared request's handler: on a pool thread or, inline, on the loop
 * thread. Touches only the req's [in] and [out] fields (req.h). */
void p11n_dispatch_run(struct p11n_req *req);
/* Loop thread, after p11n_dispatch_run (or a failure to start it, req->rc set):
 * writes the reply, frees req and drops its reference on the conn. */
void p11n_dispatch_finish(struct p11n_req *req);
/* Wire ErrorCode for rc (HSM_ERROR for anything internal). */
P11net__ErrorCode p11n_dispatch_code(p11n_rc rc);

#endif
