#include "pin.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>

/* The per-process HMAC key: written once under pthread_once, read-only after. */
static unsigned char process_key[32];
static int process_key_ok;
static pthread_once_t process_key_once = PTHREAD_ONCE_INIT;

static void process_key_init(void)
{
    process_key_ok = RAND_bytes(process_key, sizeof(process_key)) == 1;
}

/* Thread: any. pin is borrowed; out is written. P11N_OK or P11N_E_NOMEM. */
p11n_rc p11n_pin_verifier_make(const struct p11n_secret *pin, struct p11n_pin_verifier *out)
{
    unsigned int len = sizeof(out->mac);

    pthread_once(&process_key_once, process_key_init);
    P11N_ENSURE(process_key_ok, P11N_E_NOMEM);
    P11N_ENSURE(HMAC(EVP_sha256(), process_key, sizeof(process_key), pin->bytes, pin->len, out->mac, &len) != NULL,
                P11N_E_NOMEM);
    return P11N_OK;
}

int p11n_pin_verifier_equal(const struct p11n_pin_verifier *a, const struct p11n_pin_verifier *b)
{
    return CRYPTO_memcmp(a->mac, b->mac, sizeof(a->mac)) == 0;
}

void p11n_pin_verifier_cleanup(struct p11n_pin_verifier *v)
{
    OPENSSL_cleanse(v->mac, sizeof(v->mac));
}
