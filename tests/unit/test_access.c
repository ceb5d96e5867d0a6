/* src/server/access.c: ACL parsing (good and hostile files), grants, the order
 * UNAUTHORIZED before THROTTLED, and the throttle's token bucket driven by a test
 * clock (counted, not timed), its per-pair isolation and its size bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "access.h"

static uint64_t fake_now;
static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

#define SEC 1000000000ull

static char acl_path[64];

static void write_acl(const char *text)
{
    FILE *f;
    snprintf(acl_path, sizeof(acl_path), "/tmp/p11n-acl-XXXXXX");
    int fd = mkstemp(acl_path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

static struct p11n_access *make(const char *acl, uint64_t burst, uint64_t rate, size_t max_entries, char *err,
                                size_t err_len, p11n_rc *rc_out)
{
    struct p11n_access_config c = {0};
    struct p11n_access *acc = NULL;
    p11n_rc rc;
    if (acl) write_acl(acl);
    c.acl_path = acl ? acl_path : NULL;
    c.burst = burst;
    c.rate = rate;
    c.max_entries = max_entries;
    c.now_ns = fake_clock;
    rc = p11n_access_new(&acc, &c, err, err_len);
    if (acl) unlink(acl_path);
    if (rc_out) *rc_out = rc;
    return acc;
}

static struct p11n_access *must_make(const char *acl, uint64_t burst, uint64_t rate, size_t max_entries)
{
    char err[256] = "";
    p11n_rc rc;
    struct p11n_access *acc = make(acl, burst, rate, max_entries, err, sizeof(err), &rc);
    if (rc != P11N_OK) fail_msg("p11n_access_new: %s", err);
    return acc;
}

static void names_of(struct p11n_strvec *v, const char *const *names)
{
    for (; *names; names++) assert_int_equal(p11n_strvec_push(v, p11n_slice_of(*names, strlen(*names))), P11N_OK);
}

static void test_no_acl_allows_all(void **state)
{
    (void)state;
    struct p11n_access *acc = must_make(NULL, 100, 10, 0);
    const struct p11n_grant *g = p11n_access_grant(acc, NULL, "127.0.0.1");
    assert_non_null(g);
    assert_true(p11n_access_grant_allows(g, "MyToken"));
    assert_int_equal(p11n_access_check(acc, g, "127.0.0.1", "AnyToken"), P11N_OK);
    p11n_access_free(acc);
}

static void test_acl_rules(void **state)
{
    (void)state;
    struct p11n_access *acc = must_make("# comment line\n"
                                        "client1@p11net.test = MyToken, Token2   # trailing comment\n"
                                        "\n"
                                        "   client2.p11net.test=Token3\n"
                                        "admin = *\n"
                                        "client2.p11net.test = Token2\n" /* merged with the rule above */
                                        "unix:uid=1000 = MyToken\n",
                                        100, 10, 0);
    struct p11n_strvec c1 = {0}, c2 = {0}, admin = {0}, nobody = {0};
    const struct p11n_grant *g;

    names_of(&c1, (const char *const[]){"client1", "client1@p11net.test", NULL});
    names_of(&c2, (const char *const[]){"client2", "client2.p11net.test", NULL});
    names_of(&admin, (const char *const[]){"ADMIN", NULL}); /* identities match case-insensitively */
    names_of(&nobody, (const char *const[]){"client9", "client9@p11net.test", NULL});

    g = p11n_access_grant(acc, &c1, "127.0.0.1");
    assert_non_null(g);
    assert_true(p11n_access_grant_allows(g, "MyToken"));
    assert_true(p11n_access_grant_allows(g, "Token2"));
    assert_false(p11n_access_grant_allows(g, "Token3"));
    assert_false(p11n_access_grant_allows(g, "mytoken")); /* labels are exact */
    assert_int_equal(p11n_access_check(acc, g, "client1", "Token3"), P11N_E_UNAUTHORIZED);

    g = p11n_access_grant(acc, &c2, "127.0.0.1");
    assert_non_null(g);
    assert_true(p11n_access_grant_allows(g, "Token3"));
    assert_true(p11n_access_grant_allows(g, "Token2"));
    assert_false(p11n_access_grant_allows(g, "MyToken"));

    g = p11n_access_grant(acc, &admin, "127.0.0.1");
    assert_true(p11n_access_grant_allows(g, "whatever"));

    assert_null(p11n_access_grant(acc, &nobody, "127.0.0.1"));
    assert_int_equal(p11n_access_check(acc, NULL, "client9", "MyToken"), P11N_E_UNAUTHORIZED);
    /* Without certificate names only a kernel-vouched unix identity can match. */
    assert_null(p11n_access_grant(acc, NULL, "127.0.0.1"));
    g = p11n_access_grant(acc, NULL, "unix:uid=1000");
    assert_true(p11n_access_grant_allows(g, "MyToken"));

    p11n_strvec_cleanup(&c1);
    p11n_strvec_cleanup(&c2);
    p11n_strvec_cleanup(&admin);
    p11n_strvec_cleanup(&nobody);
    p11n_access_free(acc);
}

