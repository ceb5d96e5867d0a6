/* The frame decoder: every chunking of a stream yields the same frames; hostile
 * headers are refused before anything is buffered for them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "frame.h"

#define MAX_FRAME 1024

/* A stream of three frames: empty, 5 bytes, 300 bytes. */
static size_t make_stream(uint8_t *out)
{
    static const size_t lens[] = {0, 5, 300};
    size_t off = 0;
    for (size_t f = 0; f < 3; f++) {
        p11n_frame_header(out + off, (uint32_t)lens[f]);
        off += 4;
        for (size_t i = 0; i < lens[f]; i++) out[off++] = (uint8_t)(f * 31 + i);
    }
    return off;
}

static void check_frame(size_t idx, struct p11n_slice body)
{
    static const size_t lens[] = {0, 5, 300};
    assert_true(idx < 3);
    assert_int_equal(body.len, lens[idx]);
    for (size_t i = 0; i < body.len; i++) assert_int_equal(body.p[i], (uint8_t)(idx * 31 + i));
}

/* Feeds the stream in chunks of `step` bytes, counting frames. */
static void feed_in_steps(size_t step)
{
    uint8_t stream[400];
    size_t n = make_stream(stream), off = 0, frames = 0;
    struct p11n_frame_decoder d;
    p11n_frame_decoder_init(&d, MAX_FRAME);
    while (off < n) {
        size_t len = n - off < step ? n - off : step;
        struct p11n_slice chunk = p11n_slice_of(stream + off, len), body;
        p11n_rc why = P11N_OK;
        enum p11n_parse r;
        while ((r = p11n_frame_next(&d, &chunk, &body, &why)) == P11N_PARSE_FRAME) check_frame(frames++, body);
        assert_int_equal(r, P11N_PARSE_NEED_MORE);
        assert_int_equal(chunk.len, 0);
        off += len;
    }
    assert_int_equal(frames, 3);
    assert_false(p11n_frame_pending(&d));
    p11n_frame_decoder_cleanup(&d);
}

static void test_one_chunk(void **state) { (void)state; feed_in_steps(1000); }
static void test_byte_at_a_time(void **state) { (void)state; feed_in_steps(1); }
static void test_all_chunk_sizes(void **state)
{
    (void)state;
    for (size_t step = 2; step < 320; step++) feed_in_steps(step);
}

static void test_zero_length_frame(void **state)
{
    (void)state;
    uint8_t hdr[4] = {0, 0, 0, 0};
    struct p11n_frame_decoder d;
    struct p11n_slice chunk = p11n_slice_of(hdr, 4), body = {NULL, 99};
    p11n_rc why;
    p11n_frame_decoder_init(&d, MAX_FRAME);
    assert_int_equal(p11n_frame_next(&d, &chunk, &body, &why), P11N_PARSE_FRAME);
    assert_int_equal(body.len, 0);
    assert_int_equal(p11n_frame_next(&d, &chunk, &body, &why), P11N_PARSE_NEED_MORE);
    p11n_frame_decoder_cleanup(&d);
}

/* Oversize is refused from the header alone, whole or split, before buffering. */
static void test_oversize(void **state)
{
    (void)state;
    static const uint32_t lens[] = {MAX_FRAME + 1, 0x7fffffff, 0xffffffff};
    for (size_t i = 0; i < 3; i++) {
        for (size_t split = 1; split <= 4; split++) {
            uint8_t hdr[4];
            struct p11n_frame_decoder d;
            struct p11n_slice body, a, b;
            p11n_rc why = P11N_OK;
            p11n_frame_header(hdr, lens[i]);
            p11n_frame_decoder_init(&d, MAX_FRAME);
            a = p11n_slice_of(hdr, split);
            b = p11n_slice_of(hdr + split, 4 - split);
            if (split < 4) {
                assert_int_equal(p11n_frame_next(&d, &a, &body, &why), P11N_PARSE_NEED_MORE);
                assert_int_equal(p11n_frame_next(&d, &b, &body, &why), P11N_PARSE_ERROR);
            } else {
                assert_int_equal(p11n_frame_next(&d, &a, &body, &why), P11N_PARSE_ERROR);
            }
            assert_int_equal(why, P11N_E_TOO_LARGE);
            assert_true(d.partial.cap <= 64);
            p11n_frame_decoder_cleanup(&d);
        }
    }
}

/* Exactly max_frame is accepted. */
static void test_max_size_accepted(void **state)
{
    (void)state;
    uint8_t *stream = calloc(1, 4 + MAX_FRAME);
    struct p11n_frame_decoder d;
    struct p11n_slice chunk, body;
    p11n_rc why;
    p11n_frame_header(stream, MAX_FRAME);
    p11n_frame_decoder_init(&d, MAX_FRAME);
    chunk = p11n_slice_of(stream, 4 + MAX_FRAME);
    assert_int_equal(p11n_frame_next(&d, &chunk, &body, &why), P11N_PARSE_FRAME);
    assert_int_equal(body.len, MAX_FRAME);
    p11n_frame_decoder_cleanup(&d);
    free(stream);
}

/* A truncated frame stays pending; memory follows what arrived, not the claim. */
static void test_truncated_pending(void **state)
{
    (void)state;
    uint8_t part[10] = {0};
    struct p11n_frame_decoder d;
    struct p11n_slice chunk = p11n_slice_of(part, sizeof(part)), body;
    p11n_rc why;
    p11n_frame_header(part, MAX_FRAME);
    p11n_frame_decoder_init(&d, MAX_FRAME);
    assert_int_equal(p11n_frame_next(&d, &chunk, &body, &why), P11N_PARSE_NEED_MORE);
    assert_true(p11n_frame_pending(&d));
    assert_int_equal(d.partial.len, 10);
    assert_true(d.partial.cap < MAX_FRAME);
    p11n_frame_decoder_cleanup(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_chunk),         cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_all_chunk_sizes),   cmocka_unit_test(test_zero_length_frame),
        cmocka_unit_test(test_oversize),          cmocka_unit_test(test_max_size_accepted),
        cmocka_unit_test(test_truncated_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
