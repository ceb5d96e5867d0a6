/* A test-only PKCS#11 module stacked on the real one (p11-kit's p11_virtual idea):
 * every call goes to the real module (P11NET_FAULT_REAL, default SoftHSM), except
 * when a rule in the control file (P11NET_FAULT_FILE) says otherwise. It exists to
 * produce faults the real module cannot be made to produce on demand.
 *
 * Control file, one rule a line, re-read whenever its content changes (tests start
 * each version with a "# generation N" line, so that even identical rules reload
 * and their counts start afresh):
 *     FUNCTION[@TOKEN] ACTION [ARG] [COUNT]
 *   FUNCTION  C_Sign C_SignInit C_Verify C_Encrypt C_Decrypt C_FindObjectsInit C_Login C_OpenSession
 *   @TOKEN    only calls on a session of the token with that label
 *   ACTION    fail CKR_NAME    return that code instead of calling the module
 *             delay MS         sleep, then call the module
 *             close_session    close the session in the real module first (-> SESSION_HANDLE_INVALID)
 *             logout           log the token out in the real module first (-> USER_NOT_LOGGED_IN)
 *   COUNT     how many calls the rule applies to (default: every call)
 * Every call that a rule hit is counted in P11NET_FAULT_FILE.hits, one line per hit,
 * so tests can check a fault really happened. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <p11-kit/pkcs11.h>

#define MAX_RULES 16

enum action { A_FAIL, A_DELAY, A_CLOSE_SESSION, A_LOGOUT };

struct rule {
    char func[64];
    char token[33];
    enum action action;
    CK_RV rv;
    long ms;
    long remaining; /* -1: every call */
};

static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST wrapped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rule rules[MAX_RULES];
static int n_rules;
static char rules_text[4096]; /* the control file as last parsed */

