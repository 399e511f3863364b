/* hx_router_admin — the ADMIN operations (health, stats, the dead-letter queue) and the
 * router's statistics: counters, per-queue figures and the stats JSON. */
#include "hx_router_internal.h"

#include <jansson.h>
#include <limits.h>

static int stats_json_own(const hx_router_t *r, const queue_t *own, hx_buf_t *out);

/* ---- admin: health and the dead-letter queue ---------------------------------------------- */

/* stats: counts and names, all to an admin, its own queue's to others. */
static void admin_stats(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, entry_t *target)
{
    (void)target;
    hx_buf_t json = {0};
    int rc = p->role == HANDOFF__ROLE__ROLE_ADMIN ? hx_router_stats_json(r, &json)
                                                  : stats_json_own(r, p->queue, &json);
    if (rc != 0) {
        hx_buf_free(&json);
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNAVAILABLE,
                    "stats: out of memory");
        return;
    }
    Handoff__Envelope rep;
    rt_env_init(&rep, HANDOFF__KIND__KIND_ADMIN_REPLY, env->id);
    rep.text = (char *)json.data;
    rt_send_env(r, p->rid, p->rid_len, p, &rep);
    hx_buf_free(&json);
}

/* health: an empty reply, unless the store refuses writes (then its error). */
static void admin_health(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, entry_t *target)
{
    (void)target;
    if (rt_store_refuses(r, p, env))
        return;
    Handoff__Envelope rep;
    rt_env_init(&rep, HANDOFF__KIND__KIND_ADMIN_REPLY, env->id);
    rt_send_env(r, p->rid, p->rid_len, p, &rep);
}

/* dlq.replay: the dead letter back to its queue as a new delivery, durably, then dispatched. */
static void admin_dlq_replay(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, entry_t *target)
{
    if (!rt_open_request(r, p, env))
        return;
    rt_entry_unlink(r, target);
    r->cfg.store->ops->revive(r->cfg.store, target->id);
    target->failures = 0;
    target->attempt = 0;
    rt_held_add(target);
    free(target->reason);
    target->reason = NULL;
    rt_to_waiting(target, false);
    hx_info("%s replayed a dead letter to %s", p->name, rt_queue_name(target->lane->queue));
    rt_audit(r, p, "dlq.replay", target->id, "replayed");
    rt_commit_request(r, p, env, HANDOFF__KIND__KIND_ADMIN_REPLY, NULL, 0, NULL, 0, true);
    rt_dispatch(r, target->lane->queue);
}

/* dlq.purge: the dead letter settled, and forgotten once that is durable. */
static void admin_dlq_purge(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, entry_t *target)
{
    if (!rt_open_request(r, p, env))
        return;
    rt_entry_unlink(r, target);
    r->cfg.store->ops->settle(r->cfg.store, target->id);
    target->state = E_SETTLING;
    rt_held_add(target);                   /* action_finish forgets it once more */
    hx_info("%s purged a dead letter of %s", p->name, rt_queue_name(target->lane->queue));
    rt_audit(r, p, "dlq.purge", target->id, "purged");
    rt_commit_request(r, p, env, HANDOFF__KIND__KIND_ADMIN_REPLY, NULL, 0, &target, 1, true);
}

/* Dead letter e's message, read from the store and unpacked (for a list without its
 * payload: the list carries no clinical content); NULL when it cannot be read. */
static Handoff__Message *dead_message(hx_router_t *r, const entry_t *e, bool list)
{
    const uint8_t *body;
    if (r->cfg.store->ops->get(r->cfg.store, e->handle, e->size, &body))
        return NULL;
    Handoff__Message *m = handoff__message__unpack(NULL, e->size, body);
    if (!m)
        return NULL;
    if (list) {
        m->payload.len = 0;                 /* the list carries no clinical content */
    }
    return m;
}

/* dlq.list (target NULL: every dead letter, without payloads, as many as fit a frame) and
 * dlq.show (target, with its payload): the dead letters with their messages. */
