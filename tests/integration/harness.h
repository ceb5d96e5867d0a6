/* Integration test harness: a real p11netd against real SoftHSM tokens over real
 * sockets. Tokens come from scripts/mktokens.sh in a fresh temporary directory.
 * The server is started on port 0 and the harness waits for its "listening on"
 * line (never a sleep); replies are awaited with poll() and a deadline. */
#ifndef P11N_HARNESS_H
#define P11N_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "proto.h"

struct h_server {
    pid_t pid;
    int stderr_fd;      /* the server's stderr, for its log lines */
    char addr[128];     /* HOST:PORT it listens on */
    char log_path[320]; /* everything it wrote to stderr, copied by a reader thread */
};

/* Path of the token directory made once per test process (mktokens.sh). */
const char *h_tokens_dir(void);
/* Starts p11netd with extra arguments (NULL-terminated), listening on 127.0.0.1:0.
 * Fails the test when it does not come up. */
void h_server_start(struct h_server *s, const char *const *extra_args);
/* SIGTERM, wait, and return the exit status (or 128+signal). */
int h_server_stop(struct h_server *s);
/* Sends a signal and returns without waiting. */
void h_server_signal(struct h_server *s, int sig);
/* Waits for the exit of a server already told to stop; returns its status. */
int h_server_wait(struct h_server *s);
/* True when the server's log contains needle now. */
int h_server_log_contains(struct h_server *s, const char *needle);
/* Waits until the server's log contains needle (true), or timeout_ms passes (false).
 * Log lines reach the file through a copier thread, so a line the server wrote
 * before an event the test saw may land in the file a moment after it. */
int h_server_wait_log(struct h_server *s, const char *needle, int timeout_ms);

/* Connects to HOST:PORT; returns the fd or fails the test. */
int h_connect(const char *addr);
/* Writes all of buf; returns 0, or -1 when the peer is gone. */
int h_write_all(int fd, const void *buf, size_t len);
/* Sends msg as one frame. */
void h_send(int fd, const p11n_msg *msg);
/* Receives one frame and decodes it; NULL on EOF, timeout (ms) or a bad frame. */
p11n_msg *h_recv(int fd, int timeout_ms);
/* Receives raw bytes until EOF or timeout; returns the count (for "closed" checks). */
ssize_t h_read_until_eof(int fd, uint8_t *buf, size_t cap, int timeout_ms);

/* Builds a request; data items are copied as given. */
p11n_msg *h_req(P11net__ProtoMessageType flag, const char *id, const char *token, const char *pin,
                size_t n_data, const char *const *data);
/* A request-and-reply round trip on a fresh message; the reply must arrive. */
p11n_msg *h_call(int fd, const p11n_msg *req);
void h_msg_free(p11n_msg *m);

#endif
