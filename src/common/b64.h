/* Standard base64 with padding (RFC 4648), on top of OpenSSL's EVP block coder. */
#ifndef P11N_B64_H
#define P11N_B64_H

#include "buf.h"

/* Appends the base64 of in to out and a terminating NUL (not counted in len). */
P11N_MUST_USE p11n_rc p11n_b64_encode(struct p11n_slice in, struct p11n_buf *out);
/* Appends the bytes of a base64 text to out. Strict: the length must be a multiple
 * of 4, padding only at the end, no whitespace. P11N_E_BAD_REQUEST otherwise. */
P11N_MUST_USE p11n_rc p11n_b64_decode(struct p11n_slice text, struct p11n_buf *out);

#endif
