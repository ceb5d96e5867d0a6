#include "buf.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

p11n_rc p11n_buf_reserve(struct p11n_buf *b, size_t more, size_t limit)
{
    size_t need, cap;
    uint8_t *p;

    P11N_ENSURE(more <= limit && b->len <= limit - more, P11N_E_NOMEM);
    need = b->len + more;
    if (need <= b->cap) return P11N_OK;
    cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > limit) cap = limit;
    /* Not realloc: the old storage may hold secrets and must be wiped. */
    p = malloc(cap);
    P11N_ENSURE(p != NULL, P11N_E_NOMEM);
    if (b->len) memcpy(p, b->data, b->len);
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = p;
    b->cap = cap;
    return P11N_OK;
}

p11n_rc p11n_buf_append(struct p11n_buf *b, struct p11n_slice s, size_t limit)
{
    P11N_TRY(p11n_buf_reserve(b, s.len, limit));
    if (s.len) memcpy(b->data + b->len, s.p, s.len);
    b->len += s.len;
    return P11N_OK;
}

void p11n_buf_consume(struct p11n_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void p11n_buf_cleanup(struct p11n_buf *b)
{
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}
