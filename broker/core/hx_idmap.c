/* hx_idmap — see hx_idmap.h. */
#include "hx_idmap.h"
#include "hx_wire.h"

#include <sodium.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>

#define MIN_CAP 1024

/* 64 x 64 -> 128-bit multiply, folded: the mixing step of wyhash. */
static uint64_t mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* A keyed hash of the 16 bytes: two folded multiplies under a 256-bit secret drawn at start
 * (as Go's and Rust's maps seed theirs against hash flooding), ten-odd instructions where
 * SipHash-2-4 took about a hundred, on a path taken several times per message. */
static uint64_t id_hash(const hx_idmap_t *m, const uint8_t *id)
{
    uint64_t lo, hi;
    memcpy(&lo, id, 8);
    memcpy(&hi, id + 8, 8);
    return mum(mum(lo ^ m->key[0], hi ^ m->key[1]) ^ m->key[2], m->key[3]);
}

/* Big tables (a million messages: 32 MiB of slots) are mapped with transparent huge pages
 * asked for: each lookup lands on a random slot, and with 4 KiB pages nearly every one was a
 * TLB miss (costly in a VM) besides the cache miss; mapping them page by page also cost a
 * fault per 4 KiB. Small ones come from calloc. */
#define HUGE_FROM ((size_t)2 << 20)

static hx_idmap_slot_t *slots_alloc(size_t cap)
{
    size_t bytes = cap * sizeof(hx_idmap_slot_t);
    if (bytes < HUGE_FROM)
        return calloc(cap, sizeof(hx_idmap_slot_t));
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);            /* a hint: without THP, 4 KiB pages */
#endif
    return p;                                    /* zeroed */
}

static void slots_free(hx_idmap_slot_t *slots, size_t cap)
{
    if (!slots)
        return;
    size_t bytes = cap * sizeof(hx_idmap_slot_t);
    if (bytes < HUGE_FROM)
        free(slots);
    else
        munmap(slots, bytes);
}

int hx_idmap_init(hx_idmap_t *m)
{
    memset(m, 0, sizeof *m);
    if (sodium_init() < 0)
        return HX_ENOMEM;
    randombytes_buf(m->key, sizeof m->key);
    m->key[3] |= 1;                                 /* an odd multiplier */
    m->slots = slots_alloc(MIN_CAP);
    if (!m->slots)
        return HX_ENOMEM;
    m->cap = MIN_CAP;
    return 0;
}

void hx_idmap_free(hx_idmap_t *m)
{
    slots_free(m->slots, m->cap);
    m->slots = NULL;
    m->cap = m->n = 0;
}

void hx_idmap_clear(hx_idmap_t *m, void (*release)(void *rec))
{
    if (!m->slots)
        return;
    if (release)
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].rec)
                release(m->slots[i].rec);
    memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->n = 0;
}

void *hx_idmap_find(const hx_idmap_t *m, const uint8_t *id)
{
    uint64_t h = id_hash(m, id);
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const hx_idmap_slot_t *s = &m->slots[i];
        if (!s->rec)
            return NULL;
        if (s->hash == h && memcmp(s->rec, id, HX_ID_LEN) == 0)
            return s->rec;
    }
}

static void place(hx_idmap_slot_t *slots, size_t cap, uint64_t h, void *rec)
{
    size_t mask = cap - 1;
    size_t i = (size_t)h & mask;
    while (slots[i].rec)
        i = (i + 1) & mask;
    slots[i].hash = h;
    slots[i].rec = rec;
}

/* The records moved to a table of cap slots (which holds them all). 0 or HX_ENOMEM. */
static int resize(hx_idmap_t *m, size_t cap)
{
    hx_idmap_slot_t *slots = slots_alloc(cap);
    if (!slots)
        return HX_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].rec)
            place(slots, cap, m->slots[i].hash, m->slots[i].rec);
    slots_free(m->slots, m->cap);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int hx_idmap_put(hx_idmap_t *m, void *rec)
{
    if ((m->n + 1) * 10 > m->cap * 7 && resize(m, m->cap * 2) != 0)    /* at most 70% full */
        return HX_ENOMEM;
    place(m->slots, m->cap, id_hash(m, rec), rec);
    m->n++;
    return 0;
}

void hx_idmap_remove(hx_idmap_t *m, const uint8_t *id)
{
    uint64_t h = id_hash(m, id);
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    for (;; i = (i + 1) & mask) {
        if (!m->slots[i].rec)
            return;
        if (m->slots[i].hash == h && memcmp(m->slots[i].rec, id, HX_ID_LEN) == 0)
            break;
    }
    /* Backward shift: move up every later record of the run that may sit in the hole, so
     * no lookup meets an empty slot before its record. */
    size_t hole = i;
    for (size_t j = (hole + 1) & mask; m->slots[j].rec; j = (j + 1) & mask) {
        size_t home = (size_t)m->slots[j].hash & mask;
        /* j may move to hole when its home is not in (hole, j] (cyclically) */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].rec = NULL;
    m->slots[hole].hash = 0;
    m->n--;
    /* A queue that drained gives its table back: halved once under 1/8 full (then under a
     * quarter: far from the 70% that doubles it again). Without memory for the smaller
     * table, the bigger one stays. */
    if (m->cap > MIN_CAP && m->n < m->cap / 8)
        (void)resize(m, m->cap / 2);
}
