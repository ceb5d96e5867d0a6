/* The one-shot subcommands: ping, list, sign, verify, encrypt, decrypt. Each
 * parses its options, makes one blocking libp11net call and prints the result.
 * Inputs come from operands (one batch item each), --in FILE, or stdin; file and
 * stdin inputs are raw bytes. Outputs are base64 lines, or raw bytes with --out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "cliopt.h"
#include "cmds.h"

/* Inputs above the server's default --max-frame fail there anyway; this only
 * keeps a mistaken `--in /dev/zero` from eating memory. */
#define INPUT_MAX (64u << 20)
#define MAX_INPUTS 256

struct io_opts {
    const char *in, *out, *sig, *sig_file;
};

enum { OPT_IN = 0x200, OPT_OUT, OPT_SIG, OPT_SIG_FILE };

static int io_opt(void *ctx, int opt, const char *arg)
{
    struct io_opts *io = ctx;
    switch (opt) {
    case OPT_IN: io->in = arg; return 0;
    case OPT_OUT: io->out = arg; return 0;
    case OPT_SIG: io->sig = arg; return 0;
    case OPT_SIG_FILE: io->sig_file = arg; return 0;
    }
    return -1;
}

static const struct option io_long[] = {
    {"in", required_argument, NULL, OPT_IN},
    {"out", required_argument, NULL, OPT_OUT},
    {NULL, 0, NULL, 0},
};
static const struct option verify_long[] = {
    {"in", required_argument, NULL, OPT_IN},
    {"sig", required_argument, NULL, OPT_SIG},
    {"sig-file", required_argument, NULL, OPT_SIG_FILE},
    {NULL, 0, NULL, 0},
};

#define IO_HELP                                                                                                \
    "  --in FILE            read one input from FILE ('-': stdin) as raw bytes\n"                              \
    "  --out FILE           write the (single) result to FILE as raw bytes instead of printing it\n"

/* The inputs of a request: owned buffers and the views handed to the library. */
struct inputs {
    struct p11n_buf bufs[MAX_INPUTS];
    p11net_data data[MAX_INPUTS];
    size_t n;
    int raw; /* came from a file or stdin */
};

static void inputs_cleanup(struct inputs *in)
{
    for (size_t i = 0; i < in->n; i++) p11n_buf_cleanup(&in->bufs[i]);
    in->n = 0;
}

static int add_input(struct inputs *in, struct p11n_slice s, int decode_b64, int encode_b64)
{
    struct p11n_buf *b = &in->bufs[in->n];
    p11n_rc rc;

    if (in->n == MAX_INPUTS) {
        fprintf(stderr, "p11net: at most %d inputs\n", MAX_INPUTS);
        return -1;
    }
    memset(b, 0, sizeof(*b));
    rc = p11n_buf_reserve(b, 1, SIZE_MAX); /* non-NULL even when empty */
    if (rc == P11N_OK)
        rc = decode_b64 ? p11n_b64_decode(s, b) : encode_b64 ? p11n_b64_encode(s, b) : p11n_buf_append(b, s, SIZE_MAX);
    in->n++;
    if (rc != P11N_OK) {
        fprintf(stderr, "p11net: input %zu: %s\n", in->n, decode_b64 ? "not valid base64" : "out of memory");
        return -1;
    }
    in->data[in->n - 1].p = b->data;
    in->data[in->n - 1].len = b->len;
    return 0;
}

/* Collects the inputs: operands argv[first..], or --in FILE, or stdin.
 * decode_b64: operands are base64 (--binary) and become raw bytes.
 * encode_b64: the raw bytes of a file must travel as base64 text (decrypt). */
static int gather_inputs(struct inputs *in, const char *file, int argc, char **argv, int first, int decode_b64,
                         int encode_b64)
{
    memset(in, 0, sizeof(*in));
    if (file && first < argc) {
        fprintf(stderr, "p11net: give DATA operands or --in, not both\n");
        return -1;
    }
    if (file || first == argc) {
        struct p11n_buf raw = {0};
        int rc = p11n_cli_read_file(file ? file : "-", &raw, INPUT_MAX);
        if (rc == 0) rc = add_input(in, p11n_buf_slice(&raw), 0, encode_b64);
        p11n_buf_cleanup(&raw);
        in->raw = 1;
        return rc;
    }
    for (int i = first; i < argc; i++)
        if (add_input(in, p11n_slice_of(argv[i], strlen(argv[i])), decode_b64, 0) < 0) return -1;
    return 0;
}

static int write_file(const char *path, const void *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "p11net: %s: %s\n", path, strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    return 0;
}

/* Prints every item of r, or writes the single item to io->out (base64-decoded
 * when b64). */
