/* hx_seal — sealed values at rest (see hx_seal.h). */
#include "hx_seal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t mark[3] = {0x00, 's', '1'};

bool hx_sealed(const uint8_t *v, size_t len)
{
    return v && len >= sizeof mark && memcmp(v, mark, sizeof mark) == 0;
}

int hx_seal(const uint8_t key[HX_SEAL_KEY_LEN], const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    uint8_t *v = malloc(len + HX_SEAL_OVERHEAD);
    if (!v)
        return -1;
    memcpy(v, mark, sizeof mark);
    uint8_t *nonce = v + sizeof mark;
    randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES, in ? in : (const uint8_t *)"", len, nonce, key);
    *out = v;
    *out_len = len + HX_SEAL_OVERHEAD;
    return 0;
}

int hx_unseal(const uint8_t *key, const uint8_t *in, size_t len, uint8_t **out, size_t *out_len, char *why,
              size_t cap)
{
    bool sealed = hx_sealed(in, len);
    if (sealed && !key) {
        snprintf(why, cap, "a sealed value and no data key (start with the --data-key it was sealed with)");
        return -1;
    }
    if (sealed && len < HX_SEAL_OVERHEAD) {
        snprintf(why, cap, "a sealed value of %zu bytes is too short to be one", len);
        return -1;
    }
    size_t n = sealed ? len - HX_SEAL_OVERHEAD : len;
    uint8_t *v = malloc(n + 1);
    if (!v) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    if (!sealed) {
        if (n)
            memcpy(v, in, n);
    } else {
        const uint8_t *nonce = in + sizeof mark;
        if (crypto_secretbox_open_easy(v, nonce + crypto_secretbox_NONCEBYTES, len - sizeof mark -
                                       crypto_secretbox_NONCEBYTES, nonce, key) != 0) {
            free(v);
            snprintf(why, cap, "a sealed value does not open with this data key (another key, or damage)");
            return -1;
        }
    }
    v[n] = '\0';
    *out = v;
    *out_len = n;
    return 0;
}
