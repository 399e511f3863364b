/* hx_cluster — see hx_cluster.h. */
#include "hx_cluster.h"
#include "hx_cluster_internal.h"
#include "hx_idmap.h"
#include "hx_log.h"
#include "hx_raft_guard.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <raft.h>
#include <sodium.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "envelope.pb-c.h"

/* ---- the entries' and snapshots' bytes ---------------------------------------------------
 *
 * An entry: "HXC1", u32 records, u64 the proposing node, u64 its last transaction's sequence
 * number, then the records, then zeros to a multiple of 8 bytes (libraft 0.15 reads a
 * segment's entries back wrongly after a snapshot when one's length is not: every entry is
 * padded). A record: u8 kind, the message id (16 bytes), then by kind: PUT u32 length and the
 * body; DEAD u32 attempts, u64 when (ms), u16 length and the reason; ATTEMPTS u32 attempts;
 * SETTLE and REVIVE nothing more. Integers little-endian.
 *
 * A snapshot: "HXS2", u64 ids of the dedup window (oldest first) and the ids, u64 messages
 * held and each (in the order accepted): the id, u32 attempts, u64 dead since (0: not dead),
 * u16 length and the reason, u32 length and the body; then u32 nodes and each node the
 * membership entries named (below): u64 id, u16 length and the Raft address, u16 length and
 * the client endpoint; padded to 8. "HXS1" (written before membership changes) ends after the
 * messages.
 *
 * A membership entry (the operator added or removed a node): "HXN1", u8 1 (a node's
 * addresses) or 2 (a node forgotten), u64 the node's id, u16 length and its Raft address,
 * u16 length and its client endpoint; padded to 8. Every node keeps the nodes so named, to
 * tell clients where a leader that is not in its own --cluster list is.
 *
 * An anchor entry (the serving node's audit chain's head, once its audit file was synced up to
 * it; hx_store.h's anchor hook): "HXA1", u64 the node's id, u8 length and the head; padded to
 * 8. The state keeps the latest head of each node, in the order last recorded (at most
 * ANCHORS_MAX nodes: the one recorded least recently is forgotten first); a snapshot carries
 * them after the nodes, in that order: u32 heads and each u64 node id, u8 length and the head
 * (a snapshot without them, written before, ends after the nodes).
 *
 * With a data key, each is sealed whole: "HXSK", u32 the length sealed, a random nonce (24
 * bytes), crypto_secretbox of the bytes above; padded to 8. So the log on disk, the
 * snapshots and what the nodes send each other hold no message in clear. */

enum { R_PUT = 1, R_SETTLE, R_DEAD, R_REVIVE, R_ATTEMPTS };

static const char entry_magic[4] = {'H', 'X', 'C', '1'}, snap_magic[4] = {'H', 'X', 'S', '2'},
                  snap_magic_v1[4] = {'H', 'X', 'S', '1'}, member_magic[4] = {'H', 'X', 'N', '1'},
                  sealed_magic[4] = {'H', 'X', 'S', 'K'}, anchor_magic[4] = {'H', 'X', 'A', '1'};
enum { M_SET = 1, M_FORGET = 2 };
#define MEMBERS_MAX (2 * HX_CLUSTER_MAX)
#define ANCHORS_MAX 32
#define SEALED_HEAD (4 + 4 + crypto_secretbox_NONCEBYTES)
#define ENTRY_HEAD 24

static int put_u16(hx_buf_t *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return hx_buf_append(b, x, 2);
}

static int put_u32(hx_buf_t *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    return hx_buf_append(b, x, 4);
}

static int put_u64(hx_buf_t *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    return hx_buf_append(b, x, 8);
}

static void set_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void set_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A reader over bytes that never reads past their end (ok turns false instead). */
typedef struct {
    const uint8_t *p, *end;
    bool ok;
} rd_t;

static const uint8_t *take(rd_t *r, size_t n)
{
    if (!r->ok || (size_t)(r->end - r->p) < n) {
        r->ok = false;
        return NULL;
    }
    const uint8_t *at = r->p;
    r->p += n;
    return at;
}