static int emit(const p11net_reply *r, const char *out, int b64)
{
    if (!out) {
        for (size_t i = 0; i < p11net_reply_count(r); i++) printf("%s\n", p11net_reply_item(r, i));
        return fflush(stdout) == 0 ? 0 : -1;
    }
    if (p11net_reply_count(r) != 1) {
        fprintf(stderr, "p11net: --out takes exactly one result\n");
        return -1;
    }
    if (b64) {
        unsigned char *bytes;
        size_t len;
        int rc;
        if (p11net_reply_decode(r, 0, &bytes, &len) != P11NET_OK) {
            fprintf(stderr, "p11net: the server's result is not base64\n");
            return -1;
        }
        rc = write_file(out, bytes, len);
        p11net_free(bytes, len);
        return rc;
    }
    return write_file(out, p11net_reply_item(r, 0), strlen(p11net_reply_item(r, 0)));
}

static int fail(const p11net_error *err)
{
    fprintf(stderr, "p11net: %s\n", err->message);
    return P11N_EXIT_FAIL;
}

static int need_target(const struct p11n_cliopts *o, const char *cmd)
{
    if (!o->have_slot && !o->token) {
        fprintf(stderr, "p11net %s: --slot or --token is required\n", cmd);
        return -1;
    }
    if (!o->have_pin) {
        fprintf(stderr, "p11net %s: a PIN is required (--pin, --pin-file or P11NET_PIN)\n", cmd);
        return -1;
    }
    return 0;
}

int p11n_cmd_ping(int argc, char **argv)
{
    static const struct p11n_cli_cmd cmd = {"ping", "[OPTIONS]", "Sends a ping and prints the reply.", NULL, NULL, "", NULL};
    struct p11n_cliopts o = {0};
    p11net_client *c;
    p11net_error err;
    int first = p11n_cli_parse(argc, argv, &cmd, &o, NULL), st = P11N_EXIT_OK;

    if (first < 0 || first != argc) {
        p11n_cliopts_cleanup(&o);
        if (first >= 0) fprintf(stderr, "p11net ping: takes no operands\n");
        return first == -1 ? P11N_EXIT_OK : P11N_EXIT_USAGE;
    }
    if (!(c = p11n_cli_connect(&o)))
        st = P11N_EXIT_FAIL;
    else if (p11net_ping(c, &err) != P11NET_OK)
        st = fail(&err);
    else
        printf("pong from %s\n", o.server);
    p11net_close(c);
    p11n_cliopts_cleanup(&o);
    return st;
}

int p11n_cmd_list(int argc, char **argv)
{
    static const struct p11n_cli_cmd cmd = {
        "list", "[OPTIONS]",
        "Lists the tokens; with --slot/--token and a PIN, lists that token's keys.", NULL, NULL, "", NULL};
    struct p11n_cliopts o = {0};
    p11net_client *c = NULL;
    p11net_reply *r = NULL;
    p11net_error err;
    p11net_target t;
    int first = p11n_cli_parse(argc, argv, &cmd, &o, NULL), st = P11N_EXIT_OK, rc;

    if (first < 0 || first != argc || (o.have_pin && !o.have_slot && !o.token)) {
        if (first >= 0) fprintf(stderr, "p11net list: takes no operands; listing keys needs --slot or --token\n");
        p11n_cliopts_cleanup(&o);
        return first == -1 ? P11N_EXIT_OK : P11N_EXIT_USAGE;
    }
    p11n_cliopts_target(&o, &t);
    if (!(c = p11n_cli_connect(&o))) {
        st = P11N_EXIT_FAIL;
    } else {
        rc = o.have_pin ? p11net_list_keys(c, &t, &r, &err) : p11net_list_tokens(c, &r, &err);
        st = rc != P11NET_OK ? fail(&err) : emit(r, NULL, 0) < 0 ? P11N_EXIT_FAIL : P11N_EXIT_OK;
    }
    p11net_reply_free(r);
    p11net_close(c);
    p11n_cliopts_cleanup(&o);
    return st;
}

/* sign, encrypt and decrypt: the same flow with different input and output encodings. */
static int crypt_cmd(int argc, char **argv, const struct p11n_cli_cmd *cmd, p11net_op op)
{
    struct p11n_cliopts o = {0};
    struct io_opts io = {0};
    struct inputs *in = calloc(1, sizeof(*in));
    p11net_client *c = NULL;
    p11net_reply *r = NULL;
    p11net_error err;
    p11net_target t;
    int first = in ? p11n_cli_parse(argc, argv, cmd, &o, &io) : -P11N_EXIT_USAGE, st = P11N_EXIT_USAGE, rc;
    int decrypt = op == P11NET_OP_DECRYPT;

    if (!in || first < 0) {
        st = first == -1 ? P11N_EXIT_OK : P11N_EXIT_USAGE;
        goto out;
    }
    if (need_target(&o, cmd->name) < 0) goto out;
    /* Decrypt: operands are base64 ciphertexts already; a file holds raw ciphertext. */
    if (gather_inputs(in, io.in, argc, argv, first, !decrypt && o.binary, decrypt) < 0) goto out;
    p11n_cliopts_target(&o, &t);
    if (decrypt)
        t.binary = o.binary || io.out; /* plaintext as base64 so any bytes survive to --out */
    else
        t.binary = o.binary || in->raw;
    st = P11N_EXIT_FAIL;
    if (!(c = p11n_cli_connect(&o))) goto out;
    rc = op == P11NET_OP_SIGN      ? p11net_sign(c, &t, in->data, in->n, &r, &err)
         : op == P11NET_OP_ENCRYPT ? p11net_encrypt(c, &t, in->data, in->n, &r, &err)
                                   : p11net_decrypt(c, &t, in->data, in->n, &r, &err);
    if (rc != P11NET_OK)
        st = fail(&err);
    else
        st = emit(r, io.out, !decrypt || t.binary) < 0 ? P11N_EXIT_FAIL : P11N_EXIT_OK;
out:
    p11net_reply_free(r);
    p11net_close(c);
    if (in) inputs_cleanup(in);
    free(in);
    p11n_cliopts_cleanup(&o);
    return st;
}

