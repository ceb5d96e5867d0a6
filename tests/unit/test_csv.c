/* The requests-file line parser (src/client/csv.c): the happy cases of
 * PROTOCOL.md section 6, and a table of hostile lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "csv.h"

static enum p11n_csv_result parse(const char *text, struct p11n_csv_line *l, const char **why)
{
    *why = NULL;
    return p11n_csv_parse_line(p11n_slice_of(text, strlen(text)), l, why);
}

static int slice_is(struct p11n_slice s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static void test_types_any_case(void **state)
{
    static const struct { const char *text; p11net_op op; } cases[] = {
        {"Encrypt,1,1234,x", P11NET_OP_ENCRYPT}, {"decrypt,1,1234,x", P11NET_OP_DECRYPT},
        {"SIGN,1,1234,x", P11NET_OP_SIGN},       {"vErIfY,1,1234,x", P11NET_OP_VERIFY},
        {"List,,,", P11NET_OP_LIST},             {"ping,,,", P11NET_OP_PING},
        {" Ping ,,,", P11NET_OP_PING},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct p11n_csv_line l;
        const char *why;
        assert_int_equal(parse(cases[i].text, &l, &why), P11N_CSV_REQUEST);
        assert_int_equal(l.op, cases[i].op);
    }
}

static void test_data_keeps_commas(void **state)
{
    struct p11n_csv_line l;
    const char *why;
    (void)state;
    assert_int_equal(parse("Encrypt,MyToken,1234,Hello, World, again\r", &l, &why), P11N_CSV_REQUEST);
    assert_int_equal(l.slot_kind, P11N_CSV_SLOT_LABEL);
    assert_string_equal(l.label, "MyToken");
    assert_true(slice_is(l.pin, "1234"));
    assert_true(slice_is(l.data, "Hello, World, again"));
    assert_true(slice_is(l.slot_text, "MyToken"));
}

static void test_slot_forms(void **state)
{
    struct p11n_csv_line l;
    const char *why;
    (void)state;
    assert_int_equal(parse("Sign,42,1234,x", &l, &why), P11N_CSV_REQUEST);
    assert_int_equal(l.slot_kind, P11N_CSV_SLOT_ID);
    assert_int_equal(l.slot, 42);
    assert_int_equal(parse("Sign,18446744073709551615,1,x", &l, &why), P11N_CSV_REQUEST);
    assert_true(l.slot == UINT64_MAX);
    /* An all-digit label needs the URI form. */
    assert_int_equal(parse("Sign,pkcs11:token=1234,1,x", &l, &why), P11N_CSV_REQUEST);
    assert_int_equal(l.slot_kind, P11N_CSV_SLOT_LABEL);
    assert_string_equal(l.label, "1234");
    assert_int_equal(parse("Sign,pkcs11:model=x;token=My%20Token;serial=1,1,x", &l, &why), P11N_CSV_REQUEST);
    assert_string_equal(l.label, "My Token");
    assert_int_equal(parse("List,,,", &l, &why), P11N_CSV_REQUEST);
    assert_int_equal(l.slot_kind, P11N_CSV_SLOT_NONE);
    assert_int_equal(parse("List,Token2,5678,", &l, &why), P11N_CSV_REQUEST);
    assert_true(slice_is(l.pin, "5678"));
    assert_int_equal(l.data.len, 0);
}

static void test_skipped(void **state)
{
    static const char *const lines[] = {"", "   ", "\r", "# comment", "  # indented comment, with commas,,,"};
    (void)state;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct p11n_csv_line l;
        const char *why;
        assert_int_equal(parse(lines[i], &l, &why), P11N_CSV_SKIP);
    }
}

static void test_hostile(void **state)
{
    static const char *const lines[] = {
        "Encrypt",                          /* no commas */
        "Encrypt,1,1234",                   /* missing Data field */
        "Encrypt,1",                        /* missing PIN and Data */
        "Frobnicate,1,1234,x",              /* unknown type */
        "Encrypt2,1,1234,x",                /* type with a suffix */
        ",1,1234,x",                        /* empty type */
        "Encrypt,,1234,x",                  /* needs a slot */
        "Verify,,1234,x",
        "Sign,18446744073709551616,1,x",    /* slot id overflow */
        "Sign,pkcs11:token=%zz,1,x",        /* bad percent-encoding */
        "Sign,pkcs11:token=%4,1,x",         /* truncated percent-encoding */
        "Sign,pkcs11:token=a%00b,1,x",      /* NUL in label */
        "Sign,pkcs11:model=x,1,x",          /* URI without token */
        "Sign,ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456,1,x", /* 33-byte label */
        "List,MyToken,,",                   /* key listing without PIN */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct p11n_csv_line l;
        const char *why;
        assert_int_equal(parse(lines[i], &l, &why), P11N_CSV_ERROR);
        assert_non_null(why);
    }
}

/* Lines are not NUL-terminated when parsed out of a file buffer. */
static void test_no_terminator(void **state)
{
    char buf[16];
    struct p11n_csv_line l;
    const char *why = NULL;
    (void)state;
    memcpy(buf, "Ping,,,XXXXXXXXX", 16);
    assert_int_equal(p11n_csv_parse_line(p11n_slice_of(buf, 7), &l, &why), P11N_CSV_REQUEST);
    assert_int_equal(l.data.len, 0);
    assert_string_equal(p11n_csv_op_name(P11NET_OP_DECRYPT), "Decrypt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_any_case), cmocka_unit_test(test_data_keeps_commas),
        cmocka_unit_test(test_slot_forms),     cmocka_unit_test(test_skipped),
        cmocka_unit_test(test_hostile),        cmocka_unit_test(test_no_terminator),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
