/* The p11net_client handle: one socket, requests written whole under a write
 * lock, replies read by whichever waiting thread holds the reader role and
 * parked by id until their waiter collects them.
 *
 * Why a reader role rather than a reader thread: a library should not start
 * threads behind its caller's back, and with one waiter (the common case) the
 * waiter simply reads its own reply. With several, one reads at a time (the
 * socket and the frame decoder belong to the reader), files each reply under its
 * id and wakes the others; when the reader's own reply arrives or its deadline
 * passes it hands the role on.
 *
 * TLS runs over memory BIOs (src/common/tls.c), so the socket code is the same
 * with and without it: writers encrypt under wlock and send the records they
 * produced in order; the reader decrypts what it received. One SSL object is not
 * safe for concurrent use, so every call into it holds tlock (never held while
 * blocked on the socket). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "addr.h"
#include "client_impl.h"
#include "ctls.h"
#include "encode.h"
#include "frame.h"

#define DEFAULT_TIMEOUT_MS 30000
/* Replies of a large batch can be big (256 RSA-4096 ciphertexts in base64 are
 * ~180 KB); 64 MiB bounds a hostile server without limiting a real one. */
#define DEFAULT_MAX_FRAME (64u << 20)
#define READ_CHUNK 65536

/* A submitted request not yet collected. Guarded by p11net_client.lock. */
struct pending {
    uint64_t id;
    int claimed;     /* a p11net_wait is waiting for exactly this id */
    p11n_msg *reply; /* set by the reader when the reply arrives */
    struct pending *next;
};

struct p11net_client {
    int fd;
    int timeout_ms;           /* immutable after connect */
    pthread_mutex_t wlock;    /* serialises frame writes, so frames never interleave */
    pthread_mutex_t lock;     /* guards everything below except the reader-owned fields */
    pthread_cond_t cv;        /* signalled when a reply is filed, the reader role frees, or dead */
    uint64_t next_id;
    struct pending *pending;  /* outstanding requests, newest first */
    size_t n_pending;
    int reading;              /* a thread holds the reader role */
    p11n_rc dead;             /* P11N_OK while the connection is usable */
    char dead_why[160];
    char tls_why[160];        /* reader-owned: why TLS failed, for dead_why */
    struct p11n_tls_conn *tls; /* NULL for plaintext; immutable pointer after connect */
    pthread_mutex_t tlock;     /* guards every call on tls */
    /* Owned by the thread holding the reader role. */
    struct p11n_frame_decoder dec;
    struct p11n_buf plain;     /* decrypted bytes (TLS), wiped after parsing */
    uint8_t rbuf[READ_CHUNK];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* Milliseconds left until deadline, for poll(); -1 for none. */
static int left_ms(int64_t deadline)
{
    int64_t left;
    if (deadline < 0) return -1;
    left = deadline - now_ms();
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Waits for fd to become ready for `events`. P11N_E_TIMEOUT or P11N_E_IO. */
static p11n_rc wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&pfd, 1, left_ms(deadline));
        if (n > 0) return P11N_OK;
        if (n == 0) return P11N_E_TIMEOUT;
        if (errno != EINTR) return P11N_E_IO;
    }
}

void p11net_options_init(p11net_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->timeout_ms = DEFAULT_TIMEOUT_MS;
    opts->max_frame = DEFAULT_MAX_FRAME;
}

int p11n_client_timeout(const p11net_client *c)
{
    return c->timeout_ms;
}

/* Non-blocking connect bounded by deadline; returns the connected socket or -1
 * with err filled. The socket stays non-blocking: all I/O goes through poll. */
static int connect_socket(const struct p11n_addr *a, int64_t deadline, const char *server, p11net_error *err)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), soerr = 0;
    socklen_t sl = sizeof(soerr);
    p11n_rc rc;

    if (fd < 0) {
        p11n_error_set(err, P11NET_ERR_IO, P11NET_CODE_NONE, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0) return fd;
    if (errno != EINPROGRESS && errno != EAGAIN) {
        p11n_error_set(err, P11NET_ERR_IO, P11NET_CODE_NONE, "connect %s: %s", server, strerror(errno));
        close(fd);
        return -1;
    }
    rc = wait_fd(fd, POLLOUT, deadline);
    if (rc == P11N_OK && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) return fd;
    if (rc == P11N_E_TIMEOUT)
        p11n_error_set(err, P11NET_ERR_TIMEOUT, P11NET_CODE_NONE, "connect %s: timed out", server);
    else
        p11n_error_set(err, P11NET_ERR_IO, P11NET_CODE_NONE, "connect %s: %s", server,
                       strerror(soerr ? soerr : errno));
    close(fd);
    return -1;
}