static uint64_t get_n(rd_t *r, int bytes)
{
    const uint8_t *p = take(r, (size_t)bytes);
    uint64_t v = 0;
    for (int i = 0; p && i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int pad8(hx_buf_t *b)
{
    static const uint8_t zeros[8];
    size_t n = (8 - b->len % 8) % 8;
    return n ? hx_buf_append(b, zeros, n) : 0;
}

/* plain sealed into out (replacing it): "HXSK", length, nonce, box, padding. */
int hx_cluster_seal(const uint8_t key[crypto_secretbox_KEYBYTES], const uint8_t *plain, size_t len, hx_buf_t *out)
{
    out->len = 0;
    if (len > UINT32_MAX - crypto_secretbox_MACBYTES ||
        hx_buf_reserve(out, SEALED_HEAD + crypto_secretbox_MACBYTES + len + 8) != 0)
        return HX_ENOMEM;
    uint8_t *p = out->data;
    memcpy(p, sealed_magic, 4);
    set_u32(p + 4, (uint32_t)(len + crypto_secretbox_MACBYTES));
    randombytes_buf(p + 8, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(p + SEALED_HEAD, plain, len, p + 8, key);
    out->len = SEALED_HEAD + crypto_secretbox_MACBYTES + len;
    return pad8(out);
}

/* Whether data is sealed; if so, opened into out (0), or HX_EINVAL (not this key's, or
 * damaged), HX_EDENIED (sealed, and no key given). */
int hx_cluster_unseal(const uint8_t *key, const uint8_t *data, size_t len, hx_buf_t *out, bool *sealed)
{
    *sealed = len >= 4 && !memcmp(data, sealed_magic, 4);
    if (!*sealed)
        return 0;
    if (!key)
        return HX_EDENIED;
    if (len < SEALED_HEAD + crypto_secretbox_MACBYTES)
        return HX_EINVAL;
    uint32_t boxed = (uint32_t)data[4] | (uint32_t)data[5] << 8 | (uint32_t)data[6] << 16 | (uint32_t)data[7] << 24;
    if (boxed < crypto_secretbox_MACBYTES || boxed > len - SEALED_HEAD)
        return HX_EINVAL;
    out->len = 0;
    if (hx_buf_reserve(out, boxed - crypto_secretbox_MACBYTES + 1) != 0)
        return HX_ENOMEM;
    if (crypto_secretbox_open_easy(out->data, data + SEALED_HEAD, boxed, data + 8, key) != 0)
        return HX_EINVAL;
    out->len = boxed - crypto_secretbox_MACBYTES;
    return 0;
}

/* ---- the replicated state --------------------------------------------------------------- */

/* A body, shared by the state and the router built from it (each holds a reference). */
typedef struct body {
    uint32_t refs;
    uint32_t len;
    union {
        uint64_t no;            /* its number, in the order made */
        struct body *next;      /* once kept for a snapshot's view (below): the next kept */
    } u;
    uint8_t data[];
} body_t;

/* While a snapshot's view is out (a worker writes the bodies it names), a body made before the
 * view was taken is not freed when its last reference goes: it is kept until the view is
 * released, then freed. So taking and releasing a view touch no body (they took a reference
 * on each and dropped it: two passes over every held body on the loop, on every node at the
 * same entry; with the rest, 16-31 ms of the loop's CPU per 90,000 held messages, 6-16 ms
 * now, bench/README.md). Bodies made after are freed as usual. Only the loop touches this. */
static struct {
    uint64_t made;              /* bodies made so far */
    uint64_t upto;              /* while a view is out: bodies numbered up to this may be in it */
    bool out;
    body_t *kept;
    size_t n_kept;
    unsigned releasing;         /* released views whose buffers the thread pool frees */
} bodies;

static void bodies_view_taken(void)
{
    bodies.out = true;
    bodies.upto = bodies.made;
}

/* The view released: the bodies kept for it, theirs to free (bodies_free_kept, any thread). */
static body_t *bodies_view_released(void)
{
    body_t *kept = bodies.kept;
    bodies.out = false;
    bodies.kept = NULL;
    bodies.n_kept = 0;
    return kept;
}

static void bodies_free_kept(body_t *kept)
{
    while (kept) {
        body_t *b = kept;
        kept = b->u.next;
        free(b);
    }
}

typedef struct held {
    uint8_t id[HX_ID_LEN];      /* first: hx_idmap's records begin with their id */
    body_t *body;
    uint32_t attempts;
    uint64_t dead_at;           /* 0: not dead */
    char *reason;
    struct held *prev, *next;   /* the order accepted */
} held_t;

typedef hx_cluster_anchor_t anchor_t;

typedef struct {
    hx_idmap_t by_id;           /* the held, by id: one probe where uthash walked a chain of
                                   records, each a cache miss (10 % of a follower's CPU) */
    held_t *first, *last;
    hx_idmap_t pending;         /* the serving leader's bodies proposed and not applied yet, by id:
                                   its own entries, applied, share them instead of copying */
    uint64_t n, bytes;
    uint8_t (*dedup)[HX_ID_LEN];    /* a ring of the settled ids, dedup_cap of them */
    size_t dedup_cap, dedup_head, dedup_n;
    hx_cluster_node_t members[MEMBERS_MAX];     /* the nodes membership entries named */
    size_t n_members;
    anchor_t anchors[ANCHORS_MAX];              /* each node's audit head, in the order last recorded */
    size_t n_anchors;
} state_t;

static body_t *body_new(const uint8_t *data, size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    body_t *b = malloc(sizeof *b + len);
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = (uint32_t)len;
    b->u.no = ++bodies.made;
    memcpy(b->data, data, len);
    return b;
}

static void body_unref(body_t *b)
{
    if (!b || --b->refs)
        return;
    if (bodies.out && b->u.no <= bodies.upto) {    /* a view may name it: kept until released */
        b->u.next = bodies.kept;
        bodies.kept = b;
        bodies.n_kept++;
        return;
    }
    free(b);
}

static void held_free(state_t *s, held_t *h)
{
    hx_idmap_remove(&s->by_id, h->id);
    if (h->prev)
        h->prev->next = h->next;
    else
        s->first = h->next;
    if (h->next)
        h->next->prev = h->prev;
    else
        s->last = h->prev;
    s->n--;
    s->bytes -= h->body->len;
    body_unref(h->body);
    free(h->reason);
    free(h);
}

static void dedup_add(state_t *s, const uint8_t id[HX_ID_LEN])
{
    if (!s->dedup_cap)
        return;
    memcpy(s->dedup[(s->dedup_head + s->dedup_n) % s->dedup_cap], id, HX_ID_LEN);
    if (s->dedup_n < s->dedup_cap)
        s->dedup_n++;
    else
        s->dedup_head = (s->dedup_head + 1) % s->dedup_cap;
}

static void state_clear(state_t *s)
{
    while (s->first)
        held_free(s, s->first);
    s->dedup_head = s->dedup_n = 0;
    s->n_anchors = 0;
}

/* Everything the state holds, and its maps and ring, freed (after the pending bodies). */
static void state_free(state_t *s)
{
    state_clear(s);
    hx_idmap_free(&s->by_id);
    hx_idmap_free(&s->pending);
    free(s->dedup);
    s->dedup = NULL;
}

static held_t *held_find(state_t *s, const uint8_t id[HX_ID_LEN])
{
    return hx_idmap_find(&s->by_id, id);
}

static int held_add(state_t *s, const uint8_t id[HX_ID_LEN], body_t *body, uint32_t attempts, uint64_t dead_at,
                    const char *reason, size_t reason_len)
{
    held_t *h = calloc(1, sizeof *h);
    if (!h || (reason_len && !(h->reason = strndup(reason, reason_len)))) {
        free(h);
        return HX_ENOMEM;
    }
    memcpy(h->id, id, HX_ID_LEN);
    if (hx_idmap_put(&s->by_id, h) != 0) {
        free(h->reason);
        free(h);
        return HX_ENOMEM;
    }
    h->body = body;
    h->attempts = attempts;
    h->dead_at = dead_at;
    h->prev = s->last;
    if (s->last)
        s->last->next = h;
    else
        s->first = h;
    s->last = h;
    s->n++;
    s->bytes += body->len;
    return 0;
}

/* Applies one entry's records. Records that name a message not held (an id settled twice,
 * a record of a transaction whose put was refused) change nothing. HX_EINVAL for bytes that
 * are not an entry, HX_ENOMEM. */
static int state_apply(state_t *s, const uint8_t *data, size_t len, uint64_t *node, uint64_t *last_seq)
{
    rd_t r = {data, data + len, true};
    const uint8_t *magic = take(&r, 4);
    if (!magic || memcmp(magic, entry_magic, 4))
        return HX_EINVAL;
    uint32_t n = (uint32_t)get_n(&r, 4);
    *node = get_n(&r, 8);
    *last_seq = get_n(&r, 8);
    for (uint32_t i = 0; i < n && r.ok; i++) {
        uint8_t kind = take(&r, 1) ? r.p[-1] : 0;
        const uint8_t *id = take(&r, HX_ID_LEN);
        if (!r.ok)
            break;
        held_t *h = held_find(s, id);
        if (kind == R_PUT) {
            uint32_t blen = (uint32_t)get_n(&r, 4);
            const uint8_t *body = take(&r, blen);
            held_t *mine = NULL;
            if (r.ok && !h && s->pending.n)
                mine = hx_idmap_find(&s->pending, id);
            if (mine && (mine->body->len != blen || memcmp(mine->body->data, body, blen)))
                mine = NULL;                /* not the same bytes: the entry's own are kept */
            if (r.ok && !h && mine) {
                hx_idmap_remove(&s->pending, id);
                body_t *b = mine->body;     /* the pending reference becomes the state's */
                free(mine);
                if (held_add(s, id, b, 0, 0, NULL, 0) != 0) {
                    body_unref(b);
                    return HX_ENOMEM;
                }
            } else if (r.ok && !h) {
                body_t *b = body_new(body, blen);
                if (!b || held_add(s, id, b, 0, 0, NULL, 0) != 0) {
                    body_unref(b);
                    return HX_ENOMEM;
                }
            }
        } else if (kind == R_SETTLE) {
            if (h)
                held_free(s, h);
            dedup_add(s, id);
        } else if (kind == R_DEAD) {
            uint32_t attempts = (uint32_t)get_n(&r, 4);
            uint64_t at = get_n(&r, 8);
            uint16_t rlen = (uint16_t)get_n(&r, 2);
            const uint8_t *reason = take(&r, rlen);
            if (r.ok && h) {
                char *copy = strndup((const char *)reason, rlen);
                if (!copy)
                    return HX_ENOMEM;
                free(h->reason);
                h->reason = copy;
                h->attempts = attempts;
                h->dead_at = at ? at : 1;
            }
        } else if (kind == R_REVIVE) {
            if (h) {
                free(h->reason);
                h->reason = NULL;
                h->dead_at = 0;
                h->attempts = 0;
            }
        } else if (kind == R_ATTEMPTS) {
            uint32_t attempts = (uint32_t)get_n(&r, 4);
            if (r.ok && h)
                h->attempts = attempts;
        } else {
            return HX_EINVAL;
        }
    }
    return r.ok ? 0 : HX_EINVAL;
}

/* A membership entry (see the format above) applied to the nodes s keeps. */
static int members_apply(state_t *s, const uint8_t *data, size_t len)
{
    rd_t r = {data, data + len, true};
    const uint8_t *magic = take(&r, 4);
    if (!magic || memcmp(magic, member_magic, 4))
        return HX_EINVAL;
    uint8_t op = take(&r, 1) ? r.p[-1] : 0;
    uint64_t id = get_n(&r, 8);
    size_t rlen = (size_t)get_n(&r, 2);
    const uint8_t *raft = take(&r, rlen);
    size_t clen = (size_t)get_n(&r, 2);
    const uint8_t *client = take(&r, clen);
    if (!r.ok || !id || rlen > HX_CLUSTER_ADDR_MAX || clen > HX_CLUSTER_ADDR_MAX || (op != M_SET && op != M_FORGET))
        return HX_EINVAL;
    size_t i = 0;
    while (i < s->n_members && s->members[i].id != id)
        i++;
    if (op == M_FORGET) {
        if (i < s->n_members)
            s->members[i] = s->members[--s->n_members];
        return 0;
    }
    if (i == s->n_members) {
        if (i == MEMBERS_MAX)
            return HX_EINVAL;
        s->n_members++;
    }
    hx_cluster_node_t *n = &s->members[i];
    n->id = id;
    memcpy(n->raft, raft, rlen);
    n->raft[rlen] = '\0';
    memcpy(n->client, client, clen);
    n->client[clen] = '\0';
    return 0;
}

void hx_cluster_anchor_put(hx_cluster_anchor_t *list, size_t *n, size_t max, uint64_t node, const uint8_t *blob,
                           size_t len)
{
    size_t i = 0;
    while (i < *n && list[i].node != node)
        i++;
    if (i == *n && *n < max)
        (*n)++;
    else {
        if (i == *n)
            i = 0;                          /* full: the least recently recorded goes */
        memmove(&list[i], &list[i + 1], (*n - 1 - i) * sizeof *list);
    }
    hx_cluster_anchor_t *a = &list[*n - 1];
    a->node = node;
    a->len = (uint8_t)len;
    memcpy(a->blob, blob, len);
}

static const anchor_t *anchor_of(const state_t *s, uint64_t node)
{
    for (size_t i = 0; i < s->n_anchors; i++)
        if (s->anchors[i].node == node)
            return &s->anchors[i];
    return NULL;
}

/* An anchor entry (format above) applied: *node is whose head it was. */
static int anchor_apply(state_t *s, const uint8_t *data, size_t len, uint64_t *node)
{
    rd_t r = {data, data + len, true};
    const uint8_t *magic = take(&r, 4);
    if (!magic || memcmp(magic, anchor_magic, 4))
        return HX_EINVAL;
    *node = get_n(&r, 8);
    size_t blen = (size_t)get_n(&r, 1);
    const uint8_t *blob = take(&r, blen);
    if (!r.ok || !*node || blen > HX_STORE_ANCHOR_MAX)
        return HX_EINVAL;
    hx_cluster_anchor_put(s->anchors, &s->n_anchors, ANCHORS_MAX, *node, blob, blen);
    return 0;
}

/* A membership entry's bytes into out (replacing it). */
static int member_entry(uint8_t op, const hx_cluster_node_t *n, hx_buf_t *out)
{
    size_t rlen = strlen(n->raft), clen = strlen(n->client);
    out->len = 0;
    return hx_buf_append(out, member_magic, 4) || hx_buf_append(out, &op, 1) || put_u64(out, n->id) ||
                   put_u16(out, (uint16_t)rlen) || hx_buf_append(out, n->raft, rlen) || put_u16(out, (uint16_t)clen) ||
                   hx_buf_append(out, n->client, clen) || pad8(out)
               ? HX_ENOMEM
               : 0;
}

/* A snapshot's view of the state: taken on the loop, where it is cheap (the bodies are shared,
 * kept alive while the view is out without touching them, see `bodies`; the rest is copied),
 * then written out and sealed on a worker thread, so a deep queue never holds the loop (and
 * the leader's lease) while its bytes are made. The worker reads the bodies' length and bytes,
 * which never change; only the loop touches the rest. */
typedef struct {
    uint8_t id[HX_ID_LEN];
    body_t *body;
    uint32_t attempts;
    uint64_t dead_at;
    char *reason;
} frozen_t;

typedef struct {
    frozen_t *held;
    size_t n;
    uint8_t (*dedup)[HX_ID_LEN];
    size_t dedup_n;
    hx_cluster_node_t members[MEMBERS_MAX];
    size_t n_members;
    anchor_t anchors[ANCHORS_MAX];
    size_t n_anchors;
    size_t size;                /* the bytes in clear, to reserve at once */
    const uint8_t *key;         /* NULL: written in clear */
    hx_buf_t out;
    struct raft_buffer buf;
    int status;                 /* the worker's: 0 or HX_ENOMEM */
    uint64_t started;           /* now_ms when taken: the log says how long it took to store */
    uint64_t froze_us;          /* how long the loop took to make the view (it serves nothing meanwhile) */
    size_t held_cap;            /* held's room */
    body_t *kept;               /* once released: the bodies kept for it, to free */
    uv_work_t release;          /* the buffers freed on the thread pool */
} snap_t;

/* On any thread, once the view is released: its buffers (a snapshot's bytes and the bodies
 * kept for it: freeing 100 MB took the loop 5-6 ms, the kernel taking the pages back) */
static void snap_free_buffers(snap_t *z)
{
    bodies_free_kept(z->kept);
    z->kept = NULL;
    free(z->held);
    z->held = NULL;
    free(z->dedup);
    z->dedup = NULL;
    hx_buf_free(&z->out);       /* sealed (its clear copy was wiped on the worker), or in clear
                                   as Raft stores it: nothing to wipe */
}

static void snap_release_work(uv_work_t *w)
{
    snap_free_buffers(w->data);
}

static void snap_release_done(uv_work_t *w, int status)
{
    (void)status;
    bodies.releasing--;
    free(w->data);              /* (libuv is done with the request only now) */
}

/* On the loop: the view released. With spare, its array of held messages becomes *spare for
 * the next view (a million held: 48 MB, whose pages the next view would otherwise touch for
 * the first time again) and the one there is freed: the newest view's size is kept, so a queue
 * that drained gives the bigger one back. The rest freed on the thread pool when loop is
 * given, else here. */
static void snap_release(uv_loop_t *loop, snap_t *z, frozen_t **spare, size_t *spare_cap)
{
    for (size_t i = 0; z->held && i < z->n; i++)
        free(z->held[i].reason);
    z->kept = bodies_view_released();
    if (spare) {
        frozen_t *old = *spare;
        *spare = z->held;
        *spare_cap = z->held ? z->held_cap : 0;
        z->held = old;          /* (freed with the rest) */
    }
    z->release.data = z;
    if (loop && uv_queue_work(loop, &z->release, snap_release_work, snap_release_done) == 0) {
        bodies.releasing++;
        return;
    }
    snap_free_buffers(z);
    free(z);
}

/* On the loop: the view released and freed here. */
static void snap_free(snap_t *z)
{
    snap_release(NULL, z, NULL, NULL);
}

static snap_t *snap_freeze(const state_t *s, const uint8_t *key, frozen_t **spare, size_t *spare_cap)
{
    snap_t *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    bodies_view_taken();
    z->key = key;
    /* the last view's array, its pages touched already, when it fits (not 4 times too big) */
    if (s->n && *spare_cap >= s->n && *spare_cap / 4 <= s->n) {
        z->held = *spare;
        z->held_cap = *spare_cap;
        *spare = NULL;
        *spare_cap = 0;
    } else if (s->n) {
        z->held_cap = (size_t)s->n + (size_t)s->n / 4;  /* room for a queue that grows */
        z->held = malloc(z->held_cap * sizeof *z->held);
    }
    z->dedup = s->dedup_n ? malloc(s->dedup_n * HX_ID_LEN) : NULL;
    if ((s->n && !z->held) || (s->dedup_n && !z->dedup)) {
        snap_free(z);
        return NULL;
    }
    for (size_t i = 0; i < s->dedup_n; i++)
        memcpy(z->dedup[i], s->dedup[(s->dedup_head + i) % s->dedup_cap], HX_ID_LEN);
    z->dedup_n = s->dedup_n;
    /* (the bodies' bytes from the state's count: no body is read here) */
    z->size = 4 + 8 + s->dedup_n * HX_ID_LEN + 8 + 4 + 8 + s->n * (HX_ID_LEN + 4 + 8 + 2 + 4) + s->bytes;
    for (const held_t *h = s->first; h; h = h->next) {
        frozen_t *f = &z->held[z->n];
        size_t rlen = h->reason ? strlen(h->reason) : 0;
        if (rlen > UINT16_MAX)
            rlen = UINT16_MAX;
        f->reason = rlen ? strndup(h->reason, rlen) : NULL;
        if (rlen && !f->reason) {
            snap_free(z);
            return NULL;
        }
        memcpy(f->id, h->id, HX_ID_LEN);
        f->body = h->body;
        f->attempts = h->attempts;
        f->dead_at = h->dead_at;
        z->n++;
        z->size += rlen;
    }
    memcpy(z->members, s->members, s->n_members * sizeof *s->members);
    z->n_members = s->n_members;
    z->size += s->n_members * (8 + 2 + 2 + 2 * HX_CLUSTER_ADDR_MAX);
    memcpy(z->anchors, s->anchors, s->n_anchors * sizeof *s->anchors);
    z->n_anchors = s->n_anchors;
    z->size += 4 + s->n_anchors * (8 + 1 + HX_STORE_ANCHOR_MAX) + 8;
    return z;
}

/* The snapshot's bytes (format above) into out. */
static int snap_write(const snap_t *z, hx_buf_t *out)
{
    int rc = hx_buf_reserve(out, z->size) || hx_buf_append(out, snap_magic, 4) || put_u64(out, z->dedup_n) ||
                     (z->dedup_n && hx_buf_append(out, z->dedup, z->dedup_n * HX_ID_LEN)) || put_u64(out, z->n)
                 ? HX_ENOMEM
                 : 0;
    for (size_t i = 0; rc == 0 && i < z->n; i++) {
        const frozen_t *f = &z->held[i];
        size_t rlen = f->reason ? strlen(f->reason) : 0;
        rc = hx_buf_append(out, f->id, HX_ID_LEN) || put_u32(out, f->attempts) || put_u64(out, f->dead_at) ||
                     put_u16(out, (uint16_t)rlen) || (rlen && hx_buf_append(out, f->reason, rlen)) ||
                     put_u32(out, f->body->len) || hx_buf_append(out, f->body->data, f->body->len)
                 ? HX_ENOMEM
                 : 0;
    }
    if (rc == 0)
        rc = put_u32(out, (uint32_t)z->n_members);
    for (size_t i = 0; rc == 0 && i < z->n_members; i++) {
        const hx_cluster_node_t *n = &z->members[i];
        size_t rlen = strlen(n->raft), clen = strlen(n->client);
        rc = put_u64(out, n->id) || put_u16(out, (uint16_t)rlen) || hx_buf_append(out, n->raft, rlen) ||
                     put_u16(out, (uint16_t)clen) || hx_buf_append(out, n->client, clen)
                 ? HX_ENOMEM
                 : 0;
    }
    if (rc == 0 && z->n_anchors)
        rc = put_u32(out, (uint32_t)z->n_anchors);
    for (size_t i = 0; rc == 0 && i < z->n_anchors; i++) {
        const anchor_t *a = &z->anchors[i];
        rc = put_u64(out, a->node) || hx_buf_append(out, &a->len, 1) || hx_buf_append(out, a->blob, a->len)
                 ? HX_ENOMEM
                 : 0;
    }
    return rc == 0 && pad8(out) == 0 ? 0 : HX_ENOMEM;
}

static int state_restore(state_t *s, const uint8_t *data, size_t len)
{
    state_clear(s);
    rd_t r = {data, data + len, true};
    const uint8_t *magic = take(&r, 4);
    if (!magic || (memcmp(magic, snap_magic, 4) && memcmp(magic, snap_magic_v1, 4)))
        return HX_EINVAL;
    bool with_members = !memcmp(magic, snap_magic, 4);
    s->n_members = 0;
    uint64_t n = get_n(&r, 8);
    for (uint64_t i = 0; i < n && r.ok; i++) {
        const uint8_t *id = take(&r, HX_ID_LEN);
        if (id)
            dedup_add(s, id);
    }
    n = get_n(&r, 8);
    for (uint64_t i = 0; i < n && r.ok; i++) {
        const uint8_t *id = take(&r, HX_ID_LEN);
        uint32_t attempts = (uint32_t)get_n(&r, 4);
        uint64_t dead_at = get_n(&r, 8);
        uint16_t rlen = (uint16_t)get_n(&r, 2);
        const uint8_t *reason = take(&r, rlen);
        uint32_t blen = (uint32_t)get_n(&r, 4);
        const uint8_t *body = take(&r, blen);
        if (!r.ok)
            break;
        body_t *b = body_new(body, blen);
        if (!b || held_add(s, id, b, attempts, dead_at, (const char *)reason, rlen) != 0) {
            body_unref(b);
            return HX_ENOMEM;
        }
    }
    uint32_t nodes = with_members ? (uint32_t)get_n(&r, 4) : 0;
    for (uint32_t i = 0; i < nodes && r.ok; i++) {
        hx_cluster_node_t node = {.id = get_n(&r, 8)};
        size_t rlen = (size_t)get_n(&r, 2);
        const uint8_t *raft = take(&r, rlen);
        size_t clen = (size_t)get_n(&r, 2);
        const uint8_t *client = take(&r, clen);
        if (!r.ok || !node.id || rlen > HX_CLUSTER_ADDR_MAX || clen > HX_CLUSTER_ADDR_MAX || s->n_members == MEMBERS_MAX)
            return HX_EINVAL;
        memcpy(node.raft, raft, rlen);
        memcpy(node.client, client, clen);
        s->members[s->n_members++] = node;
    }
    /* the nodes' audit heads, when the snapshot has them (else up to 7 bytes of padding) */
    uint32_t heads = r.ok && with_members && r.end - r.p >= 4 ? (uint32_t)get_n(&r, 4) : 0;
    if (heads > ANCHORS_MAX)
        return HX_EINVAL;
    for (uint32_t i = 0; i < heads && r.ok; i++) {
        uint64_t node = get_n(&r, 8);
        size_t blen = (size_t)get_n(&r, 1);
        const uint8_t *blob = take(&r, blen);
        if (!r.ok || !node || blen > HX_STORE_ANCHOR_MAX)
            return HX_EINVAL;
        hx_cluster_anchor_put(s->anchors, &s->n_anchors, ANCHORS_MAX, node, blob, blen);
    }
    return r.ok ? 0 : HX_EINVAL;
}

/* ---- the cluster ------------------------------------------------------------------------- */

typedef struct cluster_store cluster_store_t;

struct hx_cluster {
    hx_cluster_config_t cfg;
    uv_loop_t *loop;
    struct raft raft;
    hx_raft_guard_t guard;      /* libraft's disk I/O (raft_uv, guard.io) kept from its lost barrier */
    struct raft_uv_transport transport;     /* libraft's I/O uses this: tcp, with NODELAY */
    struct raft_uv_transport tcp;           /* libraft's own TCP transport */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
    bool authenticated;                     /* peer_key holds the nodes' key */
    uint8_t peer_key[32];
    struct peer_auth *auths;                /* handshakes in progress */
    size_t auth_live;                       /* handshake records not freed yet (writes, timers) */
    bool tcp_closed;                        /* the inner transport closed (close_cb pending) */
    uint64_t peers_refused, auth_warned_at;
    struct raft_fsm fsm;
    bool started, closed;
    state_t state;
    cluster_store_t *store;     /* the serving router's, or NULL */
    unsigned generation;        /* of stores: a proposal of an earlier one is answered no more */
    bool serving;
    bool barrier_pending;
    struct raft_barrier barrier;
    uint64_t barrier_issued;
    uint64_t last_proposal;     /* ms (uv_now) the last entry or barrier was proposed */
    uint64_t lease_until;       /* ms (uv_now): no other leader can exist before then */
    uint64_t seen_leader;
    uint64_t leader_changes, snapshots, committed;
    char leader_client[HX_CLUSTER_ADDR_MAX + 1];
    bool sealed;                /* a data key was given: key holds it */
    uint8_t key[crypto_secretbox_KEYBYTES];
    hx_buf_t scratch;           /* an entry or snapshot opened or sealed */
    snap_t *snap;               /* the snapshot being made (one at a time), or NULL */
    frozen_t *frozen_spare;     /* the last snapshot's array of held messages, for the next */
    size_t frozen_cap;
    uint64_t applied;           /* entries of the state machine applied (not barriers) */
    bool snap_taken;            /* snap_applied and snap_index are the last snapshot's */
    uint64_t snap_applied;
    raft_index snap_index;
    uint64_t log_bytes;         /* of the entries applied since the last snapshot (or start) */
    bool snap_retry;            /* the last snapshot failed: the next ask takes one */
    struct {                    /* the serving node's audit head (hx_store_t's anchor hook) */
        bool busy;              /* the audit file's fdatasync runs on the thread pool */
        uv_work_t work;
        int fd, err;
        uint64_t asked;         /* ms (uv_now) the last sync began */
        uint8_t blob[HX_STORE_ANCHOR_MAX];      /* the head being synced */
        size_t len;
        unsigned generation;    /* of the store that asked */
        uint8_t sent[HX_STORE_ANCHOR_MAX];      /* the last head proposed (or recorded) */
        size_t sent_len;
    } anchor;
    struct {                    /* the operator's membership change in progress (one at a time) */
        int step;               /* CH_NONE when none */
        hx_cluster_node_t node;
        struct raft_apply apply;
        struct raft_change add, assign;
        struct raft_transfer transfer;
        char last[400];         /* how the last one ended */
    } change;
};

enum { CH_NONE, CH_RECORD, CH_ADD, CH_PROMOTE, CH_REMOVE, CH_FORGET, CH_TRANSFER };
static const char *const change_steps[] = {"", "recording its endpoints", "adding it",
                                           "catching it up and making it a voter", "removing it",
                                           "forgetting its endpoints", "moving the leadership to it"};

/* A proposal in flight: the transactions up to seq, proposed at issued (ms). */
typedef struct {
    struct raft_apply req;
    hx_cluster_t *c;
    unsigned generation;
    uint64_t seq, issued;
} proposal_t;

struct cluster_store {
    hx_store_t base;
    hx_cluster_t *c;
    hx_buf_t entry;             /* the entry being made: its header reserved, then the records of
                                   the closed transactions and of the open one (from txn_start) */
    size_t txn_start;
    uint32_t txn_records, entry_records;
    uint64_t seq, durable, failed_to;
    int failure;                /* 0, or the status of the last failed proposal */
    char why[HX_CLUSTER_ADDR_MAX + 64];
    uint64_t bytes;
};

/* A body this leader put in an entry: kept (a reference) until that entry is applied, which
 * then shares it. One per id: a later one replaces it. */
static int pending_add(hx_cluster_t *c, const uint8_t id[HX_ID_LEN], body_t *b)
{
    held_t *p = hx_idmap_find(&c->state.pending, id);
    if (p) {
        body_unref(p->body);
    } else {
        if (!(p = calloc(1, sizeof *p)))
            return HX_ENOMEM;
        memcpy(p->id, id, HX_ID_LEN);
        if (hx_idmap_put(&c->state.pending, p) != 0) {
            free(p);
            return HX_ENOMEM;
        }
    }
    b->refs++;
    p->body = b;
    return 0;
}

static void pending_release(void *rec)
{
    held_t *p = rec;
    body_unref(p->body);
    free(p);
}

/* The serving store goes: what it proposed and was not applied is copied from the entries if
 * they are committed after all. */
static void pending_clear(hx_cluster_t *c)
{
    hx_idmap_clear(&c->state.pending, pending_release);
}

static uint64_t now_ms(const hx_cluster_t *c)
{
    return uv_now(c->loop);
}

static void renew_lease(hx_cluster_t *c, uint64_t issued)
{
    /* a majority heard from this leader after `issued`: none of them starts an election before
     * issued + the election timeout (the shortest it draws); a tenth of it kept as margin */
    uint64_t until = issued + (uint64_t)c->cfg.election_ms * 9 / 10;
    if (until > c->lease_until)
        c->lease_until = until;
}

/* ---- the Raft transport ----
 *
 * libraft's TCP transport, wrapped. Every connection it makes or accepts gets TCP_NODELAY
 * (libraft 0.15 leaves Nagle's algorithm on, so an AppendEntries of one small entry, or its
 * reply, waited for the acknowledgement of the one before: a follower's reply reached the
 * leader 7.7 ms after the request at p50, of which the follower's own append took 2.1 ms).
 *
 * With a peer key (every node has it: derived from the broker's CURVE secret), a connection is
 * handed to libraft only after both ends proved they hold it, right after libraft's own
 * handshake (the connecting node's id and address):
 *   acceptor -> connector  "HXRA", a random challenge NA (32 bytes)
 *   connector -> acceptor  a random challenge NC (32), then MAC("C", NA, NC, its id)
 *   acceptor -> connector  MAC("A", NA, NC)
 * MAC is BLAKE2b-256 keyed with the peer key over "handoff-raft-peer-1" and those fields (the
 * id as u64 little-endian). Each side reads exactly what the other sends before answering, so
 * no byte of Raft's own traffic is read here. A side that sees anything else, or nothing for
 * 5 s, closes the connection (libraft connects again later). A node without the key cannot
 * speak Raft to the cluster, nor receive what the cluster sends. */

#define TRANSPORT_OF(inner) ((hx_cluster_t *)((char *)(inner) - offsetof(hx_cluster_t, tcp)))
#define CLUSTER_OF(outer) ((hx_cluster_t *)((char *)(outer) - offsetof(hx_cluster_t, transport)))
#define AUTH_MS 5000
static const char auth_magic[4] = {'H', 'X', 'R', 'A'};

typedef struct peer_auth {
    hx_cluster_t *c;
    struct peer_auth *prev, *next;
    struct uv_stream_s *stream;     /* libraft's handle; ours until handed over or closed */
    uv_timer_t timer;
    bool accepting;                 /* this node accepted the connection (else it connected) */
    int step;
    raft_id id;                     /* the node at the other end (as it said, or as we dialled) */
    char address[HX_CLUSTER_ADDR_MAX + 1];
    struct raft_uv_connect *outer;  /* connecting: libraft's request and callback */
    raft_uv_connect_cb cb;
    uint8_t na[32], nc[32];
    uint8_t in[64];
    size_t want, got;
    uint8_t out1[64], out2[32];
    uv_write_t w1, w2;
    int refs;                       /* the timer's close and each write in flight */
} peer_auth_t;

static void nodelay(struct uv_stream_s *stream)
{
    if (stream && stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

static void peer_mac(const hx_cluster_t *c, char role, const uint8_t na[32], const uint8_t nc[32], const raft_id *id,
                     uint8_t out[32])
{
    static const char label[] = "handoff-raft-peer-1";
    crypto_generichash_state st;
    crypto_generichash_init(&st, c->peer_key, sizeof c->peer_key, 32);
    crypto_generichash_update(&st, (const unsigned char *)label, sizeof label - 1);
    crypto_generichash_update(&st, (const unsigned char *)&role, 1);
    crypto_generichash_update(&st, na, 32);
    crypto_generichash_update(&st, nc, 32);
    if (id) {
        uint8_t le[8];
        set_u64(le, *id);
        crypto_generichash_update(&st, le, 8);
    }
    crypto_generichash_final(&st, out, 32);
}

static void maybe_closed(hx_cluster_t *c)
{
    if (c->tcp_closed && !c->auth_live && c->close_cb) {
        raft_uv_transport_close_cb cb = c->close_cb;
        c->close_cb = NULL;
        cb(&c->transport);
    }
}

static void auth_unref(peer_auth_t *pa)
{
    if (--pa->refs > 0)
        return;
    hx_cluster_t *c = pa->c;
    free(pa);
    c->auth_live--;
    maybe_closed(c);
}

static void auth_timer_closed(uv_handle_t *h)
{
    auth_unref(h->data);
}

static void stream_closed(uv_handle_t *h)
{
    raft_free(h);                   /* libraft allocated it (raft_malloc) */
}

/* The handshake is over: the entry removed, the timer closed; pa goes when its writes are done. */
static void auth_end(peer_auth_t *pa)
{
    hx_cluster_t *c = pa->c;
    if (pa->prev)
        pa->prev->next = pa->next;
    else
        c->auths = pa->next;
    if (pa->next)
        pa->next->prev = pa->prev;
    pa->prev = pa->next = NULL;
    uv_timer_stop(&pa->timer);
    uv_close((uv_handle_t *)&pa->timer, auth_timer_closed);
}

/* The handshake ends without a connection: the other end proved a wrong key or spoke another
 * protocol (status AUTH_REFUSED: counted, a warning), the connection broke or timed out (0: a
 * node killed or stopped mid-handshake, said at info), or the transport closes (RAFT_CANCELED).
 * The stream is closed; a connecting request is answered. */
#define AUTH_REFUSED (-1)
static void auth_fail(peer_auth_t *pa, int status, const char *why)
{
    hx_cluster_t *c = pa->c;
    if (status != RAFT_CANCELED) {
        if (status == AUTH_REFUSED)
            c->peers_refused++;
        uint64_t now = uv_now(c->loop);
        if (!c->auth_warned_at || now - c->auth_warned_at >= 10000) {   /* one line per 10 s at most */
            c->auth_warned_at = now;
            hx_log(status == AUTH_REFUSED ? HX_LOG_WARN : HX_LOG_INFO,
                   "cluster: a Raft connection %s node %llu (%s) closed: %s%s", pa->accepting ? "from" : "to",
                   (unsigned long long)pa->id, pa->address, why,
                   status == AUTH_REFUSED ? " (every node needs the same --curve-secret, or without CURVE the "
                                            "same --data-key)"
                                          : "");
        }
    }
    uv_read_stop(pa->stream);
    pa->stream->data = NULL;
    uv_close((uv_handle_t *)pa->stream, stream_closed);
    struct raft_uv_connect *outer = pa->outer;
    raft_uv_connect_cb cb = pa->cb;
    auth_end(pa);
    if (!pa->accepting && cb)
        cb(outer, NULL, status == RAFT_CANCELED ? RAFT_CANCELED : RAFT_NOCONNECTION);
}

static void auth_written(uv_write_t *w, int status)
{
    (void)status;                   /* a failed write shows as a failed read or the timeout */
    auth_unref(w->data);
}

static int auth_write(peer_auth_t *pa, uv_write_t *w, uint8_t *bytes, size_t n)
{
    uv_buf_t buf = uv_buf_init((char *)bytes, (unsigned)n);
    w->data = pa;
    int rv = uv_write(w, pa->stream, &buf, 1, auth_written);
    if (rv == 0)
        pa->refs++;
    return rv;
}

static void auth_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    peer_auth_t *pa = h->data;
    *buf = uv_buf_init((char *)pa->in + pa->got, (unsigned)(pa->want - pa->got));
}

static void auth_step(peer_auth_t *pa);

static void auth_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    peer_auth_t *pa = stream->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        auth_fail(pa, 0, nread == UV_EOF ? "it closed the connection during the handshake" : uv_strerror((int)nread));
        return;
    }
    pa->got += (size_t)nread;
    if (pa->got == pa->want)
        auth_step(pa);
}

static void auth_expect(peer_auth_t *pa, size_t n)
{
    pa->want = n;
    pa->got = 0;
}

/* The next step once pa->want bytes are in. */
static void auth_step(peer_auth_t *pa)
{
    hx_cluster_t *c = pa->c;
    uint8_t mac[32];
    if (pa->accepting) {                        /* NC and the connector's MAC are in */
        memcpy(pa->nc, pa->in, 32);
        peer_mac(c, 'C', pa->na, pa->nc, &pa->id, mac);
        if (sodium_memcmp(mac, pa->in + 32, 32) != 0) {
            auth_fail(pa, AUTH_REFUSED, "it did not prove the cluster's key");
            return;
        }
        peer_mac(c, 'A', pa->na, pa->nc, NULL, pa->out2);
        if (auth_write(pa, &pa->w2, pa->out2, 32) != 0) {
            auth_fail(pa, 0, "the answer could not be written");
            return;
        }
        uv_read_stop(pa->stream);
        struct uv_stream_s *stream = pa->stream;
        raft_id id = pa->id;
        char address[sizeof pa->address];
        memcpy(address, pa->address, sizeof address);
        auth_end(pa);
        c->accept_cb(&c->transport, id, address, stream);
        return;
    }
    if (pa->step == 0) {                        /* "HXRA" and NA are in */
        if (memcmp(pa->in, auth_magic, 4) != 0) {
            auth_fail(pa, AUTH_REFUSED, "it does not authenticate its peers (an older version?)");
            return;
        }
        memcpy(pa->na, pa->in + 4, 32);
        randombytes_buf(pa->nc, 32);
        memcpy(pa->out1, pa->nc, 32);
        peer_mac(c, 'C', pa->na, pa->nc, &(raft_id){c->cfg.self}, pa->out1 + 32);
        if (auth_write(pa, &pa->w1, pa->out1, 64) != 0) {
            auth_fail(pa, 0, "the answer could not be written");
            return;
        }
        pa->step = 1;
        auth_expect(pa, 32);
        return;
    }
    peer_mac(c, 'A', pa->na, pa->nc, NULL, mac);   /* the acceptor's MAC is in */
    if (sodium_memcmp(mac, pa->in, 32) != 0) {
        auth_fail(pa, AUTH_REFUSED, "it did not prove the cluster's key");
        return;
    }
    uv_read_stop(pa->stream);
    struct uv_stream_s *stream = pa->stream;
    struct raft_uv_connect *outer = pa->outer;
    raft_uv_connect_cb cb = pa->cb;
    auth_end(pa);
    cb(outer, stream, 0);
}

static void auth_timeout(uv_timer_t *t)
{
    auth_fail(t->data, 0, "no answer to the handshake within 5 s");
}

/* A handshake begun on stream (libraft's handshake done). 0, or -1 (nothing begun). */
static int auth_begin(hx_cluster_t *c, struct uv_stream_s *stream, bool accepting, raft_id id, const char *address,
                      struct raft_uv_connect *outer, raft_uv_connect_cb cb)
{
    peer_auth_t *pa = calloc(1, sizeof *pa);
    if (!pa)
        return -1;
    pa->c = c;
    pa->stream = stream;
    pa->accepting = accepting;
    pa->id = id;
    snprintf(pa->address, sizeof pa->address, "%s", address ? address : "?");
    pa->outer = outer;
    pa->cb = cb;
    pa->refs = 1;                               /* the timer's close */
    c->auth_live++;
    uv_timer_init(c->loop, &pa->timer);
    pa->timer.data = pa;
    stream->data = pa;
    pa->next = c->auths;
    if (c->auths)
        c->auths->prev = pa;
    c->auths = pa;
    uv_timer_start(&pa->timer, auth_timeout, AUTH_MS, 0);
    if (accepting) {
        randombytes_buf(pa->na, 32);
        memcpy(pa->out1, auth_magic, 4);
        memcpy(pa->out1 + 4, pa->na, 32);
        if (auth_write(pa, &pa->w1, pa->out1, 36) != 0) {
            auth_fail(pa, 0, "the challenge could not be written");
            return 0;
        }
        auth_expect(pa, 64);
    } else {
        auth_expect(pa, 36);
    }
    if (uv_read_start(stream, auth_alloc, auth_read) != 0)
        auth_fail(pa, 0, "the connection could not be read");
    return 0;
}

typedef struct {
    struct raft_uv_connect inner;
    hx_cluster_t *c;
    struct raft_uv_connect *outer;
    raft_uv_connect_cb cb;
    raft_id id;
    char address[HX_CLUSTER_ADDR_MAX + 1];
} tcp_connect_t;

static int tcp_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    hx_cluster_t *c = CLUSTER_OF(t);
    return c->tcp.init(&c->tcp, id, address);
}

static void tcp_accepted(struct raft_uv_transport *inner, raft_id id, const char *address, struct uv_stream_s *stream)
{
    hx_cluster_t *c = TRANSPORT_OF(inner);
    nodelay(stream);
    if (!c->authenticated) {
        c->accept_cb(&c->transport, id, address, stream);
        return;
    }
    if (auth_begin(c, stream, true, id, address, NULL, NULL) != 0) {
        stream->data = NULL;
        uv_close((uv_handle_t *)stream, stream_closed);
    }
}

static int tcp_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    hx_cluster_t *c = CLUSTER_OF(t);
    c->accept_cb = cb;
    return c->tcp.listen(&c->tcp, tcp_accepted);
}

