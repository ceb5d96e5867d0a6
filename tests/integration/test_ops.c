/* Every row of PROTOCOL.md section 4 through the real p11netd and SoftHSM, with
 * results checked independently: signatures verified and ciphertexts made by
 * OpenSSL against the public keys mktokens.sh exported. Also pipelining (1,000
 * requests on one connection, answered out of order) and 100 concurrent
 * connections with nothing lost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "b64.h"
#include "harness.h"

#define T_REPLY 30000

static struct h_server server;
static int fd;

static int start(void **state)
{
    (void)state;
    h_server_start(&server, NULL);
    fd = h_connect(server.addr);
    return 0;
}

static int stop(void **state)
{
    (void)state;
    close(fd);
    return h_server_stop(&server) == 0 ? 0 : -1;
}

static EVP_PKEY *pubkey(const char *label)
{
    char path[512];
    FILE *f;
    EVP_PKEY *k;
    snprintf(path, sizeof(path), "%s/pub/%s.pem", h_tokens_dir(), label);
    f = fopen(path, "r");
    assert_non_null(f);
    k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

static struct p11n_buf unb64(const char *s)
{
    struct p11n_buf b = {0};
    assert_int_equal(p11n_b64_decode(p11n_slice_of(s, strlen(s)), &b), P11N_OK);
    return b;
}

static p11n_msg *req(P11net__ProtoMessageType flag, const char *token, const char *pin, const char *key, int mech,
                     size_t n, const char *const *data)
{
    p11n_msg *m = h_req(flag, "r", token, pin, n, data);
    free(m->key);
    m->key = strdup(key ? key : "");
    m->mechanism = mech;
    return m;
}

/* One round trip; returns the reply (caller frees) and checks the error code. */
static p11n_msg *call_expect(p11n_msg *q, P11net__ErrorCode code)
{
    p11n_msg *r = h_call(fd, q);
    h_msg_free(q);
    if ((P11net__ErrorCode)r->code != code || r->err != (code != P11NET__ERROR_CODE__NONE))
        fail_msg("code %d (%s), wanted %d", r->code, r->n_data ? r->data[0] : "", code);
    assert_int_equal(r->flag, P11NET__PROTO_MESSAGE_TYPE__ACK);
    assert_string_equal(r->pin, "");
    return r;
}

/* OpenSSL verification of the mechanisms PROTOCOL.md defines. */
static int verify_with(EVP_PKEY *k, int mech, const char *msg, struct p11n_buf *sig)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    int ok = 0;

    if (mech == P11NET__MECHANISM__RSA_PKCS || mech == 0) {
        /* CKM_RSA_PKCS signs the bytes as given: recover and compare. */
        unsigned char out[512];
        size_t outlen = sizeof(out);
        pc = EVP_PKEY_CTX_new(k, NULL);
        ok = EVP_PKEY_verify_recover_init(pc) == 1 && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_verify_recover(pc, out, &outlen, sig->data, sig->len) == 1 && outlen == strlen(msg) &&
             memcmp(out, msg, outlen) == 0;
        EVP_PKEY_CTX_free(pc);
    } else if (mech == P11NET__MECHANISM__ECDSA_SHA256) {
        /* r||s to DER. */
        ECDSA_SIG *es = ECDSA_SIG_new();
        unsigned char *der = NULL;
        int derlen;
        assert_int_equal(sig->len, 64);
        ECDSA_SIG_set0(es, BN_bin2bn(sig->data, 32, NULL), BN_bin2bn(sig->data + 32, 32, NULL));
        derlen = i2d_ECDSA_SIG(es, &der);
        ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
             EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)msg, strlen(msg)) == 1;
        OPENSSL_free(der);
        ECDSA_SIG_free(es);
    } else {
        ok = EVP_DigestVerifyInit(md, &pc, EVP_sha256(), NULL, k) == 1;
        if (ok && mech == P11NET__MECHANISM__SHA256_RSA_PKCS_PSS)
            ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) == 1;
        ok = ok && EVP_DigestVerify(md, sig->data, sig->len, (const unsigned char *)msg, strlen(msg)) == 1;
    }
    EVP_MD_CTX_free(md);
    return ok;
}

