/* hx_cluster_rekey — a stopped node's Raft log sealed with a new data key (hx_cluster.h).
 *
 * The log is read and written with libraft's own disk I/O (raft_uv: load, set_term, set_vote,
 * snapshot_put, append), never by parsing its files, so the copy is a log libraft wrote. Only
 * the bytes of the broker's entries and of the snapshot change; every index, term, type, the
 * vote and the configurations stay what they were, so the node's log is still the same Raft
 * log (the log matching property compares indexes and terms) and the node rejoins as it was.
 *
 * On disk, in the data directory:
 *   raft/             the log
 *   raft.rekey/       the copy being made (removed and made again if the run is cut short)
 *   raft.rekey.done   written (and synced) once the copy was read back and checked
 *   raft.old/         the log, moved aside while the copy takes its place, then removed
 * With raft.rekey.done there, a run finishes the swap; a node refuses to start while
 * raft.rekey or raft.rekey.done is there. */
#define _XOPEN_SOURCE 700
#include "hx_cluster.h"
#include "hx_cluster_internal.h"
#include "hx_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <raft.h>
#include <raft/uv.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define APPEND_ENTRIES 256              /* entries per append: the copy's memory stays bounded */
#define APPEND_BYTES (8u << 20)

typedef struct {
    char data[4096], raft[4200], copy[4200], done[4200], old[4200];
} paths_t;

static int paths_make(paths_t *p, const char *data, char *err, size_t cap)
{
    if (strlen(data) >= sizeof p->data) {
        snprintf(err, cap, "--data: a path of at most %zu bytes", sizeof p->data - 1);
        return HX_EINVAL;
    }
    snprintf(p->data, sizeof p->data, "%s", data);
    snprintf(p->raft, sizeof p->raft, "%s/raft", data);
    snprintf(p->copy, sizeof p->copy, "%s/raft.rekey", data);
    snprintf(p->done, sizeof p->done, "%s/raft.rekey.done", data);
    snprintf(p->old, sizeof p->old, "%s/raft.old", data);
    return 0;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int remove_tree(const char *dir)
{
    return exists(dir) ? nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) : 0;
}

static int sync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* ---- libraft's disk I/O on a directory, outside a running node ---- */

typedef struct {
    uv_loop_t loop;
    struct raft_uv_transport tcp;
    struct raft_io io;
    bool loop_made, tcp_made, io_made, inited;
    int status;                         /* of the last request */
    bool finished;
} rio_t;

static void rio_closed(struct raft_io *io)
{
    ((rio_t *)io->data)->finished = true;
}

static void rio_close(rio_t *r)
{
    if (r->inited) {
        r->finished = false;
        r->io.data = r;
        r->io.close(&r->io, rio_closed);
        while (!r->finished)
            uv_run(&r->loop, UV_RUN_ONCE);
    }
    if (r->io_made)
        raft_uv_close(&r->io);
    if (r->tcp_made)
        raft_uv_tcp_close(&r->tcp);
    if (r->loop_made) {
        uv_run(&r->loop, UV_RUN_DEFAULT);
        uv_loop_close(&r->loop);
    }
}

/* raft_uv on dir, initialised (the transport is made, never started: nothing listens). */
static int rio_open(rio_t *r, const char *dir, char *err, size_t cap)
{
    memset(r, 0, sizeof *r);
    int rv = uv_loop_init(&r->loop);
    r->loop_made = rv == 0;
    if (rv == 0)
        r->tcp_made = (rv = raft_uv_tcp_init(&r->tcp, &r->loop)) == 0;
    if (rv == 0)
        r->io_made = (rv = raft_uv_init(&r->io, &r->loop, dir, &r->tcp)) == 0;
    if (rv == 0)                            /* (what it writes is sealed: LZ4 would not shrink it) */
        rv = raft_uv_set_snapshot_compression(&r->io, false);
    if (rv == 0)
        r->inited = (rv = r->io.init(&r->io, 1, "127.0.0.1:1")) == 0;
    if (rv != 0) {
        snprintf(err, cap, "%s: %s", dir, r->io_made && r->io.errmsg[0] ? r->io.errmsg : raft_strerror(rv));
        rio_close(r);
        return HX_EIO;
    }
    return 0;
}

