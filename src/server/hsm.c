/* The PKCS#11 layer. This is the only file that calls the module's C_* functions
 * and the one place where a CK_RV becomes a p11n_rc.
 *
 * Threads. Everything here except open/close/set_server_pin runs on libuv pool
 * threads, several at once, so every shared field names the lock that guards it.
 * The module is initialized with CKF_OS_LOCKING_OK and does its own locking; our
 * locks guard only our own tables and are never held across a C_Sign-like call.
 *
 * Sessions. Each token keeps a pool of open sessions (a free list under tok->lock).
 * A request borrows one for its whole job and gives it back, so requests on one
 * token run in parallel on different sessions and no request pays for
 * C_OpenSession. Sessions are closed only at shutdown, or when the module says one
 * is dead, so while the token is logged in at least one session stays open (closing
 * the last session of a token logs it out in PKCS#11).
 *
 * PINs. The login state of a PKCS#11 token is shared by all sessions of the
 * application, and C_Login on a logged-in token answers CKR_USER_ALREADY_LOGGED_IN
 * whatever PIN it is given: the module can no longer check a PIN for us once we are
 * logged in, and asking it to (logout + login) would cost ~0.9 ms per request and
 * briefly log out the requests running in parallel. So:
 *  - the first correct PIN is checked by the module itself (C_Login; a wrong one is
 *    CKR_PIN_INCORRECT -> PIN_INCORRECT), and on success we keep only a verifier of
 *    it (HMAC-SHA256 under a random per-process key, pin.c), never the PIN;
 *  - every later request's PIN is hashed the same way and compared in constant
 *    time; a mismatch is PIN_INCORRECT without touching the module (so wrong PINs
 *    cannot lock the token through us either while it is logged in);
 *  - when an operation finds the token logged out behind our back
 *    (CKR_USER_NOT_LOGGED_IN), the verifier is cleared and the request's PIN, which
 *    matched it, logs in again; the module thereby re-checks it.
 * Limit: a PIN changed behind the server's back (C_SetPIN by another application
 * while we stay logged in) is not noticed: the old PIN keeps working through us and
 * the new one is refused, until the token is logged out (restart, or logout by the
 * module). An operator who changes a PIN restarts p11netd.
 *
 * Key handles are cached per token by (how the key was asked for, use, acceptable
 * types); a stale handle (CKR_OBJECT_HANDLE_INVALID / KEY_HANDLE_INVALID) makes the
 * operation find the key again and retry once. A dead session
 * (CKR_SESSION_HANDLE_INVALID / SESSION_CLOSED) is replaced and the operation retried
 * once; CKR_USER_NOT_LOGGED_IN logs in again and retries once. */
#include "hsm.h"

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "pin.h"

/* Distinct key specs cached per token. Specs come from clients, so the cache is
 * bounded; past the bound entries are replaced round-robin. */
#define KEY_CACHE_MAX 64
/* A token with more key objects than this is not what p11net serves; keys past it
 * are not considered by a search. */
#define MAX_OBJECTS 1024
/* CKA_ID and CKA_LABEL values we read; longer ones are cut (labels) or skipped (IDs). */
#define ATTR_MAX 256

struct key_entry {
    char *spec;               /* owned copy */
    enum p11n_key_use use;
    unsigned types;
    CK_OBJECT_HANDLE handle;
    enum p11n_key_type type;
    size_t size;
};

struct p11n_token {
    struct p11n_hsm *hsm;
    CK_SLOT_ID slot;                /* immutable */
    char label[33];                 /* immutable, blank padding trimmed */
    int gone;                       /* hsm->slots_lock: no longer in the slot list */

    pthread_mutex_t lock;           /* guards the fields marked [lock] */
    pthread_cond_t session_back;    /* [lock] signalled when a session is returned or dropped */
    CK_SESSION_HANDLE *idle;        /* [lock] idle sessions, capacity hsm->max_sessions */
    size_t n_idle;                  /* [lock] */
    size_t n_open;                  /* [lock] open sessions, borrowed or idle, or being opened */
    struct p11n_pin_verifier verifier; /* [lock] written only with login_lock also held */
    int has_verifier;               /* [lock] same */
    struct key_entry keys[KEY_CACHE_MAX]; /* [lock] */
    size_t n_keys, next_evict;      /* [lock] */

    pthread_mutex_t login_lock;     /* serializes C_Login/C_Logout on this token */
    struct p11n_secret server_pin;  /* set before the loop runs, read-only after */
    int has_server_pin;             /* same */
};

struct p11n_hsm {
    void *dl;
    CK_FUNCTION_LIST *f;            /* immutable after open */
    unsigned max_sessions;          /* immutable after open */
    pthread_mutex_t slots_lock;     /* guards tokens, n_tokens, cap_tokens, token->gone */
    struct p11n_token **tokens;
    size_t n_tokens, cap_tokens;
    struct p11n_hsm_stats stats;    /* updated with __atomic builtins */
};

#define STAT_INC(hsm, field) __atomic_fetch_add(&(hsm)->stats.field, 1, __ATOMIC_RELAXED)

/* ---- CK_RV names ------------------------------------------------------------------ */

static const struct {
    CK_RV rv;
    const char *name;
} rv_names[] = {
#define RV(x) {x, #x}
    RV(CKR_OK), RV(CKR_CANCEL), RV(CKR_HOST_MEMORY), RV(CKR_SLOT_ID_INVALID), RV(CKR_GENERAL_ERROR),
    RV(CKR_FUNCTION_FAILED), RV(CKR_ARGUMENTS_BAD), RV(CKR_NO_EVENT), RV(CKR_NEED_TO_CREATE_THREADS),
    RV(CKR_CANT_LOCK), RV(CKR_ATTRIBUTE_READ_ONLY), RV(CKR_ATTRIBUTE_SENSITIVE), RV(CKR_ATTRIBUTE_TYPE_INVALID),
    RV(CKR_ATTRIBUTE_VALUE_INVALID), RV(CKR_DATA_INVALID), RV(CKR_DATA_LEN_RANGE), RV(CKR_DEVICE_ERROR),
    RV(CKR_DEVICE_MEMORY), RV(CKR_DEVICE_REMOVED), RV(CKR_ENCRYPTED_DATA_INVALID),
    RV(CKR_ENCRYPTED_DATA_LEN_RANGE), RV(CKR_FUNCTION_CANCELED), RV(CKR_FUNCTION_NOT_PARALLEL),
    RV(CKR_FUNCTION_NOT_SUPPORTED), RV(CKR_KEY_HANDLE_INVALID), RV(CKR_KEY_SIZE_RANGE),
    RV(CKR_KEY_TYPE_INCONSISTENT), RV(CKR_KEY_FUNCTION_NOT_PERMITTED), RV(CKR_MECHANISM_INVALID),
    RV(CKR_MECHANISM_PARAM_INVALID), RV(CKR_OBJECT_HANDLE_INVALID), RV(CKR_OPERATION_ACTIVE),
    RV(CKR_OPERATION_NOT_INITIALIZED), RV(CKR_PIN_INCORRECT), RV(CKR_PIN_INVALID), RV(CKR_PIN_LEN_RANGE),
    RV(CKR_PIN_EXPIRED), RV(CKR_PIN_LOCKED), RV(CKR_SESSION_CLOSED), RV(CKR_SESSION_COUNT),
    RV(CKR_SESSION_HANDLE_INVALID), RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED), RV(CKR_SESSION_READ_ONLY),
    RV(CKR_SESSION_EXISTS), RV(CKR_SIGNATURE_INVALID), RV(CKR_SIGNATURE_LEN_RANGE),
    RV(CKR_TEMPLATE_INCOMPLETE), RV(CKR_TEMPLATE_INCONSISTENT), RV(CKR_TOKEN_NOT_PRESENT),
    RV(CKR_TOKEN_NOT_RECOGNIZED), RV(CKR_TOKEN_WRITE_PROTECTED), RV(CKR_USER_ALREADY_LOGGED_IN),
    RV(CKR_USER_NOT_LOGGED_IN), RV(CKR_USER_PIN_NOT_INITIALIZED), RV(CKR_USER_TYPE_INVALID),
    RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN), RV(CKR_USER_TOO_MANY_TYPES), RV(CKR_BUFFER_TOO_SMALL),
    RV(CKR_RANDOM_NO_RNG), RV(CKR_DOMAIN_PARAMS_INVALID), RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    RV(CKR_CRYPTOKI_ALREADY_INITIALIZED), RV(CKR_MUTEX_BAD), RV(CKR_MUTEX_NOT_LOCKED),