static void admin_dlq_send(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, entry_t *target)
{
    bool list = target == NULL;
    size_t n = list ? r->n_dead : 1, k = 0;
    Handoff__DeadLetter *dl = calloc(n ? n : 1, sizeof *dl);
    Handoff__DeadLetter **dlp = calloc(n ? n : 1, sizeof *dlp);
    Handoff__Message **msgs = calloc(n ? n : 1, sizeof *msgs);
    if (!dl || !dlp || !msgs) {
        free(dl);
        free(dlp);
        free(msgs);
        return;
    }
    size_t bytes = 0;
    for (entry_t *e = list ? r->dead : target; e && k < n; e = list ? e->next : NULL) {
        Handoff__Message *m = dead_message(r, e, list);
        if (!m)
            continue;
        bytes += e->size + 300;
        if (list && bytes > r->cfg.max_frame) {
            handoff__message__free_unpacked(m, NULL);   /* does not fit: not sent, not kept */
            break;
        }
        m->attempt = e->failures;
        msgs[k] = m;
        handoff__dead_letter__init(&dl[k]);
        dl[k].message = m;
        dl[k].reason = e->reason ? e->reason : "";
        dl[k].attempts = e->failures;
        dl[k].dead_at_ms = e->dead_at;
        dlp[k] = &dl[k];
        k++;
    }
    Handoff__Envelope rep;
    rt_env_init(&rep, HANDOFF__KIND__KIND_ADMIN_REPLY, env->id);
    rep.n_dead = k;
    rep.dead = dlp;
    rt_send_env(r, p->rid, p->rid_len, p, &rep);
    for (size_t i = 0; i < k; i++)
        handoff__message__free_unpacked(msgs[i], NULL);
    free(msgs);
    free(dl);
    free(dlp);
}

/* The dead letter a dlq operation names in acks[0]; NULL (the error answered) when acks does
 * not name exactly one id, or that message is not dead. */
static entry_t *dlq_target(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    const char *op = env->admin_op;
    if (env->n_acks != 1 || env->acks[0].len != HX_ID_LEN) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "acks: %s names exactly one %d-byte message id", op, HX_ID_LEN);
        return NULL;
    }
    entry_t *target = rt_entry_find(r, env->acks[0].data);
    if (!target || target->state != E_DEAD) {
        char hex[2 * HX_ID_LEN + 1];
        hx_id_hex(env->acks[0].data, hex);
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE,
                    "acks[0]: message %s is not in the dead-letter queue", hex);
        return NULL;
    }
    return target;
}

/* The admin operations: who may use each, whether it names a dead letter, its handler. */
static const struct {
    const char *op;
    bool dlq;                   /* the dead-letter queue: an admin session only */
    bool one;                   /* names one dead letter in acks[0], passed as target */
    void (*fn)(hx_router_t *r, peer_t *p, const Handoff__Envelope *env, entry_t *target);
} admin_ops[] = {
    {"stats", false, false, admin_stats},
    {"health", false, false, admin_health},
    {"dlq.list", true, false, admin_dlq_send},
    {"dlq.show", true, true, admin_dlq_send},
    {"dlq.replay", true, true, admin_dlq_replay},
    {"dlq.purge", true, true, admin_dlq_purge},
};

/* cluster.*: a replicated broker's membership, through the hook its owner gave. */
static void admin_cluster(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    const char *op = env->admin_op;
    if (p->role != HANDOFF__ROLE__ROLE_ADMIN) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                       "%.40s: only an admin session may change or read the cluster's membership", op);
        return;
    }
    if (!r->cfg.cluster_admin) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                       "admin_op: %.40s: this broker is a single node, not a replicated one (--cluster)", op);
        return;
    }
    hx_buf_t out = {0};
    char why[512] = "";
    int rc = r->cfg.cluster_admin(r->cfg.cluster_arg, op, env->text ? env->text : "", &out, why, sizeof why);
    rt_audit(r, p, op, NULL, rc == 0 ? "ok" : "refused");
    if (rc != 0) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id,
                       rc == HX_EINVAL ? HANDOFF__ERROR_CODE__ERR_BAD_FIELD : HANDOFF__ERROR_CODE__ERR_BUSY, "%s",
                       why[0] ? why : hx_strerror(rc));
    } else {
        Handoff__Envelope rep;
        rt_env_init(&rep, HANDOFF__KIND__KIND_ADMIN_REPLY, env->id);
        rep.text = out.len ? (char *)out.data : "";
        rt_send_env(r, p->rid, p->rid_len, p, &rep);
    }
    hx_buf_free(&out);
}

