/* hx_http — /metrics, /healthz and /readyz with libmicrohttpd (one internal polling
 * thread, so requests are handled one at a time) and a uv_async_t hand-off to the loop
 * that owns the state. The HTTP side never touches that state: it asks, and waits on a
 * condition variable with a deadline. A request that timed out is simply superseded: the
 * loop stamps its answer with the request's sequence number and a stale answer is dropped. */
#include "hx_http.h"
#include "hx_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

enum { PAGE_HEALTH = 0 };                       /* beside hx_http_page_t: the round trip only */

struct hx_http {
    uv_async_t async;                           /* first: the close callback frees the struct */
    struct MHD_Daemon *daemon;
    int fd;
    int port;
    hx_http_page_fn page;
    void *arg;
    uint32_t timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* under mu */
    uint64_t asked, answered;                   /* sequence numbers of the exchange */
    int want;                                   /* page of request `asked` */
    int status;                                 /* of request `answered` */
    hx_buf_t body;                              /* of request `answered` */
    bool stopping;
    hx_buf_t scratch;                           /* the loop's own buffer */
};

/* Splits HOST:PORT; host may be [v6]. -1 when it is not that shape. */
static int split_listen(const char *value, char *host, size_t cap, long *port)
{
    const char *colon = value ? strrchr(value, ':') : NULL;
    if (!colon || colon == value || !colon[1])
        return -1;
    const char *h = value;
    size_t hl = (size_t)(colon - value);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']')
            return -1;
        h++;
        hl -= 2;
    } else if (memchr(h, ':', hl)) {
        return -1;                              /* a bare IPv6 address needs brackets */
    }
    if (hl >= cap)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    *port = strtol(colon + 1, &end, 10);
    if (*end || errno || *port < 0 || *port > 65535 || colon[1] == '-' || colon[1] == '+')
        return -1;
    return 0;
}

int hx_http_parse_listen(const char *prog, const char *setting, const char *value)
{
    char host[256];
    long port;
    if (split_listen(value, host, sizeof host, &port) != 0) {
        fprintf(stderr, "%s: %s: must be HOST:PORT (e.g. 127.0.0.1:9100 or [::1]:9100, port 0..65535), got '%s'\n",
                prog, setting, value ? value : "");
        return -1;
    }
    return 0;
}

static void on_close(uv_handle_t *handle)
{
    hx_http_t *h = (hx_http_t *)handle;
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mu);
    hx_buf_free(&h->body);
    hx_buf_free(&h->scratch);
    free(h);
}

/* On the loop thread: answers the request that is waiting, if any. */
static void on_async(uv_async_t *a)
{
    hx_http_t *h = (hx_http_t *)a;
    pthread_mutex_lock(&h->mu);
    uint64_t seq = h->asked;
    int want = h->want;
    bool pending = seq > h->answered && !h->stopping;
    pthread_mutex_unlock(&h->mu);
    if (!pending)
        return;
    h->scratch.len = 0;
    int status = 200;
    if (want == PAGE_HEALTH)
        status = hx_buf_append(&h->scratch, "ok\n", 3) ? 500 : 200;
    else
        status = h->page(h->arg, (hx_http_page_t)want, &h->scratch);
    pthread_mutex_lock(&h->mu);
    if (h->asked == seq) {                      /* not superseded while we wrote it */
        hx_buf_t t = h->body;
        h->body = h->scratch;
        h->scratch = t;
        h->status = status;
        h->answered = seq;
        pthread_cond_broadcast(&h->cond);
    }
    pthread_mutex_unlock(&h->mu);
}

/* On the HTTP thread: asks the loop for a page; the status, and a malloc'd copy of the body
 * in *body (NULL and 503 when the loop did not answer in time). */
