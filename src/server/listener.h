/* Listening sockets: TCP HOST:PORT ([v6]:PORT) or unix:/path. Loop thread only. */
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
/* Stops accepting on every listener; they are freed in their close callbacks. */
void p11n_listener_close_all(struct p11n_server *srv);

/* Parses "HOST:PORT" or "[HOST]:PORT" into a socket address (numeric hosts and
 * "localhost"). Exposed for tests. */
P11N_MUST_USE p11n_rc p11n_listener_parse_addr(const char *spec, struct sockaddr_storage *out);
/* True for 127.0.0.0/8 and ::1. */
int p11n_listener_is_loopback(const struct sockaddr_storage *addr);

#endif
