/* protobuf-c glue: decoding a frame body into a ProtoMessage and packing a
 * ProtoMessage into a frame. The generated code lives in build/gen. */
#ifndef P11N_PROTO_H
#define P11N_PROTO_H

#include "buf.h"
#include "p11net.pb-c.h"

typedef P11net__ProtoMessage p11n_msg;

/* Decodes body; P11N_E_BAD_REQUEST when it is not a ProtoMessage. Free with
 * p11n_msg_free. */
P11N_MUST_USE p11n_rc p11n_msg_decode(struct p11n_slice body, p11n_msg **out);
/* Wipes the PIN inside msg, then frees it. Accepts NULL. */
void p11n_msg_free(p11n_msg *msg);
/* Appends msg to out as one frame (header + body). */
P11N_MUST_USE p11n_rc p11n_msg_append_frame(const p11n_msg *msg, struct p11n_buf *out);

#endif
