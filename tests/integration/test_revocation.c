/* Integration: revoking and rotating keys the way an operator does it (docs/OPERATIONS.md):
 * the allow-list edited with `sed -i` or an editor's write-and-rename, then SIGHUP. A real
 * broker with CURVE on 127.0.0.1; clinics hold sessions across the reload over raw DEALER
 * sockets, so a test sees exactly what the broker answers on a connection that was opened
 * before the reload. The Docker case (the allow-list bind-mounted into the container) is
 * reproduced with a bind mount in a private mount namespace (unshare), when it is allowed. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "envelope.pb-c.h"
#include "harness.h"

static net_t net;
static char keys[400];
static char allow_path[512];
static void *zctx;
static void *socks[8];          /* closed by teardown, so a failed test cannot hang zmq_ctx_term */
static size_t nsocks;

static void keygen(const char *name)
{
    static char out[4096];
    const char *args[] = {"--dir", keys, "keygen", name, NULL};
    cr_assert_eq(net_cli(&net, "unused", out, sizeof out, args), 0, "keygen %s: %s", name, out);
}

static const char *key_path(const char *name, const char *ext)
{
    static char p[8][512];
    static int k;
    char *out = p[k++ % 8];
    snprintf(out, sizeof p[0], "%s/%s.%s", keys, name, ext);
    return out;
}

