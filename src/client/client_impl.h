/* The inside of a p11net_client and p11net_reply, shared by client.c (the
 * connection, pipelining) and ops.c (one call per operation, replies). */
#ifndef P11N_CLIENT_IMPL_H
#define P11N_CLIENT_IMPL_H

#include "p11net/client.h"
#include "proto.h"

struct p11net_reply {
    p11n_msg *msg; /* the decoded reply, err == false; owned */
};

/* Wraps msg (taking it) into a new reply; NULL (msg freed) when out of memory. */
p11net_reply *p11n_reply_wrap(p11n_msg *msg);
/* The handle's timeout for blocking calls. */
int p11n_client_timeout(const p11net_client *c);

#endif