static void tcp_connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    tcp_connect_t *w = req->data;
    hx_cluster_t *c = w->c;
    struct raft_uv_connect *outer = w->outer;
    raft_uv_connect_cb cb = w->cb;
    raft_id id = w->id;
    char address[sizeof w->address];
    memcpy(address, w->address, sizeof address);
    free(w);
    if (status != 0) {
        cb(outer, stream, status);
        return;
    }
    nodelay(stream);
    if (!c->authenticated || c->tcp_closed) {
        cb(outer, stream, 0);
        return;
    }
    if (auth_begin(c, stream, false, id, address, outer, cb) != 0) {
        stream->data = NULL;
        uv_close((uv_handle_t *)stream, stream_closed);
        cb(outer, NULL, RAFT_NOMEM);
    }
}

static int tcp_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id, const char *address,
                       raft_uv_connect_cb cb)
{
    hx_cluster_t *c = CLUSTER_OF(t);
    tcp_connect_t *w = calloc(1, sizeof *w);
    if (!w)
        return RAFT_NOMEM;
    w->inner.data = w;
    w->c = c;
    w->outer = req;
    w->cb = cb;
    w->id = id;
    snprintf(w->address, sizeof w->address, "%s", address);
    req->cb = cb;
    int rv = c->tcp.connect(&c->tcp, &w->inner, id, address, tcp_connected);
    if (rv != 0)
        free(w);
    return rv;
}

