#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "frame.h"

static char tokens_dir[256];

__attribute__((format(printf, 1, 2))) static void h_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fail();
}

static void remove_tokens_dir(void)
{
    char cmd[300];
    if (getenv("P11NET_KEEP_TMP")) {
        fprintf(stderr, "kept %s (server logs in p11netd-*.log)\n", tokens_dir);
        return;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tokens_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tokens_dir);
}

const char *h_tokens_dir(void)
{
    char cmd[600];
    const char *src = getenv("P11NET_SOURCE_DIR");

    if (tokens_dir[0]) return tokens_dir;
    if (!src) h_die("P11NET_SOURCE_DIR is not set");
    snprintf(tokens_dir, sizeof(tokens_dir), "/tmp/p11net-it-XXXXXX");
    if (!mkdtemp(tokens_dir)) h_die("mkdtemp: %s", strerror(errno));
    snprintf(cmd, sizeof(cmd), "%s/scripts/mktokens.sh %s >/dev/null", src, tokens_dir);
    if (system(cmd) != 0) h_die("mktokens.sh failed");
    atexit(remove_tokens_dir);
    snprintf(cmd, sizeof(cmd), "%s/softhsm2.conf", tokens_dir);
    setenv("SOFTHSM2_CONF", cmd, 1);
    return tokens_dir;
}