/* Writes all of bytes to fd, polling while the socket is full. */
static p11n_rc send_all(int fd, struct p11n_slice bytes, int64_t deadline)
{
    while (bytes.len > 0) {
        ssize_t n = send(fd, bytes.p, bytes.len, MSG_NOSIGNAL);
        if (n > 0) {
            bytes.p += n;
            bytes.len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            P11N_TRY(wait_fd(fd, POLLOUT, deadline));
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return errno == EPIPE || errno == ECONNRESET ? P11N_E_CLOSED : P11N_E_IO;
        }
    }
    return P11N_OK;
}

/* Runs the TLS handshake on the fresh connection (no other thread knows c yet),
 * bounded by deadline. Any application bytes that arrive with it stay in
 * c->plain for the first reader. */
static p11n_rc tls_handshake(p11net_client *c, int64_t deadline)
{
    struct p11n_buf out = {0};
    p11n_rc rc;

    for (;;) {
        ssize_t n;
        rc = p11n_tls_read(c->tls, &c->plain, READ_CHUNK);
        if (rc == P11N_OK) rc = p11n_tls_take_output(c->tls, &out);
        if (rc == P11N_OK) rc = send_all(c->fd, p11n_buf_slice(&out), deadline);
        out.len = 0;
        if (rc != P11N_OK || p11n_tls_ready(c->tls)) break;
        if ((rc = wait_fd(c->fd, POLLIN, deadline)) != P11N_OK) break;
        n = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);
        if (n == 0) {
            rc = P11N_E_CLOSED;
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            rc = P11N_E_IO;
            break;
        }
        if ((rc = p11n_tls_feed(c->tls, p11n_slice_of(c->rbuf, (size_t)n))) != P11N_OK) break;
    }
    p11n_buf_cleanup(&out);
    return rc;
}

int p11net_connect(const char *server, const p11net_options *opts, p11net_client **out, p11net_error *err)
{
    p11net_options defaults;
    struct p11n_addr addr;
    const char *why = NULL;
    p11n_rc rc;
    p11net_client *c;
    pthread_condattr_t ca;
    int fd;
    int64_t deadline;
    struct p11n_tls_ctx *tls_ctx = NULL;
    char servername[256] = "";

    *out = NULL;
    if (!opts) {
        p11net_options_init(&defaults);
        opts = &defaults;
    }
    if (p11n_ctls_wanted(opts)) {
        char why_tls[256] = "";
        rc = p11n_ctls_setup(opts, server, &tls_ctx, servername, sizeof(servername), why_tls, sizeof(why_tls));
        if (rc != P11N_OK) {
            p11n_error_set(err, rc == P11N_E_USAGE ? P11NET_ERR_USAGE : P11NET_ERR_TLS, P11NET_CODE_NONE, "TLS: %s",
                           why_tls);
            return rc == P11N_E_USAGE ? P11NET_ERR_USAGE : P11NET_ERR_TLS;
        }
    }
    rc = p11n_addr_resolve(server, &addr, &why);
    if (rc != P11N_OK) {
        p11n_error_set(err, p11n_status_of(rc), P11NET_CODE_NONE, "server address '%s': %s",
                       server ? server : "", why ? why : p11n_rc_name(rc));
        p11n_tls_ctx_free(tls_ctx);
        return p11n_status_of(rc);
    }
    deadline = deadline_of(opts->timeout_ms > 0 ? opts->timeout_ms : -1);
    fd = connect_socket(&addr, deadline, server, err);
    if (fd < 0) {
        p11n_tls_ctx_free(tls_ctx);
        return err ? err->status : P11NET_ERR_IO;
    }

    c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        p11n_tls_ctx_free(tls_ctx);
        p11n_error_set(err, P11NET_ERR_NOMEM, P11NET_CODE_NONE, "out of memory");
        return P11NET_ERR_NOMEM;
    }
    c->fd = fd;
    pthread_mutex_init(&c->tlock, NULL);
    if (tls_ctx) {
        /* The connection keeps its own reference to the context. */
        rc = p11n_tls_conn_new(tls_ctx, servername, &c->tls);
        p11n_tls_ctx_free(tls_ctx);
        if (rc == P11N_OK) rc = tls_handshake(c, deadline);
        if (rc != P11N_OK) {
            p11n_error_set(err, p11n_status_of(rc), P11NET_CODE_NONE, "TLS handshake with %s: %s", server,
                           rc == P11N_E_TLS && c->tls ? p11n_tls_error(c->tls)
                           : rc == P11N_E_CLOSED      ? "connection closed by the server"
                                                      : p11n_rc_name(rc));
            p11n_tls_conn_free(c->tls);
            p11n_buf_cleanup(&c->plain);
            pthread_mutex_destroy(&c->tlock);
            close(fd);
            free(c);
            return err ? err->status : P11NET_ERR_TLS;
        }
    }
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : -1;
    c->next_id = 1;
    pthread_mutex_init(&c->wlock, NULL);
    pthread_mutex_init(&c->lock, NULL);
    /* Deadlines are monotonic, so the condition variable must be too. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    p11n_frame_decoder_init(&c->dec, opts->max_frame ? opts->max_frame : DEFAULT_MAX_FRAME);
    *out = c;
    return P11NET_OK;
}

void p11net_close(p11net_client *c)
{
    struct pending *p, *next;

    if (!c) return;
    close(c->fd);
    for (p = c->pending; p; p = next) {
        next = p->next;
        p11n_msg_free(p->reply);
        free(p);
    }
    p11n_frame_decoder_cleanup(&c->dec);
    p11n_tls_conn_free(c->tls);
    OPENSSL_cleanse(c->plain.data, c->plain.cap);
    p11n_buf_cleanup(&c->plain);
    pthread_mutex_destroy(&c->tlock);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->wlock);
    free(c);
}

/* Marks the connection unusable and wakes every waiter. Called with lock held. */
static void set_dead(p11net_client *c, p11n_rc why, const char *what)
{
    if (c->dead != P11N_OK) return;
    c->dead = why;
    snprintf(c->dead_why, sizeof(c->dead_why), "%s", what);
    /* Unblock a writer stuck in poll and make the peer see the end. */
    shutdown(c->fd, SHUT_RDWR);
    pthread_cond_broadcast(&c->cv);
}