static void tcp_closed(struct raft_uv_transport *inner)
{
    hx_cluster_t *c = TRANSPORT_OF(inner);
    c->tcp_closed = true;
    maybe_closed(c);
}

/* Closing: the handshakes in progress end (a connecting one is answered RAFT_CANCELED), then
 * libraft's transport closes; libraft is told when both are done. */
static void tcp_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    hx_cluster_t *c = CLUSTER_OF(t);
    c->close_cb = cb;
    while (c->auths)
        auth_fail(c->auths, RAFT_CANCELED, "closing");
    c->tcp.close(&c->tcp, tcp_closed);
}

/* The wrapper around libraft's TCP transport (c->tcp, initialized already). */
static void transport_wrap(hx_cluster_t *c)
{
    memset(&c->transport, 0, sizeof c->transport);
    c->transport.init = tcp_init;
    c->transport.listen = tcp_listen;
    c->transport.connect = tcp_connect;
    c->transport.close = tcp_close;
}

/* ---- the state machine (Raft calls these on the loop) ---- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    hx_cluster_t *c = fsm->data;
    uint64_t node = 0, seq = 0;
    *result = NULL;
    bool sealed;
    int rc = hx_cluster_unseal(c->sealed ? c->key : NULL, buf->base, buf->len, &c->scratch, &sealed);
    if (rc == HX_EDENIED || (rc == HX_EINVAL && sealed)) {
        /* this node cannot read what the cluster committed: its state would differ */
        hx_error("cluster: a committed entry is sealed with %s; stopping (every node needs the same --data-key)",
                 rc == HX_EDENIED ? "a data key and this node has none" : "another data key than this node's");
        abort();
    }
    const uint8_t *data = sealed ? c->scratch.data : buf->base;
    size_t len = sealed ? c->scratch.len : buf->len;
    c->applied++;
    c->log_bytes += buf->len;
    if (rc == 0 && len >= 4 && !memcmp(data, member_magic, 4)) {
        rc = members_apply(&c->state, data, len);
    } else if (rc == 0 && len >= 4 && !memcmp(data, anchor_magic, 4)) {
        rc = anchor_apply(&c->state, data, len, &node);
        cluster_store_t *cs = c->store;     /* this node's own head, durable now */
        const anchor_t *a = rc == 0 && node == c->cfg.self ? anchor_of(&c->state, node) : NULL;
        if (a && cs && cs->base.on_anchor)
            cs->base.on_anchor(cs->base.anchor_arg, a->blob, a->len);
    } else if (rc == 0)
        rc = state_apply(&c->state, data, len, &node, &seq);
    if (rc == HX_ENOMEM) {
        /* the state would differ from the others': stop, and the restart replays the log */
        hx_error("cluster: out of memory applying a committed entry; stopping (a restart replays the log)");
        abort();
    }
    if (rc != 0)
        hx_warn("cluster: a committed entry could not be read (%zu bytes); skipped", buf->len);
    return 0;
}

