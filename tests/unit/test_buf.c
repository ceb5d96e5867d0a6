#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"

static void test_append_and_consume(void **state)
{
    (void)state;
    struct p11n_buf b = {0};
    for (int i = 0; i < 100; i++) assert_int_equal(p11n_buf_append(&b, p11n_slice_of("abc", 3), 1000), P11N_OK);
    assert_int_equal(b.len, 300);
    p11n_buf_consume(&b, 299);
    assert_int_equal(b.len, 1);
    assert_int_equal(b.data[0], 'c');
    p11n_buf_consume(&b, 5);
    assert_int_equal(b.len, 0);
    p11n_buf_cleanup(&b);
    assert_null(b.data);
}

static void test_limit_refused_before_growth(void **state)
{
    (void)state;
    struct p11n_buf b = {0};
    assert_int_equal(p11n_buf_append(&b, p11n_slice_of("0123456789", 10), 10), P11N_OK);
    assert_int_equal(p11n_buf_append(&b, p11n_slice_of("x", 1), 10), P11N_E_NOMEM);
    assert_int_equal(b.len, 10);
    assert_int_equal(p11n_buf_reserve(&b, SIZE_MAX, SIZE_MAX), P11N_E_NOMEM);
    assert_true(b.cap <= 64);
    p11n_buf_cleanup(&b);
}

static void test_be32(void **state)
{
    (void)state;
    uint8_t p[4];
    p11n_store_be32(p, 0x01020304);
    assert_memory_equal(p, "\x01\x02\x03\x04", 4);
    assert_int_equal(p11n_load_be32((const uint8_t *)"\xff\x00\x00\x01"), 0xff000001u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_consume),
        cmocka_unit_test(test_limit_refused_before_growth),
        cmocka_unit_test(test_be32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
