/* Shared by the tests of the server's PKCS#11 side (test_hsm.c, test_op_*.c): real
 * SoftHSM tokens made by scripts/mktokens.sh in a fresh temporary directory, plus an
 * Ed25519 key pair EdKey (id 33) on Token3, and helpers that build a p11n_req by
 * hand and run a handler on it directly, the way dispatch.c would. */
#ifndef P11N_TEST_HSM_FIXTURE_H
#define P11N_TEST_HSM_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "b64.h"
#include "hsm.h"
#include "ops.h"
#include "req.h"
#include "server.h"

#define FX_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define FX_UNUSED __attribute__((unused))

struct fx {
    char dir[64];
    struct p11n_server server; /* hsm set; access NULL (the stub allows all) */
};

static struct fx fx_state;

/* Runs a shell command; fails the test when it fails. */
__attribute__((format(printf, 1, 2))) static FX_UNUSED void fx_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

/* Group setup: tokens in a new directory, then the hsm opened on them. */
static FX_UNUSED int fx_group_setup(void **state)
{
    const char *src = getenv("P11NET_SOURCE_DIR");
    char conf[128];

    (void)state;
    if (!src) return -1;
    snprintf(fx_state.dir, sizeof(fx_state.dir), "/tmp/p11n-test-XXXXXX");
    if (!mkdtemp(fx_state.dir)) return -1;
    snprintf(conf, sizeof(conf), "%s/softhsm2.conf", fx_state.dir);
    setenv("SOFTHSM2_CONF", conf, 1);
    fx_sh("%s/scripts/mktokens.sh %s >/dev/null", src, fx_state.dir);
    fx_sh("pkcs11-tool --module %s --token-label Token3 --login --pin 3456 --keypairgen --key-type EC:edwards25519 "
          "--label EdKey --id 33 >/dev/null 2>&1",
          FX_MODULE);
    /* pkcs11-tool cannot export an Ed25519 key as a file: take CKA_EC_POINT (an
     * OCTET STRING of 32 bytes) from its listing and wrap it in a SubjectPublicKeyInfo. */
    fx_sh("pkcs11-tool --module %s --token-label Token3 --list-objects --type pubkey 2>/dev/null"
          " | awk '/EC_EDWARDS/{e=1} e&&/EC_POINT:/{print $2; exit}' | sed 's/^0420/302a300506032b6570032100/'"
          " | xxd -r -p > %s/pub/EdKey.der && openssl pkey -pubin -inform DER -in %s/pub/EdKey.der -out %s/pub/EdKey.pem",
          FX_MODULE, fx_state.dir, fx_state.dir, fx_state.dir);
    return 0;
}

static FX_UNUSED int fx_group_teardown(void **state)
{
    (void)state;
    if (fx_state.dir[0]) fx_sh("rm -rf %s", fx_state.dir);
    return 0;
}

/* Per test: a fresh hsm (C_Initialize), so login state never leaks between tests. */
static FX_UNUSED int fx_open_with(unsigned max_sessions)
{
    char err[256] = "";
    struct p11n_hsm_opts opts = {max_sessions};
    memset(&fx_state.server, 0, sizeof(fx_state.server));
    if (p11n_hsm_open_opts(&fx_state.server.hsm, FX_MODULE, &opts, err, sizeof(err)) != P11N_OK) {
        fprintf(stderr, "p11n_hsm_open: %s\n", err);
        return -1;
    }
    return 0;
}
static FX_UNUSED int fx_setup(void **state) { (void)state; return fx_open_with(0); }
static FX_UNUSED int fx_teardown(void **state)
{
    (void)state;
    p11n_hsm_close(fx_state.server.hsm);
    fx_state.server.hsm = NULL;
    return 0;
}

/* A request as dispatch.c would hand it over. Inputs are copied. */
struct fx_req {
    struct p11n_req *req;
    p11n_msg msg;
    struct p11n_slice in[64];
    uint8_t *copies[64];
};

static FX_UNUSED struct fx_req *fx_req_new(const char *token, const char *pin, const char *key, int mech, int binary)
{
    struct fx_req *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->req = calloc(1, sizeof(*r->req));
    assert_non_null(r->req);
    p11net__proto_message__init(&r->msg);
    r->msg.token = (char *)(token ? token : "");
    r->msg.key = (char *)(key ? key : "");
    r->msg.mechanism = (P11net__Mechanism)mech;
    r->msg.binary = binary;
    r->req->msg = &r->msg;
    r->req->server = &fx_state.server;
    r->req->in = r->in;
    snprintf(r->req->client_id, sizeof(r->req->client_id), "test");
    if (pin) assert_int_equal(p11n_secret_set(&r->req->pin, pin, strlen(pin)), P11N_OK);
    return r;
}

static FX_UNUSED void fx_req_add(struct fx_req *r, const void *p, size_t len)
{
    size_t i = r->req->n_in++;
    assert_true(i < 64);
    r->copies[i] = malloc(len + 1);
    assert_non_null(r->copies[i]);
    if (len) memcpy(r->copies[i], p, len);
    r->in[i] = p11n_slice_of(r->copies[i], len);
}
static FX_UNUSED void fx_req_adds(struct fx_req *r, const char *s) { fx_req_add(r, s, strlen(s)); }

static FX_UNUSED void fx_req_free(struct fx_req *r)
{
    for (size_t i = 0; i < r->req->n_in; i++) free(r->copies[i]);
    p11n_strvec_cleanup(&r->req->out);
    p11n_secret_cleanup(&r->req->pin);
    free(r->req);
    free(r);
}

/* Runs handler on r and checks the rc; on a mismatch prints the message. */
static FX_UNUSED void fx_run(struct fx_req *r, p11n_rc (*handler)(struct p11n_req *), p11n_rc want)
{
    p11n_rc rc = handler(r->req);
    if (rc != want) fprintf(stderr, "rc=%s want=%s err=%s\n", p11n_rc_name(rc), p11n_rc_name(want), r->req->err);
    assert_int_equal(rc, want);
    assert_int_equal(r->req->rc, want == P11N_OK ? r->req->rc : want);
    if (want == P11N_OK) assert_true(r->req->out.len > 0);
    else assert_int_equal(r->req->out.len, 0);
}

/* Runs a one-input request and returns its rc (message in r->req->err). */
static FX_UNUSED p11n_rc fx_one(p11n_rc (*handler)(struct p11n_req *), const char *token, const char *pin,
                                const char *key, int mech, const char *input)
{
    struct fx_req *r = fx_req_new(token, pin, key, mech, 0);
    p11n_rc rc;
    fx_req_adds(r, input);
    rc = handler(r->req);
    fx_req_free(r);
    return rc;
}

static FX_UNUSED void fx_b64dec(const char *text, struct p11n_buf *out)
{
    out->len = 0;
    assert_int_equal(p11n_b64_decode(p11n_slice_of(text, strlen(text)), out), P11N_OK);
}

static FX_UNUSED EVP_PKEY *fx_pub(const char *label)
{
    char path[256];
    FILE *f;
    EVP_PKEY *k;
    snprintf(path, sizeof(path), "%s/pub/%s.pem", fx_state.dir, label);
    f = fopen(path, "r");
    assert_non_null(f);
    k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

static FX_UNUSED struct p11n_hsm_stats fx_stats(void)
{
    struct p11n_hsm_stats s;
    p11n_hsm_get_stats(fx_state.server.hsm, &s);
    return s;
}

#endif