static void test_acl_bad_files(void **state)
{
    (void)state;
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"client1 MyToken\n", ":1: expected"},
        {"= MyToken\n", "empty identity"},
        {"client1 =\n", "no token"},
        {"client1 = MyToken,\n", "empty token label"},
        {"client1 = MyToken,,Token2\n", "empty token label"},
        {"client1 = , MyToken\n", "empty token label"},
        {"* = MyToken\n", "not an identity"},
        {"# ok\nclient1 = 0123456789012345678901234567890123456789\n", ":2: token label longer"},
    };
    char err[256];
    p11n_rc rc;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        struct p11n_access *acc = make(bad[i].text, 100, 10, 0, err, sizeof(err), &rc);
        assert_null(acc);
        assert_int_equal(rc, P11N_E_USAGE);
        if (!strstr(err, bad[i].why)) fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].why);
    }
    /* A missing file, and a line longer than any rule. */
    {
        struct p11n_access_config c = {.acl_path = "/nonexistent/acl", .burst = 1, .rate = 1};
        struct p11n_access *acc = NULL;
        assert_int_equal(p11n_access_new(&acc, &c, err, sizeof(err)), P11N_E_USAGE);
        assert_non_null(strstr(err, "/nonexistent/acl"));
    }
    {
        char *huge = malloc(20000);
        memset(huge, 'a', 19998);
        huge[19998] = '\n';
        huge[19999] = 0;
        assert_null(make(huge, 100, 10, 0, err, sizeof(err), &rc));
        assert_non_null(strstr(err, "longer than"));
        free(huge);
    }
    /* Empty file and comments only: a valid ACL that admits nobody. */
    {
        struct p11n_access *acc = must_make("# nobody\n\n   \n", 100, 10, 0);
        struct p11n_strvec c1 = {0};
        names_of(&c1, (const char *const[]){"client1", NULL});
        assert_null(p11n_access_grant(acc, &c1, "127.0.0.1"));
        p11n_strvec_cleanup(&c1);
        p11n_access_free(acc);
    }
}

static void test_filter_tokens(void **state)
{
    (void)state;
    struct p11n_access *acc = must_make("client1 = MyToken, Token3\n", 100, 10, 0);
    struct p11n_strvec names = {0}, list = {0};
    const struct p11n_grant *g;
    names_of(&names, (const char *const[]){"client1", NULL});
    names_of(&list, (const char *const[]){"SlotID:1, Token: MyToken", "SlotID:2, Token: Token2",
                                          "SlotID:3, Token: Token3", "garbage", NULL});
    g = p11n_access_grant(acc, &names, "x");
    p11n_access_filter_tokens(g, &list);
    assert_int_equal(list.len, 2);
    assert_string_equal(list.items[0], "SlotID:1, Token: MyToken");
    assert_string_equal(list.items[1], "SlotID:3, Token: Token3");
    p11n_access_filter_tokens(NULL, &list); /* no rule: nothing */
    assert_int_equal(list.len, 0);
    p11n_strvec_cleanup(&list);
    p11n_strvec_cleanup(&names);
    p11n_access_free(acc);
}

