/* The PKCS#11 layer (hsm.c) on real SoftHSM tokens: that a correct PIN costs one
 * C_Login per token and not one per request while wrong PINs are still refused, the
 * session pool and key cache, recovery from a logout or closed sessions done behind
 * our back (by this test, through the same module), concurrency, the server PIN,
 * and tokens that appear after startup. The module is real; the counters in
 * p11n_hsm_stats make the design observable. */
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>

#include "hsm_fixture.h"

#define M(x) P11NET__MECHANISM__##x

/* The module as seen by the test: dlopen returns the instance p11netd's hsm
 * initialized, so calls here act "behind the server's back" on the same state. */
static CK_FUNCTION_LIST *module(void)
{
    void *dl = dlopen(FX_MODULE, RTLD_NOW | RTLD_NOLOAD);
    CK_C_GetFunctionList get;
    CK_FUNCTION_LIST *f = NULL;
    assert_non_null(dl);
    get = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    assert_non_null(get);
    assert_int_equal(get(&f), CKR_OK);
    dlclose(dl);
    return f;
}

static CK_SLOT_ID slot_of(const char *label)
{
    struct p11n_token *tok;
    char err[128];
    assert_int_equal(p11n_hsm_token_find(fx_state.server.hsm, label, 0, &tok, err, sizeof(err)), P11N_OK);
    return p11n_hsm_token_slot(tok);
}

/* Logs the token out through a session of our own (login state is per token). */
static void logout_behind_back(const char *label)
{
    CK_FUNCTION_LIST *f = module();
    CK_SESSION_HANDLE s;
    assert_int_equal(f->C_OpenSession(slot_of(label), CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK);
    assert_int_equal(f->C_Logout(s), CKR_OK);
    assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

static p11n_rc sign(const char *token, const char *pin, const char *key)
{
    return fx_one(p11n_op_sign, token, pin, key, M(MECH_DEFAULT), "data");
}

static void test_pin_checked_without_login_per_request(void **state)
{
    struct p11n_hsm_stats s0 = fx_stats(), s;
    (void)state;
    /* not logged in yet: the module checks the PIN */
    assert_int_equal(sign("MyToken", "9999", NULL), P11N_E_PIN_INCORRECT);
    s = fx_stats();
    assert_int_equal(s.login_calls - s0.login_calls, 1);
    assert_int_equal(s.logins - s0.logins, 0);
    assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
    s = fx_stats();
    assert_int_equal(s.logins - s0.logins, 1);
    s0 = s;
    /* logged in: correct PINs pass and wrong or empty ones fail, all without C_Login */
    for (int i = 0; i < 20; i++) assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
    assert_int_equal(sign("MyToken", "9999", NULL), P11N_E_PIN_INCORRECT);
    assert_int_equal(sign("MyToken", "12345", NULL), P11N_E_PIN_INCORRECT);
    assert_int_equal(sign("MyToken", "", NULL), P11N_E_PIN_INCORRECT);
    assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
    s = fx_stats();
    assert_int_equal(s.login_calls - s0.login_calls, 0);
    /* one token's PIN does not open another */
    assert_int_equal(sign("Token2", "1234", NULL), P11N_E_PIN_INCORRECT);
}

static void test_sessions_and_keys_reused(void **state)
{
    struct p11n_hsm_stats s0, s;
    (void)state;
    assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
    s0 = fx_stats();
    for (int i = 0; i < 30; i++) assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
    s = fx_stats();
    assert_int_equal(s.sessions_opened - s0.sessions_opened, 0);
    assert_int_equal(s.key_finds - s0.key_finds, 0);
    /* a new key spec is looked up once, then cached */
    assert_int_equal(sign("MyToken", "1234", "EcKey"), P11N_OK);
    assert_int_equal(sign("MyToken", "1234", "EcKey"), P11N_OK);
    assert_int_equal(fx_stats().key_finds - s.key_finds, 1);
}

static void test_logged_out_behind_our_back(void **state)
{
    struct p11n_hsm_stats s0;
    struct fx_req *r;
    (void)state;
    assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
    s0 = fx_stats();
    logout_behind_back("MyToken");
    /* cached key: the operation sees CKR_USER_NOT_LOGGED_IN, logs in, retries */
    assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
    assert_int_equal(fx_stats().logins - s0.logins, 1);
    /* uncached key: the search finds no private key while logged out */
    logout_behind_back("MyToken");
    assert_int_equal(sign("MyToken", "1234", "pkcs11:object=EcKey"), P11N_OK);
    assert_int_equal(fx_stats().logins - s0.logins, 2);
    /* LIST still shows the private keys */
    logout_behind_back("MyToken");
    r = fx_req_new("MyToken", "1234", NULL, 0, 0);
    fx_run(r, p11n_op_list, P11N_OK);
    assert_int_equal(r->req->out.len, 4);
    fx_req_free(r);
    /* a wrong PIN is still refused */
    logout_behind_back("MyToken");
    assert_int_equal(sign("MyToken", "4321", NULL), P11N_E_PIN_INCORRECT);
    assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
}

static void test_sessions_closed_behind_our_back(void **state)
{
    struct p11n_hsm_stats s0;
    (void)state;
    assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
    s0 = fx_stats();
    /* closes our pooled session too, and so logs the token out */
    assert_int_equal(module()->C_CloseAllSessions(slot_of("MyToken")), CKR_OK);
    assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
    assert_int_equal(fx_stats().sessions_opened - s0.sessions_opened, 1);
    assert_int_equal(fx_stats().logins - s0.logins, 1);
    assert_int_equal(sign("MyToken", "1234", NULL), P11N_OK);
}

/* ---- concurrency ---- */

#define THREADS 8
#define PER_THREAD 25

struct worker {
    pthread_t th;
    int ok, failed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        struct fx_req *r = fx_req_new("MyToken", "1234", NULL, M(SHA256_RSA_PKCS_PSS), 0);
        fx_req_adds(r, "parallel");
        if (p11n_op_sign(r->req) == P11N_OK && r->req->out.len == 1)
            w->ok++;
        else
            w->failed++;
        fx_req_free(r);
    }
    return NULL;
}

static void run_workers(size_t n)
{
    struct worker w[THREADS] = {0};
    for (size_t i = 0; i < n; i++) assert_int_equal(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pthread_join(w[i].th, NULL), 0);
        assert_int_equal(w[i].failed, 0);
        assert_int_equal(w[i].ok, PER_THREAD);
    }
}

