#include "strvec.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static p11n_rc grow(struct p11n_strvec *v)
{
    char **items;
    size_t cap;

    if (v->len < v->cap) return P11N_OK;
    cap = v->cap ? v->cap * 2 : 4;
    items = realloc(v->items, cap * sizeof(*items));
    P11N_ENSURE(items != NULL, P11N_E_NOMEM);
    v->items = items;
    v->cap = cap;
    return P11N_OK;
}

p11n_rc p11n_strvec_push(struct p11n_strvec *v, struct p11n_slice s)
{
    char *str;

    P11N_TRY(grow(v));
    str = malloc(s.len + 1);
    P11N_ENSURE(str != NULL, P11N_E_NOMEM);
    if (s.len) memcpy(str, s.p, s.len);
    str[s.len] = 0;
    v->items[v->len++] = str;
    return P11N_OK;
}

p11n_rc p11n_strvec_pushf(struct p11n_strvec *v, const char *fmt, ...)
{
    va_list ap;
    char *str;
    int n;

    P11N_TRY(grow(v));
    va_start(ap, fmt);
    n = vasprintf(&str, fmt, ap);
    va_end(ap);
    P11N_ENSURE(n >= 0, P11N_E_NOMEM);
    v->items[v->len++] = str;
    return P11N_OK;
}

p11n_rc p11n_strvec_take(struct p11n_strvec *v, struct p11n_buf *buf)
{
    P11N_TRY(grow(v));
    if (!buf->data) P11N_TRY(p11n_buf_reserve(buf, 1, SIZE_MAX));
    if (buf->len == buf->cap) P11N_TRY(p11n_buf_reserve(buf, 1, SIZE_MAX));
    buf->data[buf->len] = 0;
    v->items[v->len++] = (char *)buf->data;
    buf->data = NULL;
    buf->len = buf->cap = 0;
    return P11N_OK;
}

void p11n_strvec_cleanup(struct p11n_strvec *v)
{
    for (size_t i = 0; i < v->len; i++) {
        OPENSSL_cleanse(v->items[i], strlen(v->items[i]));
        free(v->items[i]);
    }
    free(v->items);
    v->items = NULL;
    v->len = v->cap = 0;
}
