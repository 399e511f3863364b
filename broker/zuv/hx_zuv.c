/* hx_zuv — a ZeroMQ socket on a libuv loop. */
#include "hx_zuv.h"

#include <errno.h>
#include <stdint.h>

static bool has_input(hx_zuv_t *z)
{
    uint32_t events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(z->sock, ZMQ_EVENTS, &events, &len) != 0)
        return false;
    return (events & ZMQ_POLLIN) != 0;
}

/* Receives until EAGAIN (or the budget): asking ZMQ_EVENTS before each message would cost a
 * poll and a getpid per message, while a failed non-blocking receive costs them once per
 * drain. The edge-triggered ZMQ_FD stays safe: on_prepare asks ZMQ_EVENTS once before the
 * loop blocks, which also catches input that a send in between took in. */
void hx_zuv_drain(hx_zuv_t *z)
{
    zmq_msg_t parts[HX_ZUV_MAX_PARTS];
    for (unsigned k = 0; k < z->budget; k++) {
        size_t n = 0;
        int more = 1;
        while (more) {
            zmq_msg_t scratch;
            zmq_msg_t *m = n < HX_ZUV_MAX_PARTS ? &parts[n] : &scratch;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, z->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(m);
                break;                          /* EAGAIN: nothing (more) to read */
            }
            more = zmq_msg_more(m);
            if (m == &scratch)
                zmq_msg_close(m);               /* too many parts: counted, not kept */
            n++;
        }
        if (n == 0)
            return;
        z->recv(z, parts, n, z->arg);
        for (size_t i = 0; i < n && i < HX_ZUV_MAX_PARTS; i++)
            zmq_msg_close(&parts[i]);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    hx_zuv_drain(h->data);
}

static void on_check(uv_check_t *h)
{
    hx_zuv_drain(h->data);
}

static void on_idle(uv_idle_t *h)
{
    (void)h;                                    /* its presence keeps uv_run from blocking */
}

static void on_prepare(uv_prepare_t *h)
{
    hx_zuv_t *z = h->data;
    if (has_input(z))
        uv_idle_start(&z->idle, on_idle);
    else
        uv_idle_stop(&z->idle);
}

int hx_zuv_init(hx_zuv_t *z, uv_loop_t *loop, void *sock, hx_zuv_recv_fn recv, void *arg)
{
    int fd;
    size_t len = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0)
        return UV_EINVAL;
    z->sock = sock;
    z->recv = recv;
    z->arg = arg;
    z->budget = 1024;
    z->open_handles = 0;
    z->on_closed = NULL;
    int rc = uv_poll_init(loop, &z->poll, fd);
    if (rc)
        return rc;
    uv_check_init(loop, &z->check);
    uv_prepare_init(loop, &z->prepare);
    uv_idle_init(loop, &z->idle);
    z->poll.data = z->check.data = z->prepare.data = z->idle.data = z;
    z->open_handles = 4;
    uv_poll_start(&z->poll, UV_READABLE, on_poll);
    uv_check_start(&z->check, on_check);
    uv_prepare_start(&z->prepare, on_prepare);
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    hx_zuv_t *z = h->data;
    if (--z->open_handles == 0 && z->on_closed)
        z->on_closed(z);
}

void hx_zuv_close(hx_zuv_t *z, void (*on_closed)(hx_zuv_t *z))
{
    z->on_closed = on_closed;
    if (z->open_handles == 0) {
        if (on_closed)
            on_closed(z);
        return;
    }
    uv_poll_stop(&z->poll);
    uv_close((uv_handle_t *)&z->poll, on_handle_closed);
    uv_close((uv_handle_t *)&z->check, on_handle_closed);
    uv_close((uv_handle_t *)&z->prepare, on_handle_closed);
    uv_close((uv_handle_t *)&z->idle, on_handle_closed);
}
