/* One error convention for all of p11net's internals: every fallible function
 * returns p11n_rc, 0 on success. The first codes mirror PROTOCOL.md's ErrorCode
 * (dispatch.c alone turns them into wire codes); the rest never reach the wire
 * as themselves. Foreign error spaces are converted in exactly three places:
 * libuv errno (conn.c), CK_RV (hsm.c) and the OpenSSL error queue (tls.c). */
#ifndef P11N_ERR_H
#define P11N_ERR_H

#define P11N_MUST_USE __attribute__((warn_unused_result))
#define P11N_TRY(expr)                                                         \
    do {                                                                       \
        p11n_rc rc_ = (expr);                                                  \
        if (rc_ != P11N_OK) return rc_;                                        \
    } while (0)
#define P11N_ENSURE(cond, rc)                                                  \
    do {                                                                       \
        if (!(cond)) return (rc);                                              \
    } while (0)

typedef enum p11n_rc {
    P11N_OK = 0,
    /* request outcomes a client sees (PROTOCOL.md ErrorCode) */
    P11N_E_BAD_REQUEST,
    P11N_E_UNSUPPORTED,
    P11N_E_NO_SUCH_SLOT,
    P11N_E_PIN_INCORRECT,
    P11N_E_KEY_NOT_FOUND,
    P11N_E_SIGNATURE_INVALID,
    P11N_E_DATA_INVALID,
    P11N_E_HSM,
    P11N_E_BUSY,
    P11N_E_TOO_LARGE,
    P11N_E_UNAUTHORIZED,
    P11N_E_THROTTLED,
    P11N_E_SHUTTING_DOWN,
    /* internal */
    P11N_E_NOMEM,
    P11N_E_IO,        /* socket or file error */
    P11N_E_CLOSED,    /* peer closed the connection */
    P11N_E_TIMEOUT,
    P11N_E_TLS,
    P11N_E_PROTOCOL,  /* peer broke the framing or sent an undecodable reply */
    P11N_E_USAGE,     /* bad arguments or configuration */
    P11N_E_STALE,     /* a cached PKCS#11 handle went stale: find it again and retry */
    P11N_RC_COUNT
} p11n_rc;

/* Stable upper-case name of rc ("PIN_INCORRECT", "NOMEM"); never NULL. */
const char *p11n_rc_name(p11n_rc rc);

#endif
