/* ENCRYPT and DECRYPT (op_crypt.c) on real SoftHSM tokens; ciphertexts made by
 * OpenSSL with the exported public key check DECRYPT independently. */
#include "hsm_fixture.h"

#define M(x) P11NET__MECHANISM__##x

/* base64 of an RSA PKCS#1 v1.5 encryption of pt under pub/<label>.pem, by OpenSSL. */
static char *ossl_encrypt_b64(const char *label, const void *pt, size_t len)
{
    EVP_PKEY *k = fx_pub(label);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k, NULL);
    uint8_t ct[512];
    size_t ct_len = sizeof(ct);
    struct p11n_buf text = {0};

    assert_int_equal(EVP_PKEY_encrypt_init(pc), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING), 1);
    assert_int_equal(EVP_PKEY_encrypt(pc, ct, &ct_len, pt, len), 1);
    assert_int_equal(p11n_b64_encode(p11n_slice_of(ct, ct_len), &text), P11N_OK);
    EVP_PKEY_CTX_free(pc);
    EVP_PKEY_free(k);
    return (char *)text.data;
}

static void test_decrypt_openssl_ciphertext(void **state)
{
    char *ct = ossl_encrypt_b64("TestKey", "secret text", 11);
    struct fx_req *r = fx_req_new("MyToken", "1234", NULL, 0, 0);
    (void)state;
    fx_req_adds(r, ct);
    fx_run(r, p11n_op_decrypt, P11N_OK);
    assert_string_equal(r->req->out.items[0], "secret text");
    fx_req_free(r);
    /* by label, on another token; and the wrong key cannot decrypt it */
    free(ct);
    ct = ossl_encrypt_b64("Key2", "for token 2", 11);
    r = fx_req_new("Token2", "5678", "Key2", M(RSA_PKCS), 0);
    fx_req_adds(r, ct);
    fx_run(r, p11n_op_decrypt, P11N_OK);
    assert_string_equal(r->req->out.items[0], "for token 2");
    fx_req_free(r);
    assert_int_equal(fx_one(p11n_op_decrypt, "MyToken", "1234", NULL, 0, ct), P11N_E_DATA_INVALID);
    free(ct);
}

static void test_roundtrip_batch(void **state)
{
    static const char *const texts[] = {"alpha", "", "gamma \xc3\xa9t\xc3\xa9"};
    struct fx_req *e = fx_req_new("MyToken", "1234", NULL, M(RSA_PKCS), 0), *d;
    struct p11n_buf ct = {0};
    (void)state;
    for (size_t i = 0; i < 3; i++) fx_req_adds(e, texts[i]);
    fx_run(e, p11n_op_encrypt, P11N_OK);
    assert_int_equal(e->req->out.len, 3);
    d = fx_req_new("MyToken", "1234", "TestKey", M(MECH_DEFAULT), 0);
    for (size_t i = 0; i < 3; i++) {
        fx_b64dec(e->req->out.items[i], &ct);
        assert_int_equal(ct.len, 256);
        fx_req_adds(d, e->req->out.items[i]);
    }
    fx_run(d, p11n_op_decrypt, P11N_OK);
    assert_int_equal(d->req->out.len, 3);
    for (size_t i = 0; i < 3; i++) assert_string_equal(d->req->out.items[i], texts[i]);
    fx_req_free(d);

    /* a batch with a bad item 2 fails whole, naming the item */
    d = fx_req_new("MyToken", "1234", NULL, 0, 0);
    fx_req_adds(d, e->req->out.items[0]);
    fx_req_adds(d, e->req->out.items[1]);
    fx_req_adds(d, "AAAA");
    fx_run(d, p11n_op_decrypt, P11N_E_DATA_INVALID);
    assert_true(strncmp(d->req->err, "item 2: ", 8) == 0);
    fx_req_free(d);
    d = fx_req_new("MyToken", "1234", NULL, 0, 0);
    fx_req_adds(d, e->req->out.items[0]);
    fx_req_adds(d, "not base64!");
    fx_run(d, p11n_op_decrypt, P11N_E_BAD_REQUEST);
    assert_true(strncmp(d->req->err, "item 1: ", 8) == 0);
    fx_req_free(d);
    fx_req_free(e);
    p11n_buf_cleanup(&ct);
}

