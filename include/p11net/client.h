/* libp11net: the client library of p11net, a network HSM service.
 *
 * One handle, p11net_client, is one connection to a p11netd server (PROTOCOL.md).
 * Every operation exists twice:
 *   - one blocking call per operation (p11net_ping, p11net_sign, ...), and
 *   - a pipelined pair: p11net_submit sends a request and returns its id without
 *     waiting; p11net_wait / p11net_wait_any collect replies, matched by id.
 *
 * Errors. Every function returning int returns P11NET_OK (0) or a negative
 * p11net_status. P11NET_ERR_SERVER means the server answered with an error: the
 * p11net_error filled by the call then holds the server's ErrorCode and message.
 * Every other status is a local or transport failure (timeout, connection lost,
 * bad usage). The p11net_error out-parameter is optional (NULL allowed) and owned
 * by the caller, so reporting errors needs no shared state.
 *
 * Thread safety. A p11net_client may be used from several threads at once for
 * every call except p11net_close: requests from concurrent threads are written
 * whole (never interleaved), and whichever waiting thread happens to be reading
 * the socket hands each reply to the thread waiting for its id. Replies
 * (p11net_reply) belong to the caller that received them and are not shared.
 * p11net_close must be called once, after every other call on the handle
 * has returned.
 *
 * Secrets. PINs passed in are copied into the request frame only; the library
 * wipes every buffer that held a PIN or a reply before freeing it. */
#ifndef P11NET_CLIENT_H
#define P11NET_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define P11NET_API __attribute__((visibility("default")))
#else
#define P11NET_API
#endif

typedef struct p11net_client p11net_client; /* one connection; opaque */
typedef struct p11net_reply p11net_reply;   /* one successful reply; opaque */

typedef enum p11net_status {
    P11NET_OK = 0,
    P11NET_ERR_SERVER = -1,    /* the server answered err=true; see p11net_error.code */
    P11NET_ERR_TIMEOUT = -2,   /* no reply (or no connect / write progress) in time */
    P11NET_ERR_CLOSED = -3,    /* the server closed the connection */
    P11NET_ERR_IO = -4,        /* socket error, connection refused, name not resolved */
    P11NET_ERR_PROTOCOL = -5,  /* the server broke the framing or sent an undecodable reply */
    P11NET_ERR_NOMEM = -6,
    P11NET_ERR_USAGE = -7,     /* bad argument (address, NUL in a text input, unknown id) */
    P11NET_ERR_TLS = -8        /* TLS set-up, handshake or record failure (message says which) */
} p11net_status;

/* The server's ErrorCode, PROTOCOL.md section 3 (same numbers). */
typedef enum p11net_code {
    P11NET_CODE_NONE = 0,
    P11NET_CODE_BAD_REQUEST = 1,
    P11NET_CODE_UNSUPPORTED = 2,
    P11NET_CODE_NO_SUCH_SLOT = 3,
    P11NET_CODE_PIN_INCORRECT = 4,
    P11NET_CODE_KEY_NOT_FOUND = 5,
    P11NET_CODE_SIGNATURE_INVALID = 6,
    P11NET_CODE_DATA_INVALID = 7,
    P11NET_CODE_HSM_ERROR = 8,
    P11NET_CODE_BUSY = 9,
    P11NET_CODE_TOO_LARGE = 10,
    P11NET_CODE_UNAUTHORIZED = 11,
    P11NET_CODE_THROTTLED = 12,
    P11NET_CODE_SHUTTING_DOWN = 13
} p11net_code;

typedef enum p11net_op {
    P11NET_OP_PING = 0, /* ACK */
    P11NET_OP_LIST = 1, /* without a PIN: tokens; with one: the keys of a token */
    P11NET_OP_ENCRYPT = 2,
    P11NET_OP_SIGN = 3,
    P11NET_OP_DECRYPT = 4,
    P11NET_OP_VERIFY = 5
} p11net_op;