static const struct {
    const char *name;
    CK_RV rv;
} rv_names[] = {
    {"CKR_DEVICE_ERROR", CKR_DEVICE_ERROR},
    {"CKR_GENERAL_ERROR", CKR_GENERAL_ERROR},
    {"CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID},
    {"CKR_SESSION_CLOSED", CKR_SESSION_CLOSED},
    {"CKR_OBJECT_HANDLE_INVALID", CKR_OBJECT_HANDLE_INVALID},
    {"CKR_KEY_HANDLE_INVALID", CKR_KEY_HANDLE_INVALID},
    {"CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN},
    {"CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED},
    {"CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT},
    {"CKR_HOST_MEMORY", CKR_HOST_MEMORY},
    {"CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED},
};

static CK_RV parse_rv(const char *name)
{
    for (size_t i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++)
        if (strcmp(rv_names[i].name, name) == 0) return rv_names[i].rv;
    return CKR_GENERAL_ERROR;
}

/* Re-reads the control file when its content changed. Called with lock held.
 * Content, not inode or mtime: a file renamed into place may reuse the inode of
 * the one it replaces within the same timestamp tick. */
static void reload(void)
{
    const char *path = getenv("P11NET_FAULT_FILE");
    char text[sizeof(rules_text)] = "", *line, *save = NULL;
    size_t n = 0;
    FILE *f;

    if (path && (f = fopen(path, "r"))) {
        n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
    }
    text[n] = 0;
    if (strcmp(text, rules_text) == 0) return;
    memcpy(rules_text, text, sizeof(text));
    n_rules = 0;
    for (line = strtok_r(text, "\n", &save); line && n_rules < MAX_RULES; line = strtok_r(NULL, "\n", &save)) {
        char func[64], action[32], arg[64] = "", count[32] = "";
        struct rule *r = &rules[n_rules];
        char *at;
        int k = sscanf(line, "%63s %31s %63s %31s", func, action, arg, count);
        if (k < 2 || func[0] == '#') continue;
        memset(r, 0, sizeof(*r));
        if ((at = strchr(func, '@'))) {
            *at = 0;
            snprintf(r->token, sizeof(r->token), "%s", at + 1);
        }
        snprintf(r->func, sizeof(r->func), "%s", func);
        r->remaining = -1;
        if (strcmp(action, "fail") == 0) {
            r->action = A_FAIL;
            r->rv = parse_rv(arg);
            if (k >= 4) r->remaining = atol(count);
        } else if (strcmp(action, "delay") == 0) {
            r->action = A_DELAY;
            r->ms = atol(arg);
            if (k >= 4) r->remaining = atol(count);
        } else if (strcmp(action, "close_session") == 0 || strcmp(action, "logout") == 0) {
            r->action = action[0] == 'c' ? A_CLOSE_SESSION : A_LOGOUT;
            if (k >= 3) r->remaining = atol(arg);
        } else {
            continue;
        }
        n_rules++;
    }
}

static int session_token_is(CK_SESSION_HANDLE h, const char *label)
{
    CK_SESSION_INFO si;
    CK_TOKEN_INFO ti;
    size_t n = strlen(label);

    if (real->C_GetSessionInfo(h, &si) != CKR_OK || real->C_GetTokenInfo(si.slotID, &ti) != CKR_OK) return 0;
    if (n > sizeof(ti.label) || memcmp(ti.label, label, n) != 0) return 0;
    for (size_t i = n; i < sizeof(ti.label); i++)
        if (ti.label[i] != ' ') return 0;
    return 1;
}

static void record_hit(const char *func, const struct rule *r)
{
    const char *path = getenv("P11NET_FAULT_FILE");
    char hits[4096];
    FILE *f;

    snprintf(hits, sizeof(hits), "%s.hits", path);
    if ((f = fopen(hits, "a"))) {
        fprintf(f, "%s %d\n", func, (int)r->action);
        fclose(f);
    }
}

/* Applies the first matching rule to a call of func on session h (0: none).
 * Returns the code to fail with, or CKR_OK to go on to the real module. */
static CK_RV fault(const char *func, CK_SESSION_HANDLE h)
{
    struct rule r;
    int hit = 0;

    pthread_mutex_lock(&lock);
    reload();
    for (int i = 0; i < n_rules && !hit; i++) {
        struct rule *ri = &rules[i];
        if (strcmp(ri->func, func) != 0 || ri->remaining == 0) continue;
        if (ri->token[0] && (!h || !session_token_is(h, ri->token))) continue;
        if (ri->remaining > 0) ri->remaining--;
        r = *ri;
        hit = 1;
    }
    if (hit) record_hit(func, &r);
    pthread_mutex_unlock(&lock);
    if (!hit) return CKR_OK;
    switch (r.action) {
    case A_FAIL:
        return r.rv;
    case A_DELAY: {
        struct timespec ts = {r.ms / 1000, (r.ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
        return CKR_OK;
    }
    case A_CLOSE_SESSION:
        if (h) real->C_CloseSession(h);
        return CKR_OK;
    case A_LOGOUT:
        if (h) real->C_Logout(h);
        return CKR_OK;
    }
    return CKR_OK;
}

#define WRAP(name, params, h, args)                                                                    \
    static CK_RV w_##name params                                                                       \
    {                                                                                                  \
        CK_RV rv = fault(#name, h);                                                                    \
        return rv != CKR_OK ? rv : real->name args;                                                    \
    }

WRAP(C_Sign, (CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR sig, CK_ULONG_PTR sl), s,
     (s, d, dl, sig, sl))
WRAP(C_SignInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), s, (s, m, k))
WRAP(C_Verify, (CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR sig, CK_ULONG sl), s,
     (s, d, dl, sig, sl))
WRAP(C_Encrypt, (CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR o, CK_ULONG_PTR ol), s,
     (s, d, dl, o, ol))
WRAP(C_Decrypt, (CK_SESSION_HANDLE s, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR o, CK_ULONG_PTR ol), s,
     (s, d, dl, o, ol))
WRAP(C_FindObjectsInit, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n), s, (s, t, n))
WRAP(C_Login, (CK_SESSION_HANDLE s, CK_USER_TYPE u, CK_UTF8CHAR_PTR p, CK_ULONG pl), s, (s, u, p, pl))
WRAP(C_OpenSession, (CK_SLOT_ID id, CK_FLAGS f, CK_VOID_PTR a, CK_NOTIFY n, CK_SESSION_HANDLE_PTR out), 0,
     (id, f, a, n, out))

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    const char *path = getenv("P11NET_FAULT_REAL");
    CK_C_GetFunctionList get;
    void *lib;
    CK_RV rv;

    if (!list) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&lock);
    if (!real) {
        lib = dlopen(path ? path : "/usr/lib/softhsm/libsofthsm2.so", RTLD_NOW | RTLD_LOCAL);
        get = lib ? (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList") : NULL;
        if (!get || (rv = get(&real)) != CKR_OK) {
            pthread_mutex_unlock(&lock);
            return CKR_GENERAL_ERROR;
        }
        wrapped = *real;
        wrapped.C_Sign = w_C_Sign;
        wrapped.C_SignInit = w_C_SignInit;
        wrapped.C_Verify = w_C_Verify;
        wrapped.C_Encrypt = w_C_Encrypt;
        wrapped.C_Decrypt = w_C_Decrypt;
        wrapped.C_FindObjectsInit = w_C_FindObjectsInit;
        wrapped.C_Login = w_C_Login;
        wrapped.C_OpenSession = w_C_OpenSession;
    }
    pthread_mutex_unlock(&lock);
    *list = &wrapped;
    return CKR_OK;
}
