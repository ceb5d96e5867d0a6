/* The PKCS#11 layer: the only file that calls C_* functions (hsm.c) and the one
 * place CK_RV is turned into p11n_rc (keeping the CKR_ name for HSM_ERROR).
 *
 * Objects and their lifetimes:
 *  - struct p11n_hsm: the loaded module; created by p11n_hsm_open on the main thread
 *    before the loop runs, freed by p11n_hsm_close after the worker pool stopped.
 *    Every other function here is thread-safe and runs on pool threads.
 *  - struct p11n_token: one initialized token in one slot. Created when a slot list
 *    refresh first sees it and never freed before p11n_hsm_close, so a pointer stays
 *    valid for the life of the hsm (a token that disappears is only marked gone).
 *    It holds the token's session pool, PIN verifier and key-handle cache.
 *  - struct p11n_hsm_job: one request's use of one token, on the caller's stack:
 *    the session it borrowed, the PIN it presented, the last error message.
 *
 * Call order for a request (op_common.c does this once for every handler):
 *    p11n_hsm_token_find -> p11n_hsm_job_begin (borrows a session) ->
 *    p11n_hsm_check_pin -> p11n_hsm_find_key -> p11n_hsm_sign/verify/encrypt/decrypt
 *    (or p11n_hsm_list_keys) -> p11n_hsm_job_end (returns the session).
 * Operations retry once, transparently, when the module reports a stale key handle
 * (find again), a dead session (open a new one) or a token that was logged out
 * behind our back (log in again with the request's already-verified PIN). */
#ifndef P11N_HSM_H
#define P11N_HSM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "secret.h"
#include "strvec.h"

struct p11n_hsm;
struct p11n_token;

/* Sessions a token may hold open at once. Requests beyond it wait for a session to
 * come back; the libuv pool has far fewer threads than this, so in practice the
 * bound only matters if the pool is made very large. */
#define P11N_HSM_DEFAULT_MAX_SESSIONS 32
/* Room for an error message: the CKR_ name plus some context. */
#define P11N_HSM_ERR_MAX 200

struct p11n_hsm_opts {
    unsigned max_sessions; /* per token; 0: P11N_HSM_DEFAULT_MAX_SESSIONS */
};

/* What the layer did, for tests and the startup/shutdown log. Counters only grow. */
struct p11n_hsm_stats {
    uint64_t logins;        /* C_Login calls that succeeded */
    uint64_t login_calls;   /* every C_Login call, whatever its outcome */
    uint64_t sessions_opened;
    uint64_t key_finds;     /* C_FindObjects searches for a key (cache misses) */
    uint64_t slot_refreshes;
};

/* Loads the module at path (dlopen + C_GetFunctionList) and initializes it with
 * CKF_OS_LOCKING_OK. opts may be NULL for the defaults. On failure writes a reason
 * into err and returns P11N_E_HSM (or P11N_E_NOMEM). Thread: main, before the loop. */
P11N_MUST_USE p11n_rc p11n_hsm_open(struct p11n_hsm **out, const char *module_path, char *err, size_t err_len);
P11N_MUST_USE p11n_rc p11n_hsm_open_opts(struct p11n_hsm **out, const char *module_path,
                                         const struct p11n_hsm_opts *opts, char *err, size_t err_len);
/* Closes every session and calls C_Finalize. Accepts NULL. Thread: main, after the
 * loop and the worker pool have stopped. */
void p11n_hsm_close(struct p11n_hsm *hsm);

/* --token-pin: logs in to the token labelled token_label now, with pin, and keeps a
 * copy of the PIN (wiped at close) so that requests for that token may leave their
 * PIN empty; a request that carries a PIN still has it checked. P11N_E_NO_SUCH_SLOT,
 * P11N_E_PIN_INCORRECT or P11N_E_HSM with a reason in err (never the PIN).
 * Thread: main, after p11n_hsm_open and before the loop runs. */
P11N_MUST_USE p11n_rc p11n_hsm_set_server_pin(struct p11n_hsm *hsm, const char *token_label,
                                              const struct p11n_secret *pin, char *err, size_t err_len);

void p11n_hsm_get_stats(struct p11n_hsm *hsm, struct p11n_hsm_stats *out);

/* ---- tokens ---------------------------------------------------------------- */

/* Finds the token by label (label != NULL and non-empty; trailing blanks ignored)
 * or else by slot id. Rescans the slot list once when it is not known yet, so
 * tokens created after startup appear. P11N_E_NO_SUCH_SLOT (message in err) or
 * P11N_E_HSM. */
P11N_MUST_USE p11n_rc p11n_hsm_token_find(struct p11n_hsm *hsm, const char *label, uint64_t slot,
                                          struct p11n_token **out, char *err, size_t err_len);
/* The token's label, blank padding trimmed; valid as long as the hsm. */
const char *p11n_hsm_token_label(const struct p11n_token *tok);
uint64_t p11n_hsm_token_slot(const struct p11n_token *tok);
/* Appends "SlotID:<id>, Token: <label>" for every slot holding an initialized
 * token, by ascending slot id (rescans the slot list). */
P11N_MUST_USE p11n_rc p11n_hsm_list_tokens(struct p11n_hsm *hsm, struct p11n_strvec *out, char *err, size_t err_len);

/* ---- one request on one token ---------------------------------------------- */

struct p11n_hsm_job {
    struct p11n_token *tok;
    unsigned long session;          /* CK_SESSION_HANDLE borrowed from tok's pool */
    int has_session;
    const struct p11n_secret *pin;  /* the request's PIN once verified (may be empty
                                     * with a server PIN); used to log in again */
    char err[P11N_HSM_ERR_MAX];     /* why the last call failed; never a PIN or data */
};

