/* hx_client — synchronous clinic client: request/reply with retries on fresh connections
 * (the "lazy pirate" pattern); the broker's dedup by id makes the retries exact. Each
 * connection's handshake is watched (zmq_socket_monitor): a refused key ends the retries at
 * once, as HX_EDENIED, instead of looking like a broker that does not answer. A replicated
 * broker is a list of nodes: a node that is not the leader answers ERR_NOT_LEADER naming the
 * leader, and the client moves there (docs/PROTOCOL.md, "A replicated broker"). */
#include "hx_client.h"
#include "hx_client_internal.h"
#include "hx_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

struct hx_client {
    void *zctx;
    void *sock;
    char endpoint[HX_ENDPOINTS_MAX * (HX_ENDPOINT_MAX + 1)];    /* as given: one, or the list */
    char nodes[HX_ENDPOINTS_MAX][HX_ENDPOINT_MAX + 1];          /* the list's endpoints */
    int n_nodes, node;          /* the node the session is (or is to be) with */
    bool pause;                 /* no leader was known: wait HX_NO_LEADER_PAUSE_MS before the next HELLO */
    char clinic[HX_NAME_MAX + 1];
    Handoff__Role role;
    int timeout_ms;
    int attempts;
    char curve_server[41], curve_public[41], curve_secret[41];
    Handoff__ErrorCode err_code;
    char err_text[256];
    hx_buf_t buf;
    void *mon;                  /* the handshake monitor of sock (NULL: none, a timeout tells) */
    unsigned mon_seq;           /* one inproc address per socket */
    int drops;                  /* handshakes closed without a reason, in a row */
    bool denied;                /* sock's handshake was refused (the reason in err_text) */
};

typedef struct {
    Handoff__Envelope *env;
} batch_priv_t;

static void msg_from_wire(hx_msg_t *o, const Handoff__Message *m);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* While a replicated broker elects a leader, its nodes answer ERR_NOT_LEADER with no leader:
 * the next node is tried after this pause, not at once (a busy loop of connections). */
#define HX_NO_LEADER_PAUSE_MS 100

/* What open_session's HELLO got from a node that is not the leader (not an HX_E* code). */
enum { NOT_LEADER = 1 };

static void set_error(hx_client_t *c, Handoff__ErrorCode code, const char *text)
{
    c->err_code = code;
    snprintf(c->err_text, sizeof c->err_text, "%s", text ? text : "");
}

static int send_env(hx_client_t *c, const Handoff__Envelope *env)
{
    if (hx_wire_pack(env, &c->buf))
        return HX_ENOMEM;
    if (zmq_send(c->sock, c->buf.data, c->buf.len, 0) < 0)
        return HX_EIO;
    return 0;
}

void *hx_handshake_monitor(void *zctx, void *sock, unsigned seq)
{
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://hx-handshake-%u", seq);
    if (zmq_socket_monitor(sock, addr,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
        return NULL;
    void *mon = zmq_socket(zctx, ZMQ_PAIR);
    int zero = 0;
    if (mon && zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero) == 0 && zmq_connect(mon, addr) == 0)
        return mon;                             /* connected before sock connects: no event is lost */
    if (mon)
        zmq_close(mon);
    zmq_socket_monitor(sock, NULL, 0);
    return NULL;
}

hx_handshake_t hx_handshake_event(const zmq_msg_t *parts, size_t n, const char *curve_public, char *why,
                                  size_t cap)
{
    if (n != 2 || zmq_msg_size((zmq_msg_t *)&parts[0]) != 6)
        return HX_HANDSHAKE_OTHER;
    const uint8_t *d = zmq_msg_data((zmq_msg_t *)&parts[0]);
    uint16_t event;
    uint32_t value;
    memcpy(&event, d, sizeof event);            /* libzmq's layout: event, then value, native order */
    memcpy(&value, d + 2, sizeof value);
    bool curve = curve_public && curve_public[0];
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        return HX_HANDSHAKE_OK;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        snprintf(why, cap, "%s",
                 curve ? "the broker closed the connection during the CURVE handshake: is the broker's public key "
                         "(--server-key) the right one?"
                       : "the broker closed the connection during the handshake: it probably requires CURVE "
                         "(--server-key and --key)");
        return HX_HANDSHAKE_DROPPED;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:       /* the broker's ZAP handler said no (RFC 27 status) */
        if (value == 400 && curve)
            snprintf(why, cap, "the broker refused this key (not in its allow-list): public key %s", curve_public);
        else
            snprintf(why, cap, "the broker refused the connection (ZAP status %u)", value);
        return HX_HANDSHAKE_REFUSED;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            snprintf(why, cap, "%s",
                     curve ? "the broker does not use CURVE, and this client does (--server-key, --key)"
                           : "the broker requires CURVE: this client has no keys (--server-key and --key)");
        else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
            snprintf(why, cap, "the CURVE handshake failed (a box did not open): is the broker's public key "
                               "(--server-key) the right one?");
        else
            snprintf(why, cap, "the handshake with the broker failed (ZMTP protocol error 0x%08x)", value);
        return HX_HANDSHAKE_REFUSED;
    default:
        return HX_HANDSHAKE_OTHER;
    }
}

