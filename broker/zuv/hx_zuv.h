/* hx_zuv — a ZeroMQ socket on a libuv loop, drained correctly.
 *
 * ZMQ_FD is edge-triggered and signals "something changed", not "a message is here".
 * So: a uv_poll_t wakes the loop, a uv_check_t drains ZMQ_EVENTS/ZMQ_POLLIN after every
 * loop pass (also after our own sends, which can swallow the edge), and a uv_prepare_t
 * keeps an idle handle running while messages remain so the loop does not block on a
 * descriptor that will not fire again. Internal to the broker and its client library. */
#ifndef HX_ZUV_H
#define HX_ZUV_H
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include <zmq.h>

#define HX_ZUV_MAX_PARTS 8

typedef struct hx_zuv hx_zuv_t;
/* One whole multipart message. n may be > HX_ZUV_MAX_PARTS: then only the first parts are
 * filled and the message must be refused. The parts are closed after the callback. */
typedef void (*hx_zuv_recv_fn)(hx_zuv_t *z, zmq_msg_t *parts, size_t n, void *arg);

struct hx_zuv {
    void *sock;                 /* borrowed */
    uv_poll_t poll;
    uv_check_t check;
    uv_prepare_t prepare;
    uv_idle_t idle;
    hx_zuv_recv_fn recv;
    void *arg;
    unsigned budget;            /* messages per drain before yielding to the loop */
    int open_handles;
    void (*on_closed)(hx_zuv_t *z);
};

/* Attaches sock to loop. Returns 0 or a negative uv error. */
int hx_zuv_init(hx_zuv_t *z, uv_loop_t *loop, void *sock, hx_zuv_recv_fn recv, void *arg);
/* Receives what is waiting now (up to the budget). Call after sending from outside a callback. */
void hx_zuv_drain(hx_zuv_t *z);
/* Stops and closes the handles; on_closed (may be NULL) runs once all are closed, after
 * which the socket may be closed. */
void hx_zuv_close(hx_zuv_t *z, void (*on_closed)(hx_zuv_t *z));

#endif
