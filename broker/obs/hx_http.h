/* hx_http — the observability endpoints of a program on a libuv loop: GET /metrics,
 * /healthz and /readyz, served by libmicrohttpd on its own thread.
 *
 * The program's state belongs to its loop thread, so the HTTP thread never reads it: it
 * wakes the loop (uv_async_send), the loop writes the page into a buffer and signals, and
 * the HTTP thread waits at most timeout_ms for that. /healthz is exactly this round trip:
 * 200 "ok" when the loop answers in time, 503 when it does not. /metrics and /readyz are
 * written by the program's page function on the loop. */
#ifndef HX_HTTP_H
#define HX_HTTP_H
#include <stddef.h>
#include <stdint.h>
#include "hx_wire.h"

typedef struct hx_http hx_http_t;

typedef enum { HX_HTTP_METRICS = 1, HX_HTTP_READY = 2 } hx_http_page_t;

/* On the loop thread: appends the body of `page` to out and returns the HTTP status (200,
 * or 503 for /readyz with a one-line reason). */
typedef int (*hx_http_page_fn)(void *arg, hx_http_page_t page, hx_buf_t *out);

typedef struct {
    const char *listen;         /* "HOST:PORT" (checked by hx_http_parse_listen) */
    void *loop;                 /* the uv_loop_t whose thread owns the state */
    hx_http_page_fn page;
    void *arg;
    uint32_t timeout_ms;        /* how long a request waits for the loop; 0 = 2000 */
} hx_http_opts_t;

/* Checks a --http value: HOST:PORT, HOST a name, an IPv4 address or [IPv6], PORT 0..65535
 * (0: any free port). 0, or -1 with "<prog>: <setting>: why" on stderr. */
int hx_http_parse_listen(const char *prog, const char *setting, const char *value);
/* Binds and starts serving. NULL with the reason in err. */
hx_http_t *hx_http_start(const hx_http_opts_t *o, char *err, size_t errcap);
/* The TCP port it listens on (useful with port 0). */
int hx_http_port(const hx_http_t *h);
/* On the loop thread, before its handles are closed: answers waiting requests 503, stops
 * the server and closes the loop handle; the memory goes when the loop runs the close
 * callback. NULLs the pointer. */
void hx_http_stop(hx_http_t **self_p);

#endif