/* Reads the handshake events waiting on c->mon; sets c->denied (and the error) when the
 * handshake was refused. */
static void read_handshakes(hx_client_t *c)
{
    while (!c->denied) {
        zmq_msg_t parts[2];
        size_t n = 0;
        bool more = true;
        while (more && n < 2) {
            zmq_msg_init(&parts[n]);
            if (zmq_msg_recv(&parts[n], c->mon, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&parts[n]);
                break;
            }
            more = zmq_msg_more(&parts[n++]);
        }
        if (n == 0)
            return;
        char why[200];
        hx_handshake_t h = hx_handshake_event(parts, n, c->curve_public, why, sizeof why);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&parts[i]);
        if (h == HX_HANDSHAKE_OK) {
            c->drops = 0;
        } else if (h == HX_HANDSHAKE_REFUSED) {
            c->denied = true;
            set_error(c, HANDOFF__ERROR_CODE__ERR_NONE, why);
        } else if (h == HX_HANDSHAKE_DROPPED && ++c->drops >= HX_HANDSHAKE_DROPS_REFUSED) {
            c->denied = true;
            char text[256];
            snprintf(text, sizeof text, "%s (%d times in a row)", why, c->drops);
            set_error(c, HANDOFF__ERROR_CODE__ERR_NONE, text);
        }
    }
}

/* Receives one envelope (heartbeats skipped) before deadline; NULL on timeout, garbage or a
 * refused handshake (c->denied). */
static Handoff__Envelope *recv_env(hx_client_t *c, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0 || c->denied)
            return NULL;
        zmq_pollitem_t items[2] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, c->mon ? 2 : 1, (long)left);
        if (rc < 0 && errno == EINTR)
            return NULL;
        if (rc <= 0)
            continue;
        if (c->mon && (items[1].revents & ZMQ_POLLIN))
            read_handshakes(c);
        if (!(items[0].revents & ZMQ_POLLIN))
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        bool more = zmq_msg_more(&m);
        Handoff__Envelope *env = more ? NULL : handoff__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        while (more) {                              /* not our protocol: discard the rest */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, c->sock, 0) < 0)
                more = false;
            else
                more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (!env)
            continue;
        if (env->kind == HANDOFF__KIND__KIND_HEARTBEAT) {
            handoff__envelope__free_unpacked(env, NULL);
            continue;
        }
        return env;
    }
}

static bool is_reply_to(const Handoff__Envelope *env, const uint8_t *id)
{
    return env->correlation_id.len == HX_ID_LEN && memcmp(env->correlation_id.data, id, HX_ID_LEN) == 0;
}

static void close_socket(hx_client_t *c)
{
    if (c->sock)
        zmq_close(c->sock);
    if (c->mon)
        zmq_close(c->mon);
    c->sock = c->mon = NULL;
}

/* The next session goes to the list's next node (a replicated broker whose node did not
 * answer); a single endpoint stays. */
static void next_node(hx_client_t *c, const char *why)
{
    if (c->n_nodes < 2)
        return;
    int from = c->node;
    c->node = (c->node + 1) % c->n_nodes;
    hx_info("broker node %s %s; trying %s", c->nodes[from], why, c->nodes[c->node]);
}

/* A node answered ERR_NOT_LEADER (env): the next session goes to the leader it names when that
 * is one of the list's nodes (a node cannot send the client anywhere else), else to the next
 * node; with no leader known yet (an election), after a pause. */
static void follow_leader(hx_client_t *c, const Handoff__Envelope *env)
{
    const char *leader = env->leader ? env->leader : "";
    c->err_code = HANDOFF__ERROR_CODE__ERR_NOT_LEADER;
    snprintf(c->err_text, sizeof c->err_text, "%.100s is not the leader (%s%.100s)", c->nodes[c->node],
             leader[0] ? "it names " : "no leader is known yet", leader);
    c->pause = !leader[0];
    c->node = hx_endpoints_next((const char (*)[HX_ENDPOINT_MAX + 1])c->nodes, c->n_nodes, c->node, leader, "client");
}

/* Connects to the current node and says HELLO, waiting until *deadline (set after the HELLO
 * is sent when 0): 0, NOT_LEADER (c->node moved), or as open_session. */
