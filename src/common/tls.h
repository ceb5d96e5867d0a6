/* TLS 1.3 over memory BIOs, for event loops that own their sockets (p11netd's
 * connections, the client's load generator), and a blocking variant for simple
 * clients. tls.c is the one place where OpenSSL's error queue becomes p11n_rc.
 *
 * Memory-BIO flow, per connection:
 *   bytes from the socket  -> p11n_tls_feed  -> p11n_tls_read  -> plaintext
 *   plaintext to send      -> p11n_tls_write -> p11n_tls_take_output -> socket
 * After every feed, take_output too: the handshake and session tickets produce
 * bytes to send even when the application writes nothing. */
#ifndef P11N_TLS_H
#define P11N_TLS_H

#include <stddef.h>

#include "buf.h"
#include "strvec.h"

struct p11n_tls_ctx;
struct p11n_tls_conn;

struct p11n_tls_files {
    const char *cert; /* own certificate chain (PEM); required for servers */
    const char *key;  /* its private key (PEM) */
    const char *ca;   /* CA to verify the peer with; for a server, makes client certs required */
};

/* TLS 1.3 only. On failure writes a reason (never key material) into err. */
P11N_MUST_USE p11n_rc p11n_tls_ctx_new(struct p11n_tls_ctx **out, int is_server, const struct p11n_tls_files *f,
                                       char *err, size_t err_len);
void p11n_tls_ctx_free(struct p11n_tls_ctx *ctx);

/* A connection. servername (clients only): the name or IP address the server's
 * certificate must carry; also sent as SNI when it is a DNS name. */
P11N_MUST_USE p11n_rc p11n_tls_conn_new(struct p11n_tls_ctx *ctx, const char *servername, struct p11n_tls_conn **out);
void p11n_tls_conn_free(struct p11n_tls_conn *tc);

/* Hands bytes received from the peer to TLS. */
P11N_MUST_USE p11n_rc p11n_tls_feed(struct p11n_tls_conn *tc, struct p11n_slice in);
/* Advances the handshake and appends any decrypted application bytes to plain
 * (at most `limit` bytes in plain). P11N_E_TLS on a failed handshake or a bad
 * record (the reason is in p11n_tls_error), P11N_E_CLOSED on close_notify. */
P11N_MUST_USE p11n_rc p11n_tls_read(struct p11n_tls_conn *tc, struct p11n_buf *plain, size_t limit);
/* Encrypts plain. Only once the handshake is done (see p11n_tls_ready). */
P11N_MUST_USE p11n_rc p11n_tls_write(struct p11n_tls_conn *tc, struct p11n_slice plain);
/* Moves the bytes TLS wants sent to the peer into out (appending). */
P11N_MUST_USE p11n_rc p11n_tls_take_output(struct p11n_tls_conn *tc, struct p11n_buf *out);
int p11n_tls_ready(const struct p11n_tls_conn *tc);
/* Why the last call failed, for logs (no secrets). */
const char *p11n_tls_error(const struct p11n_tls_conn *tc);
/* The verified peer certificate's subject CN, DNS SANs and email SANs, in that
 * order; nothing when the peer sent no certificate. */
P11N_MUST_USE p11n_rc p11n_tls_peer_names(struct p11n_tls_conn *tc, struct p11n_strvec *names);

#endif
