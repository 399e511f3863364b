/* hx_crc32c — CRC-32C, hardware or table. */
#include "hx_crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

static uint32_t table[8][256];
static bool table_ready;

static void build_table(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int k = 1; k < 8; k++)
            table[k][n] = (table[k - 1][n] >> 8) ^ table[0][table[k - 1][n] & 0xff];
    table_ready = true;
}

static uint32_t crc_table(uint32_t crc, const uint8_t *p, size_t len)
{
    if (!table_ready)
        build_table();                          /* idempotent: a race writes the same values */
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
              table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
              table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}

/* Three streams at once. The crc32 instruction takes 3 cycles before its result can feed
 * the next one and a new one can start every cycle, so one chain runs at a third of what the
 * unit can do; recovery reads every byte of the log through it (a gigabyte of log: 30 % of
 * a restart's time). So each 3 x STRIPE bytes are three independent chains (the first
 * continuing crc, the others from 0), joined by linearity: with f(x, D) the raw register
 * after D from x, f(x, A|B|C) = Z(Z(f(x, A)) ^ f(0, B)) ^ f(0, C), where Z(y) = f(y, STRIPE
 * zero bytes) is linear in y and so a lookup per byte of y (shift, below). */
#define STRIPE 4096
static uint32_t shift[4][256];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

static void build_shift(void)
{
    static const uint8_t zeros[STRIPE];
    uint32_t bit[32];
    for (int i = 0; i < 32; i++)
        bit[i] = crc_sse42(1u << i, zeros, STRIPE);
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++)
                if (b & (1u << j))
                    v ^= bit[8 * k + j];
            shift[k][b] = v;
        }
}

static inline uint32_t zeros_after(uint32_t y)
{
    return shift[0][y & 0xff] ^ shift[1][(y >> 8) & 0xff] ^ shift[2][(y >> 16) & 0xff] ^ shift[3][y >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc_sse42_3(uint32_t crc, const uint8_t *p, size_t len)
{
    if (len >= 3 * STRIPE) {
        pthread_once(&shift_once, build_shift);
        while (len >= 3 * STRIPE) {
            uint64_t a = crc, b = 0, c = 0;
            for (size_t i = 0; i < STRIPE; i += 8) {
                uint64_t wa, wb, wc;
                memcpy(&wa, p + i, 8);
                memcpy(&wb, p + STRIPE + i, 8);
                memcpy(&wc, p + 2 * STRIPE + i, 8);
                a = __builtin_ia32_crc32di(a, wa);
                b = __builtin_ia32_crc32di(b, wb);
                c = __builtin_ia32_crc32di(c, wc);
            }
            crc = zeros_after(zeros_after((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)c;
            p += 3 * STRIPE;
            len -= 3 * STRIPE;
        }
    }
    return crc_sse42(crc, p, len);
}
#endif

uint32_t hx_crc32c(uint32_t crc, const void *data, size_t len)
{
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return ~crc_sse42_3(crc, data, len);
#endif
    return ~crc_table(crc, data, len);
}

uint32_t hx_crc32c_portable(uint32_t crc, const void *data, size_t len)
{
    return ~crc_table(~crc, data, len);
}
