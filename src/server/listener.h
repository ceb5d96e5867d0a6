/* Listening sockets: TCP HOST:PORT ([v6]:PORT) or unix:/path. Main loop thread only,
 * except p11n_listener_serve. */
#ifndef P11N_LISTENER_H
#define P11N_LISTENER_H

#include <uv.h>

#include "server.h"

struct p11n_listener {
    union p11n_stream h;
    struct p11n_server *srv;
    struct p11n_listener *next;
    int is_unix;
    char name[128]; /* as printed in the "listening on" line */
};

/* Binds and listens on spec, then prints "listening on NAME" to stderr. Refuses
 * plaintext TCP on a non-loopback address unless --insecure. P11N_E_USAGE with a
 * message on stderr when spec is bad or refused, P11N_E_IO when binding fails. */
P11N_MUST_USE p11n_rc p11n_listener_open(struct p11n_server *srv, const char *spec);
/* Loop thread of c's reactor: starts serving c, just adopted with its stream
 * opened (or not: opened 0), or closes it. */
struct p11n_conn;
void p11n_listener_serve(struct p11n_conn *c, int is_unix, int opened);
/* Stops accepting on every listener; they are freed in their close callbacks. */
void p11n_listener_close_all(struct p11n_server *srv);

/* Parses "HOST:PORT" or "[HOST]:PORT" into a socket address (numeric hosts and
 * "localhost"). Exposed for tests. */
P11N_MUST_USE p11n_rc p11n_listener_parse_addr(const char *spec, struct sockaddr_storage *out);
/* True for 127.0.0.0/8 and ::1. */
int p11n_listener_is_loopback(const struct sockaddr_storage *addr);

#endif
