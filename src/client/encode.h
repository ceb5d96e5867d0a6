/* Turning a p11net_request into a frame, and a reply frame into the caller's
 * view. Shared by the blocking library (client.c) and the libuv engine of
 * `run` and `bench`, so every request p11net sends is built in one place. */
#ifndef P11N_CLIENT_ENCODE_H
#define P11N_CLIENT_ENCODE_H

#include "p11net/client.h"
#include "proto.h"

/* Appends req as one frame to out, with the given id and seq.
 * The request frame holds the PIN: out must be wiped (p11n_buf_cleanup does).
 * P11N_E_USAGE when a text input holds a NUL byte or VERIFY lacks its pair. */
P11N_MUST_USE p11n_rc p11n_request_encode(const p11net_request *req, const char *id, int32_t seq,
                                          struct p11n_buf *out);

/* Fills err (may be NULL) from a status and a message. */
void p11n_error_set(p11net_error *err, p11net_status st, p11net_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* If msg is an error reply, fills err with its code and message and returns
 * P11NET_ERR_SERVER; else P11NET_OK. */
int p11n_reply_check(const p11n_msg *msg, p11net_error *err);
/* Maps an internal rc to the public status (transport failures). */
p11net_status p11n_status_of(p11n_rc rc);

#endif
