/* PIN verifiers (pin.c): equal PINs give equal verifiers, any difference does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "pin.h"

static void make(const char *pin, size_t len, struct p11n_pin_verifier *v)
{
    struct p11n_secret s = {0};
    assert_int_equal(p11n_secret_set(&s, pin, len), P11N_OK);
    assert_int_equal(p11n_pin_verifier_make(&s, v), P11N_OK);
    p11n_secret_cleanup(&s);
}

static void test_equal_and_different(void **state)
{
    struct p11n_pin_verifier a, b;
    (void)state;
    make("1234", 4, &a);
    make("1234", 4, &b);
    assert_true(p11n_pin_verifier_equal(&a, &b));
    make("1235", 4, &b);
    assert_false(p11n_pin_verifier_equal(&a, &b));
    make("12345", 5, &b);
    assert_false(p11n_pin_verifier_equal(&a, &b));
    make("1234\0", 5, &b); /* a NUL is part of the PIN */
    assert_false(p11n_pin_verifier_equal(&a, &b));
    make("", 0, &b);
    assert_false(p11n_pin_verifier_equal(&a, &b));
}

static void test_not_the_pin(void **state)
{
    struct p11n_pin_verifier a;
    (void)state;
    make("1234", 4, &a);
    assert_null(memmem(a.mac, sizeof(a.mac), "1234", 4));
    p11n_pin_verifier_cleanup(&a);
    for (size_t i = 0; i < sizeof(a.mac); i++) assert_int_equal(a.mac[i], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_and_different),
        cmocka_unit_test(test_not_the_pin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
