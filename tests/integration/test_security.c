/* Integration: CURVE on the broker's endpoint with an allow-list. Keys are made by
 * `handoff keygen`; the broker runs its ZAP handler; every key may open only the session
 * of the principal the allow-list names. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>

#include "harness.h"

static net_t net;
static char keys[400];

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
    const char *names[] = {"broker", "northpoint", "lakeside", "intake", "stranger"};
    for (size_t i = 0; i < 5; i++)
        keygen(names[i]);
    char allow[512];
    snprintf(allow, sizeof allow, "%s/allow.txt", keys);
    FILE *f = fopen(allow, "w");
    cr_assert_not_null(f);
    fprintf(f, "# the network's keys\n%s clinic northpoint\n%s clinic lakeside\n%s service intake\n",
            slurp_line(key_path("northpoint", "pub")), slurp_line(key_path("lakeside", "pub")),
            slurp_line(key_path("intake", "pub")));
    fclose(f);
    static char audit[512];
    snprintf(audit, sizeof audit, "%s/audit.jsonl", net.dir);
    const char *extra[] = {"--curve-secret", key_path("broker", "key"), "--allow", allow, "--audit", audit, NULL};
    net_start_broker(&net, extra);
}

static void teardown(void)
{
    cr_expect_eq(net_stop_all(&net), 0, "a process did not stop cleanly");
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 120);

/* handoff as clinic with key `key` (NULL: no CURVE); returns the exit status. */
static int as(const char *clinic, const char *key, const char *cmd, char *out, size_t cap)
{
    const char *args[16] = {"--timeout-ms", "700"};
    size_t k = 2;
    if (key) {
        args[k++] = "--server-key";
        args[k++] = key_path("broker", "pub");
        args[k++] = "--key";
        args[k++] = key_path(key, "key");
    }
    args[k++] = cmd;
    args[k] = NULL;
    return net_cli(&net, clinic, out, cap, args);
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

Test(security, an_allowed_key_opens_its_own_session)
{
    static char out[65536];
    cr_assert_eq(as("northpoint", "northpoint", "inbox", out, sizeof out), 0, "%s", out);
}

Test(security, an_unknown_key_is_refused_before_any_message)
{
    static char out[65536];
    cr_expect_eq(as("northpoint", "stranger", "inbox", out, sizeof out), 3);
    cr_expect(log_has("broker.log", "is not in the allow-list"), "the broker says why it refused");
    cr_expect(!log_has("broker.log", "clinic northpoint joined"), "no session was opened");
}

Test(security, plain_tcp_gets_nothing)
{
    static char out[65536];
    cr_expect_eq(as("northpoint", NULL, "inbox", out, sizeof out), 3);
    cr_expect(!log_has("broker.log", "joined"));
}

Test(security, a_clinic_key_cannot_speak_for_another_clinic)
{
    static char out[65536];
    cr_expect_eq(as("lakeside", "northpoint", "inbox", out, sizeof out), 3);
    cr_expect(log_has("broker.log", "the key of clinic:northpoint asked for a session as clinic lakeside"));
    cr_expect(!log_has("broker.log", "clinic lakeside joined"));
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

Test(security, a_clinic_key_cannot_register_as_a_service_and_a_service_key_can)
{
    char db[512];
    snprintf(db, sizeof db, "%s/intake.db", net.dir);
    const char *rogue[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", db,
                           "--server-key", key_path("broker", "pub"), "--key", key_path("northpoint", "key"), NULL};
    net_spawn(&net, "rogue", rogue);
    cr_assert(net_wait(refused_as_service, NULL, 20000), "the broker refused the clinic key as a service");
    cr_expect(!intake_joined(NULL));
    char db2[512];
    snprintf(db2, sizeof db2, "%s/intake2.db", net.dir);
    const char *real[] = {net_bin("services/intake/handoff-intake"), "--broker", net.endpoint, "--db", db2,
                          "--server-key", key_path("broker", "pub"), "--key", key_path("intake", "key"), NULL};
    net_spawn(&net, "intake", real);
    cr_expect(net_wait(intake_joined, NULL, 20000), "the service's own key registers it");
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
    cr_expect_eq(as("lakeside", "lakeside", "inbox", out, sizeof out), 3, "lakeside was removed too");
}

Test(security, sessions_and_refusals_are_in_a_verifiable_audit_log)
{
    static char out[65536];
    cr_assert_eq(as("northpoint", "northpoint", "inbox", out, sizeof out), 0);
    cr_assert_eq(as("lakeside", "northpoint", "inbox", out, sizeof out), 3);
    cr_assert_eq(as("northpoint", "stranger", "inbox", out, sizeof out), 3);
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
