#include "b64.h"

#include <openssl/evp.h>
#include <string.h>

p11n_rc p11n_b64_encode(struct p11n_slice in, struct p11n_buf *out)
{
    size_t n;

    P11N_ENSURE(in.len <= (SIZE_MAX / 4) * 3 - 3 && in.len <= 0x3fffffff, P11N_E_TOO_LARGE);
    n = 4 * ((in.len + 2) / 3);
    P11N_TRY(p11n_buf_reserve(out, n + 1, SIZE_MAX));
    EVP_EncodeBlock(out->data + out->len, in.p, (int)in.len);
    out->len += n;
    out->data[out->len] = 0;
    return P11N_OK;
}

static int is_b64(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

p11n_rc p11n_b64_decode(struct p11n_slice text, struct p11n_buf *out)
{
    size_t pad = 0, i;
    int n;

    P11N_ENSURE(text.len % 4 == 0 && text.len <= 0x7ffffffc, P11N_E_BAD_REQUEST);
    if (text.len == 0) return P11N_OK;
    if (text.p[text.len - 1] == '=') pad++;
    if (text.p[text.len - 2] == '=') pad++;
    /* EVP_DecodeBlock skips leading whitespace and accepts '=' anywhere; be strict. */
    for (i = 0; i < text.len - pad; i++) P11N_ENSURE(is_b64(text.p[i]), P11N_E_BAD_REQUEST);
    P11N_TRY(p11n_buf_reserve(out, text.len / 4 * 3, SIZE_MAX));
    n = EVP_DecodeBlock(out->data + out->len, text.p, (int)text.len);
    P11N_ENSURE(n >= 0 && (size_t)n >= pad, P11N_E_BAD_REQUEST);
    out->len += (size_t)n - pad; /* EVP_DecodeBlock counts padding as zero bytes */
    return P11N_OK;
}