void rt_on_admin(hx_router_t *r, peer_t *p, const Handoff__Envelope *env)
{
    const char *op = env->admin_op;
    if (strncmp(op, "cluster.", 8) == 0) {
        admin_cluster(r, p, env);
        return;
    }
    size_t i = 0, n = sizeof admin_ops / sizeof admin_ops[0];
    while (i < n && strcmp(op, admin_ops[i].op) != 0)
        i++;
    if (i == n) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_BAD_FIELD,
                    "admin_op: '%.40s' is not health, stats, dlq.list, dlq.show, dlq.replay, dlq.purge or "
                    "cluster.status, cluster.add, cluster.remove, cluster.transfer", op);
        return;
    }
    if (admin_ops[i].dlq && p->role != HANDOFF__ROLE__ROLE_ADMIN) {
        rt_reply_error(r, p->rid, p->rid_len, p, env->id, HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
                    "%s: only an admin session may use the dead-letter queue", op);
        return;
    }
    entry_t *target = NULL;
    if (admin_ops[i].one && !(target = dlq_target(r, p, env)))
        return;
    admin_ops[i].fn(r, p, env, target);
}

long hx_router_depth(const hx_router_t *r, const char *kind, const char *name, long *inflight)
{
    Handoff__AddressKind k = strcmp(kind, "service") == 0 ? HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE
                                                          : HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    const queue_t *q = rt_queue_find(r, k, name);
    if (!q)
        return -1;
    if (inflight)
        *inflight = (long)q->n_inflight;
    return (long)q->n_waiting;
}

void hx_router_stats(const hx_router_t *r, hx_router_stats_t *out)
{
    *out = r->stats;
    out->peers = out->workers = out->clinics = 0;
    const peer_t *p;
    out->admins = 0;
    for (p = r->peers; p; p = p->hh.next) {
        out->peers++;
        if (p->role == HANDOFF__ROLE__ROLE_WORKER)
            out->workers++;
        else if (p->role == HANDOFF__ROLE__ROLE_ADMIN)
            out->admins++;
        else
            out->clinics++;
    }
    out->dead = r->n_dead;
    out->delayed = r->n_delayed;
    out->uptime_ms = rt_mono_ms() - r->born_ms;
    out->held_bytes = r->live_bytes;
    out->dead_pinned_bytes = rt_pinned_bytes(r, r->dead_pin_seg);
}

void hx_router_foreach_queue(const hx_router_t *r, void (*fn)(void *arg, const hx_queue_info_t *q), void *arg)
{
    uint64_t wall = rt_wall_ms();
    const queue_t *q;
    for (q = r->queues; q; q = q->hh.next) {
        hx_queue_info_t info = {
            .mailbox = q->kind == HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX,
            .name = rt_queue_name(q),
            .depth = q->n_waiting,
            .inflight = q->n_inflight,
            .bytes = q->bytes,
            .workers = q->n_workers,
            .in_total = q->n_in,
            .out_total = q->n_out,
            .pinned_bytes = rt_pinned_bytes(r, q->pin_seg),
        };
        /* the oldest waiting message is the head of one of the lanes */
        uint64_t oldest = 0;
        for (int c = 0; c < PRIOS; c++) {
            const lane_t *l = q->turn[c];
            for (size_t k = 0; l && k < 1000; k++, l = l->tnext[c])
                if (l->waiting[c]->accepted_s && (!oldest || l->waiting[c]->accepted_s * 1000ull < oldest))
                    oldest = l->waiting[c]->accepted_s * 1000ull;
        }
        if (oldest && oldest < wall)
            info.oldest_age_ms = wall - oldest;
        fn(arg, &info);
    }
}

/* The stats JSON, built with jansson. */
typedef struct {
    json_t *queues, *mailboxes;
    const queue_t *only;        /* NULL: every queue; else just this one */
    int rc;
} json_walk_t;

static json_t *u64(uint64_t v)
{
    return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX : (json_int_t)v);
}