/* Copies the server's stderr into its log file until EOF, so the pipe never fills,
 * and tells waiters (h_server_wait_log) after every write. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t log_grew = PTHREAD_COND_INITIALIZER;

struct log_copier {
    int fd;
    int out;
};
static void *copy_log(void *arg)
{
    struct log_copier *lc = arg;
    char buf[4096];
    ssize_t n;
    while ((n = read(lc->fd, buf, sizeof(buf))) > 0) {
        if (write(lc->out, buf, (size_t)n) != n) break;
        pthread_mutex_lock(&log_lock);
        pthread_cond_broadcast(&log_grew);
        pthread_mutex_unlock(&log_lock);
    }
    close(lc->fd);
    close(lc->out);
    free(lc);
    return NULL;
}

void h_server_start(struct h_server *s, const char *const *extra)
{
    /* P11NETD_WRAPPER (e.g. p11netd under valgrind, scripts/check-all.sh) wins over
     * P11NETD, which CTest sets per test. */
    const char *bin = getenv("P11NETD_WRAPPER") ? getenv("P11NETD_WRAPPER") : getenv("P11NETD");
    const char *argv[64];
    int errp[2], n = 0;
    char line[512];
    size_t len = 0;
    struct log_copier *lc;
    pthread_t t;

    h_tokens_dir();
    if (!bin) h_die("P11NETD is not set");
    memset(s, 0, sizeof(*s));
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    for (size_t i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    if (pipe(errp) != 0) h_die("pipe");
    s->pid = fork();
    if (s->pid == 0) {
        /* The server dies with the test, even one that fails an assertion before
         * stopping it, and holds none of the test's output: a leftover server would
         * otherwise keep CTest waiting on the test's stdout until its timeout. */
        int devnull = open("/dev/null", O_WRONLY);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) _exit(127); /* the test died before prctl took effect */
        if (devnull >= 0) dup2(devnull, 1);
        dup2(errp[1], 2);
        close(errp[0]);
        close(errp[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(errp[1]);
    /* Read stderr byte by byte until the "listening on" line: nothing of the log
     * after it is consumed here. */
    for (;;) {
        char ch;
        struct pollfd p = {errp[0], POLLIN, 0};
        if (poll(&p, 1, 20000) <= 0) h_die("p11netd did not start within 20 s");
        if (read(errp[0], &ch, 1) != 1) h_die("p11netd exited before listening");
        if (ch != '\n') {
            if (len < sizeof(line) - 1) line[len++] = ch;
            continue;
        }
        line[len] = 0;
        len = 0;
        char *at = strstr(line, "listening on ");
        if (at) {
            sscanf(at + 13, "%127s", s->addr);
            break;
        }
    }
    snprintf(s->log_path, sizeof(s->log_path), "%s/p11netd-%d.log", tokens_dir, (int)s->pid);
    lc = malloc(sizeof(*lc));
    lc->fd = errp[0];
    lc->out = open(s->log_path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    pthread_create(&t, NULL, copy_log, lc);
    pthread_detach(t);
}

void h_server_signal(struct h_server *s, int sig)
{
    kill(s->pid, sig);
}

int h_server_wait(struct h_server *s)
{
    int st;
    if (waitpid(s->pid, &st, 0) < 0) return -1;
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int h_server_stop(struct h_server *s)
{
    if (!s->pid) return -1;
    kill(s->pid, SIGTERM);
    return h_server_wait(s);
}

int h_server_log_contains(struct h_server *s, const char *needle)
{
    FILE *f = fopen(s->log_path, "r");
    char line[2048];
    int found = 0;
    if (!f) return 0;
    while (!found && fgets(line, sizeof(line), f)) found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

int h_server_wait_log(struct h_server *s, const char *needle, int timeout_ms)
{
    struct timespec deadline;
    int found;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&log_lock);
    while (!(found = h_server_log_contains(s, needle)))
        if (pthread_cond_timedwait(&log_grew, &log_lock, &deadline) != 0) {
            found = h_server_log_contains(s, needle);
            break;
        }
    pthread_mutex_unlock(&log_lock);
    return found;
}

int h_connect(const char *addr)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sa = {0};
    int fd, one = 1;

    if (!colon) h_die("bad address %s", addr);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) h_die("bad host %s", host);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) h_die("connect %s: %s", addr, strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int h_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void h_send(int fd, const p11n_msg *msg)
{
    struct p11n_buf b = {0};
    if (p11n_msg_append_frame(msg, &b) != P11N_OK) h_die("pack");
    if (h_write_all(fd, b.data, b.len) != 0) h_die("send: %s", strerror(errno));
    p11n_buf_cleanup(&b);
}

static int read_exact(int fd, uint8_t *p, size_t len, int timeout_ms)
{
    while (len) {
        struct pollfd pf = {fd, POLLIN, 0};
        ssize_t n;
        if (poll(&pf, 1, timeout_ms) <= 0) return -1;
        n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

p11n_msg *h_recv(int fd, int timeout_ms)
{
    uint8_t hdr[4], *body;
    uint32_t len;
    p11n_msg *m = NULL;

    if (read_exact(fd, hdr, 4, timeout_ms) != 0) return NULL;
    len = p11n_load_be32(hdr);
    if (len > 64u * 1024 * 1024) return NULL;
    body = malloc(len ? len : 1);
    if (read_exact(fd, body, len, timeout_ms) == 0 && p11n_msg_decode(p11n_slice_of(body, len), &m) != P11N_OK)
        m = NULL;
    free(body);
    return m;
}

ssize_t h_read_until_eof(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    size_t got = 0;
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        ssize_t n;
        if (poll(&pf, 1, timeout_ms) <= 0) return -1; /* still open */
        n = recv(fd, buf + got, cap - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return (ssize_t)got;
        got += (size_t)n;
        if (got == cap) return (ssize_t)got;
    }
}

p11n_msg *h_req(P11net__ProtoMessageType flag, const char *id, const char *token, const char *pin, size_t n_data,
                const char *const *data)
{
    p11n_msg *m = calloc(1, sizeof(*m));
    p11net__proto_message__init(m);
    m->flag = flag;
    m->id = strdup(id ? id : "");
    m->token = strdup(token ? token : "");
    m->pin = strdup(pin ? pin : "");
    m->key = strdup("");
    m->n_data = n_data;
    m->data = calloc(n_data ? n_data : 1, sizeof(char *));
    for (size_t i = 0; i < n_data; i++) m->data[i] = strdup(data[i]);
    return m;
}

void h_msg_free(p11n_msg *m)
{
    if (!m) return;
    /* h_req messages and decoded ones are both freed through protobuf-c's
     * free_unpacked: it frees every field with the default allocator. */
    p11net__proto_message__free_unpacked(m, NULL);
}

p11n_msg *h_call(int fd, const p11n_msg *req)
{
    p11n_msg *r;
    h_send(fd, req);
    r = h_recv(fd, 30000);
    if (!r) h_die("no reply");
    return r;
}