typedef enum p11net_mech {
    P11NET_MECH_DEFAULT = 0,
    P11NET_MECH_RSA_PKCS = 1,
    P11NET_MECH_SHA256_RSA_PKCS = 2,
    P11NET_MECH_SHA256_RSA_PKCS_PSS = 3,
    P11NET_MECH_RSA_PKCS_OAEP_SHA256 = 4,
    P11NET_MECH_ECDSA_SHA256 = 5,
    P11NET_MECH_EDDSA = 6
} p11net_mech;

typedef struct p11net_error {
    p11net_status status;
    p11net_code code;   /* P11NET_ERR_SERVER only; else P11NET_CODE_NONE */
    char message[256];  /* human-readable, NUL-terminated, never holds a PIN */
} p11net_error;

/* Connection options. Initialise with p11net_options_init, then set fields. */
typedef struct p11net_options {
    int timeout_ms;        /* connect, write and blocking-call timeout; <= 0: none. Default 30000 */
    size_t max_frame;      /* largest reply accepted. Default 64 MiB */
    /* TLS 1.3 (PROTOCOL.md section 1); setting any of these turns it on, and
     * p11net_connect then completes the handshake before it returns. Paths of PEM
     * files, read during p11net_connect only. */
    const char *tls_ca;         /* CA the server's certificate must chain to; NULL: the system CAs */
    const char *tls_cert;       /* client certificate chain, for mutual TLS (with tls_key) */
    const char *tls_key;        /* its private key */
    const char *tls_servername; /* name the server's certificate must carry; NULL: the host of `server` */
} p11net_options;

/* A byte string the caller owns; it is only read during the call. */
typedef struct p11net_data {
    const void *p;
    size_t len;
} p11net_data;

/* Which token and key an operation uses. Strings are NUL-terminated, caller-owned,
 * read only during the call; NULL means unset. */
typedef struct p11net_target {
    uint64_t slot;       /* used when token is NULL */
    const char *token;   /* token label; selects the slot */
    const char *pin;
    const char *key;     /* key label or pkcs11: URI; NULL: the server's default key */
    p11net_mech mech;
    /* 0: inputs are text (no NUL) sent as they are; DECRYPT returns text.
     * 1: inputs are raw bytes, which the library base64-encodes; DECRYPT
     *    returns base64 (p11net_reply_decode turns it back into bytes). */
    int binary;
} p11net_target;

/* One request for p11net_submit. ENCRYPT and SIGN inputs follow target.binary.
 * DECRYPT inputs are base64 ciphertext texts (as ENCRYPT returns them) and are
 * sent as they are. For VERIFY, inputs[0] is the message (following
 * target.binary) and inputs[1] the base64 signature text, sent as it is. */
typedef struct p11net_request {
    p11net_op op;
    p11net_target target;
    const p11net_data *inputs;
    size_t n_inputs;
} p11net_request;

P11NET_API void p11net_options_init(p11net_options *opts);

/* Connects to server: "HOST:PORT", "[IPV6]:PORT" or "unix:/path". opts may be
 * NULL for the defaults. On success *out is a new handle (free with p11net_close). */
P11NET_API int p11net_connect(const char *server, const p11net_options *opts, p11net_client **out,
                              p11net_error *err);
/* Closes the connection and frees the handle, with any replies not collected.
 * Accepts NULL. Not concurrent with other calls on c. */
P11NET_API void p11net_close(p11net_client *c);

/* ---- Pipelined interface -------------------------------------------------- */

/* Sends req without waiting for its reply; *id identifies the reply for
 * p11net_wait. Thread-safe. Blocks only while the socket cannot take the frame
 * (at most timeout_ms). */
P11NET_API int p11net_submit(p11net_client *c, const p11net_request *req, uint64_t *id, p11net_error *err);
/* Waits up to timeout_ms (< 0: forever) for the reply to id. On P11NET_OK *out is
 * the reply (free with p11net_reply_free). On any other return the request is
 * forgotten: a reply arriving later is discarded. Thread-safe; each id is waited
 * for once. */