/* The first line of a key file (40 Z85 characters). */
static const char *key_of(const char *name, const char *ext)
{
    static char line[8][64];
    static int k;
    char *l = line[k++ % 8];
    FILE *f = fopen(key_path(name, ext), "r");
    cr_assert_not_null(f, "%s", key_path(name, ext));
    cr_assert_not_null(fgets(l, sizeof line[0], f));
    fclose(f);
    l[strcspn(l, "\n")] = '\0';
    cr_assert_eq(strlen(l), 40);
    return l;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static void setup(void)
{
    net_init(&net);
    snprintf(keys, sizeof keys, "%s/keys", net.dir);
    cr_assert_eq(mkdir(keys, 0700), 0);
    const char *names[] = {"broker", "northpoint", "lakeside", "harbour", "intake", "lakeside-new"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        keygen(names[i]);
    snprintf(allow_path, sizeof allow_path, "%s/allow.txt", keys);
    char text[1024];
    snprintf(text, sizeof text, "# the network's keys\n%s clinic northpoint\n%s clinic lakeside\n%s service intake\n",
             key_of("northpoint", "pub"), key_of("lakeside", "pub"), key_of("intake", "pub"));
    write_file(allow_path, text);
    zctx = zmq_ctx_new();
}

static void teardown(void)
{
    for (size_t i = 0; i < nsocks; i++)
        zmq_close(socks[i]);
    zmq_ctx_term(zctx);
    net_fini_verdict(net_stop_all(&net), net.dir);
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 120);

static bool ready_file_written(void *arg)
{
    return net_file_exists(arg);
}

/* Starts the broker with CURVE, --allow allow, the extra arguments (NULL-terminated, may be
 * NULL), run through the wrapper argv prefix wrap (NULL-terminated, may be NULL). */
static void start_broker(const char *const wrap[], const char *allow, const char *const extra[])
{
    static char ready[512], audit[512];
    snprintf(ready, sizeof ready, "%s/broker.endpoint", net.dir);
    snprintf(audit, sizeof audit, "%s/audit.jsonl", net.dir);
    unlink(ready);
    const char *argv[40];
    size_t k = 0;
    for (size_t i = 0; wrap && wrap[i]; i++)
        argv[k++] = wrap[i];
    const char *base[] = {net_bin("broker/handoff-broker"), "--bind", "tcp://127.0.0.1:*", "--ready-file", ready,
                          "--log-level", "debug", "--liveness", "60", "--curve-secret",
                          key_path("broker", "key"), "--allow", allow, "--audit", audit};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        argv[k++] = base[i];
    for (size_t i = 0; extra && extra[i] && k < 39; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    net_spawn(&net, "broker", argv);
    cr_assert(net_wait(ready_file_written, ready, 15000), "the broker did not start (see %s/broker.log)", net.dir);
    FILE *f = fopen(ready, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(net.endpoint, sizeof net.endpoint, f));
    fclose(f);
    net.endpoint[strcspn(net.endpoint, "\n")] = '\0';
}

static bool log_has(const char *file, const char *needle)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", net.dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static bool broker_log_has(void *needle)
{
    return log_has("broker.log", needle);
}

static void expect_log(const char *needle, const char *why)
{
    cr_expect(net_wait(broker_log_has, (void *)needle, 15000), "%s: no '%s' in %s/broker.log", why, needle, net.dir);
}

/* ---- a clinic's connection, raw: HELLO, FETCH, what comes back ------------------------------ */

static void send_env(void *s, Handoff__Envelope *e)
{
    static uint8_t buf[4096];
    size_t n = handoff__envelope__get_packed_size(e);
    cr_assert_leq(n, sizeof buf);
    handoff__envelope__pack(e, buf);
    cr_assert_geq(zmq_send(s, buf, n, 0), 0);
}

/* The reply to the request `id` (a BYE on the way sets *bye), or NULL after timeout_ms.
 * Heartbeats and replies to earlier requests are skipped. */
static Handoff__Envelope *recv_reply(void *s, const uint8_t id[16], int timeout_ms, bool *bye)
{
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            zmq_msg_close(&m);
            return NULL;
        }
        Handoff__Envelope *e = handoff__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        if (!e)
            continue;
        if (e->kind == HANDOFF__KIND__KIND_BYE && bye)
            *bye = true;
        if (e->correlation_id.len == 16 && memcmp(e->correlation_id.data, id, 16) == 0)
            return e;
        handoff__envelope__free_unpacked(e, NULL);
    }
}

/* Sends a request of this kind (HELLO as clinic, FETCH) and returns its reply's kind, 0 when
 * none came within 20 s (every request here is answered: the bound only ends a failing test);
 * the error code in *code, whether a BYE came first in *bye. */
static Handoff__Kind request(void *s, Handoff__Kind kind, const char *clinic, Handoff__ErrorCode *code, bool *bye)
{
    static uint8_t id[16] = {0x7e};
    for (int i = 15; i > 0 && ++id[i] == 0; i--)
        ;
    Handoff__Envelope e;
    handoff__envelope__init(&e);
    e.version = 1;
    e.kind = kind;
    e.id = (ProtobufCBinaryData){sizeof id, id};
    if (kind == HANDOFF__KIND__KIND_HELLO) {
        e.role = HANDOFF__ROLE__ROLE_CLINIC;
        e.name = (char *)clinic;
    }
    if (kind == HANDOFF__KIND__KIND_FETCH)
        e.max = 10;
    send_env(s, &e);
    Handoff__Envelope *r = recv_reply(s, id, 20000, bye);
    *code = HANDOFF__ERROR_CODE__ERR_NONE;
    if (!r)
        return 0;
    Handoff__Kind k = r->kind;
    *code = r->error_code;
    handoff__envelope__free_unpacked(r, NULL);
    return k;
}

/* A CURVE connection with the key pair `key` (file name in keys/) and a clinic session. */
static void *clinic_session(const char *clinic, const char *key)
{
    cr_assert_lt(nsocks, sizeof socks / sizeof socks[0]);
    void *s = zmq_socket(zctx, ZMQ_DEALER);
    cr_assert_not_null(s);
    socks[nsocks++] = s;
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    char pub[41], sec[41];
    snprintf(pub, sizeof pub, "%s", key_of(key, "pub"));
    snprintf(sec, sizeof sec, "%s", key_of(key, "key"));
    cr_assert_eq(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, key_of("broker", "pub"), 40), 0);
    cr_assert_eq(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40), 0);
    cr_assert_eq(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40), 0);
    cr_assert_eq(zmq_connect(s, net.endpoint), 0);
    Handoff__ErrorCode code;
    Handoff__Kind k = request(s, HANDOFF__KIND__KIND_HELLO, clinic, &code, NULL);
    cr_assert_eq(k, HANDOFF__KIND__KIND_WELCOME, "%s's HELLO with key %s: kind %d, code %d", clinic, key, (int)k,
                 (int)code);
    return s;
}