/* On the loop: the state's view taken (see snap_t). libraft asks for one every
 * --raft-snapshot-entries entries; a snapshot writes the whole state (every held body), so it
 * is taken only when the log since the last one holds at least as many bytes as the state:
 * then the bytes snapshots write are at most the bytes the log took, however deep the queue
 * (by the count alone, a 200 MB queue of a clinic that is away was written, checksummed and
 * compressed again on every node every 1,024 entries, at a trickle of traffic as under load).
 * The log kept in memory and on disk is then at most about the state's size, beyond libraft's
 * trailing entries. A node whose state has not changed since its last snapshot (an idle
 * leader's log grows by its lease barriers alone) takes none either. Either way one is taken
 * once SNAP_IDLE_FACTOR thresholds of entries have passed, and at the next ask after one that
 * failed. */
#define SNAP_IDLE_FACTOR 32
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n);
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    hx_cluster_t *c = fsm->data;
    *bufs = NULL;
    *n = 0;
    if (c->snap)
        return RAFT_BUSY;
    raft_index applied = c->raft.last_applied;
    /* (the bodies and the settled ids: what the entries that made the state carried at least) */
    uint64_t state_bytes = c->state.bytes + c->state.dedup_n * HX_ID_LEN;
    bool unchanged = c->snap_taken && c->applied == c->snap_applied;
    if (!c->snap_retry && (unchanged || c->log_bytes < state_bytes) &&
        applied - (c->snap_taken ? c->snap_index : 0) < (raft_index)c->cfg.snapshot_entries * SNAP_IDLE_FACTOR)
        return RAFT_BUSY;
    uint64_t t0 = uv_hrtime();
    snap_t *z = snap_freeze(&c->state, c->sealed ? c->key : NULL, &c->frozen_spare, &c->frozen_cap);
    if (!z)
        return RAFT_NOMEM;
    z->froze_us = (uv_hrtime() - t0) / 1000;
    z->started = now_ms(c);
    c->snap = z;
    c->snap_taken = true;
    c->snap_applied = c->applied;
    c->snap_index = applied;
    c->log_bytes = 0;
    c->snap_retry = false;
    /* a Raft I/O without a worker pool: the bytes made here, on the loop */
    return c->fsm.snapshot_async ? 0 : fsm_snapshot_async(fsm, bufs, n);
}

/* On a worker thread: the view's bytes made and sealed. Touches only the view. */
static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    hx_cluster_t *c = fsm->data;
    snap_t *z = c->snap;
    hx_buf_t plain = {0}, sealed = {0};
    z->status = snap_write(z, &plain);
    if (z->status == 0 && z->key) {
        z->status = hx_cluster_seal(z->key, plain.data, plain.len, &sealed);
        if (plain.data)
            sodium_memzero(plain.data, plain.len);
        hx_buf_free(&plain);
        plain = sealed;
    }
    if (z->status != 0) {
        hx_buf_free(&plain);
        return RAFT_NOMEM;
    }
    z->out = plain;
    z->buf.base = z->out.data;
    z->buf.len = z->out.len;
    *bufs = &z->buf;
    *n = 1;
    return 0;
}

/* On the loop, after the snapshot was stored or not: the view released. */
static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    hx_cluster_t *c = fsm->data;
    snap_t *z = c->snap;
    c->snap = NULL;
    *bufs = NULL;
    *n = 0;
    if (!z)
        return 0;
    if (z->status == 0 && z->out.len) {
        c->snapshots++;
        hx_info("cluster: snapshot of %zu message(s) and %zu settled id(s), %zu bytes%s: its view taken in %.1f ms on "
                "the event loop, stored in %" PRIu64 " ms; %zu bod(ies) released meanwhile were kept for it",
                z->n, z->dedup_n, z->out.len, z->key ? " (sealed)" : "", (double)z->froze_us / 1000,
                now_ms(c) - z->started, bodies.n_kept);
    } else {
        hx_warn("cluster: a snapshot could not be made (out of memory); the next will be tried later");
        c->snap_taken = false;
        c->snap_retry = true;
    }
    snap_release(c->loop, z, &c->frozen_spare, &c->frozen_cap);
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    hx_cluster_t *c = fsm->data;
    bool sealed;
    int rc = hx_cluster_unseal(c->sealed ? c->key : NULL, buf->base, buf->len, &c->scratch, &sealed);
    if (rc == 0)
        rc = sealed ? state_restore(&c->state, c->scratch.data, c->scratch.len)
                    : state_restore(&c->state, buf->base, buf->len);
    raft_free(buf->base);
    if (rc != 0) {
        hx_error("cluster: a snapshot could not be read (%s)", hx_strerror(rc));
        return RAFT_MALFORMED;
    }
    c->applied++;
    c->log_bytes = 0;
    hx_info("cluster: restored a snapshot: %llu message(s) held, %zu settled id(s)",
            (unsigned long long)c->state.n, c->state.dedup_n);
    return 0;
}

/* ---- the store the serving router uses ---- */

static int cs_begin(hx_store_t *s)
{
    cluster_store_t *cs = (cluster_store_t *)s;
    if (cs->entry.len == 0) {
        uint8_t head[ENTRY_HEAD] = {0};
        if (hx_buf_append(&cs->entry, head, sizeof head))
            return HX_ENOMEM;
    }
    cs->txn_start = cs->entry.len;
    cs->txn_records = 0;
    return 0;
}

static int cs_record(cluster_store_t *cs, uint8_t kind, const uint8_t id[HX_ID_LEN])
{
    cs->txn_records++;
    return hx_buf_append(&cs->entry, &kind, 1) || hx_buf_append(&cs->entry, id, HX_ID_LEN) ? HX_ENOMEM : 0;
}

static int cs_put(hx_store_t *s, const uint8_t *msg, size_t len, uint64_t *handle)
{
    cluster_store_t *cs = (cluster_store_t *)s;
    hx_msg_head_t h;
    if (hx_wire_scan_message(msg, len, &h) != 0 || h.id_len != HX_ID_LEN || len > UINT32_MAX)
        return HX_EINVAL;
    body_t *b = body_new(msg, len);
    if (!b)
        return HX_ENOMEM;
    if (cs_record(cs, R_PUT, h.id) || put_u32(&cs->entry, (uint32_t)len) || hx_buf_append(&cs->entry, msg, len) ||
        pending_add(cs->c, h.id, b) != 0) {
        body_unref(b);
        return HX_ENOMEM;
    }
    cs->bytes += len;
    *handle = (uint64_t)(uintptr_t)b;
    return 0;
}

static int cs_settle(hx_store_t *s, const uint8_t id[HX_ID_LEN])
{
    return cs_record((cluster_store_t *)s, R_SETTLE, id);
}

static int cs_revive(hx_store_t *s, const uint8_t id[HX_ID_LEN])
{
    return cs_record((cluster_store_t *)s, R_REVIVE, id);
}

static int cs_dead(hx_store_t *s, const uint8_t id[HX_ID_LEN], uint32_t attempts, uint64_t at_ms, const char *reason)
{
    cluster_store_t *cs = (cluster_store_t *)s;
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > 1024)
        rlen = 1024;
    return cs_record(cs, R_DEAD, id) || put_u32(&cs->entry, attempts) || put_u64(&cs->entry, at_ms) ||
                   put_u16(&cs->entry, (uint16_t)rlen) || (rlen && hx_buf_append(&cs->entry, reason, rlen))
               ? HX_ENOMEM
               : 0;
}

static int cs_attempts(hx_store_t *s, const uint8_t id[HX_ID_LEN], uint32_t attempts)
{
    cluster_store_t *cs = (cluster_store_t *)s;
    return cs_record(cs, R_ATTEMPTS, id) || put_u32(&cs->entry, attempts) ? HX_ENOMEM : 0;
}

static int cs_end(hx_store_t *s, uint64_t *seq)
{
    cluster_store_t *cs = (cluster_store_t *)s;
    cs->entry_records += cs->txn_records;
    cs->txn_records = 0;
    cs->txn_start = cs->entry.len;
    *seq = ++cs->seq;
    return 0;
}

static void cs_abort(hx_store_t *s)
{
    cluster_store_t *cs = (cluster_store_t *)s;
    if (cs->txn_start && cs->txn_start <= cs->entry.len)
        cs->entry.len = cs->txn_start;          /* the open transaction's records dropped */
    cs->txn_records = 0;
}

static int cs_get(hx_store_t *s, uint64_t handle, size_t len, const uint8_t **data)
{
    (void)s;
    (void)len;
    *data = ((const body_t *)(uintptr_t)handle)->data;
    return 0;
}

static void cs_release(hx_store_t *s, uint64_t handle)
{
    cluster_store_t *cs = (cluster_store_t *)s;
    body_t *b = (body_t *)(uintptr_t)handle;
    cs->bytes -= b->len;
    body_unref(b);
}

/* plain (sealed first, with a data key) proposed as one entry; cb when it is applied. A raft
 * code; on an error nothing was proposed and cb is not called. */
static int propose_bytes(hx_cluster_t *c, const hx_buf_t *plain, struct raft_apply *req, raft_apply_cb cb)
{
    const hx_buf_t *bytes = plain;
    if (c->sealed) {
        if (hx_cluster_seal(c->key, plain->data, plain->len, &c->scratch) != 0)
            return RAFT_NOMEM;
        bytes = &c->scratch;
    }
    struct raft_buffer buf = {.base = raft_malloc(bytes->len), .len = bytes->len};
    if (!buf.base)
        return RAFT_NOMEM;
    memcpy(buf.base, bytes->data, bytes->len);
    int rc = raft_apply(&c->raft, req, &buf, 1, cb);
    if (rc != 0)
        raft_free(buf.base);
    return rc;
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    (void)result;
    proposal_t *p = (proposal_t *)req;
    hx_cluster_t *c = p->c;
    cluster_store_t *cs = c->store;
    if (status == 0) {
        c->committed++;
        renew_lease(c, p->issued);
    }
    if (cs && p->generation == c->generation) {
        if (status == 0) {
            if (p->seq > cs->durable)
                cs->durable = p->seq;
            if (cs->base.on_commit)
                cs->base.on_commit(cs->base.owner, p->seq, 0);
        } else {
            /* not committed by this leader (it lost the leadership, or was never it): its
             * clients resend to the one that is, and the dedup window keeps them once */
            cs->failure = HX_ENOTLEADER;
            snprintf(cs->why, sizeof cs->why, "not the leader now (%s)", raft_strerror(status));
            if (cs->base.on_commit)
                cs->base.on_commit(cs->base.owner, p->seq, HX_ENOTLEADER);
        }
    }
    free(p);
}

/* ---- the audit chain's head, anchored in the replicated log ---- */

typedef struct {
    struct raft_apply req;
    hx_cluster_t *c;
    uint64_t issued;
} anchor_req_t;

static void anchor_applied(struct raft_apply *req, int status, void *result)
{
    (void)result;
    anchor_req_t *q = (anchor_req_t *)req;
    if (status == 0) {
        q->c->committed++;
        renew_lease(q->c, q->issued);
    } else {
        q->c->anchor.sent_len = 0;      /* not recorded: proposed again at the next poll */
    }
    free(q);
}

/* The head synced (c->anchor.blob) proposed as an anchor entry. */
static void anchor_propose(hx_cluster_t *c)
{
    hx_buf_t e = {0};
    uint8_t len = (uint8_t)c->anchor.len;
    int rc = hx_buf_append(&e, anchor_magic, 4) || put_u64(&e, c->cfg.self) || hx_buf_append(&e, &len, 1) ||
                     hx_buf_append(&e, c->anchor.blob, len) || pad8(&e)
                 ? RAFT_NOMEM
                 : 0;
    anchor_req_t *q = rc == 0 ? calloc(1, sizeof *q) : NULL;
    if (q) {
        q->c = c;
        q->issued = now_ms(c);
        rc = propose_bytes(c, &e, &q->req, anchor_applied);
    } else {
        rc = RAFT_NOMEM;
    }
    if (rc != 0) {
        free(q);
        hx_warn("cluster: cannot record the audit log's head: %s", raft_strerror(rc));
    } else {
        memcpy(c->anchor.sent, c->anchor.blob, len);
        c->anchor.sent_len = len;
    }
    hx_buf_free(&e);
}

static void anchor_sync(uv_work_t *w)
{
    hx_cluster_t *c = w->data;
    c->anchor.err = fdatasync(c->anchor.fd) != 0 ? errno : 0;
}

