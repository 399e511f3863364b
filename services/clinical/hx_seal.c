/* hx_seal — sealed values at rest (see hx_seal.h). */
#include "hx_seal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t mark1[3] = {0x00, 's', '1'};
static const uint8_t mark2[3] = {0x00, 's', '2'};
#define MARK 3
#define NONCE crypto_secretbox_NONCEBYTES
#define TAG crypto_secretbox_MACBYTES

bool hx_sealed(const uint8_t *v, size_t len)
{
    return v && len >= MARK && (memcmp(v, mark1, MARK) == 0 || memcmp(v, mark2, MARK) == 0);
}

static void id_text(const uint8_t id[HX_SEAL_ID_LEN], char out[HX_SEAL_ID_TEXT])
{
    for (size_t i = 0; i < HX_SEAL_ID_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static void key_id(const uint8_t key[HX_SEAL_KEY_LEN], uint8_t id[HX_SEAL_ID_LEN])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, key, HX_SEAL_KEY_LEN, NULL, 0);
    memcpy(id, h, HX_SEAL_ID_LEN);
}

void hx_seal_key_id(const uint8_t key[HX_SEAL_KEY_LEN], char out[HX_SEAL_ID_TEXT])
{
    uint8_t id[HX_SEAL_ID_LEN];
    key_id(key, id);
    id_text(id, out);
}

bool hx_sealed_key_id(const uint8_t *v, size_t len, char out[HX_SEAL_ID_TEXT])
{
    out[0] = '\0';
    if (!v || len < MARK + HX_SEAL_ID_LEN || memcmp(v, mark2, MARK) != 0)
        return false;
    id_text(v + MARK, out);
    return true;
}

int hx_seal(const uint8_t key[HX_SEAL_KEY_LEN], const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    uint8_t *v = malloc(len + HX_SEAL_OVERHEAD);
    if (!v)
        return -1;
    memcpy(v, mark2, MARK);
    key_id(key, v + MARK);
    uint8_t *nonce = v + MARK + HX_SEAL_ID_LEN;
    randombytes_buf(nonce, NONCE);
    crypto_secretbox_easy(nonce + NONCE, in ? in : (const uint8_t *)"", len, nonce, key);
    *out = v;
    *out_len = len + HX_SEAL_OVERHEAD;
    return 0;
}

int hx_unseal(const uint8_t *key, const uint8_t *in, size_t len, uint8_t **out, size_t *out_len, char *why,
              size_t cap)
{
    bool sealed = hx_sealed(in, len);
    bool v2 = sealed && memcmp(in, mark2, MARK) == 0;
    size_t head = MARK + (v2 ? HX_SEAL_ID_LEN : 0) + NONCE;     /* the box starts here */
    if (sealed && !key) {
        char id[HX_SEAL_ID_TEXT];
        if (hx_sealed_key_id(in, len, id))
            snprintf(why, cap, "a sealed value (key id %s) and no key to open it (give the key with id %s)", id, id);
        else
            snprintf(why, cap, "a sealed value and no data key (start with the --data-key it was sealed with)");
        return -1;
    }
    if (sealed && len < head + TAG) {
        snprintf(why, cap, "a sealed value of %zu bytes is too short to be one", len);
        return -1;
    }
    if (v2) {
        char was[HX_SEAL_ID_TEXT], is[HX_SEAL_ID_TEXT];
        hx_sealed_key_id(in, len, was);
        hx_seal_key_id(key, is);
        if (strcmp(was, is) != 0) {
            snprintf(why, cap, "a sealed value does not open with this key: it was sealed with key id %s and "
                     "this key's id is %s (give the key with id %s)", was, is, was);
            return -1;
        }
    }
    size_t n = sealed ? len - head - TAG : len;
    uint8_t *v = malloc(n + 1);
    if (!v) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    if (!sealed) {
        if (n)
            memcpy(v, in, n);
    } else if (crypto_secretbox_open_easy(v, in + head, len - head, in + head - NONCE, key) != 0) {
        free(v);
        snprintf(why, cap, v2 ? "a sealed value does not open with this key although its key id matches (damage)"
                              : "a sealed value does not open with this data key (another key, or damage)");
        return -1;
    }
    v[n] = '\0';
    *out = v;
    *out_len = n;
    return 0;
}
