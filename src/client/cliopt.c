#include "cliopt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define DEFAULT_SERVER "127.0.0.1:9091"
/* Inputs and PIN files are read whole; the server takes frames of 1 MiB by default. */
#define PIN_FILE_MAX 4096

enum {
    OPT_SERVER = 0x100, OPT_PIN, OPT_PIN_FILE, OPT_SLOT, OPT_TOKEN, OPT_KEY, OPT_MECH, OPT_BINARY,
    OPT_TLS_CA, OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_SERVERNAME, OPT_TIMEOUT, OPT_HELP = 'h',
};

static const struct option common_opts[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"pin", required_argument, NULL, OPT_PIN},
    {"pin-file", required_argument, NULL, OPT_PIN_FILE},
    {"slot", required_argument, NULL, OPT_SLOT},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"key", required_argument, NULL, OPT_KEY},
    {"mech", required_argument, NULL, OPT_MECH},
    {"binary", no_argument, NULL, OPT_BINARY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-servername", required_argument, NULL, OPT_TLS_SERVERNAME},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"help", no_argument, NULL, OPT_HELP},
};
#define N_COMMON (sizeof(common_opts) / sizeof(common_opts[0]))

static const char common_help[] =
    "Common options:\n"
    "  --server HOST:PORT|unix:/path  server (default $P11NET_SERVER or " DEFAULT_SERVER ")\n"
    "  --pin PIN            user PIN (prefer --pin-file or $P11NET_PIN: argv is visible)\n"
    "  --pin-file FILE      read the PIN from FILE (trailing newline stripped)\n"
    "  --slot ID | --token LABEL   which token\n"
    "  --key LABEL|URI      key label or pkcs11: URI (default: the server's first key)\n"
    "  --mech NAME          rsa-pkcs, sha256-rsa-pkcs, sha256-rsa-pkcs-pss,\n"
    "                       rsa-pkcs-oaep-sha256, ecdsa-sha256, eddsa\n"
    "  --binary             DATA arguments are base64 of binary data; decrypt prints base64\n"
    "  --timeout SECONDS    per-request timeout (default 30)\n"
    "  --tls-ca FILE, --tls-cert FILE, --tls-key FILE, --tls-servername NAME\n"
    "                       TLS 1.3: the server must have a certificate from the CA in\n"
    "                       --tls-ca (default: the system CAs) for the address's host\n"
    "                       or --tls-servername; --tls-cert/--tls-key for mutual TLS.\n"
    "                       Any --tls-* option turns TLS on.\n"
    "  -h, --help           this help\n";

static void usage(FILE *f, const struct p11n_cli_cmd *cmd)
{
    fprintf(f, "Usage: p11net %s %s\n%s\n", cmd->name, cmd->synopsis, cmd->about);
    if (cmd->extra_help) fprintf(f, "\nOptions:\n%s", cmd->extra_help);
    fprintf(f, "\n%s", common_help);
}

