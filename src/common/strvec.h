/* A growable list of owned NUL-terminated strings: the `data` of a reply. */
#ifndef P11N_STRVEC_H
#define P11N_STRVEC_H

#include "buf.h"

struct p11n_strvec {
    char **items;
    size_t len, cap;
};

/* Appends a copy of s (which may contain no NUL) as a new string. */
P11N_MUST_USE p11n_rc p11n_strvec_push(struct p11n_strvec *v, struct p11n_slice s);
/* Appends a formatted string. */
P11N_MUST_USE p11n_rc p11n_strvec_pushf(struct p11n_strvec *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Takes ownership of buf's bytes as a string (buf must end with a NUL past len,
 * as p11n_b64_encode leaves it); buf is left empty. */
P11N_MUST_USE p11n_rc p11n_strvec_take(struct p11n_strvec *v, struct p11n_buf *buf);
/* Wipes and frees every string: replies may carry plaintexts. */
void p11n_strvec_cleanup(struct p11n_strvec *v);

#endif