int p11n_cmd_sign(int argc, char **argv)
{
    static const struct p11n_cli_cmd cmd = {
        "sign", "--slot ID|--token LABEL [OPTIONS] [DATA...]",
        "Signs each DATA (a batch), or the bytes of --in FILE or stdin; prints base64 signatures.",
        IO_HELP, io_long, "", io_opt};
    return crypt_cmd(argc, argv, &cmd, P11NET_OP_SIGN);
}

int p11n_cmd_encrypt(int argc, char **argv)
{
    static const struct p11n_cli_cmd cmd = {
        "encrypt", "--slot ID|--token LABEL [OPTIONS] [DATA...]",
        "Encrypts each DATA (a batch), or the bytes of --in FILE or stdin; prints base64 ciphertexts.",
        IO_HELP, io_long, "", io_opt};
    return crypt_cmd(argc, argv, &cmd, P11NET_OP_ENCRYPT);
}

int p11n_cmd_decrypt(int argc, char **argv)
{
    static const struct p11n_cli_cmd cmd = {
        "decrypt", "--slot ID|--token LABEL [OPTIONS] [BASE64-CIPHERTEXT...]",
        "Decrypts each base64 ciphertext (a batch), or the raw ciphertext in --in FILE or stdin;\n"
        "prints the plaintexts (base64 with --binary).",
        IO_HELP, io_long, "", io_opt};
    return crypt_cmd(argc, argv, &cmd, P11NET_OP_DECRYPT);
}

int p11n_cmd_verify(int argc, char **argv)
{
    static const struct p11n_cli_cmd cmd = {
        "verify", "--slot ID|--token LABEL (--sig BASE64|--sig-file FILE) [OPTIONS] [DATA]",
        "Verifies a signature over DATA (or the bytes of --in FILE or stdin). Prints 'valid' and\n"
        "exits 0, or prints why not and exits 1.",
        "  --in FILE            read the message from FILE ('-': stdin) as raw bytes\n"
        "  --sig BASE64         the signature\n"
        "  --sig-file FILE      the signature as raw bytes\n",
        verify_long, "", io_opt};
    struct p11n_cliopts o = {0};
    struct io_opts io = {0};
    struct inputs *in = calloc(1, sizeof(*in));
    struct p11n_buf sig = {0}, raw = {0};
    p11net_client *c = NULL;
    p11net_error err;
    p11net_target t;
    int first = in ? p11n_cli_parse(argc, argv, &cmd, &o, &io) : -P11N_EXIT_USAGE, st = P11N_EXIT_USAGE;

    if (!in || first < 0) {
        st = first == -1 ? P11N_EXIT_OK : P11N_EXIT_USAGE;
        goto out;
    }
    if (need_target(&o, "verify") < 0) goto out;
    if (!io.sig == !io.sig_file || argc - first > 1) {
        fprintf(stderr, "p11net verify: give one DATA and exactly one of --sig or --sig-file\n");
        goto out;
    }
    if (gather_inputs(in, io.in, argc, argv, first, o.binary, 0) < 0) goto out;
    if (io.sig_file) {
        if (p11n_cli_read_file(io.sig_file, &raw, INPUT_MAX) < 0 || p11n_b64_encode(p11n_buf_slice(&raw), &sig) != P11N_OK)
            goto out;
    } else if (p11n_buf_append(&sig, p11n_slice_of(io.sig, strlen(io.sig) + 1), SIZE_MAX) != P11N_OK) {
        goto out;
    }
    p11n_cliopts_target(&o, &t);
    t.binary = o.binary || in->raw;
    st = P11N_EXIT_FAIL;
    if (!(c = p11n_cli_connect(&o))) goto out;
    if (p11net_verify(c, &t, in->data[0], (const char *)sig.data, &err) != P11NET_OK) {
        st = fail(&err);
    } else {
        printf("valid\n");
        st = P11N_EXIT_OK;
    }
out:
    p11net_close(c);
    if (in) inputs_cleanup(in);
    free(in);
    p11n_buf_cleanup(&sig);
    p11n_buf_cleanup(&raw);
    p11n_cliopts_cleanup(&o);
    return st;
}
