/* The frame decoder on hostile input: the first byte picks a chunk size, the rest
 * is the stream. Every frame returned must lie inside what was fed, and no chunking
 * may make the decoder buffer more than max_frame + header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

#define MAX_FRAME 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct p11n_frame_decoder d;
    size_t step, off = 1;

    if (size < 1) return 0;
    step = (size_t)data[0] % 17 + 1;
    p11n_frame_decoder_init(&d, MAX_FRAME);
    while (off < size) {
        size_t len = size - off < step ? size - off : step;
        struct p11n_slice chunk = p11n_slice_of(data + off, len), body;
        p11n_rc why = P11N_OK;
        enum p11n_parse r;
        while ((r = p11n_frame_next(&d, &chunk, &body, &why)) == P11N_PARSE_FRAME) {
            if (body.len > MAX_FRAME) abort();
            if (body.len) {
                volatile uint8_t sink = body.p[0] ^ body.p[body.len - 1]; /* ASan checks the bounds */
                (void)sink;
            }
        }
        if (r == P11N_PARSE_ERROR) {
            if (why != P11N_E_TOO_LARGE) abort();
            break;
        }
        if (d.partial.cap > MAX_FRAME + P11N_FRAME_HEADER) abort();
        off += len;
    }
    p11n_frame_decoder_cleanup(&d);
    return 0;
}
