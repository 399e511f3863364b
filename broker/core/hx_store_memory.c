/* hx_store_memory — the in-memory store: each body one allocation, its address the handle;
 * every transaction is durable as soon as it ends. */
#include "hx_store.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    hx_store_t base;
    size_t bytes;
    uint64_t seq;
} memory_store_t;

static int mem_ok(hx_store_t *s)
{
    (void)s;
    return 0;
}

typedef struct {
    size_t len;
    uint8_t data[];
} body_t;

static int mem_put(hx_store_t *s, const uint8_t *data, size_t len, uint64_t *handle)
{
    memory_store_t *m = (memory_store_t *)s;
    body_t *b = malloc(sizeof *b + len);
    if (!b)
        return HX_ENOMEM;
    b->len = len;
    memcpy(b->data, data, len);
    m->bytes += len;
    *handle = (uint64_t)(uintptr_t)b;
    return 0;
}

static int mem_id_op(hx_store_t *s, const uint8_t id[HX_ID_LEN])
{
    (void)s;
    (void)id;
    return 0;
}

static int mem_dead(hx_store_t *s, const uint8_t id[HX_ID_LEN], uint32_t attempts, uint64_t at_ms, const char *reason)
{
    (void)s, (void)id, (void)attempts, (void)at_ms, (void)reason;
    return 0;
}

static int mem_attempts(hx_store_t *s, const uint8_t id[HX_ID_LEN], uint32_t attempts)
{
    (void)s, (void)id, (void)attempts;
    return 0;
}

static int mem_end(hx_store_t *s, uint64_t *seq)
{
    *seq = ++((memory_store_t *)s)->seq;
    return 0;
}

static void mem_abort(hx_store_t *s)
{
    (void)s;
}

static int mem_get(hx_store_t *s, uint64_t handle, size_t len, const uint8_t **data)
{
    (void)s;
    (void)len;
    *data = ((const body_t *)(uintptr_t)handle)->data;
    return 0;
}

static void mem_release(hx_store_t *s, uint64_t handle)
{
    body_t *b = (body_t *)(uintptr_t)handle;
    ((memory_store_t *)s)->bytes -= b->len;
    free(b);
}

static void mem_flush(hx_store_t *s)
{
    (void)s;
}

static void mem_tick(hx_store_t *s, uint64_t now_ms)
{
    (void)s;
    (void)now_ms;
}

static int mem_health(const hx_store_t *s, const char **why)
{
    (void)s;
    *why = "";
    return 0;
}

static uint64_t mem_durable(const hx_store_t *s)
{
    return ((const memory_store_t *)s)->seq;
}

static int mem_recover(hx_store_t *s, const hx_store_visitor_t *v, void *arg)
{
    (void)s, (void)v, (void)arg;
    return 0;
}

static size_t mem_bytes(const hx_store_t *s)
{
    return ((const memory_store_t *)s)->bytes;
}

static void mem_destroy(hx_store_t *s)
{
    free(s);
}

static const hx_store_ops_t memory_ops = {
    .begin = mem_ok, .put = mem_put, .settle = mem_id_op, .dead = mem_dead, .revive = mem_id_op,
    .attempts = mem_attempts, .end = mem_end, .abort = mem_abort, .get = mem_get, .release = mem_release,
    .forget = mem_release,
    .flush = mem_flush, .tick = mem_tick, .health = mem_health, .durable_seq = mem_durable,
    .recover = mem_recover, .bytes = mem_bytes, .destroy = mem_destroy};

hx_store_t *hx_store_memory_new(void)
{
    memory_store_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->base.ops = &memory_ops;
    return &m->base;
}

void hx_store_destroy(hx_store_t **self_p)
{
    if (self_p && *self_p) {
        (*self_p)->ops->destroy(*self_p);
        *self_p = NULL;
    }
}
