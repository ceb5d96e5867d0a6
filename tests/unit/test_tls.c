/* The memory-BIO TLS engine: two endpoints in one process, bytes shuttled between
 * them by hand, with certificates from scripts/mkcerts.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tls.h"

static char dir[200];

static int make_pki(void **state)
{
    char cmd[600];
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/p11net-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd), "%s/scripts/mkcerts.sh %s >/dev/null", getenv("P11NET_SOURCE_DIR"), dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static int remove_pki(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *path(const char *name)
{
    static char bufs[6][300]; /* a few paths alive at once */
    static int k;
    char *b = bufs[k++ % 6];
    snprintf(b, 300, "%s/%s", dir, name);
    return b;
}

/* Moves bytes both ways until neither side has anything to send; returns the
 * first failing rc of either side's read. */
static p11n_rc shuttle(struct p11n_tls_conn *c, struct p11n_tls_conn *s, struct p11n_buf *c_plain,
                       struct p11n_buf *s_plain)
{
    p11n_rc rc0 = p11n_tls_read(c, c_plain, 1 << 20); /* a client speaks first: its hello */
    if (rc0 != P11N_OK) return rc0;
    for (int round = 0; round < 20; round++) {
        struct p11n_buf c2s = {0}, s2c = {0};
        p11n_rc rc;
        int idle;
        assert_int_equal(p11n_tls_take_output(c, &c2s), P11N_OK);
        assert_int_equal(p11n_tls_feed(s, p11n_buf_slice(&c2s)), P11N_OK);
        rc = p11n_tls_read(s, s_plain, 1 << 20);
        if (rc == P11N_OK) {
            assert_int_equal(p11n_tls_take_output(s, &s2c), P11N_OK);
            assert_int_equal(p11n_tls_feed(c, p11n_buf_slice(&s2c)), P11N_OK);
            rc = p11n_tls_read(c, c_plain, 1 << 20);
        }
        idle = c2s.len == 0 && s2c.len == 0;
        p11n_buf_cleanup(&c2s);
        p11n_buf_cleanup(&s2c);
        if (rc != P11N_OK) return rc;
        if (idle) return P11N_OK;
    }
    return P11N_E_TIMEOUT;
}

struct pair {
    struct p11n_tls_ctx *sctx, *cctx;
    struct p11n_tls_conn *s, *c;
};

static p11n_rc connect_pair(struct pair *p, const char *client_cert, const char *servername, int require_client)
{
    char err[200];
    struct p11n_tls_files sf = {path("server.pem"), path("server.key"), require_client ? path("ca.pem") : NULL};
    struct p11n_tls_files cf = {NULL, NULL, path("ca.pem")};
    struct p11n_buf cp = {0}, sp = {0};
    char cert[32], key[32];
    p11n_rc rc;

    if (client_cert) {
        snprintf(cert, sizeof(cert), "%s.pem", client_cert);
        snprintf(key, sizeof(key), "%s.key", client_cert);
        cf.cert = path(cert);
        cf.key = path(key);
    }
    assert_int_equal(p11n_tls_ctx_new(&p->sctx, 1, &sf, err, sizeof(err)), P11N_OK);
    assert_int_equal(p11n_tls_ctx_new(&p->cctx, 0, &cf, err, sizeof(err)), P11N_OK);
    assert_int_equal(p11n_tls_conn_new(p->sctx, NULL, &p->s), P11N_OK);
    assert_int_equal(p11n_tls_conn_new(p->cctx, servername, &p->c), P11N_OK);
    rc = shuttle(p->c, p->s, &cp, &sp);
    p11n_buf_cleanup(&cp);
    p11n_buf_cleanup(&sp);
    return rc;
}

static void free_pair(struct pair *p)
{
    p11n_tls_conn_free(p->s);
    p11n_tls_conn_free(p->c);
    p11n_tls_ctx_free(p->sctx);
    p11n_tls_ctx_free(p->cctx);
}

static void test_mutual_tls_and_names(void **state)
{
    (void)state;
    struct pair p;
    struct p11n_strvec names = {0};
    struct p11n_buf cp = {0}, sp = {0};
    assert_int_equal(connect_pair(&p, "client1", "127.0.0.1", 1), P11N_OK);
    assert_true(p11n_tls_ready(p.c) && p11n_tls_ready(p.s));
    assert_int_equal(p11n_tls_peer_names(p.s, &names), P11N_OK);
    assert_int_equal(names.len, 2);
    assert_string_equal(names.items[0], "client1");
    assert_string_equal(names.items[1], "client1@p11net.test");
    /* Application data both ways. */
    assert_int_equal(p11n_tls_write(p.c, p11n_slice_of("ping", 4)), P11N_OK);
    assert_int_equal(shuttle(p.c, p.s, &cp, &sp), P11N_OK);
    assert_int_equal(sp.len, 4);
    assert_memory_equal(sp.data, "ping", 4);
    p11n_strvec_cleanup(&names);
    p11n_buf_cleanup(&cp);
    p11n_buf_cleanup(&sp);
    free_pair(&p);
}

static void test_refusals(void **state)
{
    (void)state;
    struct pair p;
    /* No client certificate where one is required. */
    assert_int_equal(connect_pair(&p, NULL, "localhost", 1), P11N_E_TLS);
    free_pair(&p);
    /* A client certificate from another CA. */
    assert_int_equal(connect_pair(&p, "rogue", "localhost", 1), P11N_E_TLS);
    free_pair(&p);
    /* An expired client certificate. */
    assert_int_equal(connect_pair(&p, "expired", "localhost", 1), P11N_E_TLS);
    free_pair(&p);
    /* The server's certificate does not carry the name the client expects. */
    assert_int_equal(connect_pair(&p, NULL, "hsm.example.org", 0), P11N_E_TLS);
    assert_non_null(strstr(p11n_tls_error(p.c), "verify"));
    free_pair(&p);
}

static void test_garbage_before_handshake(void **state)
{
    (void)state;
    char err[200];
    struct p11n_tls_files sf = {path("server.pem"), path("server.key"), NULL};
    struct p11n_tls_ctx *ctx;
    struct p11n_tls_conn *s;
    struct p11n_buf plain = {0};
    assert_int_equal(p11n_tls_ctx_new(&ctx, 1, &sf, err, sizeof(err)), P11N_OK);
    assert_int_equal(p11n_tls_conn_new(ctx, NULL, &s), P11N_OK);
    assert_int_equal(p11n_tls_feed(s, p11n_slice_of("\0\0\0\4GET / HTTP/1.0\r\n\r\n", 22)), P11N_OK);
    assert_int_equal(p11n_tls_read(s, &plain, 1024), P11N_E_TLS);
    assert_int_equal(plain.len, 0);
    p11n_tls_conn_free(s);
    p11n_tls_ctx_free(ctx);
}

static void test_bad_files(void **state)
{
    (void)state;
    char err[200] = "";
    struct p11n_tls_ctx *ctx;
    struct p11n_tls_files f = {path("missing.pem"), path("server.key"), NULL};
    assert_int_equal(p11n_tls_ctx_new(&ctx, 1, &f, err, sizeof(err)), P11N_E_TLS);
    assert_null(ctx);
    assert_non_null(strstr(err, "certificate"));
    struct p11n_tls_files g = {path("server.pem"), path("client1.key"), NULL}; /* key of another cert */
    assert_int_equal(p11n_tls_ctx_new(&ctx, 1, &g, err, sizeof(err)), P11N_E_TLS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual_tls_and_names), cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_garbage_before_handshake), cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, make_pki, remove_pki);
}
