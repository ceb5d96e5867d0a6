/* A PIN held by p11net. Fixed capacity, so it never reallocates and leaves a copy
 * behind; wiped by p11n_secret_cleanup. There is deliberately no function that
 * formats a secret: it cannot end up in a log line by accident. */
#ifndef P11N_SECRET_H
#define P11N_SECRET_H

#include <stddef.h>

#include "err.h"

/* PKCS#11 tokens take PINs of at most a few dozen bytes (SoftHSM: 255). */
#define P11N_SECRET_MAX 256

struct p11n_secret {
    size_t len;
    unsigned char bytes[P11N_SECRET_MAX];
};

/* Copies len bytes from src; P11N_E_BAD_REQUEST when longer than the capacity. */
P11N_MUST_USE p11n_rc p11n_secret_set(struct p11n_secret *s, const void *src, size_t len);
/* Constant-time equality (CRYPTO_memcmp); lengths are not secret. */
int p11n_secret_equal(const struct p11n_secret *a, const struct p11n_secret *b);
void p11n_secret_cleanup(struct p11n_secret *s);
/* Wipes a NUL-terminated string in place (e.g. a PIN inside a decoded message). */
void p11n_wipe_str(char *s);

#endif
