/* A fake p11netd for the client's unit tests: a thread that accepts `conns`
 * connections one after another on 127.0.0.1:0 and answers requests without
 * any HSM. Replies to the requests read in one chunk go out in reverse order,
 * so they overtake each other. Reply data[0] is "<flag>:<data[0]>[:<data[1]>]";
 * a request whose data[0] is "fail" gets PIN_INCORRECT "bad pin". */
#ifndef P11N_TEST_CLIENT_FAKE_H
#define P11N_TEST_CLIENT_FAKE_H

#include <pthread.h>

enum fake_mode {
    FAKE_ECHO,            /* answer everything as above */
    FAKE_SILENT,          /* read, never answer */
    FAKE_CLOSE_AFTER_ONE, /* hang up after the first chunk of requests */
};

struct fake {
    int lfd;
    int conns;
    enum fake_mode mode;
    char addr[64]; /* HOST:PORT to connect to */
    pthread_t thr;
};

void fake_start(struct fake *f, enum fake_mode mode, int conns);
/* Waits until the fake has served all its connections (each ends on the client's EOF). */
void fake_stop(struct fake *f);

#endif
