/* libp11net against an in-process fake server (a thread speaking the framing of
 * PROTOCOL.md section 2): replies matched by id when they come out of order,
 * several threads pipelining on one handle, server errors told from transport
 * errors, timeouts, and the TLS seam. The real server is covered by the
 * integration tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "p11net/client.h"
#include "test_client_fake.h"

static p11net_client *connect_to(struct fake *f, int timeout_ms)
{
    p11net_options o;
    p11net_client *c = NULL;
    p11net_error err;
    p11net_options_init(&o);
    o.timeout_ms = timeout_ms;
    assert_int_equal(p11net_connect(f->addr, &o, &c, &err), P11NET_OK);
    return c;
}

static void test_calls_and_errors(void **state)
{
    struct fake f;
    p11net_client *c;
    p11net_reply *r = NULL;
    p11net_error err;
    p11net_target t = {.token = "MyToken", .pin = "1234"};
    p11net_data in[2] = {{"hello", 5}, {"fail", 4}};
    (void)state;

    fake_start(&f, FAKE_ECHO, 1);
    c = connect_to(&f, 5000);
    assert_int_equal(p11net_ping(c, &err), P11NET_OK);
    assert_int_equal(p11net_sign(c, &t, in, 1, &r, &err), P11NET_OK);
    assert_int_equal(p11net_reply_count(r), 1);
    assert_string_equal(p11net_reply_item(r, 0), "3:hello");
    assert_null(p11net_reply_item(r, 1));
    p11net_reply_free(r);
    /* binary: the library base64-encodes raw inputs */
    t.binary = 1;
    assert_int_equal(p11net_encrypt(c, &t, in, 1, &r, &err), P11NET_OK);
    assert_string_equal(p11net_reply_item(r, 0), "2:aGVsbG8=");
    p11net_reply_free(r);
    t.binary = 0;
    assert_int_equal(p11net_verify(c, &t, in[0], "c2ln", &err), P11NET_OK);
    /* A server error carries the server's code and message. */
    assert_int_equal(p11net_sign(c, &t, &in[1], 1, &r, &err), P11NET_ERR_SERVER);
    assert_null(r);
    assert_int_equal(err.status, P11NET_ERR_SERVER);
    assert_int_equal(err.code, P11NET_CODE_PIN_INCORRECT);
    assert_non_null(strstr(err.message, "bad pin"));
    /* Text inputs cannot hold NUL: refused locally, the connection stays usable. */
    {
        p11net_data nul = {"a\0b", 3};
        assert_int_equal(p11net_sign(c, &t, &nul, 1, &r, &err), P11NET_ERR_USAGE);
        assert_int_equal(p11net_ping(c, &err), P11NET_OK);
    }
    p11net_close(c);
    fake_stop(&f);
}

static void test_transport_errors(void **state)
{
    struct fake f;
    p11net_client *c;
    p11net_reply *r = NULL;
    p11net_error err;
    p11net_options o;
    struct timespec t0, t1;
    uint64_t id;
    p11net_request req = {.op = P11NET_OP_PING};
    (void)state;

    /* A server that never answers: a timeout, promptly. */
    fake_start(&f, FAKE_SILENT, 1);
    c = connect_to(&f, 5000);
    assert_int_equal(p11net_submit(c, &req, &id, &err), P11NET_OK);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(p11net_wait(c, id, 100, &r, &err), P11NET_ERR_TIMEOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 2000);
    assert_int_equal(err.status, P11NET_ERR_TIMEOUT);
    assert_int_equal(p11net_outstanding(c), 0); /* forgotten */
    assert_int_equal(p11net_wait(c, id, 100, &r, &err), P11NET_ERR_USAGE);
    p11net_close(c); /* the fake sees EOF and ends */
    fake_stop(&f);

    /* A server that hangs up: CLOSED, not a server error. */
    fake_start(&f, FAKE_CLOSE_AFTER_ONE, 1);
    c = connect_to(&f, 5000);
    assert_int_equal(p11net_ping(c, &err), P11NET_ERR_CLOSED);
    assert_int_equal(err.code, P11NET_CODE_NONE);
    assert_int_equal(p11net_ping(c, &err), P11NET_ERR_CLOSED);
    p11net_close(c);
    fake_stop(&f);

    /* Configuration errors. */
    p11net_options_init(&o);
    o.tls_ca = "/nonexistent/ca.pem";
    assert_int_equal(p11net_connect("127.0.0.1:1", &o, &c, &err), P11NET_ERR_TLS);
    assert_non_null(strstr(err.message, "cannot load CA")); /* before any connect */
    o.tls_ca = NULL;
    o.tls_cert = "/nonexistent/cert.pem"; /* without --tls-key */
    assert_int_equal(p11net_connect("127.0.0.1:1", &o, &c, &err), P11NET_ERR_USAGE);
    o.tls_cert = NULL;
    o.tls_servername = "localhost";
    assert_int_equal(p11net_connect("unix:/nonexistent/sock", &o, &c, &err), P11NET_ERR_USAGE);
    assert_non_null(strstr(err.message, "unix"));
    assert_int_equal(p11net_connect("no-port", NULL, &c, &err), P11NET_ERR_USAGE);
    assert_int_equal(p11net_connect("127.0.0.1:notaport", NULL, &c, &err), P11NET_ERR_USAGE);
    assert_int_equal(p11net_connect("unix:", NULL, &c, &err), P11NET_ERR_USAGE);
    assert_int_equal(p11net_connect("unix:/nonexistent/sock", NULL, &c, &err), P11NET_ERR_IO);
    assert_null(c);
}