static int dead_error(const p11net_client *c, p11net_error *err)
{
    p11net_status st = p11n_status_of(c->dead);
    p11n_error_set(err, st, P11NET_CODE_NONE, "connection lost: %s", c->dead_why);
    return st;
}

/* Removes p from the pending list. Called with lock held; does not free p. */
static void unlink_pending(p11net_client *c, struct pending *p)
{
    for (struct pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            c->n_pending--;
            return;
        }
    }
}

static struct pending *find_pending(p11net_client *c, uint64_t id)
{
    for (struct pending *p = c->pending; p; p = p->next)
        if (p->id == id) return p;
    return NULL;
}

/* Writes all of frame, polling while the socket is full. Holds wlock so that
 * concurrent submitters never interleave frames. A partial write leaves the
 * stream unusable, so any failure kills the connection. */
static p11n_rc write_frame(p11net_client *c, struct p11n_slice frame, int64_t deadline)
{
    p11n_rc rc = P11N_OK;
    struct p11n_buf cipher = {0};

    pthread_mutex_lock(&c->wlock);
    if (c->tls) {
        /* Encrypted and sent under wlock, so records leave in the order TLS made
         * them (also any the reader left in the output BIO). */
        pthread_mutex_lock(&c->tlock);
        rc = p11n_tls_write(c->tls, frame);
        if (rc == P11N_OK) rc = p11n_tls_take_output(c->tls, &cipher);
        pthread_mutex_unlock(&c->tlock);
        frame = p11n_buf_slice(&cipher);
    }
    if (rc == P11N_OK) rc = send_all(c->fd, frame, deadline);
    pthread_mutex_unlock(&c->wlock);
    p11n_buf_cleanup(&cipher);
    return rc;
}

