/* Fuzz target: arbitrary frames from a few peers into the broker's router (with an
 * in-memory store). It must answer or ignore, never crash, leak or misbehave. */
#include <stdint.h>
#include <string.h>

#include "hx_router.h"

static int discard(void *arg, const uint8_t *peer, size_t len, const uint8_t *frame, size_t flen)
{
    (void)arg, (void)peer, (void)len, (void)frame, (void)flen;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hx_store_t *store = hx_store_memory_new();
    hx_router_config_t cfg = {.send = discard, .store = store, .heartbeat_ms = 100, .backoff_ms = 1};
    hx_router_t *r = hx_router_new(&cfg);
    /* the input is a sequence of frames: [peer byte][len hi][len lo][bytes] */
    uint64_t now = 0;
    while (size >= 3) {
        uint8_t peer[2] = {'p', (uint8_t)('0' + data[0] % 4)};
        size_t len = ((size_t)data[1] << 8 | data[2]);
        data += 3;
        size -= 3;
        if (len > size)
            len = size;
        hx_router_on_frame(r, peer, sizeof peer, data, len, now);
        data += len;
        size -= len;
        now += 37;
        hx_router_tick(r, now);
        hx_router_flush(r);
    }
    hx_router_destroy(&r);
    hx_store_destroy(&store);
    return 0;
}
