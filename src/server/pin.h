/* PIN verifiers: what the server keeps of a PIN once the token accepted it.
 *
 * A verifier is HMAC-SHA256 of the PIN under a key drawn at random once per
 * process. It lets hsm.c check every request's PIN without a C_Login per request
 * (about 0.9 ms on SoftHSM) and without keeping the PIN itself: the key never leaves
 * the process, so a verifier in a core dump does not give the PIN away to an offline
 * search unless the key is taken too. Thread-safe (the key is set up once). */
#ifndef P11N_PIN_H
#define P11N_PIN_H

#include "err.h"
#include "secret.h"

#define P11N_PIN_VERIFIER_LEN 32

struct p11n_pin_verifier {
    unsigned char mac[P11N_PIN_VERIFIER_LEN];
};

/* Computes the verifier of pin. P11N_E_NOMEM if OpenSSL fails (random or HMAC). */
P11N_MUST_USE p11n_rc p11n_pin_verifier_make(const struct p11n_secret *pin, struct p11n_pin_verifier *out);
/* Constant-time comparison (CRYPTO_memcmp). */
int p11n_pin_verifier_equal(const struct p11n_pin_verifier *a, const struct p11n_pin_verifier *b);
void p11n_pin_verifier_cleanup(struct p11n_pin_verifier *v);

#endif
