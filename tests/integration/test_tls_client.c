/* libp11net over TLS against a real p11netd with mutual TLS: one p11net_client
 * shared by several threads (concurrent writers encrypting and one reader role
 * decrypting on the same SSL object), replies matched to their requests; a big
 * batch reply spanning many TLS records; and the handshake failures reported by
 * p11net_connect (wrong server name) or by the first call (certificate refused). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"
#include "p11net/client.h"

static char pki[256];

static void make_pki(void)
{
    char cmd[600];
    snprintf(pki, sizeof(pki), "%s/pki", h_tokens_dir());
    snprintf(cmd, sizeof(cmd), "%s/scripts/mkcerts.sh %s >/dev/null", getenv("P11NET_SOURCE_DIR"), pki);
    if (system(cmd) != 0) fail_msg("mkcerts.sh failed");
}

static char path_buf[8][320];
static const char *pki_file(int k, const char *name)
{
    snprintf(path_buf[k], sizeof(path_buf[k]), "%s/%s", pki, name);
    return path_buf[k];
}

static void start_tls(struct h_server *s)
{
    const char *args[] = {"--tls-cert", pki_file(0, "server.pem"), "--tls-key", pki_file(1, "server.key"),
                          "--tls-ca",   pki_file(2, "ca.pem"),     NULL};
    h_server_start(s, args);
}

static int connect_as(const char *addr, const char *who, const char *servername, p11net_client **c, p11net_error *err)
{
    p11net_options o;
    char cert[64], key[64];
    p11net_options_init(&o);
    o.timeout_ms = 120000; /* catches a hang; valgrind makes the 256-signature batch slow */
    snprintf(cert, sizeof(cert), "%s.pem", who);
    snprintf(key, sizeof(key), "%s.key", who);
    o.tls_ca = pki_file(3, "ca.pem");
    o.tls_cert = pki_file(4, cert);
    o.tls_key = pki_file(5, key);
    o.tls_servername = servername;
    return p11net_connect(addr, &o, c, err);
}

struct worker {
    p11net_client *c;
    int id, ok;
};

#define THREADS 4
#define PER_THREAD 150

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    p11net_target t = {.token = "MyToken", .pin = "1234"};
    char text[64];
    for (int i = 0; i < PER_THREAD; i++) {
        p11net_reply *r = NULL;
        p11net_error err;
        p11net_data d;
        snprintf(text, sizeof(text), "thread %d message %d", w->id, i);
        d.p = text;
        d.len = strlen(text);
        if (i % 3 == 0) {
            if (p11net_ping(w->c, &err) == P11NET_OK) w->ok++;
            continue;
        }
        if (p11net_encrypt(w->c, &t, &d, 1, &r, &err) != P11NET_OK) continue;
        {
            p11net_reply *back = NULL;
            const char *ct = p11net_reply_item(r, 0);
            p11net_data cd = {ct, strlen(ct)};
            if (p11net_decrypt(w->c, &t, &cd, 1, &back, &err) == P11NET_OK) {
                const char *pt = p11net_reply_item(back, 0);
                if (pt && strcmp(pt, text) == 0) w->ok++;
            }
            p11net_reply_free(back);
        }
        p11net_reply_free(r);
    }
    return NULL;
}

static void test_shared_client_over_tls(void **state)
{
    (void)state;
    struct h_server s;
    p11net_client *c = NULL;
    p11net_error err;
    struct worker w[THREADS];
    pthread_t th[THREADS];

    start_tls(&s);
    assert_int_equal(connect_as(s.addr, "client1", NULL, &c, &err), P11NET_OK);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.c = c, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++) assert_int_equal(w[i].ok, PER_THREAD);

    /* 256 RSA signatures in one reply: ~90 KB, several TLS records. */
    {
        p11net_target t = {.token = "MyToken", .pin = "1234"};
        p11net_data msgs[256];
        p11net_reply *r = NULL;
        for (int i = 0; i < 256; i++) msgs[i] = (p11net_data){"batch", 5};
        assert_int_equal(p11net_sign(c, &t, msgs, 256, &r, &err), P11NET_OK);
        assert_int_equal(p11net_reply_count(r), 256);
        p11net_reply_free(r);
    }
    p11net_close(c);
    assert_int_equal(h_server_stop(&s), 0);
}

static void test_handshake_failures(void **state)
{
    (void)state;
    struct h_server s;
    p11net_client *c = NULL;
    p11net_error err;

    start_tls(&s);
    /* The client refuses a server certificate without the expected name. */
    assert_int_equal(connect_as(s.addr, "client1", "not-the-server.p11net.test", &c, &err), P11NET_ERR_TLS);
    assert_null(c);
    assert_non_null(strstr(err.message, "hostname mismatch"));
    /* The server refuses a client certificate from another CA: TLS 1.3 reports it
     * after the client's side of the handshake, so the first call fails. */
    assert_int_equal(connect_as(s.addr, "rogue", NULL, &c, &err), P11NET_OK);
    assert_int_equal(p11net_ping(c, &err), P11NET_ERR_TLS);
    assert_non_null(strstr(err.message, "unknown ca"));
    p11net_close(c);
    /* Still serving. */
    assert_int_equal(connect_as(s.addr, "client2", "localhost", &c, &err), P11NET_OK);
    assert_int_equal(p11net_ping(c, &err), P11NET_OK);
    p11net_close(c);
    assert_int_equal(h_server_stop(&s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_shared_client_over_tls),
                                       cmocka_unit_test(test_handshake_failures)};
    make_pki();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
