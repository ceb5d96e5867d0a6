/* Command-line options shared by every p11net subcommand (PROTOCOL.md section
 * 6): --server, --pin/--pin-file/P11NET_PIN, --slot/--token, --key, --mech,
 * --binary, --tls-*, --timeout, --help; and the one getopt loop they all use, so
 * each subcommand only lists its own extra options. */
#ifndef P11N_CLIENT_CLIOPT_H
#define P11N_CLIENT_CLIOPT_H

#include <getopt.h>
#include <stdint.h>

#include "buf.h"
#include "p11net/client.h"
#include "secret.h"

/* Exit statuses of every subcommand. */
enum { P11N_EXIT_OK = 0, P11N_EXIT_FAIL = 1, P11N_EXIT_USAGE = 2 };

struct p11n_cliopts {
    const char *server;
    struct p11n_secret pin;   /* NUL-terminated inside bytes; wiped by p11n_cliopts_cleanup */
    int have_pin;
    int have_slot;
    uint64_t slot;
    const char *token;
    const char *key;
    int mech;
    int binary;
    p11net_options conn;      /* timeout and the TLS seam */
};

/* One subcommand's description for p11n_cli_parse. */
struct p11n_cli_cmd {
    const char *name;
    const char *synopsis;           /* e.g. "[OPTIONS] DATA..." */
    const char *about;              /* one paragraph */
    const char *extra_help;         /* the subcommand's own options, or NULL */
    const struct option *extra;     /* its own long options, {0} terminated, or NULL */
    const char *extra_short;        /* its own short options ("n:q"), or "" */
    /* Handles one of the subcommand's own options; 0 ok, -1 bad value (message printed). */
    int (*on_opt)(void *ctx, int opt, const char *arg);
};

/* Parses argv for cmd (argv[0] is the subcommand name). Fills o (call
 * p11n_cliopts_cleanup afterwards in every case), applies P11NET_SERVER and
 * P11NET_PIN, reads --pin-file. Returns the index of the first operand, or
 * -P11N_EXIT_USAGE after printing a message, or -1 after printing --help. */
int p11n_cli_parse(int argc, char **argv, const struct p11n_cli_cmd *cmd, struct p11n_cliopts *o, void *ctx);
void p11n_cliopts_cleanup(struct p11n_cliopts *o);
/* The request target from o (pointing into o: valid while o lives). */
void p11n_cliopts_target(const struct p11n_cliopts *o, p11net_target *t);
/* Connects as o says; prints the error and returns NULL on failure. */
p11net_client *p11n_cli_connect(const struct p11n_cliopts *o);
/* Sets *out from a decimal argument in [min, max]; -1 with a message otherwise. */
int p11n_cli_number(const char *opt, const char *arg, long min, long max, long *out);
/* Reads a whole file ("-": stdin) into out, at most limit bytes. 0 or -1 (message printed). */
int p11n_cli_read_file(const char *path, struct p11n_buf *out, size_t limit);

#endif
