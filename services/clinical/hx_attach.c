/* hx_attach — attachment checks (see hx_attach.h). */
#include "hx_attach.h"
#include "hx_util.h"

#include <magic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hx_attach_typer {
    magic_t magic;
};

static const char *const taken[] = {"application/pdf", "image/png", "image/jpeg"};

hx_attach_typer_t *hx_attach_typer_open(char *err, size_t cap)
{
    hx_attach_typer_t *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    /* the MIME type only; no decompression, no peeking inside archives or ELF notes */
    t->magic = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_TAR |
                          MAGIC_NO_CHECK_ELF);
    if (!t->magic || magic_load(t->magic, NULL) != 0) {
        snprintf(err, cap, "libmagic: %s", t->magic && magic_error(t->magic) ? magic_error(t->magic)
                                                                              : "cannot load its database");
        hx_attach_typer_close(&t);
        return NULL;
    }
    return t;
}

void hx_attach_typer_close(hx_attach_typer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if ((*self_p)->magic)
        magic_close((*self_p)->magic);
    free(*self_p);
    *self_p = NULL;
}

static int name_check(const char *name, char *why, size_t cap)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > HX_ATTACH_NAME_MAX) {
        snprintf(why, cap, "attachment.name: %zu bytes, must be 1 to %d", n, HX_ATTACH_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f || ch == '/' || ch == '\\') {
            snprintf(why, cap, "attachment.name: byte %zu (0x%02x) is a control character or a path separator",
                     i + 1, ch);
            return -1;
        }
    }
    if (!hx_utf8_valid(name)) {
        snprintf(why, cap, "attachment.name: not valid UTF-8");
        return -1;
    }
    return 0;
}

int hx_attach_check(hx_attach_typer_t *t, const char *name, const uint8_t *data, size_t len,
                    const char **media_type, char *why, size_t cap)
{
    if (name_check(name, why, cap) != 0)
        return -1;
    if (len == 0 || !data) {
        snprintf(why, cap, "attachment.data: empty (a PDF, PNG or JPEG of 1 to %d bytes)", HX_ATTACH_MAX);
        return -1;
    }
    if (len > HX_ATTACH_MAX) {
        snprintf(why, cap, "attachment.data: %zu bytes, at most %d (256 KiB)", len, HX_ATTACH_MAX);
        return -1;
    }
    const char *found = t ? magic_buffer(t->magic, data, len) : NULL;
    if (!found) {
        snprintf(why, cap, "attachment.data: its type could not be told (%s)",
                 t && magic_error(t->magic) ? magic_error(t->magic) : "no libmagic");
        return -1;
    }
    for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
        if (strcmp(found, taken[i]) == 0) {
            *media_type = taken[i];
            return 0;
        }
    snprintf(why, cap, "attachment.data: the content is %.80s, whatever the name says; only PDF, PNG and JPEG "
                       "are taken", found);
    return -1;
}

void hx_attach_sha256_hex(const uint8_t *data, size_t len, char hex[65])
{
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, len);
    sodium_bin2hex(hex, 65, h, sizeof h);
}