static void anchor_synced(uv_work_t *w, int status)
{
    hx_cluster_t *c = w->data;
    c->anchor.busy = false;
    if (status != 0 || c->anchor.err != 0)
        hx_warn("cluster: cannot sync the audit log, so its newest head is not recorded yet: %s",
                strerror(status ? -status : c->anchor.err));
    else if (c->store && c->anchor.generation == c->generation)
        anchor_propose(c);              /* (a node that stopped serving meanwhile records nothing) */
}

/* Asks the owner for its head (as the single broker's log does, at most once per
 * ANCHOR_GAP_MS): a new one is synced on the thread pool, then proposed; the recorded head
 * trails the file by up to that gap, a sync and a round of replication. */
#define ANCHOR_GAP_MS 50

static void anchor_poll(cluster_store_t *cs)
{
    hx_cluster_t *c = cs->c;
    if (!cs->base.anchor || c->anchor.busy || !c->serving)
        return;
    uint64_t now = now_ms(c);
    if (now - c->anchor.asked < ANCHOR_GAP_MS)
        return;
    c->anchor.asked = now;
    uint8_t blob[HX_STORE_ANCHOR_MAX];
    int fd = -1;
    size_t len = cs->base.anchor(cs->base.anchor_arg, blob, sizeof blob, &fd);
    if (len > sizeof blob)
        len = sizeof blob;
    if (len == c->anchor.sent_len && memcmp(blob, c->anchor.sent, len) == 0)
        return;
    memcpy(c->anchor.blob, blob, len);
    c->anchor.len = len;
    c->anchor.generation = c->generation;
    if (fd < 0) {
        anchor_propose(c);
        return;
    }
    c->anchor.fd = fd;
    c->anchor.work.data = c;
    c->anchor.busy = uv_queue_work(c->loop, &c->anchor.work, anchor_sync, anchor_synced) == 0;
}

static void cs_flush(hx_store_t *s)
{
    cluster_store_t *cs = (cluster_store_t *)s;
    hx_cluster_t *c = cs->c;
    anchor_poll(cs);
    if (!cs->entry_records) {               /* nothing closed since the last proposal */
        if (!cs->txn_records)
            cs->entry.len = cs->txn_start = 0;
        return;
    }
    if (cs->txn_records) {                  /* (a flush never comes inside a transaction) */
        hx_warn("cluster: a flush inside a transaction; its records wait for the next");
        return;
    }
    memcpy(cs->entry.data, entry_magic, 4);
    set_u32(cs->entry.data + 4, cs->entry_records);
    set_u64(cs->entry.data + 8, c->cfg.self);
    set_u64(cs->entry.data + 16, cs->seq);
    int rc = pad8(&cs->entry) == 0 ? 0 : RAFT_NOMEM;
    proposal_t *p = rc == 0 ? calloc(1, sizeof *p) : NULL;
    if (p) {
        p->c = c;
        p->generation = c->generation;
        p->seq = cs->seq;
        p->issued = now_ms(c);
        rc = propose_bytes(c, &cs->entry, &p->req, on_applied);
        if (rc == 0)
            c->last_proposal = p->issued;
    } else {
        rc = RAFT_NOMEM;
    }
    cs->entry.len = cs->txn_start = 0;
    cs->entry_records = 0;
    if (rc != 0) {
        free(p);
        cs->failure = rc == RAFT_NOTLEADER || rc == RAFT_LEADERSHIPLOST ? HX_ENOTLEADER : HX_EFAILED;
        snprintf(cs->why, sizeof cs->why, "cannot propose to the cluster: %s", raft_strerror(rc));
        cs->failed_to = cs->seq;    /* told at the next poll: not from inside the router's flush */
    }
}

static void cs_tick(hx_store_t *s, uint64_t now)
{
    (void)now;
    anchor_poll((cluster_store_t *)s);
}

static int cs_health(const hx_store_t *s, const char **why)
{
    const cluster_store_t *cs = (const cluster_store_t *)s;
    *why = cs->why;
    return cs->failure;
}

static uint64_t cs_durable(const hx_store_t *s)
{
    return ((const cluster_store_t *)s)->durable;
}

/* The committed state into the new router: the dedup window, then every held message in the
 * order accepted, with its failures and dead-letter state. The bodies are shared. */
static int cs_recover(hx_store_t *s, const hx_store_visitor_t *v, void *arg)
{
    cluster_store_t *cs = (cluster_store_t *)s;
    state_t *st = &cs->c->state;
    for (size_t i = 0; i < st->dedup_n; i++)
        v->dedup(arg, st->dedup[(st->dedup_head + i) % st->dedup_cap]);
    for (held_t *h = st->first; h; h = h->next) {
        h->body->refs++;
        cs->bytes += h->body->len;
        v->put(arg, (uint64_t)(uintptr_t)h->body, h->body->data, h->body->len);
        if (h->dead_at)
            v->dead(arg, h->id, h->attempts, h->dead_at, h->reason ? h->reason : "");
        else if (h->attempts)
            v->attempts(arg, h->id, h->attempts);
    }
    /* the head the cluster recorded for this node's audit log: the owner checks its file
     * against it (as the single broker's recovery does) */
    const anchor_t *a = anchor_of(st, cs->c->cfg.self);
    cs->c->anchor.sent_len = a ? a->len : 0;
    if (a) {
        memcpy(cs->c->anchor.sent, a->blob, a->len);
        if (cs->base.on_anchor)
            cs->base.on_anchor(cs->base.anchor_arg, a->blob, a->len);
    }
    return 0;
}

static size_t cs_bytes(const hx_store_t *s)
{
    return (size_t)((const cluster_store_t *)s)->bytes;
}

static void cs_destroy(hx_store_t *s)
{
    cluster_store_t *cs = (cluster_store_t *)s;
    if (cs->c && cs->c->store == cs) {
        cs->c->store = NULL;
        cs->c->generation++;
    }
    if (cs->c)
        pending_clear(cs->c);
    hx_buf_free(&cs->entry);
    free(cs);
}

static const hx_store_ops_t cluster_ops = {
    .begin = cs_begin, .put = cs_put, .settle = cs_settle, .dead = cs_dead, .revive = cs_revive,
    .attempts = cs_attempts, .end = cs_end, .abort = cs_abort, .get = cs_get, .release = cs_release,
    .forget = cs_release, .flush = cs_flush, .tick = cs_tick, .health = cs_health, .durable_seq = cs_durable,
    .recover = cs_recover, .bytes = cs_bytes, .destroy = cs_destroy};

hx_store_t *hx_cluster_store(hx_cluster_t *c)
{
    if (c->store)
        return NULL;
    cluster_store_t *cs = calloc(1, sizeof *cs);
    if (!cs)
        return NULL;
    cs->base.ops = &cluster_ops;
    cs->c = c;
    c->store = cs;
    c->generation++;
    return &cs->base;
}

static unsigned conf_voters(const hx_cluster_t *c);

/* A node's addresses: as a membership entry named them, else as --cluster did; NULL. */
static const hx_cluster_node_t *node_by_id(const hx_cluster_t *c, uint64_t id)
{
    for (size_t i = 0; i < c->state.n_members; i++)
        if (c->state.members[i].id == id)
            return &c->state.members[i];
    for (size_t i = 0; i < c->cfg.n_nodes; i++)
        if (c->cfg.nodes[i].id == id)
            return &c->cfg.nodes[i];
    return NULL;
}

/* ---- leadership, the barrier and the lease ---- */

static void set_serving(hx_cluster_t *c, bool on, const char *why)
{
    if (c->serving == on)
        return;
    c->serving = on;
    if (on)
        hx_info("cluster: node %llu leads (term %llu) and serves", (unsigned long long)c->cfg.self,
                (unsigned long long)c->raft.current_term);
    else
        hx_warn("cluster: node %llu stops serving: %s", (unsigned long long)c->cfg.self, why);
    if (c->cfg.on_serving)
        c->cfg.on_serving(c->cfg.arg, on);
}

static void on_barrier(struct raft_barrier *req, int status)
{
    hx_cluster_t *c = req->data;
    c->barrier_pending = false;
    if (status != 0)
        return;
    renew_lease(c, c->barrier_issued);
    /* every entry committed before this term's barrier is applied: the dedup window knows
     * every id ever acknowledged, so a router built now answers resends exactly once */
    if (!c->serving && raft_state(&c->raft) == RAFT_LEADER && c->lease_until > now_ms(c))
        set_serving(c, true, NULL);
}

static void propose_barrier(hx_cluster_t *c)
{
    memset(&c->barrier, 0, sizeof c->barrier);
    c->barrier.data = c;
    c->barrier_issued = now_ms(c);
    if (raft_barrier(&c->raft, &c->barrier, on_barrier) == 0) {
        c->barrier_pending = true;
        c->last_proposal = c->barrier_issued;
    }
}

static void leader_seen(hx_cluster_t *c)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&c->raft, &id, &addr);
    if (id != c->seen_leader) {
        if (id)
            c->leader_changes++;
        c->seen_leader = id;
        const hx_cluster_node_t *n = id ? node_by_id(c, id) : NULL;
        snprintf(c->leader_client, sizeof c->leader_client, "%s", n ? n->client : "");
        if (id)
            hx_info("cluster: the leader is node %llu (%s), term %llu", (unsigned long long)id,
                    c->leader_client[0] ? c->leader_client : "endpoint unknown",
                    (unsigned long long)c->raft.current_term);
        else
            hx_info("cluster: no leader (term %llu)", (unsigned long long)c->raft.current_term);
    } else if (id && !c->leader_client[0]) {   /* a membership entry may have named it since */
        const hx_cluster_node_t *n = node_by_id(c, id);
        if (n)
            snprintf(c->leader_client, sizeof c->leader_client, "%s", n->client);
    }
}

void hx_cluster_poll(hx_cluster_t *c, uint64_t mono_ms)
{
    (void)mono_ms;                      /* the lease runs on the loop's own clock */
    if (!c || c->closed)
        return;
    leader_seen(c);
    cluster_store_t *cs = c->store;
    if (cs && cs->failed_to && cs->base.on_commit) {
        uint64_t to = cs->failed_to;
        cs->failed_to = 0;
        cs->base.on_commit(cs->base.owner, to, cs->failure);
    }
    uint64_t now = now_ms(c);
    if (raft_state(&c->raft) != RAFT_LEADER) {
        set_serving(c, false, "no longer the leader");
        return;
    }
    if (c->serving && now >= c->lease_until) {
        set_serving(c, false, "its lease ran out (no majority confirmed it in time)");
        return;
    }
    if (c->serving && cs && cs->failure == HX_ENOTLEADER) {
        set_serving(c, false, "a proposal was not committed");
        return;
    }
    if (!c->barrier_pending && (!c->serving || now - c->last_proposal >= c->cfg.heartbeat_ms))
        propose_barrier(c);
}

bool hx_cluster_serving(const hx_cluster_t *c)
{
    return c && c->serving;
}

const char *hx_cluster_leader(const hx_cluster_t *c)
{
    return c->leader_client;
}

int hx_cluster_refusal(const hx_cluster_t *c, const uint8_t *frame, size_t len, hx_buf_t *out)
{
    Handoff__Envelope *in = handoff__envelope__unpack(NULL, len, frame);
    Handoff__Envelope e;
    handoff__envelope__init(&e);
    e.version = HX_PROTOCOL_VERSION;
    e.kind = HANDOFF__KIND__KIND_ERROR;
    if (in && in->id.len == HX_ID_LEN)
        e.correlation_id = in->id;
    e.error_code = HANDOFF__ERROR_CODE__ERR_NOT_LEADER;
    char text[HX_CLUSTER_ADDR_MAX + 64];
    if (c->leader_client[0] && c->seen_leader != c->cfg.self)
        snprintf(text, sizeof text, "not the leader: the leader is %s", c->leader_client);
    else if (c->seen_leader == c->cfg.self)
        snprintf(text, sizeof text, "the leader, not serving yet: try again shortly");
    else
        snprintf(text, sizeof text, "not the leader: no leader yet (an election)");
    e.error_text = text;
    e.leader = (char *)(c->seen_leader != c->cfg.self ? c->leader_client : "");
    out->len = 0;
    int rc = hx_wire_pack(&e, out);
    if (in)
        handoff__envelope__free_unpacked(in, NULL);
    return rc;
}

void hx_cluster_status(const hx_cluster_t *c, uint64_t mono_ms, hx_cluster_status_t *o)
{
    (void)mono_ms;
    memset(o, 0, sizeof *o);
    int st = raft_state((struct raft *)&c->raft);
    o->role = st == RAFT_LEADER ? "leader" : st == RAFT_FOLLOWER ? "follower" : st == RAFT_CANDIDATE ? "candidate"
                                                                                                   : "unavailable";
    o->serving = c->serving;
    o->self = c->cfg.self;
    o->leader = c->seen_leader;
    o->term = c->raft.current_term;
    o->commit_index = c->raft.commit_index;
    o->applied_index = c->raft.last_applied;
    o->last_index = raft_last_index((struct raft *)&c->raft);
    o->leader_changes = c->leader_changes;
    o->held = c->state.n;
    o->held_bytes = c->state.bytes;
    o->dedup = c->state.dedup_n;
    o->snapshots = c->snapshots;
    o->log_bytes = c->log_bytes;
    o->peers_refused = c->peers_refused;
    o->committed = c->committed;
    uint64_t now = uv_now(c->loop);
    o->lease_left_ms = c->serving && c->lease_until > now ? c->lease_until - now : 0;
    o->nodes = c->raft.configuration.n;
    o->voters = conf_voters(c);
    o->changing = c->change.step != CH_NONE;
}

