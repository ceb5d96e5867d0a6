/* The server's network behaviour (PROTOCOL.md sections 1, 2 and 5): framing, limits,
 * backpressure, hostile frames, disconnects and draining. Operations that need the
 * HSM are used only as load here; their results are tested in test_ops.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include <cmocka.h>

#include "frame.h"
#include "harness.h"

#define T_REPLY 30000

static p11n_msg *ping(const char *id)
{
    return h_req(P11NET__PROTO_MESSAGE_TYPE__ACK, id, NULL, NULL, 0, NULL);
}

static p11n_msg *sign(const char *id, const char *msg)
{
    const char *data[1] = {msg};
    return h_req(P11NET__PROTO_MESSAGE_TYPE__SIGN, id, "MyToken", "1234", 1, data);
}

static void assert_ping_ok(int fd)
{
    p11n_msg *q = ping("p"), *r = h_call(fd, q);
    assert_false(r->err);
    assert_string_equal(r->id, "p");
    assert_int_equal(r->n_data, 1);
    assert_non_null(strstr(r->data[0], "p11netd"));
    h_msg_free(q);
    h_msg_free(r);
}

static void assert_closed(int fd)
{
    uint8_t buf[256];
    assert_true(h_read_until_eof(fd, buf, sizeof(buf), T_REPLY) >= 0);
}

static void test_ping_echoes_id_and_seq(void **state)
{
    (void)state;
    struct h_server s;
    h_server_start(&s, NULL);
    int fd = h_connect(s.addr);
    p11n_msg *q = ping("abc"), *r;
    q->seq = 42;
    r = h_call(fd, q);
    assert_false(r->err);
    assert_string_equal(r->id, "abc");
    assert_int_equal(r->seq, 42);
    assert_int_equal(r->flag, P11NET__PROTO_MESSAGE_TYPE__ACK);
    assert_string_equal(r->pin, "");
    h_msg_free(q);
    h_msg_free(r);
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

/* A zero-length frame is an all-default message: a ping with no id. */
static void test_zero_length_frame_is_ping(void **state)
{
    (void)state;
    struct h_server s;
    h_server_start(&s, NULL);
    int fd = h_connect(s.addr);
    assert_int_equal(h_write_all(fd, "\0\0\0\0", 4), 0);
    p11n_msg *r = h_recv(fd, T_REPLY);
    assert_non_null(r);
    assert_false(r->err);
    assert_string_equal(r->id, "");
    h_msg_free(r);
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

/* A body that is not a ProtoMessage: BAD_REQUEST, and the connection stays usable. */
static void test_garbage_body_bad_request(void **state)
{
    (void)state;
    static const uint8_t garbage[] = {0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff};
    struct h_server s;
    h_server_start(&s, NULL);
    int fd = h_connect(s.addr);
    assert_int_equal(h_write_all(fd, garbage, sizeof(garbage)), 0);
    p11n_msg *r = h_recv(fd, T_REPLY);
    assert_non_null(r);
    assert_true(r->err);
    assert_int_equal(r->code, P11NET__ERROR_CODE__BAD_REQUEST);
    h_msg_free(r);
    assert_ping_ok(fd);
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

/* Form errors: unknown type, unknown mechanism, no input, too many, bad base64. */
static void test_form_errors(void **state)
{
    (void)state;
    struct h_server s;
    const char *args[] = {"--max-batch", "3", NULL};
    const char *four[4] = {"a", "b", "c", "d"}, *one[1] = {"***"};
    h_server_start(&s, args);
    int fd = h_connect(s.addr);
    p11n_msg *q[5];
    q[0] = h_req(P11NET__PROTO_MESSAGE_TYPE__VERIFY + 10, "t", "MyToken", "1234", 1, four);
    q[1] = sign("m", "x");
    q[1]->mechanism = 99;
    q[2] = h_req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "n", "MyToken", "1234", 0, NULL);
    q[3] = h_req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "4", "MyToken", "1234", 4, four);
    q[4] = h_req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "b", "MyToken", "1234", 1, one);
    q[4]->binary = 1;
    for (int i = 0; i < 5; i++) {
        p11n_msg *r = h_call(fd, q[i]);
        assert_true(r->err);
        assert_int_equal(r->code, P11NET__ERROR_CODE__BAD_REQUEST);
        assert_string_equal(r->id, q[i]->id);
        h_msg_free(r);
        h_msg_free(q[i]);
    }
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