static int hello(hx_client_t *c, int64_t *deadline)
{
    close_socket(c);
    c->denied = false;
    c->drops = 0;
    c->sock = zmq_socket(c->zctx, ZMQ_DEALER);
    if (!c->sock)
        return HX_EIO;
    int zero = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &c->timeout_ms, sizeof c->timeout_ms);
    if (c->curve_server[0]) {
        zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, c->curve_server, 40);
        zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, c->curve_public, 40);
        zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, c->curve_secret, 40);
    }
    c->mon = hx_handshake_monitor(c->zctx, c->sock, c->mon_seq++);
    if (zmq_connect(c->sock, c->nodes[c->node]) != 0) {
        set_error(c, HANDOFF__ERROR_CODE__ERR_NONE, zmq_strerror(errno));
        return HX_EINVAL;
    }
    uint8_t id[HX_ID_LEN];
    hx_id_random(id);
    Handoff__Envelope hello;
    handoff__envelope__init(&hello);
    hello.version = HX_PROTOCOL_VERSION;
    hello.kind = HANDOFF__KIND__KIND_HELLO;
    hello.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    hello.role = c->role;
    hello.name = c->clinic;
    int rc = send_env(c, &hello);
    if (rc)
        return rc;
    if (!*deadline)
        *deadline = now_ms() + c->timeout_ms;
    Handoff__Envelope *env;
    while ((env = recv_env(c, *deadline))) {
        if (is_reply_to(env, id)) {
            rc = 0;
            if (env->kind == HANDOFF__KIND__KIND_ERROR && env->error_code == HANDOFF__ERROR_CODE__ERR_NOT_LEADER) {
                follow_leader(c, env);
                rc = NOT_LEADER;
            } else if (env->kind != HANDOFF__KIND__KIND_WELCOME) {
                set_error(c, env->error_code, env->error_text);
                rc = env->error_code == HANDOFF__ERROR_CODE__ERR_FORBIDDEN ? HX_EDENIED : HX_EREFUSED;
            }
            handoff__envelope__free_unpacked(env, NULL);
            return rc;
        }
        handoff__envelope__free_unpacked(env, NULL);
    }
    if (c->denied)
        return HX_EDENIED;
    set_error(c, HANDOFF__ERROR_CODE__ERR_NONE, "no answer from the broker");
    next_node(c, "did not answer");
    return HX_ETIMEDOUT;
}

/* Opens a new connection and session: 0, HX_ETIMEDOUT, HX_EDENIED (the handshake was refused,
 * or the key may not open this session), HX_EREFUSED (another refusal of the HELLO), HX_EINVAL
 * (the endpoint), HX_EIO. Nodes of a replicated broker that are not the leader send it on to
 * the leader (or, during an election, to the next node after a pause) within the one attempt's
 * timeout; a node that does not answer sends the next attempt to the next node. */
static int open_session(hx_client_t *c)
{
    int64_t deadline = 0;
    for (int hops = 0;; hops++) {
        if (c->pause) {                         /* no busy loop while the nodes elect a leader */
            int64_t ms = deadline ? deadline - now_ms() : HX_NO_LEADER_PAUSE_MS;
            ms = ms < 0 ? 0 : ms > HX_NO_LEADER_PAUSE_MS ? HX_NO_LEADER_PAUSE_MS : ms;
            struct timespec ts = {0, (long)ms * 1000000L};
            nanosleep(&ts, NULL);
            c->pause = false;
        }
        if (deadline && now_ms() >= deadline)
            return HX_ETIMEDOUT;                /* the error says which node was not the leader */
        int rc = hello(c, &deadline);
        if (rc != NOT_LEADER)
            return rc;
        if (hops + 1 >= c->n_nodes)             /* round the nodes without finding the leader: slow down */
            c->pause = true;
    }
}

hx_client_t *hx_client_connect(const hx_client_opts_t *o, char *err, size_t errcap)
{
    hx_client_t *c = NULL;
    hx_client_open(o, &c, err, errcap);
    return c;
}

