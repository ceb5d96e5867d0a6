#include "proto.h"

#include "frame.h"
#include "secret.h"

p11n_rc p11n_msg_decode(struct p11n_slice body, p11n_msg **out)
{
    *out = p11net__proto_message__unpack(NULL, body.len, body.p);
    P11N_ENSURE(*out != NULL, P11N_E_BAD_REQUEST);
    return P11N_OK;
}

void p11n_msg_free(p11n_msg *msg)
{
    if (!msg) return;
    p11n_wipe_str(msg->pin);
    p11net__proto_message__free_unpacked(msg, NULL);
}

p11n_rc p11n_msg_append_frame(const p11n_msg *msg, struct p11n_buf *out)
{
    size_t n = p11net__proto_message__get_packed_size(msg);

    P11N_ENSURE(n <= UINT32_MAX, P11N_E_TOO_LARGE);
    P11N_TRY(p11n_buf_reserve(out, P11N_FRAME_HEADER + n, SIZE_MAX));
    p11n_frame_header(out->data + out->len, (uint32_t)n);
    p11net__proto_message__pack(msg, out->data + out->len + P11N_FRAME_HEADER);
    out->len += P11N_FRAME_HEADER + n;
    return P11N_OK;
}