static int ask_loop(hx_http_t *h, int page, char **body, size_t *len)
{
    *body = NULL;
    *len = 0;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += h->timeout_ms / 1000;
    deadline.tv_nsec += (long)(h->timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->mu);
    uint64_t seq = ++h->asked;
    h->want = page;
    int status = 503;
    if (!h->stopping) {
        uv_async_send(&h->async);
        while (h->answered < seq && !h->stopping)
            if (pthread_cond_timedwait(&h->cond, &h->mu, &deadline) == ETIMEDOUT)
                break;
        if (h->answered == seq) {
            status = h->status;
            *body = malloc(h->body.len ? h->body.len : 1);
            if (*body) {
                if (h->body.len)
                    memcpy(*body, h->body.data, h->body.len);
                *len = h->body.len;
            } else {
                status = 500;
            }
        }
    }
    pthread_mutex_unlock(&h->mu);
    return status;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type, char *body, size_t len)
{
    struct MHD_Response *r = body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
                                  : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static char *text_copy(const char *s, size_t *len)
{
    *len = strlen(s);
    char *c = malloc(*len + 1);
    if (c)
        memcpy(c, s, *len + 1);
    return c;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_len, void **state)
{
    (void)version;
    (void)upload;
    static int first;
    hx_http_t *h = cls;
    if (*state == NULL) {                       /* headers only so far: answer on the next call */
        *state = &first;
        return MHD_YES;
    }
    if (*upload_len) {                          /* a body we do not want: discard it */
        *upload_len = 0;
        return MHD_YES;
    }
    static const char plain[] = "text/plain; charset=utf-8";
    size_t len;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        char *b = text_copy("only GET and HEAD\n", &len);
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, plain, b, len);
    }
    int page = strcmp(url, "/metrics") == 0   ? HX_HTTP_METRICS
               : strcmp(url, "/readyz") == 0  ? HX_HTTP_READY
               : strcmp(url, "/healthz") == 0 ? PAGE_HEALTH
                                              : -1;
    if (page < 0) {
        char *b = text_copy("not found: try /metrics, /healthz or /readyz\n", &len);
        return reply(conn, MHD_HTTP_NOT_FOUND, plain, b, len);
    }
    char *body;
    int status = ask_loop(h, page, &body, &len);
    if (!body) {
        char why[96];
        snprintf(why, sizeof why, "the event loop did not answer within %u ms\n", h->timeout_ms);
        body = text_copy(why, &len);
        status = 503;
    }
    return reply(conn, (unsigned)status,
                 page == HX_HTTP_METRICS && status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : plain,
                 body, len);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    hx_warn("http: %s", line);
}

/* A listening TCP socket for HOST:PORT, or -1 with the reason in err. */
static int listen_on(const char *where, char *err, size_t errcap)
{
    char host[256], portstr[8];
    long port;
    if (split_listen(where, host, sizeof host, &port) != 0) {
        snprintf(err, errcap, "must be HOST:PORT, got '%s'", where ? where : "");
        return -1;
    }
    snprintf(portstr, sizeof portstr, "%ld", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errcap, "%s: %s", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
            e = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errcap, "cannot listen on %s: %s", where, strerror(e));
    return fd;
}

hx_http_t *hx_http_start(const hx_http_opts_t *o, char *err, size_t errcap)
{
    if (!o || !o->loop || !o->page) {
        snprintf(err, errcap, "hx_http_start: loop and page are required");
        return NULL;
    }
    hx_http_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    h->page = o->page;
    h->arg = o->arg;
    h->timeout_ms = o->timeout_ms ? o->timeout_ms : 2000;
    h->fd = listen_on(o->listen, err, errcap);
    if (h->fd < 0)
        goto fail_free;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(h->fd, (struct sockaddr *)&ss, &sl) == 0)
        h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&h->mu, NULL);
    if (uv_async_init(o->loop, &h->async, on_async) != 0) {
        snprintf(err, errcap, "cannot wake the event loop");
        goto fail_sync;
    }
    /* The daemon takes the socket; a slow or silent client is dropped after 10 s. */
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, h,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,      /* first, as MHD asks */
                                 MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                 MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                 (size_t)32768, MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(err, errcap, "cannot start the HTTP server on %s", o->listen);
        uv_close((uv_handle_t *)&h->async, on_close);   /* frees h once the loop runs; the
                                                           socket is MHD's to close on failure */
        return NULL;
    }
    return h;

fail_sync:
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->mu);
    close(h->fd);
fail_free:
    free(h);
    return NULL;
}

int hx_http_port(const hx_http_t *h)
{
    return h ? h->port : 0;
}

void hx_http_stop(hx_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_http_t *h = *self_p;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;                         /* a waiting request answers 503 now */
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->mu);
    /* Quiescing hands the listening socket back (closed after the threads are gone);
     * stopping joins the thread, so no uv_async_send can follow the close below. */
    MHD_socket fd = MHD_quiesce_daemon(h->daemon);
    MHD_stop_daemon(h->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    uv_close((uv_handle_t *)&h->async, on_close);
    *self_p = NULL;
}
