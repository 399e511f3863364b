/* hx_idmap — message id -> record, for the router's lookups on every message.
 *
 * Open addressing with linear probing over 16-byte slots {hash, record}, at most 70% full,
 * deletion by backward shift (no tombstones). The hash mixes the whole id under a 256-bit
 * key drawn at start (libsodium's randombytes), so ids a client chooses to collide cannot
 * make lookups slow. Each record must begin with its 16-byte id: a lookup
 * compares the stored hash first and the id only on a match, so it usually touches one slot
 * and one record — against uthash's chains of up to ten records, each a cache miss. */
#ifndef HX_IDMAP_H
#define HX_IDMAP_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t hash;
    void *rec;                  /* NULL: empty */
} hx_idmap_slot_t;

typedef struct {
    hx_idmap_slot_t *slots;
    size_t cap;                 /* a power of two */
    size_t n;
    uint64_t key[4];
} hx_idmap_t;

int hx_idmap_init(hx_idmap_t *m);
void hx_idmap_free(hx_idmap_t *m);
/* The record whose first 16 bytes are id, or NULL. */
void *hx_idmap_find(const hx_idmap_t *m, const uint8_t *id);
/* Adds rec (whose first 16 bytes are its id, not in the map yet). 0 or HX_ENOMEM. */
int hx_idmap_put(hx_idmap_t *m, void *rec);
/* Removes the record with this id, if there is one (the table halves once under 1/8 full). */
void hx_idmap_remove(hx_idmap_t *m, const uint8_t *id);
/* Forgets every record, calling release(rec) on each first when release is not NULL (the
 * records themselves are the caller's); keeps the capacity. */
void hx_idmap_clear(hx_idmap_t *m, void (*release)(void *rec));
/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].rec) ... (no changes meanwhile). */

#endif
