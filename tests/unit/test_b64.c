#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "b64.h"

/* RFC 4648 section 10 test vectors. */
static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

static void test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < 7; i++) {
        struct p11n_buf e = {0}, d = {0};
        assert_int_equal(p11n_b64_encode(p11n_slice_of(plain[i], strlen(plain[i])), &e), P11N_OK);
        assert_int_equal(e.len, strlen(coded[i]));
        if (e.len) assert_string_equal((char *)e.data, coded[i]);
        assert_int_equal(p11n_b64_decode(p11n_slice_of(coded[i], strlen(coded[i])), &d), P11N_OK);
        assert_int_equal(d.len, strlen(plain[i]));
        if (d.len) assert_memory_equal(d.data, plain[i], d.len);
        p11n_buf_cleanup(&e);
        p11n_buf_cleanup(&d);
    }
}

static void test_hostile(void **state)
{
    (void)state;
    static const char *const bad[] = {"Zg=", "Zg", "Z===", "Zg=a", " Zg==", "Zg==\n", "Z!==", "=Zg=", "Zm9v\0Yg=="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct p11n_buf d = {0};
        size_t len = i == 8 ? 10 : strlen(bad[i]);
        assert_int_equal(p11n_b64_decode(p11n_slice_of(bad[i], len), &d), P11N_E_BAD_REQUEST);
        p11n_buf_cleanup(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vectors), cmocka_unit_test(test_hostile)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
