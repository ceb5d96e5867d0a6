/* A request: one decoded frame on its way to a reply.
 *
 * Ownership and threads. A req is created on the loop thread by dispatch.c when a
 * frame arrives and is owned by exactly one thread at a time: the conn's loop thread
 * until uv_queue_work, a pool thread inside the op handler, then the loop thread
 * again in the after-work callback, which writes the reply and frees the req (or
 * the loop thread throughout, when its reactor runs the req inline: reactor.h). Handlers (pool
 * threads) read only the fields marked [in] and write only those marked [out]; they
 * never touch req->conn. */
#ifndef P11N_REQ_H
#define P11N_REQ_H

#include <stddef.h>
#include <uv.h>

#include "buf.h"
#include "proto.h"
#include "secret.h"
#include "strvec.h"

struct p11n_server;
struct p11n_conn;
struct p11n_op;
struct p11n_grant;

/* Inputs of one request: data[i] as bytes (base64-decoded when binary). */
#define P11N_REQ_ERR_MAX 256

struct p11n_req {
    uv_work_t work;                /* libuv's */
    struct p11n_req *next;         /* loop thread: the reactor's list of requests to start */
    struct p11n_conn *conn;        /* loop thread only; a reference: valid until the req is freed */
    struct p11n_server *server;    /* [in] hsm, config; shared, read-only */
    const struct p11n_op *op;      /* [in] its dispatch row */
    p11n_msg *msg;                 /* [in] the decoded request; msg->pin already wiped */
    struct p11n_secret pin;        /* [in] the PIN, wiped when the req is freed */
    struct p11n_slice *in;         /* [in] n_in inputs (into msg->data or in_store) */
    size_t n_in;
    struct p11n_buf *in_store;     /* decoded base64 inputs, when msg->binary */
    char client_id[128];           /* [in] who asked: TLS identity or peer address */
    const struct p11n_grant *grant; /* [in] the conn's ACL rule (immutable, access.h); NULL: no token */
    uint64_t t_start_ns;           /* loop thread: when the frame was read */

    p11n_rc rc;                    /* [out] P11N_OK or why the request failed */
    struct p11n_strvec out;        /* [out] reply data on success */
    char err[P11N_REQ_ERR_MAX];    /* [out] human-readable message when rc != OK */
};

/* Sets rc and the error message of req; returns rc, so handlers can write
 *     return p11n_req_fail(req, P11N_E_KEY_NOT_FOUND, "no key '%s'", label);
 * The message must never contain a PIN, a plaintext or key bytes. */
p11n_rc p11n_req_fail(struct p11n_req *req, p11n_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline struct p11n_req *p11n_req_of_work(uv_work_t *w)
{
    return (struct p11n_req *)((char *)w - offsetof(struct p11n_req, work));
}

/* Frees req and everything it owns, wiping inputs, outputs and the PIN. */
void p11n_req_free(struct p11n_req *req);

#endif
