/* hx_wire — shared vocabulary of the wire protocol: ids, names, limits, error codes,
 * and helpers to pack envelopes. Used by the broker and by its client library. */
#ifndef HX_WIRE_H
#define HX_WIRE_H
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "envelope.pb-c.h"

#define HX_PROTOCOL_VERSION 1
#define HX_ID_LEN 16
#define HX_NAME_MAX 64
#define HX_TYPE_MAX 128
/* A frame over max_frame by at most this much is answered ERR_TOO_LARGE; a larger one makes
 * the broker drop the connection (docs/PROTOCOL.md). */
#define HX_FRAME_GRACE (64u * 1024u)
#define HX_DEFAULT_MAX_FRAME (1u << 20)     /* 1 MiB */
#define HX_MAX_BATCH 1000                    /* messages in one SUBMIT/ACK/DELIVER */
#define HX_MAX_CREDIT 1000

/* Library error codes: negative, with hx_strerror (in the manner of libuv). */
enum {
    HX_OK = 0,
    HX_ENOMEM = -1,
    HX_EINVAL = -2,       /* bad argument or input */
    HX_ETIMEDOUT = -3,    /* no reply from the broker in time */
    HX_EREFUSED = -4,     /* the broker answered with an error (see the client's last error) */
    HX_EIO = -5,          /* a socket or file failed */
    HX_ESTOPPED = -6,     /* interrupted by a signal or a stop request */
    HX_EDENIED = -7,      /* the broker will not let this peer in: its key was refused at the
                             CURVE handshake, the handshake failed, or the key may not open the
                             session it asked for (see the client's last error) */
    HX_EFULL = -20,       /* the store's disk is full: refusing until space returns */
    HX_EFAILED = -21,     /* a write or fdatasync of the store failed: refusing until restart */
    HX_ENOTLEADER = -22,  /* a replicated broker's node that is not (or no longer) its leader */
};
const char *hx_strerror(int err);

/* Text for a wire error code ("ERR_BUSY" -> "busy"). */
const char *hx_wire_error_text(Handoff__ErrorCode code);

/* A broker's endpoint for clients: tcp://HOST:PORT, tcp://[IPv6]:PORT, tcp://SOURCE;HOST:PORT
 * or ipc://PATH, at most HX_ENDPOINT_MAX characters. A replicated broker is given as the list
 * of its nodes' endpoints, comma-separated, at most HX_ENDPOINTS_MAX of them. */
#define HX_ENDPOINT_MAX 255
#define HX_ENDPOINTS_MAX 7
/* Why value is not an endpoint a peer can connect to (the text, in why), or NULL when it is. */
const char *hx_endpoint_problem(const char *value, char *why, size_t cap);
/* Checks a comma-separated list of endpoints (one endpoint is a list of one): the number of
 * them, copied into out (NULL: only checked), or -1 with why naming the bad element ("endpoint
 * 2 of 3: must be ..."; a list of one gets hx_endpoint_problem's text as it is). */
int hx_endpoints_split(const char *list, char out[][HX_ENDPOINT_MAX + 1], char *why, size_t cap);
/* A node of a list (nodes[0..n), the one at index from) answered ERR_NOT_LEADER naming leader
 * ("" when it knows none): the index to try next, the leader when it is one of the list's, else
 * the next node; logged for who (e.g. "client", "worker"). */
int hx_endpoints_next(const char nodes[][HX_ENDPOINT_MAX + 1], int n, int from, const char *leader, const char *who);

/* True when s is 1..HX_NAME_MAX characters of [A-Za-z0-9._-]. */
bool hx_name_valid(const char *s);

/* 16 random bytes (libsodium). */
void hx_id_random(uint8_t id[HX_ID_LEN]);
/* The id of output number `index` of the message `in`: BLAKE2b of both. A worker that is
 * given the same input twice produces outputs with the same ids, so the broker keeps one. */