/* A header above --max-frame: one TOO_LARGE frame, then the server closes. */
static void test_too_large(void **state)
{
    (void)state;
    struct h_server s;
    const char *args[] = {"--max-frame", "100", NULL};
    uint8_t hdr[4];
    h_server_start(&s, args);
    int fd = h_connect(s.addr);
    p11n_store_be32(hdr, 101);
    assert_int_equal(h_write_all(fd, hdr, 4), 0);
    p11n_msg *r = h_recv(fd, T_REPLY);
    assert_non_null(r);
    assert_true(r->err);
    assert_int_equal(r->code, P11NET__ERROR_CODE__TOO_LARGE);
    h_msg_free(r);
    assert_closed(fd);
    close(fd);
    fd = h_connect(s.addr);
    assert_ping_ok(fd);
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

/* A partial frame with no new byte for --idle-timeout is closed; an idle
 * connection with no partial frame is not. */
static void test_idle_timeout_partial_frame(void **state)
{
    (void)state;
    struct h_server s;
    const char *args[] = {"--idle-timeout", "1", NULL};
    h_server_start(&s, args);
    int idle = h_connect(s.addr), partial = h_connect(s.addr);
    assert_ping_ok(idle);
    assert_int_equal(h_write_all(partial, "\0\0\0\x10\x0a", 5), 0);
    assert_closed(partial); /* within T_REPLY; the server closes after ~1-2 s */
    assert_true(h_server_wait_log(&s, "idle_partial_frame", T_REPLY));
    assert_ping_ok(idle);
    close(partial);
    close(idle);
    assert_int_equal(h_server_stop(&s), 0);
}

/* At --max-conns a new connection gets one BUSY frame and is closed. */
static void test_max_conns_busy(void **state)
{
    (void)state;
    struct h_server s;
    const char *args[] = {"--max-conns", "2", NULL};
    h_server_start(&s, args);
    int a = h_connect(s.addr), b = h_connect(s.addr);
    assert_ping_ok(a);
    assert_ping_ok(b);
    int c = h_connect(s.addr);
    p11n_msg *r = h_recv(c, T_REPLY);
    assert_non_null(r);
    assert_true(r->err);
    assert_int_equal(r->code, P11NET__ERROR_CODE__BUSY);
    h_msg_free(r);
    assert_closed(c);
    close(c);
    close(b);
    /* Once a slot frees up, connections are served again. The close above is seen
     * by the server asynchronously, so retry until a connection is admitted. */
    for (int tries = 0;; tries++) {
        int d = h_connect(s.addr);
        p11n_msg *q = ping("again"), *rr;
        h_send(d, q);
        rr = h_recv(d, T_REPLY);
        assert_non_null(rr);
        int ok = !rr->err;
        h_msg_free(q);
        h_msg_free(rr);
        close(d);
        if (ok) break;
        assert_true(tries < 1000);
    }
    close(a);
    assert_int_equal(h_server_stop(&s), 0);
}

/* Pipelining beyond --max-inflight: the server pauses reading but drops nothing. */
static void test_backpressure_pipelined(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct h_server s;
    const char *args[] = {"--max-inflight", "4", NULL};
    struct p11n_buf all = {0};
    static uint8_t seen[N];
    h_server_start(&s, args);
    int fd = h_connect(s.addr);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", i);
        p11n_msg *q = i % 2 ? ping(id) : sign(id, "backpressure");
        assert_int_equal(p11n_msg_append_frame(q, &all), P11N_OK);
        h_msg_free(q);
    }
    assert_int_equal(h_write_all(fd, all.data, all.len), 0);
    p11n_buf_cleanup(&all);
    for (int i = 0; i < N; i++) {
        p11n_msg *r = h_recv(fd, T_REPLY);
        assert_non_null(r);
        int k = atoi(r->id);
        assert_true(k >= 0 && k < N);
        assert_false(seen[k]);
        seen[k] = 1;
        h_msg_free(r);
    }
    assert_true(h_server_wait_log(&s, "paused", T_REPLY));
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

/* Clients that vanish mid-frame or with requests in flight do not hurt the server. */
static void test_disconnects(void **state)
{
    (void)state;
    struct h_server s;
    h_server_start(&s, NULL);
    for (int round = 0; round < 20; round++) {
        int fd = h_connect(s.addr);
        for (int i = 0; i < 20; i++) {
            p11n_msg *q = sign("gone", "in flight");
            h_send(fd, q);
            h_msg_free(q);
        }
        if (round % 2) assert_int_equal(h_write_all(fd, "\0\0\1\0abc", 7), 0); /* truncated */
        close(fd);
    }
    int fd = h_connect(s.addr);
    assert_ping_ok(fd);
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

/* SIGTERM with requests in flight: each gets exactly one reply (done, or
 * SHUTTING_DOWN if read after the signal), then the server closes and exits 0. */
static void test_sigterm_drains(void **state)
{
    (void)state;
    enum { N = 200 };
    struct h_server s;
    struct p11n_buf all = {0};
    static uint8_t seen[N];
    int done = 0, refused = 0;
    h_server_start(&s, NULL);
    int fd = h_connect(s.addr);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%d", i);
        p11n_msg *q = sign(id, "drain");
        assert_int_equal(p11n_msg_append_frame(q, &all), P11N_OK);
        h_msg_free(q);
    }
    assert_int_equal(h_write_all(fd, all.data, all.len), 0);
    p11n_buf_cleanup(&all);
    /* Wait for the first reply so that the server has certainly read requests. */
    p11n_msg *r = h_recv(fd, T_REPLY);
    assert_non_null(r);
    seen[atoi(r->id)] = 1;
    done++;
    h_msg_free(r);
    h_server_signal(&s, SIGTERM);
    while ((r = h_recv(fd, T_REPLY)) != NULL) {
        int k = atoi(r->id);
        assert_true(k >= 0 && k < N);
        assert_false(seen[k]);
        seen[k] = 1;
        if (r->err) {
            assert_int_equal(r->code, P11NET__ERROR_CODE__SHUTTING_DOWN);
            refused++;
        } else {
            done++;
        }
        h_msg_free(r);
    }
    assert_int_equal(done + refused, N);
    assert_int_equal(h_server_wait(&s), 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_echoes_id_and_seq),
        cmocka_unit_test(test_zero_length_frame_is_ping),
        cmocka_unit_test(test_garbage_body_bad_request),
        cmocka_unit_test(test_form_errors),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_idle_timeout_partial_frame),
        cmocka_unit_test(test_max_conns_busy),
        cmocka_unit_test(test_backpressure_pipelined),
        cmocka_unit_test(test_disconnects),
        cmocka_unit_test(test_sigterm_drains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
