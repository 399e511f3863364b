/* hx_wire — ids, names, error text and envelope packing. */
#include "hx_wire.h"
#include "hx_log.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hx_strerror(int err)
{
    switch (err) {
    case HX_OK: return "ok";
    case HX_ENOMEM: return "out of memory";
    case HX_EINVAL: return "invalid argument";
    case HX_ETIMEDOUT: return "timed out waiting for the broker";
    case HX_EREFUSED: return "refused by the broker";
    case HX_EIO: return "input/output error";
    case HX_ESTOPPED: return "stopped";
    case HX_EDENIED: return "denied by the broker";
    case HX_EFULL: return "the disk is full";
    case HX_EFAILED: return "a write or fdatasync failed";
    default: return "unknown error";
    }
}

const char *hx_wire_error_text(Handoff__ErrorCode code)
{
    switch (code) {
    case HANDOFF__ERROR_CODE__ERR_NONE: return "none";
    case HANDOFF__ERROR_CODE__ERR_MALFORMED: return "malformed";
    case HANDOFF__ERROR_CODE__ERR_VERSION: return "version";
    case HANDOFF__ERROR_CODE__ERR_UNKNOWN_KIND: return "unknown-kind";
    case HANDOFF__ERROR_CODE__ERR_BAD_FIELD: return "bad-field";
    case HANDOFF__ERROR_CODE__ERR_NOT_READY: return "not-ready";
    case HANDOFF__ERROR_CODE__ERR_TOO_LARGE: return "too-large";
    case HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE: return "unknown-message";
    case HANDOFF__ERROR_CODE__ERR_BUSY: return "busy";
    case HANDOFF__ERROR_CODE__ERR_UNAVAILABLE: return "unavailable";
    case HANDOFF__ERROR_CODE__ERR_FORBIDDEN: return "forbidden";
    case HANDOFF__ERROR_CODE__ERR_NOT_LEADER: return "not-leader";
    default: return "unknown-error";
    }
}

const char *hx_endpoint_problem(const char *value, char *why, size_t cap)
{
    size_t len = strlen(value);
    bool tcp = strncmp(value, "tcp://", 6) == 0;
    if (!tcp && strncmp(value, "ipc://", 6) != 0) {
        snprintf(why, cap, "must be a ZeroMQ endpoint such as tcp://HOST:PORT, got '%.200s'", value);
        return why;
    }
    if (len < 7 || len > HX_ENDPOINT_MAX) {
        snprintf(why, cap, "must be a ZeroMQ endpoint of at most %d characters with a %s, got '%.200s'",
                 HX_ENDPOINT_MAX, tcp ? "host" : "path", value);
        return why;
    }
    for (const char *p = value; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
            snprintf(why, cap, "must be a ZeroMQ endpoint without blanks or control characters, got '%.200s'",
                     value);
            return why;
        }
    if (!tcp)
        return NULL;
    const char *host = value + 6, *semi = strrchr(host, ';');
    if (semi)                                   /* tcp://SOURCE;HOST:PORT */
        host = semi + 1;
    const char *colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
    if (colon && host[0] == '[')
        colon++;
    const char *port = colon ? colon + 1 : "";
    size_t digits = strspn(port, "0123456789");
    unsigned long n = digits && digits <= 5 ? strtoul(port, NULL, 10) : 0;
    if (!colon || colon == host || (host[0] == '[' && colon == host + 2) || port[digits] || n < 1 || n > 65535) {
        snprintf(why, cap, "must be a ZeroMQ endpoint tcp://HOST:PORT with a host and a port from 1 to 65535, "
                           "got '%.200s'", value);
        return why;
    }
    return NULL;
}