int hx_client_open(const hx_client_opts_t *o, hx_client_t **out, char *err, size_t errcap)
{
    *out = NULL;
    if (!o || !o->endpoint || !hx_name_valid(o->clinic)) {
        snprintf(err, errcap, "clinic id: must be 1 to %d characters of [A-Za-z0-9._-]", HX_NAME_MAX);
        return HX_EINVAL;
    }
    hx_client_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errcap, "out of memory");
        return HX_ENOMEM;
    }
    /* A list is checked here, naming the bad element; one endpoint is left to libzmq, as it
     * always was. */
    char why[512];
    bool list = strchr(o->endpoint, ',') != NULL;
    c->n_nodes = list ? hx_endpoints_split(o->endpoint, c->nodes, why, sizeof why) : 1;
    if (c->n_nodes < 0) {
        snprintf(err, errcap, "broker endpoints: %s", why);
        free(c);
        return HX_EINVAL;
    }
    if (!list)
        snprintf(c->nodes[0], sizeof c->nodes[0], "%s", o->endpoint);
    snprintf(c->endpoint, sizeof c->endpoint, "%s", o->endpoint);
    snprintf(c->clinic, sizeof c->clinic, "%s", o->clinic);
    c->role = o->role == HX_ROLE_ADMIN      ? HANDOFF__ROLE__ROLE_ADMIN
              : o->role == HX_ROLE_REVIEWER ? HANDOFF__ROLE__ROLE_REVIEWER
                                            : HANDOFF__ROLE__ROLE_CLINIC;
    if (o->curve_server_key) {
        if (strlen(o->curve_server_key) != 40 || !o->curve_public || strlen(o->curve_public) != 40 ||
            !o->curve_secret || strlen(o->curve_secret) != 40) {
            snprintf(err, errcap, "CURVE needs the broker's public key and this clinic's key pair (40 Z85 "
                                  "characters each)");
            free(c);
            return HX_EINVAL;
        }
        memcpy(c->curve_server, o->curve_server_key, 41);
        memcpy(c->curve_public, o->curve_public, 41);
        memcpy(c->curve_secret, o->curve_secret, 41);
    }
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 3000;
    c->attempts = o->attempts > 0 ? o->attempts : 3;
    c->zctx = zmq_ctx_new();
    int rc = c->zctx ? HX_ETIMEDOUT : HX_EIO;
    for (int a = 0; a < c->attempts && rc == HX_ETIMEDOUT; a++)
        rc = open_session(c);
    if (rc) {
        if (rc == HX_ETIMEDOUT && c->err_code == HANDOFF__ERROR_CODE__ERR_NOT_LEADER)
            snprintf(err, errcap, "broker at %s: no leader found (%d attempts of %d ms): %s", c->endpoint,
                     c->attempts, c->timeout_ms, c->err_text);
        else if (rc == HX_ETIMEDOUT)
            snprintf(err, errcap, "broker at %s did not answer (%d attempts of %d ms)", c->endpoint, c->attempts,
                     c->timeout_ms);
        else if (rc == HX_EINVAL)
            snprintf(err, errcap, "broker endpoint '%s': %s", c->nodes[c->node], c->err_text);
        else if (rc == HX_EDENIED && c->err_code == HANDOFF__ERROR_CODE__ERR_NONE)    /* at the handshake */
            snprintf(err, errcap, "broker at %s: %s", c->nodes[c->node], c->err_text);
        else if (rc == HX_EIO)
            snprintf(err, errcap, "cannot make a socket: %s", zmq_strerror(errno));
        else
            snprintf(err, errcap, "broker refused the session: %s", c->err_text);
        close_socket(c);                        /* no BYE: there is no session */
        hx_client_destroy(&c);
        return rc;
    }
    *out = c;
    return 0;
}

void hx_client_destroy(hx_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_client_t *c = *self_p;
    if (c->sock) {
        Handoff__Envelope bye;
        handoff__envelope__init(&bye);
        bye.version = HX_PROTOCOL_VERSION;
        bye.kind = HANDOFF__KIND__KIND_BYE;
        int linger = 500, dontwait = 0;
        zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &dontwait, sizeof dontwait);
        send_env(c, &bye);
        zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    close_socket(c);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    hx_buf_free(&c->buf);
    free(c);
    *self_p = NULL;
}

/* Sends env (whose id is set) and waits for its reply, retrying on a fresh session after a
 * timeout or a lost session. *reply is the ACCEPTED/DELIVER envelope to free. */
static int request(hx_client_t *c, const Handoff__Envelope *env, Handoff__Envelope **reply)
{
    set_error(c, HANDOFF__ERROR_CODE__ERR_NONE, "");
    for (int a = 0; a < c->attempts; a++) {
        int orc = a > 0 ? open_session(c) : 0;
        if (orc == HX_EREFUSED || orc == HX_EDENIED)
            return orc;
        if (orc == HX_ETIMEDOUT && c->n_nodes > 1)
            continue;                               /* the next attempt is with the next node */
        if (send_env(c, env))
            continue;
        int64_t deadline = now_ms() + c->timeout_ms;
        Handoff__Envelope *r;
        while ((r = recv_env(c, deadline))) {
            if (r->kind == HANDOFF__KIND__KIND_BYE) {      /* the broker is going away */
                handoff__envelope__free_unpacked(r, NULL);
                break;
            }
            if (!is_reply_to(r, env->id.data)) {
                handoff__envelope__free_unpacked(r, NULL);
                continue;
            }
            if (r->kind == HANDOFF__KIND__KIND_ERROR && r->error_code == HANDOFF__ERROR_CODE__ERR_NOT_LEADER) {
                follow_leader(c, r);                        /* a session with the leader, then again */
                handoff__envelope__free_unpacked(r, NULL);
                break;
            }
            if (r->kind == HANDOFF__KIND__KIND_ERROR) {
                set_error(c, r->error_code, r->error_text);
                handoff__envelope__free_unpacked(r, NULL);
                if (c->err_code == HANDOFF__ERROR_CODE__ERR_NOT_READY)
                    break;                                  /* a new session, then again */
                return HX_EREFUSED;
            }
            *reply = r;
            return 0;
        }
        if (c->denied)                              /* a reconnection's handshake was refused */
            return HX_EDENIED;
        if (now_ms() >= deadline)                   /* no answer: a list's next node, then again */
            next_node(c, "did not answer");
    }
    if (!c->err_text[0])
        set_error(c, HANDOFF__ERROR_CODE__ERR_NONE, "no answer from the broker");
    return HX_ETIMEDOUT;
}

