/* Who may use which token (PROTOCOL.md section 7): the ACL and PIN throttling.
 * Called by the op handlers on pool threads, after the token is resolved and before
 * the PIN is checked, so an unauthorized client learns nothing about PINs.
 * Thread-safe. Until the security issue lands, every client may use every token. */
#ifndef P11N_ACCESS_H
#define P11N_ACCESS_H

#include "err.h"

struct p11n_access;

/* P11N_OK, P11N_E_UNAUTHORIZED or P11N_E_THROTTLED. */
P11N_MUST_USE p11n_rc p11n_access_check(struct p11n_access *acc, const char *client_id, const char *token_label);
/* Records the outcome of a PIN check (pin_ok = 0 for a wrong PIN), for throttling. */
void p11n_access_pin_result(struct p11n_access *acc, const char *client_id, const char *token_label, int pin_ok);

#endif
