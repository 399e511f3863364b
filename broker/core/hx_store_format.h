/* hx_store_format — what hx_store_log.c (which writes the log) and hx_store_snapshot.c (which
 * copies it while it is written) share of the on-disk format: little-endian integers, the
 * segment file names, and DIR/SYNCED, two 64-byte slots written in turn, each
 *     "HXSYNC01" | u64 counter | u64 segment | u64 offset | zeros | u32 CRC-32C of the rest
 * where the slot with the higher counter that checks out names the log's durable end. The
 * record format is in hx_store_log.c's header comment. Private to the core. */
#ifndef HX_STORE_FORMAT_H
#define HX_STORE_FORMAT_H
#include "hx_crc32c.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define HX_SEG_FMT "%020llu.log"
#define HX_MARK_FILE "SYNCED"
#define HX_MARK_MAGIC "HXSYNC01"
#define HX_MARK_SLOT 64

static inline void hx_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t hx_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void hx_put_u64(uint8_t *p, uint64_t v)
{
    hx_put_u32(p, (uint32_t)v);
    hx_put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t hx_get_u64(const uint8_t *p)
{
    return (uint64_t)hx_get_u32(p) | (uint64_t)hx_get_u32(p + 4) << 32;
}

static inline void hx_seg_name(uint64_t n, char *out, size_t cap)
{
    snprintf(out, cap, HX_SEG_FMT, (unsigned long long)n);
}

/* One SYNCED slot naming (seg, off) with counter count. */
static inline void hx_mark_slot(uint8_t slot[HX_MARK_SLOT], uint64_t count, uint64_t seg, uint64_t off)
{
    memset(slot, 0, HX_MARK_SLOT);
    memcpy(slot, HX_MARK_MAGIC, 8);
    hx_put_u64(slot + 8, count);
    hx_put_u64(slot + 16, seg);
    hx_put_u64(slot + 24, off);
    hx_put_u32(slot + HX_MARK_SLOT - 4, hx_crc32c(0, slot, HX_MARK_SLOT - 4));
}

/* The end the SYNCED open on fd names (the slot with the higher counter that checks out),
 * with its counter; false when neither slot does (an empty file, or one from nothing). */
static inline bool hx_mark_read(int fd, uint64_t *seg, uint64_t *off, uint64_t *count)
{
    uint8_t buf[2 * HX_MARK_SLOT];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    bool found = false;
    for (size_t i = 0; n > 0 && i + HX_MARK_SLOT <= (size_t)n; i += HX_MARK_SLOT) {
        const uint8_t *p = buf + i;
        if (memcmp(p, HX_MARK_MAGIC, 8) != 0 || hx_crc32c(0, p, HX_MARK_SLOT - 4) != hx_get_u32(p + HX_MARK_SLOT - 4))
            continue;
        if (!found || hx_get_u64(p + 8) > *count) {
            *count = hx_get_u64(p + 8);
            *seg = hx_get_u64(p + 16);
            *off = hx_get_u64(p + 24);
            found = true;
        }
    }
    return found;
}

#endif