typedef struct {
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snap;
    raft_index start;
    struct raft_entry *entries;
    size_t n;
} loaded_t;

static void loaded_free(loaded_t *l)
{
    if (l->snap) {
        raft_configuration_close(&l->snap->configuration);
        for (unsigned i = 0; i < l->snap->n_bufs; i++)
            raft_free(l->snap->bufs[i].base);
        raft_free(l->snap->bufs);
        raft_free(l->snap);
    }
    void *batch = NULL;                 /* entries loaded share a batch per segment */
    for (size_t i = 0; i < l->n; i++) {
        if (!l->entries[i].batch)
            raft_free(l->entries[i].buf.base);
        else if (l->entries[i].batch != batch)
            raft_free(batch = l->entries[i].batch);
    }
    raft_free(l->entries);
    memset(l, 0, sizeof *l);
}

static int rio_load(rio_t *r, loaded_t *l, const char *dir, char *err, size_t cap)
{
    memset(l, 0, sizeof *l);
    int rv = r->io.load(&r->io, &l->term, &l->vote, &l->snap, &l->start, &l->entries, &l->n);
    if (rv != 0) {
        snprintf(err, cap, "%s: %s", dir, r->io.errmsg[0] ? r->io.errmsg : raft_strerror(rv));
        return HX_EIO;
    }
    return 0;
}

static void put_done(struct raft_io_snapshot_put *req, int status)
{
    rio_t *r = req->data;
    r->status = status;
    r->finished = true;
}

static void append_done(struct raft_io_append *req, int status)
{
    rio_t *r = req->data;
    r->status = status;
    r->finished = true;
}

static int rio_wait(rio_t *r, int rv, const char *what, const char *dir, char *err, size_t cap)
{
    while (rv == 0 && !r->finished)
        uv_run(&r->loop, UV_RUN_ONCE);
    if (rv == 0)
        rv = r->status;
    if (rv != 0) {
        snprintf(err, cap, "%s: %s: %s", dir, what, r->io.errmsg[0] ? r->io.errmsg : raft_strerror(rv));
        return HX_EIO;
    }
    return 0;
}

/* ---- what the log says, as a digest ---- */