int hx_endpoints_next(const char nodes[][HX_ENDPOINT_MAX + 1], int n, int from, const char *leader, const char *who)
{
    int to = -1;
    for (int i = 0; i < n && leader[0]; i++)
        if (strcmp(nodes[i], leader) == 0)
            to = i;
    if (to < 0 || to == from)
        to = (from + 1) % n;
    if (to == from)
        hx_debug("broker at %s is not the leader (%s); asking it again", nodes[from], leader[0] ? leader : "none known yet");
    else if (leader[0] && strcmp(nodes[to], leader) == 0)
        hx_info("broker node %s is not the leader; moving to the leader %s", nodes[from], leader);
    else if (leader[0])
        hx_warn("broker node %s is not the leader and names %s, which is not one of this %s's nodes; trying %s",
                nodes[from], leader, who, nodes[to]);
    else
        hx_debug("broker node %s is not the leader and knows none yet; trying %s", nodes[from], nodes[to]);
    return to;
}

int hx_endpoints_split(const char *list, char out[][HX_ENDPOINT_MAX + 1], char *why, size_t cap)
{
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    if (n > HX_ENDPOINTS_MAX) {
        snprintf(why, cap, "at most %d endpoints (the nodes of a replicated broker), got %d", HX_ENDPOINTS_MAX, n);
        return -1;
    }
    const char *p = list;
    for (int i = 0; i < n; i++) {
        size_t len = strcspn(p, ",");
        char one[HX_ENDPOINT_MAX + 2];
        snprintf(one, sizeof one, "%.*s", (int)(len < sizeof one - 1 ? len : sizeof one - 1), p);
        char problem[400];
        if (len == 0) {
            snprintf(why, cap, "endpoint %d of %d is empty: the list is ENDPOINT[,ENDPOINT...] without blanks", i + 1,
                     n);
            return -1;
        }
        if (len > HX_ENDPOINT_MAX || hx_endpoint_problem(one, problem, sizeof problem)) {
            if (len > HX_ENDPOINT_MAX)
                snprintf(problem, sizeof problem, "must be a ZeroMQ endpoint of at most %d characters, got '%.200s'",
                         HX_ENDPOINT_MAX, one);
            if (n == 1)
                snprintf(why, cap, "%s", problem);
            else
                snprintf(why, cap, "endpoint %d of %d: %s", i + 1, n, problem);
            return -1;
        }
        if (out)
            memcpy(out[i], one, len + 1);
        p += len + 1;
    }
    return n;
}

bool hx_name_valid(const char *s)
{
    if (!s || !*s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok || n >= HX_NAME_MAX)
            return false;
    }
    return true;
}

void hx_id_random(uint8_t id[HX_ID_LEN])
{
    randombytes_buf(id, HX_ID_LEN);
}

void hx_id_derive(const uint8_t in[HX_ID_LEN], uint32_t index, uint8_t out[HX_ID_LEN])
{
    uint8_t idx[4] = {(uint8_t)(index >> 24), (uint8_t)(index >> 16), (uint8_t)(index >> 8), (uint8_t)index};
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, HX_ID_LEN);
    crypto_generichash_update(&st, (const unsigned char *)"output", 6);
    crypto_generichash_update(&st, in, HX_ID_LEN);
    crypto_generichash_update(&st, idx, sizeof idx);
    crypto_generichash_final(&st, out, HX_ID_LEN);
}

void hx_id_hex(const uint8_t *id, char out[2 * HX_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < HX_ID_LEN; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 15];
    }
    out[2 * HX_ID_LEN] = '\0';
}