int p11n_cli_number(const char *opt, const char *arg, long min, long max, long *out)
{
    char *end = NULL;
    long v;
    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || !end || end == arg || *end || v < min || v > max) {
        fprintf(stderr, "p11net: %s: '%s' is not a number in [%ld, %ld]\n", opt, arg, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int p11n_cli_read_file(const char *path, struct p11n_buf *out, size_t limit)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    uint8_t chunk[16384];
    size_t n;
    int rc = 0;

    if (!f) {
        fprintf(stderr, "p11net: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (p11n_buf_append(out, p11n_slice_of(chunk, n), limit) != P11N_OK) {
            fprintf(stderr, "p11net: %s: larger than %zu bytes\n", path, limit);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "p11net: %s: read error\n", path);
        rc = -1;
    }
    if (f != stdin) fclose(f);
    return rc;
}

/* Stores a PIN with a NUL after it, so it can be handed to the library as a C string. */
static int set_pin(struct p11n_cliopts *o, const char *p, size_t len)
{
    if (len >= P11N_SECRET_MAX || memchr(p, 0, len) || p11n_secret_set(&o->pin, p, len) != P11N_OK) {
        fprintf(stderr, "p11net: PIN too long or holding a NUL byte\n");
        return -1;
    }
    o->pin.bytes[len] = '\0';
    o->have_pin = 1;
    return 0;
}

static int read_pin_file(struct p11n_cliopts *o, const char *path)
{
    struct p11n_buf b = {0};
    int rc = p11n_cli_read_file(path, &b, PIN_FILE_MAX);
    if (rc == 0) {
        size_t len = b.len;
        if (len && b.data[len - 1] == '\n') len--;
        if (len && b.data[len - 1] == '\r') len--;
        rc = set_pin(o, (const char *)b.data, len);
    }
    p11n_buf_cleanup(&b); /* wipes the PIN bytes */
    return rc;
}

static int common_opt(struct p11n_cliopts *o, int opt, char *arg, const char **pin_file)
{
    long v;
    switch (opt) {
    case OPT_SERVER: o->server = arg; return 0;
    case OPT_PIN: {
        int rc = set_pin(o, arg, strlen(arg));
        p11n_wipe_str(arg); /* keep it out of /proc/PID/cmdline from now on */
        return rc;
    }
    case OPT_PIN_FILE: *pin_file = arg; return 0;
    case OPT_SLOT: {
        char *end = NULL;
        errno = 0;
        o->slot = strtoull(arg, &end, 10);
        if (errno || !end || end == arg || *end || arg[0] == '-') {
            fprintf(stderr, "p11net: --slot: '%s' is not a slot id\n", arg);
            return -1;
        }
        o->have_slot = 1;
        return 0;
    }
    case OPT_TOKEN: o->token = arg; return 0;
    case OPT_KEY: o->key = arg; return 0;
    case OPT_MECH:
        if ((o->mech = p11net_mech_parse(arg)) < 0) {
            fprintf(stderr, "p11net: --mech: unknown mechanism '%s'\n", arg);
            return -1;
        }
        return 0;
    case OPT_BINARY: o->binary = 1; return 0;
    case OPT_TLS_CA: o->conn.tls_ca = arg; return 0;
    case OPT_TLS_CERT: o->conn.tls_cert = arg; return 0;
    case OPT_TLS_KEY: o->conn.tls_key = arg; return 0;
    case OPT_TLS_SERVERNAME: o->conn.tls_servername = arg; return 0;
    case OPT_TIMEOUT:
        if (p11n_cli_number("--timeout", arg, 1, 86400, &v) < 0) return -1;
        o->conn.timeout_ms = (int)(v * 1000);
        return 0;
    }
    return 1;
}

int p11n_cli_parse(int argc, char **argv, const struct p11n_cli_cmd *cmd, struct p11n_cliopts *o, void *ctx)
{
    struct option opts[64];
    size_t n = 0;
    char shorts[64];
    const char *pin_file = NULL, *env;
    int c;

    memset(o, 0, sizeof(*o));
    p11net_options_init(&o->conn);
    for (size_t i = 0; i < N_COMMON; i++) opts[n++] = common_opts[i];
    for (const struct option *e = cmd->extra; e && e->name && n < 63; e++) opts[n++] = *e;
    memset(&opts[n], 0, sizeof(opts[n]));
    snprintf(shorts, sizeof(shorts), "+h%s", cmd->extra_short ? cmd->extra_short : "");

    optind = 0; /* glibc: 0 also resets getopt's internal state (tests parse many times) */
    opterr = 1;
    while ((c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
        int r;
        if (c == OPT_HELP) {
            usage(stdout, cmd);
            return -1;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "Try 'p11net %s --help'.\n", cmd->name);
            return -P11N_EXIT_USAGE;
        }
        r = common_opt(o, c, optarg, &pin_file);
        if (r == 1) r = cmd->on_opt ? cmd->on_opt(ctx, c, optarg) : -1;
        if (r != 0) return -P11N_EXIT_USAGE;
    }
    if (o->have_slot && o->token) {
        fprintf(stderr, "p11net %s: give --slot or --token, not both\n", cmd->name);
        return -P11N_EXIT_USAGE;
    }
    if (pin_file && o->have_pin) {
        fprintf(stderr, "p11net %s: give --pin or --pin-file, not both\n", cmd->name);
        return -P11N_EXIT_USAGE;
    }
    if (pin_file && read_pin_file(o, pin_file) < 0) return -P11N_EXIT_USAGE;
    if (!o->have_pin && (env = getenv("P11NET_PIN")) != NULL && *env && set_pin(o, env, strlen(env)) < 0)
        return -P11N_EXIT_USAGE;
    if (!o->server) o->server = (env = getenv("P11NET_SERVER")) && *env ? env : DEFAULT_SERVER;
    return optind;
}

void p11n_cliopts_cleanup(struct p11n_cliopts *o)
{
    p11n_secret_cleanup(&o->pin);
    o->have_pin = 0;
}

void p11n_cliopts_target(const struct p11n_cliopts *o, p11net_target *t)
{
    memset(t, 0, sizeof(*t));
    t->slot = o->slot;
    t->token = o->token;
    t->pin = o->have_pin ? (const char *)o->pin.bytes : NULL;
    t->key = o->key;
    t->mech = (p11net_mech)o->mech;
    t->binary = o->binary;
}

p11net_client *p11n_cli_connect(const struct p11n_cliopts *o)
{
    p11net_client *c = NULL;
    p11net_error err;
    if (p11net_connect(o->server, &o->conn, &c, &err) != P11NET_OK) {
        fprintf(stderr, "p11net: %s\n", err.message);
        return NULL;
    }
    return c;
}