/* Burst 3, rate 1/s: three wrong PINs pass, the fourth attempt is THROTTLED
 * (whatever PIN it would carry: the check does not see it), other tokens and
 * other clients are unaffected, and one second of test clock gives one try back. */
static void test_throttle_bucket(void **state)
{
    (void)state;
    struct p11n_access *acc = must_make(NULL, 3, 1, 0);
    const struct p11n_grant *g = p11n_access_grant(acc, NULL, "10.0.0.1");

    fake_now = 1000 * SEC;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(p11n_access_check(acc, g, "10.0.0.1", "MyToken"), P11N_OK);
        p11n_access_pin_result(acc, "10.0.0.1", "MyToken", 0);
    }
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.1", "MyToken"), P11N_E_THROTTLED);
    /* A correct PIN does not unlock a throttled pair (it is not even checked). */
    p11n_access_pin_result(acc, "10.0.0.1", "MyToken", 1);
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.1", "MyToken"), P11N_E_THROTTLED);
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.1", "Token2"), P11N_OK);
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.2", "MyToken"), P11N_OK);
    /* The key is the pair, not a concatenation. */
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.1M", "yToken"), P11N_OK);

    fake_now += SEC - 1;
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.1", "MyToken"), P11N_E_THROTTLED);
    fake_now += 1;
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.1", "MyToken"), P11N_OK);
    p11n_access_pin_result(acc, "10.0.0.1", "MyToken", 0);
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.1", "MyToken"), P11N_E_THROTTLED);

    /* Fully refilled (3 s): the entry is forgotten and the burst is back. */
    fake_now += 3 * SEC;
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.1", "MyToken"), P11N_OK);
    assert_int_equal(p11n_access_throttle_entries(acc), 0);
    /* The clock going backwards (it cannot, but) refills nothing. */
    p11n_access_pin_result(acc, "10.0.0.1", "MyToken", 0);
    fake_now -= SEC;
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.1", "MyToken"), P11N_OK);
    p11n_access_free(acc);
}

/* A sustained guesser gets at most burst + rate * t wrong PINs in t seconds, even
 * when parallel requests all pass the check before any is counted (debt). */
/* A period stretches the refill: rate 1 per hour gives nothing back after a
 * minute, one try after the hour; a period beyond the bound is refused. */
static void test_throttle_period(void **state)
{
    (void)state;
    struct p11n_access_config c = {0};
    struct p11n_access *acc = NULL;
    char err[160];
    c.burst = 1;
    c.rate = 1;
    c.period_s = 3600;
    c.now_ns = fake_clock;
    assert_int_equal(p11n_access_new(&acc, &c, err, sizeof(err)), P11N_OK);
    const struct p11n_grant *g = p11n_access_grant(acc, NULL, "10.0.0.9");
    fake_now = 2000 * SEC;
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.9", "MyToken"), P11N_OK);
    p11n_access_pin_result(acc, "10.0.0.9", "MyToken", 0);
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.9", "MyToken"), P11N_E_THROTTLED);
    fake_now += 60 * SEC;
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.9", "MyToken"), P11N_E_THROTTLED);
    fake_now += 3540 * SEC;
    assert_int_equal(p11n_access_check(acc, g, "10.0.0.9", "MyToken"), P11N_OK);
    p11n_access_free(acc);
    c.period_s = P11N_THROTTLE_MAX_PERIOD + 1;
    assert_int_equal(p11n_access_new(&acc, &c, err, sizeof(err)), P11N_E_USAGE);
}

