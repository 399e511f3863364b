/* hx_pool — fixed-size objects from 2 MiB aligned blocks (hx_pool.h). */
#include "hx_pool.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define POOL_PASSTHROUGH 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_PASSTHROUGH 1
#endif
#endif

/* Blocks are mapped (mmap) rather than taken from malloc: a 2 MiB block aligned to 2 MiB from
 * malloc would leave up to a block's worth of unusable fragments beside each one. Only the
 * pages touched count in the RSS. 2 MiB, aligned: a transparent huge page each, asked for
 * once the pool has grown past HUGE_AFTER blocks (a million entries then cost 45 page faults,
 * not 21,000, and a TLB entry per 2 MiB; a small broker keeps 4 KiB pages). */
#define BLOCK_BYTES ((size_t)2 << 20)
#define HUGE_AFTER 2

typedef struct block {
    struct block *prev, *next;          /* every block of the pool */
    struct block *fprev, *fnext;        /* the blocks with a free object */
    void *free;                         /* objects given back, each holding the next */
    uint32_t bump;                      /* objects [0, bump) have been handed out once */
    uint32_t used;
    bool on_free_list;
} block_t;

struct hx_pool {
    size_t size;                        /* an object's bytes, a multiple of 8 */
    uint32_t per_block;
    size_t offset;                      /* the first object's place in its block */
    block_t *all, *with_free;
    size_t blocks, used;
    block_t *spare;                     /* one empty block kept (NULL: none) */
};

hx_pool_t *hx_pool_new(size_t size)
{
    if (size == 0 || size > 4096)
        return NULL;
    hx_pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->size = (size + 7) & ~(size_t)7;
    p->offset = (sizeof(block_t) + 15) & ~(size_t)15;
    p->per_block = (uint32_t)((BLOCK_BYTES - p->offset) / p->size);
    return p;
}

#ifndef POOL_PASSTHROUGH
static void free_list_add(hx_pool_t *p, block_t *b)
{
    b->fprev = NULL;
    b->fnext = p->with_free;
    if (p->with_free)
        p->with_free->fprev = b;
    p->with_free = b;
    b->on_free_list = true;
}

static void free_list_remove(hx_pool_t *p, block_t *b)
{
    if (b->fprev)
        b->fprev->fnext = b->fnext;
    else
        p->with_free = b->fnext;
    if (b->fnext)
        b->fnext->fprev = b->fprev;
    b->fprev = b->fnext = NULL;
    b->on_free_list = false;
}

static void block_release(hx_pool_t *p, block_t *b)
{
    if (b->on_free_list)
        free_list_remove(p, b);
    if (b->prev)
        b->prev->next = b->next;
    else
        p->all = b->next;
    if (b->next)
        b->next->prev = b->prev;
    p->blocks--;
    munmap(b, BLOCK_BYTES);
}

/* A block-sized, block-aligned mapping: twice the size mapped, the rest given back. */
static void *block_map(void)
{
    size_t len = 2 * BLOCK_BYTES;
    char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)m + BLOCK_BYTES - 1) & ~(uintptr_t)(BLOCK_BYTES - 1);
    size_t head = a - (uintptr_t)m, tail = len - head - BLOCK_BYTES;
    if (head)
        munmap(m, head);
    if (tail)
        munmap((char *)a + BLOCK_BYTES, tail);
    return (void *)a;
}

static block_t *block_new(hx_pool_t *p)
{
    block_t *b = block_map();
    if (!b)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (p->blocks >= HUGE_AFTER)
        madvise(b, BLOCK_BYTES, MADV_HUGEPAGE);  /* a hint: without THP, 4 KiB pages */
#endif
    memset(b, 0, sizeof *b);            /* (a fresh mapping is zeroed already; cheap) */
    b->next = p->all;
    if (p->all)
        p->all->prev = b;
    p->all = b;
    p->blocks++;
    free_list_add(p, b);
    return b;
}

#endif

void *hx_pool_alloc(hx_pool_t *p)
{
#ifdef POOL_PASSTHROUGH
    void *o = calloc(1, p->size);
    p->used += o != NULL;
    return o;
#else
    block_t *b = p->with_free;
    if (!b && !(b = block_new(p)))
        return NULL;
    void *o;
    if (b->free) {
        o = b->free;
        memcpy(&b->free, o, sizeof(void *));
    } else {
        o = (char *)b + p->offset + (size_t)b->bump++ * p->size;
    }
    if (b == p->spare)
        p->spare = NULL;
    b->used++;
    p->used++;
    if (!b->free && b->bump == p->per_block)
        free_list_remove(p, b);
    return memset(o, 0, p->size);
#endif
}

void hx_pool_free(hx_pool_t *p, void *obj)
{
    if (!obj)
        return;
    p->used--;
#ifdef POOL_PASSTHROUGH
    free(obj);
#else
    block_t *b = (block_t *)((uintptr_t)obj & ~(uintptr_t)(BLOCK_BYTES - 1));
    memcpy(obj, &b->free, sizeof(void *));
    b->free = obj;
    if (!b->on_free_list)
        free_list_add(p, b);
    if (--b->used > 0)
        return;
    if (!p->spare) {                    /* kept for the next burst */
        p->spare = b;
        return;
    }
    block_release(p, b);
#endif
}

void hx_pool_destroy(hx_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_pool_t *p = *self_p;
#ifndef POOL_PASSTHROUGH
    while (p->all)
        block_release(p, p->all);
#endif
    free(p);
    *self_p = NULL;
}

size_t hx_pool_bytes(const hx_pool_t *p)
{
#ifdef POOL_PASSTHROUGH
    return p->used * p->size;
#else
    return p->blocks * BLOCK_BYTES;
#endif
}

size_t hx_pool_used(const hx_pool_t *p)
{
    return p->used;
}
