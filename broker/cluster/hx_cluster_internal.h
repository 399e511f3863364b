/* hx_cluster_internal — what hx_cluster.c shares with hx_cluster_rekey.c and its tests: sealing
 * an entry or a snapshot with the data key, whether a directory holds a Raft log, and the list
 * of the nodes' audit heads the replicated state keeps. */
#ifndef HX_CLUSTER_INTERNAL_H
#define HX_CLUSTER_INTERNAL_H
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hx_store.h"
#include "hx_wire.h"

/* plain sealed into out (replacing it): "HXSK", length, nonce, box, padding to 8. 0 or
 * HX_ENOMEM. */
int hx_cluster_seal(const uint8_t key[crypto_secretbox_KEYBYTES], const uint8_t *plain, size_t len, hx_buf_t *out);
/* Whether data is sealed (*sealed); if so, opened into out (0), or HX_EINVAL (not this key's,
 * or damaged), HX_EDENIED (sealed, and key is NULL). In clear: 0 and out untouched. */
int hx_cluster_unseal(const uint8_t *key, const uint8_t *data, size_t len, hx_buf_t *out, bool *sealed);
/* Whether dir holds a Raft log: a snapshot, a closed segment or an open segment not empty. */
bool hx_cluster_log_there(const char *dir);

/* A node's audit chain head as the replicated state keeps it. */
typedef struct {
    uint64_t node;
    uint8_t len;
    uint8_t blob[HX_STORE_ANCHOR_MAX];
} hx_cluster_anchor_t;

/* Node node's head (len <= HX_STORE_ANCHOR_MAX) recorded in list (*n of them, at most max),
 * which is kept in the order last recorded: a node's new head moves it to the end; when max
 * nodes are there, the one recorded least recently (a node long gone, never a serving one)
 * is forgotten for the new one. */
void hx_cluster_anchor_put(hx_cluster_anchor_t *list, size_t *n, size_t max, uint64_t node, const uint8_t *blob,
                           size_t len);

#endif