static void test_throttle_sustained_rate(void **state)
{
    (void)state;
    struct p11n_access *acc = must_make(NULL, 100, 10, 0);
    const struct p11n_grant *g = p11n_access_grant(acc, NULL, "x");
    unsigned allowed = 0;

    fake_now = 5000 * SEC;
    /* 60 simulated seconds; the guesser tries every millisecond, 8 in parallel. */
    for (int ms = 0; ms < 60000; ms++) {
        unsigned passed = 0;
        fake_now += SEC / 1000;
        for (int k = 0; k < 8; k++) passed += p11n_access_check(acc, g, "x", "T") == P11N_OK;
        for (unsigned k = 0; k < passed; k++) p11n_access_pin_result(acc, "x", "T", 0);
        allowed += passed;
    }
    /* burst 100 + 10/s * 60 s = 700; parallel overshoot is paid back as debt. */
    if (allowed > 700 + 8) fail_msg("%u wrong PINs allowed in 60 s", allowed);
    assert_true(allowed >= 600);
    p11n_access_free(acc);
}

/* 64 clients behind one address, one wrong PIN each (p11net run -n 64), with the
 * defaults: nobody is throttled. */
static void test_throttle_defaults_run64(void **state)
{
    (void)state;
    struct p11n_access *acc = must_make(NULL, 100, 10, 0);
    const struct p11n_grant *g = p11n_access_grant(acc, NULL, "127.0.0.1");
    fake_now = 7 * SEC;
    for (int i = 0; i < 64; i++) {
        assert_int_equal(p11n_access_check(acc, g, "127.0.0.1", "MyToken"), P11N_OK);
        p11n_access_pin_result(acc, "127.0.0.1", "MyToken", 0);
    }
    assert_int_equal(p11n_access_check(acc, g, "127.0.0.1", "MyToken"), P11N_OK);
    p11n_access_free(acc);
}

/* Many identities cannot grow the table past its bound; eviction takes
 * refilled entries first, so a throttled pair survives a flood of fresh ones that
 * refill. */
static void test_throttle_bounded(void **state)
{
    (void)state;
    struct p11n_access *acc = must_make(NULL, 2, 1, 256);
    const struct p11n_grant *g = p11n_access_grant(acc, NULL, "x");
    char id[32];

    fake_now = 100 * SEC;
    p11n_access_pin_result(acc, "victim", "T", 0);
    p11n_access_pin_result(acc, "victim", "T", 0);
    assert_int_equal(p11n_access_check(acc, g, "victim", "T"), P11N_E_THROTTLED);
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof(id), "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        p11n_access_pin_result(acc, id, "T", 0);
        assert_true(p11n_access_throttle_entries(acc) <= 256);
    }
    /* Flood entries are at burst-1, the victim at 0: the victim was never the
     * fullest, so it is still throttled. */
    assert_int_equal(p11n_access_check(acc, g, "victim", "T"), P11N_E_THROTTLED);
    p11n_access_free(acc);
}

static void test_bad_config(void **state)
{
    (void)state;
    char err[128];
    p11n_rc rc;
    assert_null(make(NULL, 0, 10, 0, err, sizeof(err), &rc));
    assert_int_equal(rc, P11N_E_USAGE);
    assert_null(make(NULL, 10, 0, 0, err, sizeof(err), &rc));
    assert_int_equal(rc, P11N_E_USAGE);
    p11n_access_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_acl_allows_all),     cmocka_unit_test(test_acl_rules),
        cmocka_unit_test(test_acl_bad_files),         cmocka_unit_test(test_filter_tokens),
        cmocka_unit_test(test_throttle_bucket),       cmocka_unit_test(test_throttle_period),       cmocka_unit_test(test_throttle_sustained_rate),
        cmocka_unit_test(test_throttle_defaults_run64), cmocka_unit_test(test_throttle_bounded),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
