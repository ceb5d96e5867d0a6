/* Listen-address parsing and the loopback rule behind --insecure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "listener.h"

static void test_parse_good(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    assert_int_equal(p11n_listener_parse_addr("127.0.0.1:9091", &a), P11N_OK);
    assert_int_equal(a.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&a)->sin_port), 9091);
    assert_true(p11n_listener_is_loopback(&a));
    assert_int_equal(p11n_listener_parse_addr("[::1]:0", &a), P11N_OK);
    assert_int_equal(a.ss_family, AF_INET6);
    assert_true(p11n_listener_is_loopback(&a));
    assert_int_equal(p11n_listener_parse_addr("localhost:1", &a), P11N_OK);
    assert_true(p11n_listener_is_loopback(&a));
    assert_int_equal(p11n_listener_parse_addr("127.9.9.9:1", &a), P11N_OK);
    assert_true(p11n_listener_is_loopback(&a));
    assert_int_equal(p11n_listener_parse_addr("0.0.0.0:1", &a), P11N_OK);
    assert_false(p11n_listener_is_loopback(&a));
    assert_int_equal(p11n_listener_parse_addr("[::]:1", &a), P11N_OK);
    assert_false(p11n_listener_is_loopback(&a));
    assert_int_equal(p11n_listener_parse_addr("10.1.2.3:443", &a), P11N_OK);
    assert_false(p11n_listener_is_loopback(&a));
}

static void test_parse_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                                      ":80", "[::1]80", "[::1", "host.invalid.:80", "1.2.3.4:8x"};
    struct sockaddr_storage a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(p11n_listener_parse_addr(bad[i], &a), P11N_E_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse_good), cmocka_unit_test(test_parse_bad)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
