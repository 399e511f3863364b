/* hx_seal — sealing a service's stored patient data at rest (docs/OPERATIONS.md, "Encryption at rest"):
 * libsodium's crypto_secretbox (XSalsa20-Poly1305) with a 32-byte key, a fresh random nonce
 * per value, as the broker seals message bodies in its log. A value is sealed as
 *   0x00 's' '2' | key id (4 bytes) | nonce (24 bytes) | box (the value and a 16-byte tag)
 * where the key id is the first 4 bytes of BLAKE2b-256(key): it tells which key sealed a value
 * (a rotation, a wrong key) without telling anything of the key. Values sealed before key ids
 * existed are
 *   0x00 's' '1' | nonce (24 bytes) | box
 * and are still read. A sealed value can never be taken for a clear one: a protobuf message
 * never begins with 0x00 (field number 0 is invalid), and stored text holds no NUL. So a store
 * written before a key was configured keeps working: its clear values are read as they are,
 * new values are sealed. */
#ifndef HX_SEAL_H
#define HX_SEAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HX_SEAL_KEY_LEN 32
#define HX_SEAL_ID_LEN 4
#define HX_SEAL_ID_TEXT (2 * HX_SEAL_ID_LEN + 1)
#define HX_SEAL_OVERHEAD (3 + HX_SEAL_ID_LEN + 24 + 16)

/* Does v begin with a seal mark (either version)? */
bool hx_sealed(const uint8_t *v, size_t len);

/* A key's id as 8 hex characters: the first 4 bytes of BLAKE2b-256(key). */
void hx_seal_key_id(const uint8_t key[HX_SEAL_KEY_LEN], char out[HX_SEAL_ID_TEXT]);

/* The id of the key that sealed v as 8 hex characters: true for a value that carries one
 * ('s2'); false for a clear value or an 's1' value (out ""). */
bool hx_sealed_key_id(const uint8_t *v, size_t len, char out[HX_SEAL_ID_TEXT]);

/* Seals in into *out (malloc'd, *out_len = len + HX_SEAL_OVERHEAD). 0, or -1 out of memory. */
int hx_seal(const uint8_t key[HX_SEAL_KEY_LEN], const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);

/* The clear bytes of a stored value into *out (malloc'd, NUL-terminated after *out_len bytes,
 * so text can be read as a string): a sealed value opened with key, a clear one copied.
 * 0, or -1 with why: a sealed value with no key, one sealed with another key (why names the
 * key id it was sealed with and this key's), one that does not open (damage), or out of
 * memory. */
int hx_unseal(const uint8_t *key, const uint8_t *in, size_t len, uint8_t **out, size_t *out_len, char *why,
              size_t cap);

#endif