static void test_parallel_signers(void **state)
{
    struct p11n_hsm_stats s;
    (void)state;
    run_workers(THREADS);
    s = fx_stats();
    /* the first correct PINs raced; exactly one of them logged in */
    assert_int_equal(s.logins, 1);
    assert_true(s.sessions_opened >= 1 && s.sessions_opened <= THREADS);
}

static int setup_two_sessions(void **state) { (void)state; return fx_open_with(2); }

static void test_session_bound(void **state)
{
    (void)state;
    run_workers(6);
    /* six threads shared two sessions */
    assert_true(fx_stats().sessions_opened <= 2);
}

/* ---- server PIN, errors, new tokens ---- */

static void test_server_pin(void **state)
{
    struct p11n_secret pin = {0};
    char err[P11N_HSM_ERR_MAX] = "";
    (void)state;
    assert_int_equal(sign("Token2", "", NULL), P11N_E_PIN_INCORRECT);
    assert_int_equal(p11n_secret_set(&pin, "5678", 4), P11N_OK);
    assert_int_equal(p11n_hsm_set_server_pin(fx_state.server.hsm, "Token2", &pin, err, sizeof(err)), P11N_OK);
    assert_int_equal(sign("Token2", "", NULL), P11N_OK);
    assert_int_equal(sign("Token2", "5678", NULL), P11N_OK);
    assert_int_equal(sign("Token2", "0000", NULL), P11N_E_PIN_INCORRECT);
    /* logged out behind our back: the server's PIN logs in again */
    logout_behind_back("Token2");
    assert_int_equal(sign("Token2", "", NULL), P11N_OK);
    /* logged out again: a wrong PIN is refused without reaching C_Login, and the
     * next good request logs in again */
    logout_behind_back("Token2");
    {
        struct p11n_hsm_stats s0 = fx_stats();
        assert_int_equal(sign("Token2", "0000", NULL), P11N_E_PIN_INCORRECT);
        assert_int_equal(fx_stats().login_calls - s0.login_calls, 0);
        assert_int_equal(sign("Token2", "5678", NULL), P11N_OK);
        assert_int_equal(fx_stats().logins - s0.logins, 1);
    }
    /* other tokens still need a PIN */
    assert_int_equal(sign("Token3", "", NULL), P11N_E_PIN_INCORRECT);

    assert_int_equal(p11n_secret_set(&pin, "0000", 4), P11N_OK);
    assert_int_equal(p11n_hsm_set_server_pin(fx_state.server.hsm, "Token3", &pin, err, sizeof(err)),
                     P11N_E_PIN_INCORRECT);
    assert_null(strstr(err, "0000"));
    assert_int_equal(p11n_hsm_set_server_pin(fx_state.server.hsm, "Nope", &pin, err, sizeof(err)),
                     P11N_E_NO_SUCH_SLOT);
    p11n_secret_cleanup(&pin);
}

