/* hx_pool — fixed-size objects carved from 2 MiB blocks: the router's per-message entries.
 * malloc gives each of them an 8-byte header and rounds it up to 16 bytes (an entry of 88
 * bytes took 96, of 112 took 128); a million queued messages pay that a million times. A block is aligned
 * to its size, so an object finds its block by masking its address; a block with a free
 * object is on a list; a block that empties is given back (one empty block is kept for the
 * next burst). Under the sanitizers every object is its own calloc, so ASan still sees a
 * use after free. Not thread-safe: the router's loop thread owns it. */
#ifndef HX_POOL_H
#define HX_POOL_H
#include <stddef.h>

typedef struct hx_pool hx_pool_t;

/* A pool of objects of `size` bytes (at most 4096; aligned to 8). NULL when out of memory. */
hx_pool_t *hx_pool_new(size_t size);
/* Frees every block, objects still out included. */
void hx_pool_destroy(hx_pool_t **self_p);
/* A zeroed object, or NULL when out of memory. */
void *hx_pool_alloc(hx_pool_t *p);
/* Gives obj (from hx_pool_alloc of p; NULL is ignored) back. */
void hx_pool_free(hx_pool_t *p, void *obj);
/* Bytes the pool holds from the system (blocks), and objects out now. */
size_t hx_pool_bytes(const hx_pool_t *p);
size_t hx_pool_used(const hx_pool_t *p);

#endif