static void json_queue(void *arg, const hx_queue_info_t *q)
{
    json_walk_t *w = arg;
    if (w->only && (strcmp(q->name, rt_queue_name(w->only)) != 0 ||
                    q->mailbox != (w->only->kind == HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX)))
        return;
    json_t *o = q->mailbox ? json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o}", "name", q->name, "depth",
                                       u64(q->depth), "bytes", u64(q->bytes), "in", u64(q->in_total), "out",
                                       u64(q->out_total), "oldest_age_ms", u64(q->oldest_age_ms), "pinned_bytes",
                                       u64(q->pinned_bytes))
                           : json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name", q->name, "depth",
                                       u64(q->depth), "inflight", u64(q->inflight), "bytes", u64(q->bytes), "in",
                                       u64(q->in_total), "out", u64(q->out_total), "oldest_age_ms",
                                       u64(q->oldest_age_ms), "workers", u64(q->workers), "pinned_bytes",
                                       u64(q->pinned_bytes));
    if (!o || json_array_append_new(q->mailbox ? w->mailboxes : w->queues, o) != 0)
        w->rc = HX_ENOMEM;
}

/* root (taken) as compact text into out, NUL-terminated (the NUL not counted). */
static int json_out(json_t *root, int rc, hx_buf_t *out)
{
    char *text = rc == 0 && root ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    out->len = 0;
    if (!text || hx_buf_append(out, text, strlen(text) + 1) != 0) {
        free(text);
        return HX_ENOMEM;
    }
    free(text);
    out->len--;
    return 0;
}

/* The queues (only `only`, if given) into a new root object after uptime_ms (and scope). */
static json_t *json_root(const hx_router_t *r, const hx_router_stats_t *st, const queue_t *only, int *rc)
{
    json_walk_t w = {.queues = json_array(), .mailboxes = json_array(), .only = only};
    json_t *root = json_object();
    if (!root || !w.queues || !w.mailboxes || json_object_set_new(root, "uptime_ms", u64(st->uptime_ms)) ||
        (only && json_object_set_new(root, "scope", json_string("own")))) {
        json_decref(w.queues);
        json_decref(w.mailboxes);
        json_decref(root);
        *rc = HX_ENOMEM;
        return NULL;
    }
    hx_router_foreach_queue(r, json_queue, &w);
    if (json_object_set_new(root, "queues", w.queues) || json_object_set_new(root, "mailboxes", w.mailboxes))
        w.rc = HX_ENOMEM;
    *rc = w.rc;
    return root;
}

/* What a clinic or a worker may see: its own mailbox or service queue, nothing of others. */
static int stats_json_own(const hx_router_t *r, const queue_t *own, hx_buf_t *out)
{
    hx_router_stats_t st;
    hx_router_stats(r, &st);
    int rc = 0;
    json_t *root = json_root(r, &st, own, &rc);
    return json_out(root, rc, out);
}

int hx_router_stats_json(const hx_router_t *r, hx_buf_t *out)
{
    hx_router_stats_t st;
    hx_router_stats(r, &st);
    const hx_store_t *s = r->cfg.store;
    int rc = 0;
    json_t *root = json_root(r, &st, NULL, &rc);
    uint64_t moved = 0, moved_bytes = 0;
    if (s->ops->compacted)
        s->ops->compacted(s, &moved, &moved_bytes);
    json_t *rest = json_pack("{s:o, s:o, s:{s:o, s:o, s:o, s:o, s:o, s:o}, s:{s:o, s:o, s:o}, "
                             "s:{s:o, s:o, s:o, s:o, s:o}}",
                             "dlq", u64(st.dead), "dlq_pinned_bytes", u64(st.dead_pinned_bytes),
                             "totals", "accepted", u64(st.accepted), "delivered", u64(st.delivered), "acked",
                             u64(st.acked), "redelivered", u64(st.redelivered), "dead_lettered",
                             u64(st.dead_lettered), "refused", u64(st.refused),
                             "peers", "clinic", u64(st.clinics), "worker", u64(st.workers), "admin", u64(st.admins),
                             "store", "bytes_on_disk", u64(s->ops->bytes(s)), "fsyncs",
                             u64(s->ops->syncs ? s->ops->syncs(s) : 0), "held_bytes", u64(st.held_bytes),
                             "compacted_messages", u64(moved), "compacted_bytes", u64(moved_bytes));
    if (!root || !rest || json_object_update(root, rest) != 0)
        rc = HX_ENOMEM;
    json_decref(rest);
    return json_out(root, rc, out);
}
