/* Whole reads and writes on a descriptor, for the bench helpers (they link none of
 * p11net's libraries, to measure only what they measure). */
#ifndef P11N_BENCH_FDIO_H
#define P11N_BENCH_FDIO_H

#include <errno.h>
#include <stddef.h>
#include <unistd.h>

/* 0 once all len bytes are written; -1 on error. */
static inline int write_all(int fd, const void *p, size_t len)
{
    const unsigned char *c = p;
    while (len) {
        ssize_t k = write(fd, c, len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k, len -= (size_t)k;
    }
    return 0;
}

/* 0 once all len bytes are read; -1 on error or end of file first. */
static inline int read_all(int fd, void *p, size_t len)
{
    unsigned char *c = p;
    while (len) {
        ssize_t k = read(fd, c, len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k, len -= (size_t)k;
    }
    return 0;
}

#endif