int p11net_submit(p11net_client *c, const p11net_request *req, uint64_t *id, p11net_error *err)
{
    struct p11n_buf frame = {0};
    struct pending *p;
    char idtext[24];
    p11n_rc rc;

    p = calloc(1, sizeof(*p));
    if (!p) {
        p11n_error_set(err, P11NET_ERR_NOMEM, P11NET_CODE_NONE, "out of memory");
        return P11NET_ERR_NOMEM;
    }
    /* Registered before the frame leaves, so the reply always finds it. */
    pthread_mutex_lock(&c->lock);
    if (c->dead != P11N_OK) {
        int st = dead_error(c, err);
        pthread_mutex_unlock(&c->lock);
        free(p);
        return st;
    }
    p->id = c->next_id++;
    p->next = c->pending;
    c->pending = p;
    c->n_pending++;
    pthread_mutex_unlock(&c->lock);

    snprintf(idtext, sizeof(idtext), "%" PRIu64, p->id);
    rc = p11n_request_encode(req, idtext, 0, &frame);
    if (rc == P11N_OK) rc = write_frame(c, p11n_buf_slice(&frame), deadline_of(c->timeout_ms));
    p11n_buf_cleanup(&frame); /* wipes the PIN */

    if (rc != P11N_OK) {
        pthread_mutex_lock(&c->lock);
        unlink_pending(c, p);
        if (rc != P11N_E_USAGE && rc != P11N_E_NOMEM) set_dead(c, rc, "write failed");
        pthread_mutex_unlock(&c->lock);
        free(p);
        p11n_error_set(err, p11n_status_of(rc), P11NET_CODE_NONE, "%s",
                       rc == P11N_E_USAGE ? "bad request: text input holds a NUL byte, or VERIFY needs 2 inputs"
                                          : p11n_rc_name(rc));
        return p11n_status_of(rc);
    }
    *id = p->id;
    return P11NET_OK;
}

