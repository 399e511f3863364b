/* hx_cluster_internal — what hx_cluster.c shares with hx_cluster_rekey.c: sealing an entry or
 * a snapshot with the data key, and whether a directory holds a Raft log. */
#ifndef HX_CLUSTER_INTERNAL_H
#define HX_CLUSTER_INTERNAL_H
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hx_wire.h"

/* plain sealed into out (replacing it): "HXSK", length, nonce, box, padding to 8. 0 or
 * HX_ENOMEM. */
int hx_cluster_seal(const uint8_t key[crypto_secretbox_KEYBYTES], const uint8_t *plain, size_t len, hx_buf_t *out);
/* Whether data is sealed (*sealed); if so, opened into out (0), or HX_EINVAL (not this key's,
 * or damaged), HX_EDENIED (sealed, and key is NULL). In clear: 0 and out untouched. */
int hx_cluster_unseal(const uint8_t *key, const uint8_t *data, size_t len, hx_buf_t *out, bool *sealed);
/* Whether dir holds a Raft log: a snapshot, a closed segment or an open segment not empty. */
bool hx_cluster_log_there(const char *dir);

#endif
