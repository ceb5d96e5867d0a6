/* Hostile and slow clients (issue 5): one that never reads its replies, slowloris
 * partial frames, and connect/disconnect churn. The server must stay bounded in
 * memory and descriptors and keep serving everyone else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define T_REPLY 30000

static long server_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (!(f = fopen(path, "r"))) return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return kb;
}

static int server_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    int n = 0;
    DIR *d;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    if (!(d = opendir(path))) return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void ping_ok(int fd)
{
    p11n_msg *q = h_req(P11NET__PROTO_MESSAGE_TYPE__ACK, "p", NULL, NULL, 0, NULL), *r = h_call(fd, q);
    assert_false(r->err);
    h_msg_free(q);
    h_msg_free(r);
}

/* A client that writes requests and never reads: the server stops reading it once
 * --max-inflight replies are stuck, so the client's writes stall; the server's
 * memory stays bounded and other clients are served. */
static void test_client_never_reads(void **state)
{
    (void)state;
    struct h_server s;
    struct p11n_buf frames = {0};
    size_t written = 0, limit = 256u << 20;
    h_server_start(&s, NULL);
    int other = h_connect(s.addr), hog = h_connect(s.addr);
    ping_ok(other);
    long rss0 = server_rss_kb(s.pid);
    p11n_msg *q = h_req(P11NET__PROTO_MESSAGE_TYPE__ACK, "never-read", NULL, NULL, 0, NULL);
    for (int i = 0; i < 4096; i++) assert_int_equal(p11n_msg_append_frame(q, &frames), P11N_OK);
    h_msg_free(q);
    fcntl(hog, F_SETFL, O_NONBLOCK);
    /* Write until the connection stays unwritable for a second: the server has
     * stopped reading. Bounded: far more than any buffer should hold is a failure. */
    for (;;) {
        ssize_t n = send(hog, frames.data, frames.len, MSG_NOSIGNAL);
        if (n > 0) {
            written += (size_t)n;
            assert_true(written < limit);
            continue;
        }
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        struct pollfd pf = {hog, POLLOUT, 0};
        if (poll(&pf, 1, 1000) == 0) break;
    }
    p11n_buf_cleanup(&frames);
    ping_ok(other);
    long rss1 = server_rss_kb(s.pid);
    fprintf(stderr, "never-read client: wrote %zu bytes; server RSS %ld -> %ld kB\n", written, rss0, rss1);
    assert_true(rss1 - rss0 < 16 * 1024);
    assert_true(h_server_wait_log(&s, "paused", T_REPLY));
    close(hog);
    ping_ok(other);
    close(other);
    assert_int_equal(h_server_stop(&s), 0);
}

/* Slowloris: many connections each holding a partial frame are closed after
 * --idle-timeout; a normal client is served throughout. */
static void test_slowloris(void **state)
{
    (void)state;
    enum { N = 200 };
    struct h_server s;
    const char *args[] = {"--idle-timeout", "1", NULL};
    int fds[N];
    h_server_start(&s, args);
    int other = h_connect(s.addr);
    for (int i = 0; i < N; i++) {
        fds[i] = h_connect(s.addr);
        assert_int_equal(h_write_all(fds[i], "\0\0", 2), 0);
    }
    ping_ok(other);
    for (int i = 0; i < N; i++) {
        uint8_t buf[64];
        assert_true(h_read_until_eof(fds[i], buf, sizeof(buf), T_REPLY) >= 0);
        close(fds[i]);
    }
    ping_ok(other);
    close(other);
    assert_int_equal(h_server_stop(&s), 0);
}

/* Connect/disconnect churn at 5,000 per second (P11NET_CHURN_SECONDS, default 10):
 * afterwards the server serves, and its descriptors are back where they were. */
static void test_connect_churn(void **state)
{
    (void)state;
    struct h_server s;
    const char *env = getenv("P11NET_CHURN_SECONDS");
    int seconds = env ? atoi(env) : 10, per_tick = 50, made = 0;
    struct timespec tick;
    /* libuv opens one spare descriptor per loop with its first connection, so every
     * reactor serves one before the count is taken: 4 reactors, 4 connections held
     * at once (each goes to the reactor with the fewest). */
    const char *args[] = {"--io-threads", "4", NULL};
    int warm[4];
    h_server_start(&s, args);
    int other = h_connect(s.addr);
    ping_ok(other);
    for (int i = 0; i < 4; i++) ping_ok(warm[i] = h_connect(s.addr));
    int fds0 = server_fds(s.pid) - 4;
    for (int i = 0; i < 4; i++) close(warm[i]);
    for (int i = 0; i < 10000 && server_fds(s.pid) > fds0; i++) ping_ok(other);
    assert_int_equal(server_fds(s.pid), fds0);
    clock_gettime(CLOCK_MONOTONIC, &tick);
    /* 100 ticks a second, 50 connections a tick. */
    for (int t = 0; t < seconds * 100; t++) {
        for (int i = 0; i < per_tick; i++, made++) close(h_connect(s.addr));
        tick.tv_nsec += 10 * 1000000L;
        if (tick.tv_nsec >= 1000000000L) tick.tv_sec++, tick.tv_nsec -= 1000000000L;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL); /* pacing, not synchronization */
    }
    /* Each ping is a full loop turn of the server; the closes it has already been
     * told about are processed along the way. */
    int fds1 = -1;
    for (int i = 0; i < 10000; i++) {
        ping_ok(other);
        if ((fds1 = server_fds(s.pid)) <= fds0) break;
    }
    fprintf(stderr, "churn: %d connects in %d s; server fds %d -> %d\n", made, seconds, fds0, fds1);
    assert_true(fds1 <= fds0);
    close(other);
    assert_int_equal(h_server_stop(&s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_never_reads),
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_connect_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