#define THREADS 4
#define PER_THREAD 300
#define WINDOW 8

struct worker {
    p11net_client *c;
    int idx, bad;
};

/* Keeps WINDOW requests in flight, collecting each by its id. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t ids[WINDOW];
    char texts[WINDOW][32];
    int sent = 0, got = 0;

    while (got < PER_THREAD) {
        while (sent < PER_THREAD && sent - got < WINDOW) {
            int k = sent % WINDOW;
            p11net_data d;
            p11net_request req = {.op = P11NET_OP_SIGN, .inputs = &d, .n_inputs = 1};
            snprintf(texts[k], sizeof(texts[k]), "t%d-%d", w->idx, sent);
            d.p = texts[k], d.len = strlen(texts[k]);
            if (p11net_submit(w->c, &req, &ids[k], NULL) != P11NET_OK) return (void *)(w->bad = 1, NULL);
            sent++;
        }
        {
            int k = got % WINDOW;
            p11net_reply *r = NULL;
            char want[40];
            if (p11net_wait(w->c, ids[k], 10000, &r, NULL) != P11NET_OK) return (void *)(w->bad = 2, NULL);
            snprintf(want, sizeof(want), "3:%s", texts[k]);
            if (strcmp(p11net_reply_item(r, 0), want) != 0) w->bad = 3;
            p11net_reply_free(r);
            got++;
        }
    }
    return NULL;
}

static void test_pipelined_threads(void **state)
{
    struct fake f;
    pthread_t thr[THREADS];
    struct worker w[THREADS];
    p11net_client *c;
    (void)state;

    fake_start(&f, FAKE_ECHO, 1);
    c = connect_to(&f, 10000);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){c, i, 0};
        assert_int_equal(pthread_create(&thr[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(thr[i], NULL);
        assert_int_equal(w[i].bad, 0);
    }
    assert_int_equal(p11net_outstanding(c), 0);
    p11net_close(c);
    fake_stop(&f);
}

static void test_wait_any(void **state)
{
    struct fake f;
    p11net_client *c;
    p11net_error err;
    uint64_t ids[3], id;
    int seen = 0;
    (void)state;

    fake_start(&f, FAKE_ECHO, 1);
    c = connect_to(&f, 5000);
    for (int i = 0; i < 3; i++) {
        p11net_request req = {.op = P11NET_OP_PING};
        assert_int_equal(p11net_submit(c, &req, &ids[i], &err), P11NET_OK);
    }
    for (int i = 0; i < 3; i++) {
        p11net_reply *r = NULL;
        assert_int_equal(p11net_wait_any(c, 5000, &id, &r, &err), P11NET_OK);
        for (int k = 0; k < 3; k++)
            if (ids[k] == id) seen |= 1 << k;
        p11net_reply_free(r);
    }
    assert_int_equal(seen, 7);
    {
        p11net_reply *r = NULL;
        assert_int_equal(p11net_wait_any(c, 100, &id, &r, &err), P11NET_ERR_USAGE);
    }
    p11net_close(c);
    fake_stop(&f);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(p11net_code_name(P11NET_CODE_SHUTTING_DOWN), "SHUTTING_DOWN");
    assert_string_equal(p11net_code_name((p11net_code)99), "UNKNOWN");
    assert_int_equal(p11net_mech_parse("rsa-pkcs-oaep-sha256"), P11NET_MECH_RSA_PKCS_OAEP_SHA256);
    assert_int_equal(p11net_mech_parse("eddsa"), P11NET_MECH_EDDSA);
    assert_int_equal(p11net_mech_parse("RSA_PKCS"), -1);
    assert_string_equal(p11net_mech_name(P11NET_MECH_SHA256_RSA_PKCS_PSS), "sha256-rsa-pkcs-pss");
    assert_string_equal(p11net_status_name(P11NET_ERR_TIMEOUT), "TIMEOUT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls_and_errors), cmocka_unit_test(test_transport_errors),
        cmocka_unit_test(test_pipelined_threads), cmocka_unit_test(test_wait_any),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
