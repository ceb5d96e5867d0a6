/* Buffers that carry their length. A p11n_slice is a view it does not own; a
 * p11n_buf owns its storage. No module hands another a bare (pointer, length). */
#ifndef P11N_BUF_H
#define P11N_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct p11n_slice {
    const uint8_t *p;
    size_t len;
};

struct p11n_buf {
    uint8_t *data;
    size_t len, cap;
};

static inline struct p11n_slice p11n_slice_of(const void *p, size_t len)
{
    struct p11n_slice s = {(const uint8_t *)p, len};
    return s;
}
static inline struct p11n_slice p11n_buf_slice(const struct p11n_buf *b)
{
    return p11n_slice_of(b->data, b->len);
}
static inline uint32_t p11n_load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void p11n_store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Makes room for at least `more` further bytes; fails (P11N_E_NOMEM, b intact)
 * when the total would pass `limit`, so callers bound growth before allocating. */
P11N_MUST_USE p11n_rc p11n_buf_reserve(struct p11n_buf *b, size_t more, size_t limit);
P11N_MUST_USE p11n_rc p11n_buf_append(struct p11n_buf *b, struct p11n_slice s, size_t limit);
/* Drops the first n bytes, keeping the rest. */
void p11n_buf_consume(struct p11n_buf *b, size_t n);
/* Frees the storage; wipes it first, since any buffer may have held a PIN. */
void p11n_buf_cleanup(struct p11n_buf *b);

#endif
