/* Latency histogram with bounded relative error (log-linear buckets, as in
 * HdrHistogram): values below 2^P11N_HIST_SUB_BITS are exact; above, each power of
 * two is split into 2^P11N_HIST_SUB_BITS equal buckets, so a bucket is never wider
 * than 1/128 of its lower bound. Quantiles report the bucket's midpoint: relative
 * error <= 1/256 (0.4%), well inside the 1% asked for. Fixed size, no allocation
 * after init, O(1) record: cheap enough for the load generator's hot path.
 * Not thread-safe: one histogram per thread, merged at the end. */
#ifndef P11N_CLIENT_HIST_H
#define P11N_CLIENT_HIST_H

#include <stdint.h>

#include "err.h"

#define P11N_HIST_SUB_BITS 7
#define P11N_HIST_SUB (1u << P11N_HIST_SUB_BITS)
/* Every uint64_t: 128 exact buckets, then 57 powers of two times 128. */
#define P11N_HIST_BUCKETS ((64 - P11N_HIST_SUB_BITS + 1) * P11N_HIST_SUB)

struct p11n_hist {
    uint64_t count;
    uint64_t min, max;
    uint64_t *buckets; /* P11N_HIST_BUCKETS counters */
};

P11N_MUST_USE p11n_rc p11n_hist_init(struct p11n_hist *h);
void p11n_hist_cleanup(struct p11n_hist *h);
void p11n_hist_record(struct p11n_hist *h, uint64_t value);
/* Adds every value recorded in src to dst. */
void p11n_hist_merge(struct p11n_hist *dst, const struct p11n_hist *src);
/* The value at quantile q in [0, 1] (0.5: median), within the error bound and
 * clamped to [min, max]; 0 when empty. */
uint64_t p11n_hist_quantile(const struct p11n_hist *h, double q);

/* Bucket arithmetic, exposed for the unit test. */
unsigned p11n_hist_bucket(uint64_t value);
uint64_t p11n_hist_bucket_low(unsigned bucket);
uint64_t p11n_hist_bucket_width(unsigned bucket);

#endif
