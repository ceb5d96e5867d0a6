/* Placeholder until the security issue: no ACL, no throttling. */
#include "access.h"

p11n_rc p11n_access_check(struct p11n_access *acc, const char *client_id, const char *token_label)
{
    (void)acc, (void)client_id, (void)token_label;
    return P11N_OK;
}

void p11n_access_pin_result(struct p11n_access *acc, const char *client_id, const char *token_label, int pin_ok)
{
    (void)acc, (void)client_id, (void)token_label, (void)pin_ok;
}