static void fill_message(Handoff__Message *m, Handoff__Address *to, const hx_msg_t *in)
{
    handoff__message__init(m);
    handoff__address__init(to);
    to->kind = in->to_kind == HX_TO_SERVICE ? HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE
                                            : HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    to->name = (char *)(in->to ? in->to : "");
    m->id = (ProtobufCBinaryData){HX_ID_LEN, (uint8_t *)in->id};
    m->to = to;
    m->type = (char *)(in->type ? in->type : "");
    m->payload = (ProtobufCBinaryData){in->payload_len, (uint8_t *)in->payload};
    if (in->correlation_id)
        m->correlation_id = (ProtobufCBinaryData){HX_ID_LEN, (uint8_t *)in->correlation_id};
    m->priority = (Handoff__DeliveryPriority)in->priority;
}

int hx_client_submit(hx_client_t *c, const hx_msg_t *msgs, size_t n)
{
    if (n == 0 || n > HX_MAX_BATCH)
        return HX_EINVAL;
    Handoff__Message *m = calloc(n, sizeof *m);
    Handoff__Message **mp = calloc(n, sizeof *mp);
    Handoff__Address *to = calloc(n, sizeof *to);
    int rc = HX_ENOMEM;
    if (m && mp && to) {
        for (size_t i = 0; i < n; i++) {
            fill_message(&m[i], &to[i], &msgs[i]);
            mp[i] = &m[i];
        }
        uint8_t id[HX_ID_LEN];
        memcpy(id, msgs[0].id, HX_ID_LEN);          /* a stable request id: retries are the same request */
        Handoff__Envelope env;
        handoff__envelope__init(&env);
        env.version = HX_PROTOCOL_VERSION;
        env.kind = HANDOFF__KIND__KIND_SUBMIT;
        env.id = (ProtobufCBinaryData){HX_ID_LEN, id};
        env.n_messages = n;
        env.messages = mp;
        Handoff__Envelope *reply = NULL;
        rc = request(c, &env, &reply);
        if (reply)
            handoff__envelope__free_unpacked(reply, NULL);
    }
    free(m);
    free(mp);
    free(to);
    return rc;
}

static int send_one(hx_client_t *c, const hx_msg_t *msg)
{
    Handoff__Message m, *mp = &m;
    Handoff__Address to;
    fill_message(&m, &to, msg);
    Handoff__Envelope env;
    handoff__envelope__init(&env);
    env.version = HX_PROTOCOL_VERSION;
    env.kind = HANDOFF__KIND__KIND_SUBMIT;
    env.id = (ProtobufCBinaryData){HX_ID_LEN, (uint8_t *)msg->id};
    env.n_messages = 1;
    env.messages = &mp;
    return send_env(c, &env);
}

/* ERR_BUSY (a queue or this clinic's share is full) is waited out: the refused message is sent
 * again, same id, after a pause that doubles from 50 ms to 2 s; after HX_BUSY_GIVE_UP_MS
 * without one message accepted, the refusal is returned. */
#define HX_BUSY_GIVE_UP_MS 120000

/* Where each message of a submit_many is. */
enum { SUB_UNSENT, SUB_OUTSTANDING, SUB_ACCEPTED, SUB_BUSY /* refused busy: to send again at busy_at */ };

/* A submit_many under way: its messages' states and the window's counters. */
typedef struct {
    const hx_msg_t *msgs;
    size_t n, window;
    uint8_t *state;             /* SUB_* per message */
    size_t next, oldest;        /* the first never sent; the first not accepted */
    size_t outstanding, done, busy;
    int retries;                /* fresh sessions in a row without an answer */
    int64_t busy_at, busy_pause, progress_at;
} submit_run_t;

/* The pause is over: the messages refused as busy are sent again. */
static int run_resend_busy(hx_client_t *c, submit_run_t *u)
{
    int rc;
    for (size_t i = u->oldest; i < u->next && u->busy; i++)
        if (u->state[i] == SUB_BUSY) {
            if ((rc = send_one(c, &u->msgs[i])))
                return rc;
            u->state[i] = SUB_OUTSTANDING;
            u->busy--;
            u->outstanding++;
        }
    return 0;
}

