#include "pin.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>

/* An HMAC-SHA256 context keyed with a random per-process key, made once under
 * pthread_once and only read after. Every request's PIN is hashed, and the one-shot
 * HMAC() fetches the algorithm, builds a context and hashes the key each time
 * (~20k instructions, 3-4 us); a copy of the keyed context plus one update and
 * one final costs half that. EVP_MAC_CTX_dup only reads its source, so pool
 * threads may copy it concurrently. The raw key is wiped once the context holds
 * it. */
static EVP_MAC_CTX *keyed_ctx;
static pthread_once_t process_key_once = PTHREAD_ONCE_INIT;

static void process_key_init(void)
{
    unsigned char process_key[32];
    EVP_MAC *mac = NULL;
    OSSL_PARAM params[2];

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    if (RAND_bytes(process_key, sizeof(process_key)) == 1 && (mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) != NULL &&
        (keyed_ctx = EVP_MAC_CTX_new(mac)) != NULL &&
        EVP_MAC_init(keyed_ctx, process_key, sizeof(process_key), params) != 1) {
        EVP_MAC_CTX_free(keyed_ctx);
        keyed_ctx = NULL;
    }
    EVP_MAC_free(mac); /* the context keeps its own reference */
    OPENSSL_cleanse(process_key, sizeof(process_key));
}

/* Thread: any. pin is borrowed; out is written. P11N_OK or P11N_E_NOMEM. */
p11n_rc p11n_pin_verifier_make(const struct p11n_secret *pin, struct p11n_pin_verifier *out)
{
    EVP_MAC_CTX *ctx;
    size_t len = 0;
    int ok;

    pthread_once(&process_key_once, process_key_init);
    P11N_ENSURE(keyed_ctx != NULL, P11N_E_NOMEM);
    ctx = EVP_MAC_CTX_dup(keyed_ctx);
    P11N_ENSURE(ctx != NULL, P11N_E_NOMEM);
    ok = EVP_MAC_update(ctx, pin->bytes, pin->len) == 1 && EVP_MAC_final(ctx, out->mac, &len, sizeof(out->mac)) == 1 &&
         len == sizeof(out->mac);
    EVP_MAC_CTX_free(ctx);
    return ok ? P11N_OK : P11N_E_NOMEM;
}

int p11n_pin_verifier_equal(const struct p11n_pin_verifier *a, const struct p11n_pin_verifier *b)
{
    return CRYPTO_memcmp(a->mac, b->mac, sizeof(a->mac)) == 0;
}

void p11n_pin_verifier_cleanup(struct p11n_pin_verifier *v)
{
    OPENSSL_cleanse(v->mac, sizeof(v->mac));
}
