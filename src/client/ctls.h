/* Client-side TLS set-up shared by the blocking library (client.c) and the libuv
 * engine of `run` and `bench` (uvconn.c): which options mean TLS, one context per
 * set of files (loaded by src/common/tls.c, the only place that reads them), and
 * the name the server's certificate must carry. */
#ifndef P11N_CLIENT_CTLS_H
#define P11N_CLIENT_CTLS_H

#include <stddef.h>

#include "p11net/client.h"
#include "tls.h"

/* Any --tls-* option asks for TLS. */
int p11n_ctls_wanted(const p11net_options *opts);

/* For server ("HOST:PORT"): a client TLS context from opts and, in servername
 * (cap bytes), opts->tls_servername or else the address's host. TLS to a unix:
 * address is refused (the server's Unix listeners are plaintext). On failure
 * returns P11N_E_TLS or P11N_E_USAGE with a reason in err. */
P11N_MUST_USE p11n_rc p11n_ctls_setup(const p11net_options *opts, const char *server, struct p11n_tls_ctx **ctx,
                                      char *servername, size_t cap, char *err, size_t err_len);

#endif
