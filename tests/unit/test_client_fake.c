#include "test_client_fake.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "proto.h"

static void answer(int fd, p11n_msg **reqs, size_t n)
{
    struct p11n_buf out = {0};
    for (size_t i = n; i-- > 0;) {
        p11n_msg rep = P11NET__PROTO_MESSAGE__INIT;
        char text[512];
        char *data[1] = {text};
        p11n_msg *q = reqs[i];
        rep.id = q->id;
        rep.seq = q->seq;
        rep.n_data = 1;
        rep.data = data;
        if (q->n_data && strcmp(q->data[0], "fail") == 0) {
            rep.err = 1;
            rep.code = P11NET__ERROR_CODE__PIN_INCORRECT;
            snprintf(text, sizeof(text), "bad pin");
        } else {
            snprintf(text, sizeof(text), "%d:%s%s%s", (int)q->flag, q->n_data ? q->data[0] : "",
                     q->n_data > 1 ? ":" : "", q->n_data > 1 ? q->data[1] : "");
        }
        assert_int_equal(p11n_msg_append_frame(&rep, &out), P11N_OK);
        p11n_msg_free(q);
    }
    if (out.len) assert_true(write(fd, out.data, out.len) == (ssize_t)out.len);
    p11n_buf_cleanup(&out);
}

static void serve(struct fake *f, int fd)
{
    struct p11n_frame_decoder d;
    uint8_t buf[8192];
    ssize_t n;

    p11n_frame_decoder_init(&d, 1 << 20);
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        struct p11n_slice chunk = p11n_slice_of(buf, (size_t)n), body;
        p11n_msg *reqs[512];
        size_t nreq = 0;
        p11n_rc why;
        while (nreq < 512 && p11n_frame_next(&d, &chunk, &body, &why) == P11N_PARSE_FRAME)
            assert_int_equal(p11n_msg_decode(body, &reqs[nreq++]), P11N_OK);
        if (f->mode == FAKE_ECHO) {
            answer(fd, reqs, nreq);
            continue;
        }
        while (nreq) p11n_msg_free(reqs[--nreq]);
        if (f->mode == FAKE_CLOSE_AFTER_ONE) break;
    }
    p11n_frame_decoder_cleanup(&d);
    close(fd);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    for (int i = 0; i < f->conns; i++) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) break;
        serve(f, fd);
    }
    return NULL;
}

void fake_start(struct fake *f, enum fake_mode mode, int conns)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    f->mode = mode;
    f->conns = conns;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 64), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    assert_int_equal(pthread_create(&f->thr, NULL, fake_main, f), 0);
}

void fake_stop(struct fake *f)
{
    pthread_join(f->thr, NULL);
    close(f->lfd);
}
