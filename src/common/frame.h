/* Length-prefixed framing (PROTOCOL.md section 2): a big-endian uint32 length,
 * then that many bytes of ProtoMessage.
 *
 * The decoder is incremental: feed it whatever chunks the transport delivers
 * (one byte at a time works) and it yields whole frames. Whole frames inside a
 * chunk are returned in place, without a copy; only a frame split across chunks is
 * gathered into the decoder's own buffer, which grows with the bytes that actually
 * arrived (never to the length a header merely claims) and never past max_frame. */
#ifndef P11N_FRAME_H
#define P11N_FRAME_H

#include "buf.h"

#define P11N_FRAME_HEADER 4

enum p11n_parse { P11N_PARSE_NEED_MORE, P11N_PARSE_FRAME, P11N_PARSE_ERROR };

struct p11n_frame_decoder {
    size_t max_frame;      /* largest body accepted */
    struct p11n_buf partial; /* bytes of a frame split across chunks */
    int partial_done;      /* partial holds a whole frame, already returned */
};

void p11n_frame_decoder_init(struct p11n_frame_decoder *d, size_t max_frame);
void p11n_frame_decoder_cleanup(struct p11n_frame_decoder *d);

/* Takes the next frame out of *chunk, advancing it past the bytes used.
 *  P11N_PARSE_FRAME: *body is the frame's body, valid until the next call on d
 *                    or until the chunk's memory changes.
 *  P11N_PARSE_NEED_MORE: chunk is used up; what was left of it is kept in d.
 *  P11N_PARSE_ERROR: *why is P11N_E_TOO_LARGE (header above max_frame) or
 *                    P11N_E_NOMEM; the stream cannot be resynchronised. */
P11N_MUST_USE enum p11n_parse p11n_frame_next(struct p11n_frame_decoder *d, struct p11n_slice *chunk,
                                              struct p11n_slice *body, p11n_rc *why);

/* True when d holds part of a frame (for the idle timeout on partial frames). */
static inline int p11n_frame_pending(const struct p11n_frame_decoder *d)
{
    return d->partial.len > 0 && !d->partial_done;
}

/* Writes the 4-byte header for a body of body_len bytes. */
static inline void p11n_frame_header(uint8_t out[P11N_FRAME_HEADER], uint32_t body_len)
{
    p11n_store_be32(out, body_len);
}

#endif
