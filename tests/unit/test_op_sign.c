/* SIGN and VERIFY (op_sign.c) on real SoftHSM tokens. Every signature the server
 * makes is checked independently with OpenSSL against the exported public key. */
#include "hsm_fixture.h"

#define M(x) P11NET__MECHANISM__##x

/* Checks sig over msg with OpenSSL and the public key pub/<label>.pem. */
static int ossl_verify(const char *label, int mech, struct p11n_slice msg, struct p11n_slice sig)
{
    EVP_PKEY *k = fx_pub(label);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    uint8_t der[256];
    const uint8_t *s = sig.p;
    size_t slen = sig.len;
    int ok = 0;

    if (mech == M(RSA_PKCS)) {
        pc = EVP_PKEY_CTX_new(k, NULL);
        ok = EVP_PKEY_verify_init(pc) == 1 && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_verify(pc, sig.p, sig.len, msg.p, msg.len) == 1;
        EVP_PKEY_CTX_free(pc);
    } else {
        if (mech == M(ECDSA_SHA256)) {
            /* r||s to DER */
            ECDSA_SIG *es = ECDSA_SIG_new();
            uint8_t *p = der;
            size_t h = sig.len / 2;
            ECDSA_SIG_set0(es, BN_bin2bn(sig.p, (int)h, NULL), BN_bin2bn(sig.p + h, (int)h, NULL));
            slen = (size_t)i2d_ECDSA_SIG(es, &p);
            ECDSA_SIG_free(es);
            s = der;
        }
        ok = EVP_DigestVerifyInit(md, &pc, mech == M(EDDSA) ? NULL : EVP_sha256(), NULL, k) == 1;
        if (ok && mech == M(SHA256_RSA_PKCS_PSS))
            ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) == 1;
        ok = ok && EVP_DigestVerify(md, s, slen, msg.p, msg.len) == 1;
    }
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    return ok;
}

/* Signs text on token with key/mech, checks the reply with OpenSSL as `as` (the
 * mechanism the server must have used) with label's public key, then has the
 * server VERIFY it too. */
static void sign_check(const char *token, const char *pin, const char *key, int mech, const char *label, int as)
{
    static const char text[] = "hello, p11net";
    struct fx_req *r = fx_req_new(token, pin, key, mech, 0);
    struct p11n_buf sig = {0};

    fx_req_adds(r, text);
    fx_run(r, p11n_op_sign, P11N_OK);
    assert_int_equal(r->req->out.len, 1);
    fx_b64dec(r->req->out.items[0], &sig);
    assert_true(ossl_verify(label, as, p11n_slice_of(text, strlen(text)), p11n_buf_slice(&sig)));

    /* the server's own VERIFY: valid, then a changed message is not */
    for (int tamper = 0; tamper < 2; tamper++) {
        struct fx_req *v = fx_req_new(token, pin, key, mech, 0);
        fx_req_adds(v, tamper ? "hello, p11neT" : text);
        fx_req_adds(v, r->req->out.items[0]);
        fx_run(v, p11n_op_verify, tamper ? P11N_E_SIGNATURE_INVALID : P11N_OK);
        if (!tamper) assert_string_equal(v->req->out.items[0], "valid");
        fx_req_free(v);
    }
    /* a signature one byte short is SIGNATURE_INVALID, not an HSM error */
    {
        struct fx_req *v = fx_req_new(token, pin, key, mech, 1);
        fx_req_adds(v, text);
        fx_req_add(v, sig.data, sig.len - 1);
        fx_run(v, p11n_op_verify, P11N_E_SIGNATURE_INVALID);
        fx_req_free(v);
    }
    p11n_buf_cleanup(&sig);
    fx_req_free(r);
}

static void test_rsa_mechanisms(void **state)
{
    (void)state;
    sign_check("MyToken", "1234", NULL, M(MECH_DEFAULT), "TestKey", M(RSA_PKCS));
    sign_check("MyToken", "1234", NULL, M(RSA_PKCS), "TestKey", M(RSA_PKCS));
    sign_check("MyToken", "1234", NULL, M(SHA256_RSA_PKCS), "TestKey", M(SHA256_RSA_PKCS));
    sign_check("MyToken", "1234", "TestKey", M(SHA256_RSA_PKCS_PSS), "TestKey", M(SHA256_RSA_PKCS_PSS));
    sign_check("Token2", "5678", NULL, M(MECH_DEFAULT), "Key2", M(RSA_PKCS));
}

static void test_ec_and_ed(void **state)
{
    (void)state;
    /* ECDSA_SHA256 without a key: the lowest-ID EC key, not the RSA key with id 01 */
    sign_check("MyToken", "1234", NULL, M(ECDSA_SHA256), "EcKey", M(ECDSA_SHA256));
    /* MECH_DEFAULT follows the key's type */
    sign_check("MyToken", "1234", "EcKey", M(MECH_DEFAULT), "EcKey", M(ECDSA_SHA256));
    sign_check("Token3", "3456", NULL, M(EDDSA), "EdKey", M(EDDSA));
    sign_check("Token3", "3456", "EdKey", M(MECH_DEFAULT), "EdKey", M(EDDSA));
}

