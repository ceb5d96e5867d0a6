/* ENCRYPT and DECRYPT. */
#include "op_common.h"
#include "ops.h"

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF) and no
 * NUL, since the plaintext travels as a protobuf string and a C string. */
static int valid_text(struct p11n_slice s)
{
    size_t i = 0;

    while (i < s.len) {
        uint8_t b = s.p[i];
        size_t n;
        uint32_t cp, min;

        if (b == 0) return 0;
        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xe0) == 0xc0) n = 1, cp = b & 0x1f, min = 0x80;
        else if ((b & 0xf0) == 0xe0) n = 2, cp = b & 0x0f, min = 0x800;
        else if ((b & 0xf8) == 0xf0) n = 3, cp = b & 0x07, min = 0x10000;
        else return 0;
        if (s.len - i <= n) return 0;
        for (size_t j = 1; j <= n; j++) {
            if ((s.p[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s.p[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += n + 1;
    }
    return 1;
}

/* Thread: req's pool thread. Plaintexts in, base64 ciphertexts out; the batch fails
 * whole at its first failing item. */
p11n_rc p11n_op_encrypt(struct p11n_req *req)
{
    struct p11n_op_ctx c;
    struct p11n_buf ct = {0};
    p11n_rc rc = P11N_OK;

    P11N_TRY(p11n_op_begin(&c, req, P11N_USE_ENCRYPT));
    for (size_t k = 0; k < req->n_in && rc == P11N_OK; k++) {
        ct.len = 0;
        rc = p11n_hsm_encrypt(&c.job, &c.key, c.mech, req->in[k], &ct);
        if (rc != P11N_OK) {
            rc = p11n_op_fail_item(&c, k, rc, NULL);
            break;
        }
        rc = p11n_op_push_b64(req, p11n_buf_slice(&ct));
        if (rc != P11N_OK) rc = p11n_op_fail_item(&c, k, rc, "out of memory");
    }
    p11n_buf_cleanup(&ct);
    p11n_op_end(&c);
    return rc;
}

/* Thread: req's pool thread. Base64 ciphertexts in (decoded here unless binary,
 * where dispatch did it); plaintexts out as text, or base64 when binary. */
p11n_rc p11n_op_decrypt(struct p11n_req *req)
{
    struct p11n_op_ctx c;
    struct p11n_buf pt = {0}, store = {0};
    p11n_rc rc = P11N_OK;

    P11N_TRY(p11n_op_begin(&c, req, P11N_USE_DECRYPT));
    for (size_t k = 0; k < req->n_in && rc == P11N_OK; k++) {
        struct p11n_slice ct;

        pt.len = store.len = 0;
        if (p11n_op_b64_input(req, req->in[k], &store, &ct) != P11N_OK) {
            rc = p11n_op_fail_item(&c, k, P11N_E_BAD_REQUEST, "ciphertext is not base64");
            break;
        }
        rc = p11n_hsm_decrypt(&c.job, &c.key, c.mech, ct, &pt);
        if (rc != P11N_OK) {
            rc = p11n_op_fail_item(&c, k, rc, NULL);
            break;
        }
        if (req->msg->binary) {
            rc = p11n_op_push_b64(req, p11n_buf_slice(&pt));
        } else if (!valid_text(p11n_buf_slice(&pt))) {
            rc = p11n_op_fail_item(&c, k, P11N_E_DATA_INVALID, "plaintext is not UTF-8 text (use binary)");
            break;
        } else {
            rc = p11n_strvec_push(&req->out, p11n_buf_slice(&pt));
        }
        if (rc != P11N_OK) rc = p11n_op_fail_item(&c, k, rc, "out of memory");
    }
    p11n_buf_cleanup(&pt);
    p11n_buf_cleanup(&store);
    p11n_op_end(&c);
    return rc;
}