P11NET_API int p11net_wait(p11net_client *c, uint64_t id, int timeout_ms, p11net_reply **out,
                           p11net_error *err);
/* Like p11net_wait, for whichever submitted request (not being waited for by
 * p11net_wait) is answered first; *id tells which. P11NET_ERR_USAGE when no
 * request is outstanding. */
P11NET_API int p11net_wait_any(p11net_client *c, int timeout_ms, uint64_t *id, p11net_reply **out,
                               p11net_error *err);
/* Number of submitted requests not yet collected. */
P11NET_API size_t p11net_outstanding(p11net_client *c);

/* ---- Replies --------------------------------------------------------------- */

/* Number of strings in the reply's data; the i-th (NUL-terminated, owned by r). */
P11NET_API size_t p11net_reply_count(const p11net_reply *r);
P11NET_API const char *p11net_reply_item(const p11net_reply *r, size_t i);
/* Decodes the i-th item as base64 into a new buffer (*bytes, *len; free with
 * p11net_free, which wipes it). P11NET_ERR_PROTOCOL when it is not base64. */
P11NET_API int p11net_reply_decode(const p11net_reply *r, size_t i, unsigned char **bytes, size_t *len);
/* Wipes and frees; accepts NULL. */
P11NET_API void p11net_reply_free(p11net_reply *r);
/* Wipes len bytes at p and frees p (for buffers from p11net_reply_decode). */
P11NET_API void p11net_free(void *p, size_t len);

/* ---- One call per operation (each = p11net_submit + p11net_wait) ------------
 * They wait at most the handle's timeout_ms. *out replies: free with
 * p11net_reply_free. Batches: n inputs give n outputs in the same order. */

P11NET_API int p11net_ping(p11net_client *c, p11net_error *err);
/* Items: "SlotID:<id>, Token: <label>". */
P11NET_API int p11net_list_tokens(p11net_client *c, p11net_reply **out, p11net_error *err);
/* Items: "Key: <label>, ID: <hex>, Class: <class>, Type: <type>". t->pin required. */
P11NET_API int p11net_list_keys(p11net_client *c, const p11net_target *t, p11net_reply **out, p11net_error *err);
/* Items: base64 signatures. */
P11NET_API int p11net_sign(p11net_client *c, const p11net_target *t, const p11net_data *msgs, size_t n,
                           p11net_reply **out, p11net_error *err);
/* P11NET_OK when valid; P11NET_ERR_SERVER with code SIGNATURE_INVALID when not. */
P11NET_API int p11net_verify(p11net_client *c, const p11net_target *t, p11net_data msg, const char *sig_b64,
                             p11net_error *err);
/* Items: base64 ciphertexts. */
P11NET_API int p11net_encrypt(p11net_client *c, const p11net_target *t, const p11net_data *plain, size_t n,
                              p11net_reply **out, p11net_error *err);
/* cipher: base64 ciphertext texts, as p11net_encrypt returns them. Items:
 * plaintexts, as text, or base64 when t->binary. */
P11NET_API int p11net_decrypt(p11net_client *c, const p11net_target *t, const p11net_data *cipher, size_t n,
                              p11net_reply **out, p11net_error *err);

/* ---- Names ------------------------------------------------------------------ */

/* "PIN_INCORRECT", "TIMEOUT", "rsa-pkcs", ...; never NULL. */
P11NET_API const char *p11net_code_name(p11net_code code);
P11NET_API const char *p11net_status_name(p11net_status status);
P11NET_API const char *p11net_mech_name(p11net_mech mech);
/* Parses a PROTOCOL.md section 6 mechanism name; -1 when unknown. */
P11NET_API int p11net_mech_parse(const char *name);
P11NET_API const char *p11net_version(void);

#ifdef __cplusplus
}
#endif

#endif
