/* p11netd's option table: defaults, ranges, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

static p11n_rc parse(struct p11n_config *cfg, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "p11netd";
    for (; *args; args++) argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    return p11n_config_parse(cfg, argc, argv);
}

static void test_defaults(void **state)
{
    (void)state;
    struct p11n_config cfg;
    const char *args[] = {NULL};
    assert_int_equal(parse(&cfg, args), P11N_OK);
    assert_int_equal(cfg.n_listen, 1);
    assert_string_equal(cfg.listen[0], "127.0.0.1:9091");
    assert_string_equal(cfg.module, "/usr/lib/softhsm/libsofthsm2.so");
    assert_int_equal(cfg.max_frame, 1048576);
    assert_int_equal(cfg.max_batch, 256);
    assert_int_equal(cfg.max_inflight, 128);
    assert_int_equal(cfg.max_conns, 10000);
    assert_int_equal(cfg.idle_timeout_s, 30);
    assert_true(cfg.workers >= 1);
    assert_int_equal(cfg.io_threads, cfg.workers); /* both default to the cores */
    assert_false(cfg.no_inline);
    assert_string_equal(cfg.log_level, "info");
    p11n_config_cleanup(&cfg);
}

static void test_values_and_repeats(void **state)
{
    (void)state;
    struct p11n_config cfg;
    const char *args[] = {"--listen", "127.0.0.1:0", "--listen", "unix:/tmp/x.sock", "--max-inflight", "4",
                          "--workers", "3", "--token-pin", "MyToken=/tmp/pin", "--insecure",
                          "--io-threads", "5", "--no-inline", NULL};
    assert_int_equal(parse(&cfg, args), P11N_OK);
    assert_int_equal(cfg.n_listen, 2);
    assert_string_equal(cfg.listen[1], "unix:/tmp/x.sock");
    assert_int_equal(cfg.max_inflight, 4);
    assert_int_equal(cfg.workers, 3);
    assert_int_equal(cfg.io_threads, 5);
    assert_true(cfg.no_inline);
    assert_int_equal(cfg.n_token_pins, 1);
    assert_string_equal(cfg.token_pins[0].label, "MyToken");
    assert_string_equal(cfg.token_pins[0].path, "/tmp/pin");
    assert_true(cfg.insecure);
    p11n_config_cleanup(&cfg);
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const bad[][4] = {
        {"--max-frame", "1", NULL},         /* below the minimum */
        {"--max-inflight", "0", NULL},      /* zero */
        {"--max-batch", "-1", NULL},        /* negative */
        {"--max-conns", "12x", NULL},       /* junk */
        {"--workers", "99999", NULL},       /* above the maximum */
        {"--io-threads", "0", NULL},        /* below the minimum */
        {"--io-threads", "257", NULL},      /* above the maximum */
        {"--log-level", "loud", NULL},
        {"--token-pin", "nolabel", NULL},
        {"--tls-cert", "c.pem", NULL},      /* without --tls-key */
        {"--no-such-option", NULL},
        {"stray", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct p11n_config cfg;
        assert_int_equal(parse(&cfg, bad[i]), P11N_E_USAGE);
        p11n_config_cleanup(&cfg);
    }
}

static void test_help_exits_zero(void **state)
{
    (void)state;
    struct p11n_config cfg;
    const char *args[] = {"--help", NULL};
    assert_int_equal(parse(&cfg, args), P11N_E_CLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_values_and_repeats),
        cmocka_unit_test(test_refusals), cmocka_unit_test(test_help_exits_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