static void test_key_by_uri(void **state)
{
    (void)state;
    sign_check("MyToken", "1234", "pkcs11:object=TestKey", M(SHA256_RSA_PKCS), "TestKey", M(SHA256_RSA_PKCS));
    sign_check("MyToken", "1234", "pkcs11:id=%11", M(MECH_DEFAULT), "EcKey", M(ECDSA_SHA256));
    sign_check("MyToken", "1234", "pkcs11:object=EcKey;id=%11", M(ECDSA_SHA256), "EcKey", M(ECDSA_SHA256));
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", "pkcs11:object=EcKey;type=private", 0, "x"), P11N_OK);
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", "pkcs11:object=TestKey;type=public", 0, "x"),
                     P11N_E_KEY_NOT_FOUND);
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", "pkcs11:id=%99", 0, "x"), P11N_E_KEY_NOT_FOUND);
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", "pkcs11:object=Key2", 0, "x"), P11N_E_KEY_NOT_FOUND);
}

static void test_errors(void **state)
{
    (void)state;
    assert_int_equal(fx_one(p11n_op_sign, "NoSuchToken", "1234", NULL, 0, "x"), P11N_E_NO_SUCH_SLOT);
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "9999", NULL, 0, "x"), P11N_E_PIN_INCORRECT);
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "", NULL, 0, "x"), P11N_E_PIN_INCORRECT);
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", "NoSuchKey", 0, "x"), P11N_E_KEY_NOT_FOUND);
    /* a key of another token is not found */
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", "Key2", 0, "x"), P11N_E_KEY_NOT_FOUND);
    /* mechanisms that do not fit the key or the operation */
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", "EcKey", M(RSA_PKCS), "x"), P11N_E_UNSUPPORTED);
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", "TestKey", M(ECDSA_SHA256), "x"), P11N_E_UNSUPPORTED);
    assert_int_equal(fx_one(p11n_op_sign, "Token2", "5678", NULL, M(ECDSA_SHA256), "x"), P11N_E_UNSUPPORTED);
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", NULL, M(EDDSA), "x"), P11N_E_UNSUPPORTED);
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", NULL, M(RSA_PKCS_OAEP_SHA256), "x"), P11N_E_UNSUPPORTED);
    assert_int_equal(fx_one(p11n_op_verify, "MyToken", "1234", NULL, M(RSA_PKCS_OAEP_SHA256), "x"),
                     P11N_E_UNSUPPORTED);
}

static void test_rsa_pkcs_length_limit(void **state)
{
    char in[247];
    (void)state;
    memset(in, 'a', sizeof(in));
    in[245] = 0; /* k - 11 = 245 bytes: the most RSA_PKCS takes with a 2048-bit key */
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", NULL, M(RSA_PKCS), in), P11N_OK);
    in[245] = 'a';
    in[246] = 0;
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", NULL, M(RSA_PKCS), in), P11N_E_DATA_INVALID);
    /* the hashing mechanisms take any length */
    assert_int_equal(fx_one(p11n_op_sign, "MyToken", "1234", NULL, M(SHA256_RSA_PKCS), in), P11N_OK);
}

static void test_batch(void **state)
{
    static const char *const texts[] = {"one", "two", "three"};
    char big[300];
    struct fx_req *r = fx_req_new("MyToken", "1234", NULL, M(SHA256_RSA_PKCS), 0);
    struct p11n_buf sig = {0};

    (void)state;
    for (size_t i = 0; i < 3; i++) fx_req_adds(r, texts[i]);
    fx_run(r, p11n_op_sign, P11N_OK);
    assert_int_equal(r->req->out.len, 3);
    for (size_t i = 0; i < 3; i++) {
        fx_b64dec(r->req->out.items[i], &sig);
        assert_true(ossl_verify("TestKey", M(SHA256_RSA_PKCS), p11n_slice_of(texts[i], strlen(texts[i])),
                                p11n_buf_slice(&sig)));
    }
    fx_req_free(r);

    /* item 1 too long for RSA_PKCS: the whole batch fails with its code */
    memset(big, 'b', sizeof(big));
    r = fx_req_new("MyToken", "1234", NULL, M(RSA_PKCS), 0);
    fx_req_adds(r, "fine");
    fx_req_add(r, big, sizeof(big));
    fx_req_adds(r, "also fine");
    fx_run(r, p11n_op_sign, P11N_E_DATA_INVALID);
    assert_true(strncmp(r->req->err, "item 1: ", 8) == 0);
    fx_req_free(r);
    p11n_buf_cleanup(&sig);
}

static void test_token_by_slot(void **state)
{
    struct p11n_token *tok;
    char err[128];
    struct fx_req *r;
    (void)state;
    assert_int_equal(p11n_hsm_token_find(fx_state.server.hsm, "Token2", 0, &tok, err, sizeof(err)), P11N_OK);
    r = fx_req_new(NULL, "5678", NULL, 0, 0);
    r->msg.slot = p11n_hsm_token_slot(tok);
    fx_req_adds(r, "by slot");
    fx_run(r, p11n_op_sign, P11N_OK);
    fx_req_free(r);
    /* a label selects the slot, with trailing blanks ignored; the slot is then unused */
    r = fx_req_new("Token2   ", "5678", NULL, 0, 0);
    r->msg.slot = 4242;
    fx_req_adds(r, "by label");
    fx_run(r, p11n_op_sign, P11N_OK);
    fx_req_free(r);
    r = fx_req_new(NULL, "5678", NULL, 0, 0);
    r->msg.slot = 4242;
    fx_req_adds(r, "x");
    fx_run(r, p11n_op_sign, P11N_E_NO_SUCH_SLOT);
    fx_req_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rsa_mechanisms, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ec_and_ed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_key_by_uri, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rsa_pkcs_length_limit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_batch, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_token_by_slot, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, fx_group_setup, fx_group_teardown);
}
