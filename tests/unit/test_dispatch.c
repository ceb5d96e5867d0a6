/* The form checks of dispatch.c: a table of hostile requests next to good ones,
 * and the one mapping from p11n_rc to the wire's ErrorCode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dispatch.h"
#include "req.h"

struct row {
    const char *name;
    int flag, mech, binary;
    size_t n;
    const char *data[4];
    const char *pin;
    p11n_rc want;
};

static const struct row rows[] = {
    {"sign one", P11NET__PROTO_MESSAGE_TYPE__SIGN, 0, 0, 1, {"m"}, "1234", P11N_OK},
    {"sign batch of max", P11NET__PROTO_MESSAGE_TYPE__SIGN, 2, 0, 3, {"a", "b", "c"}, "1234", P11N_OK},
    {"sign over max batch", P11NET__PROTO_MESSAGE_TYPE__SIGN, 0, 0, 4, {"a", "b", "c", "d"}, "", P11N_E_BAD_REQUEST},
    {"sign no input", P11NET__PROTO_MESSAGE_TYPE__SIGN, 0, 0, 0, {0}, "1234", P11N_E_BAD_REQUEST},
    {"verify pair", P11NET__PROTO_MESSAGE_TYPE__VERIFY, 0, 0, 2, {"m", "c2ln"}, "1", P11N_OK},
    {"verify one", P11NET__PROTO_MESSAGE_TYPE__VERIFY, 0, 0, 1, {"m"}, "1", P11N_E_BAD_REQUEST},
    {"verify three", P11NET__PROTO_MESSAGE_TYPE__VERIFY, 0, 0, 3, {"m", "s", "x"}, "1", P11N_E_BAD_REQUEST},
    {"list ignores data", P11NET__PROTO_MESSAGE_TYPE__LIST, 0, 0, 1, {""}, "", P11N_OK},
    {"unknown type", 42, 0, 0, 1, {"m"}, "", P11N_E_BAD_REQUEST},
    {"negative type", -1, 0, 0, 1, {"m"}, "", P11N_E_BAD_REQUEST},
    {"unknown mechanism", P11NET__PROTO_MESSAGE_TYPE__SIGN, 7, 0, 1, {"m"}, "", P11N_E_BAD_REQUEST},
    {"negative mechanism", P11NET__PROTO_MESSAGE_TYPE__SIGN, -3, 0, 1, {"m"}, "", P11N_E_BAD_REQUEST},
    {"binary good", P11NET__PROTO_MESSAGE_TYPE__ENCRYPT, 0, 1, 2, {"AAEC", ""}, "1", P11N_OK},
    {"binary bad base64", P11NET__PROTO_MESSAGE_TYPE__ENCRYPT, 0, 1, 2, {"AAEC", "A=EC"}, "1", P11N_E_BAD_REQUEST},
    {"binary not padded", P11NET__PROTO_MESSAGE_TYPE__DECRYPT, 0, 1, 1, {"AAE"}, "1", P11N_E_BAD_REQUEST},
};

static p11n_msg *make(const struct row *r)
{
    p11n_msg *m = calloc(1, sizeof(*m));
    p11net__proto_message__init(m);
    m->flag = r->flag;
    m->mechanism = r->mech;
    m->binary = r->binary;
    m->pin = strdup(r->pin);
    m->n_data = r->n;
    m->data = calloc(r->n + 1, sizeof(char *));
    for (size_t i = 0; i < r->n; i++) m->data[i] = strdup(r->data[i]);
    return m;
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct p11n_req *req = calloc(1, sizeof(*req));
        req->msg = make(&rows[i]);
        p11n_rc rc = p11n_dispatch_prepare(req, 3);
        if (rc != rows[i].want) fail_msg("row '%s': rc %s, want %s", rows[i].name, p11n_rc_name(rc), p11n_rc_name(rows[i].want));
        if (rc != P11N_OK) {
            assert_true(req->err[0] != 0);
        } else {
            assert_non_null(req->op);
            /* The PIN moved into the request's secret and left the message. */
            assert_int_equal(req->pin.len, strlen(rows[i].pin));
            assert_int_equal(req->msg->pin[0], 0);
        }
        p11n_req_free(req);
    }
}

static void test_binary_inputs_decoded(void **state)
{
    (void)state;
    const struct row r = {"b", P11NET__PROTO_MESSAGE_TYPE__SIGN, 0, 1, 2, {"AAEC", "aGk="}, "", P11N_OK};
    struct p11n_req *req = calloc(1, sizeof(*req));
    req->msg = make(&r);
    assert_int_equal(p11n_dispatch_prepare(req, 8), P11N_OK);
    assert_int_equal(req->n_in, 2);
    assert_int_equal(req->in[0].len, 3);
    assert_memory_equal(req->in[0].p, "\x00\x01\x02", 3);
    assert_int_equal(req->in[1].len, 2);
    assert_memory_equal(req->in[1].p, "hi", 2);
    p11n_req_free(req);
}

static void test_pin_too_long(void **state)
{
    (void)state;
    char pin[P11N_SECRET_MAX + 2];
    memset(pin, '7', sizeof(pin) - 1);
    pin[sizeof(pin) - 1] = 0;
    const struct row r = {"p", P11NET__PROTO_MESSAGE_TYPE__SIGN, 0, 0, 1, {"m"}, pin, P11N_OK};
    struct p11n_req *req = calloc(1, sizeof(*req));
    req->msg = make(&r);
    assert_int_equal(p11n_dispatch_prepare(req, 8), P11N_E_BAD_REQUEST);
    assert_null(strchr(req->err, '7')); /* the message does not echo the PIN */
    assert_int_equal(req->msg->pin[0], 0);
    p11n_req_free(req);
}

static void test_codes(void **state)
{
    (void)state;
    assert_int_equal(p11n_dispatch_code(P11N_OK), P11NET__ERROR_CODE__NONE);
    assert_int_equal(p11n_dispatch_code(P11N_E_BAD_REQUEST), P11NET__ERROR_CODE__BAD_REQUEST);
    assert_int_equal(p11n_dispatch_code(P11N_E_PIN_INCORRECT), P11NET__ERROR_CODE__PIN_INCORRECT);
    assert_int_equal(p11n_dispatch_code(P11N_E_SHUTTING_DOWN), P11NET__ERROR_CODE__SHUTTING_DOWN);
    assert_int_equal(p11n_dispatch_code(P11N_E_THROTTLED), P11NET__ERROR_CODE__THROTTLED);
    /* Internal failures reach the wire as HSM_ERROR, never as an unknown code. */
    assert_int_equal(p11n_dispatch_code(P11N_E_NOMEM), P11NET__ERROR_CODE__HSM_ERROR);
    assert_int_equal(p11n_dispatch_code(P11N_E_STALE), P11NET__ERROR_CODE__HSM_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table), cmocka_unit_test(test_binary_inputs_decoded),
        cmocka_unit_test(test_pin_too_long), cmocka_unit_test(test_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
