/* p11netd's options as one table. Parsing, range checks, defaults, --help and the
 * startup dump all come from the rows below, so an option cannot be documented
 * without being validated, or dumped without being redacted. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

enum opt_type { OPT_STR, OPT_U64, OPT_UINT, OPT_FLAG, OPT_LISTEN, OPT_TOKEN_PIN };
enum { OPT_SECRET = 1 }; /* value names a secret: dump only whether it is set */

struct opt {
    const char *name;
    enum opt_type type;
    size_t offset;
    uint64_t min, max;
    const char *def; /* default, as it would be typed */
    int flags;
    const char *help;
};

#define F(field) offsetof(struct p11n_config, field)
#define MiB (1024u * 1024u)

static const struct opt opts[] = {
    {"listen", OPT_LISTEN, 0, 0, 0, "127.0.0.1:9091", 0,
     "HOST:PORT or unix:/path to listen on; repeatable; port 0 picks a free port"},
    {"module", OPT_STR, F(module), 0, 0, "/usr/lib/softhsm/libsofthsm2.so", 0, "PKCS#11 module to load"},
    {"workers", OPT_UINT, F(workers), 1, 1024, NULL, 0, "threads that call the HSM (default: number of cores)"},
    {"io-threads", OPT_UINT, F(io_threads), 1, 256, NULL, 0,
     "event-loop threads serving connections (default: number of cores)"},
    {"no-inline", OPT_FLAG, F(no_inline), 0, 0, NULL, 0,
     "never run an HSM call on an event-loop thread, even an idle one (for HSMs with slow calls)"},
    {"max-frame", OPT_U64, F(max_frame), 64, 64 * MiB, "1048576", 0, "largest frame accepted, bytes"},
    {"max-batch", OPT_U64, F(max_batch), 1, 65536, "256", 0, "most inputs in one request"},
    {"max-inflight", OPT_U64, F(max_inflight), 1, 65536, "128", 0,
     "unanswered requests per connection before reading pauses"},
    {"max-conns", OPT_U64, F(max_conns), 1, 1000000, "10000", 0, "open connections before new ones get BUSY"},
    {"idle-timeout", OPT_U64, F(idle_timeout_s), 1, 86400, "30", 0,
     "seconds a partial frame may wait for its next byte"},
    {"drain-timeout", OPT_U64, F(drain_timeout_s), 1, 86400, "30", 0,
     "seconds to finish requests in flight after SIGTERM before giving up"},
    {"log-level", OPT_STR, F(log_level), 0, 0, "info", 0, "error, warn, info or debug"},
    {"insecure", OPT_FLAG, F(insecure), 0, 0, NULL, 0, "allow plaintext on a non-loopback address"},
    {"tls-cert", OPT_STR, F(tls_cert), 0, 0, NULL, 0, "server certificate (PEM); enables TLS 1.3 on TCP"},
    {"tls-key", OPT_STR, F(tls_key), 0, 0, NULL, OPT_SECRET, "server private key (PEM)"},
    {"tls-ca", OPT_STR, F(tls_ca), 0, 0, NULL, 0, "CA for client certificates; makes them required"},
    {"acl", OPT_STR, F(acl_file), 0, 0, NULL, 0, "identity-to-token rules (PROTOCOL.md section 7)"},
    {"token-pin", OPT_TOKEN_PIN, 0, 0, 0, NULL, OPT_SECRET,
     "LABEL=FILE: the server logs in to LABEL with the PIN in FILE; repeatable"},
    {"throttle-burst", OPT_U64, F(throttle_burst), 1, 1000000, "100", 0,
     "wrong PINs a client may make on a token before THROTTLED"},
    {"throttle-rate", OPT_U64, F(throttle_rate), 1, 1000000, "10", 0,
     "wrong PINs a client regains on a token per --throttle-period (sustained guessing limit)"},
    {"throttle-period", OPT_U64, F(throttle_period_s), 1, 3600, "1", 0, "seconds over which --throttle-rate applies"},
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

static void usage(FILE *f)
{
    fprintf(f, "usage: p11netd [OPTIONS]\n\nThe p11net server: a PKCS#11 module on the network.\n\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        char left[64];
        const char *arg = opts[i].type == OPT_FLAG ? "" : opts[i].type == OPT_TOKEN_PIN ? " LABEL=FILE" : " VALUE";
        snprintf(left, sizeof(left), "--%s%s", opts[i].name, arg);
        fprintf(f, "  %-28s %s", left, opts[i].help);
        if (opts[i].def) fprintf(f, " [%s]", opts[i].def);
        fputc('\n', f);
    }
    fprintf(f, "  %-28s %s\n  %-28s %s\n", "--help", "show this help", "--version", "show the version");
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!*s || *s == '-') return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static p11n_rc apply(struct p11n_config *cfg, const struct opt *o, const char *val)
{
    char *base = (char *)cfg;
    uint64_t v;

    switch (o->type) {
    case OPT_STR:
        *(const char **)(base + o->offset) = val;
        return P11N_OK;
    case OPT_FLAG:
        *(int *)(base + o->offset) = 1;
        return P11N_OK;
    case OPT_U64:
    case OPT_UINT:
        if (parse_u64(val, o->min, o->max, &v) != 0) {
            fprintf(stderr, "p11netd: --%s needs a whole number from %llu to %llu, not '%s'\n", o->name,
                    (unsigned long long)o->min, (unsigned long long)o->max, val);
            return P11N_E_USAGE;
        }
        if (o->type == OPT_UINT)
            *(unsigned *)(base + o->offset) = (unsigned)v;
        else
            *(uint64_t *)(base + o->offset) = v;
        return P11N_OK;
    case OPT_LISTEN:
        if (cfg->n_listen == P11N_MAX_LISTEN) {
            fprintf(stderr, "p11netd: at most %d --listen addresses\n", P11N_MAX_LISTEN);
            return P11N_E_USAGE;
        }
        cfg->listen[cfg->n_listen++] = val;
        return P11N_OK;
    case OPT_TOKEN_PIN: {
        const char *eq = strchr(val, '=');
        struct p11n_token_pin_file *tp;
        if (!eq || eq == val || !eq[1] || eq - val > 32) {
            fprintf(stderr, "p11netd: --token-pin needs LABEL=FILE (label of at most 32 bytes)\n");
            return P11N_E_USAGE;
        }
        if (cfg->n_token_pins == P11N_MAX_TOKEN_PINS) {
            fprintf(stderr, "p11netd: at most %d --token-pin options\n", P11N_MAX_TOKEN_PINS);
            return P11N_E_USAGE;
        }
        tp = &cfg->token_pins[cfg->n_token_pins++];
        tp->label = strndup(val, (size_t)(eq - val));
        tp->path = strdup(eq + 1);
        P11N_ENSURE(tp->label && tp->path, P11N_E_NOMEM);
        return P11N_OK;
    }
    }
    return P11N_E_USAGE;
}

p11n_rc p11n_config_parse(struct p11n_config *cfg, int argc, char **argv)
{
    struct option lopts[N_OPTS + 3];
    long nproc;
    int c, idx;

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_OPTS; i++) {
        lopts[i].name = opts[i].name;
        lopts[i].has_arg = opts[i].type == OPT_FLAG ? no_argument : required_argument;
        lopts[i].flag = NULL;
        lopts[i].val = 0x100 + (int)i;
    }
    lopts[N_OPTS] = (struct option){"help", no_argument, NULL, 'h'};
    lopts[N_OPTS + 1] = (struct option){"version", no_argument, NULL, 'V'};
    lopts[N_OPTS + 2] = (struct option){NULL, 0, NULL, 0};

    optind = 1;
    while ((c = getopt_long(argc, argv, "hV", lopts, &idx)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return P11N_E_CLOSED;
        }
        if (c == 'V') {
            printf("p11netd %s\n", P11N_VERSION);
            return P11N_E_CLOSED;
        }
        if (c < 0x100) {
            fprintf(stderr, "Try 'p11netd --help'.\n");
            return P11N_E_USAGE;
        }
        P11N_TRY(apply(cfg, &opts[c - 0x100], optarg));
    }
    if (optind < argc) {
        fprintf(stderr, "p11netd: unexpected argument '%s'\n", argv[optind]);
        return P11N_E_USAGE;
    }
    /* Defaults for what was not given. */
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];
        if (!o->def) continue;
        if (o->type == OPT_LISTEN && cfg->n_listen == 0) P11N_TRY(apply(cfg, o, o->def));
        if (o->type == OPT_STR && !*(const char **)((char *)cfg + o->offset)) P11N_TRY(apply(cfg, o, o->def));
        if (o->type == OPT_U64 && !*(uint64_t *)((char *)cfg + o->offset)) P11N_TRY(apply(cfg, o, o->def));
    }
    nproc = sysconf(_SC_NPROCESSORS_ONLN);
    if (!cfg->workers) cfg->workers = nproc > 0 ? (unsigned)nproc : 1;
    if (!cfg->io_threads) cfg->io_threads = nproc > 0 ? (unsigned)nproc : 1;
    if (p11n_log_level_parse(cfg->log_level) < 0) {
        fprintf(stderr, "p11netd: --log-level must be error, warn, info or debug\n");
        return P11N_E_USAGE;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        fprintf(stderr, "p11netd: --tls-cert and --tls-key go together\n");
        return P11N_E_USAGE;
    }
    if (cfg->tls_ca && !cfg->tls_cert) {
        fprintf(stderr, "p11netd: --tls-ca needs --tls-cert and --tls-key\n");
        return P11N_E_USAGE;
    }
    return P11N_OK;
}