/* The session ended: a FETCH on the old connection is answered ERR_NOT_READY, and a new HELLO
 * on it is refused with ERR_FORBIDDEN (answers, not silence: nothing here waits for a timeout). */
static void expect_session_ended(void *s, const char *who)
{
    Handoff__ErrorCode code;
    Handoff__Kind k = request(s, HANDOFF__KIND__KIND_FETCH, NULL, &code, NULL);
    cr_expect(k == HANDOFF__KIND__KIND_ERROR && code == HANDOFF__ERROR_CODE__ERR_NOT_READY,
              "%s's FETCH after the end of its session: kind %d, code %d (want ERROR, ERR_NOT_READY)", who, (int)k,
              (int)code);
    k = request(s, HANDOFF__KIND__KIND_HELLO, who, &code, NULL);
    cr_expect(k == HANDOFF__KIND__KIND_ERROR && code == HANDOFF__ERROR_CODE__ERR_FORBIDDEN,
              "a new HELLO of %s on its old connection: kind %d, code %d (want ERROR, ERR_FORBIDDEN)", who, (int)k,
              (int)code);
}

static void expect_session_works(void *s, const char *who)
{
    Handoff__ErrorCode code;
    Handoff__Kind k = request(s, HANDOFF__KIND__KIND_FETCH, NULL, &code, NULL);
    cr_expect_eq(k, HANDOFF__KIND__KIND_DELIVER, "%s's session no longer works (kind %d, code %d)", who, (int)k,
                 (int)code);
}

/* The CLI's exit code when the broker refuses its key (docs/OPERATIONS.md, "Exit codes"). */
#define EXIT_DENIED 77

/* handoff (the CLI, its own new connection) as clinic with key `key`: its exit status. Each
 * attempt may wait 20 s: a refused key is known from the handshake (EXIT_DENIED at once), and
 * an allowed one is never taken for refused on a loaded machine. */
static int cli_as(const char *clinic, const char *key)
{
    static char out[65536];
    const char *args[] = {"--timeout-ms", "20000", "--server-key", key_path("broker", "pub"), "--key",
                          key_path(key, "key"), "inbox", NULL};
    return net_cli(&net, clinic, out, sizeof out, args);
}

static void hup(void)
{
    cr_assert_eq(kill(net_pid(&net, "broker"), SIGHUP), 0);
}