/* ---- membership changes: the operator's, one node at a time, on the leader ---- */

static const struct raft_server *conf_server(const hx_cluster_t *c, uint64_t id)
{
    const struct raft_configuration *conf = &c->raft.configuration;
    for (unsigned i = 0; i < conf->n; i++)
        if (conf->servers[i].id == id)
            return &conf->servers[i];
    return NULL;
}

static unsigned conf_voters(const hx_cluster_t *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->raft.configuration.n; i++)
        n += c->raft.configuration.servers[i].role == RAFT_VOTER;
    return n;
}

static void change_done(hx_cluster_t *c, int status, const char *what)
{
    unsigned long long id = (unsigned long long)c->change.node.id;
    if (status == 0) {
        snprintf(c->change.last, sizeof c->change.last, "node %llu %s", id, what);
        hx_info("cluster: node %llu %s", id, what);
    } else {
        snprintf(c->change.last, sizeof c->change.last, "node %llu: %s failed: %s", id, change_steps[c->change.step],
                 raft_strerror(status));
        hx_warn("cluster: %s", c->change.last);
    }
    c->change.step = CH_NONE;
}

/* Proposes a membership entry about c->change.node; cb when it is applied. A raft code. */
static int propose_member(hx_cluster_t *c, uint8_t op, raft_apply_cb cb)
{
    hx_buf_t e = {0};
    int rc = member_entry(op, &c->change.node, &e) == 0 ? 0 : RAFT_NOMEM;
    if (rc == 0) {
        memset(&c->change.apply, 0, sizeof c->change.apply);
        c->change.apply.data = c;
        rc = propose_bytes(c, &e, &c->change.apply, cb);
    }
    hx_buf_free(&e);
    return rc;
}

static void on_promoted(struct raft_change *req, int status)
{
    change_done(req->data, status, "added: a voter, caught up");
}

static void on_added(struct raft_change *req, int status)
{
    hx_cluster_t *c = req->data;
    if (status != 0) {
        change_done(c, status, NULL);
        return;
    }
    c->change.step = CH_PROMOTE;
    c->change.assign.data = c;
    int rc = raft_assign(&c->raft, &c->change.assign, c->change.node.id, RAFT_VOTER, on_promoted);
    if (rc != 0)
        change_done(c, rc, NULL);
}

static void on_recorded(struct raft_apply *req, int status, void *result)
{
    (void)result;
    hx_cluster_t *c = req->data;
    if (status != 0) {
        change_done(c, status, NULL);
        return;
    }
    c->change.step = CH_ADD;
    c->change.add.data = c;
    int rc = raft_add(&c->raft, &c->change.add, c->change.node.id, c->change.node.raft, on_added);
    if (rc != 0)
        change_done(c, rc, NULL);
}

static void on_forgotten(struct raft_apply *req, int status, void *result)
{
    (void)result;
    change_done(req->data, status, "removed");
}

static void on_removed(struct raft_change *req, int status)
{
    hx_cluster_t *c = req->data;
    if (status != 0) {
        change_done(c, status, NULL);
        return;
    }
    if (c->change.node.id == c->cfg.self) {
        change_done(c, 0, "removed (this node, which steps down)");
        return;
    }
    if (raft_state(&c->raft) != RAFT_LEADER) {    /* its addresses stay known: harmless */
        change_done(c, 0, "removed (its addresses not forgotten: this node no longer leads)");
        return;
    }
    c->change.step = CH_FORGET;
    int rc = propose_member(c, M_FORGET, on_forgotten);
    if (rc != 0)
        change_done(c, rc, NULL);
}

static void on_transferred(struct raft_transfer *req)
{
    hx_cluster_t *c = req->data;
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&c->raft, &id, &addr);
    if (id == c->change.node.id)
        change_done(c, 0, "leads now (the leadership moved to it)");
    else
        change_done(c, RAFT_NOTLEADER, NULL);
}

/* cluster.status: this node's view as one JSON object. */
static int admin_status(hx_cluster_t *c, hx_buf_t *out)
{
    json_t *nodes = json_array(), *o = NULL;
    const struct raft_configuration *conf = &c->raft.configuration;
    for (unsigned i = 0; nodes && i < conf->n; i++) {
        const struct raft_server *sv = &conf->servers[i];
        const hx_cluster_node_t *n = node_by_id(c, sv->id);
        const char *role = sv->role == RAFT_VOTER ? "voter" : sv->role == RAFT_STANDBY ? "standby" : "spare";
        json_array_append_new(nodes, json_pack("{s:I, s:s, s:s, s:s, s:b}", "id", (json_int_t)sv->id, "raft",
                                               sv->address, "client", n ? n->client : "", "role", role, "leader",
                                               sv->id == c->seen_leader));
    }
    o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:s, s:s}", "self", (json_int_t)c->cfg.self, "leader",
                  (json_int_t)c->seen_leader, "term", (json_int_t)c->raft.current_term, "commit_index",
                  (json_int_t)c->raft.commit_index, "voters", (json_int_t)conf_voters(c), "nodes", nodes, "change",
                  change_steps[c->change.step][0] ? change_steps[c->change.step] : "none", "last_change",
                  c->change.last);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    out->len = 0;
    int rc = text && hx_buf_append(out, text, strlen(text) + 1) == 0 ? 0 : HX_ENOMEM;
    free(text);
    return rc;
}

int hx_cluster_admin(hx_cluster_t *c, const char *op, const char *arg, hx_buf_t *out, char *why, size_t cap)
{
    out->len = 0;
    if (!strcmp(op, "cluster.status"))
        return admin_status(c, out);
    bool add = !strcmp(op, "cluster.add"), remove = !strcmp(op, "cluster.remove"),
         transfer = !strcmp(op, "cluster.transfer");
    if (!add && !remove && !transfer) {
        snprintf(why, cap, "admin_op: '%.40s' is not cluster.status, cluster.add, cluster.remove or cluster.transfer",
                 op);
        return HX_EINVAL;
    }
    if (raft_state(&c->raft) != RAFT_LEADER || !c->serving) {
        snprintf(why, cap, "%s: this node is not the serving leader now; try again", op);
        return HX_EREFUSED;
    }
    if (c->change.step != CH_NONE) {
        snprintf(why, cap, "%s: node %llu is being changed (%s); one change at a time: see cluster.status", op,
                 (unsigned long long)c->change.node.id, change_steps[c->change.step]);
        return HX_EREFUSED;
    }
    hx_cluster_node_t node;
    if (add) {
        if (hx_cluster_parse_node(arg, &node, why, cap) != 0)
            return HX_EINVAL;
        const struct raft_configuration *conf = &c->raft.configuration;
        for (unsigned i = 0; i < conf->n; i++)
            if (conf->servers[i].id == node.id || !strcmp(conf->servers[i].address, node.raft)) {
                snprintf(why, cap, "text: node %llu: its id or Raft address is node %llu's already",
                         (unsigned long long)node.id, (unsigned long long)conf->servers[i].id);
                return HX_EINVAL;
            }
        if (conf->n >= HX_CLUSTER_MAX) {
            snprintf(why, cap, "text: the cluster has %u nodes already, the most it may have is %d", conf->n,
                     HX_CLUSTER_MAX);
            return HX_EINVAL;
        }
    } else {
        char *end = NULL;
        errno = 0;
        unsigned long long id = arg && *arg && *arg != '-' ? strtoull(arg, &end, 10) : 0;
        if (!id || !end || *end || errno) {
            snprintf(why, cap, "text: '%.40s' is not a node id (a number from 1)", arg ? arg : "");
            return HX_EINVAL;
        }
        const struct raft_server *sv = conf_server(c, id);
        if (!sv) {
            snprintf(why, cap, "text: node %llu is not in the cluster (see cluster.status)", id);
            return HX_EINVAL;
        }
        if (remove && sv->role == RAFT_VOTER && conf_voters(c) <= 1) {
            snprintf(why, cap, "text: node %llu is the cluster's only voter", id);
            return HX_EINVAL;
        }
        if (transfer && (id == c->cfg.self || sv->role != RAFT_VOTER)) {
            snprintf(why, cap, "text: node %llu %s", id, id == c->cfg.self ? "leads already" : "is not a voter");
            return HX_EINVAL;
        }
        const hx_cluster_node_t *known = node_by_id(c, id);
        memset(&node, 0, sizeof node);
        node.id = id;
        snprintf(node.raft, sizeof node.raft, "%s", sv->address);
        snprintf(node.client, sizeof node.client, "%s", known ? known->client : "");
    }
    c->change.node = node;
    int rc;
    if (add) {
        c->change.step = CH_RECORD;
        rc = propose_member(c, M_SET, on_recorded);
    } else if (remove) {
        c->change.step = CH_REMOVE;
        c->change.add.data = c;
        rc = raft_remove(&c->raft, &c->change.add, node.id, on_removed);
    } else {
        c->change.step = CH_TRANSFER;
        memset(&c->change.transfer, 0, sizeof c->change.transfer);
        c->change.transfer.data = c;
        rc = raft_transfer(&c->raft, &c->change.transfer, node.id, on_transferred);
    }
    if (rc != 0) {
        c->change.step = CH_NONE;
        snprintf(why, cap, "%s: %s", op, raft_strerror(rc));
        return HX_EREFUSED;
    }
    hx_info("cluster: %s node %llu (%s, %s) begun", op, (unsigned long long)node.id, node.raft,
            node.client[0] ? node.client : "client endpoint unknown");
    return admin_status(c, out);
}

/* ---- configuration ---- */

static bool host_port_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1] || strlen(s) > HX_CLUSTER_ADDR_MAX)
        return false;
    for (const char *p = s; p < colon; p++)     /* a host name, an IPv4 or a bracketed IPv6 address */
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr(".-_:[]", *p)))
            return false;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    return end && !*end && port > 0 && port < 65536;
}

int hx_cluster_parse_node(const char *text, hx_cluster_node_t *n, char *why, size_t cap)
{
    char el[3 * HX_CLUSTER_ADDR_MAX];
    if (!text || strlen(text) >= sizeof el) {
        snprintf(why, cap, "'%.80s': not ID=RAFTIP:PORT=tcp://HOST:PORT", text ? text : "");
        return -1;
    }
    snprintf(el, sizeof el, "%s", text);
    char *eq1 = strchr(el, '='), *eq2 = eq1 ? strchr(eq1 + 1, '=') : NULL;
    if (!eq1 || !eq2) {
        snprintf(why, cap, "'%.80s': not ID=RAFTIP:PORT=tcp://HOST:PORT", el);
        return -1;
    }
    *eq1 = *eq2 = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long long id = strtoull(el, &end, 10);
    if (!*el || !end || *end || errno || id == 0 || el[0] == '-') {
        snprintf(why, cap, "'%.40s': the node id is a number from 1", el);
        return -1;
    }
    if (!host_port_ok(eq1 + 1)) {
        snprintf(why, cap, "node %llu: '%.80s': the Raft address is IPV4:PORT", id, eq1 + 1);
        return -1;
    }
    char host[HX_CLUSTER_ADDR_MAX + 1];
    struct in_addr ip;
    snprintf(host, sizeof host, "%.*s", (int)(strrchr(eq1 + 1, ':') - (eq1 + 1)), eq1 + 1);
    if (inet_pton(AF_INET, host, &ip) != 1) {   /* libraft 0.15 parses it with uv_ip4_addr */
        snprintf(why, cap, "node %llu: '%.80s': the Raft address is IPV4:PORT (the Raft library takes no host "
                 "names or IPv6 addresses; a container needs a fixed address)", id, eq1 + 1);
        return -1;
    }
    if (strncmp(eq2 + 1, "tcp://", 6) || !host_port_ok(eq2 + 7) || strlen(eq2 + 1) > HX_CLUSTER_ADDR_MAX) {
        snprintf(why, cap, "node %llu: '%.80s': the client endpoint is tcp://HOST:PORT", id, eq2 + 1);
        return -1;
    }
    memset(n, 0, sizeof *n);
    n->id = id;
    snprintf(n->raft, sizeof n->raft, "%s", eq1 + 1);
    snprintf(n->client, sizeof n->client, "%s", eq2 + 1);
    return 0;
}

