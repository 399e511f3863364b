/* Integration: CURVE on the broker's endpoint with an allow-list. Keys are made by
 * `handoff keygen`; the broker runs its ZAP handler; every key may open only the session
 * of the principal the allow-list names. A refusal is checked by what the refused side gets
 * (the handshake's outcome on a raw, monitored connection; the reply codes; the CLI's exit
 * code and message) and by the sessions the broker counts, not by the absence of a log line. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "envelope.pb-c.h"
#include "harness.h"

static net_t net;
static char keys[400];
static void *zctx;
static void *socks[16];         /* closed by teardown, so a failed test cannot hang zmq_ctx_term */
static size_t nsocks;

/* The CLI's exit code when the broker refuses its key (docs/OPERATIONS.md, "Exit codes"). */
#define EXIT_DENIED 77
/* Per attempt, for the CLI: long enough that a refusal waited out as a timeout (3 attempts)
 * would show, and a loaded machine never makes an allowed key look refused. */
#define CLI_TIMEOUT_MS "20000"

static void keygen(const char *name)
{
    static char out[4096];
    const char *args[] = {"--dir", keys, "keygen", name, NULL};
    cr_assert_eq(net_cli(&net, "unused", out, sizeof out, args), 0, "keygen %s: %s", name, out);
}

static char *slurp_line(const char *path)
{
    static char line[8][64];
    static int k;
    char *l = line[k++ % 8];
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    cr_assert_not_null(fgets(l, sizeof line[0], f));
    fclose(f);
    l[strcspn(l, "\n")] = '\0';
    return l;
}

static const char *key_path(const char *name, const char *ext)
{
    static char p[8][512];
    static int k;
    char *out = p[k++ % 8];
    snprintf(out, sizeof p[0], "%s/%s.%s", keys, name, ext);
    return out;
}