int hx_buf_reserve(hx_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return HX_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int hx_buf_append(hx_buf_t *b, const void *p, size_t n)
{
    if (hx_buf_reserve(b, n))
        return HX_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int hx_buf_vappendf(hx_buf_t *b, const char *fmt, va_list ap)
{
    char tmp[256];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    int rc = 0;
    if (n < 0)
        rc = HX_EINVAL;
    else if ((size_t)n < sizeof tmp)
        rc = hx_buf_append(b, tmp, (size_t)n);
    else if (hx_buf_reserve(b, (size_t)n + 1))      /* longer: format again, in place */
        rc = HX_ENOMEM;
    else {
        vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
    return rc;
}

int hx_buf_appendf(hx_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = hx_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void hx_buf_free(hx_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int hx_wire_pack(const Handoff__Envelope *env, hx_buf_t *b)
{
    size_t n = handoff__envelope__get_packed_size(env);
    b->len = 0;
    if (hx_buf_reserve(b, n))
        return HX_ENOMEM;
    b->len = handoff__envelope__pack(env, b->data);
    return 0;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

int hx_wire_append_message(hx_buf_t *b, const uint8_t *msg, size_t len, uint32_t attempt)
{
    uint8_t tail[1 + 10];
    size_t tail_len = 0;
    tail[tail_len++] = (7 << 3) | 0;                 /* Message.attempt, varint */
    tail_len += put_varint(tail + tail_len, attempt);
    uint8_t head[1 + 10];
    size_t head_len = 0;
    head[head_len++] = (11 << 3) | 2;                /* Envelope.messages, length-delimited */
    head_len += put_varint(head + head_len, len + tail_len);
    if (hx_buf_reserve(b, head_len + len + tail_len))
        return HX_ENOMEM;
    hx_buf_append(b, head, head_len);
    hx_buf_append(b, msg, len);
    hx_buf_append(b, tail, tail_len);
    return 0;
}

int hx_wire_pack_reply(hx_buf_t *b, Handoff__Kind kind, const uint8_t *corr, size_t corr_len)
{
    uint8_t head[2 + 1 + 10 + 1 + 10];
    size_t n = 0;
    head[n++] = (1 << 3) | 0;                         /* version */
    n += put_varint(head + n, HX_PROTOCOL_VERSION);
    if (kind != 0) {                                  /* proto3: a zero enum is not written */
        head[n++] = (2 << 3) | 0;
        n += put_varint(head + n, (uint64_t)kind);
    }
    if (corr_len) {
        head[n++] = (4 << 3) | 2;                     /* correlation_id */
        n += put_varint(head + n, corr_len);
    }
    b->len = 0;
    if (hx_buf_reserve(b, n + corr_len))
        return HX_ENOMEM;
    hx_buf_append(b, head, n);
    hx_buf_append(b, corr, corr_len);
    return 0;
}

static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t c = *(*p)++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

bool hx_wire_next_field(const uint8_t **p, const uint8_t *end, hx_wire_field_t *f)
{
    uint64_t key;
    if (!get_varint(p, end, &key))
        return false;
    f->num = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    f->v = 0;
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case 0: return get_varint(p, end, &f->v);
    case 1: if (end - *p < 8) return false; *p += 8; return true;
    case 5: if (end - *p < 4) return false; *p += 4; return true;
    case 2:
        if (!get_varint(p, end, &f->v) || f->v > (uint64_t)(end - *p))
            return false;
        f->data = *p;
        f->len = (size_t)f->v;
        *p += f->len;
        return true;
    default: return false;
    }
}

int hx_wire_scan_message(const uint8_t *msg, size_t len, hx_msg_head_t *out)
{
    memset(out, 0, sizeof *out);
    const uint8_t *p = msg, *end = msg + len;
    hx_wire_field_t f, g;
    while (p < end) {
        if (!hx_wire_next_field(&p, end, &f))
            return -1;
        if (f.num == 1 && f.wire == 2) {
            out->id = f.data;
            out->id_len = f.len;
        } else if (f.num == 8 && f.wire == 0) {
            out->accepted_at_ms = f.v;
        } else if (f.num == 9 && f.wire == 2) {
            out->origin = f.data;
            out->origin_len = f.len;
        } else if (f.num == 10 && f.wire == 0) {
            out->priority = f.v;
        } else if (f.num == 2 && f.wire == 2) {      /* Address: kind = 1, name = 2 */
            const uint8_t *q = f.data, *qend = f.data + f.len;
            while (q < qend) {
                if (!hx_wire_next_field(&q, qend, &g))
                    return -1;
                if (g.num == 1 && g.wire == 0)
                    out->to_kind = (Handoff__AddressKind)g.v;
                else if (g.num == 2 && g.wire == 2) {
                    out->to_name = g.data;
                    out->to_name_len = g.len;
                }
            }
        }
    }
    return 0;
}

/* A string field with a NUL inside: protobuf-c would hand it on cut at the NUL. */
static bool has_nul(const hx_wire_field_t *f)
{
    return f->wire == 2 && memchr(f->data, 0, f->len) != NULL;
}

static bool address_clean(const uint8_t *p, const uint8_t *end)
{
    hx_wire_field_t f;
    while (p < end)
        if (!hx_wire_next_field(&p, end, &f) || (f.num == 2 && has_nul(&f)))
            return false;
    return true;
}

bool hx_wire_strings_clean(const uint8_t *frame, size_t len, char *why, size_t cap)
{
    static const struct {
        uint32_t num;
        const char *name;
    } top[] = {{6, "name"}, {15, "error_text"}, {16, "admin_op"}, {18, "text"}, {19, "leader"}};
    const uint8_t *p = frame, *end = frame + len;
    hx_wire_field_t f, g;
    size_t msg = 0;
    while (p < end) {
        if (!hx_wire_next_field(&p, end, &f))
            return true;                        /* not ours to judge: the unpack said it decodes */
        for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
            if (f.num == top[i].num && has_nul(&f)) {
                snprintf(why, cap, "%s: contains a NUL character", top[i].name);
                return false;
            }
        if (f.num != 11 || f.wire != 2)
            continue;
        const uint8_t *q = f.data, *qend = f.data + f.len;
        while (q < qend) {
            if (!hx_wire_next_field(&q, qend, &g))
                break;
            const char *bad = g.num == 4 && has_nul(&g)   ? "type"
                              : g.num == 9 && has_nul(&g) ? "origin"
                              : g.num == 2 && g.wire == 2 && !address_clean(g.data, g.data + g.len) ? "to.name"
                              : g.num == 3 && g.wire == 2 && !address_clean(g.data, g.data + g.len) ? "from.name"
                                                                                                    : NULL;
            if (bad) {
                snprintf(why, cap, "messages[%zu].%s: contains a NUL character", msg, bad);
                return false;
            }
        }
        msg++;
    }
    return true;
}

struct hx_arena_extra {
    hx_arena_extra_t *next;
    max_align_t data[];
};

static void *arena_alloc(void *data, size_t size)
{
    hx_arena_t *a = data;
    size = (size + 15) & ~(size_t)15;
    if (size <= a->cap - a->used) {
        void *p = a->base + a->used;
        a->used += size;
        return p;
    }
    hx_arena_extra_t *x = malloc(sizeof *x + size);
    if (!x)
        return NULL;
    a->spilled += size;
    x->next = a->extra;
    a->extra = x;
    return x->data;
}

static void arena_free(void *data, void *p)
{
    (void)data;                                       /* released together by hx_arena_reset */
    (void)p;
}

int hx_arena_init(hx_arena_t *a, size_t cap)
{
    memset(a, 0, sizeof *a);
    a->base = malloc(cap);
    if (!a->base)
        return HX_ENOMEM;
    a->cap = cap;
    a->pb.alloc = arena_alloc;
    a->pb.free = arena_free;
    a->pb.allocator_data = a;
    return 0;
}

void hx_arena_reset(hx_arena_t *a)
{
    while (a->extra) {
        hx_arena_extra_t *x = a->extra;
        a->extra = x->next;
        free(x);
    }
    /* Frames that did not fit: the block grows to hold such a frame whole next time (up to
     * HX_ARENA_MAX; beyond that they keep spilling). */
    size_t want = (a->used + a->spilled) * 2;
    if (a->spilled && a->cap < HX_ARENA_MAX) {
        want = want < HX_ARENA_MAX ? want : HX_ARENA_MAX;
        uint8_t *bigger = malloc(want);
        if (bigger) {
            free(a->base);
            a->base = bigger;
            a->cap = want;
        }
    }
    a->spilled = 0;
    a->used = 0;
}

void hx_arena_free(hx_arena_t *a)
{
    hx_arena_reset(a);
    free(a->base);
    a->base = NULL;
    a->cap = 0;
}