/* New messages sent until the window is full; none while the broker is busy. */
static int run_fill(hx_client_t *c, submit_run_t *u)
{
    int rc;
    while (!u->busy && u->outstanding < u->window && u->next < u->n) {
        if ((rc = send_one(c, &u->msgs[u->next])))
            return rc;
        u->state[u->next++] = SUB_OUTSTANDING;
        u->outstanding++;
    }
    return 0;
}

/* No answer, a BYE, "not ready" or "not the leader": a fresh session (with the next node of a
 * list that did not answer), and everything outstanding sent again with the same ids;
 * HX_ETIMEDOUT once that was tried c->attempts times in a row. */
static int run_reconnect(hx_client_t *c, submit_run_t *u)
{
    int rc;
    if (++u->retries >= c->attempts)
        return HX_ETIMEDOUT;
    while ((rc = open_session(c)) == HX_ETIMEDOUT && c->n_nodes > 1 && ++u->retries < c->attempts)
        ;                                       /* open_session moved on to the next node */
    if (rc)
        return rc;
    for (size_t i = u->oldest; i < u->next; i++)
        if (u->state[i] == SUB_OUTSTANDING && (rc = send_one(c, &u->msgs[i])))
            return rc;
    return 0;
}

/* The outstanding message r answers, or u->next when none. */
static size_t run_find(const submit_run_t *u, const Handoff__Envelope *r)
{
    size_t i = u->oldest;
    for (; i < u->next; i++)
        if (u->state[i] == SUB_OUTSTANDING && is_reply_to(r, u->msgs[i].id))
            break;
    return i;
}

/* Message i's answer r: busy (sent again after the pause), refused (HX_EREFUSED, *failed = i)
 * or accepted; anything else is ignored. */
static int run_answer(hx_client_t *c, submit_run_t *u, size_t i, const Handoff__Envelope *r, size_t *failed)
{
    if (r->kind == HANDOFF__KIND__KIND_ERROR && r->error_code == HANDOFF__ERROR_CODE__ERR_BUSY &&
        now_ms() - u->progress_at < HX_BUSY_GIVE_UP_MS) {
        set_error(c, r->error_code, r->error_text);
        u->state[i] = SUB_BUSY;
        u->outstanding--;
        if (!u->busy++) {
            u->busy_pause = u->busy_pause ? (u->busy_pause * 2 > 2000 ? 2000 : u->busy_pause * 2) : 50;
            u->busy_at = now_ms() + u->busy_pause;
        }
    } else if (r->kind == HANDOFF__KIND__KIND_ERROR) {
        set_error(c, r->error_code, r->error_text);
        if (failed)
            *failed = i;
        return HX_EREFUSED;
    } else if (r->kind == HANDOFF__KIND__KIND_ACCEPTED) {
        u->state[i] = SUB_ACCEPTED;
        u->outstanding--;
        u->done++;
        u->retries = 0;
        u->progress_at = now_ms();
        if (!u->busy)
            u->busy_pause = 0;
        while (u->oldest < u->next && u->state[u->oldest] == SUB_ACCEPTED)
            u->oldest++;
    }
    return 0;
}

int hx_client_submit_many(hx_client_t *c, const hx_msg_t *msgs, size_t n, size_t window, size_t *failed)
{
    if (window == 0)
        window = 1;
    submit_run_t u = {.msgs = msgs, .n = n, .window = window};
    u.state = calloc(n ? n : 1, 1);
    if (!u.state)
        return HX_ENOMEM;
    int rc = 0;
    u.progress_at = now_ms();
    set_error(c, HANDOFF__ERROR_CODE__ERR_NONE, "");
    while (u.done < n) {
        if (u.busy && now_ms() >= u.busy_at && (rc = run_resend_busy(c, &u)))
            goto out;
        if ((rc = run_fill(c, &u)))
            goto out;
        int64_t deadline = now_ms() + c->timeout_ms;
        if (u.busy && (u.outstanding == 0 || u.busy_at < deadline))
            deadline = u.busy_at;
        Handoff__Envelope *r = recv_env(c, deadline);
        if (!r && c->denied) {
            rc = HX_EDENIED;
            goto out;
        }
        if (!r && u.busy && now_ms() >= u.busy_at)
            continue;                               /* only the pause ended */
        if (!r)
            next_node(c, "did not answer");
        else if (r->kind == HANDOFF__KIND__KIND_ERROR && r->error_code == HANDOFF__ERROR_CODE__ERR_NOT_LEADER)
            follow_leader(c, r);
        if (!r || r->kind == HANDOFF__KIND__KIND_BYE ||
            (r->kind == HANDOFF__KIND__KIND_ERROR && (r->error_code == HANDOFF__ERROR_CODE__ERR_NOT_READY ||
                                                      r->error_code == HANDOFF__ERROR_CODE__ERR_NOT_LEADER))) {
            if (r)
                handoff__envelope__free_unpacked(r, NULL);
            if ((rc = run_reconnect(c, &u)))
                goto out;
            continue;
        }
        size_t i = run_find(&u, r);
        if (i < u.next)
            rc = run_answer(c, &u, i, r, failed);
        handoff__envelope__free_unpacked(r, NULL);
        if (rc)
            goto out;
    }
    set_error(c, HANDOFF__ERROR_CODE__ERR_NONE, "");
out:
    free(u.state);
    return rc;
}

