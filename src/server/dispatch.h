/* From a frame to a request: decode, check the form, route. Loop thread only.
 * dispatch.c is also the one place that turns p11n_rc into PROTOCOL.md's ErrorCode. */
#ifndef P11N_DISPATCH_H
#define P11N_DISPATCH_H

#include "buf.h"
#include "proto.h"

struct p11n_conn;

/* Handles one frame body read on c: answers it at once (ping, bad form, draining)
 * or queues it to the worker pool. The body's bytes are wiped once decoded, since
 * they may hold a PIN. Counts the request in c->inflight. */
void p11n_dispatch_frame(struct p11n_conn *c, struct p11n_slice body);

struct p11n_req;
/* Checks the form of req->msg (type, mechanism, number of inputs, base64 when
 * binary), moves the PIN into req->pin (wiping the message's copy) and fills
 * req->op and req's inputs. P11N_OK, or the failing rc with req->err set. Pure:
 * no I/O, no HSM (the fuzz harness calls it directly). */
P11N_MUST_USE p11n_rc p11n_dispatch_prepare(struct p11n_req *req, size_t max_batch);

/* Wire ErrorCode for rc (HSM_ERROR for anything internal). */
P11net__ErrorCode p11n_dispatch_code(p11n_rc rc);

#endif