void p11n_config_log(const struct p11n_config *cfg)
{
    const char *base = (const char *)cfg;
    char line[900];
    size_t n = 0;

    for (size_t i = 0; i < N_OPTS && n < sizeof(line); i++) {
        const struct opt *o = &opts[i];
        int w = 0;
        size_t room = sizeof(line) - n;
        switch (o->type) {
        case OPT_STR: {
            const char *v = *(const char *const *)(base + o->offset);
            if (v) w = snprintf(line + n, room, " %s=%s", o->name, o->flags & OPT_SECRET ? "(set)" : v);
            break;
        }
        case OPT_U64:
            w = snprintf(line + n, room, " %s=%llu", o->name,
                         (unsigned long long)*(const uint64_t *)(base + o->offset));
            break;
        case OPT_UINT:
            w = snprintf(line + n, room, " %s=%u", o->name, *(const unsigned *)(base + o->offset));
            break;
        case OPT_FLAG:
            w = snprintf(line + n, room, " %s=%d", o->name, *(const int *)(base + o->offset));
            break;
        case OPT_LISTEN:
            for (size_t k = 0; k < cfg->n_listen && n + (size_t)w < sizeof(line); k++)
                w += snprintf(line + n + w, sizeof(line) - n - (size_t)w, " listen=%s", cfg->listen[k]);
            break;
        case OPT_TOKEN_PIN:
            /* The label is not secret; the file's path and content stay out of logs. */
            for (size_t k = 0; k < cfg->n_token_pins && n + (size_t)w < sizeof(line); k++)
                w += snprintf(line + n + w, sizeof(line) - n - (size_t)w, " token-pin=%s", cfg->token_pins[k].label);
            break;
        }
        if (w > 0) n += (size_t)w;
    }
    if (n >= sizeof(line)) n = sizeof(line) - 1;
    line[n] = 0;
    p11n_log(P11N_LOG_INFO, "config%s", line);
}

void p11n_config_cleanup(struct p11n_config *cfg)
{
    for (size_t i = 0; i < cfg->n_token_pins; i++) {
        free(cfg->token_pins[i].label);
        free(cfg->token_pins[i].path);
    }
    cfg->n_token_pins = 0;
}