void hx_batch_destroy(hx_batch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_batch_t *b = *self_p;
    batch_priv_t *p = b->priv;
    if (p && p->env)
        handoff__envelope__free_unpacked(p->env, NULL);
    free(p);
    free(b->msgs);
    free(b);
    *self_p = NULL;
}

hx_batch_t *hx_batch_from_envelope(Handoff__Envelope *env)
{
    hx_batch_t *b = calloc(1, sizeof *b);
    batch_priv_t *p = calloc(1, sizeof *p);
    hx_msg_t *msgs = env->n_messages ? calloc(env->n_messages, sizeof *msgs) : NULL;
    if (!b || !p || (env->n_messages && !msgs)) {
        free(b);
        free(p);
        free(msgs);
        handoff__envelope__free_unpacked(env, NULL);
        return NULL;
    }
    p->env = env;
    b->priv = p;
    b->msgs = msgs;
    for (size_t i = 0; i < env->n_messages; i++) {
        const Handoff__Message *m = env->messages[i];
        if (m->id.len != HX_ID_LEN)
            continue;                               /* the broker never sends these */
        msg_from_wire(&msgs[b->count++], m);
    }
    return b;
}

int hx_client_fetch(hx_client_t *c, uint32_t max, hx_batch_t **out)
{
    *out = NULL;
    if (max == 0 || max > HX_MAX_BATCH)
        return HX_EINVAL;
    uint8_t id[HX_ID_LEN];
    hx_id_random(id);
    Handoff__Envelope env;
    handoff__envelope__init(&env);
    env.version = HX_PROTOCOL_VERSION;
    env.kind = HANDOFF__KIND__KIND_FETCH;
    env.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    env.max = max;
    Handoff__Envelope *reply = NULL;
    int rc = request(c, &env, &reply);
    if (rc)
        return rc;
    *out = hx_batch_from_envelope(reply);
    return *out ? 0 : HX_ENOMEM;
}

int hx_client_ack(hx_client_t *c, const uint8_t (*ids)[HX_ID_LEN], size_t n)
{
    if (n == 0)
        return 0;
    if (n > HX_MAX_BATCH)
        return HX_EINVAL;
    ProtobufCBinaryData *acks = calloc(n, sizeof *acks);
    if (!acks)
        return HX_ENOMEM;
    for (size_t i = 0; i < n; i++)
        acks[i] = (ProtobufCBinaryData){HX_ID_LEN, (uint8_t *)ids[i]};
    uint8_t id[HX_ID_LEN];
    hx_id_random(id);
    Handoff__Envelope env;
    handoff__envelope__init(&env);
    env.version = HX_PROTOCOL_VERSION;
    env.kind = HANDOFF__KIND__KIND_ACK;
    env.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    env.n_acks = n;
    env.acks = acks;
    Handoff__Envelope *reply = NULL;
    int rc = request(c, &env, &reply);
    if (reply)
        handoff__envelope__free_unpacked(reply, NULL);
    free(acks);
    return rc;
}

Handoff__ErrorCode hx_client_error_code(const hx_client_t *c)
{
    return c->err_code;
}

const char *hx_client_error(const hx_client_t *c)
{
    return c->err_text;
}

const char *hx_client_endpoint(const hx_client_t *c)
{
    return c->nodes[c->node];
}

static void msg_from_wire(hx_msg_t *o, const Handoff__Message *m)
{
    memcpy(o->id, m->id.data, HX_ID_LEN);
    o->to_kind = m->to && m->to->kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? HX_TO_SERVICE : HX_TO_MAILBOX;
    o->to = m->to ? m->to->name : "";
    o->from_kind = m->from && m->from->kind == HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE ? HX_TO_SERVICE : HX_TO_MAILBOX;
    o->from = m->from ? m->from->name : "";
    o->type = m->type;
    o->payload = m->payload.data;
    o->payload_len = m->payload.len;
    o->correlation_id = m->correlation_id.len == HX_ID_LEN ? m->correlation_id.data : NULL;
    o->attempt = m->attempt;
    o->accepted_at_ms = m->accepted_at_ms;
    o->priority = (uint32_t)m->priority;
    o->origin = m->origin;
}