static void digest_item(crypto_generichash_state *h, char kind, raft_index index, raft_term term, unsigned type,
                        const uint8_t *bytes, size_t len)
{
    uint8_t head[1 + 8 + 8 + 2 + 8];
    head[0] = (uint8_t)kind;
    for (int i = 0; i < 8; i++) {
        head[1 + i] = (uint8_t)(index >> (8 * i));
        head[9 + i] = (uint8_t)(term >> (8 * i));
        head[19 + i] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    head[17] = (uint8_t)type;
    head[18] = (uint8_t)(type >> 8);
    crypto_generichash_update(h, head, sizeof head);
    if (len)
        crypto_generichash_update(h, bytes, len);
}

/* A snapshot's index, term, configuration (libraft's encoding) and its index, and its bytes
 * in clear. HX_ENOMEM when the configuration cannot be encoded. */
static int digest_snapshot(crypto_generichash_state *h, const struct raft_snapshot *s, const uint8_t *plain,
                           size_t plain_len)
{
    struct raft_buffer conf = {0};
    if (raft_configuration_encode(&s->configuration, &conf) != 0)
        return HX_ENOMEM;
    digest_item(h, 'C', s->configuration_index, 0, 0, conf.base, conf.len);
    raft_free(conf.base);
    digest_item(h, 'S', s->index, s->term, 0, plain, plain_len);
    return 0;
}

/* The bytes of a snapshot's buffers or an entry, opened with key when sealed: into plain
 * (pointing at the bytes themselves when they are in clear). HX_EDENIED: sealed and key is
 * NULL; HX_EINVAL: not key's, or damaged. */
static int open_bytes(const uint8_t *key, const uint8_t *data, size_t len, hx_buf_t *scratch, const uint8_t **plain,
                      size_t *plain_len)
{
    bool sealed;
    int rc = hx_cluster_unseal(key, data, len, scratch, &sealed);
    if (rc != 0)
        return rc;
    *plain = sealed ? scratch->data : data;
    *plain_len = sealed ? scratch->len : len;
    return 0;
}

/* Entries from first on (the snapshot holds those before): the index of entry i is l->start + i. */
static size_t first_kept(const loaded_t *l)
{
    if (!l->snap || l->snap->index < l->start)
        return 0;
    raft_index skip = l->snap->index - l->start + 1;
    return skip < l->n ? (size_t)skip : l->n;
}

/* The digest of what the loaded log holds in clear (key opens what is sealed). */
static int digest_log(const loaded_t *l, const uint8_t *key, uint8_t out[crypto_generichash_BYTES], char *err,
                      size_t cap)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, crypto_generichash_BYTES);
    hx_buf_t scratch = {0};
    const uint8_t *plain;
    size_t plain_len;
    int rc = 0;
    digest_item(&h, 'M', l->term, l->vote, 0, NULL, 0);
    if (l->snap) {
        if (l->snap->n_bufs != 1) {
            snprintf(err, cap, "the snapshot at index %llu was loaded in %u parts, not one",
                     (unsigned long long)l->snap->index, l->snap->n_bufs);
            return HX_EIO;
        }
        rc = open_bytes(key, l->snap->bufs[0].base, l->snap->bufs[0].len, &scratch, &plain, &plain_len);
        if (rc != 0)
            snprintf(err, cap, "the snapshot at index %llu does not open with the new key",
                     (unsigned long long)l->snap->index);
        else if ((rc = digest_snapshot(&h, l->snap, plain, plain_len)) != 0)
            snprintf(err, cap, "out of memory");
    }
    for (size_t i = first_kept(l); rc == 0 && i < l->n; i++) {
        const struct raft_entry *e = &l->entries[i];
        plain = e->buf.base;
        plain_len = e->buf.len;
        if (e->type == RAFT_COMMAND && (rc = open_bytes(key, e->buf.base, e->buf.len, &scratch, &plain,
                                                        &plain_len)) != 0)
            snprintf(err, cap, "entry %llu does not open with the new key", (unsigned long long)(l->start + i));
        else
            digest_item(&h, 'E', l->start + i, e->term, e->type, plain, plain_len);
    }
    if (scratch.data)
        sodium_memzero(scratch.data, scratch.cap);
    hx_buf_free(&scratch);
    crypto_generichash_final(&h, out, crypto_generichash_BYTES);
    return rc ? HX_EIO : 0;
}

/* Which key the log's first sealed part opens with: 0 (old_key, or nothing is sealed: a log
 * in clear gains a key), 1 (new_key: rekeyed already), or an error. */
