#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct p11n_tls_ctx {
    SSL_CTX *ctx;
    int is_server;
};

struct p11n_tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio; /* network side: rbio gets what the peer sent, wbio what to send */
    int ready;
    char error[160];
};

/* Drains OpenSSL's error queue into buf: the one converter from its error space. */
static void take_openssl_error(char *buf, size_t len, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[120] = "";

    if (e) ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(buf, len, "%s%s%s", what, reason[0] ? ": " : "", reason);
}

p11n_rc p11n_tls_ctx_new(struct p11n_tls_ctx **out, int is_server, const struct p11n_tls_files *f, char *err,
                         size_t err_len)
{
    struct p11n_tls_ctx *c = calloc(1, sizeof(*c));

    *out = NULL;
    P11N_ENSURE(c != NULL, P11N_E_NOMEM);
    c->is_server = is_server;
    c->ctx = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (!c->ctx || !SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION)) {
        take_openssl_error(err, err_len, "cannot create TLS context");
        goto fail;
    }
    if (f->cert && SSL_CTX_use_certificate_chain_file(c->ctx, f->cert) != 1) {
        take_openssl_error(err, err_len, "cannot load certificate");
        goto fail;
    }
    if (f->key && (SSL_CTX_use_PrivateKey_file(c->ctx, f->key, SSL_FILETYPE_PEM) != 1 ||
                   SSL_CTX_check_private_key(c->ctx) != 1)) {
        take_openssl_error(err, err_len, "cannot load private key");
        goto fail;
    }
    if (f->ca) {
        if (SSL_CTX_load_verify_locations(c->ctx, f->ca, NULL) != 1) {
            take_openssl_error(err, err_len, "cannot load CA");
            goto fail;
        }
    } else if (!is_server && SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
        take_openssl_error(err, err_len, "cannot load the system CAs");
        goto fail;
    }
    if (is_server)
        SSL_CTX_set_verify(c->ctx, f->ca ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE, NULL);
    else
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    /* Small records are the norm here; release idle buffers (memory per idle conn). */
    SSL_CTX_set_mode(c->ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    *out = c;
    return P11N_OK;
fail:
    p11n_tls_ctx_free(c);
    return P11N_E_TLS;
}

void p11n_tls_ctx_free(struct p11n_tls_ctx *ctx)
{
    if (!ctx) return;
    SSL_CTX_free(ctx->ctx);
    free(ctx);
}

p11n_rc p11n_tls_conn_new(struct p11n_tls_ctx *ctx, const char *servername, struct p11n_tls_conn **out)
{
    struct p11n_tls_conn *tc = calloc(1, sizeof(*tc));

    *out = NULL;
    P11N_ENSURE(tc != NULL, P11N_E_NOMEM);
    tc->ssl = SSL_new(ctx->ctx);
    tc->rbio = BIO_new(BIO_s_mem());
    tc->wbio = BIO_new(BIO_s_mem());
    if (!tc->ssl || !tc->rbio || !tc->wbio) {
        BIO_free(tc->rbio);
        BIO_free(tc->wbio);
        SSL_free(tc->ssl);
        free(tc);
        return P11N_E_NOMEM;
    }
    SSL_set_bio(tc->ssl, tc->rbio, tc->wbio); /* the SSL owns both BIOs now */
    if (ctx->is_server) {
        SSL_set_accept_state(tc->ssl);
    } else {
        SSL_set_connect_state(tc->ssl);
        if (servername && *servername) {
            /* SNI only for DNS names; the certificate check covers names and IPs. */
            if (!strpbrk(servername, ":") && strspn(servername, "0123456789.") != strlen(servername))
                SSL_set_tlsext_host_name(tc->ssl, servername);
            if (SSL_set1_host(tc->ssl, servername) != 1) {
                p11n_tls_conn_free(tc);
                return P11N_E_TLS;
            }
        }
    }
    *out = tc;
    return P11N_OK;
}

void p11n_tls_conn_free(struct p11n_tls_conn *tc)
{
    if (!tc) return;
    SSL_free(tc->ssl);
    free(tc);
}