static void test_list_tokens(void **state)
{
    (void)state;
    p11n_msg *r = call_expect(req(P11NET__PROTO_MESSAGE_TYPE__LIST, NULL, NULL, NULL, 0, 0, NULL),
                              P11NET__ERROR_CODE__NONE);
    unsigned long long prev = 0;
    int seen = 0;
    assert_int_equal(r->n_data, 3);
    for (size_t i = 0; i < r->n_data; i++) {
        unsigned long long id;
        char label[64];
        assert_int_equal(sscanf(r->data[i], "SlotID:%llu, Token: %63s", &id, label), 2);
        assert_true(i == 0 || id > prev); /* ascending slot ids */
        prev = id;
        seen |= strcmp(label, "MyToken") == 0 ? 1 : strcmp(label, "Token2") == 0 ? 2 : strcmp(label, "Token3") == 0 ? 4 : 0;
    }
    assert_int_equal(seen, 7);
    h_msg_free(r);
}

static void test_list_keys(void **state)
{
    (void)state;
    p11n_msg *r = call_expect(req(P11NET__PROTO_MESSAGE_TYPE__LIST, "MyToken", "1234", NULL, 0, 0, NULL),
                              P11NET__ERROR_CODE__NONE);
    assert_int_equal(r->n_data, 4);
    assert_string_equal(r->data[0], "Key: TestKey, ID: 01, Class: private, Type: RSA-2048");
    assert_string_equal(r->data[1], "Key: TestKey, ID: 01, Class: public, Type: RSA-2048");
    assert_string_equal(r->data[2], "Key: EcKey, ID: 11, Class: private, Type: EC-P256");
    assert_string_equal(r->data[3], "Key: EcKey, ID: 11, Class: public, Type: EC-P256");
    h_msg_free(r);
}

/* SIGN with every mechanism the tokens support, a batch of two, each verified by
 * OpenSSL; then VERIFY through the server: valid, tampered, wrong length. */
static void test_sign_and_verify(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        int mech;
        const char *pem;
    } cases[] = {
        {NULL, 0, "TestKey"},
        {"TestKey", P11NET__MECHANISM__RSA_PKCS, "TestKey"},
        {"TestKey", P11NET__MECHANISM__SHA256_RSA_PKCS, "TestKey"},
        {"TestKey", P11NET__MECHANISM__SHA256_RSA_PKCS_PSS, "TestKey"},
        {"EcKey", P11NET__MECHANISM__ECDSA_SHA256, "EcKey"},
        {"pkcs11:object=EcKey", 0, "EcKey"}, /* default mechanism for an EC key: ECDSA_SHA256 */
    };
    const char *msgs[2] = {"first message", "second, with a comma"};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        EVP_PKEY *k = pubkey(cases[c].pem);
        int vmech = cases[c].mech ? cases[c].mech
                                  : strcmp(cases[c].pem, "EcKey") == 0 ? P11NET__MECHANISM__ECDSA_SHA256 : 0;
        p11n_msg *r = call_expect(req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "MyToken", "1234", cases[c].key,
                                      cases[c].mech, 2, msgs),
                                  P11NET__ERROR_CODE__NONE);
        assert_int_equal(r->n_data, 2);
        for (int i = 0; i < 2; i++) {
            struct p11n_buf sig = unb64(r->data[i]);
            if (!verify_with(k, vmech, msgs[i], &sig)) fail_msg("case %zu item %d does not verify", c, i);
            p11n_buf_cleanup(&sig);
        }
        /* VERIFY through the server, with the same key and mechanism. */
        const char *pair[2] = {msgs[0], r->data[0]};
        p11n_msg *v = call_expect(req(P11NET__PROTO_MESSAGE_TYPE__VERIFY, "MyToken", "1234", cases[c].key,
                                      cases[c].mech, 2, pair),
                                  P11NET__ERROR_CODE__NONE);
        assert_string_equal(v->data[0], "valid");
        h_msg_free(v);
        const char *tampered[2] = {msgs[1], r->data[0]};
        h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__VERIFY, "MyToken", "1234", cases[c].key,
                                   cases[c].mech, 2, tampered),
                               P11NET__ERROR_CODE__SIGNATURE_INVALID));
        const char *short_sig[2] = {msgs[0], "AAAA"};
        h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__VERIFY, "MyToken", "1234", cases[c].key,
                                   cases[c].mech, 2, short_sig),
                               P11NET__ERROR_CODE__SIGNATURE_INVALID));
        h_msg_free(r);
        EVP_PKEY_free(k);
    }
}