static void run(const char *cmd)
{
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* ---- the tests ------------------------------------------------------------------------------ */

static bool intake_joined(void *arg)
{
    (void)arg;
    return log_has("broker.log", "worker intake joined");
}

/* docs/OPERATIONS.md, "Revoking": delete the key's line (here with sed -i, which writes a new
 * file and renames it over the old one), SIGHUP. The revoked clinic's open session ends and
 * its new HELLO is refused; the other clinic and the service keep working; the log names the
 * key that was removed. */
Test(security, revoke_with_sed_i_and_sighup)
{
    start_broker(NULL, allow_path, NULL);
    char db[512];
    snprintf(db, sizeof db, "%s/intake.db", net.dir);
    const char *intake[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", db,
                            "--server-key", key_path("broker", "pub"), "--key", key_path("intake", "key"), NULL};
    net_spawn(&net, "intake", intake);
    cr_assert(net_wait(intake_joined, NULL, 20000), "intake did not join (see %s)", net.dir);
    void *lakeside = clinic_session("lakeside", "lakeside");
    void *northpoint = clinic_session("northpoint", "northpoint");
    expect_session_works(lakeside, "lakeside");

    char cmd[1200];
    snprintf(cmd, sizeof cmd, "sed -i '/ clinic lakeside$/d' '%s'", allow_path);
    run(cmd);
    hup();
    expect_log("allow-list reloaded: 2 key(s); removed clinic:lakeside", "the reload names the removed key");
    expect_log("session of clinic:lakeside ended", "the open session of the removed key ends at the reload");
    expect_session_ended(lakeside, "lakeside");
    cr_expect_eq(cli_as("lakeside", "lakeside"), EXIT_DENIED, "the revoked key cannot connect again");
    expect_session_works(northpoint, "northpoint");
    cr_expect_eq(cli_as("northpoint", "northpoint"), 0, "a key still listed still connects");
    cr_expect(!log_has("broker.log", "session of service:intake ended"), "the service keeps its session");
    cr_expect(log_has("audit.jsonl", "removed: the key may no longer connect"), "the audit log has the removal");
}

/* An editor saves by writing a new file and renaming it over the old one. Revoke lakeside
 * and add harbour in one save: the log names both. */
Test(security, revoke_with_an_editor_rename_and_sighup)
{
    start_broker(NULL, allow_path, NULL);
    void *lakeside = clinic_session("lakeside", "lakeside");
    cr_expect_eq(cli_as("harbour", "harbour"), EXIT_DENIED, "harbour is not listed yet");
    char text[1024], tmp[600];
    snprintf(text, sizeof text, "%s clinic northpoint\n%s service intake\n%s clinic harbour\n",
             key_of("northpoint", "pub"), key_of("intake", "pub"), key_of("harbour", "pub"));
    snprintf(tmp, sizeof tmp, "%s/.allow.txt.swp", keys);
    write_file(tmp, text);
    cr_assert_eq(rename(tmp, allow_path), 0);
    hup();
    expect_log("allow-list reloaded: 3 key(s); removed clinic:lakeside; added clinic:harbour",
               "the reload names the removed and the added key");
    expect_session_ended(lakeside, "lakeside");
    cr_expect_eq(cli_as("harbour", "harbour"), 0, "the added key connects");
}

/* Rotation: lakeside's line gets its new key and the old one goes. The principal is still
 * allowed, but the old key is not: the connection opened with it loses its session at its
 * next request and cannot open another, while the new key works. */
Test(security, a_rotated_out_key_loses_its_session)
{
    start_broker(NULL, allow_path, NULL);
    void *old = clinic_session("lakeside", "lakeside");
    expect_session_works(old, "lakeside (old key)");
    char cmd[1200];                             /* Z85 has no quote, backslash or space */
    snprintf(cmd, sizeof cmd, "sed -i '/ clinic lakeside$/d' '%s' && echo '%s clinic lakeside' >>'%s'", allow_path,
             key_of("lakeside-new", "pub"), allow_path);
    run(cmd);
    hup();
    expect_log("allow-list reloaded: 3 key(s); removed clinic:lakeside (old key ", "the reload names the old key");
    expect_session_ended(old, "lakeside");
    expect_log("session of clinic:lakeside ended: its key", "the log says why the session ended");
    cr_expect_eq(cli_as("lakeside", "lakeside"), EXIT_DENIED, "the old key cannot connect again");
    cr_expect_eq(cli_as("lakeside", "lakeside-new"), 0, "the new key works");
    void *fresh = clinic_session("lakeside", "lakeside-new");
    expect_session_works(fresh, "lakeside (new key)");
}

/* --revoked: an allow-list line whose key is in the revoked record is left out, at the start
 * and at each reload (the record is read again too). */
Test(security, a_key_in_the_revoked_record_is_never_allowed)
{
    char revoked[512], text[1024];
    snprintf(revoked, sizeof revoked, "%s/revoked.txt", keys);
    snprintf(text, sizeof text, "# revoked keys\n%s clinic lakeside 2026-01-05 revoked\n", key_of("lakeside", "pub"));
    write_file(revoked, text);
    const char *extra[] = {"--revoked", revoked, NULL};
    start_broker(NULL, allow_path, extra);
    expect_log("allow-list: left out clinic:lakeside", "the broker says it left the revoked key out");
    cr_expect_eq(cli_as("lakeside", "lakeside"), EXIT_DENIED, "a revoked key is refused though the allow-list has it");
    void *northpoint = clinic_session("northpoint", "northpoint");
    FILE *f = fopen(revoked, "a");
    cr_assert_not_null(f);
    fprintf(f, "%s clinic northpoint 2026-01-06 revoked\n", key_of("northpoint", "pub"));
    fclose(f);
    hup();
    expect_log("allow-list reloaded: 1 key(s); removed clinic:northpoint", "revoking by the record alone works too");
    expect_session_ended(northpoint, "northpoint");

    write_file(revoked, "not a key\n");
    hup();
    expect_log("allow-list refused, keeping the one in force", "a record that does not load is refused");
    net_stop(&net, net_pid(&net, "broker"), SIGTERM);
    const char *bad[] = {net_bin("broker/handoff-broker"), "--bind", "tcp://127.0.0.1:*", "--curve-secret",
                         key_path("broker", "key"), "--allow", allow_path, "--revoked", revoked, NULL};
    pid_t pid = net_spawn(&net, "broker-bad", bad);
    int status = net_stop(&net, pid, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2, "a bad revoked record stops the start (status %d)",
              status);
    cr_expect(log_has("broker-bad.log", "revoked.txt: line 1: the key is not 40 characters of Z85"));
}

/* ---- the Docker case: the allow-list bind-mounted into the broker's mount namespace ---------- */

static bool namespaces_allowed(void)
{
    return system("unshare --user --map-root-user --mount true >/dev/null 2>&1") == 0;
}

/* Runs the broker in a private mount namespace where `src` is bind-mounted on `dst` (as
 * docker does with -v or a compose secret), with --allow allow. */
static void start_broker_mounted(const char *src, const char *dst, const char *allow)
{
    const char *wrap[] = {"/usr/bin/unshare", "--user", "--map-root-user", "--mount", "--", "/bin/sh", "-c",
                          "mount --bind \"$1\" \"$2\" || exit 97; shift 2; exec \"$@\"", "sh", src, dst, NULL};
    start_broker(wrap, allow, NULL);
}

/* The compose file mounts the folder holding the allow-list: `sed -i` on the host replaces the
 * file, and the broker, opening the path again at SIGHUP, reads what the operator wrote. */
Test(security, revoke_with_sed_i_through_a_folder_mount)
{
    if (!namespaces_allowed())
        cr_skip_test("unshare --user --mount is not allowed here");
    char mnt[512], allow_in[600];
    snprintf(mnt, sizeof mnt, "%s/mnt", net.dir);
    cr_assert_eq(mkdir(mnt, 0700), 0);
    snprintf(allow_in, sizeof allow_in, "%s/allow.txt", mnt);
    start_broker_mounted(keys, mnt, allow_in);
    void *lakeside = clinic_session("lakeside", "lakeside");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "sed -i '/ clinic lakeside$/d' '%s'", allow_path);
    run(cmd);
    hup();
    expect_log("allow-list reloaded: 2 key(s); removed clinic:lakeside", "the broker sees the edit");
    expect_session_ended(lakeside, "lakeside");
    cr_expect_eq(cli_as("lakeside", "lakeside"), EXIT_DENIED);
    cr_expect_eq(cli_as("northpoint", "northpoint"), 0);
}