static void setup(void)
{
    net_init(&net);
    net.endpoint[0] = '\0';
    snprintf(keys, sizeof keys, "%s/keys", net.dir);
    cr_assert_eq(mkdir(keys, 0700), 0);
    const char *names[] = {"broker", "northpoint", "lakeside", "intake", "stranger", "ops", "dr-osei"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        keygen(names[i]);
    char allow[512];
    snprintf(allow, sizeof allow, "%s/allow.txt", keys);
    FILE *f = fopen(allow, "w");
    cr_assert_not_null(f);
    fprintf(f, "# the network's keys\n%s clinic northpoint\n%s clinic lakeside\n%s service intake\n%s admin ops\n"
               "%s reviewer dr-osei\n",
            slurp_line(key_path("northpoint", "pub")), slurp_line(key_path("lakeside", "pub")),
            slurp_line(key_path("intake", "pub")), slurp_line(key_path("ops", "pub")),
            slurp_line(key_path("dr-osei", "pub")));
    fclose(f);
    zctx = zmq_ctx_new();
    static char audit[512];
    snprintf(audit, sizeof audit, "%s/audit.jsonl", net.dir);
    const char *extra[] = {"--curve-secret", key_path("broker", "key"), "--allow", allow, "--audit", audit, NULL};
    net_start_broker(&net, extra);
}

static void teardown(void)
{
    for (size_t i = 0; i < nsocks; i++)
        zmq_close(socks[i]);
    nsocks = 0;
    zmq_ctx_term(zctx);
    net_fini_verdict(net_stop_all(&net), net.dir);
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 120);

/* handoff as clinic with key `key` (NULL: no CURVE), taking `server`'s public key for the
 * broker's; returns the exit status. Its stderr goes to cli.log, emptied first. */
static int as_with(const char *clinic, const char *key, const char *server, const char *cmd, char *out, size_t cap)
{
    const char *args[16] = {"--timeout-ms", CLI_TIMEOUT_MS};
    size_t k = 2;
    if (key) {
        args[k++] = "--server-key";
        args[k++] = key_path(server, "pub");
        args[k++] = "--key";
        args[k++] = key_path(key, "key");
    }
    args[k++] = cmd;
    args[k] = NULL;
    char log[600];
    snprintf(log, sizeof log, "%s/cli.log", net.dir);
    unlink(log);
    return net_cli(&net, clinic, out, cap, args);
}

static int as(const char *clinic, const char *key, const char *cmd, char *out, size_t cap)
{
    return as_with(clinic, key, "broker", cmd, out, cap);
}

static bool log_has(const char *file, const char *needle)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", net.dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

Test(security, keygen_writes_the_secret_key_for_its_owner_only)
{
    struct stat st;
    cr_assert_eq(stat(key_path("northpoint", "key"), &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600);
    cr_expect_eq(strlen(slurp_line(key_path("northpoint", "pub"))), 40);
    static char out[4096];
    const char *again[] = {"--dir", keys, "keygen", "northpoint", NULL};
    cr_expect_eq(net_cli(&net, "unused", out, sizeof out, again), 1, "a key is never overwritten");
}

/* ---- a raw connection: its handshake's outcome (libzmq's monitor) and the broker's replies -- */

static void *track(void *s)
{
    cr_assert_not_null(s);
    cr_assert_lt(nsocks, sizeof socks / sizeof socks[0]);
    socks[nsocks++] = s;
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    return s;
}

typedef struct {
    void *s;                    /* the DEALER */
    void *mon;                  /* its handshake events */
} raw_t;

/* A DEALER to the broker with the key pair `key` (NULL: no CURVE) and `server`'s public key
 * as the broker's, its handshake monitored. */
static raw_t raw_connect(const char *key, const char *server)
{
    static unsigned seq;
    raw_t r = {track(zmq_socket(zctx, ZMQ_DEALER)), NULL};
    if (key) {
        char srv[41], pub[41], sec[41];
        snprintf(srv, sizeof srv, "%s", slurp_line(key_path(server, "pub")));
        snprintf(pub, sizeof pub, "%s", slurp_line(key_path(key, "pub")));
        snprintf(sec, sizeof sec, "%s", slurp_line(key_path(key, "key")));
        cr_assert_eq(zmq_setsockopt(r.s, ZMQ_CURVE_SERVERKEY, srv, 40), 0);
        cr_assert_eq(zmq_setsockopt(r.s, ZMQ_CURVE_PUBLICKEY, pub, 40), 0);
        cr_assert_eq(zmq_setsockopt(r.s, ZMQ_CURVE_SECRETKEY, sec, 40), 0);
    }
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://security-monitor-%u", seq++);
    cr_assert_eq(zmq_socket_monitor(r.s, addr,
                                    ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                        ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH),
                 0);
    r.mon = track(zmq_socket(zctx, ZMQ_PAIR));
    cr_assert_eq(zmq_connect(r.mon, addr), 0);
    cr_assert_eq(zmq_connect(r.s, net.endpoint), 0);
    return r;
}

/* The first handshake event of r (0 when none came within 20 s), its value in *value. */
static unsigned handshake_of(raw_t r, uint32_t *value)
{
    int timeout = 20000;
    zmq_setsockopt(r.mon, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    unsigned event = 0;
    if (zmq_msg_recv(&ev, r.mon, 0) == 6 && zmq_msg_more(&ev) && zmq_msg_recv(&addr, r.mon, 0) >= 0) {
        uint16_t e;
        memcpy(&e, zmq_msg_data(&ev), 2);
        memcpy(value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
        event = e;
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
    return event;
}

/* Sends a HELLO (role, name) or a FETCH (name NULL) and returns the reply's kind (0 when none
 * came within 20 s), its error code in *code. */
static Handoff__Kind request(raw_t r, Handoff__Role role, const char *name, Handoff__ErrorCode *code)
{
    static uint8_t id[16] = {0x5e};
    for (int i = 15; i > 0 && ++id[i] == 0; i--)
        ;
    Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
    e.version = 1;
    e.kind = name ? HANDOFF__KIND__KIND_HELLO : HANDOFF__KIND__KIND_FETCH;
    e.id = (ProtobufCBinaryData){sizeof id, id};
    e.role = role;
    e.name = (char *)name;
    e.max = name ? 0 : 10;
    uint8_t buf[512];
    size_t n = handoff__envelope__pack(&e, buf);
    cr_assert_eq(zmq_send(r.s, buf, n, 0), (int)n);
    int timeout = 20000;
    zmq_setsockopt(r.s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    *code = HANDOFF__ERROR_CODE__ERR_NONE;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, r.s, 0) < 0) {
            zmq_msg_close(&m);
            return 0;
        }
        Handoff__Envelope *a = handoff__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        if (a && a->correlation_id.len == 16 && memcmp(a->correlation_id.data, id, 16) == 0) {
            Handoff__Kind k = a->kind;
            *code = a->error_code;
            handoff__envelope__free_unpacked(a, NULL);
            return k;
        }
        if (a)
            handoff__envelope__free_unpacked(a, NULL);
    }
}

/* An admin session (the key "ops") for the broker's counters. */
static hx_client_t *admin_session(void)
{
    char srv[41], pub[41], sec[41], err[512];
    snprintf(srv, sizeof srv, "%s", slurp_line(key_path("broker", "pub")));
    snprintf(pub, sizeof pub, "%s", slurp_line(key_path("ops", "pub")));
    snprintf(sec, sizeof sec, "%s", slurp_line(key_path("ops", "key")));
    hx_client_opts_t o = {.endpoint = net.endpoint, .clinic = "ops", .role = HX_ROLE_ADMIN, .curve_server_key = srv,
                          .curve_public = pub, .curve_secret = sec, .timeout_ms = 20000};
    int rc;
    hx_client_t *c = NULL;
    cr_assert_eq(rc = hx_client_open(&o, &c, err, sizeof err), 0, "the admin key: %s (%s)", err, hx_strerror(rc));
    return c;
}

/* From the broker's stats: the sessions open by role ("clinic", "worker"), or with queue set,
 * the workers serving that queue (0 when it has none). */
static long broker_count(const char *role, const char *queue)
{
    hx_client_t *a = admin_session();
    char *text = NULL;
    cr_assert_eq(hx_client_stats(a, &text), 0, "%s", hx_client_error(a));
    hx_client_destroy(&a);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    cr_assert_not_null(j, "%s: %s", je.text, text);
    free(text);
    long n = 0;
    if (queue) {
        size_t i;
        json_t *q;
        json_array_foreach(json_object_get(j, "queues"), i, q)
            if (strcmp(json_string_value(json_object_get(q, "name")), queue) == 0)
                n = (long)json_integer_value(json_object_get(q, "workers"));
    } else {
        json_t *v = json_object_get(json_object_get(j, "peers"), role);
        cr_assert(json_is_integer(v), "no peers.%s in the stats", role);
        n = (long)json_integer_value(v);
    }
    json_decref(j);
    return n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(security, an_allowed_key_opens_its_own_session)
{
    static char out[65536];
    cr_assert_eq(as("northpoint", "northpoint", "inbox", out, sizeof out), 0, "%s", out);
    raw_t r = raw_connect("northpoint", "broker");
    uint32_t v;
    cr_assert_eq(handshake_of(r, &v), ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    Handoff__ErrorCode code;
    cr_assert_eq(request(r, HANDOFF__ROLE__ROLE_CLINIC, "northpoint", &code), HANDOFF__KIND__KIND_WELCOME);
    cr_expect_eq(broker_count("clinic", NULL), 1, "the broker counts the session");
}

/* The broker's ZAP handler says 400: the connection never carries a message, so the HELLO
 * queued on it is never answered and no session opens. */
Test(security, an_unknown_key_is_refused_before_any_message)
{
    raw_t r = raw_connect("stranger", "broker");
    Handoff__Envelope hello = HANDOFF__ENVELOPE__INIT;
    uint8_t id[16] = {0x42};
    hello.version = 1;
    hello.kind = HANDOFF__KIND__KIND_HELLO;
    hello.id = (ProtobufCBinaryData){16, id};
    hello.role = HANDOFF__ROLE__ROLE_CLINIC;
    hello.name = "northpoint";
    uint8_t buf[256];
    size_t n = handoff__envelope__pack(&hello, buf);
    cr_assert_eq(zmq_send(r.s, buf, n, 0), (int)n);     /* queued until the handshake is done */
    uint32_t status = 0;
    cr_assert_eq(handshake_of(r, &status), ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, "the handshake was not refused");
    cr_expect_eq(status, 400, "ZAP status %u", status);
    cr_expect_eq(zmq_recv(r.s, buf, sizeof buf, ZMQ_DONTWAIT), -1, "something came back on a refused connection");
    cr_expect_eq(broker_count("clinic", NULL), 0, "a clinic session is open");
    cr_expect(log_has("broker.log", "is not in the allow-list"), "the broker says why it refused");
}

/* The CLI learns of the refusal from the handshake, not by waiting out its attempts: it exits
 * 77 (not 3, "did not answer") within the first attempt and says the key was refused. */
Test(security, the_cli_with_an_unknown_key_exits_refused_within_its_first_attempt)
{
    static char out[65536];
    int64_t t0 = now_ms();
    int rc = as("northpoint", "stranger", "inbox", out, sizeof out);
    int64_t took = now_ms() - t0;
    cr_expect_eq(rc, EXIT_DENIED, "exit %d (3: the refusal was taken for silence)", rc);
    cr_expect_lt(took, atoi(CLI_TIMEOUT_MS), "%lld ms: the refusal waited for a timeout", (long long)took);
    cr_expect(log_has("cli.log", "the broker refused this key (not in its allow-list)"), "see %s/cli.log", net.dir);
    cr_expect(log_has("cli.log", slurp_line(key_path("stranger", "pub"))), "the message names the key");
}

Test(security, plain_tcp_gets_nothing)
{
    static char out[65536];
    cr_expect_eq(as("northpoint", NULL, "inbox", out, sizeof out), EXIT_DENIED);
    cr_expect(log_has("cli.log", "requires CURVE"), "see %s/cli.log", net.dir);
    /* both ends see the mechanisms differ; whichever closes first, the other may only see the
     * connection close */
    raw_t r = raw_connect(NULL, NULL);
    uint32_t why = 0;
    unsigned ev = handshake_of(r, &why);
    cr_expect(ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
                  (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL && why == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH),
              "a plain connection's handshake: event 0x%x, value 0x%x", ev, why);
    cr_expect_eq(broker_count("clinic", NULL), 0);
}

/* A key boxed for another server: the broker cannot open the client's HELLO and closes the
 * connection each time; the CLI takes three such closes as a refusal and says what to check. */
Test(security, a_wrong_broker_key_is_refused_not_unreachable)
{
    static char out[65536];
    cr_expect_eq(as_with("northpoint", "northpoint", "stranger", "inbox", out, sizeof out), EXIT_DENIED);
    cr_expect(log_has("cli.log", "closed the connection during the CURVE handshake"), "see %s/cli.log", net.dir);
}

Test(security, a_clinic_key_cannot_speak_for_another_clinic)
{
    static char out[65536];
    cr_expect_eq(as("lakeside", "northpoint", "inbox", out, sizeof out), EXIT_DENIED);
    cr_expect(log_has("cli.log", "it may not open a session as clinic lakeside"), "see %s/cli.log", net.dir);
    raw_t r = raw_connect("northpoint", "broker");
    Handoff__ErrorCode code;
    cr_expect_eq(request(r, HANDOFF__ROLE__ROLE_CLINIC, "lakeside", &code), HANDOFF__KIND__KIND_ERROR);
    cr_expect_eq(code, HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "HELLO as lakeside: code %d", (int)code);
    cr_expect_eq(request(r, 0, NULL, &code), HANDOFF__KIND__KIND_ERROR, "a FETCH after the refused HELLO");
    cr_expect_eq(code, HANDOFF__ERROR_CODE__ERR_NOT_READY, "no session: code %d", (int)code);
    cr_expect_eq(broker_count("clinic", NULL), 0);
    cr_expect(log_has("broker.log", "the key of clinic:northpoint asked for a session as clinic lakeside"));
    cr_expect_eq(request(r, HANDOFF__ROLE__ROLE_CLINIC, "northpoint", &code), HANDOFF__KIND__KIND_WELCOME,
                 "the same connection opens the key's own session");
}

/* A review is decided by a reviewer's key only: a clinic's key cannot open a reviewer
 * session (not even under its own name), a reviewer's key opens its own and no other, and
 * the CLI says so with 77. */
Test(security, only_a_reviewer_key_opens_a_reviewer_session)
{
    raw_t r = raw_connect("northpoint", "broker");
    Handoff__ErrorCode code;
    cr_expect_eq(request(r, HANDOFF__ROLE__ROLE_REVIEWER, "dr-osei", &code), HANDOFF__KIND__KIND_ERROR);
    cr_expect_eq(code, HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "a clinic key as reviewer dr-osei: code %d", (int)code);
    cr_expect_eq(request(r, HANDOFF__ROLE__ROLE_REVIEWER, "northpoint", &code), HANDOFF__KIND__KIND_ERROR);
    cr_expect_eq(code, HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "a clinic key as reviewer of its own name: %d", (int)code);
    cr_expect(log_has("broker.log", "the key of clinic:northpoint asked for a session as reviewer northpoint"));
    raw_t d = raw_connect("dr-osei", "broker");
    cr_expect_eq(request(d, HANDOFF__ROLE__ROLE_CLINIC, "dr-osei", &code), HANDOFF__KIND__KIND_ERROR,
                 "a reviewer key is no clinic's");
    cr_expect_eq(code, HANDOFF__ERROR_CODE__ERR_FORBIDDEN);
    cr_expect_eq(request(d, HANDOFF__ROLE__ROLE_REVIEWER, "dr-osei", &code), HANDOFF__KIND__KIND_WELCOME,
                 "its own reviewer session: code %d", (int)code);
    cr_expect_eq(request(d, 0, NULL, &code), HANDOFF__KIND__KIND_DELIVER, "and it fetches its mailbox: code %d",
                 (int)code);
    static char out[65536];
    const char *args[] = {"--timeout-ms", CLI_TIMEOUT_MS, "--server-key", key_path("broker", "pub"), "--key",
                          key_path("northpoint", "key"), "--reviewer", "dr-osei", "review", "list", NULL};
    cr_expect_eq(net_cli(&net, "northpoint", out, sizeof out, args), EXIT_DENIED, "the CLI: refused, not unreachable");
}

static bool refused_as_service(void *arg)
{
    (void)arg;
    return log_has("broker.log", "the key of clinic:northpoint asked for a session as service intake");
}

static bool intake_joined(void *arg)
{
    (void)arg;
    return log_has("broker.log", "worker intake joined");
}

static bool intake_served(void *arg)
{
    (void)arg;
    return broker_count(NULL, "intake") == 1;
}

Test(security, a_clinic_key_cannot_register_as_a_service_and_a_service_key_can)
{
    char db[512];
    snprintf(db, sizeof db, "%s/intake.db", net.dir);
    const char *rogue[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", db,
                           "--server-key", key_path("broker", "pub"), "--key", key_path("northpoint", "key"), NULL};
    net_spawn(&net, "rogue", rogue);
    cr_assert(net_wait(refused_as_service, NULL, 20000), "the broker refused the clinic key as a service");
    cr_expect_eq(broker_count(NULL, "intake"), 0, "the clinic key's worker serves intake");
    cr_expect_eq(broker_count("worker", NULL), 0);
    raw_t r = raw_connect("northpoint", "broker");
    Handoff__ErrorCode code;
    cr_expect_eq(request(r, HANDOFF__ROLE__ROLE_WORKER, "intake", &code), HANDOFF__KIND__KIND_ERROR);
    cr_expect_eq(code, HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "a worker HELLO with a clinic key: code %d", (int)code);
    char db2[512];
    snprintf(db2, sizeof db2, "%s/intake2.db", net.dir);
    const char *real[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", db2,
                          "--server-key", key_path("broker", "pub"), "--key", key_path("intake", "key"), NULL};
    net_spawn(&net, "intake", real);
    cr_expect(net_wait(intake_served, NULL, 20000), "the service's own key registers it");
}

/* A service whose key is not listed says so in its log at once, rather than "broker silent"
 * after each liveness window. */
static bool stranger_says_refused(void *arg)
{
    (void)arg;
    return log_has("stranger-intake.log", "the broker refused this key (not in its allow-list)");
}

Test(security, a_service_with_an_unknown_key_says_it_was_refused)
{
    char db[512];
    snprintf(db, sizeof db, "%s/intake.db", net.dir);
    const char *argv[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", db,
                          "--server-key", key_path("broker", "pub"), "--key", key_path("stranger", "key"), NULL};
    net_spawn(&net, "stranger-intake", argv);
    cr_expect(net_wait(stranger_says_refused, NULL, 20000), "see %s/stranger-intake.log", net.dir);
    cr_expect_eq(broker_count("worker", NULL), 0);
}

static bool intake_cut_off(void *arg)
{
    (void)arg;
    return log_has("broker.log", "session of service:intake ended: its key was removed") &&
           log_has("broker.log", "service:intake is no longer in the allow-list");
}

Test(security, a_removed_key_is_cut_off_at_the_reload)
{
    char db[512];
    snprintf(db, sizeof db, "%s/intake.db", net.dir);
    const char *real[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", db,
                          "--server-key", key_path("broker", "pub"), "--key", key_path("intake", "key"), NULL};
    net_spawn(&net, "intake", real);
    cr_assert(net_wait(intake_joined, NULL, 20000));
    char allow[512];
    snprintf(allow, sizeof allow, "%s/allow.txt", keys);
    FILE *f = fopen(allow, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s clinic northpoint\n", slurp_line(key_path("northpoint", "pub")));   /* intake removed */
    fclose(f);
    cr_assert_eq(kill(net_pid(&net, "broker"), SIGHUP), 0);
    cr_expect(net_wait(intake_cut_off, NULL, 20000), "the session ended and a new HELLO was refused");
    static char out[65536];
    cr_expect_eq(as("northpoint", "northpoint", "inbox", out, sizeof out), 0, "the keys still listed still work");
    cr_expect_eq(as("lakeside", "lakeside", "inbox", out, sizeof out), EXIT_DENIED, "lakeside was removed too");
    cr_expect(log_has("cli.log", "the broker refused this key (not in its allow-list)"), "see %s/cli.log", net.dir);
}

Test(security, sessions_and_refusals_are_in_a_verifiable_audit_log)
{
    static char out[65536];
    cr_assert_eq(as("northpoint", "northpoint", "inbox", out, sizeof out), 0);
    cr_assert_eq(as("lakeside", "northpoint", "inbox", out, sizeof out), EXIT_DENIED);
    cr_assert_eq(as("northpoint", "stranger", "inbox", out, sizeof out), EXIT_DENIED);
    cr_assert(log_has("audit.jsonl", "\"principal\":\"clinic:northpoint\",\"action\":\"hello\""));
    cr_assert(log_has("audit.jsonl", "refused: asked for a session as clinic lakeside"));
    cr_assert(log_has("audit.jsonl", "refused: not in the allow-list"));
    char path[600];
    snprintf(path, sizeof path, "%s/audit.jsonl", net.dir);
    const char *verify[] = {"audit", "verify", path, NULL};
    cr_assert_eq(net_cli(&net, "unused", out, sizeof out, verify), 0, "%s", out);
    cr_assert(strstr(out, "the chain holds"), "%s", out);

    /* someone edits a line: verify names it */
    FILE *f = fopen(path, "r+");
    cr_assert_not_null(f);
    char line[2048];
    cr_assert_not_null(fgets(line, sizeof line, f));
    char *p = strstr(line, "clinic:northpoint");
    cr_assert_not_null(p, "%s", line);
    p[7] = 'N';
    cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
    fputs(line, f);
    fclose(f);
    cr_assert_eq(net_cli(&net, "unused", out, sizeof out, verify), 1, "%s", out);
    cr_assert(strstr(out, "line 1"), "%s", out);
}