static int which_key(const loaded_t *l, const uint8_t *old_key, const uint8_t *new_key, const char *dir, char *err,
                     size_t cap)
{
    const uint8_t *data = NULL;
    size_t len = 0;
    bool sealed = false, any;
    hx_buf_t scratch = {0};
    if (l->snap && l->snap->n_bufs == 1) {
        data = l->snap->bufs[0].base;
        len = l->snap->bufs[0].len;
        sealed = hx_cluster_unseal(NULL, data, len, &scratch, &any) == HX_EDENIED;
    }
    for (size_t i = first_kept(l); !sealed && i < l->n; i++) {
        if (l->entries[i].type != RAFT_COMMAND)
            continue;
        data = l->entries[i].buf.base;
        len = l->entries[i].buf.len;
        sealed = hx_cluster_unseal(NULL, data, len, &scratch, &any) == HX_EDENIED;
    }
    int rc = 0;
    if (!sealed)
        rc = 0;
    else if (old_key && hx_cluster_unseal(old_key, data, len, &scratch, &any) == 0)
        rc = 0;
    else if (hx_cluster_unseal(new_key, data, len, &scratch, &any) == 0)
        rc = 1;
    else if (!old_key) {
        snprintf(err, cap, "%s is sealed: --data-key must name the key it was sealed with", dir);
        rc = HX_EINVAL;
    } else {
        snprintf(err, cap, "%s does not open with this data key (--data-key): nothing changed", dir);
        rc = HX_EFAILED;
    }
    if (scratch.data)
        sodium_memzero(scratch.data, scratch.cap);
    hx_buf_free(&scratch);
    return rc;
}

/* ---- the copy ---- */

typedef struct {
    size_t entries, commands;
} counts_t;

/* Appends entries[from, to) of l into dst, the commands sealed anew. */
static int copy_entries(rio_t *dst, const loaded_t *l, size_t from, size_t to, const uint8_t *old_key,
                        const uint8_t *new_key, crypto_generichash_state *h, counts_t *n, const char *dir, char *err,
                        size_t cap)
{
    struct raft_entry *out = calloc(APPEND_ENTRIES, sizeof *out);
    hx_buf_t *sealed = calloc(APPEND_ENTRIES, sizeof *sealed);
    hx_buf_t scratch = {0};
    int rc = out && sealed ? 0 : HX_ENOMEM;
    if (rc)
        snprintf(err, cap, "out of memory");
    for (size_t i = from; rc == 0 && i < to;) {
        size_t k = 0, bytes = 0;
        for (; rc == 0 && i < to && k < APPEND_ENTRIES && bytes < APPEND_BYTES; i++, k++) {
            const struct raft_entry *e = &l->entries[i];
            const uint8_t *plain = e->buf.base;
            size_t plain_len = e->buf.len;
            out[k] = (struct raft_entry){.term = e->term, .type = e->type, .buf = e->buf};
            if (e->type == RAFT_COMMAND) {
                rc = open_bytes(old_key, e->buf.base, e->buf.len, &scratch, &plain, &plain_len);
                if (rc != 0) {
                    snprintf(err, cap, "entry %llu of %s does not open with the old key: nothing changed",
                             (unsigned long long)(l->start + i), dir);
                    rc = HX_EFAILED;
                    break;
                }
                if ((rc = hx_cluster_seal(new_key, plain, plain_len, &sealed[k])) != 0) {
                    snprintf(err, cap, "out of memory");
                    break;
                }
                out[k].buf = (struct raft_buffer){.base = sealed[k].data, .len = sealed[k].len};
                n->commands++;
            }
            digest_item(h, 'E', l->start + i, e->term, e->type, plain, plain_len);
            bytes += out[k].buf.len;
            n->entries++;
        }
        if (rc == 0 && k) {
            struct raft_io_append req = {.data = dst};
            dst->finished = false;
            rc = rio_wait(dst, dst->io.append(&dst->io, &req, out, (unsigned)k, append_done), "append", dir, err,
                          cap);
        }
    }
    if (sealed)
        for (size_t j = 0; j < APPEND_ENTRIES; j++)
            hx_buf_free(&sealed[j]);
    if (scratch.data)
        sodium_memzero(scratch.data, scratch.cap);
    hx_buf_free(&scratch);
    free(sealed);
    free(out);
    return rc;
}