static void test_open_errors(void **state)
{
    struct p11n_hsm *h = NULL;
    char err[256] = "";
    (void)state;
    assert_int_equal(p11n_hsm_open(&h, "/nonexistent/module.so", err, sizeof(err)), P11N_E_HSM);
    assert_null(h);
    assert_non_null(strstr(err, "/nonexistent/module.so"));
    assert_string_equal(p11n_hsm_rv_name(CKR_DEVICE_ERROR), "CKR_DEVICE_ERROR");
    assert_string_equal(p11n_hsm_rv_name(CKR_USER_NOT_LOGGED_IN), "CKR_USER_NOT_LOGGED_IN");
    p11n_hsm_close(NULL);
}

/* A token initialized after the hsm was opened is found by label, and listed. */
static void test_token_created_later(void **state)
{
    CK_FUNCTION_LIST *f = module();
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    CK_SLOT_ID empty = (CK_SLOT_ID)-1;
    CK_UTF8CHAR label[32];
    struct p11n_token *tok;
    char err[128];
    struct fx_req *r;
    (void)state;

    assert_int_equal(p11n_hsm_token_find(fx_state.server.hsm, "Later", 0, &tok, err, sizeof(err)),
                     P11N_E_NO_SUCH_SLOT);
    assert_int_equal(f->C_GetSlotList(CK_FALSE, slots, &n), CKR_OK);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO info;
        if (f->C_GetTokenInfo(slots[i], &info) == CKR_OK && !(info.flags & CKF_TOKEN_INITIALIZED)) empty = slots[i];
    }
    assert_true(empty != (CK_SLOT_ID)-1);
    memset(label, ' ', sizeof(label));
    memcpy(label, "Later", 5);
    assert_int_equal(f->C_InitToken(empty, (CK_UTF8CHAR_PTR) "0000", 4, label), CKR_OK);
    assert_int_equal(p11n_hsm_token_find(fx_state.server.hsm, "Later", 0, &tok, err, sizeof(err)), P11N_OK);
    assert_string_equal(p11n_hsm_token_label(tok), "Later");
    r = fx_req_new(NULL, NULL, NULL, 0, 0);
    fx_run(r, p11n_op_list, P11N_OK);
    assert_int_equal(r->req->out.len, 4);
    fx_req_free(r);
    /* its user PIN was never set: a real HSM_ERROR, the CKR_ name first */
    r = fx_req_new("Later", "1234", NULL, 0, 0);
    fx_req_adds(r, "x");
    fx_run(r, p11n_op_sign, P11N_E_HSM);
    assert_true(strncmp(r->req->err, "CKR_USER_PIN_NOT_INITIALIZED", 28) == 0);
    assert_null(strstr(r->req->err, "1234"));
    fx_req_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pin_checked_without_login_per_request, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sessions_and_keys_reused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_logged_out_behind_our_back, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sessions_closed_behind_our_back, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_parallel_signers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_session_bound, setup_two_sessions, fx_teardown),
        cmocka_unit_test_setup_teardown(test_server_pin, fx_setup, fx_teardown),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test_setup_teardown(test_token_created_later, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