size_t p11net_outstanding(p11net_client *c)
{
    size_t n;
    pthread_mutex_lock(&c->lock);
    n = c->n_pending;
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* Files one decoded reply under its id. Replies to requests nobody waits for any
 * more (timed out) are dropped. Called with lock held. */
static void file_reply(p11net_client *c, p11n_msg *msg)
{
    char *end = NULL;
    uint64_t id = strtoull(msg->id ? msg->id : "", &end, 10);
    struct pending *p = (end && *end == '\0' && end != msg->id) ? find_pending(c, id) : NULL;

    if (!p || p->reply) {
        p11n_msg_free(msg);
        return;
    }
    p->reply = msg;
}

/* Decodes the frames in chunk and files the replies. Lock held. */
static p11n_rc parse_replies(p11net_client *c, struct p11n_slice chunk)
{
    struct p11n_slice body;
    p11n_rc why = P11N_OK;
    enum p11n_parse r;

    while ((r = p11n_frame_next(&c->dec, &chunk, &body, &why)) == P11N_PARSE_FRAME) {
        p11n_msg *msg = NULL;
        if (p11n_msg_decode(body, &msg) != P11N_OK) return P11N_E_PROTOCOL;
        file_reply(c, msg);
    }
    if (r == P11N_PARSE_ERROR) return why == P11N_E_NOMEM ? P11N_E_NOMEM : P11N_E_PROTOCOL;
    return P11N_OK;
}

/* The reader role: reads what the socket has (waiting at most until deadline),
 * decodes the frames and files the replies. Called with lock held and
 * c->reading set; drops the lock while blocked on the socket. */
static p11n_rc read_some(p11net_client *c, int64_t deadline)
{
    p11n_rc rc = P11N_OK;
    ssize_t n;
    int full;

    pthread_mutex_unlock(&c->lock);
    rc = wait_fd(c->fd, POLLIN, deadline);
    n = rc == P11N_OK ? recv(c->fd, c->rbuf, sizeof(c->rbuf), 0) : -1;
    pthread_mutex_lock(&c->lock);
    if (rc != P11N_OK) return rc;
    if (n == 0) return P11N_E_CLOSED;
    if (n < 0) return errno == EAGAIN || errno == EINTR ? P11N_OK : P11N_E_IO;
    if (!c->tls) return parse_replies(c, p11n_slice_of(c->rbuf, (size_t)n));

    /* TLS: decrypt in steps of READ_CHUNK until TLS holds no more plaintext. */
    pthread_mutex_lock(&c->tlock);
    rc = p11n_tls_feed(c->tls, p11n_slice_of(c->rbuf, (size_t)n));
    while (rc == P11N_OK) {
        p11n_rc prc;
        rc = p11n_tls_read(c->tls, &c->plain, READ_CHUNK);
        if (rc == P11N_E_TLS) snprintf(c->tls_why, sizeof(c->tls_why), "%s", p11n_tls_error(c->tls));
        prc = parse_replies(c, p11n_buf_slice(&c->plain));
        full = c->plain.len >= READ_CHUNK;
        OPENSSL_cleanse(c->plain.data, c->plain.len);
        c->plain.len = 0;
        if (prc != P11N_OK) rc = prc;
        if (!full) break;
    }
    pthread_mutex_unlock(&c->tlock);
    return rc;
}

/* Finds a reply for `want` (or, want == NULL, any unclaimed one). Lock held. */
static struct pending *ready(p11net_client *c, struct pending *want)
{
    if (want) return want->reply ? want : NULL;
    for (struct pending *p = c->pending; p; p = p->next)
        if (p->reply && !p->claimed) return p;
    return NULL;
}

/* The common body of p11net_wait and p11net_wait_any. Lock held on entry and exit. */
static int wait_locked(p11net_client *c, struct pending *want, int timeout_ms, uint64_t *id,
                       p11net_reply **out, p11net_error *err)
{
    int64_t deadline = deadline_of(timeout_ms);
    struct pending *got;
    p11n_rc rc = P11N_OK;

    while (!(got = ready(c, want))) {
        if (c->dead != P11N_OK) return dead_error(c, err);
        if (deadline >= 0 && now_ms() >= deadline) {
            rc = P11N_E_TIMEOUT;
            break;
        }
        if (!c->reading) {
            c->reading = 1;
            rc = read_some(c, deadline);
            c->reading = 0;
            pthread_cond_broadcast(&c->cv); /* new replies, or the role is free */
            if (rc == P11N_E_TIMEOUT) break;
            if (rc != P11N_OK)
                set_dead(c, rc,
                         rc == P11N_E_CLOSED ? "server closed the connection"
                         : rc == P11N_E_TLS  ? c->tls_why
                                             : p11n_rc_name(rc));
        } else if (deadline < 0) {
            pthread_cond_wait(&c->cv, &c->lock);
        } else {
            struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
            pthread_cond_timedwait(&c->cv, &c->lock, &ts);
        }
    }
    if (!got) {
        if (want) {
            unlink_pending(c, want); /* forgotten: a late reply is dropped */
            free(want);
        }
        p11n_error_set(err, P11NET_ERR_TIMEOUT, P11NET_CODE_NONE, "no reply within %d ms", timeout_ms);
        return P11NET_ERR_TIMEOUT;
    }
    unlink_pending(c, got);
    if (id) *id = got->id;
    {
        p11n_msg *msg = got->reply;
        int st;
        free(got);
        if ((st = p11n_reply_check(msg, err)) != P11NET_OK) {
            p11n_msg_free(msg);
            return st;
        }
        *out = p11n_reply_wrap(msg);
        if (!*out) {
            p11n_error_set(err, P11NET_ERR_NOMEM, P11NET_CODE_NONE, "out of memory");
            return P11NET_ERR_NOMEM;
        }
    }
    return P11NET_OK;
}

int p11net_wait(p11net_client *c, uint64_t id, int timeout_ms, p11net_reply **out, p11net_error *err)
{
    struct pending *p;
    int st;

    *out = NULL;
    pthread_mutex_lock(&c->lock);
    p = find_pending(c, id);
    if (!p || p->claimed) {
        pthread_mutex_unlock(&c->lock);
        p11n_error_set(err, P11NET_ERR_USAGE, P11NET_CODE_NONE, "no outstanding request %" PRIu64, id);
        return P11NET_ERR_USAGE;
    }
    p->claimed = 1;
    st = wait_locked(c, p, timeout_ms, NULL, out, err);
    pthread_mutex_unlock(&c->lock);
    return st;
}

int p11net_wait_any(p11net_client *c, int timeout_ms, uint64_t *id, p11net_reply **out, p11net_error *err)
{
    int st, unclaimed = 0;

    *out = NULL;
    pthread_mutex_lock(&c->lock);
    for (struct pending *p = c->pending; p && !unclaimed; p = p->next) unclaimed = !p->claimed;
    if (!unclaimed) {
        pthread_mutex_unlock(&c->lock);
        p11n_error_set(err, P11NET_ERR_USAGE, P11NET_CODE_NONE, "no outstanding request");
        return P11NET_ERR_USAGE;
    }
    st = wait_locked(c, NULL, timeout_ms, id, out, err);
    pthread_mutex_unlock(&c->lock);
    return st;
}
