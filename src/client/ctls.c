#include "ctls.h"

#include <stdio.h>
#include <string.h>

#include "addr.h"

int p11n_ctls_wanted(const p11net_options *opts)
{
    return opts && (opts->tls_ca || opts->tls_cert || opts->tls_key || opts->tls_servername);
}

p11n_rc p11n_ctls_setup(const p11net_options *opts, const char *server, struct p11n_tls_ctx **ctx,
                        char *servername, size_t cap, char *err, size_t err_len)
{
    struct p11n_tls_files files = {opts->tls_cert, opts->tls_key, opts->tls_ca};

    *ctx = NULL;
    if (server && strncmp(server, "unix:", 5) == 0) {
        snprintf(err, err_len, "TLS is not used on unix: sockets (drop the --tls-* options)");
        return P11N_E_USAGE;
    }
    if (!opts->tls_cert != !opts->tls_key) {
        snprintf(err, err_len, "--tls-cert and --tls-key go together");
        return P11N_E_USAGE;
    }
    if (opts->tls_servername && *opts->tls_servername) {
        if (strlen(opts->tls_servername) >= cap) {
            snprintf(err, err_len, "server name too long");
            return P11N_E_USAGE;
        }
        snprintf(servername, cap, "%s", opts->tls_servername);
    } else if (p11n_addr_host(server, servername, cap) != P11N_OK) {
        snprintf(err, err_len, "cannot tell the server's name from '%s'", server ? server : "");
        return P11N_E_USAGE;
    }
    return p11n_tls_ctx_new(ctx, 0, &files, err, err_len);
}
