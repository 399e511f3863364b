/* hx_store_memory — the in-memory store: each body is one allocation, the handle its address. */
#include "hx_store.h"
#include "hx_wire.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    hx_store_t base;
    size_t bytes;
} memory_store_t;

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

static int mem_get(hx_store_t *s, uint64_t handle, const uint8_t **data, size_t *len)
{
    (void)s;
    const body_t *b = (const body_t *)(uintptr_t)handle;
    *data = b->data;
    *len = b->len;
    return 0;
}

static void mem_settle(hx_store_t *s, uint64_t handle)
{
    memory_store_t *m = (memory_store_t *)s;
    body_t *b = (body_t *)(uintptr_t)handle;
    m->bytes -= b->len;
    free(b);
}

static size_t mem_bytes(const hx_store_t *s)
{
    return ((const memory_store_t *)s)->bytes;
}

static void mem_destroy(hx_store_t *s)
{
    free(s);
}

static const hx_store_ops_t memory_ops = {mem_put, mem_get, mem_settle, mem_bytes, mem_destroy};

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