#undef RV
};

const char *p11n_hsm_rv_name(unsigned long rv)
{
    for (size_t i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++)
        if (rv_names[i].rv == rv) return rv_names[i].name;
    return "CKR_VENDOR_OR_UNKNOWN";
}

/* Writes "<CKR_NAME>: <what>" into err and returns P11N_E_HSM: the CKR_ name comes
 * first, as PROTOCOL.md asks of HSM_ERROR messages. */
static p11n_rc hsm_fail(char *err, size_t err_len, CK_RV rv, const char *what)
{
    if (err && err_len) snprintf(err, err_len, "%s (0x%lx): %s", p11n_hsm_rv_name(rv), (unsigned long)rv, what);
    return P11N_E_HSM;
}

static p11n_rc job_fail(struct p11n_hsm_job *job, p11n_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static p11n_rc job_fail(struct p11n_hsm_job *job, p11n_rc rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->err, sizeof(job->err), fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- open / close ------------------------------------------------------------------- */

static void token_free(struct p11n_hsm *hsm, struct p11n_token *tok)
{
    if (!tok) return;
    if (hsm->f) hsm->f->C_CloseAllSessions(tok->slot);
    for (size_t i = 0; i < tok->n_keys; i++) free(tok->keys[i].spec);
    free(tok->idle);
    p11n_pin_verifier_cleanup(&tok->verifier);
    p11n_secret_cleanup(&tok->server_pin);
    pthread_mutex_destroy(&tok->lock);
    pthread_mutex_destroy(&tok->login_lock);
    pthread_cond_destroy(&tok->session_back);
    free(tok);
}

static void trim_label(char out[33], const unsigned char *in, size_t n)
{
    if (n > 32) n = 32;
    while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\0')) n--;
    memcpy(out, in, n);
    out[n] = 0;
}

static struct p11n_token *token_new(struct p11n_hsm *hsm, CK_SLOT_ID slot, const char *label)
{
    struct p11n_token *tok = calloc(1, sizeof(*tok));
    if (!tok) return NULL;
    tok->idle = calloc(hsm->max_sessions, sizeof(*tok->idle));
    if (!tok->idle) {
        free(tok);
        return NULL;
    }
    tok->hsm = hsm;
    tok->slot = slot;
    snprintf(tok->label, sizeof(tok->label), "%s", label);
    pthread_mutex_init(&tok->lock, NULL);
    pthread_mutex_init(&tok->login_lock, NULL);
    pthread_cond_init(&tok->session_back, NULL);
    return tok;
}

/* Rescans the slot list: adds tokens not seen before and marks gone those whose
 * slot no longer holds them (a slot whose label changed gets a new p11n_token).
 * Thread: any; caller holds hsm->slots_lock. P11N_OK or P11N_E_HSM/NOMEM. */
static p11n_rc refresh_slots_locked(struct p11n_hsm *hsm, char *err, size_t err_len)
{
    CK_SLOT_ID *slots = NULL;
    CK_ULONG n = 0;
    CK_RV rv;

    STAT_INC(hsm, slot_refreshes);
    for (;;) {
        rv = hsm->f->C_GetSlotList(CK_TRUE, NULL, &n);
        if (rv != CKR_OK) return hsm_fail(err, err_len, rv, "C_GetSlotList");
        free(slots);
        slots = calloc(n ? n : 1, sizeof(*slots));
        P11N_ENSURE(slots != NULL, P11N_E_NOMEM);
        rv = hsm->f->C_GetSlotList(CK_TRUE, slots, &n);
        if (rv == CKR_OK) break;
        if (rv != CKR_BUFFER_TOO_SMALL) {
            free(slots);
            return hsm_fail(err, err_len, rv, "C_GetSlotList");
        }
    }
    for (size_t t = 0; t < hsm->n_tokens; t++) hsm->tokens[t]->gone = 1;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO info;
        char label[33];
        struct p11n_token *found = NULL;

        if (hsm->f->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
        if (!(info.flags & CKF_TOKEN_INITIALIZED)) continue;
        trim_label(label, info.label, sizeof(info.label));
        for (size_t t = 0; t < hsm->n_tokens && !found; t++)
            if (hsm->tokens[t]->slot == slots[i] && strcmp(hsm->tokens[t]->label, label) == 0) found = hsm->tokens[t];
        if (!found) {
            if (hsm->n_tokens == hsm->cap_tokens) {
                size_t cap = hsm->cap_tokens ? hsm->cap_tokens * 2 : 8;
                struct p11n_token **tv = realloc(hsm->tokens, cap * sizeof(*tv));
                if (!tv) break;
                hsm->tokens = tv;
                hsm->cap_tokens = cap;
            }
            found = token_new(hsm, slots[i], label);
            if (!found) break;
            hsm->tokens[hsm->n_tokens++] = found;
        }
        found->gone = 0;
    }
    free(slots);
    return P11N_OK;
}

/* Thread: main, before the loop. Loads and initializes the module; see hsm.h. */
p11n_rc p11n_hsm_open_opts(struct p11n_hsm **out, const char *module_path, const struct p11n_hsm_opts *opts,
                           char *err, size_t err_len)
{
    CK_C_INITIALIZE_ARGS args;
    CK_C_GetFunctionList get_list;
    struct p11n_hsm *hsm;
    CK_RV rv;
    p11n_rc rc;

    *out = NULL;
    hsm = calloc(1, sizeof(*hsm));
    P11N_ENSURE(hsm != NULL, P11N_E_NOMEM);
    hsm->max_sessions = opts && opts->max_sessions ? opts->max_sessions : P11N_HSM_DEFAULT_MAX_SESSIONS;
    pthread_mutex_init(&hsm->slots_lock, NULL);

    hsm->dl = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
    if (!hsm->dl) {
        snprintf(err, err_len, "cannot load PKCS#11 module %s: %s", module_path, dlerror());
        p11n_hsm_close(hsm);
        return P11N_E_HSM;
    }
    get_list = (CK_C_GetFunctionList)dlsym(hsm->dl, "C_GetFunctionList");
    if (!get_list || get_list(&hsm->f) != CKR_OK || !hsm->f) {
        snprintf(err, err_len, "%s is not a PKCS#11 module (no C_GetFunctionList)", module_path);
        hsm->f = NULL;
        p11n_hsm_close(hsm);
        return P11N_E_HSM;
    }
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    rv = hsm->f->C_Initialize(&args);
    if (rv != CKR_OK) {
        hsm_fail(err, err_len, rv, "C_Initialize");
        hsm->f = NULL; /* nothing to finalize */
        p11n_hsm_close(hsm);
        return P11N_E_HSM;
    }
    pthread_mutex_lock(&hsm->slots_lock);
    rc = refresh_slots_locked(hsm, err, err_len);
    pthread_mutex_unlock(&hsm->slots_lock);
    if (rc != P11N_OK) {
        p11n_hsm_close(hsm);
        return rc;
    }
    *out = hsm;
    return P11N_OK;
}

p11n_rc p11n_hsm_open(struct p11n_hsm **out, const char *module_path, char *err, size_t err_len)
{
    return p11n_hsm_open_opts(out, module_path, NULL, err, err_len);
}

/* Thread: main, after the pool stopped (no job may be running). */
void p11n_hsm_close(struct p11n_hsm *hsm)
{
    if (!hsm) return;
    for (size_t i = 0; i < hsm->n_tokens; i++) token_free(hsm, hsm->tokens[i]);
    free(hsm->tokens);
    if (hsm->f) hsm->f->C_Finalize(NULL);
    /* The module is deliberately not dlclose()d: modules (SoftHSM among them) leave
     * atexit handlers and OpenSSL state behind that would then point into unmapped
     * code. The process is about to exit anyway. */
    pthread_mutex_destroy(&hsm->slots_lock);
    free(hsm);
}

void p11n_hsm_get_stats(struct p11n_hsm *hsm, struct p11n_hsm_stats *out)
{
    out->logins = __atomic_load_n(&hsm->stats.logins, __ATOMIC_RELAXED);
    out->login_calls = __atomic_load_n(&hsm->stats.login_calls, __ATOMIC_RELAXED);
    out->sessions_opened = __atomic_load_n(&hsm->stats.sessions_opened, __ATOMIC_RELAXED);
    out->key_finds = __atomic_load_n(&hsm->stats.key_finds, __ATOMIC_RELAXED);
    out->slot_refreshes = __atomic_load_n(&hsm->stats.slot_refreshes, __ATOMIC_RELAXED);
}

/* ---- tokens ------------------------------------------------------------------------- */

static struct p11n_token *token_lookup_locked(struct p11n_hsm *hsm, const char *label, uint64_t slot)
{
    for (size_t i = 0; i < hsm->n_tokens; i++) {
        struct p11n_token *t = hsm->tokens[i];
        if (t->gone) continue;
        if (label ? strcmp(t->label, label) == 0 : t->slot == slot) return t;
    }
    return NULL;
}

/* Thread: any. See hsm.h. */
p11n_rc p11n_hsm_token_find(struct p11n_hsm *hsm, const char *label, uint64_t slot, struct p11n_token **out,
                            char *err, size_t err_len)
{
    char want[33];
    const char *key = NULL;
    struct p11n_token *tok;
    p11n_rc rc = P11N_OK;

    if (label && *label) {
        size_t n = strlen(label);
        while (n > 0 && label[n - 1] == ' ') n--;
        if (n > 32) {
            snprintf(err, err_len, "no token labelled '%.40s...'", label);
            return P11N_E_NO_SUCH_SLOT;
        }
        memcpy(want, label, n);
        want[n] = 0;
        key = want;
    }
    pthread_mutex_lock(&hsm->slots_lock);
    tok = token_lookup_locked(hsm, key, slot);
    if (!tok) {
        rc = refresh_slots_locked(hsm, err, err_len);
        if (rc == P11N_OK) tok = token_lookup_locked(hsm, key, slot);
    }
    pthread_mutex_unlock(&hsm->slots_lock);
    P11N_TRY(rc);
    if (!tok) {
        if (key)
            snprintf(err, err_len, "no token labelled '%s'", key);
        else
            snprintf(err, err_len, "no initialized token in slot %llu", (unsigned long long)slot);
        return P11N_E_NO_SUCH_SLOT;
    }
    *out = tok;
    return P11N_OK;
}

const char *p11n_hsm_token_label(const struct p11n_token *tok) { return tok->label; }
uint64_t p11n_hsm_token_slot(const struct p11n_token *tok) { return tok->slot; }

static int cmp_token_slot(const void *a, const void *b)
{
    const struct p11n_token *x = *(struct p11n_token *const *)a, *y = *(struct p11n_token *const *)b;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* Thread: any. See hsm.h. */
p11n_rc p11n_hsm_list_tokens(struct p11n_hsm *hsm, struct p11n_strvec *out, char *err, size_t err_len)
{
    struct p11n_token **live;
    size_t n = 0;
    p11n_rc rc;

    pthread_mutex_lock(&hsm->slots_lock);
    rc = refresh_slots_locked(hsm, err, err_len);
    live = rc == P11N_OK ? calloc(hsm->n_tokens + 1, sizeof(*live)) : NULL;
    if (rc == P11N_OK && !live) rc = P11N_E_NOMEM;
    for (size_t i = 0; live && i < hsm->n_tokens; i++)
        if (!hsm->tokens[i]->gone) live[n++] = hsm->tokens[i];
    pthread_mutex_unlock(&hsm->slots_lock);
    /* Tokens are never freed while the hsm is open, so live[] stays valid unlocked. */
    if (rc == P11N_OK) {
        qsort(live, n, sizeof(*live), cmp_token_slot);
        for (size_t i = 0; i < n && rc == P11N_OK; i++)
            rc = p11n_strvec_pushf(out, "SlotID:%llu, Token: %s", (unsigned long long)live[i]->slot, live[i]->label);
    }
    free(live);
    return rc;
}

/* ---- sessions ----------------------------------------------------------------------- */

static CK_RV open_session(struct p11n_token *tok, CK_SESSION_HANDLE *h)
{
    /* Read-only: p11net never writes objects, and a user login works on R/O sessions. */
    CK_RV rv = tok->hsm->f->C_OpenSession(tok->slot, CKF_SERIAL_SESSION, NULL, NULL, h);
    if (rv == CKR_OK) STAT_INC(tok->hsm, sessions_opened);
    return rv;
}

/* Thread: any. Borrows an idle session or opens one; waits while the token is at
 * max_sessions and none is idle. P11N_OK or P11N_E_HSM (job->err set). */
p11n_rc p11n_hsm_job_begin(struct p11n_hsm_job *job, struct p11n_token *tok)
{
    CK_SESSION_HANDLE h;
    CK_RV rv;

    job->tok = tok;
    job->has_session = 0;
    job->pin = NULL;
    job->err[0] = 0;
    pthread_mutex_lock(&tok->lock);
    while (tok->n_idle == 0 && tok->n_open >= tok->hsm->max_sessions) pthread_cond_wait(&tok->session_back, &tok->lock);
    if (tok->n_idle > 0) {
        job->session = tok->idle[--tok->n_idle];
        job->has_session = 1;
        pthread_mutex_unlock(&tok->lock);
        return P11N_OK;
    }
    tok->n_open++; /* reserve the place before the slow call, outside the lock */
    pthread_mutex_unlock(&tok->lock);

    rv = open_session(tok, &h);
    if (rv != CKR_OK) {
        pthread_mutex_lock(&tok->lock);
        tok->n_open--;
        pthread_cond_signal(&tok->session_back);
        pthread_mutex_unlock(&tok->lock);
        return hsm_fail(job->err, sizeof(job->err), rv, "C_OpenSession");
    }
    job->session = h;
    job->has_session = 1;
    return P11N_OK;
}

/* Thread: any. Gives the session back (it stays open). */
void p11n_hsm_job_end(struct p11n_hsm_job *job)
{
    struct p11n_token *tok = job->tok;

    if (!tok || !job->has_session) return;
    pthread_mutex_lock(&tok->lock);
    tok->idle[tok->n_idle++] = job->session; /* n_idle <= n_open <= max_sessions */
    pthread_cond_signal(&tok->session_back);
    pthread_mutex_unlock(&tok->lock);
    job->has_session = 0;
}

/* Replaces job's session with a new one. dead: the module said the old handle is
 * invalid, so it is just forgotten; otherwise (an operation stuck active) the new
 * one is opened before the old is closed, so the token never drops to zero sessions
 * and stays logged in. P11N_OK or P11N_E_HSM (job->has_session cleared). */
static p11n_rc replace_session(struct p11n_hsm_job *job, int dead)
{
    struct p11n_token *tok = job->tok;
    CK_SESSION_HANDLE h;
    CK_RV rv = open_session(tok, &h);

    if (rv != CKR_OK) {
        if (dead) {
            pthread_mutex_lock(&tok->lock);
            tok->n_open--;
            pthread_cond_signal(&tok->session_back);
            pthread_mutex_unlock(&tok->lock);
            job->has_session = 0;
        }
        return hsm_fail(job->err, sizeof(job->err), rv, "C_OpenSession");
    }
    if (!dead) tok->hsm->f->C_CloseSession(job->session);
    job->session = h;
    return P11N_OK;
}

/* ---- PIN -------------------------------------------------------------------------- */

static int session_logged_in(struct p11n_hsm_job *job)
{
    CK_SESSION_INFO info;
    if (job->tok->hsm->f->C_GetSessionInfo(job->session, &info) != CKR_OK) return 0;
    return info.state == CKS_RO_USER_FUNCTIONS || info.state == CKS_RW_USER_FUNCTIONS;
}

static CK_RV do_login(struct p11n_hsm_job *job, const struct p11n_secret *pin)
{
    CK_FUNCTION_LIST *f = job->tok->hsm->f;
    CK_RV rv;

    STAT_INC(job->tok->hsm, login_calls);
    rv = f->C_Login(job->session, CKU_USER, (CK_UTF8CHAR_PTR)pin->bytes, pin->len);
    if (rv == CKR_USER_ALREADY_LOGGED_IN) {
        /* Logged in, but we hold no verifier to check this PIN against (it was
         * cleared because the token looked logged out): make the module check it. */
        f->C_Logout(job->session);
        STAT_INC(job->tok->hsm, login_calls);
        rv = f->C_Login(job->session, CKU_USER, (CK_UTF8CHAR_PTR)pin->bytes, pin->len);
    }
    if (rv == CKR_OK) STAT_INC(job->tok->hsm, logins);
    return rv;
}

static p11n_rc map_login_rv(struct p11n_hsm_job *job, CK_RV rv)
{
    switch (rv) {
    case CKR_OK: return P11N_OK;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
        return job_fail(job, P11N_E_PIN_INCORRECT, "PIN incorrect for token '%s'", job->tok->label);
    default: return hsm_fail(job->err, sizeof(job->err), rv, "C_Login");
    }
}

/* Logs in with pin and, on success, stores v as the token's verifier. force: log in
 * even if a verifier exists (the token was found logged out). Under login_lock, so
 * only one thread talks to the module about the login state of a token at a time;
 * a thread that waited finds the verifier the winner stored and just compares.
 * Retries once on a dead session. Thread: any. */
static p11n_rc login_with(struct p11n_hsm_job *job, const struct p11n_secret *pin,
                          const struct p11n_pin_verifier *v, int force)
{
    struct p11n_token *tok = job->tok;
    p11n_rc rc;
    CK_RV rv;

    pthread_mutex_lock(&tok->login_lock);
    if (force && session_logged_in(job)) force = 0; /* another thread logged in again meanwhile */
    pthread_mutex_lock(&tok->lock);
    if (force) {
        tok->has_verifier = 0;
        p11n_pin_verifier_cleanup(&tok->verifier);
    }
    if (tok->has_verifier) {
        int same = p11n_pin_verifier_equal(&tok->verifier, v);
        pthread_mutex_unlock(&tok->lock);
        pthread_mutex_unlock(&tok->login_lock);
        return same ? P11N_OK : job_fail(job, P11N_E_PIN_INCORRECT, "PIN incorrect for token '%s'", tok->label);
    }
    pthread_mutex_unlock(&tok->lock);

    rv = do_login(job, pin);
    if (rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED) {
        rc = replace_session(job, 1);
        if (rc != P11N_OK) {
            pthread_mutex_unlock(&tok->login_lock);
            return rc;
        }
        rv = do_login(job, pin);
    }
    if (rv == CKR_OK) {
        pthread_mutex_lock(&tok->lock);
        tok->verifier = *v;
        tok->has_verifier = 1;
        pthread_mutex_unlock(&tok->lock);
    }
    pthread_mutex_unlock(&tok->login_lock);
    return map_login_rv(job, rv);
}

/* Thread: any. See hsm.h and the comment atop this file. */
p11n_rc p11n_hsm_check_pin(struct p11n_hsm_job *job, const struct p11n_secret *pin)
{
    struct p11n_token *tok = job->tok;
    struct p11n_pin_verifier v;
    int known, same = 0;
    p11n_rc rc;

    if (pin->len == 0) {
        P11N_ENSURE(tok->has_server_pin,
                    job_fail(job, P11N_E_PIN_INCORRECT, "a PIN is required for token '%s'", tok->label));
        job->pin = pin;
        return P11N_OK;
    }
    if (p11n_pin_verifier_make(pin, &v) != P11N_OK)
        return job_fail(job, P11N_E_HSM, "CKR_HOST_MEMORY: cannot hash the PIN");
    pthread_mutex_lock(&tok->lock);
    known = tok->has_verifier;
    if (known) same = p11n_pin_verifier_equal(&tok->verifier, &v);
    pthread_mutex_unlock(&tok->lock);
    if (known) {
        rc = same ? P11N_OK : job_fail(job, P11N_E_PIN_INCORRECT, "PIN incorrect for token '%s'", tok->label);
    } else if (tok->has_server_pin) {
        /* The server holds this token's PIN: log in with that one, so that a wrong
         * PIN from a client never reaches C_Login (and cannot use up the token's
         * PIN retries), then compare as usual. */
        struct p11n_pin_verifier sv;
        rc = p11n_pin_verifier_make(&tok->server_pin, &sv) == P11N_OK
                 ? login_with(job, &tok->server_pin, &sv, 0)
                 : job_fail(job, P11N_E_HSM, "CKR_HOST_MEMORY: cannot hash the PIN");
        if (rc == P11N_OK && !p11n_pin_verifier_equal(&sv, &v))
            rc = job_fail(job, P11N_E_PIN_INCORRECT, "PIN incorrect for token '%s'", tok->label);
        p11n_pin_verifier_cleanup(&sv);
    } else {
        rc = login_with(job, pin, &v, 0);
    }
    p11n_pin_verifier_cleanup(&v);
    if (rc == P11N_OK) job->pin = pin;
    return rc;
}

/* The token was found logged out: log in again with the PIN this request showed
 * (it matched the verifier), or the server's PIN when the request carried none. */
static p11n_rc relogin(struct p11n_hsm_job *job)
{
    const struct p11n_secret *pin = job->pin;
    struct p11n_pin_verifier v;
    p11n_rc rc;

    if (!pin || pin->len == 0) pin = job->tok->has_server_pin ? &job->tok->server_pin : NULL;
    if (!pin) return job_fail(job, P11N_E_PIN_INCORRECT, "token '%s' is not logged in", job->tok->label);
    if (p11n_pin_verifier_make(pin, &v) != P11N_OK)
        return job_fail(job, P11N_E_HSM, "CKR_HOST_MEMORY: cannot hash the PIN");
    p11n_log(P11N_LOG_WARN, "token_relogin token=\"%s\"", job->tok->label);
    rc = login_with(job, pin, &v, 1);
    p11n_pin_verifier_cleanup(&v);
    return rc;
}

/* Thread: main, before the loop. See hsm.h. */
p11n_rc p11n_hsm_set_server_pin(struct p11n_hsm *hsm, const char *token_label, const struct p11n_secret *pin,
                                char *err, size_t err_len)
{
    struct p11n_token *tok;
    struct p11n_hsm_job job;
    p11n_rc rc;

    P11N_TRY(p11n_hsm_token_find(hsm, token_label, 0, &tok, err, err_len));
    if (pin->len == 0) {
        snprintf(err, err_len, "empty PIN for token '%s'", tok->label);
        return P11N_E_PIN_INCORRECT;
    }
    rc = p11n_hsm_job_begin(&job, tok);
    if (rc == P11N_OK) rc = p11n_hsm_check_pin(&job, pin);
    if (rc == P11N_OK) {
        P11N_TRY(p11n_secret_set(&tok->server_pin, pin->bytes, pin->len));
        tok->has_server_pin = 1;
    } else {
        snprintf(err, err_len, "%s", job.err);
    }
    p11n_hsm_job_end(&job);
    return rc;
}

/* ---- keys ----------------------------------------------------------------------- */

static const char *key_type_name(enum p11n_key_type t)
{
    switch (t) {
    case P11N_KEY_RSA: return "RSA";
    case P11N_KEY_EC: return "EC";
    case P11N_KEY_ED25519: return "Ed25519";
    default: return "other";
    }
}

static const struct {
    CK_ATTRIBUTE_TYPE flag;
    CK_OBJECT_CLASS cls;
    const char *what, *cls_name;
} uses[] = {
    [P11N_USE_SIGN] = {CKA_SIGN, CKO_PRIVATE_KEY, "sign", "private"},
    [P11N_USE_VERIFY] = {CKA_VERIFY, CKO_PUBLIC_KEY, "verify", "public"},
    [P11N_USE_ENCRYPT] = {CKA_ENCRYPT, CKO_PUBLIC_KEY, "encrypt", "public"},
    [P11N_USE_DECRYPT] = {CKA_DECRYPT, CKO_PRIVATE_KEY, "decrypt", "private"},
};

/* EC curve from CKA_EC_PARAMS (a DER OID): field size in bytes and a name. */
static const struct {
    const char *name;
    size_t size, len;
    const uint8_t der[12];
} curves[] = {
    {"P256", 32, 10, {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}},
    {"P384", 48, 7, {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}},
    {"P521", 66, 7, {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23}},
};
static const uint8_t ed448_oid[] = {0x06, 0x03, 0x2b, 0x65, 0x71};
static const uint8_t ed448_name[] = {0x13, 0x0a, 'e', 'd', 'w', 'a', 'r', 'd', 's', '4', '4', '8'};

static int curve_index(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
        if (len == curves[i].len && memcmp(p, curves[i].der, len) == 0) return (int)i;
    return -1;
}

static int is_ed448(const uint8_t *p, size_t len)
{
    return (len == sizeof(ed448_oid) && memcmp(p, ed448_oid, len) == 0) ||
           (len == sizeof(ed448_name) && memcmp(p, ed448_name, len) == 0);
}

/* Reads what an operation needs to know about a key: its p11n type and size.
 * Returns the CK_RV of the attribute read. */
static CK_RV key_describe(struct p11n_hsm_job *job, CK_OBJECT_HANDLE h, CK_KEY_TYPE kt, enum p11n_key_type *type,
                          size_t *size)
{
    CK_FUNCTION_LIST *f = job->tok->hsm->f;
    uint8_t params[64];
    CK_ATTRIBUTE a = {CKA_MODULUS, NULL, 0};
    CK_RV rv;

    *type = P11N_KEY_OTHER;
    *size = 0;
    switch (kt) {
    case CKK_RSA:
        rv = f->C_GetAttributeValue(job->session, h, &a, 1);
        if (rv != CKR_OK) return rv;
        *type = P11N_KEY_RSA;
        *size = a.ulValueLen;
        return CKR_OK;
    case CKK_EC:
    case CKK_EC_EDWARDS: {
        int ci;
        a.type = CKA_EC_PARAMS;
        a.pValue = params;
        a.ulValueLen = sizeof(params);
        rv = f->C_GetAttributeValue(job->session, h, &a, 1);
        if (rv != CKR_OK) return rv;
        if (kt == CKK_EC_EDWARDS) {
            if (!is_ed448(params, a.ulValueLen)) *type = P11N_KEY_ED25519, *size = 32;
        } else if ((ci = curve_index(params, a.ulValueLen)) >= 0) {
            *type = P11N_KEY_EC;
            *size = curves[ci].size;
        }
        return CKR_OK;
    }
    default: return CKR_OK;
    }
}

/* Order of CKA_IDs: byte strings, a proper prefix first. */
static int id_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

/* Runs a C_FindObjects search on job's session; *n handles into out (at most max).
 * Returns the CK_RV; the function name that failed goes to *what. */
static CK_RV find_objects(struct p11n_hsm_job *job, CK_ATTRIBUTE *tmpl, CK_ULONG n_tmpl, CK_OBJECT_HANDLE *out,
                          size_t max, size_t *n, const char **what)
{
    CK_FUNCTION_LIST *f = job->tok->hsm->f;
    CK_ULONG got;
    CK_RV rv;

    *n = 0;
    *what = "C_FindObjectsInit";
    rv = f->C_FindObjectsInit(job->session, tmpl, n_tmpl);
    if (rv != CKR_OK) return rv;
    *what = "C_FindObjects";
    do {
        rv = f->C_FindObjects(job->session, out + *n, max - *n, &got);
        if (rv != CKR_OK) break;
        *n += got;
    } while (got > 0 && *n < max);
    f->C_FindObjectsFinal(job->session);
    return rv;
}

/* The key search itself (no cache): see p11n_hsm_find_key. */
static p11n_rc find_key_uncached(struct p11n_hsm_job *job, const char *spec, enum p11n_key_use use, unsigned types,
                                 struct p11n_key *out)
{
    CK_FUNCTION_LIST *f = job->tok->hsm->f;
    CK_OBJECT_CLASS cls = uses[use].cls;
    CK_ATTRIBUTE tmpl[3] = {{CKA_CLASS, &cls, sizeof(cls)}};
    CK_ULONG n_tmpl = 1;
    CK_OBJECT_HANDLE *handles = NULL;
    P11KitUri *uri = NULL;
    uint8_t best_id[ATTR_MAX];
    size_t best_len = 0, n = 0, n_class = 0, n_type = 0;
    CK_OBJECT_HANDLE best = CK_INVALID_HANDLE;
    CK_KEY_TYPE best_kt = 0;
    const char *what = NULL;
    int relogged = 0;
    p11n_rc rc = P11N_OK;
    CK_RV rv;

    STAT_INC(job->tok->hsm, key_finds);
    if (strncmp(spec, "pkcs11:", 7) == 0) {
        CK_ATTRIBUTE *a;
        uri = p11_kit_uri_new();
        P11N_ENSURE(uri != NULL, P11N_E_NOMEM);
        if (p11_kit_uri_parse(spec, P11_KIT_URI_FOR_OBJECT, uri) != P11_KIT_URI_OK) {
            p11_kit_uri_free(uri);
            return job_fail(job, P11N_E_KEY_NOT_FOUND, "key URI is not a valid pkcs11: URI");
        }
        a = p11_kit_uri_get_attribute(uri, CKA_CLASS);
        if (a && (a->ulValueLen != sizeof(CK_OBJECT_CLASS) || *(CK_OBJECT_CLASS *)a->pValue != cls)) {
            p11_kit_uri_free(uri);
            return job_fail(job, P11N_E_KEY_NOT_FOUND, "key URI names no %s key", uses[use].cls_name);
        }
        if ((a = p11_kit_uri_get_attribute(uri, CKA_LABEL)) != NULL) tmpl[n_tmpl++] = *a;
        if ((a = p11_kit_uri_get_attribute(uri, CKA_ID)) != NULL) tmpl[n_tmpl++] = *a;
    } else if (*spec) {
        tmpl[n_tmpl++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)spec, strlen(spec)};
    }
    handles = calloc(MAX_OBJECTS, sizeof(*handles));
    if (!handles) {
        p11_kit_uri_free(uri);
        return P11N_E_NOMEM;
    }
again:
    rv = find_objects(job, tmpl, n_tmpl, handles, MAX_OBJECTS, &n, &what);
    if (rv != CKR_OK) goto out;
    what = "C_GetAttributeValue";
    for (size_t i = 0; i < n; i++) {
        CK_KEY_TYPE kt;
        CK_BBOOL can = CK_FALSE;
        uint8_t id[ATTR_MAX];
        CK_ATTRIBUTE attrs[3] = {
            {CKA_KEY_TYPE, &kt, sizeof(kt)}, {uses[use].flag, &can, sizeof(can)}, {CKA_ID, id, sizeof(id)}};
        enum p11n_key_type t;
        size_t size;

        if (f->C_GetAttributeValue(job->session, handles[i], attrs, 3) != CKR_OK) continue;
        n_class++;
        rv = key_describe(job, handles[i], kt, &t, &size);
        if (rv != CKR_OK) goto out;
        if (!(t & types)) continue;
        n_type++;
        if (!can) continue;
        if (best == CK_INVALID_HANDLE || id_cmp(id, attrs[2].ulValueLen, best_id, best_len) < 0) {
            best = handles[i];
            best_kt = kt;
            memcpy(best_id, id, attrs[2].ulValueLen);
            best_len = attrs[2].ulValueLen;
        }
    }
    rv = CKR_OK;
    if (best != CK_INVALID_HANDLE) {
        out->handle = best;
        rv = key_describe(job, best, best_kt, &out->type, &out->size);
        out->spec = spec;
        out->use = use;
        out->types = types;
        goto out;
    }
    /* Private keys are invisible while the token is logged out: a search that finds
     * none may only mean the token was logged out behind our back. */
    if (cls == CKO_PRIVATE_KEY && !relogged && !session_logged_in(job)) {
        relogged = 1;
        n_class = n_type = 0;
        rc = relogin(job);
        if (rc == P11N_OK) goto again;
        goto out;
    }
    if (n_class == 0)
        rc = *spec ? job_fail(job, P11N_E_KEY_NOT_FOUND, "no %s key '%s' on token '%s'", uses[use].cls_name, spec,
                              job->tok->label)
                   : job_fail(job, P11N_E_KEY_NOT_FOUND, "no %s key on token '%s'", uses[use].cls_name,
                              job->tok->label);
    else if (n_type == 0)
        rc = job_fail(job, P11N_E_UNSUPPORTED, "%s%s%s: the mechanism does not fit the type of the %s key",
                      *spec ? "key '" : "token '", *spec ? spec : job->tok->label, "'", uses[use].cls_name);
    else
        rc = job_fail(job, P11N_E_UNSUPPORTED, "%s%s%s: no fitting %s key allows %s", *spec ? "key '" : "token '",
                      *spec ? spec : job->tok->label, "'", uses[use].cls_name, uses[use].what);
out:
    free(handles);
    p11_kit_uri_free(uri);
    if (rc == P11N_OK && rv != CKR_OK) rc = hsm_fail(job->err, sizeof(job->err), rv, what);
    return rc;
}

static struct key_entry *cache_lookup_locked(struct p11n_token *tok, const char *spec, enum p11n_key_use use,
                                             unsigned types)
{
    for (size_t i = 0; i < tok->n_keys; i++) {
        struct key_entry *e = &tok->keys[i];
        if (e->use == use && e->types == types && strcmp(e->spec, spec) == 0) return e;
    }
    return NULL;
}

static void cache_store(struct p11n_token *tok, const struct p11n_key *k)
{
    char *spec = strdup(k->spec);
    struct key_entry *e;

    if (!spec) return; /* not cached; found again next time */
    pthread_mutex_lock(&tok->lock);
    e = cache_lookup_locked(tok, k->spec, k->use, k->types);
    if (!e) {
        if (tok->n_keys < KEY_CACHE_MAX) {
            e = &tok->keys[tok->n_keys++];
        } else {
            e = &tok->keys[tok->next_evict];
            tok->next_evict = (tok->next_evict + 1) % KEY_CACHE_MAX;
        }
    }
    free(e->spec);
    e->spec = spec;
    e->use = k->use;
    e->types = k->types;
    e->handle = k->handle;
    e->type = k->type;
    e->size = k->size;
    pthread_mutex_unlock(&tok->lock);
}

/* Thread: any. See hsm.h. */
p11n_rc p11n_hsm_find_key(struct p11n_hsm_job *job, const char *spec, enum p11n_key_use use, unsigned types,
                          struct p11n_key *out)
{
    struct p11n_token *tok = job->tok;
    struct key_entry *e;

    pthread_mutex_lock(&tok->lock);
    e = cache_lookup_locked(tok, spec, use, types);
    if (e) {
        out->handle = e->handle;
        out->type = e->type;
        out->size = e->size;
    }
    pthread_mutex_unlock(&tok->lock);
    if (e) {
        out->spec = spec;
        out->use = use;
        out->types = types;
        return P11N_OK;
    }
    P11N_TRY(find_key_uncached(job, spec, use, types, out));
    cache_store(tok, out);
    return P11N_OK;
}

/* ---- operations ----------------------------------------------------------------- */

enum op_kind { OP_SIGN, OP_VERIFY, OP_ENCRYPT, OP_DECRYPT };

/* One operation's arguments, and what the attempt left behind. */
struct op {
    enum op_kind kind;
    enum p11n_mech mech_id;
    CK_MECHANISM mech;
    CK_RSA_PKCS_PSS_PARAMS pss;
    CK_RSA_PKCS_OAEP_PARAMS oaep;
    struct p11n_slice in, sig;
    uint8_t *out;
    CK_ULONG out_len;           /* in: room at out; after: bytes written */
    const char *what;           /* the C_ function that failed */
};

static const char *const mech_names[] = {
    [P11N_MECH_RSA_PKCS] = "RSA_PKCS", [P11N_MECH_SHA256_RSA_PKCS] = "SHA256_RSA_PKCS",
    [P11N_MECH_SHA256_RSA_PKCS_PSS] = "SHA256_RSA_PKCS_PSS", [P11N_MECH_RSA_OAEP_SHA256] = "RSA_PKCS_OAEP_SHA256",
    [P11N_MECH_ECDSA] = "ECDSA", [P11N_MECH_EDDSA] = "EDDSA",
};

static enum p11n_key_type mech_key_type(enum p11n_mech m)
{
    switch (m) {
    case P11N_MECH_ECDSA: return P11N_KEY_EC;
    case P11N_MECH_EDDSA: return P11N_KEY_ED25519;
    default: return P11N_KEY_RSA;
    }
}

static void op_init(struct op *op, enum op_kind kind, enum p11n_mech m)
{
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->mech_id = m;
    switch (m) {
    case P11N_MECH_RSA_PKCS: op->mech.mechanism = CKM_RSA_PKCS; break;
    case P11N_MECH_SHA256_RSA_PKCS: op->mech.mechanism = CKM_SHA256_RSA_PKCS; break;
    case P11N_MECH_SHA256_RSA_PKCS_PSS:
        op->pss.hashAlg = CKM_SHA256;
        op->pss.mgf = CKG_MGF1_SHA256;
        op->pss.sLen = 32;
        op->mech = (CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, &op->pss, sizeof(op->pss)};
        break;
    case P11N_MECH_RSA_OAEP_SHA256:
        op->oaep.hashAlg = CKM_SHA256;
        op->oaep.mgf = CKG_MGF1_SHA256;
        op->oaep.source = CKZ_DATA_SPECIFIED;
        op->mech = (CK_MECHANISM){CKM_RSA_PKCS_OAEP, &op->oaep, sizeof(op->oaep)};
        break;
    case P11N_MECH_ECDSA: op->mech.mechanism = CKM_ECDSA; break;
    case P11N_MECH_EDDSA: op->mech.mechanism = CKM_EDDSA; break;
    }
}

/* One try of op on job's session with key. Returns the module's CK_RV. The input
 * pointers are cast from const: PKCS#11 declares them mutable but never writes. */
static CK_RV op_attempt(struct p11n_hsm_job *job, const struct p11n_key *key, struct op *op)
{
    CK_FUNCTION_LIST *f = job->tok->hsm->f;
    CK_ULONG room = op->out_len;
    CK_RV rv;

    switch (op->kind) {
    case OP_SIGN:
        op->what = "C_SignInit";
        if ((rv = f->C_SignInit(job->session, &op->mech, key->handle)) != CKR_OK) return rv;
        op->what = "C_Sign";
        rv = f->C_Sign(job->session, (CK_BYTE_PTR)op->in.p, op->in.len, op->out, &room);
        break;
    case OP_VERIFY:
        op->what = "C_VerifyInit";
        if ((rv = f->C_VerifyInit(job->session, &op->mech, key->handle)) != CKR_OK) return rv;
        op->what = "C_Verify";
        return f->C_Verify(job->session, (CK_BYTE_PTR)op->in.p, op->in.len, (CK_BYTE_PTR)op->sig.p, op->sig.len);
    case OP_ENCRYPT:
        op->what = "C_EncryptInit";
        if ((rv = f->C_EncryptInit(job->session, &op->mech, key->handle)) != CKR_OK) return rv;
        op->what = "C_Encrypt";
        rv = f->C_Encrypt(job->session, (CK_BYTE_PTR)op->in.p, op->in.len, op->out, &room);
        break;
    default:
        op->what = "C_DecryptInit";
        if ((rv = f->C_DecryptInit(job->session, &op->mech, key->handle)) != CKR_OK) return rv;
        op->what = "C_Decrypt";
        rv = f->C_Decrypt(job->session, (CK_BYTE_PTR)op->in.p, op->in.len, op->out, &room);
        break;
    }
    if (rv == CKR_OK) op->out_len = room;
    return rv;
}

/* Runs op, recovering once from each kind of staleness (see the top of the file).
 * Returns P11N_OK with the module's final answer in *rv, or the rc of a recovery
 * that failed (job->err set). */
static p11n_rc op_run(struct p11n_hsm_job *job, struct p11n_key *key, struct op *op, CK_RV *rv)
{
    int dead = 0, active = 0, stale = 0, login = 0;

    for (;;) {
        *rv = op_attempt(job, key, op);
        switch (*rv) {
        case CKR_SESSION_HANDLE_INVALID:
        case CKR_SESSION_CLOSED:
            if (dead++) return P11N_OK;
            P11N_TRY(replace_session(job, 1));
            break;
        case CKR_OPERATION_ACTIVE:
            /* A previous user of this session left an operation unfinished. */
            if (active++) return P11N_OK;
            P11N_TRY(replace_session(job, 0));
            break;
        case CKR_OBJECT_HANDLE_INVALID:
        case CKR_KEY_HANDLE_INVALID:
            if (stale++) return P11N_OK;
            P11N_TRY(find_key_uncached(job, key->spec, key->use, key->types, key));
            cache_store(job->tok, key);
            break;
        case CKR_USER_NOT_LOGGED_IN:
            if (login++) return P11N_OK;
            P11N_TRY(relogin(job));
            break;
        default: return P11N_OK;
        }
    }
}

/* Turns the module's answer to op into a p11n_rc and a message. */
static p11n_rc op_map(struct p11n_hsm_job *job, const struct op *op, CK_RV rv)
{
    const char *mech = mech_names[op->mech_id];

    switch (rv) {
    case CKR_OK: return P11N_OK;
    case CKR_SIGNATURE_INVALID:
    case CKR_SIGNATURE_LEN_RANGE: return job_fail(job, P11N_E_SIGNATURE_INVALID, "signature invalid");
    case CKR_DATA_INVALID:
    case CKR_DATA_LEN_RANGE:
        return job_fail(job, P11N_E_DATA_INVALID, "input not accepted by %s (%s)", mech, p11n_hsm_rv_name(rv));
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
        return job_fail(job, P11N_E_DATA_INVALID, "ciphertext undecryptable (%s)", p11n_hsm_rv_name(rv));
    case CKR_KEY_TYPE_INCONSISTENT:
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
        return job_fail(job, P11N_E_UNSUPPORTED, "%s not possible with this key on this module (%s)", mech,
                        p11n_hsm_rv_name(rv));
    case CKR_ARGUMENTS_BAD:
        /* SoftHSM 2.6.1 accepts OAEP only with SHA-1 and says so with ARGUMENTS_BAD. */
        if (op->mech_id == P11N_MECH_RSA_OAEP_SHA256)
            return job_fail(job, P11N_E_UNSUPPORTED, "%s: the module does not do OAEP with SHA-256 (%s)", mech,
                            p11n_hsm_rv_name(rv));
        break;
    case CKR_GENERAL_ERROR:
        /* SoftHSM answers a ciphertext with bad padding this way; its length was
         * checked already, so what is left is the content. */
        if (op->kind == OP_DECRYPT && strcmp(op->what, "C_Decrypt") == 0)
            return job_fail(job, P11N_E_DATA_INVALID, "ciphertext undecryptable (bad padding or not for this key)");
        break;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE: return job_fail(job, P11N_E_PIN_INCORRECT, "PIN incorrect for token '%s'", job->tok->label);
    default: break;
    }
    return hsm_fail(job->err, sizeof(job->err), rv, op->what);
}

/* What the module would reject vaguely, checked first. P11N_OK or a failure with
 * job->err set. */
static p11n_rc op_precheck(struct p11n_hsm_job *job, const struct p11n_key *key, const struct op *op)
{
    const char *mech = mech_names[op->mech_id];
    size_t k = key->size;

    if (mech_key_type(op->mech_id) != key->type)
        return job_fail(job, P11N_E_UNSUPPORTED, "%s does not fit a key of type %s", mech, key_type_name(key->type));
    switch (op->kind) {
    case OP_SIGN:
    case OP_ENCRYPT:
        if (op->mech_id == P11N_MECH_RSA_PKCS && (k < 11 || op->in.len > k - 11))
            return job_fail(job, P11N_E_DATA_INVALID, "input of %zu bytes too long for %s with a %zu-bit key (max %zu)",
                            op->in.len, mech, k * 8, k > 11 ? k - 11 : 0);
        if (op->mech_id == P11N_MECH_RSA_OAEP_SHA256 && (k < 66 || op->in.len > k - 66))
            return job_fail(job, P11N_E_DATA_INVALID, "input of %zu bytes too long for %s with a %zu-bit key (max %zu)",
                            op->in.len, mech, k * 8, k > 66 ? k - 66 : 0);
        break;
    case OP_VERIFY: {
        size_t want = key->type == P11N_KEY_RSA ? k : key->type == P11N_KEY_EC ? 2 * k : 64;
        if (op->sig.len != want)
            return job_fail(job, P11N_E_SIGNATURE_INVALID, "signature invalid (%zu bytes, expected %zu)", op->sig.len,
                            want);
        if (op->mech_id == P11N_MECH_RSA_PKCS && (k < 11 || op->in.len > k - 11))
            return job_fail(job, P11N_E_DATA_INVALID, "input of %zu bytes too long for %s with a %zu-bit key",
                            op->in.len, mech, k * 8);
        break;
    }
    case OP_DECRYPT:
        if (op->in.len != k)
            return job_fail(job, P11N_E_DATA_INVALID, "ciphertext of %zu bytes; a %zu-bit key needs exactly %zu",
                            op->in.len, k * 8, k);
        break;
    }
    return P11N_OK;
}

/* Common body of the four operations. out may be NULL (verify). */
static p11n_rc op_do(struct p11n_hsm_job *job, struct p11n_key *key, struct op *op, struct p11n_buf *out)
{
    CK_RV rv;
    size_t room;

    P11N_TRY(op_precheck(job, key, op));
    if (out) {
        /* Outputs never exceed the key size: RSA k, ECDSA 2 * field, EdDSA 64. */
        room = key->type == P11N_KEY_RSA ? key->size : key->type == P11N_KEY_EC ? 2 * key->size : 64;
        P11N_TRY(p11n_buf_reserve(out, room + 1, SIZE_MAX));
        op->out = out->data + out->len;
        op->out_len = room;
    }
    P11N_TRY(op_run(job, key, op, &rv));
    P11N_TRY(op_map(job, op, rv));
    if (out) out->len += op->out_len;
    return P11N_OK;
}

p11n_rc p11n_hsm_sign(struct p11n_hsm_job *job, struct p11n_key *key, enum p11n_mech mech, struct p11n_slice in,
                      struct p11n_buf *out)
{
    struct op op;
    op_init(&op, OP_SIGN, mech);
    op.in = in;
    return op_do(job, key, &op, out);
}

p11n_rc p11n_hsm_verify(struct p11n_hsm_job *job, struct p11n_key *key, enum p11n_mech mech, struct p11n_slice in,
                        struct p11n_slice sig)
{
    struct op op;
    op_init(&op, OP_VERIFY, mech);
    op.in = in;
    op.sig = sig;
    return op_do(job, key, &op, NULL);
}

p11n_rc p11n_hsm_encrypt(struct p11n_hsm_job *job, struct p11n_key *key, enum p11n_mech mech, struct p11n_slice in,
                         struct p11n_buf *out)
{
    struct op op;
    op_init(&op, OP_ENCRYPT, mech);
    op.in = in;
    return op_do(job, key, &op, out);
}

p11n_rc p11n_hsm_decrypt(struct p11n_hsm_job *job, struct p11n_key *key, enum p11n_mech mech, struct p11n_slice in,
                         struct p11n_buf *out)
{
    struct op op;
    op_init(&op, OP_DECRYPT, mech);
    op.in = in;
    return op_do(job, key, &op, out);
}

/* ---- LIST with a PIN -------------------------------------------------------------- */

struct listed {
    uint8_t id[ATTR_MAX];
    size_t id_len;
    int rank;              /* 0 private, 1 public, 2 secret */
    CK_OBJECT_HANDLE h;
    char line[ATTR_MAX + 2 * ATTR_MAX + 64];
};

static int cmp_listed(const void *a, const void *b)
{
    const struct listed *x = a, *y = b;
    int c = id_cmp(x->id, x->id_len, y->id, y->id_len);
    if (c) return c;
    if (x->rank != y->rank) return x->rank - y->rank;
    return x->h < y->h ? -1 : x->h > y->h;
}

/* Formats the Type column of LIST. */
static void type_string(struct p11n_hsm_job *job, CK_OBJECT_HANDLE h, CK_KEY_TYPE kt, char *out, size_t len)
{
    CK_FUNCTION_LIST *f = job->tok->hsm->f;
    enum p11n_key_type t;
    size_t size;
    CK_ULONG vlen = 0;
    CK_ATTRIBUTE a = {CKA_VALUE_LEN, &vlen, sizeof(vlen)};

    switch (kt) {
    case CKK_RSA:
    case CKK_EC:
    case CKK_EC_EDWARDS:
        if (key_describe(job, h, kt, &t, &size) != CKR_OK) t = P11N_KEY_OTHER;
        if (t == P11N_KEY_RSA)
            snprintf(out, len, "RSA-%zu", size * 8);
        else if (t == P11N_KEY_ED25519)
            snprintf(out, len, "ED25519");
        else if (t == P11N_KEY_EC)
            snprintf(out, len, "EC-P%zu", size == 66 ? (size_t)521 : size * 8);
        else
            snprintf(out, len, kt == CKK_EC_EDWARDS ? "ED448" : kt == CKK_EC ? "EC" : "RSA");
        return;
    case CKK_AES:
    case CKK_GENERIC_SECRET:
        if (f->C_GetAttributeValue(job->session, h, &a, 1) == CKR_OK)
            snprintf(out, len, "%s-%lu", kt == CKK_AES ? "AES" : "GENERIC", (unsigned long)vlen * 8);
        else
            snprintf(out, len, "%s", kt == CKK_AES ? "AES" : "GENERIC");
        return;
    case CKK_DES3: snprintf(out, len, "DES3"); return;
    default: snprintf(out, len, "0x%lx", (unsigned long)kt); return;
    }
}

/* Thread: any. See hsm.h. */
p11n_rc p11n_hsm_list_keys(struct p11n_hsm_job *job, struct p11n_strvec *out)
{
    CK_FUNCTION_LIST *f = job->tok->hsm->f;
    CK_OBJECT_HANDLE *handles;
    struct listed *items = NULL;
    size_t n = 0, m = 0;
    const char *what;
    p11n_rc rc = P11N_OK;
    CK_RV rv;

    /* Private keys are invisible while logged out; the PIN was just verified. */
    if (!session_logged_in(job)) P11N_TRY(relogin(job));
    handles = calloc(MAX_OBJECTS, sizeof(*handles));
    P11N_ENSURE(handles != NULL, P11N_E_NOMEM);
    rv = find_objects(job, NULL, 0, handles, MAX_OBJECTS, &n, &what);
    if (rv != CKR_OK) {
        free(handles);
        return hsm_fail(job->err, sizeof(job->err), rv, what);
    }
    items = calloc(n + 1, sizeof(*items));
    if (!items) {
        free(handles);
        return P11N_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        CK_OBJECT_CLASS cls;
        CK_KEY_TYPE kt;
        char label[ATTR_MAX + 1], hex[2 * ATTR_MAX + 1], type[32];
        struct listed *it = &items[m];
        CK_ATTRIBUTE attrs[4] = {{CKA_CLASS, &cls, sizeof(cls)},
                                 {CKA_KEY_TYPE, &kt, sizeof(kt)},
                                 {CKA_LABEL, label, ATTR_MAX},
                                 {CKA_ID, it->id, sizeof(it->id)}};
        static const char *const class_names[] = {"private", "public", "secret"};

        if (f->C_GetAttributeValue(job->session, handles[i], attrs, 1) != CKR_OK) continue;
        if (cls == CKO_PRIVATE_KEY)
            it->rank = 0;
        else if (cls == CKO_PUBLIC_KEY)
            it->rank = 1;
        else if (cls == CKO_SECRET_KEY)
            it->rank = 2;
        else
            continue;
        if (f->C_GetAttributeValue(job->session, handles[i], attrs + 1, 3) != CKR_OK) continue;
        label[attrs[2].ulValueLen] = 0;
        it->id_len = attrs[3].ulValueLen;
        for (size_t b = 0; b < it->id_len; b++) snprintf(hex + 2 * b, 3, "%02x", it->id[b]);
        hex[2 * it->id_len] = 0;
        type_string(job, handles[i], kt, type, sizeof(type));
        it->h = handles[i];
        snprintf(it->line, sizeof(it->line), "Key: %s, ID: %s, Class: %s, Type: %s", label, hex, class_names[it->rank],
                 type);
        m++;
    }
    qsort(items, m, sizeof(*items), cmp_listed);
    for (size_t i = 0; i < m && rc == P11N_OK; i++) rc = p11n_strvec_pushf(out, "%s", items[i].line);
    free(items);
    free(handles);
    return rc;
}
