/* cli_bundle — writing and reading the backup bundle (cli_bundle.h). */
#define _GNU_SOURCE
#include "cli_bundle.h"
#include "hx_curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the key ------------------------------------------------------------------------------ */

/* Reads --key (64 hex characters, as the broker's --data-key): the stream key is derived from
 * it (so the data key may serve here too without being used twice), the key id is a hash. */
int key_load(const char *path, bundle_key_t *k, char *err, size_t errcap)
{
    uint8_t raw[32];
    if (hx_data_key_load(path, raw, err, errcap) != 0)
        return -1;
    crypto_kdf_derive_from_key(k->stream, sizeof k->stream, 1, BUNDLE_KDF_CTX, raw);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof k->id);
    crypto_generichash_update(&st, (const uint8_t *)"handoff backup key id", 21);
    crypto_generichash_update(&st, raw, sizeof raw);
    crypto_generichash_final(&st, k->id, sizeof k->id);
    sodium_bin2hex(k->id_hex, sizeof k->id_hex, k->id, sizeof k->id);
    sodium_memzero(raw, sizeof raw);
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads up to len bytes; returns how many (less only at the end of the file), or -1. */
ssize_t read_full(int fd, uint8_t *p, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the bundle writer: tar bytes in, encrypted chunks out --------------------------------- */

static int bw_push(bundle_writer_t *w, unsigned char tag)
{
    unsigned long long clen;
    crypto_secretstream_xchacha20poly1305_push(&w->st, w->cipher + 4, &clen, w->plain, w->plain_len, w->header,
                                               sizeof w->header, tag);
    put_u32(w->cipher, (uint32_t)clen);
    if (write_all(w->fd, w->cipher, 4 + (size_t)clen) != 0) {
        snprintf(w->err, sizeof w->err, "cannot write %s: %s", w->path, strerror(errno));
        return -1;
    }
    w->bytes_out += 4 + clen;
    w->plain_len = 0;
    if (w->progress && mono_s() - w->last_progress > 0.2) {
        w->last_progress = mono_s();
        fprintf(stderr, "\rbackup: %.1f MB so far", (double)w->bytes_in / 1e6);
    }
    return 0;
}

int bw_open(bundle_writer_t *w, const char *path, const bundle_key_t *k)
{
    w->path = path;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0 || fchmod(w->fd, 0600) != 0) {
        snprintf(w->err, sizeof w->err, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    memset(w->header, 0, sizeof w->header);
    memcpy(w->header, BUNDLE_MAGIC, 8);
    w->header[8] = BUNDLE_VERSION;
    memcpy(w->header + 16, k->id, 8);
    crypto_secretstream_xchacha20poly1305_init_push(&w->st, w->header + 24, k->stream);
    if (write_all(w->fd, w->header, sizeof w->header) != 0) {
        snprintf(w->err, sizeof w->err, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    w->bytes_out = sizeof w->header;
    return 0;
}

la_ssize_t bw_archive_write(struct archive *a, void *arg, const void *buf, size_t len)
{
    bundle_writer_t *w = arg;
    const uint8_t *p = buf;
    size_t left = len;
    while (left) {
        size_t n = BUNDLE_CHUNK - w->plain_len < left ? BUNDLE_CHUNK - w->plain_len : left;
        memcpy(w->plain + w->plain_len, p, n);
        w->plain_len += n;
        p += n;
        left -= n;
        w->bytes_in += n;
        if (w->plain_len == BUNDLE_CHUNK && bw_push(w, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) != 0) {
            archive_set_error(a, EIO, "%s", w->err);
            return -1;
        }
    }
    return (la_ssize_t)len;
}

/* The final chunk, then the file synced and closed. */
int bw_finish(bundle_writer_t *w)
{
    if (bw_push(w, crypto_secretstream_xchacha20poly1305_TAG_FINAL) != 0)
        return -1;
    if (fsync(w->fd) != 0 || close(w->fd) != 0) {
        w->fd = -1;
        snprintf(w->err, sizeof w->err, "cannot write %s: %s", w->path, strerror(errno));
        return -1;
    }
    w->fd = -1;
    if (w->progress)
        fprintf(stderr, "\rbackup: %.1f MB so far\n", (double)w->bytes_in / 1e6);
    return 0;
}

/* ---- the bundle reader: encrypted chunks in, tar bytes out --------------------------------- */

int br_open(bundle_reader_t *r, const char *path, const bundle_key_t *k)
{
    r->path = path;
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        snprintf(r->err, sizeof r->err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read_full(r->fd, r->header, sizeof r->header);
    if (n < 0) {
        snprintf(r->err, sizeof r->err, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (n < 8 || memcmp(r->header, BUNDLE_MAGIC, 8) != 0) {
        snprintf(r->err, sizeof r->err, "%s is not a Handoff backup bundle (it does not start with %s)", path,
                 BUNDLE_MAGIC);
        return -1;
    }
    if ((size_t)n < sizeof r->header) {
        snprintf(r->err, sizeof r->err, "%s is truncated: it ends inside its %d-byte header, after %zd bytes", path,
                 BUNDLE_HEADER, n);
        return -1;
    }
    if (r->header[8] != BUNDLE_VERSION) {
        snprintf(r->err, sizeof r->err, "%s is a version %u bundle; this handoff reads version %d", path,
                 r->header[8], BUNDLE_VERSION);
        return -1;
    }
    if (memcmp(r->header + 16, k->id, 8) != 0) {
        char id[17];
        sodium_bin2hex(id, sizeof id, r->header + 16, 8);
        snprintf(r->err, sizeof r->err, "%s was made with a different key: its key id is %s, --key's is %s", path, id,
                 k->id_hex);
        return -1;
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(&r->st, r->header + 24, k->stream) != 0) {
        snprintf(r->err, sizeof r->err, "%s: its stream header is damaged", path);
        return -1;
    }
    r->offset = sizeof r->header;
    return 0;
}

/* The next chunk's plain bytes (*len may be 0); 0 with *len 0 and r->final at the end; -1
 * with the reason in r->err. */
static int br_next(bundle_reader_t *r, const uint8_t **out, size_t *len)
{
    *len = 0;
    if (r->failed)
        return -1;
    if (r->final)
        return 0;
    uint8_t lb[4];
    ssize_t n = read_full(r->fd, lb, sizeof lb);
    if (n < 0)
        goto io;
    if (n < 4) {
        snprintf(r->err, sizeof r->err, "%s is truncated: it ends at byte %llu without its final chunk (after %llu "
                 "whole chunks)", r->path, (unsigned long long)(r->offset + (uint64_t)n),
                 (unsigned long long)r->chunks);
        goto fail;
    }
    uint32_t clen = get_u32(lb);
    if (clen < crypto_secretstream_xchacha20poly1305_ABYTES || clen > BUNDLE_CIPHER) {
        snprintf(r->err, sizeof r->err, "%s is damaged or altered at byte %llu: a chunk length of %u bytes (at most "
                 "%d)", r->path, (unsigned long long)r->offset, clen, BUNDLE_CIPHER);
        goto fail;
    }
    n = read_full(r->fd, r->cipher, clen);
    if (n < 0)
        goto io;
    if ((size_t)n < clen) {
        snprintf(r->err, sizeof r->err, "%s is truncated: it ends at byte %llu, inside chunk %llu (of %u bytes, "
                 "starting at byte %llu)", r->path, (unsigned long long)(r->offset + 4 + (uint64_t)n),
                 (unsigned long long)r->chunks + 1, clen, (unsigned long long)r->offset);
        goto fail;
    }
    unsigned long long plen;
    unsigned char tag;
    if (crypto_secretstream_xchacha20poly1305_pull(&r->st, r->plain, &plen, &tag, r->cipher, clen, r->header,
                                                   sizeof r->header) != 0) {
        snprintf(r->err, sizeof r->err, "%s is damaged or altered: chunk %llu (bytes %llu to %llu) does not "
                 "authenticate", r->path, (unsigned long long)r->chunks + 1, (unsigned long long)r->offset,
                 (unsigned long long)(r->offset + 4 + clen - 1));
        goto fail;
    }
    r->offset += 4 + clen;
    r->chunks++;
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
        r->final = true;
        uint8_t extra[4096];
        ssize_t more = read_full(r->fd, extra, sizeof extra);
        if (more != 0) {
            snprintf(r->err, sizeof r->err, "%s has bytes after its final chunk (from byte %llu): something was "
                     "appended to it", r->path, (unsigned long long)r->offset);
            goto fail;
        }
    }
    *out = r->plain;
    *len = (size_t)plen;
    return 0;
io:
    snprintf(r->err, sizeof r->err, "cannot read %s: %s", r->path, strerror(errno));
fail:
    r->failed = true;
    return -1;
}

la_ssize_t br_archive_read(struct archive *a, void *arg, const void **buf)
{
    bundle_reader_t *r = arg;
    for (;;) {
        const uint8_t *p;
        size_t len;
        if (br_next(r, &p, &len) != 0) {
            archive_set_error(a, EIO, "%s", r->err);
            return -1;
        }
        if (len || r->final) {
            *buf = r->plain;
            return (la_ssize_t)len;
        }
    }
}

/* Reads to the final chunk (what the tar reader left unread must authenticate too). */
int br_drain(bundle_reader_t *r)
{
    while (!r->final) {
        const uint8_t *p;
        size_t len;
        if (br_next(r, &p, &len) != 0)
            return -1;
    }
    return 0;
}