p11n_rc p11n_tls_feed(struct p11n_tls_conn *tc, struct p11n_slice in)
{
    if (in.len == 0) return P11N_OK;
    P11N_ENSURE(in.len <= INT32_MAX, P11N_E_TOO_LARGE);
    P11N_ENSURE(BIO_write(tc->rbio, in.p, (int)in.len) == (int)in.len, P11N_E_NOMEM);
    return P11N_OK;
}

/* Classifies a failed SSL_* call: 0 when it only needs more I/O. */
static p11n_rc failure(struct p11n_tls_conn *tc, int ret, const char *what)
{
    int e = SSL_get_error(tc->ssl, ret);

    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return P11N_OK;
    if (e == SSL_ERROR_ZERO_RETURN) return P11N_E_CLOSED;
    if (e == SSL_ERROR_SSL && SSL_get_verify_result(tc->ssl) != X509_V_OK)
        snprintf(tc->error, sizeof(tc->error), "%s: certificate verify failed: %s", what,
                 X509_verify_cert_error_string(SSL_get_verify_result(tc->ssl)));
    else
        take_openssl_error(tc->error, sizeof(tc->error), what);
    ERR_clear_error();
    return P11N_E_TLS;
}

p11n_rc p11n_tls_read(struct p11n_tls_conn *tc, struct p11n_buf *plain, size_t limit)
{
    int n;

    if (!tc->ready) {
        n = SSL_do_handshake(tc->ssl);
        if (n != 1) return failure(tc, n, "handshake");
        tc->ready = 1;
    }
    for (;;) {
        size_t room;
        if (plain->len >= limit) return P11N_OK;
        room = limit - plain->len;
        if (room > 16384) room = 16384;
        P11N_TRY(p11n_buf_reserve(plain, room, limit));
        n = SSL_read(tc->ssl, plain->data + plain->len, (int)room);
        if (n <= 0) return failure(tc, n, "read");
        plain->len += (size_t)n;
    }
}

p11n_rc p11n_tls_write(struct p11n_tls_conn *tc, struct p11n_slice plain)
{
    size_t done = 0;

    P11N_ENSURE(tc->ready, P11N_E_TLS);
    while (done < plain.len) {
        size_t chunk = plain.len - done;
        int n;
        if (chunk > INT32_MAX) chunk = INT32_MAX;
        /* With memory BIOs a write never blocks: the wbio grows. */
        n = SSL_write(tc->ssl, plain.p + done, (int)chunk);
        if (n <= 0) {
            P11N_TRY(failure(tc, n, "write"));
            return P11N_E_TLS;
        }
        done += (size_t)n;
    }
    return P11N_OK;
}

p11n_rc p11n_tls_take_output(struct p11n_tls_conn *tc, struct p11n_buf *out)
{
    size_t pending = BIO_ctrl_pending(tc->wbio);

    if (!pending) return P11N_OK;
    P11N_TRY(p11n_buf_reserve(out, pending, SIZE_MAX));
    P11N_ENSURE(BIO_read(tc->wbio, out->data + out->len, (int)pending) == (int)pending, P11N_E_TLS);
    out->len += pending;
    return P11N_OK;
}

int p11n_tls_ready(const struct p11n_tls_conn *tc)
{
    return tc->ready;
}

const char *p11n_tls_error(const struct p11n_tls_conn *tc)
{
    return tc->error[0] ? tc->error : "no error";
}

p11n_rc p11n_tls_peer_names(struct p11n_tls_conn *tc, struct p11n_strvec *names)
{
    X509 *cert = SSL_get0_peer_certificate(tc->ssl);
    GENERAL_NAMES *sans;
    char cn[256];
    p11n_rc rc = P11N_OK;

    if (!cert) return P11N_OK;
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) > 0)
        P11N_TRY(p11n_strvec_push(names, p11n_slice_of(cn, strlen(cn))));
    sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && rc == P11N_OK; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        const ASN1_STRING *s = g->type == GEN_DNS ? g->d.dNSName : g->type == GEN_EMAIL ? g->d.rfc822Name : NULL;
        /* Names with embedded NULs are not names: skip rather than truncate. */
        if (s && memchr(ASN1_STRING_get0_data(s), 0, (size_t)ASN1_STRING_length(s)) == NULL)
            rc = p11n_strvec_push(names, p11n_slice_of(ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(sans);
    return rc;
}