/* The whole log of src written into the empty directory p->copy. */
static int copy_log(const paths_t *p, const loaded_t *l, const uint8_t *old_key, const uint8_t *new_key,
                    uint8_t digest[crypto_generichash_BYTES], counts_t *n, char *err, size_t cap)
{
    rio_t dst;
    int rc = rio_open(&dst, p->copy, err, cap);
    if (rc)
        return rc;
    loaded_t empty;
    if ((rc = rio_load(&dst, &empty, p->copy, err, cap)) != 0) {
        rio_close(&dst);
        return rc;
    }
    loaded_free(&empty);
    int rv = 0;
    if (l->term)
        rv = dst.io.set_term(&dst.io, l->term);
    if (rv == 0 && l->vote)
        rv = dst.io.set_vote(&dst.io, l->vote);
    if (rv != 0) {
        snprintf(err, cap, "%s: the term and vote: %s", p->copy, dst.io.errmsg[0] ? dst.io.errmsg : raft_strerror(rv));
        rio_close(&dst);
        return HX_EIO;
    }
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, crypto_generichash_BYTES);
    digest_item(&h, 'M', l->term, l->vote, 0, NULL, 0);
    hx_buf_t scratch = {0}, sealed = {0};
    if (l->snap) {
        const uint8_t *plain;
        size_t plain_len;
        if (l->snap->n_bufs != 1) {
            snprintf(err, cap, "the snapshot at index %llu was loaded in %u parts, not one",
                     (unsigned long long)l->snap->index, l->snap->n_bufs);
            rc = HX_EIO;
        } else if (open_bytes(old_key, l->snap->bufs[0].base, l->snap->bufs[0].len, &scratch, &plain, &plain_len)) {
            snprintf(err, cap, "the snapshot at index %llu of %s does not open with the old key: nothing changed",
                     (unsigned long long)l->snap->index, p->raft);
            rc = HX_EFAILED;
        } else if (hx_cluster_seal(new_key, plain, plain_len, &sealed) != 0) {
            snprintf(err, cap, "out of memory");
            rc = HX_ENOMEM;
        } else if (digest_snapshot(&h, l->snap, plain, plain_len) != 0) {
            snprintf(err, cap, "out of memory");
            rc = HX_ENOMEM;
        } else {
            struct raft_buffer buf = {.base = sealed.data, .len = sealed.len};
            struct raft_snapshot s = {.index = l->snap->index, .term = l->snap->term,
                                      .configuration = l->snap->configuration,
                                      .configuration_index = l->snap->configuration_index, .bufs = &buf, .n_bufs = 1};
            struct raft_io_snapshot_put req = {.data = &dst};
            dst.finished = false;
            /* trailing 0: the next entry appended is the snapshot's index + 1 */
            rc = rio_wait(&dst, dst.io.snapshot_put(&dst.io, 0, &req, &s, put_done), "the snapshot", p->copy, err,
                          cap);
        }
    }
    if (scratch.data)
        sodium_memzero(scratch.data, scratch.cap);
    hx_buf_free(&scratch);
    hx_buf_free(&sealed);
    size_t from = first_kept(l);
    raft_index want = l->snap ? l->snap->index + 1 : 1;
    if (rc == 0 && from < l->n && l->start + from != want) {
        snprintf(err, cap, "%s: its entries begin at index %llu, not %llu (after the snapshot): not rekeyed", p->raft,
                 (unsigned long long)(l->start + from), (unsigned long long)want);
        rc = HX_EIO;
    }
    if (rc == 0)
        rc = copy_entries(&dst, l, from, l->n, old_key, new_key, &h, n, p->raft, err, cap);
    crypto_generichash_final(&h, digest, crypto_generichash_BYTES);
    rio_close(&dst);
    return rc;
}

/* The copy read back with libraft: the same term and vote, and, opened with new_key, the
 * same snapshot and entries. */
