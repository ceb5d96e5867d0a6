#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "secret.h"

static void test_equal(void **state)
{
    (void)state;
    struct p11n_secret a = {0}, b = {0};
    assert_int_equal(p11n_secret_set(&a, "1234", 4), P11N_OK);
    assert_int_equal(p11n_secret_set(&b, "1234", 4), P11N_OK);
    assert_true(p11n_secret_equal(&a, &b));
    assert_int_equal(p11n_secret_set(&b, "1235", 4), P11N_OK);
    assert_false(p11n_secret_equal(&a, &b));
    assert_int_equal(p11n_secret_set(&b, "12345", 5), P11N_OK);
    assert_false(p11n_secret_equal(&a, &b));
    p11n_secret_cleanup(&a);
    p11n_secret_cleanup(&b);
}

static void test_wiped(void **state)
{
    (void)state;
    static const uint8_t zero[P11N_SECRET_MAX];
    struct p11n_secret a;
    char s[] = "5678";
    assert_int_equal(p11n_secret_set(&a, "1234", 4), P11N_OK);
    p11n_secret_cleanup(&a);
    assert_int_equal(a.len, 0);
    assert_memory_equal(a.bytes, zero, sizeof(zero));
    p11n_wipe_str(s);
    assert_memory_equal(s, "\0\0\0\0", 4);
}

static void test_too_long(void **state)
{
    (void)state;
    struct p11n_secret a;
    char big[P11N_SECRET_MAX + 1];
    memset(big, 'x', sizeof(big));
    assert_int_equal(p11n_secret_set(&a, big, sizeof(big)), P11N_E_BAD_REQUEST);
    assert_int_equal(a.len, 0);
    assert_int_equal(p11n_secret_set(&a, big, P11N_SECRET_MAX), P11N_OK);
    p11n_secret_cleanup(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_equal), cmocka_unit_test(test_wiped),
                                       cmocka_unit_test(test_too_long)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
