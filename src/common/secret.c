#include "secret.h"

#include <openssl/crypto.h>
#include <string.h>

p11n_rc p11n_secret_set(struct p11n_secret *s, const void *src, size_t len)
{
    p11n_secret_cleanup(s);
    P11N_ENSURE(len <= sizeof(s->bytes), P11N_E_BAD_REQUEST);
    memcpy(s->bytes, src, len);
    s->len = len;
    return P11N_OK;
}

int p11n_secret_equal(const struct p11n_secret *a, const struct p11n_secret *b)
{
    return a->len == b->len && CRYPTO_memcmp(a->bytes, b->bytes, a->len) == 0;
}

void p11n_secret_cleanup(struct p11n_secret *s)
{
    OPENSSL_cleanse(s->bytes, sizeof(s->bytes));
    s->len = 0;
}

void p11n_wipe_str(char *s)
{
    if (s) OPENSSL_cleanse(s, strlen(s));
}
