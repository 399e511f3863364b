/* hx_seal — sealing a service's stored patient data at rest (docs/OPERATIONS.md, "Encryption at rest"):
 * libsodium's crypto_secretbox (XSalsa20-Poly1305) with a 32-byte key, a fresh random nonce
 * per value, as the broker seals message bodies in its log. A sealed value is
 *   0x00 's' '1' | nonce (24 bytes) | box (the value and a 16-byte tag)
 * and can never be taken for a clear one: a protobuf message never begins with 0x00 (field
 * number 0 is invalid), and stored text holds no NUL. So a store written before a key was
 * configured keeps working: its clear values are read as they are, new values are sealed. */
#ifndef HX_SEAL_H
#define HX_SEAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HX_SEAL_KEY_LEN 32
#define HX_SEAL_OVERHEAD (3 + 24 + 16)

/* Does v begin with the seal mark? */
bool hx_sealed(const uint8_t *v, size_t len);

/* Seals in into *out (malloc'd, *out_len = len + HX_SEAL_OVERHEAD). 0, or -1 out of memory. */
int hx_seal(const uint8_t key[HX_SEAL_KEY_LEN], const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);

/* The clear bytes of a stored value into *out (malloc'd, NUL-terminated after *out_len bytes,
 * so text can be read as a string): a sealed value opened with key, a clear one copied.
 * 0, or -1 with why: a sealed value with no key, or one that does not open (another key,
 * damage), or out of memory. */
int hx_unseal(const uint8_t *key, const uint8_t *in, size_t len, uint8_t **out, size_t *out_len, char *why,
              size_t cap);

#endif