/* Borrows a session of tok (reusing an open one, opening one when all are busy and
 * the bound allows, else waiting). P11N_OK or P11N_E_HSM. */
P11N_MUST_USE p11n_rc p11n_hsm_job_begin(struct p11n_hsm_job *job, struct p11n_token *tok);
/* Returns the session to the pool. Safe to call when begin failed. */
void p11n_hsm_job_end(struct p11n_hsm_job *job);

/* Checks the request's PIN. An empty PIN passes only when the server holds a PIN
 * for the token (p11n_hsm_set_server_pin). The first correct PIN costs a C_Login;
 * after that a keyed hash of the PIN is compared (see the comment in hsm.c).
 * P11N_OK (job->pin is set to pin), P11N_E_PIN_INCORRECT or P11N_E_HSM. */
P11N_MUST_USE p11n_rc p11n_hsm_check_pin(struct p11n_hsm_job *job, const struct p11n_secret *pin);

/* ---- keys -------------------------------------------------------------------- */

enum p11n_key_type { P11N_KEY_RSA = 1, P11N_KEY_EC = 2, P11N_KEY_ED25519 = 4, P11N_KEY_OTHER = 8 };
#define P11N_KEY_ANY_ASYM (P11N_KEY_RSA | P11N_KEY_EC | P11N_KEY_ED25519)

/* What a key is needed for; fixes its class (private for SIGN/DECRYPT, public for
 * VERIFY/ENCRYPT) and the CKA_ flag it must have. */
enum p11n_key_use { P11N_USE_SIGN, P11N_USE_VERIFY, P11N_USE_ENCRYPT, P11N_USE_DECRYPT };

struct p11n_key {
    unsigned long handle;     /* CK_OBJECT_HANDLE */
    enum p11n_key_type type;
    size_t size;              /* RSA: modulus bytes; EC: field bytes (r and s each); Ed25519: 32 */
    /* how it was asked for, to find it again when the handle goes stale */
    const char *spec;         /* "" (default key), a label, or a pkcs11: URI; borrowed */
    enum p11n_key_use use;
    unsigned types;           /* acceptable p11n_key_type bits */
};

/* Finds the key. spec "" means the lowest CKA_ID among the keys of the class that
 * `use` needs which allow it and whose type is in `types`; otherwise spec is a label
 * or a pkcs11: URI (object= and/or id=) and exactly that key is used. Handles are
 * cached per token. P11N_E_KEY_NOT_FOUND, P11N_E_UNSUPPORTED (the key exists but its
 * type is not in `types`, or it does not allow `use`), P11N_E_HSM. spec is borrowed
 * and must outlive *out. */
P11N_MUST_USE p11n_rc p11n_hsm_find_key(struct p11n_hsm_job *job, const char *spec, enum p11n_key_use use,
                                        unsigned types, struct p11n_key *out);

/* ---- operations ---------------------------------------------------------------- */

enum p11n_mech {
    P11N_MECH_RSA_PKCS,
    P11N_MECH_SHA256_RSA_PKCS,
    P11N_MECH_SHA256_RSA_PKCS_PSS, /* MGF1-SHA256, salt 32 */
    P11N_MECH_RSA_OAEP_SHA256,     /* MGF1-SHA256, no label */
    P11N_MECH_ECDSA,               /* raw CKM_ECDSA over a digest the caller made */
    P11N_MECH_EDDSA,
};

/* Each operation runs on job's session with key, checks first what the module would
 * reject vaguely (input too long: DATA_INVALID; ciphertext length != modulus:
 * DATA_INVALID; signature of the wrong length: SIGNATURE_INVALID), and maps the
 * module's answer: P11N_OK; P11N_E_DATA_INVALID; P11N_E_SIGNATURE_INVALID (verify);
 * P11N_E_UNSUPPORTED (mechanism the key or module cannot do); P11N_E_KEY_NOT_FOUND
 * (the key vanished); P11N_E_PIN_INCORRECT (re-login refused); P11N_E_HSM with the
 * CKR_ name first in job->err. Outputs are appended to out (raw bytes). */
P11N_MUST_USE p11n_rc p11n_hsm_sign(struct p11n_hsm_job *job, struct p11n_key *key, enum p11n_mech mech,
                                    struct p11n_slice in, struct p11n_buf *out);
P11N_MUST_USE p11n_rc p11n_hsm_verify(struct p11n_hsm_job *job, struct p11n_key *key, enum p11n_mech mech,
                                      struct p11n_slice in, struct p11n_slice sig);
P11N_MUST_USE p11n_rc p11n_hsm_encrypt(struct p11n_hsm_job *job, struct p11n_key *key, enum p11n_mech mech,
                                       struct p11n_slice in, struct p11n_buf *out);
P11N_MUST_USE p11n_rc p11n_hsm_decrypt(struct p11n_hsm_job *job, struct p11n_key *key, enum p11n_mech mech,
                                       struct p11n_slice in, struct p11n_buf *out);

/* Appends one "Key: <label>, ID: <hex>, Class: <class>, Type: <type>" per key object
 * on the token, ordered by ID, then private, public, secret. */
P11N_MUST_USE p11n_rc p11n_hsm_list_keys(struct p11n_hsm_job *job, struct p11n_strvec *out);

/* Stable name of a CK_RV ("CKR_DEVICE_ERROR", or "CKR_0x...") for messages. */
const char *p11n_hsm_rv_name(unsigned long rv);

#endif
