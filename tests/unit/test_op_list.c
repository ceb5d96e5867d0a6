/* LIST (op_list.c): the exact formats of PROTOCOL.md section 4. */
#include "hsm_fixture.h"

static void test_tokens(void **state)
{
    struct fx_req *r = fx_req_new(NULL, NULL, NULL, 0, 0);
    const char *labels[3];
    unsigned long long prev = 0;
    (void)state;
    fx_run(r, p11n_op_list, P11N_OK);
    /* three initialized tokens; SoftHSM's empty slot is not listed */
    assert_int_equal(r->req->out.len, 3);
    for (size_t i = 0; i < 3; i++) {
        unsigned long long id;
        int n = 0;
        char label[40];
        struct p11n_token *tok;
        char err[128], want[96];
        assert_int_equal(sscanf(r->req->out.items[i], "SlotID:%llu, Token: %39s%n", &id, label, &n), 2);
        assert_int_equal((size_t)n, strlen(r->req->out.items[i]));
        assert_true(i == 0 || id > prev); /* ascending slot ids */
        prev = id;
        assert_int_equal(p11n_hsm_token_find(fx_state.server.hsm, label, 0, &tok, err, sizeof(err)), P11N_OK);
        assert_int_equal(p11n_hsm_token_slot(tok), id);
        snprintf(want, sizeof(want), "SlotID:%llu, Token: %s", id, label);
        assert_string_equal(r->req->out.items[i], want);
        labels[i] = strstr(r->req->out.items[i], "Token: ") + 7;
    }
    for (size_t i = 0; i < 3; i++)
        assert_true(strcmp(labels[i], "MyToken") == 0 || strcmp(labels[i], "Token2") == 0 ||
                    strcmp(labels[i], "Token3") == 0);
    fx_req_free(r);
}

static void expect_keys(const char *token, const char *pin, const char *const *want, size_t n)
{
    struct fx_req *r = fx_req_new(token, pin, NULL, 0, 0);
    fx_run(r, p11n_op_list, P11N_OK);
    assert_int_equal(r->req->out.len, n);
    for (size_t i = 0; i < n; i++) assert_string_equal(r->req->out.items[i], want[i]);
    fx_req_free(r);
}

static void test_keys(void **state)
{
    static const char *const my[] = {
        "Key: TestKey, ID: 01, Class: private, Type: RSA-2048",
        "Key: TestKey, ID: 01, Class: public, Type: RSA-2048",
        "Key: EcKey, ID: 11, Class: private, Type: EC-P256",
        "Key: EcKey, ID: 11, Class: public, Type: EC-P256",
    };
    static const char *const t3[] = {
        "Key: Key3, ID: 03, Class: private, Type: RSA-2048",
        "Key: Key3, ID: 03, Class: public, Type: RSA-2048",
        "Key: EdKey, ID: 33, Class: private, Type: ED25519",
        "Key: EdKey, ID: 33, Class: public, Type: ED25519",
    };
    (void)state;
    expect_keys("MyToken", "1234", my, 4);
    expect_keys("Token3", "3456", t3, 4);
}

static void test_errors(void **state)
{
    struct fx_req *r;
    (void)state;
    r = fx_req_new("MyToken", "0000", NULL, 0, 0);
    fx_run(r, p11n_op_list, P11N_E_PIN_INCORRECT);
    /* the message never carries the PIN */
    assert_null(strstr(r->req->err, "0000"));
    fx_req_free(r);
    r = fx_req_new("Missing", "1234", NULL, 0, 0);
    fx_run(r, p11n_op_list, P11N_E_NO_SUCH_SLOT);
    fx_req_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tokens, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_keys, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_errors, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