/* ENCRYPT by the server, DECRYPT by the server; and a ciphertext made by OpenSSL
 * with the exported public key, decrypted by the server. Text and binary. */
static void test_encrypt_decrypt(void **state)
{
    (void)state;
    const char *plain[1] = {"attack at dawn"};
    p11n_msg *e = call_expect(req(P11NET__PROTO_MESSAGE_TYPE__ENCRYPT, "Token2", "5678", NULL, 0, 1, plain),
                              P11NET__ERROR_CODE__NONE);
    const char *ct[1] = {e->data[0]};
    p11n_msg *d = call_expect(req(P11NET__PROTO_MESSAGE_TYPE__DECRYPT, "Token2", "5678", NULL, 0, 1, ct),
                              P11NET__ERROR_CODE__NONE);
    assert_string_equal(d->data[0], plain[0]);
    h_msg_free(d);
    h_msg_free(e);

    /* OpenSSL encrypts (PKCS#1 v1.5) with Key2's public key; the server decrypts. */
    EVP_PKEY *k = pubkey("Key2");
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k, NULL);
    unsigned char out[512];
    size_t outlen = sizeof(out);
    const unsigned char bin[5] = {0x00, 0xff, 0x10, 0x00, 0x7f};
    assert_int_equal(EVP_PKEY_encrypt_init(pc), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING), 1);
    assert_int_equal(EVP_PKEY_encrypt(pc, out, &outlen, bin, sizeof(bin)), 1);
    struct p11n_buf b64 = {0};
    assert_int_equal(p11n_b64_encode(p11n_slice_of(out, outlen), &b64), P11N_OK);
    const char *ct2[1] = {(char *)b64.data};
    /* Not UTF-8 as text: DATA_INVALID; as binary: base64 of the bytes. */
    h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__DECRYPT, "Token2", "5678", NULL, 0, 1, ct2),
                           P11NET__ERROR_CODE__DATA_INVALID));
    /* With binary the ciphertext input is base64 as before; the output becomes base64. */
    p11n_msg *q = req(P11NET__PROTO_MESSAGE_TYPE__DECRYPT, "Token2", "5678", NULL, 0, 1, ct2);
    q->binary = 1;
    d = call_expect(q, P11NET__ERROR_CODE__NONE);
    struct p11n_buf got = unb64(d->data[0]);
    assert_int_equal(got.len, sizeof(bin));
    assert_memory_equal(got.data, bin, sizeof(bin));
    p11n_buf_cleanup(&got);
    p11n_buf_cleanup(&b64);
    h_msg_free(d);
    EVP_PKEY_CTX_free(pc);
    EVP_PKEY_free(k);
}

