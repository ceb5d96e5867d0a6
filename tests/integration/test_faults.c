/* HSM faults the real module cannot be made to produce on demand, injected by
 * tests/faultmod (which wraps the real SoftHSM): the server recovers where recovery
 * is possible, answers clearly where it is not, and keeps serving either way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <libgen.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define T_REPLY 30000

static char fault_file[512];

/* Replaces the control file atomically. The generation line makes every version
 * differ, so the module reloads it (and restarts its counts) even for equal rules. */
static void set_faults(const char *rules)
{
    static int generation;
    char tmp[600];
    FILE *f;
    snprintf(tmp, sizeof(tmp), "%s.new", fault_file);
    f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f, "# generation %d\n%s", ++generation, rules);
    fclose(f);
    assert_int_equal(rename(tmp, fault_file), 0);
}

/* Lines in the hits file: how many calls a rule changed. */
static int hits(void)
{
    char path[600], line[128];
    int n = 0;
    FILE *f;
    snprintf(path, sizeof(path), "%s.hits", fault_file);
    if (!(f = fopen(path, "r"))) return 0;
    while (fgets(line, sizeof(line), f)) n++;
    fclose(f);
    return n;
}

/* Blocks until the module has recorded at least n hits: an inotify event on the
 * hits file, not a timed guess. */
static void wait_for_hits(int n)
{
    char dir[600];
    int fd = inotify_init1(IN_CLOEXEC);
    assert_true(fd >= 0);
    snprintf(dir, sizeof(dir), "%s", fault_file);
    assert_true(inotify_add_watch(fd, dirname(dir), IN_CLOSE_WRITE | IN_MODIFY) >= 0);
    while (hits() < n) {
        char ev[4096];
        struct pollfd pf = {fd, POLLIN, 0};
        assert_int_equal(poll(&pf, 1, T_REPLY), 1);
        assert_true(read(fd, ev, sizeof(ev)) > 0);
    }
    close(fd);
}

static int setup(void **state)
{
    char path[600];
    (void)state;
    snprintf(fault_file, sizeof(fault_file), "%s/faults", h_tokens_dir());
    setenv("P11NET_FAULT_FILE", fault_file, 1);
    snprintf(path, sizeof(path), "%s.hits", fault_file);
    unlink(path);
    set_faults("");
    return 0;
}

static void start_with(struct h_server *s, const char *io_threads);

static void start(struct h_server *s)
{
    start_with(s, "2");
}

static p11n_msg *sign_req(const char *id, const char *token, const char *pin)
{
    const char *data[1] = {"fault injection"};
    return h_req(P11NET__PROTO_MESSAGE_TYPE__SIGN, id, token, pin, 1, data);
}

/* Sends a sign and expects success. */
static void sign_ok(int fd, const char *token, const char *pin)
{
    p11n_msg *q = sign_req("ok", token, pin), *r = h_call(fd, q);
    if (r->err) fprintf(stderr, "unexpected error: %s\n", r->n_data ? r->data[0] : "");
    assert_false(r->err);
    assert_int_equal(r->n_data, 1);
    h_msg_free(q);
    h_msg_free(r);
}

