/* A frame body as the server sees it: protobuf decoding, then the form checks of
 * dispatch (type, mechanism, input count, base64), without the HSM. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"
#include "proto.h"
#include "req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct p11n_req *req;
    p11n_msg *msg;
    p11n_rc rc;

    if (p11n_msg_decode(p11n_slice_of(data, size), &msg) != P11N_OK) return 0;
    req = calloc(1, sizeof(*req));
    if (!req) abort();
    req->msg = msg;
    rc = p11n_dispatch_prepare(req, 8);
    if (rc == P11N_OK) {
        if (!req->op) abort();
        for (size_t i = 0; i < req->n_in; i++)
            if (req->in[i].len && req->in[i].p == NULL) abort();
        if (msg->pin[0] != 0) abort(); /* the PIN must have been wiped from the message */
    } else if (!req->err[0]) {
        abort(); /* every refusal carries a message */
    }
    p11n_dispatch_code(rc);
    p11n_req_free(req);
    return 0;
}
