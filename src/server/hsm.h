/* The PKCS#11 layer: the only file that calls C_* functions (hsm.c) and the one
 * place CK_RV is turned into p11n_rc (keeping the CKR_ name for HSM_ERROR). */
#ifndef P11N_HSM_H
#define P11N_HSM_H

#include <stddef.h>

#include "err.h"

struct p11n_hsm;

/* Loads the module at path and initializes it with CKF_OS_LOCKING_OK. On failure
 * writes a reason into err. Thread: main, before the loop runs. */
P11N_MUST_USE p11n_rc p11n_hsm_open(struct p11n_hsm **out, const char *module_path, char *err, size_t err_len);
/* Closes every session and calls C_Finalize. Accepts NULL. Thread: main, after the
 * loop and the worker pool have stopped. */
void p11n_hsm_close(struct p11n_hsm *hsm);

#endif
