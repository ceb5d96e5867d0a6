#include "op_common.h"

#include <string.h>

#include "access.h"
#include "b64.h"
#include "server.h"

/* Which keys and HSM mechanism each wire Mechanism means, per use. One row per
 * Mechanism; MECH_DEFAULT is settled once the key (and so its type) is known. */
static const struct {
    const char *name;
    unsigned uses;            /* bit (1 << p11n_key_use) for each use it serves */
    unsigned types;           /* acceptable key types */
    enum p11n_mech mech;
    int prehash_sha256;
} mech_rows[] = {
#define SIGNING (1u << P11N_USE_SIGN | 1u << P11N_USE_VERIFY)
#define CRYPTING (1u << P11N_USE_ENCRYPT | 1u << P11N_USE_DECRYPT)
    [P11NET__MECHANISM__MECH_DEFAULT] = {"MECH_DEFAULT", SIGNING | CRYPTING, P11N_KEY_ANY_ASYM, P11N_MECH_RSA_PKCS, 0},
    [P11NET__MECHANISM__RSA_PKCS] = {"RSA_PKCS", SIGNING | CRYPTING, P11N_KEY_RSA, P11N_MECH_RSA_PKCS, 0},
    [P11NET__MECHANISM__SHA256_RSA_PKCS] = {"SHA256_RSA_PKCS", SIGNING, P11N_KEY_RSA, P11N_MECH_SHA256_RSA_PKCS, 0},
    [P11NET__MECHANISM__SHA256_RSA_PKCS_PSS] = {"SHA256_RSA_PKCS_PSS", SIGNING, P11N_KEY_RSA,
                                                P11N_MECH_SHA256_RSA_PKCS_PSS, 0},
    [P11NET__MECHANISM__RSA_PKCS_OAEP_SHA256] = {"RSA_PKCS_OAEP_SHA256", CRYPTING, P11N_KEY_RSA,
                                                 P11N_MECH_RSA_OAEP_SHA256, 0},
    [P11NET__MECHANISM__ECDSA_SHA256] = {"ECDSA_SHA256", SIGNING, P11N_KEY_EC, P11N_MECH_ECDSA, 1},
    [P11NET__MECHANISM__EDDSA] = {"EDDSA", SIGNING, P11N_KEY_ED25519, P11N_MECH_EDDSA, 0},
#undef SIGNING
#undef CRYPTING
};

static const char *const use_names[] = {"SIGN", "VERIFY", "ENCRYPT", "DECRYPT"};

p11n_rc p11n_op_fail(struct p11n_op_ctx *c, p11n_rc rc)
{
    p11n_strvec_cleanup(&c->req->out);
    return p11n_req_fail(c->req, rc, "%s", c->job.err[0] ? c->job.err : p11n_rc_name(rc));
}

p11n_rc p11n_op_fail_item(struct p11n_op_ctx *c, size_t k, p11n_rc rc, const char *msg)
{
    const char *why = msg ? msg : c->job.err[0] ? c->job.err : p11n_rc_name(rc);

    p11n_strvec_cleanup(&c->req->out);
    /* A single input is not a batch: its message stays as the HSM layer wrote it,
     * so an HSM_ERROR's data[0] starts with the CKR_ name. */
    if (c->req->n_in <= 1) return p11n_req_fail(c->req, rc, "%s", why);
    return p11n_req_fail(c->req, rc, "item %zu: %s", k, why);
}

/* Steps 1-4 of the prelude: token, access, session, PIN. On failure nothing is
 * held and req is failed. */
