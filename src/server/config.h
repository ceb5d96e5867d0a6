/* p11netd's configuration. Every option is one row of the table in config.c, from
 * which parsing, defaults, validation, --help and the redacted startup dump come. */
#ifndef P11N_CONFIG_H
#define P11N_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define P11N_MAX_LISTEN 16
#define P11N_MAX_TOKEN_PINS 64

struct p11n_token_pin_file {
    char *label;
    char *path;
};

struct p11n_config {
    const char *listen[P11N_MAX_LISTEN];
    size_t n_listen;
    const char *module;
    unsigned workers;
    unsigned io_threads;   /* reactors (reactor.h) */
    int no_inline;         /* 1: every HSM call goes to the worker pool */
    uint64_t max_frame;
    uint64_t max_batch;
    uint64_t max_inflight;
    uint64_t max_conns;
    uint64_t idle_timeout_s;
    uint64_t drain_timeout_s;
    const char *log_level;
    int insecure;
    /* security (PROTOCOL.md section 7) */
    const char *tls_cert, *tls_key, *tls_ca;
    const char *acl_file;
    struct p11n_token_pin_file token_pins[P11N_MAX_TOKEN_PINS];
    size_t n_token_pins;
    /* Wrong PINs per (client, token) are a token bucket: a burst of throttle_burst,
     * refilled at throttle_rate per throttle_period_s (default 1 s), so a sustained guesser gets no more than
     * throttle_rate tries a second while a run of many clients behind one address,
     * each with one wrong PIN, is never throttled. */
    uint64_t throttle_burst;
    uint64_t throttle_rate;
    uint64_t throttle_period_s; /* rate is per this many seconds (tests make it long) */
};

/* Fills cfg from argv. P11N_OK: run; P11N_E_USAGE: a message was printed, exit 2;
 * P11N_E_CLOSED: --help or --version was printed, exit 0. */
P11N_MUST_USE p11n_rc p11n_config_parse(struct p11n_config *cfg, int argc, char **argv);
/* Logs every option at info level, secrets redacted. */
void p11n_config_log(const struct p11n_config *cfg);
void p11n_config_cleanup(struct p11n_config *cfg);

#endif
