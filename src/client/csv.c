#include "csv.h"

#include <string.h>
#include <strings.h>

static const char *const op_names[] = {
    [P11NET_OP_PING] = "Ping", [P11NET_OP_LIST] = "List", [P11NET_OP_ENCRYPT] = "Encrypt",
    [P11NET_OP_SIGN] = "Sign", [P11NET_OP_DECRYPT] = "Decrypt", [P11NET_OP_VERIFY] = "Verify",
};

const char *p11n_csv_op_name(p11net_op op)
{
    return (unsigned)op <= P11NET_OP_VERIFY ? op_names[op] : "?";
}

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static struct p11n_slice trim(struct p11n_slice s)
{
    while (s.len && is_space(s.p[0])) s.p++, s.len--;
    while (s.len && is_space(s.p[s.len - 1])) s.len--;
    return s;
}

/* Cuts the field before the next comma off *rest; 0 when there is no comma. */
static int next_field(struct p11n_slice *rest, struct p11n_slice *field)
{
    const uint8_t *comma = rest->len ? memchr(rest->p, ',', rest->len) : NULL;
    if (!comma) return 0;
    field->p = rest->p;
    field->len = (size_t)(comma - rest->p);
    rest->len -= field->len + 1;
    rest->p = comma + 1;
    return 1;
}

static int parse_op(struct p11n_slice s, p11net_op *op)
{
    for (size_t i = 0; i <= P11NET_OP_VERIFY; i++) {
        if (strlen(op_names[i]) == s.len && strncasecmp((const char *)s.p, op_names[i], s.len) == 0) {
            *op = (p11net_op)i;
            return 1;
        }
    }
    return 0;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies a label, percent-decoding when `pct`, into out (bounded). */
static int set_label(struct p11n_slice s, int pct, char out[P11N_CSV_LABEL_MAX + 1], const char **why)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.p[i];
        if (pct && c == '%') {
            int hi = i + 2 < s.len ? hexval(s.p[i + 1]) : -1, lo = hi >= 0 ? hexval(s.p[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *why = "bad percent-encoding in pkcs11: URI";
                return 0;
            }
            c = (uint8_t)(hi << 4 | lo);
            i += 2;
        }
        if (c == 0 || n == P11N_CSV_LABEL_MAX) {
            *why = "token label longer than 32 bytes or holding NUL";
            return 0;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return 1;
}

/* pkcs11:token=LABEL[;other=...]: only the token attribute selects a slot. */
static int parse_uri(struct p11n_slice s, struct p11n_csv_line *out, const char **why)
{
    struct p11n_slice rest = {s.p + 7, s.len - 7}, attr;
    while (rest.len) {
        const uint8_t *semi = memchr(rest.p, ';', rest.len);
        attr.p = rest.p;
        attr.len = semi ? (size_t)(semi - rest.p) : rest.len;
        rest.p += attr.len + (semi ? 1 : 0);
        rest.len -= attr.len + (semi ? 1 : 0);
        if (attr.len >= 6 && memcmp(attr.p, "token=", 6) == 0) {
            out->slot_kind = P11N_CSV_SLOT_LABEL;
            return set_label(p11n_slice_of(attr.p + 6, attr.len - 6), 1, out->label, why);
        }
    }
    *why = "pkcs11: URI without token=";
    return 0;
}

static int parse_slot(struct p11n_slice s, struct p11n_csv_line *out, const char **why)
{
    size_t i;
    uint64_t v = 0;

    out->slot_text = s;
    if (s.len == 0) {
        out->slot_kind = P11N_CSV_SLOT_NONE;
        return 1;
    }
    if (s.len >= 7 && strncasecmp((const char *)s.p, "pkcs11:", 7) == 0) return parse_uri(s, out, why);
    for (i = 0; i < s.len && s.p[i] >= '0' && s.p[i] <= '9'; i++) {
        if (v > (UINT64_MAX - (s.p[i] - '0')) / 10) {
            *why = "slot id out of range";
            return 0;
        }
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    if (i == s.len) {
        out->slot_kind = P11N_CSV_SLOT_ID;
        out->slot = v;
        return 1;
    }
    out->slot_kind = P11N_CSV_SLOT_LABEL;
    return set_label(s, 0, out->label, why);
}

enum p11n_csv_result p11n_csv_parse_line(struct p11n_slice line, struct p11n_csv_line *out, const char **why)
{
    struct p11n_slice rest, type, slot, pin;
    struct p11n_csv_line l;

    if (line.len && line.p[line.len - 1] == '\r') line.len--;
    rest = trim(line);
    if (rest.len == 0 || rest.p[0] == '#') return P11N_CSV_SKIP;
    rest = line;
    memset(&l, 0, sizeof(l));
    if (!next_field(&rest, &type) || !next_field(&rest, &slot) || !next_field(&rest, &pin)) {
        *why = "expected Type,Slot,PIN,Data (at least 3 commas)";
        return P11N_CSV_ERROR;
    }
    if (!parse_op(trim(type), &l.op)) {
        *why = "unknown Type (expected Encrypt, Decrypt, Sign, Verify, List or Ping)";
        return P11N_CSV_ERROR;
    }
    if (!parse_slot(trim(slot), &l, why)) return P11N_CSV_ERROR;
    if (l.op >= P11NET_OP_ENCRYPT && l.slot_kind == P11N_CSV_SLOT_NONE) {
        *why = "this Type needs a Slot";
        return P11N_CSV_ERROR;
    }
    if (l.op == P11NET_OP_LIST && l.slot_kind != P11N_CSV_SLOT_NONE && pin.len == 0) {
        *why = "List with a Slot lists its keys and needs a PIN";
        return P11N_CSV_ERROR;
    }
    l.pin = pin;
    l.data = rest;
    *out = l;
    return P11N_CSV_REQUEST;
}