static p11n_rc begin_token(struct p11n_op_ctx *c, struct p11n_req *req)
{
    struct p11n_server *srv = req->server;
    struct p11n_token *tok;
    const char *label;
    p11n_rc rc;

    memset(c, 0, sizeof(*c));
    c->req = req;
    rc = p11n_hsm_token_find(srv->hsm, req->msg->token, req->msg->slot, &tok, c->job.err, sizeof(c->job.err));
    if (rc != P11N_OK) return p11n_op_fail(c, rc);
    label = p11n_hsm_token_label(tok);
    /* Before the PIN, so an unauthorized or throttled client learns nothing about it. */
    rc = p11n_access_check(srv->access, req->grant, req->client_id, label);
    if (rc != P11N_OK)
        return p11n_req_fail(req, rc, "%s for token '%s'",
                             rc == P11N_E_THROTTLED ? "too many wrong PINs" : "client not allowed", label);
    rc = p11n_hsm_job_begin(&c->job, tok);
    if (rc != P11N_OK) return p11n_op_fail(c, rc);
    rc = p11n_hsm_check_pin(&c->job, &req->pin);
    /* An empty PIN accepted because the server holds one says nothing about the client. */
    if (rc == P11N_OK && req->pin.len > 0)
        p11n_access_pin_result(srv->access, req->client_id, label, 1);
    else if (rc == P11N_E_PIN_INCORRECT)
        p11n_access_pin_result(srv->access, req->client_id, label, 0);
    if (rc != P11N_OK) {
        p11n_op_fail(c, rc);
        p11n_hsm_job_end(&c->job);
        return rc;
    }
    return P11N_OK;
}

/* Thread: req's pool thread. See op_common.h. */
p11n_rc p11n_op_begin_token(struct p11n_op_ctx *c, struct p11n_req *req)
{
    return begin_token(c, req);
}

/* Thread: req's pool thread. See op_common.h. */
p11n_rc p11n_op_begin(struct p11n_op_ctx *c, struct p11n_req *req, enum p11n_key_use use)
{
    unsigned m = (unsigned)req->msg->mechanism;
    unsigned types;
    p11n_rc rc;

    P11N_TRY(begin_token(c, req));
    /* dispatch.c rejects unknown values; this guards the table all the same. */
    if (m >= sizeof(mech_rows) / sizeof(mech_rows[0]) || !mech_rows[m].name) {
        p11n_hsm_job_end(&c->job);
        return p11n_req_fail(req, P11N_E_UNSUPPORTED, "unknown mechanism %u", m);
    }
    if (!(mech_rows[m].uses & (1u << use))) {
        p11n_hsm_job_end(&c->job);
        return p11n_req_fail(req, P11N_E_UNSUPPORTED, "mechanism %s cannot %s", mech_rows[m].name, use_names[use]);
    }
    types = mech_rows[m].types;
    if (m == P11NET__MECHANISM__MECH_DEFAULT && (use == P11N_USE_ENCRYPT || use == P11N_USE_DECRYPT))
        types = P11N_KEY_RSA;
    rc = p11n_hsm_find_key(&c->job, req->msg->key ? req->msg->key : "", use, types, &c->key);
    if (rc != P11N_OK) {
        p11n_op_fail(c, rc);
        p11n_hsm_job_end(&c->job);
        return rc;
    }
    c->mech = mech_rows[m].mech;
    c->prehash_sha256 = mech_rows[m].prehash_sha256;
    if (m == P11NET__MECHANISM__MECH_DEFAULT) {
        /* The default follows the key: RSA_PKCS, ECDSA_SHA256 or EDDSA. */
        if (c->key.type == P11N_KEY_EC) c->mech = P11N_MECH_ECDSA, c->prehash_sha256 = 1;
        if (c->key.type == P11N_KEY_ED25519) c->mech = P11N_MECH_EDDSA;
    }
    return P11N_OK;
}

void p11n_op_end(struct p11n_op_ctx *c)
{
    p11n_hsm_job_end(&c->job);
}

p11n_rc p11n_op_b64_input(const struct p11n_req *req, struct p11n_slice in, struct p11n_buf *store,
                          struct p11n_slice *out)
{
    if (req->msg->binary) {
        *out = in;
        return P11N_OK;
    }
    P11N_TRY(p11n_b64_decode(in, store));
    *out = p11n_buf_slice(store);
    return P11N_OK;
}

p11n_rc p11n_op_push_b64(struct p11n_req *req, struct p11n_slice bytes)
{
    struct p11n_buf text = {0};
    p11n_rc rc = p11n_b64_encode(bytes, &text);

    if (rc == P11N_OK) rc = p11n_strvec_take(&req->out, &text);
    p11n_buf_cleanup(&text);
    return rc;
}
