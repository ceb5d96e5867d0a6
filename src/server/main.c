/* p11netd: process set-up around p11n_server_run. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access.h"
#include "config.h"
#include "hsm.h"
#include "log.h"
#include "server.h"
#include "tls.h"

/* No core dumps and no ptrace by other users' processes: memory holds PINs and
 * plaintexts. */
static void harden_process(void)
{
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Reads the PIN in path into pin (one trailing newline, LF or CRLF, is not part of
 * it) and wipes every other copy. Warns when others may read the file. On failure
 * writes why into err and returns P11N_E_USAGE. Thread: main. */
static p11n_rc read_pin_file(const char *path, struct p11n_secret *pin, char *err, size_t err_len)
{
    unsigned char buf[P11N_SECRET_MAX + 3];
    size_t len = 0;
    ssize_t n;
    struct stat st;
    p11n_rc rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return P11N_E_USAGE;
    }
    if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
        fprintf(stderr, "p11netd: warning: PIN file %s is accessible by group or others (chmod 600 it)\n", path);
    while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            snprintf(err, err_len, "%s: %s", path, strerror(errno));
            close(fd);
            OPENSSL_cleanse(buf, sizeof(buf));
            return P11N_E_USAGE;
        }
        len += (size_t)n;
    }
    close(fd);
    if (len > 0 && buf[len - 1] == '\n') len--;
    if (len > 0 && buf[len - 1] == '\r') len--;
    if (len == 0 || len > P11N_SECRET_MAX) {
        snprintf(err, err_len, "%s: %s", path, len == 0 ? "empty PIN file" : "PIN too long");
        OPENSSL_cleanse(buf, sizeof(buf));
        return P11N_E_USAGE;
    }
    rc = p11n_secret_set(pin, buf, len);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (rc != P11N_OK) snprintf(err, err_len, "%s: PIN too long", path);
    return rc == P11N_OK ? P11N_OK : P11N_E_USAGE;
}

/* --acl and the throttle settings into srv->access, then each --token-pin into
 * the HSM layer. Prints why on stderr and returns nonzero on failure. */
static int setup_security(struct p11n_server *srv)
{
    struct p11n_access_config ac = {0};
    char err[512] = "";

    ac.acl_path = srv->cfg.acl_file;
    ac.burst = srv->cfg.throttle_burst;
    ac.rate = srv->cfg.throttle_rate;
    ac.period_s = srv->cfg.throttle_period_s;
    if (p11n_access_new(&srv->access, &ac, err, sizeof(err)) != P11N_OK) {
        fprintf(stderr, "p11netd: --acl: %s\n", err);
        return -1;
    }
    if (srv->cfg.acl_file && !srv->cfg.tls_ca)
        fprintf(stderr, "p11netd: warning: --acl without --tls-ca: TCP clients have no certificate names, so "
                        "they may use no token\n");
    for (size_t i = 0; i < srv->cfg.n_token_pins; i++) {
        const struct p11n_token_pin_file *tp = &srv->cfg.token_pins[i];
        struct p11n_secret pin = {0};
        p11n_rc rc = read_pin_file(tp->path, &pin, err, sizeof(err));
        if (rc == P11N_OK) rc = p11n_hsm_set_server_pin(srv->hsm, tp->label, &pin, err, sizeof(err));
        p11n_secret_cleanup(&pin);
        if (rc != P11N_OK) {
            fprintf(stderr, "p11netd: --token-pin %s: %s\n", tp->label, err);
            return -1;
        }
        p11n_log(P11N_LOG_INFO, "token=\"%s\" server_pin=set", tp->label);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct p11n_server srv = {0};
    char err[256] = "";
    char workers[16];
    p11n_rc rc;

    harden_process();
    rc = p11n_config_parse(&srv.cfg, argc, argv);
    if (rc == P11N_E_CLOSED) return 0;
    if (rc != P11N_OK) return 2;
    p11n_log_threshold = (enum p11n_log_level)p11n_log_level_parse(srv.cfg.log_level);
    /* A peer that vanishes must cost an EPIPE, not the process. */
    signal(SIGPIPE, SIG_IGN);
    /* libuv sizes its pool from this variable when the first work is queued. */
    snprintf(workers, sizeof(workers), "%u", srv.cfg.workers);
    setenv("UV_THREADPOOL_SIZE", workers, 1);
    p11n_config_log(&srv.cfg);

    if (p11n_hsm_open(&srv.hsm, srv.cfg.module, err, sizeof(err)) != P11N_OK) {
        fprintf(stderr, "p11netd: cannot use PKCS#11 module %s: %s\n", srv.cfg.module, err);
        p11n_config_cleanup(&srv.cfg);
        return 2;
    }
    if (srv.cfg.tls_cert) {
        struct p11n_tls_files files = {srv.cfg.tls_cert, srv.cfg.tls_key, srv.cfg.tls_ca};
        if (p11n_tls_ctx_new(&srv.tls, 1, &files, err, sizeof(err)) != P11N_OK) {
            fprintf(stderr, "p11netd: TLS: %s\n", err);
            p11n_hsm_close(srv.hsm);
            p11n_config_cleanup(&srv.cfg);
            return 2;
        }
    }
    if (setup_security(&srv) != 0) {
        p11n_access_free(srv.access);
        p11n_tls_ctx_free(srv.tls);
        p11n_hsm_close(srv.hsm);
        p11n_config_cleanup(&srv.cfg);
        return 2;
    }
    srv.loop = uv_default_loop();
    rc = p11n_server_run(&srv);
    uv_loop_close(srv.loop);
    /* Join libuv's worker threads now, while OpenSSL is still initialized, so their
     * per-thread OpenSSL state is freed as they exit (at exit time OpenSSL's own
     * cleanup may already have run and that state would leak). */
    uv_library_shutdown();
    p11n_hsm_close(srv.hsm);
    p11n_access_free(srv.access);
    p11n_tls_ctx_free(srv.tls);
    p11n_config_cleanup(&srv.cfg);
    if (rc == P11N_OK) p11n_log(P11N_LOG_INFO, "exit status=0");
    return rc == P11N_OK ? 0 : rc == P11N_E_USAGE ? 2 : 1;
}
