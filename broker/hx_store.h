/* hx_store — where the broker keeps accepted message bodies. The router holds only
 * handles; a store may keep bodies in memory (hx_store_memory_new) or, later, in a
 * durable log. */
#ifndef HX_STORE_H
#define HX_STORE_H
#include <stddef.h>
#include <stdint.h>

typedef struct hx_store hx_store_t;

typedef struct {
    /* Keeps a copy of data; sets *handle. Returns 0 or a negative HX_ error. */
    int (*put)(hx_store_t *s, const uint8_t *data, size_t len, uint64_t *handle);
    /* Points *data at the body of handle, valid until the next call on the store. */
    int (*get)(hx_store_t *s, uint64_t handle, const uint8_t **data, size_t *len);
    /* The message is settled: its body is no longer needed. */
    void (*settle)(hx_store_t *s, uint64_t handle);
    /* Bytes of bodies held. */
    size_t (*bytes)(const hx_store_t *s);
    void (*destroy)(hx_store_t *s);
} hx_store_ops_t;

struct hx_store {
    const hx_store_ops_t *ops;
};

/* A store that keeps bodies in memory: lost on restart. */
hx_store_t *hx_store_memory_new(void);
/* Destroys any store and NULLs the pointer. */
void hx_store_destroy(hx_store_t **self_p);

#endif
