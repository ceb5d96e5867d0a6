/* The requests file of `p11net run` (PROTOCOL.md section 6): one
 * `Type,Slot,PIN,Data` line per request. The parser is one pure function over one
 * line, so it can be unit-tested and fuzzed without files or sockets. */
#ifndef P11N_CLIENT_CSV_H
#define P11N_CLIENT_CSV_H

#include <stdint.h>

#include "buf.h"
#include "p11net/client.h"

/* PKCS#11 token labels are 32 bytes; a percent-encoded URI label decodes to at most that. */
#define P11N_CSV_LABEL_MAX 32

enum p11n_csv_result { P11N_CSV_SKIP, P11N_CSV_REQUEST, P11N_CSV_ERROR };

enum p11n_csv_slot { P11N_CSV_SLOT_NONE, P11N_CSV_SLOT_ID, P11N_CSV_SLOT_LABEL };

struct p11n_csv_line {
    p11net_op op;
    enum p11n_csv_slot slot_kind;
    uint64_t slot;                        /* P11N_CSV_SLOT_ID */
    char label[P11N_CSV_LABEL_MAX + 1];   /* P11N_CSV_SLOT_LABEL, NUL-terminated */
    struct p11n_slice slot_text;          /* the Slot field as written (for messages, matching) */
    struct p11n_slice pin;                /* views into the line: never printed */
    struct p11n_slice data;
};

/* Parses one line (without its '\n'; a trailing '\r' is ignored).
 *  P11N_CSV_SKIP: blank or '#' comment line; *out untouched.
 *  P11N_CSV_REQUEST: *out filled; its slices point into line.
 *  P11N_CSV_ERROR: *why is a static message (unknown type, missing field,
 *                  bad slot). */
enum p11n_csv_result p11n_csv_parse_line(struct p11n_slice line, struct p11n_csv_line *out, const char **why);

/* "Encrypt", "Sign", ... as the file spells them canonically. */
const char *p11n_csv_op_name(p11net_op op);

#endif