static void test_binary(void **state)
{
    static const uint8_t bytes[] = {0x00, 0xff, 0xfe, 0x41, 0x00};
    struct fx_req *e = fx_req_new("MyToken", "1234", NULL, 0, 1), *d;
    struct p11n_buf ct = {0}, pt = {0};
    (void)state;
    fx_req_add(e, bytes, sizeof(bytes));
    fx_run(e, p11n_op_encrypt, P11N_OK);
    fx_b64dec(e->req->out.items[0], &ct);

    /* binary: inputs were decoded by dispatch, the plaintext comes back as base64 */
    d = fx_req_new("MyToken", "1234", NULL, 0, 1);
    fx_req_add(d, ct.data, ct.len);
    fx_run(d, p11n_op_decrypt, P11N_OK);
    fx_b64dec(d->req->out.items[0], &pt);
    assert_int_equal(pt.len, sizeof(bytes));
    assert_memory_equal(pt.data, bytes, sizeof(bytes));
    fx_req_free(d);

    /* text: a plaintext that is not UTF-8 (or holds a NUL) is DATA_INVALID */
    assert_int_equal(fx_one(p11n_op_decrypt, "MyToken", "1234", NULL, 0, e->req->out.items[0]), P11N_E_DATA_INVALID);
    fx_req_free(e);
    e = fx_req_new("MyToken", "1234", NULL, 0, 1);
    fx_req_add(e, "\xc0\xaf", 2); /* overlong '/' */
    fx_run(e, p11n_op_encrypt, P11N_OK);
    assert_int_equal(fx_one(p11n_op_decrypt, "MyToken", "1234", NULL, 0, e->req->out.items[0]), P11N_E_DATA_INVALID);
    fx_req_free(e);
    p11n_buf_cleanup(&ct);
    p11n_buf_cleanup(&pt);
}

static void test_data_invalid(void **state)
{
    char in[247];
    uint8_t junk[256];
    struct fx_req *r;
    (void)state;
    memset(in, 'a', sizeof(in));
    in[245] = 0;
    assert_int_equal(fx_one(p11n_op_encrypt, "MyToken", "1234", NULL, 0, in), P11N_OK);
    in[245] = 'a';
    in[246] = 0;
    assert_int_equal(fx_one(p11n_op_encrypt, "MyToken", "1234", NULL, 0, in), P11N_E_DATA_INVALID);
    /* wrong ciphertext length, then the right length with garbage (bad padding) */
    memset(junk, 0x01, sizeof(junk));
    r = fx_req_new("MyToken", "1234", NULL, 0, 1);
    fx_req_add(r, junk, 255);
    fx_run(r, p11n_op_decrypt, P11N_E_DATA_INVALID);
    assert_null(strstr(r->req->err, "item")); /* one input is not a batch */
    fx_req_free(r);
    r = fx_req_new("MyToken", "1234", NULL, 0, 1);
    fx_req_add(r, junk, 256);
    fx_run(r, p11n_op_decrypt, P11N_E_DATA_INVALID);
    fx_req_free(r);
}

static void test_unsupported(void **state)
{
    char *ct = ossl_encrypt_b64("TestKey", "x", 1);
    (void)state;
    /* SoftHSM 2.6.1 does OAEP with SHA-1 only */
    assert_int_equal(fx_one(p11n_op_encrypt, "MyToken", "1234", NULL, M(RSA_PKCS_OAEP_SHA256), "x"),
                     P11N_E_UNSUPPORTED);
    assert_int_equal(fx_one(p11n_op_decrypt, "MyToken", "1234", NULL, M(RSA_PKCS_OAEP_SHA256), ct),
                     P11N_E_UNSUPPORTED);
    assert_int_equal(fx_one(p11n_op_encrypt, "MyToken", "1234", "EcKey", 0, "x"), P11N_E_UNSUPPORTED);
    assert_int_equal(fx_one(p11n_op_encrypt, "MyToken", "1234", NULL, M(ECDSA_SHA256), "x"), P11N_E_UNSUPPORTED);
    assert_int_equal(fx_one(p11n_op_encrypt, "MyToken", "1234", NULL, M(SHA256_RSA_PKCS), "x"), P11N_E_UNSUPPORTED);
    assert_int_equal(fx_one(p11n_op_encrypt, "MyToken", "1234", "Nope", 0, "x"), P11N_E_KEY_NOT_FOUND);
    assert_int_equal(fx_one(p11n_op_decrypt, "MyToken", "4321", NULL, 0, ct), P11N_E_PIN_INCORRECT);
    assert_int_equal(fx_one(p11n_op_encrypt, "Nope", "1234", NULL, 0, "x"), P11N_E_NO_SUCH_SLOT);
    free(ct);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decrypt_openssl_ciphertext, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_batch, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_binary, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_data_invalid, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unsupported, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