static void test_session_invalidated_reopened(void **state)
{
    (void)state;
    struct h_server s;
    start(&s);
    int fd = h_connect(s.addr);
    sign_ok(fd, "MyToken", "1234"); /* warm: session pool and key cache filled */
    set_faults("C_SignInit close_session 1\n");
    sign_ok(fd, "MyToken", "1234");
    assert_int_equal(hits(), 1);
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

static void test_key_handle_invalid_found_again(void **state)
{
    (void)state;
    struct h_server s;
    start(&s);
    int fd = h_connect(s.addr);
    sign_ok(fd, "MyToken", "1234");
    set_faults("C_SignInit fail CKR_KEY_HANDLE_INVALID 1\n");
    sign_ok(fd, "MyToken", "1234");
    set_faults("C_SignInit fail CKR_OBJECT_HANDLE_INVALID 1\n");
    sign_ok(fd, "MyToken", "1234");
    assert_int_equal(hits(), 2);
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

static void test_device_error_reported_then_served(void **state)
{
    (void)state;
    struct h_server s;
    start(&s);
    int fd = h_connect(s.addr);
    sign_ok(fd, "MyToken", "1234");
    set_faults("C_Sign fail CKR_DEVICE_ERROR 1\n");
    p11n_msg *q = sign_req("dev", "MyToken", "1234"), *r = h_call(fd, q);
    assert_true(r->err);
    assert_int_equal(r->code, P11NET__ERROR_CODE__HSM_ERROR);
    assert_int_equal(strncmp(r->data[0], "CKR_DEVICE_ERROR", 16), 0);
    h_msg_free(q);
    h_msg_free(r);
    sign_ok(fd, "MyToken", "1234");
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

static void test_logged_out_behind_our_back(void **state)
{
    (void)state;
    struct h_server s;
    start(&s);
    int fd = h_connect(s.addr);
    sign_ok(fd, "MyToken", "1234");
    set_faults("C_SignInit logout 1\n");
    sign_ok(fd, "MyToken", "1234");
    assert_int_equal(hits(), 1);
    /* A wrong PIN is still refused after the silent re-login. */
    p11n_msg *q = sign_req("wrong", "MyToken", "9999"), *r = h_call(fd, q);
    assert_true(r->err);
    assert_int_equal(r->code, P11NET__ERROR_CODE__PIN_INCORRECT);
    h_msg_free(q);
    h_msg_free(r);
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

/* Receives the next reply on fd and expects it to answer request `id` successfully. */
static void recv_ok(int fd, const char *id)
{
    p11n_msg *r = h_recv(fd, T_REPLY);
    assert_non_null(r);
    assert_false(r->err);
    assert_string_equal(r->id, id);
    h_msg_free(r);
}

static void start_with(struct h_server *s, const char *io_threads)
{
    const char *args[] = {"--module", getenv("P11NET_FAULTMOD"), "--workers", "2", "--io-threads", io_threads, NULL};
    assert_non_null(args[1]);
    h_server_start(s, args);
}

/* A C_Sign that hangs for 5 s on one token: pings and another token are served
 * meanwhile, on an old connection and on one made during the hang, and the slow
 * request is answered in the end. With 2 reactors the slow connection is alone on
 * its reactor, which runs the call inline (reactor.h), so this also checks that
 * newcomers are not handed to a reactor stuck in a call; with 1, the call goes to
 * the pool because the reactor has two connections. */
static void hung_call(const char *io_threads)
{
    struct h_server s;
    start_with(&s, io_threads);
    int slow = h_connect(s.addr), other = h_connect(s.addr);
    sign_ok(other, "Token2", "5678");
    set_faults("C_Sign@MyToken delay 5000 1\n");
    p11n_msg *q = sign_req("slow", "MyToken", "1234");
    h_send(slow, q);
    h_msg_free(q);
    wait_for_hits(1); /* the module has entered the slow call */
    p11n_msg *p = h_req(P11NET__PROTO_MESSAGE_TYPE__ACK, "ping", NULL, NULL, 0, NULL), *r = h_call(other, p);
    assert_false(r->err);
    h_msg_free(r);
    sign_ok(other, "Token2", "5678");
    int late = h_connect(s.addr);
    r = h_call(late, p);
    assert_false(r->err);
    h_msg_free(r);
    h_msg_free(p);
    sign_ok(late, "Token2", "5678");
    /* The slow request is still running: nothing has come back on its conn yet. */
    struct pollfd pf = {slow, POLLIN, 0};
    assert_int_equal(poll(&pf, 1, 0), 0);
    recv_ok(slow, "slow");
    close(slow);
    close(other);
    close(late);
    assert_int_equal(h_server_stop(&s), 0);
}

static void test_hung_call_one_reactor(void **state)
{
    (void)state;
    hung_call("1");
}

static void test_hung_call_inline_on_own_reactor(void **state)
{
    (void)state;
    hung_call("2");
}

/* Sends a sign that hangs for 3 s, waits until the module has entered it (its
 * hit count reaches `hit`), then a ping on the same connection: the ping must be
 * answered first, which it cannot be if the sign runs inline on the reactor. */
static void ping_overtakes_hung_sign(int fd, int hit)
{
    p11n_msg *q;

    set_faults("C_Sign@MyToken delay 3000 1\n");
    q = sign_req("slow", "MyToken", "1234");
    h_send(fd, q);
    h_msg_free(q);
    wait_for_hits(hit);
    q = h_req(P11NET__PROTO_MESSAGE_TYPE__ACK, "ping", NULL, NULL, 0, NULL);
    h_send(fd, q);
    h_msg_free(q);
    recv_ok(fd, "ping");
    recv_ok(fd, "slow");
}

/* When HSM calls are slow (8 of 20 ms bring the average over the reactors' 5 ms
 * limit for running calls inline), a lone connection's requests go to the pool, so
 * a ping sent behind a hung sign on the same connection is answered before it.
 * Run inline, the ping would not even be read until the sign returned. */
static void test_slow_calls_go_to_the_pool(void **state)
{
    (void)state;
    struct h_server s;
    start_with(&s, "2");
    int fd = h_connect(s.addr);
    set_faults("C_Sign@MyToken delay 20 8\n");
    for (int i = 0; i < 8; i++) sign_ok(fd, "MyToken", "1234");
    assert_int_equal(hits(), 8);
    ping_overtakes_hung_sign(fd, 9);
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

/* A lone connection whose client has pipelined is not run inline again: after two
 * signs written at once, a ping sent behind a hung sign on the same connection is
 * answered first. The calls before were quick, so without that mark the hung sign
 * would run inline and the ping would not even be read until it returned. */
static void test_pipelining_conn_goes_to_the_pool(void **state)
{
    (void)state;
    struct h_server s;
    struct p11n_buf two = {0};
    p11n_msg *q;
    start_with(&s, "2");
    int fd = h_connect(s.addr);
    sign_ok(fd, "MyToken", "1234");
    for (int i = 0; i < 2; i++) {
        q = sign_req("pair", "MyToken", "1234");
        assert_int_equal(p11n_msg_append_frame(q, &two), P11N_OK);
        h_msg_free(q);
    }
    assert_int_equal(h_write_all(fd, two.data, two.len), 0);
    p11n_buf_cleanup(&two);
    recv_ok(fd, "pair");
    recv_ok(fd, "pair");
    ping_overtakes_hung_sign(fd, 1);
    close(fd);
    assert_int_equal(h_server_stop(&s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_session_invalidated_reopened, setup),
        cmocka_unit_test_setup(test_key_handle_invalid_found_again, setup),
        cmocka_unit_test_setup(test_device_error_reported_then_served, setup),
        cmocka_unit_test_setup(test_logged_out_behind_our_back, setup),
        cmocka_unit_test_setup(test_hung_call_one_reactor, setup),
        cmocka_unit_test_setup(test_hung_call_inline_on_own_reactor, setup),
        cmocka_unit_test_setup(test_slow_calls_go_to_the_pool, setup),
        cmocka_unit_test_setup(test_pipelining_conn_goes_to_the_pool, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
