/* Fuzz target: arbitrary bytes as the broker's only log segment, with or without a SYNCED
 * file (the acknowledged end) taken from the input; recovery must keep what parses, cut or
 * refuse the rest, and never crash; so must a salvage of the same directory, and a recovery
 * after it. */
#define _GNU_SOURCE
#include <ftw.h>
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

static void spill(const char *dir, const char *name, const uint8_t *data, size_t size)
{
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, size, f);
        fclose(f);
    }
}

static void recover_once(const char *dir)
{
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
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* on tmpfs when there is one: recovery syncs what it keeps, and a disk makes that slow */
    char dir[64];
    snprintf(dir, sizeof dir, "/dev/shm/handoff-fuzz-log-XXXXXX");
    if (size < 1)
        return 0;
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "/tmp/handoff-fuzz-log-XXXXXX");
        if (!mkdtemp(dir))
            return 0;
    }
    uint8_t mode = data[0];                     /* bit 0: a SYNCED file; bit 1: salvage too */
    data++, size--;
    if ((mode & 1) && size >= 128) {
        spill(dir, "SYNCED", data, 128);
        data += 128, size -= 128;
    }
    spill(dir, "00000000000000000001.log", data, size);
    recover_once(dir);
    if (mode & 2) {
        char err[256];
        hx_store_log_config_t c = {.dir = dir};
        FILE *out = fopen("/dev/null", "w");
        if (out) {
            hx_store_log_salvage(&c, out, err, sizeof err);
            fclose(out);
        }
        recover_once(dir);
    }
    nftw(dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}
