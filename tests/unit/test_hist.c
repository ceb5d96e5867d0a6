/* The latency histogram (src/client/hist.c): bucket arithmetic covers every
 * uint64_t without gaps, and quantiles stay within 1% of the exact answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "hist.h"

static void test_buckets_contiguous(void **state)
{
    (void)state;
    assert_int_equal(p11n_hist_bucket(0), 0);
    assert_int_equal(p11n_hist_bucket(UINT64_MAX), P11N_HIST_BUCKETS - 1);
    for (unsigned b = 0; b + 1 < P11N_HIST_BUCKETS; b++) {
        uint64_t lo = p11n_hist_bucket_low(b), w = p11n_hist_bucket_width(b);
        assert_int_equal(p11n_hist_bucket(lo), b);
        assert_int_equal(p11n_hist_bucket(lo + w - 1), b);
        assert_true(p11n_hist_bucket_low(b + 1) == lo + w); /* no gap, no overlap */
        /* The width bound that gives the error bound. */
        assert_true(lo < P11N_HIST_SUB || w * P11N_HIST_SUB <= lo);
    }
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Random latencies over six orders of magnitude, against exact sorting. */
static void test_quantile_error(void **state)
{
    enum { N = 100000 };
    static const double qs[] = {0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999};
    uint64_t *v = malloc(N * sizeof(*v)), seed = 88172645463325252ull;
    struct p11n_hist h;
    (void)state;
    assert_non_null(v);
    assert_int_equal(p11n_hist_init(&h), P11N_OK);
    for (size_t i = 0; i < N; i++) {
        v[i] = 1000 + next_rand(&seed) % (1ull << (10 + next_rand(&seed) % 20));
        p11n_hist_record(&h, v[i]);
    }
    qsort(v, N, sizeof(*v), cmp_u64);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        size_t rank = (size_t)((double)N * qs[i] + 0.999999999);
        double exact = (double)v[rank - 1], got = (double)p11n_hist_quantile(&h, qs[i]);
        assert_true(got >= exact * 0.99 && got <= exact * 1.01);
    }
    assert_true(p11n_hist_quantile(&h, 0) == v[0]);
    assert_true(p11n_hist_quantile(&h, 1) == v[N - 1]);
    p11n_hist_cleanup(&h);
    free(v);
}

static void test_empty_exact_and_merge(void **state)
{
    struct p11n_hist a, b;
    (void)state;
    assert_int_equal(p11n_hist_init(&a), P11N_OK);
    assert_int_equal(p11n_hist_init(&b), P11N_OK);
    assert_true(p11n_hist_quantile(&a, 0.5) == 0);
    for (uint64_t i = 1; i <= 100; i++) p11n_hist_record(&a, i); /* small values are exact */
    assert_true(p11n_hist_quantile(&a, 0.5) == 50);
    assert_true(p11n_hist_quantile(&a, 0.99) == 99);
    p11n_hist_record(&b, 5000000);
    p11n_hist_merge(&a, &b);
    assert_true(a.count == 101);
    assert_true(p11n_hist_quantile(&a, 1.0) == 5000000);
    {
        uint64_t q = p11n_hist_quantile(&a, 0.999); /* a bucket midpoint, within 1%, never above max */
        assert_true(q <= 5000000 && q >= 4950000);
    }
    p11n_hist_cleanup(&a);
    p11n_hist_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_contiguous),
        cmocka_unit_test(test_quantile_error),
        cmocka_unit_test(test_empty_exact_and_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
