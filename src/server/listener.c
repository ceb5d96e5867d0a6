#include "listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "reactor.h"
#include "tls.h"

/* The kernel caps this at net.core.somaxconn; ask for plenty so a burst of
 * connects is queued, not refused. */
#define LISTEN_BACKLOG 4096

p11n_rc p11n_listener_parse_addr(const char *spec, struct sockaddr_storage *out)
{
    char host[64];
    const char *colon, *port_s, *h = spec;
    size_t hlen;
    char *end;
    long port;

    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        P11N_ENSURE(close && close[1] == ':', P11N_E_USAGE);
        h = spec + 1;
        hlen = (size_t)(close - h);
        port_s = close + 2;
    } else {
        colon = strrchr(spec, ':');
        P11N_ENSURE(colon != NULL, P11N_E_USAGE);
        hlen = (size_t)(colon - spec);
        port_s = colon + 1;
    }
    P11N_ENSURE(hlen > 0 && hlen < sizeof(host), P11N_E_USAGE);
    memcpy(host, h, hlen);
    host[hlen] = 0;
    port = strtol(port_s, &end, 10);
    P11N_ENSURE(*port_s && !*end && port >= 0 && port <= 65535, P11N_E_USAGE);
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    memset(out, 0, sizeof(*out));
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0) return P11N_OK;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0) return P11N_OK;
    return P11N_E_USAGE;
}

int p11n_listener_is_loopback(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127;
    if (addr->ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)addr)->sin6_addr);
    return 0;
}

static void format_addr(const struct sockaddr_storage *a, char *buf, size_t len, int with_port)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (a->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)a, ip, sizeof(ip));
        port = ntohs(((const struct sockaddr_in *)a)->sin_port);
    } else if (a->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)a, ip, sizeof(ip));
        port = ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    }
    if (!with_port)
        snprintf(buf, len, "%s", ip);
    else if (a->ss_family == AF_INET6)
        snprintf(buf, len, "[%s]:%d", ip, port);
    else
        snprintf(buf, len, "%s:%d", ip, port);
}

/* Fills c's peer (for logs) and identity (for access decisions: the peer's address
 * without the port, so reconnecting does not make a new client). */
static void describe_peer(struct p11n_conn *c, int is_unix)
{
    struct sockaddr_storage a;
    int len = sizeof(a);

    if (is_unix) {
        struct ucred cred;
        socklen_t clen = sizeof(cred);
        uv_os_fd_t fd;
        if (uv_fileno(&c->h.handle, &fd) == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
            snprintf(c->peer, sizeof(c->peer), "unix:uid=%u", (unsigned)cred.uid);
        else
            snprintf(c->peer, sizeof(c->peer), "unix");
        snprintf(c->identity, sizeof(c->identity), "%s", c->peer);
        return;
    }
    if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&a, &len) != 0) {
        snprintf(c->peer, sizeof(c->peer), "?");
        snprintf(c->identity, sizeof(c->identity), "?");
        return;
    }
    format_addr(&a, c->peer, sizeof(c->peer), 1);
    format_addr(&a, c->identity, sizeof(c->identity), 0);
}

static void free_handle_cb(uv_handle_t *h)
{
    free(h->data);
}

void p11n_listener_serve(struct p11n_conn *c, int is_unix, int opened)
{
    struct p11n_server *srv = c->srv;

    if (!opened) {
        p11n_conn_close(c, "open_failed");
        return;
    }
    if (!is_unix) uv_tcp_nodelay(&c->h.tcp, 1);
    describe_peer(c, is_unix);
    if (srv->tls && !is_unix && p11n_tls_conn_new(srv->tls, NULL, &c->tls) != P11N_OK) {
        p11n_conn_close(c, "tls_setup");
        return;
    }
    if (p11n_conn_start(c) != P11N_OK) return; /* start closed it */
}

/* Counts a new connection against --max-conns; false when it is over. Only this
 * (the main loop) thread adds to n_conns, so check and add cannot race. */
static int admit(struct p11n_server *srv)
{
    if (atomic_load(&srv->draining) || atomic_load(&srv->n_conns) >= srv->cfg.max_conns) return 0;
    atomic_fetch_add(&srv->n_conns, 1);
    return 1;
}

/* Accepts on the main loop, then hands the socket to a reactor (reactor.h). A
 * libuv handle belongs to one loop, so the socket moves as a duplicate descriptor
 * and the accepting handle is closed. */
