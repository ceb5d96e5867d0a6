/* p11net: the command-line client. Dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "cliopt.h"
#include "cmds.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *about;
} cmds[] = {
    {"ping", p11n_cmd_ping, "check that the server answers"},
    {"list", p11n_cmd_list, "list tokens, or with --pin the keys of a token"},
    {"sign", p11n_cmd_sign, "sign data"},
    {"verify", p11n_cmd_verify, "verify a signature"},
    {"encrypt", p11n_cmd_encrypt, "encrypt data"},
    {"decrypt", p11n_cmd_decrypt, "decrypt data"},
    {"run", p11n_cmd_run, "play a requests file with N concurrent clients"},
    {"bench", p11n_cmd_bench, "closed-loop load generator"},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: p11net COMMAND [OPTIONS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].about);
    fprintf(f, "\n'p11net COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return P11N_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return P11N_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("p11net %s\n", P11N_VERSION);
        return P11N_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(argv[1], cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "p11net: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return P11N_EXIT_USAGE;
}