static int check_copy(const paths_t *p, const loaded_t *l, const uint8_t *new_key,
                      const uint8_t want[crypto_generichash_BYTES], char *err, size_t cap)
{
    rio_t chk;
    loaded_t got;
    int rc = rio_open(&chk, p->copy, err, cap);
    if (rc)
        return rc;
    uint8_t digest[crypto_generichash_BYTES];
    char why[300] = "";
    rc = rio_load(&chk, &got, p->copy, err, cap);
    if (rc == 0) {
        if (digest_log(&got, new_key, digest, why, sizeof why) != 0 || got.term != l->term || got.vote != l->vote ||
            sodium_memcmp(digest, want, sizeof digest) != 0) {
            snprintf(err, cap, "the rekeyed copy in %s does not read back as the log it was made from%s%s; the log "
                     "is untouched", p->copy, why[0] ? ": " : "", why);
            rc = HX_EIO;
        }
        loaded_free(&got);
    }
    rio_close(&chk);
    return rc;
}

/* Run as root on a directory that belongs to the service's user: the copy takes raft/'s owner. */
static int copy_owner(const paths_t *p)
{
    struct stat st;
    if (geteuid() != 0 || stat(p->raft, &st) != 0 || st.st_uid == 0)
        return 0;
    DIR *d = opendir(p->copy);
    if (!d)
        return -1;
    int rc = chown(p->copy, st.st_uid, st.st_gid);
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        char path[4600];
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", p->copy, e->d_name);
            rc = lchown(path, st.st_uid, st.st_gid);
        }
    }
    closedir(d);
    return rc;
}

/* The checked copy put in place: raft/ moved to raft.old/, raft.rekey/ to raft/, then
 * raft.rekey.done and raft.old/ removed. Each step can be repeated after a stop. */
static int swap_in(const paths_t *p, char *err, size_t cap)
{
    if (exists(p->copy)) {
        /* (a raft.old beside a raft/ not moved yet is an earlier rekey's, not removed then) */
        if (exists(p->raft) && (remove_tree(p->old) != 0 || rename(p->raft, p->old) != 0)) {
            snprintf(err, cap, "cannot move %s to %s: %s", p->raft, p->old, strerror(errno));
            return HX_EIO;
        }
        if (rename(p->copy, p->raft) != 0 || sync_path(p->data) != 0) {
            snprintf(err, cap, "cannot move %s to %s: %s", p->copy, p->raft, strerror(errno));
            return HX_EIO;
        }
    }
    if (unlink(p->done) != 0 && errno != ENOENT) {
        snprintf(err, cap, "cannot remove %s: %s", p->done, strerror(errno));
        return HX_EIO;
    }
    sync_path(p->data);
    if (remove_tree(p->old) != 0) {
        snprintf(err, cap, "the log is in place, sealed with the new key, but %s (the old one) cannot be removed: %s",
                 p->old, strerror(errno));
        return HX_EIO;
    }
    return 0;
}

bool hx_cluster_rekey_applies(const char *data)
{
    paths_t p;
    char why[64];
    return paths_make(&p, data, why, sizeof why) == 0 && (exists(p.raft) || exists(p.done));
}

int hx_cluster_rekey_leftover(const char *data, char *why, size_t cap)
{
    paths_t p;
    if (paths_make(&p, data, why, cap) != 0)
        return HX_EINVAL;
    if (exists(p.copy) || exists(p.done)) {
        snprintf(why, cap, "%s exists: a rekey of this node's Raft log was interrupted; run handoff-broker --rekey "
                 "with the same --data, --data-key and --new-data-key again to finish it",
                 exists(p.done) ? p.done : p.copy);
        return HX_EFAILED;
    }
    if (exists(p.old)) {
        if (remove_tree(p.old) == 0)
            hx_info("cluster: removed %s, the log a finished rekey left", p.old);
        else
            hx_warn("cluster: cannot remove %s (the log a finished rekey left): %s", p.old, strerror(errno));
    }
    return 0;
}