/* Sends an ADMIN request for op (with at most one id) and returns its reply. */
static int admin_with(hx_client_t *c, const char *op, const uint8_t *id, const char *text,
                      Handoff__Envelope **reply);

static int admin(hx_client_t *c, const char *op, const uint8_t *id, Handoff__Envelope **reply)
{
    return admin_with(c, op, id, NULL, reply);
}

int hx_client_admin_text(hx_client_t *c, const char *op, const char *text, char **text_out)
{
    if (!op || !text_out)
        return HX_EINVAL;
    *text_out = NULL;
    Handoff__Envelope *reply = NULL;
    int rc = admin_with(c, op, NULL, text, &reply);
    if (rc)
        return rc;
    *text_out = strdup(reply->text ? reply->text : "");
    handoff__envelope__free_unpacked(reply, NULL);
    return *text_out ? 0 : HX_ENOMEM;
}

static int admin_with(hx_client_t *c, const char *op, const uint8_t *id, const char *text,
                      Handoff__Envelope **reply)
{
    uint8_t req[HX_ID_LEN];
    hx_id_random(req);
    ProtobufCBinaryData target = {HX_ID_LEN, (uint8_t *)id};
    Handoff__Envelope env;
    handoff__envelope__init(&env);
    env.version = HX_PROTOCOL_VERSION;
    env.kind = HANDOFF__KIND__KIND_ADMIN;
    env.id = (ProtobufCBinaryData){HX_ID_LEN, req};
    env.admin_op = (char *)op;
    if (text)
        env.text = (char *)text;
    if (id) {
        env.n_acks = 1;
        env.acks = &target;
    }
    return request(c, &env, reply);
}

static int dead_list(hx_client_t *c, const char *op, const uint8_t *id, hx_dead_list_t **out)
{
    *out = NULL;
    Handoff__Envelope *reply = NULL;
    int rc = admin(c, op, id, &reply);
    if (rc)
        return rc;
    hx_dead_list_t *l = calloc(1, sizeof *l);
    hx_dead_t *items = reply->n_dead ? calloc(reply->n_dead, sizeof *items) : NULL;
    if (!l || (reply->n_dead && !items)) {
        free(l);
        free(items);
        handoff__envelope__free_unpacked(reply, NULL);
        return HX_ENOMEM;
    }
    l->priv = reply;
    l->items = items;
    for (size_t i = 0; i < reply->n_dead; i++) {
        const Handoff__DeadLetter *d = reply->dead[i];
        if (!d->message || d->message->id.len != HX_ID_LEN)
            continue;
        hx_dead_t *o = &items[l->count++];
        msg_from_wire(&o->msg, d->message);
        o->reason = d->reason;
        o->attempts = d->attempts;
        o->dead_at_ms = d->dead_at_ms;
    }
    *out = l;
    return 0;
}

void hx_dead_list_destroy(hx_dead_list_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_dead_list_t *l = *self_p;
    if (l->priv)
        handoff__envelope__free_unpacked(l->priv, NULL);
    free(l->items);
    free(l);
    *self_p = NULL;
}

int hx_client_dlq_list(hx_client_t *c, hx_dead_list_t **out)
{
    return dead_list(c, "dlq.list", NULL, out);
}

int hx_client_dlq_show(hx_client_t *c, const uint8_t id[HX_ID_LEN], hx_dead_list_t **out)
{
    return dead_list(c, "dlq.show", id, out);
}

static int admin_simple(hx_client_t *c, const char *op, const uint8_t *id)
{
    Handoff__Envelope *reply = NULL;
    int rc = admin(c, op, id, &reply);
    if (reply)
        handoff__envelope__free_unpacked(reply, NULL);
    return rc;
}

int hx_client_dlq_replay(hx_client_t *c, const uint8_t id[HX_ID_LEN])
{
    return admin_simple(c, "dlq.replay", id);
}

int hx_client_dlq_purge(hx_client_t *c, const uint8_t id[HX_ID_LEN])
{
    return admin_simple(c, "dlq.purge", id);
}

int hx_client_health(hx_client_t *c)
{
    return admin_simple(c, "health", NULL);
}

int hx_client_stats(hx_client_t *c, char **json_out)
{
    if (!json_out)
        return HX_EINVAL;
    *json_out = NULL;
    Handoff__Envelope *reply = NULL;
    int rc = admin(c, "stats", NULL, &reply);
    if (rc)
        return rc;
    char *copy = reply->text && reply->text[0] ? strdup(reply->text) : NULL;
    if (reply->text && reply->text[0] && !copy)
        rc = HX_ENOMEM;
    else if (!copy) {                           /* a broker without "stats" would have refused it */
        set_error(c, HANDOFF__ERROR_CODE__ERR_NONE, "the broker's reply carried no stats text");
        rc = HX_EINVAL;
    }
    handoff__envelope__free_unpacked(reply, NULL);
    *json_out = copy;
    return rc;
}
