/* `p11net run` and `p11net bench` (src/client/run.c, bench.c) on their libuv
 * engine against the fake server of test_client_fake.c: counting of ok, failed
 * (server errors, mismatched Decrypt results, Decrypt/Verify whose earlier
 * request failed) and lost, replies matched when they come out of order, and
 * no hang when the server stalls or hangs up. The real server is covered by
 * tests/integration/client/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmds.h"
#include "test_client_fake.h"

static char csv_path[64], out_path[64];

static int setup(void **state)
{
    int fd;
    (void)state;
    snprintf(csv_path, sizeof(csv_path), "/tmp/p11net-run-XXXXXX");
    snprintf(out_path, sizeof(out_path), "/tmp/p11net-out-XXXXXX");
    if ((fd = mkstemp(csv_path)) < 0) return -1;
    close(fd);
    if ((fd = mkstemp(out_path)) < 0) return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(csv_path);
    unlink(out_path);
    return 0;
}

static void write_csv(const char *text)
{
    FILE *f = fopen(csv_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs a subcommand with stdout captured; returns its exit status and the last
 * line of its output in last (cap bytes). */
static int capture(int (*cmd)(int, char **), char **argv, char *last, size_t cap)
{
    int argc = 0, saved, fd, st;
    FILE *f;
    char line[4096];

    while (argv[argc]) argc++;
    fflush(stdout);
    saved = dup(1);
    fd = open(out_path, O_WRONLY | O_TRUNC);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    st = cmd(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    last[0] = '\0';
    f = fopen(out_path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        size_t n = strnlen(line, cap - 1); /* keep the last line, cut to fit */
        memcpy(last, line, n);
        last[n] = '\0';
    }
    fclose(f);
    return st;
}

static int count_lines_with(const char *needle)
{
    FILE *f = fopen(out_path, "r");
    char line[4096];
    int n = 0;
    while (f && fgets(line, sizeof(line), f)) n += strstr(line, needle) != NULL;
    if (f) fclose(f);
    return n;
}

/* Echo server: Encrypt of X answers "2:X", and Decrypt of that answers
 * "4:2:X", which is not X: the runner must call it a mismatch. */
static void test_counts_and_mismatch(void **state)
{
    struct fake f;
    char last[512];
    char *argv[] = {"run", "-n", "2", "--pipeline", "4", "--server", NULL, csv_path, NULL};
    (void)state;

    write_csv("# comment\n"
              "Encrypt,1,s3cr3t,X\n"
              "Decrypt,1,s3cr3t,X\n"
              "Sign,1,s3cr3t,Y\n"
              "Verify,1,s3cr3t,Y\n"
              "Sign,1,s3cr3t,fail\n"
              "Verify,1,s3cr3t,fail\n"
              "Verify,2,s3cr3t,Y\n"
              "Ping,,,\n");
    fake_start(&f, FAKE_ECHO, 2);
    argv[6] = f.addr;
    assert_int_equal(capture(p11n_cmd_run, argv, last, sizeof(last)), 0);
    fake_stop(&f);
    /* per client: ok = Encrypt, Sign, Verify, Ping; failed = mismatch, PIN, its Verify, Verify on slot 2 */
    assert_non_null(strstr(last, "requests=16 ok=8 failed=8 lost=0 "));
    assert_int_equal(count_lines_with("op=Decrypt slot=1 failed ms="), 2);
    assert_int_equal(count_lines_with("msg=mismatch"), 2);
    assert_int_equal(count_lines_with("code=PIN_INCORRECT"), 2);
    assert_int_equal(count_lines_with("msg=earlier_Sign_failed"), 2);
    assert_int_equal(count_lines_with("msg=no_earlier_Sign"), 2);
    assert_int_equal(count_lines_with("s3cr3t"), 0); /* the PIN is never printed */
}

/* Many requests in flight, answered in reverse order: every one is matched. */
static void test_pipelined_out_of_order(void **state)
{
    struct fake f;
    char last[512];
    char *argv[] = {"run", "-n", "1", "-p", "32", "--repeat", "200", "-q", "--server", NULL, csv_path, NULL};
    (void)state;

    write_csv("Sign,Tok,s3cr3t,a\nVerify,Tok,s3cr3t,a\nEncrypt,Tok,s3cr3t,b\nPing,,,\nList,,,\n");
    fake_start(&f, FAKE_ECHO, 1);
    argv[9] = f.addr;
    assert_int_equal(capture(p11n_cmd_run, argv, last, sizeof(last)), 0);
    fake_stop(&f);
    assert_non_null(strstr(last, "requests=1000 ok=1000 failed=0 lost=0 "));
}

static double since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A server that stalls, or hangs up: everything unanswered is lost, exit 1,
 * and the run ends by itself. */
static void test_lost(void **state)
{
    struct fake f;
    char last[512];
    char *argv[] = {"run", "-n", "1", "-p", "2", "--timeout", "1", "--server", NULL, csv_path, NULL};
    struct timespec t0;
    (void)state;

    write_csv("Ping,,,\nPing,,,\nPing,,,\n");
    fake_start(&f, FAKE_SILENT, 1);
    argv[8] = f.addr;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(capture(p11n_cmd_run, argv, last, sizeof(last)), 1);
    assert_true(since(&t0) < 10);
    fake_stop(&f);
    assert_non_null(strstr(last, "requests=3 ok=0 failed=0 lost=3 "));

    fake_start(&f, FAKE_CLOSE_AFTER_ONE, 1);
    argv[8] = f.addr;
    assert_int_equal(capture(p11n_cmd_run, argv, last, sizeof(last)), 1);
    fake_stop(&f);
    assert_non_null(strstr(last, "lost=3 "));
}

static void test_bench(void **state)
{
    struct fake f;
    char last[512];
    char pin1[] = "p", pin2[] = "p"; /* writable: the CLI wipes --pin in argv */
    char *ok_argv[] = {"bench", "--op", "sign", "--token", "T", "--pin", pin1, "-p", "4", "--batch", "3",
                       "--duration", "0.2", "--server", NULL, NULL};
    char *err_argv[] = {"bench", "--op", "encrypt", "--token", "T", "--pin", pin2, "--data", "fail",
                        "--duration", "0.1", "--server", NULL, NULL};
    unsigned long long ops = 0;
    (void)state;

    fake_start(&f, FAKE_ECHO, 1);
    ok_argv[14] = f.addr;
    assert_int_equal(capture(p11n_cmd_bench, ok_argv, last, sizeof(last)), 0);
    fake_stop(&f);
    assert_int_equal(sscanf(last, "ops=%llu errors=0 rate=", &ops), 1);
    assert_true(ops > 0 && ops % 3 == 0);
    assert_non_null(strstr(last, " p999_ms="));

    fake_start(&f, FAKE_ECHO, 1);
    err_argv[12] = f.addr;
    assert_int_equal(capture(p11n_cmd_bench, err_argv, last, sizeof(last)), 1);
    fake_stop(&f);
    assert_non_null(strstr(last, "ops=0 errors="));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_mismatch),
        cmocka_unit_test(test_pipelined_out_of_order),
        cmocka_unit_test(test_lost),
        cmocka_unit_test(test_bench),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
