/* cli_bundle — the backup bundle's format (cli_cmd_backup.c says what a bundle holds): a tar
 * stream (libarchive) in libsodium's crypto_secretstream_xchacha20poly1305, as
 *     "HXBUNDLE" | u8 version (1) | 7 zero bytes | key id (8 bytes) | secretstream header (24)
 *     then chunks: u32 length (little-endian) | ciphertext (at most 64 KiB of tar plus 17)
 * with the 48-byte header as every chunk's additional data and the final tag on the last, so a
 * bundle cut at a chunk boundary, an altered byte or a different key each fail with their own
 * message. The writer takes tar bytes from libarchive (bw_archive_write as its write
 * callback); the reader gives them back (br_archive_read as its read callback). */
#ifndef CLI_BUNDLE_H
#define CLI_BUNDLE_H
#include <archive.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define BUNDLE_MAGIC "HXBUNDLE"
#define BUNDLE_VERSION 1
#define BUNDLE_HEADER (8 + 1 + 7 + 8 + crypto_secretstream_xchacha20poly1305_HEADERBYTES)
#define BUNDLE_CHUNK (64 * 1024)
#define BUNDLE_CIPHER (BUNDLE_CHUNK + crypto_secretstream_xchacha20poly1305_ABYTES)
#define BUNDLE_KDF_CTX "hxbackup"           /* crypto_kdf context: 8 characters */
#define ERR_CAP (4 * PATH_MAX)         /* room for two paths and the reason */

typedef struct {
    uint8_t stream[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    uint8_t id[8];
    char id_hex[17];
} bundle_key_t;

typedef struct {
    int fd;
    const char *path;
    crypto_secretstream_xchacha20poly1305_state st;
    uint8_t header[BUNDLE_HEADER];
    uint8_t plain[BUNDLE_CHUNK];
    size_t plain_len;
    uint8_t cipher[4 + BUNDLE_CIPHER];
    uint64_t bytes_in, bytes_out;
    bool progress;              /* stderr is a terminal */
    double last_progress;
    char err[ERR_CAP];
} bundle_writer_t;

typedef struct {
    int fd;
    const char *path;
    crypto_secretstream_xchacha20poly1305_state st;
    uint8_t header[BUNDLE_HEADER];
    uint8_t cipher[BUNDLE_CIPHER];
    uint8_t plain[BUNDLE_CHUNK];
    uint64_t offset;            /* bytes of the file read */
    uint64_t chunks;
    bool final, failed;
    char err[ERR_CAP];
} bundle_reader_t;

/* Reads --key (64 hex characters, as the broker's --data-key) into k: the stream key derived
 * from it, its id a hash. 0, or -1 with the reason in err. */
int key_load(const char *path, bundle_key_t *k, char *err, size_t errcap);
int write_all(int fd, const uint8_t *p, size_t len);
/* Reads up to len bytes; returns how many (less only at the end of the file), or -1. */
ssize_t read_full(int fd, uint8_t *p, size_t len);
double mono_s(void);

/* The writer: bw_open creates path (0600) and writes the header; bw_archive_write is
 * libarchive's write callback (arg: the writer); bw_finish seals the last chunk and syncs.
 * 0, or -1 with the reason in w->err. */
int bw_open(bundle_writer_t *w, const char *path, const bundle_key_t *k);
la_ssize_t bw_archive_write(struct archive *a, void *arg, const void *buf, size_t len);
int bw_finish(bundle_writer_t *w);
/* The reader: br_open checks the header and the key id; br_archive_read is libarchive's read
 * callback; br_drain reads to the final chunk (a bundle is whole only then). 0, or -1 with
 * the reason in r->err. */
int br_open(bundle_reader_t *r, const char *path, const bundle_key_t *k);
la_ssize_t br_archive_read(struct archive *a, void *arg, const void **buf);
int br_drain(bundle_reader_t *r);

#endif
