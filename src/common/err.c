#include "err.h"

static const char *const names[P11N_RC_COUNT] = {
    [P11N_OK] = "OK",
    [P11N_E_BAD_REQUEST] = "BAD_REQUEST",
    [P11N_E_UNSUPPORTED] = "UNSUPPORTED",
    [P11N_E_NO_SUCH_SLOT] = "NO_SUCH_SLOT",
    [P11N_E_PIN_INCORRECT] = "PIN_INCORRECT",
    [P11N_E_KEY_NOT_FOUND] = "KEY_NOT_FOUND",
    [P11N_E_SIGNATURE_INVALID] = "SIGNATURE_INVALID",
    [P11N_E_DATA_INVALID] = "DATA_INVALID",
    [P11N_E_HSM] = "HSM_ERROR",
    [P11N_E_BUSY] = "BUSY",
    [P11N_E_TOO_LARGE] = "TOO_LARGE",
    [P11N_E_UNAUTHORIZED] = "UNAUTHORIZED",
    [P11N_E_THROTTLED] = "THROTTLED",
    [P11N_E_SHUTTING_DOWN] = "SHUTTING_DOWN",
    [P11N_E_NOMEM] = "NOMEM",
    [P11N_E_IO] = "IO",
    [P11N_E_CLOSED] = "CLOSED",
    [P11N_E_TIMEOUT] = "TIMEOUT",
    [P11N_E_TLS] = "TLS",
    [P11N_E_PROTOCOL] = "PROTOCOL",
    [P11N_E_USAGE] = "USAGE",
    [P11N_E_STALE] = "STALE",
};

const char *p11n_rc_name(p11n_rc rc)
{
    if ((unsigned)rc >= P11N_RC_COUNT || !names[rc]) return "UNKNOWN";
    return names[rc];
}