static void connection_cb(uv_stream_t *server, int status)
{
    struct p11n_listener *l = server->data;
    struct p11n_server *srv = l->srv;
    union p11n_stream *tmp;
    uv_os_fd_t fd;
    int own = -1;

    if (status < 0) {
        p11n_log(P11N_LOG_WARN, "listener=%s accept_error=%s", l->name, uv_err_name(status));
        return;
    }
    if (!(tmp = calloc(1, sizeof(*tmp)))) {
        p11n_log(P11N_LOG_WARN, "listener=%s accept_error=nomem", l->name);
        return;
    }
    if (l->is_unix)
        uv_pipe_init(srv->loop, &tmp->pipe, 0);
    else
        uv_tcp_init(srv->loop, &tmp->tcp);
    tmp->handle.data = tmp;
    if (uv_accept(server, &tmp->stream) == 0 && uv_fileno(&tmp->handle, &fd) == 0)
        own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    uv_close(&tmp->handle, free_handle_cb);
    if (own < 0) {
        p11n_log(P11N_LOG_WARN, "listener=%s accept_error=dup", l->name);
        return;
    }
    p11n_reactor_hand_off(srv, own, l->is_unix, !admit(srv));
}

static p11n_rc open_unix(struct p11n_server *srv, struct p11n_listener *l, const char *path)
{
    struct stat st;
    int rc;

    /* A socket file left by an earlier run would make bind fail; only ever remove
     * a socket, never another kind of file. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path);
    uv_pipe_init(srv->loop, &l->h.pipe, 0);
    if ((rc = uv_pipe_bind(&l->h.pipe, path)) != 0) {
        fprintf(stderr, "p11netd: cannot bind unix:%s: %s\n", path, uv_strerror(rc));
        return P11N_E_IO;
    }
    /* File permissions guard a Unix socket: owner and group only. */
    chmod(path, 0660);
    snprintf(l->name, sizeof(l->name), "unix:%s", path);
    l->is_unix = 1;
    return P11N_OK;
}

static p11n_rc open_tcp(struct p11n_server *srv, struct p11n_listener *l, const char *spec)
{
    struct sockaddr_storage addr;
    int len = sizeof(addr), rc;

    if (p11n_listener_parse_addr(spec, &addr) != P11N_OK) {
        fprintf(stderr, "p11netd: --listen needs HOST:PORT, [HOST]:PORT or unix:/path, not '%s'\n", spec);
        return P11N_E_USAGE;
    }
    if (!srv->tls && !srv->cfg.insecure && !p11n_listener_is_loopback(&addr)) {
        fprintf(stderr, "p11netd: refusing plaintext on non-loopback address %s; use --tls-cert/--tls-key, "
                        "or --insecure\n", spec);
        return P11N_E_USAGE;
    }
    uv_tcp_init(srv->loop, &l->h.tcp);
    if ((rc = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&addr, &len)) != 0) {
        fprintf(stderr, "p11netd: cannot bind %s: %s\n", spec, uv_strerror(rc));
        return P11N_E_IO;
    }
    format_addr(&addr, l->name, sizeof(l->name), 1);
    return P11N_OK;
}

static void listener_close_cb(uv_handle_t *h)
{
    free(h->data);
}

p11n_rc p11n_listener_open(struct p11n_server *srv, const char *spec)
{
    struct p11n_listener *l = calloc(1, sizeof(*l));
    p11n_rc rc;
    int err;

    P11N_ENSURE(l != NULL, P11N_E_NOMEM);
    l->srv = srv;
    rc = strncmp(spec, "unix:", 5) == 0 ? open_unix(srv, l, spec + 5) : open_tcp(srv, l, spec);
    l->h.handle.data = l;
    if (rc == P11N_OK && (err = uv_listen(&l->h.stream, LISTEN_BACKLOG, connection_cb)) != 0) {
        fprintf(stderr, "p11netd: cannot listen on %s: %s\n", spec, uv_strerror(err));
        rc = P11N_E_IO;
    }
    if (rc != P11N_OK) {
        if (l->h.handle.type != UV_UNKNOWN_HANDLE)
            uv_close(&l->h.handle, listener_close_cb);
        else
            free(l);
        return rc;
    }
    l->next = srv->listeners;
    srv->listeners = l;
    fprintf(stderr, "listening on %s%s\n", l->name, srv->tls && !l->is_unix ? " (tls)" : "");
    return P11N_OK;
}

void p11n_listener_close_all(struct p11n_server *srv)
{
    struct p11n_listener *l, *next;

    for (l = srv->listeners; l; l = next) {
        next = l->next;
        uv_close(&l->h.handle, listener_close_cb);
    }
    srv->listeners = NULL;
}
