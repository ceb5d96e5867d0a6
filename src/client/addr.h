/* Server addresses as the command line and p11net_connect take them:
 * "HOST:PORT", "[IPV6]:PORT" or "unix:/path". Shared by the blocking library and
 * the libuv engine of `run` and `bench`. */
#ifndef P11N_CLIENT_ADDR_H
#define P11N_CLIENT_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#include "err.h"

struct p11n_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Parses and resolves text (getaddrinfo: may block on DNS; call at setup only).
 * P11N_E_USAGE for a malformed address, P11N_E_IO when the name does not resolve;
 * why (if not NULL) then gets a short explanation. */
P11N_MUST_USE p11n_rc p11n_addr_resolve(const char *text, struct p11n_addr *out, const char **why);

/* The host part of "HOST:PORT" / "[IPV6]:PORT" (what a server certificate must
 * name); P11N_E_USAGE for unix: addresses and malformed text. */
P11N_MUST_USE p11n_rc p11n_addr_host(const char *text, char *host, size_t cap);

#endif