/* The old compose file mounted the allow-list file on its own: `sed -i` on the host replaces
 * the file, and the broker's path still shows the old (deleted) one. It must not say
 * "reloaded" and carry on with the old keys as if the revocation had happened: it refuses the
 * reload and says why and what to do. */
Test(security, a_replaced_single_file_mount_is_refused_not_reloaded)
{
    if (!namespaces_allowed())
        cr_skip_test("unshare --user --mount is not allowed here");
    char mounted[512];
    snprintf(mounted, sizeof mounted, "%s/allow-mounted.txt", net.dir);
    write_file(mounted, "");
    start_broker_mounted(allow_path, mounted, mounted);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "sed -i '/ clinic lakeside$/d' '%s'", allow_path);
    run(cmd);
    hup();
    expect_log("allow-list refused, keeping the one in force", "the reload of a stale file is refused");
    expect_log("mount its folder instead", "the log says what to do");
    cr_expect(!log_has("broker.log", "allow-list reloaded"), "the broker does not claim it reloaded");
}

/* With CURVE, as without: a frame over max_frame by up to 64 KiB is answered ERR_TOO_LARGE on
 * a connection that stays usable (libzmq's own limit counts CURVE's box; the broker leaves room
 * for it), never cut off silently. */
Test(security, a_frame_just_over_max_frame_is_answered_with_curve)
{
    const char *extra[] = {"--max-frame", "65536", NULL};
    start_broker(NULL, allow_path, extra);
    void *s = clinic_session("northpoint", "northpoint");
    const size_t over[] = {1, 100, 1000, 1023, 1100, 4096, 65536};
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        size_t n = 65536 + over[i];
        char *big = calloc(1, n);
        cr_assert_eq(zmq_send(s, big, n, 0), (int)n);
        free(big);
        int timeout = 5000;
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        Handoff__Envelope *e = NULL;
        for (;;) {                                  /* the next answer that is not a heartbeat */
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            e = handoff__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
            zmq_msg_close(&m);
            if (e && e->kind != HANDOFF__KIND__KIND_HEARTBEAT)
                break;
            if (e)
                handoff__envelope__free_unpacked(e, NULL);
            e = NULL;
        }
        cr_assert_not_null(e, "a frame %zu bytes over max_frame got no answer over CURVE (dropped)", over[i]);
        cr_expect_eq(e->error_code, HANDOFF__ERROR_CODE__ERR_TOO_LARGE, "%zu over: %d %s", over[i], e->error_code,
                     e->error_text);
        handoff__envelope__free_unpacked(e, NULL);
    }
    expect_session_works(s, "northpoint");
}

