#include "frame.h"

#include <string.h>

void p11n_frame_decoder_init(struct p11n_frame_decoder *d, size_t max_frame)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = max_frame;
}

void p11n_frame_decoder_cleanup(struct p11n_frame_decoder *d)
{
    p11n_buf_cleanup(&d->partial);
    d->partial_done = 0;
}

static void take(struct p11n_slice *chunk, size_t n)
{
    chunk->p += n;
    chunk->len -= n;
}

/* Moves up to `want` bytes of chunk into the partial buffer. */
static p11n_rc gather(struct p11n_frame_decoder *d, struct p11n_slice *chunk, size_t want)
{
    size_t n = want < chunk->len ? want : chunk->len;
    P11N_TRY(p11n_buf_append(&d->partial, p11n_slice_of(chunk->p, n), d->max_frame + P11N_FRAME_HEADER));
    take(chunk, n);
    return P11N_OK;
}

enum p11n_parse p11n_frame_next(struct p11n_frame_decoder *d, struct p11n_slice *chunk,
                                struct p11n_slice *body, p11n_rc *why)
{
    struct p11n_buf *pb = &d->partial;
    uint32_t len;

    if (d->partial_done) {
        /* The frame returned last time is no longer referenced. Keep a small
         * buffer for the next split frame, give back a large one. */
        d->partial_done = 0;
        if (pb->cap > 4096) p11n_buf_cleanup(pb);
        pb->len = 0;
    }

    if (pb->len == 0) {
        /* Fast path: parse straight out of the chunk. */
        if (chunk->len >= P11N_FRAME_HEADER) {
            len = p11n_load_be32(chunk->p);
            if (len > d->max_frame) {
                *why = P11N_E_TOO_LARGE;
                return P11N_PARSE_ERROR;
            }
            if (chunk->len - P11N_FRAME_HEADER >= len) {
                body->p = chunk->p + P11N_FRAME_HEADER;
                body->len = len;
                take(chunk, P11N_FRAME_HEADER + (size_t)len);
                return P11N_PARSE_FRAME;
            }
        }
        if (chunk->len == 0) return P11N_PARSE_NEED_MORE;
    }

    /* Slow path: gather a split frame, header first so the limit is known
     * before the body is buffered. */
    if (pb->len < P11N_FRAME_HEADER) {
        if ((*why = gather(d, chunk, P11N_FRAME_HEADER - pb->len)) != P11N_OK) return P11N_PARSE_ERROR;
        if (pb->len < P11N_FRAME_HEADER) return P11N_PARSE_NEED_MORE;
    }
    len = p11n_load_be32(pb->data);
    if (len > d->max_frame) {
        *why = P11N_E_TOO_LARGE;
        return P11N_PARSE_ERROR;
    }
    if ((*why = gather(d, chunk, P11N_FRAME_HEADER + (size_t)len - pb->len)) != P11N_OK)
        return P11N_PARSE_ERROR;
    if (pb->len < P11N_FRAME_HEADER + (size_t)len) return P11N_PARSE_NEED_MORE;
    body->p = pb->data + P11N_FRAME_HEADER;
    body->len = len;
    d->partial_done = 1;
    return P11N_PARSE_FRAME;
}
