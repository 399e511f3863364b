/* Fuzz target: arbitrary bytes as the broker's only log segment; recovery must keep what
 * parses, cut or refuse the rest, and never crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hx_router.h"
#include "hx_store.h"

static int discard(void *arg, const uint8_t *peer, size_t len, const uint8_t *frame, size_t flen)
{
    (void)arg, (void)peer, (void)len, (void)frame, (void)flen;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[] = "/tmp/handoff-fuzz-log-XXXXXX";
    if (!mkdtemp(dir))
        return 0;
    char path[128];
    snprintf(path, sizeof path, "%s/00000000000000000001.log", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, size, f);
        fclose(f);
    }
    char err[256];
    hx_store_log_config_t c = {.dir = dir};
    hx_store_t *s = hx_store_log_new(&c, err, sizeof err);
    if (s) {
        hx_router_config_t cfg = {.send = discard, .store = s};
        hx_router_t *r = hx_router_new(&cfg);
        hx_router_recover(r);
        hx_router_destroy(&r);
        hx_store_destroy(&s);
    }
    char lock[128];
    snprintf(lock, sizeof lock, "%s/LOCK", dir);
    unlink(lock);
    unlink(path);
    rmdir(dir);
    return 0;
}