static void test_error_codes(void **state)
{
    (void)state;
    char long_input[247];
    const char *one[1] = {"x"}, *too_long[1] = {long_input}, *bad_ct[1] = {"AAAA"};
    memset(long_input, 'a', 246);
    long_input[246] = 0;
    h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "NoSuchToken", "1234", NULL, 0, 1, one),
                           P11NET__ERROR_CODE__NO_SUCH_SLOT));
    p11n_msg *q = req(P11NET__PROTO_MESSAGE_TYPE__SIGN, NULL, "1234", NULL, 0, 1, one);
    q->slot = 424242;
    h_msg_free(call_expect(q, P11NET__ERROR_CODE__NO_SUCH_SLOT));
    h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "MyToken", "9999", NULL, 0, 1, one),
                           P11NET__ERROR_CODE__PIN_INCORRECT));
    h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "MyToken", "", NULL, 0, 1, one),
                           P11NET__ERROR_CODE__PIN_INCORRECT));
    h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "MyToken", "1234", "NoSuchKey", 0, 1, one),
                           P11NET__ERROR_CODE__KEY_NOT_FOUND));
    h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "MyToken", "1234", NULL,
                               P11NET__MECHANISM__RSA_PKCS, 1, too_long),
                           P11NET__ERROR_CODE__DATA_INVALID));
    long_input[245] = 0; /* k - 11 = 245 bytes still fit */
    h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "MyToken", "1234", NULL,
                               P11NET__MECHANISM__RSA_PKCS, 1, too_long),
                           P11NET__ERROR_CODE__NONE));
    h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__DECRYPT, "MyToken", "1234", NULL, 0, 1, bad_ct),
                           P11NET__ERROR_CODE__DATA_INVALID));
    h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "MyToken", "1234", "EcKey",
                               P11NET__MECHANISM__SHA256_RSA_PKCS, 1, one),
                           P11NET__ERROR_CODE__UNSUPPORTED));
    h_msg_free(call_expect(req(P11NET__PROTO_MESSAGE_TYPE__ENCRYPT, "MyToken", "1234", NULL,
                               P11NET__MECHANISM__RSA_PKCS_OAEP_SHA256, 1, one),
                           P11NET__ERROR_CODE__UNSUPPORTED));
    /* A batch fails whole, naming the failing item. */
    const char *batch[3] = {"fine", long_input, "fine"};
    long_input[245] = 'a';
    p11n_msg *r = call_expect(req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "MyToken", "1234", NULL,
                                  P11NET__MECHANISM__RSA_PKCS, 3, batch),
                              P11NET__ERROR_CODE__DATA_INVALID);
    assert_int_equal(r->n_data, 1);
    assert_int_equal(strncmp(r->data[0], "item 1: ", 8), 0);
    h_msg_free(r);
}

/* 1,000 requests written at once on one connection: every one answered exactly
 * once, matched by id, and some out of order (pings overtake signatures). */
static void test_pipelined_out_of_order(void **state)
{
    (void)state;
    enum { N = 1000 };
    static uint8_t seen[N];
    struct p11n_buf all = {0};
    const char *data[1] = {"pipelined"};
    int out_of_order = 0, last = -1;
    for (int i = 0; i < N; i++) {
        char id[16];
        p11n_msg *q = i % 2 ? h_req(P11NET__PROTO_MESSAGE_TYPE__ACK, "", NULL, NULL, 0, NULL)
                            : h_req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "", "MyToken", "1234", 1, data);
        snprintf(id, sizeof(id), "%d", i);
        free(q->id);
        q->id = strdup(id);
        q->seq = i;
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
        assert_int_equal(r->seq, k);
        assert_false(seen[k]);
        assert_false(r->err);
        seen[k] = 1;
        if (k < last) out_of_order++;
        last = k;
        h_msg_free(r);
    }
    assert_true(out_of_order > 0);
}

/* 100 connections at once, each with 5 requests in flight: 500 replies. */
static void test_100_connections(void **state)
{
    (void)state;
    enum { C = 100, PER = 5 };
    int fds[C], got = 0;
    const char *data[1] = {"many"};
    for (int c = 0; c < C; c++) fds[c] = h_connect(server.addr);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < PER; i++) {
            p11n_msg *q = i % 2 ? h_req(P11NET__PROTO_MESSAGE_TYPE__ACK, "p", NULL, NULL, 0, NULL)
                                : h_req(P11NET__PROTO_MESSAGE_TYPE__SIGN, "s", "Token3", "3456", 1, data);
            h_send(fds[c], q);
            h_msg_free(q);
        }
    for (int c = 0; c < C; c++) {
        for (int i = 0; i < PER; i++) {
            p11n_msg *r = h_recv(fds[c], T_REPLY);
            assert_non_null(r);
            assert_false(r->err);
            got++;
            h_msg_free(r);
        }
        close(fds[c]);
    }
    assert_int_equal(got, C * PER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_tokens),        cmocka_unit_test(test_list_keys),
        cmocka_unit_test(test_sign_and_verify),    cmocka_unit_test(test_encrypt_decrypt),
        cmocka_unit_test(test_error_codes),        cmocka_unit_test(test_pipelined_out_of_order),
        cmocka_unit_test(test_100_connections),
    };
    return cmocka_run_group_tests(tests, start, stop);
}