int hx_cluster_rekey(const char *data, const uint8_t *old_key, const uint8_t new_key[32], FILE *out, char *err,
                     size_t cap)
{
    paths_t p;
    if (cap)
        err[0] = '\0';
    if (paths_make(&p, data, err, cap) != 0)
        return HX_EINVAL;
    if (old_key && sodium_memcmp(old_key, new_key, 32) == 0) {
        snprintf(err, cap, "the new key is the key the log is sealed with already");
        return HX_EINVAL;
    }
    if (sodium_init() < 0) {
        snprintf(err, cap, "libsodium cannot start");
        return HX_EIO;
    }
    /* what an earlier run left */
    if (exists(p.done)) {
        fprintf(out, "Finishing the rekey that was interrupted (%s was complete and checked).\n", p.copy);
        int rc = swap_in(&p, err, cap);
        if (rc == 0)
            fprintf(out, "The Raft log in %s is sealed with the new key. Start this node with it once every node "
                    "of the cluster is rekeyed.\n", p.raft);
        return rc;
    }
    if (remove_tree(p.copy) != 0 || remove_tree(p.old) != 0) {
        snprintf(err, cap, "cannot remove what an earlier run left (%s, %s): %s", p.copy, p.old, strerror(errno));
        return HX_EIO;
    }
    if (!hx_cluster_log_there(p.raft)) {       /* a node that never joined: nothing sealed */
        fprintf(out, "%s holds no Raft log (no snapshot, no segment): nothing to rekey; start the node with the "
                "new key.\n", p.raft);
        return 0;
    }
    rio_t src;
    loaded_t l;
    int rc = rio_open(&src, p.raft, err, cap);
    if (rc)
        return rc;
    if ((rc = rio_load(&src, &l, p.raft, err, cap)) != 0) {
        rio_close(&src);
        return rc;
    }
    int which = which_key(&l, old_key, new_key, p.raft, err, cap);
    if (which < 0)
        rc = which;
    else if (which == 1)
        fprintf(out, "The Raft log in %s is sealed with the new key already: nothing to do.\n", p.raft);
    uint8_t digest[crypto_generichash_BYTES];
    counts_t n = {0};
    if (rc == 0 && which == 0) {
        if (mkdir(p.copy, 0700) != 0) {
            snprintf(err, cap, "cannot create %s: %s", p.copy, strerror(errno));
            rc = HX_EIO;
        }
        if (rc == 0)
            rc = copy_log(&p, &l, old_key, new_key, digest, &n, err, cap);
        if (rc == 0)
            rc = check_copy(&p, &l, new_key, digest, err, cap);
        int fd = -1;
        if (rc == 0 && (copy_owner(&p) != 0 || sync_path(p.copy) != 0 ||
                        (fd = open(p.done, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 || fsync(fd) != 0 ||
                        sync_path(p.data) != 0)) {
            snprintf(err, cap, "cannot complete %s: %s", p.copy, strerror(errno));
            rc = HX_EIO;
        }
        if (fd >= 0)
            close(fd);
        if (rc != 0) {
            unlink(p.done);
            remove_tree(p.copy);
        }
    }
    raft_index snap_index = l.snap ? l.snap->index : 0;
    loaded_free(&l);
    rio_close(&src);
    if (rc != 0 || which != 0)
        return rc;
    rc = swap_in(&p, err, cap);         /* from here on a second run finishes it */
    if (rc == 0) {
        if (snap_index)
            fprintf(out, "Sealed the Raft log in %s with the new key: the snapshot at index %llu and %zu entr%s after "
                    "it (%zu of the broker's); the old log is removed.\n", p.raft, (unsigned long long)snap_index,
                    n.entries, n.entries == 1 ? "y" : "ies", n.commands);
        else
            fprintf(out, "Sealed the Raft log in %s with the new key: %zu entr%s (%zu of the broker's); the old log "
                    "is removed.\n", p.raft, n.entries, n.entries == 1 ? "y" : "ies", n.commands);
        fprintf(out, "Rekey every node of the cluster, then start them all with the new key.\n");
    }
    return rc;
}