/* Issue "a clinic can forge another clinic's inbox", as the attacker does it: with its own
 * valid key, northpoint opens a session as itself and submits a made-up handoff and a
 * "cancelled" status into lakeside's mailbox. The broker refuses both (ERR_FORBIDDEN), audits
 * each with northpoint's principal, and lakeside's mailbox stays empty. */
Test(security, a_clinic_key_cannot_forge_another_clinics_inbox)
{
    start_broker(NULL, allow_path, NULL);
    void *s = clinic_session("northpoint", "northpoint");
    const char *types[] = {"handoff.Handoff", "handoff.StatusUpdate"};
    for (size_t i = 0; i < 2; i++) {
        uint8_t id[16] = {0x51, (uint8_t)i};
        Handoff__Address to = HANDOFF__ADDRESS__INIT;
        to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
        to.name = "lakeside";
        Handoff__Message m = HANDOFF__MESSAGE__INIT, *mp = &m;
        m.id = (ProtobufCBinaryData){16, id};
        m.to = &to;
        m.type = (char *)types[i];
        m.payload = (ProtobufCBinaryData){6, (uint8_t *)"forged"};
        Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
        e.version = 1;
        e.kind = HANDOFF__KIND__KIND_SUBMIT;
        e.id = (ProtobufCBinaryData){16, id};
        e.n_messages = 1;
        e.messages = &mp;
        send_env(s, &e);
        Handoff__Envelope *r = recv_reply(s, id, 5000, NULL);
        cr_assert_not_null(r, "no answer to the forged %s", types[i]);
        cr_expect_eq(r->error_code, HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "the forged %s: %d %s", types[i],
                     r->error_code, r->error_text);
        handoff__envelope__free_unpacked(r, NULL);
    }
    /* lakeside, with its own key, finds nothing */
    void *l = clinic_session("lakeside", "lakeside");
    uint8_t fid[16] = {0x52};
    Handoff__Envelope f = HANDOFF__ENVELOPE__INIT;
    f.version = 1;
    f.kind = HANDOFF__KIND__KIND_FETCH;
    f.id = (ProtobufCBinaryData){16, fid};
    f.max = 10;
    send_env(l, &f);
    Handoff__Envelope *d = recv_reply(l, fid, 5000, NULL);
    cr_assert_not_null(d);
    cr_expect_eq(d->kind, HANDOFF__KIND__KIND_DELIVER);
    cr_expect_eq(d->n_messages, 0, "lakeside's mailbox holds %zu forged message(s)", d->n_messages);
    handoff__envelope__free_unpacked(d, NULL);
    cr_expect(log_has("audit.jsonl", "northpoint may not send handoff.Handoff to mailbox lakeside"),
              "the refusal is not in the audit log %s/audit.jsonl", net.dir);
    cr_expect(log_has("audit.jsonl", "clinic:northpoint"), "the audit log does not name the principal");
}