void hx_id_derive(const uint8_t in[HX_ID_LEN], uint32_t index, uint8_t out[HX_ID_LEN]);
/* Lower-case hex of an id; out holds 33 bytes. */
void hx_id_hex(const uint8_t *id, char out[2 * HX_ID_LEN + 1]);

/* A growable byte buffer. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} hx_buf_t;
int hx_buf_reserve(hx_buf_t *b, size_t extra);
int hx_buf_append(hx_buf_t *b, const void *p, size_t n);
/* Appends printf-formatted text (without its NUL). 0, HX_ENOMEM or HX_EINVAL. */
int hx_buf_appendf(hx_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int hx_buf_vappendf(hx_buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void hx_buf_free(hx_buf_t *b);

/* Packs env into b (replacing its contents). */
int hx_wire_pack(const Handoff__Envelope *env, hx_buf_t *b);
/* Appends one Envelope.messages entry to a packed envelope in b: the message's stored
 * bytes with `attempt` appended (protobuf keeps the last value of a repeated scalar). */
int hx_wire_append_message(hx_buf_t *b, const uint8_t *msg, size_t len, uint32_t attempt);

/* Packs a reply that carries only version, kind and correlation id (ACCEPTED, ACKED ...)
 * into b, byte for byte what hx_wire_pack makes of such an envelope, without building one:
 * it is the broker's most frequent frame. */
int hx_wire_pack_reply(hx_buf_t *b, Handoff__Kind kind, const uint8_t *corr, size_t corr_len);

/* Reading protobuf in place, one field at a time, where a full unpack would cost more than
 * the work (recovery's scan, the benchmark's reply reader). */
typedef struct {
    uint32_t num;               /* field number */
    uint32_t wire;              /* wire type: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit */
    uint64_t v;                 /* the varint (wire type 0) */
    const uint8_t *data;        /* wire type 2: the bytes, len of them */
    size_t len;
} hx_wire_field_t;
/* Reads the field at *p (before end) and moves *p past it; false when it is truncated or
 * of a wire type proto3 does not use (groups). */
bool hx_wire_next_field(const uint8_t **p, const uint8_t *end, hx_wire_field_t *f);

/* True when no string field of the Envelope in frame (name, error_text, admin_op, text,
 * and each message's type, origin and address names) holds a NUL character, which the
 * decoded C string would silently cut at; else false with the field named in why. */
bool hx_wire_strings_clean(const uint8_t *frame, size_t len, char *why, size_t cap);

/* The fields of a stored Message that recovery needs, read in place (recovery reads every
 * record of the log: a full unpack per record would cost more than the rest together).
 * Pointers are into the record. */
typedef struct {
    const uint8_t *id;
    size_t id_len;
    Handoff__AddressKind to_kind;
    const uint8_t *to_name;
    size_t to_name_len;
    uint64_t accepted_at_ms;
    const uint8_t *origin;      /* NULL when the record has none (written before it existed) */
    size_t origin_len;
    uint64_t priority;
} hx_msg_head_t;
/* 0, or -1 when the record is not a well-formed Message (truncated field, bad wire type). */
int hx_wire_scan_message(const uint8_t *msg, size_t len, hx_msg_head_t *out);

/* A bump allocator for unpacking one frame: protobuf-c makes about ten small allocations per
 * envelope; here they are pointer bumps in one reused block, all released at once by
 * hx_arena_reset (never call free_unpacked on what it unpacked). Requests beyond the block
 * get blocks of their own, freed by the reset. */
typedef struct hx_arena_extra hx_arena_extra_t;
typedef struct {
    ProtobufCAllocator pb;      /* pass &arena.pb to *_unpack */
    uint8_t *base;
    size_t used, cap;
    size_t spilled;             /* bytes that went to extra blocks since the last reset */
    hx_arena_extra_t *extra;
} hx_arena_t;
#define HX_ARENA_MAX (4u << 20)
int hx_arena_init(hx_arena_t *a, size_t cap);
void hx_arena_reset(hx_arena_t *a);
void hx_arena_free(hx_arena_t *a);

#endif
