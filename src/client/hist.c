#include "hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

unsigned p11n_hist_bucket(uint64_t v)
{
    unsigned msb, shift;
    if (v < P11N_HIST_SUB) return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - P11N_HIST_SUB_BITS;
    /* v >> shift is in [SUB, 2*SUB): its low bits pick the linear sub-bucket. */
    return (shift + 1) * P11N_HIST_SUB + (unsigned)((v >> shift) - P11N_HIST_SUB);
}

uint64_t p11n_hist_bucket_low(unsigned b)
{
    unsigned shift;
    if (b < P11N_HIST_SUB) return b;
    shift = b / P11N_HIST_SUB - 1;
    return (uint64_t)(P11N_HIST_SUB + b % P11N_HIST_SUB) << shift;
}

uint64_t p11n_hist_bucket_width(unsigned b)
{
    return b < P11N_HIST_SUB ? 1 : (uint64_t)1 << (b / P11N_HIST_SUB - 1);
}

p11n_rc p11n_hist_init(struct p11n_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
    h->buckets = calloc(P11N_HIST_BUCKETS, sizeof(*h->buckets));
    return h->buckets ? P11N_OK : P11N_E_NOMEM;
}

void p11n_hist_cleanup(struct p11n_hist *h)
{
    free(h->buckets);
    h->buckets = NULL;
}

void p11n_hist_record(struct p11n_hist *h, uint64_t v)
{
    h->buckets[p11n_hist_bucket(v)]++;
    h->count++;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void p11n_hist_merge(struct p11n_hist *dst, const struct p11n_hist *src)
{
    for (unsigned b = 0; b < P11N_HIST_BUCKETS; b++) dst->buckets[b] += src->buckets[b];
    dst->count += src->count;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
}

uint64_t p11n_hist_quantile(const struct p11n_hist *h, double q)
{
    uint64_t rank, seen = 0;

    if (h->count == 0) return 0;
    if (q <= 0) return h->min;
    if (q >= 1) return h->max;
    /* The smallest value with at least ceil(q * count) values at or below it. */
    rank = (uint64_t)ceil(q * (double)h->count);
    if (rank == 0) rank = 1;
    for (unsigned b = 0; b < P11N_HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen >= rank) {
            uint64_t mid = p11n_hist_bucket_low(b) + (p11n_hist_bucket_width(b) - 1) / 2;
            return mid < h->min ? h->min : mid > h->max ? h->max : mid;
        }
    }
    return h->max;
}
