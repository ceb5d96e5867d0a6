/* idle_conns: holds N idle connections to p11netd, for measuring what an idle
 * connection costs the server.
 *
 *   idle_conns HOST PORT N
 *
 * Raises its open-file limit to the hard limit, opens N TCP connections, pings on
 * each one (so that the server has really accepted and served it), prints
 *   connected=<n> served=<n> failed=<n>
 * and then holds every connection until a line (or EOF) arrives on stdin, when it
 * closes them all and exits: 0 when all N were served, 1 otherwise.
 *
 * The pings go out on all connections first and the replies are read after, so
 * the server holds N connections at once before any is answered. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdio.h"

/* A PROTOCOL.md frame: 4-byte big-endian length, then a ProtoMessage with
 * id = "i" and every other field at its default (flag ACK: a ping). */
static const unsigned char ping_frame[] = {0, 0, 0, 3, 0x0a, 0x01, 'i'};

/* Reads one reply frame; 0 when it arrived whole. */
static int read_reply(int fd)
{
    unsigned char hdr[4], body[4096];
    uint32_t len;

    if (read_all(fd, hdr, 4) != 0) return -1;
    len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len > sizeof(body)) return -1;
    return read_all(fd, body, len);
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct rlimit rl;
    long n;
    int *fds;
    long connected = 0, served = 0;
    char line[64];

    if (argc != 4 || (n = strtol(argv[3], NULL, 10)) < 1 || n > 1000000) {
        fprintf(stderr, "usage: idle_conns HOST PORT N\n");
        return 2;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        fprintf(stderr, "idle_conns: '%s' is not an IPv4 address\n", argv[1]);
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 16)
        fprintf(stderr, "idle_conns: open-file limit %llu is below %ld connections\n", (unsigned long long)rl.rlim_cur,
                n);
    if (!(fds = calloc((size_t)n, sizeof(*fds)))) return 1;

    for (long i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        fds[i] = -1;
        if (fd < 0) {
            fprintf(stderr, "idle_conns: socket %ld: %s\n", i, strerror(errno));
            break;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || write_all(fd, ping_frame, sizeof(ping_frame))) {
            fprintf(stderr, "idle_conns: connection %ld: %s\n", i, strerror(errno));
            close(fd);
            break;
        }
        fds[i] = fd;
        connected++;
    }
    for (long i = 0; i < connected; i++) {
        if (read_reply(fds[i]) == 0)
            served++;
        else if (served == i)
            fprintf(stderr, "idle_conns: connection %ld got no ping reply\n", i);
    }
    printf("connected=%ld served=%ld failed=%ld\n", connected, served, n - served);
    fflush(stdout);

    /* Hold until told (a line or EOF on stdin). */
    if (!fgets(line, sizeof(line), stdin)) line[0] = 0;
    for (long i = 0; i < connected; i++) close(fds[i]);
    free(fds);
    return served == n ? 0 : 1;
}