int hx_cluster_parse(const char *spec, hx_cluster_config_t *cfg, char *why, size_t cap)
{
    cfg->n_nodes = 0;
    if (!spec || !*spec) {
        snprintf(why, cap, "empty: give ID=RAFTIP:PORT=tcp://HOST:PORT for each node, comma-separated");
        return -1;
    }
    char *copy = strdup(spec), *save = NULL;
    if (!copy) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    int rc = 0;
    for (char *el = strtok_r(copy, ",", &save); el && rc == 0; el = strtok_r(NULL, ",", &save)) {
        if (cfg->n_nodes == HX_CLUSTER_MAX) {
            snprintf(why, cap, "more than %d nodes", HX_CLUSTER_MAX);
            rc = -1;
            break;
        }
        hx_cluster_node_t *n = &cfg->nodes[cfg->n_nodes];
        rc = hx_cluster_parse_node(el, n, why, cap);
        for (size_t i = 0; rc == 0 && i < cfg->n_nodes; i++)
            if (cfg->nodes[i].id == n->id || !strcmp(cfg->nodes[i].raft, n->raft) ||
                !strcmp(cfg->nodes[i].client, n->client)) {
                snprintf(why, cap, "node %llu: its id or an address is another node's too", (unsigned long long)n->id);
                rc = -1;
            }
        if (rc == 0)
            cfg->n_nodes++;
    }
    free(copy);
    if (rc == 0 && cfg->n_nodes == 0) {
        snprintf(why, cap, "no node given");
        rc = -1;
    }
    return rc;
}

/* ---- start and stop ---- */

/* This node's line of --cluster (cfg->self's), or NULL. */
static const hx_cluster_node_t *self_node(const hx_cluster_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (cfg->nodes[i].id == cfg->self)
            return &cfg->nodes[i];
    return NULL;
}

hx_cluster_t *hx_cluster_start(const hx_cluster_config_t *cfg, char *err, size_t cap)
{
    const hx_cluster_node_t *me = self_node(cfg);
    if (!me) {
        snprintf(err, cap, "--node-id %llu is not one of --cluster's nodes", (unsigned long long)cfg->self);
        return NULL;
    }
    if (mkdir(cfg->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, cap, "%s: %s", cfg->dir, strerror(errno));
        return NULL;
    }
    hx_cluster_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    if (cfg->key) {
        memcpy(c->key, cfg->key, sizeof c->key);
        c->sealed = true;
        c->cfg.key = NULL;
    }
    if (cfg->peer_key) {
        memcpy(c->peer_key, cfg->peer_key, sizeof c->peer_key);
        c->authenticated = true;
        c->cfg.peer_key = NULL;
    }
    if (!c->cfg.election_ms)
        c->cfg.election_ms = 1000;
    if (!c->cfg.heartbeat_ms)
        c->cfg.heartbeat_ms = 100;
    if (!c->cfg.snapshot_entries)
        c->cfg.snapshot_entries = 1024;
    if (!c->cfg.segment_mb)
        c->cfg.segment_mb = HX_CLUSTER_SEGMENT_MB;
    c->loop = cfg->loop;
    c->state.dedup_cap = cfg->dedup_window ? cfg->dedup_window : 100000;
    c->state.dedup = calloc(c->state.dedup_cap, HX_ID_LEN);
    bool by_id = c->state.dedup && hx_idmap_init(&c->state.by_id) == 0;
    if (!by_id || hx_idmap_init(&c->state.pending) != 0) {
        if (by_id)
            hx_idmap_free(&c->state.by_id);
        free(c->state.dedup);
        free(c);
        snprintf(err, cap, "out of memory");
        return NULL;
    }
    c->fsm = (struct raft_fsm){.version = 3, .data = c, .apply = fsm_apply, .snapshot = fsm_snapshot,
                               .restore = fsm_restore, .snapshot_finalize = fsm_snapshot_finalize,
                               .snapshot_async = fsm_snapshot_async};
    int rv = raft_uv_tcp_init(&c->tcp, c->loop);
    bool tcp_made = rv == 0;
    if (rv == 0 && cfg->raft_bind)
        rv = raft_uv_tcp_set_bind_address(&c->tcp, cfg->raft_bind);
    transport_wrap(c);
    if (rv != 0) {
        snprintf(err, cap, "the Raft transport: %s", raft_strerror(rv));
        if (tcp_made)
            raft_uv_tcp_close(&c->tcp);
        state_free(&c->state);
        free(c);
        return NULL;
    }
    rv = raft_uv_init(&c->guard.io, c->loop, cfg->dir, &c->transport);
    if (rv != 0) {
        snprintf(err, cap, "%s: %s", cfg->dir, c->guard.io.errmsg[0] ? c->guard.io.errmsg : raft_strerror(rv));
        raft_uv_tcp_close(&c->tcp);
        state_free(&c->state);
        free(c);
        return NULL;
    }
    /* Bigger segments than libraft's 8 MiB: each new one is made (created, allocated, synced)
     * on the thread pool while the node appends, and an append that finds none ready waits.
     * Under a submit load 8 MiB gave 29,800-33,000 msg/s and a p99 of 49-63 ms, 64 MiB
     * 37,700-40,000 and 21-32 ms (bench/README.md, docs/OPERATIONS.md "Snapshots"). */
    raft_uv_set_segment_size(&c->guard.io, (size_t)c->cfg.segment_mb << 20);
    /* libraft compresses snapshots with LZ4; sealed ones are ciphertext and do not compress:
     * the attempt took CPU on every node (lz4 -1 on 100 MB of random bytes: 0.4 s here) and
     * a buffer as big again; a sealed 100 MB snapshot under load was stored in 1.4-2.5 s with
     * it, 1.1-1.7 s without (bench/README.md) */
    (void)raft_uv_set_snapshot_compression(&c->guard.io, !c->sealed);   /* (on only where libraft has LZ4) */
    /* libraft 0.15's own I/O has the worker pool snapshots are made on (async_work) but
     * still says it is of version 1, which raft_init takes as "none": it is named for what
     * it is (the version later libraft releases give it) */
    if (c->guard.io.async_work && c->guard.io.version < 2)
        c->guard.io.version = 2;
    if (!c->guard.io.async_work)
        c->fsm.snapshot_async = NULL;
    bool guarded = (rv = hx_raft_guard_install(&c->guard, c->loop)) == 0;
    if (guarded)
        rv = raft_init(&c->raft, &c->guard.io, &c->fsm, cfg->self, me->raft);
    if (rv != 0) {
        snprintf(err, cap, "raft: %s", guarded ? raft_errmsg(&c->raft) : uv_strerror(rv));
        if (guarded) {
            hx_raft_guard_abandon(&c->guard);
            uv_run(c->loop, UV_RUN_NOWAIT);
        }
        raft_uv_close(&c->guard.io);
        raft_uv_tcp_close(&c->tcp);
        state_free(&c->state);
        free(c);
        return NULL;
    }
    /* a new directory: the cluster's configuration as its first entry (every node is given
     * the same, so their first entries are the same); a used one keeps its own */
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (size_t i = 0; rv == 0 && i < cfg->n_nodes; i++)
        rv = raft_configuration_add(&conf, cfg->nodes[i].id, cfg->nodes[i].raft, RAFT_VOTER);
    if (rv == 0 && !cfg->join) {
        rv = raft_bootstrap(&c->raft, &conf);
        if (rv == 0)
            hx_info("cluster: %s is new: bootstrapped with %zu node(s)", cfg->dir, cfg->n_nodes);
        else if (rv == RAFT_CANTBOOTSTRAP)
            rv = 0;
    } else if (rv == 0) {
        hx_info("cluster: joining: waiting to be added by the leader (cluster.add %llu=%s=%s)",
                (unsigned long long)cfg->self, me->raft, me->client);
    }
    raft_configuration_close(&conf);
    raft_set_election_timeout(&c->raft, c->cfg.election_ms);
    raft_set_heartbeat_timeout(&c->raft, c->cfg.heartbeat_ms);
    raft_set_snapshot_threshold(&c->raft, c->cfg.snapshot_entries);
    raft_set_snapshot_trailing(&c->raft, c->cfg.snapshot_entries / 2 ? c->cfg.snapshot_entries / 2 : 1);
    raft_set_pre_vote(&c->raft, true);
    if (rv == 0)
        rv = raft_start(&c->raft);
    if (rv != 0) {
        snprintf(err, cap, "raft: %s", raft_errmsg(&c->raft)[0] ? raft_errmsg(&c->raft) : raft_strerror(rv));
        c->started = false;
        hx_cluster_stop(&c);
        return NULL;
    }
    c->started = true;
    hx_info("cluster: node %llu of %zu, Raft on %s%s%s, %llu message(s) held after replay",
            (unsigned long long)cfg->self, cfg->n_nodes, me->raft, cfg->raft_bind ? " (listening on " : "",
            cfg->raft_bind ? cfg->raft_bind : "", (unsigned long long)c->state.n);
    return c;
}

/* ---- recovering a lost cluster from one node's copy ---- */

/* Whether Raft's directory holds a log: a snapshot, a closed segment (FIRST-LAST) or an open
 * segment that is not empty. */
bool hx_cluster_log_there(const char *dir)
{
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        struct stat st;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        found = (!strncmp(e->d_name, "snapshot-", 9) || strspn(e->d_name, "0123456789") == 16 ||
                 !strncmp(e->d_name, "open-", 5)) &&
                stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    }
    if (d)
        closedir(d);
    return found;
}

static int recover_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm, (void)buf;
    *result = NULL;
    return 0;
}

static void recover_closed(struct raft *r)
{
    *(bool *)r->data = true;
}

int hx_cluster_recover(const hx_cluster_config_t *cfg, char *err, size_t cap)
{
    const hx_cluster_node_t *me = self_node(cfg);
    if (!me) {
        snprintf(err, cap, "--node-id %llu is not one of --cluster's nodes", (unsigned long long)cfg->self);
        return HX_EINVAL;
    }
    if (!hx_cluster_log_there(cfg->dir)) {
        snprintf(err, cap, "%s holds no Raft log (no snapshot, no segment): put a node's copy there first", cfg->dir);
        return HX_EINVAL;
    }
    uv_loop_t loop;
    struct raft_uv_transport tcp = {0};
    struct raft_io io = {0};
    struct raft r;
    struct raft_fsm fsm = {.version = 1, .apply = recover_apply};
    struct raft_configuration conf;
    bool closed = false, io_made = false, raft_made = false;
    raft_configuration_init(&conf);
    if (uv_loop_init(&loop) != 0) {
        snprintf(err, cap, "cannot make an event loop");
        return HX_EFAILED;
    }
    int rv = raft_uv_tcp_init(&tcp, &loop);
    bool tcp_made = rv == 0;
    if (rv == 0)
        io_made = (rv = raft_uv_init(&io, &loop, cfg->dir, &tcp)) == 0;
    if (rv == 0)
        raft_made = (rv = raft_init(&r, &io, &fsm, cfg->self, me->raft)) == 0;
    if (rv == 0)
        rv = raft_configuration_add(&conf, cfg->self, me->raft, RAFT_VOTER);
    if (rv == 0)
        rv = raft_recover(&r, &conf);
    if (rv != 0)
        snprintf(err, cap, "%s: %s", cfg->dir,
                 raft_made && raft_errmsg(&r)[0] ? raft_errmsg(&r)
                 : io_made && io.errmsg[0]     ? io.errmsg
                                               : raft_strerror(rv));
    raft_configuration_close(&conf);
    if (raft_made) {
        r.data = &closed;
        raft_close(&r, recover_closed);
        while (!closed)
            uv_run(&loop, UV_RUN_ONCE);
    }
    if (io_made)
        raft_uv_close(&io);
    if (tcp_made)
        raft_uv_tcp_close(&tcp);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rv == 0 ? 0 : HX_EFAILED;
}

static void on_closed(struct raft *r)
{
    hx_cluster_t *c = (hx_cluster_t *)((char *)r - offsetof(hx_cluster_t, raft));
    c->closed = true;
}

void hx_cluster_stop(hx_cluster_t **self_p)
{
    hx_cluster_t *c = self_p ? *self_p : NULL;
    if (!c)
        return;
    set_serving(c, false, "stopping");
    c->closed = false;
    raft_close(&c->raft, on_closed);
    while (!c->closed)
        uv_run(c->loop, UV_RUN_ONCE);
    while (c->anchor.busy)              /* the audit file's sync: its callback names c */
        uv_run(c->loop, UV_RUN_ONCE);
    raft_uv_close(&c->guard.io);
    raft_uv_tcp_close(&c->tcp);
    uv_run(c->loop, UV_RUN_NOWAIT);
    if (c->snap)                        /* libraft finalizes every snapshot it starts; in case */
        snap_free(c->snap);
    while (bodies.releasing)            /* a view's buffers being freed on the thread pool */
        uv_run(c->loop, UV_RUN_ONCE);
    free(c->frozen_spare);
    pending_clear(c);
    state_free(&c->state);
    if (c->store)
        c->store->c = NULL;
    if (c->scratch.data)
        sodium_memzero(c->scratch.data, c->scratch.cap);
    hx_buf_free(&c->scratch);
    sodium_memzero(c->key, sizeof c->key);
    sodium_memzero(c->peer_key, sizeof c->peer_key);
    free(c);
    *self_p = NULL;
}
