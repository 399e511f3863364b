/* hx_store — where the broker keeps what it accepted. The router holds only handles (and
 * sizes); bodies live in the store. Changes are grouped in transactions, one per request,
 * each made durable as a whole: begin, then put/settle/dead/revive/attempts, then end,
 * which returns a sequence number. The transaction is durable once the store's durable
 * sequence reaches it (on_commit tells). Two stores: in memory (durable at once, lost on
 * restart) and the append-only log (hx_store_log.c). */
#ifndef HX_STORE_H
#define HX_STORE_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "hx_wire.h"

typedef struct hx_store hx_store_t;

/* What recovery found, in log order. */
typedef struct {
    void (*put)(void *arg, uint64_t handle, const uint8_t *msg, size_t len);
    void (*settle)(void *arg, const uint8_t id[HX_ID_LEN]);
    void (*dead)(void *arg, const uint8_t id[HX_ID_LEN], uint32_t attempts, uint64_t at_ms, const char *reason);
    void (*revive)(void *arg, const uint8_t id[HX_ID_LEN]);
    void (*attempts)(void *arg, const uint8_t id[HX_ID_LEN], uint32_t attempts);
    void (*dedup)(void *arg, const uint8_t id[HX_ID_LEN]);
    /* A message compaction wrote again further on (hx_store_ops_t.move): its body now at
     * handle, with its state as of that point (failed attempts; dead since dead_at_ms for
     * reason, or not dead when reason is NULL). An earlier put of the same id, if the log
     * still holds one, is superseded: its handle is to be released. NULL: told as a put. */
    void (*moved)(void *arg, uint64_t handle, const uint8_t *msg, size_t len, uint32_t attempts,
                  uint64_t dead_at_ms, const char *reason);
} hx_store_visitor_t;

typedef struct {
    int (*begin)(hx_store_t *s);
    int (*put)(hx_store_t *s, const uint8_t *msg, size_t len, uint64_t *handle);
    int (*settle)(hx_store_t *s, const uint8_t id[HX_ID_LEN]);
    int (*dead)(hx_store_t *s, const uint8_t id[HX_ID_LEN], uint32_t attempts, uint64_t at_ms, const char *reason);
    int (*revive)(hx_store_t *s, const uint8_t id[HX_ID_LEN]);
    int (*attempts)(hx_store_t *s, const uint8_t id[HX_ID_LEN], uint32_t attempts);
    /* Closes the transaction; *seq is its sequence number. */
    int (*end)(hx_store_t *s, uint64_t *seq);
    /* Drops the open transaction. */
    void (*abort)(hx_store_t *s);
    /* The body of a put, len bytes; *data valid until the next call on the store. */
    int (*get)(hx_store_t *s, uint64_t handle, size_t len, const uint8_t **data);
    /* The router no longer needs this body (settled, or its transaction failed). */
    void (*release)(hx_store_t *s, uint64_t handle);
    /* The router drops its hold on a message that is NOT settled (it is shutting down):
     * whatever memory the store keeps for it goes, what is on disk stays. */
    void (*forget)(hx_store_t *s, uint64_t handle);
    /* Starts making every closed transaction durable (group commit). */
    void (*flush)(hx_store_t *s);
    /* Periodic work: after a full disk, checks whether space has returned. */
    void (*tick)(hx_store_t *s, uint64_t now_ms);
    /* 0, or HX_EFULL / HX_EFAILED with the reason. */
    int (*health)(const hx_store_t *s, const char **why);
    uint64_t (*durable_seq)(const hx_store_t *s);
    /* Replays what the store holds into v (once, before anything else). */
    int (*recover)(hx_store_t *s, const hx_store_visitor_t *v, void *arg);
    size_t (*bytes)(const hx_store_t *s);
    void (*destroy)(hx_store_t *s);
    /* Group commits made durable so far (write + fdatasync); NULL: a store that never syncs. */
    uint64_t (*syncs)(const hx_store_t *s);

    /* Compaction, so that disk use follows what is held rather than all that ever passed:
     * NULL in a store with nothing to compact (memory). The owner asks compact_pick, given
     * the bytes and the number of the messages it still holds, for the segment to empty next (0: none);
     * moves the messages of that segment it holds, each with move inside a transaction; and
     * once that transaction is durable releases their old handles, after which the segment
     * is deleted like any settled one. move writes the message id's body again at the log's
     * end with its state (failed attempts; dead since dead_at_ms for reason, or reason
     * NULL), *handle its new place; the old place stays valid until released. */
    int (*move)(hx_store_t *s, const uint8_t id[HX_ID_LEN], const uint8_t *msg, size_t len, uint32_t attempts,
                uint64_t dead_at_ms, const char *reason, uint64_t *handle);
    uint64_t (*compact_pick)(const hx_store_t *s, uint64_t live_bytes, uint64_t live_messages);
    /* The segment (a number, 1 and up) that holds a handle's body. */
    uint64_t (*segment_of)(const hx_store_t *s, uint64_t handle);
    /* Bytes on disk from segment seg to the log's end: what a message in seg keeps there. */
    uint64_t (*bytes_from)(const hx_store_t *s, uint64_t seg);
    /* Messages moved by compaction since the store opened, and their stored bytes. */
    void (*compacted)(const hx_store_t *s, uint64_t *messages, uint64_t *bytes);
} hx_store_ops_t;

