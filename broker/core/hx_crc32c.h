/* hx_crc32c — CRC-32C (Castagnoli), the checksum of every log record. Debian packages no
 * C library for CRC-32C (zlib's crc32 is the IEEE polynomial), so it is here: the SSE4.2
 * instruction when the CPU has it, a slicing table otherwise. */
#ifndef HX_CRC32C_H
#define HX_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Continues crc over data (start with 0). hx_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t hx_crc32c(uint32_t crc, const void *data, size_t len);
/* The same, always by table (the portable path; exposed so tests compare the two). */
uint32_t hx_crc32c_portable(uint32_t crc, const void *data, size_t len);

#endif
