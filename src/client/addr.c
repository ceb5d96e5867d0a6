#include "addr.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

static p11n_rc resolve_unix(const char *path, struct p11n_addr *out, const char **why)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;

    if (path[0] == '\0' || strlen(path) >= sizeof(un->sun_path)) {
        *why = "unix socket path empty or too long";
        return P11N_E_USAGE;
    }
    memset(un, 0, sizeof(*un));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, strlen(path) + 1);
    out->len = (socklen_t)sizeof(*un);
    return P11N_OK;
}

/* Splits "host:port" or "[v6]:port" at the last colon outside brackets. */
static p11n_rc split_host_port(const char *text, char *host, size_t host_cap, const char **port,
                               const char **why)
{
    const char *colon, *h = text;
    size_t hl;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            *why = "expected [IPV6]:PORT";
            return P11N_E_USAGE;
        }
        h = text + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon) {
            *why = "expected HOST:PORT or unix:/path";
            return P11N_E_USAGE;
        }
        hl = (size_t)(colon - text);
    }
    if (hl == 0 || hl >= host_cap || colon[1] == '\0') {
        *why = "empty or too long host, or no port";
        return P11N_E_USAGE;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = colon + 1;
    return P11N_OK;
}

p11n_rc p11n_addr_host(const char *text, char *host, size_t cap)
{
    const char *port, *why;
    if (!text || strncmp(text, "unix:", 5) == 0) return P11N_E_USAGE;
    return split_host_port(text, host, cap, &port, &why);
}

p11n_rc p11n_addr_resolve(const char *text, struct p11n_addr *out, const char **why)
{
    char host[256];
    const char *port, *dummy;
    struct addrinfo hints, *res = NULL;
    int rc;

    if (!why) why = &dummy;
    *why = NULL;
    memset(out, 0, sizeof(*out));
    if (!text) {
        *why = "no address";
        return P11N_E_USAGE;
    }
    if (strncmp(text, "unix:", 5) == 0) return resolve_unix(text + 5, out, why);
    P11N_TRY(split_host_port(text, host, sizeof(host), &port, why));
    for (const char *p = port; *p; p++) {
        if (*p < '0' || *p > '9' || p - port > 5) {
            *why = "port is not a number";
            return P11N_E_USAGE;
        }
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        *why = rc ? gai_strerror(rc) : "no address found";
        return P11N_E_IO;
    }
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return P11N_OK;
}