struct hx_store {
    const hx_store_ops_t *ops;
    /* Set by the owner: told when transactions up to seq became durable (status 0) or
     * failed (negative; every transaction up to seq failed). */
    void (*on_commit)(void *arg, uint64_t seq, int status);
    /* Set by the owner: appends the dedup window's ids (16 bytes each, oldest first) to out,
     * for the checkpoint that opens every new log segment. */
    void (*dedup_ids)(void *arg, hx_buf_t *out);
    void *owner;
    /* Set by whoever watches latency (the broker's metrics), or NULL: told on the owner's
     * loop thread how long each group commit's write and fdatasync took, in nanoseconds. */
    void (*on_sync)(void *arg, uint64_t nanos);
    void *sync_arg;
    /* Set by whoever keeps a record the log should vouch for (the broker's audit chain), or
     * NULL: asked on the loop thread, once per flush, for a small blob (at most
     * HX_STORE_ANCHOR_MAX bytes; returns its length) that the group commits record. *sync_fd
     * (preset -1) names a file the store fdatasyncs, on the thread pool beside its own writes,
     * before a commit records that blob: what the blob names is on disk first, and the
     * recorded blob trails by one sync. A blob that moved with nothing to commit gets a
     * commit of its own; destroy records the last one. Without the hook the last recovered
     * blob is carried on. */
    size_t (*anchor)(void *arg, uint8_t *out, size_t cap, int *sync_fd);
    /* ... told on the loop thread when a different blob became durable, and once by recover
     * with the latest one the log holds (not called when it holds none). */
    void (*on_anchor)(void *arg, const uint8_t *blob, size_t len);
    void *anchor_arg;
};

#define HX_STORE_ANCHOR_MAX 64

/* A store that keeps bodies in memory: durable at once, lost on restart. */
hx_store_t *hx_store_memory_new(void);

typedef struct {
    const char *dir;            /* created if missing */
    uint64_t segment_bytes;     /* roll over at this size; default 64 MiB */
    void *loop;                 /* a uv_loop_t: writes and fdatasync on its thread pool; NULL: in flush */
    const char *faults_path;    /* tests only: "enospc" / "eio" in this file injects faults */
    const uint8_t *key;         /* NULL, or 32 bytes: message bodies are sealed with it
                                   (XSalsa20-Poly1305, libsodium crypto_secretbox) */
} hx_store_log_config_t;

/* Takes the lock of a broker's data directory dir (dirfd: an open descriptor of it, or -1 to
 * open dir by name): DIR/LOCK, created if missing, flock(LOCK_EX | LOCK_NB). Returns the lock's
 * descriptor, held until it is closed (or the process ends), or -1 with the reason in err:
 * "DIR is in use by another handoff-broker (its LOCK is held): stop it first" when another
 * process holds it. The single broker's log, a cluster node and --recover-cluster all take it. */
int hx_store_lock_dir(const char *dir, int dirfd, char *err, size_t errcap);

/* The durable append-only log. NULL with the reason in err on failure. Its recover refuses
 * (HX_EFAILED, the reason in health) a log damaged inside the part that was acknowledged,
 * naming the segment, the offset and the messages around it, and cuts nothing; it cuts only
 * a torn tail that nobody was told was accepted. */
hx_store_t *hx_store_log_new(const hx_store_log_config_t *cfg, char *err, size_t errcap);

/* For a log that recover refuses: copies every readable record of the log in cfg->dir into a
 * new log there, moves the original segments untouched into cfg->dir/damaged-<UTC time>/,
 * and writes to out (and to salvage-report.txt beside them) what could not be read: segment,
 * offset range, bytes, the message ids around it. With cfg->key the ids of sealed messages
 * are named too. An intact log is left as it is. Finishes an interrupted salvage. 0, or a
 * negative HX_ code with the reason in err. */
int hx_store_log_salvage(const hx_store_log_config_t *cfg, FILE *out, char *err, size_t errcap);

/* Seals the log in cfg->dir anew with new_key (32 bytes): cfg->key is the key it is sealed
 * with now, or NULL for a log in clear (which gains a key this way). The log is written again
 * whole beside itself (DIR/rekey.new), checked by recovering it with new_key (the same
 * entries, the same bodies), put in place, and the old segments removed; a run that stopped
 * half-way is finished or undone by running it again, and the broker does not start while
 * one is unfinished. The broker must be stopped (the directory's lock). What was done goes to
 * out. 0, or a negative HX_ code with the reason in err. */
int hx_store_log_rekey(const hx_store_log_config_t *cfg, const uint8_t new_key[32], FILE *out, char *err,
                       size_t errcap);

/* What hx_store_log_snapshot copied: the log's durable end E it is consistent at, the
 * segments (first_seg up to end_seg) and their bytes. */
typedef struct {
    uint64_t end_seg, end_off;
    uint64_t first_seg;
    size_t segments;
    uint64_t bytes;
} hx_store_snapshot_t;

/* Receives one file of a snapshot: name (e.g. "00000000000000000003.log", "SYNCED"), then
 * either fd >= 0, whose bytes [0, len) are the file, or data with len bytes. 0, or negative
 * to stop the snapshot. */
typedef int (*hx_store_snapshot_fn)(void *arg, const char *name, int fd, uint64_t len, const uint8_t *data);

/* A consistent copy of the log in dir while a broker keeps writing it, without its help
 * (hx_store_snapshot.c): the segments up to SYNCED's durable end E, the last cut at E, then a
 * SYNCED naming E, then the audit anchor's copy when dir has one, each passed to fn in that
 * order. What it yields is what a crash at E would have left; recovery takes it as it is. 0,
 * or a negative HX_ code with the reason in err. */
int hx_store_log_snapshot(const char *dir, hx_store_snapshot_fn fn, void *arg, hx_store_snapshot_t *info, char *err,
                          size_t errcap);
/* The same into the directory into (created 0700 if missing; files 0600, synced). */
int hx_store_log_snapshot_dir(const char *dir, const char *into, hx_store_snapshot_t *info, char *err, size_t errcap);

/* Destroys any store and NULLs the pointer. */
void hx_store_destroy(hx_store_t **self_p);

#endif
