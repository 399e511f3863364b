/* Integration: the clinic CLI on a clinic host, set up as docs/OPERATIONS.md ("On a clinic
 * host") says: a broker with CURVE and an allow-list, and a HOME whose .handoff holds
 * CLINIC.key and broker.pub; the CLI given only --broker and --clinic finds its keys there.
 * Every setup mistake (one key without the other, a key file missing, too open or not a key,
 * no clinic id, an endpoint that is not one) exits 2 at once, naming the file or setting, and
 * well before its --timeout-ms: the endpoint in those runs answers nothing, so a run that went
 * to the network first would wait out its attempts. A broker that really does not answer
 * exits 3 naming the endpoint and what to check; a key the broker refuses, 77 naming the key. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "hx_spawn.h"

/* The per-attempt timeout of runs that must not reach the network: a run that waited for the
 * broker would take at least this long (three attempts of it, in fact). */
#define TIMEOUT_MS 10000

static net_t net;
static char keys[400];          /* the network's keys, made by `handoff keygen` */
static char home[400];          /* the clinic host's HOME */
static char dot[460];           /* HOME/.handoff */
static char silent[64];         /* an endpoint where nothing listens */

typedef struct {
    char out[1 << 16], err[1 << 16];
    int status;
    int64_t took_ms;
} run_t;

static run_t R;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs handoff ARGS (NULL-terminated) with HOME set to the clinic host's and no HANDOFF_*
 * variable but those in env ("K=V", may be NULL); into R, with how long it took. */
static void run_env(const char *const env[], const char *const args[])
{
    static char home_var[480];
    snprintf(home_var, sizeof home_var, "HOME=%s", home);
    const char *e[32] = {home_var,         "TZ=UTC",         "HANDOFF_CONFIG",   "HANDOFF_KEY",
                         "HANDOFF_SERVER_KEY", "HANDOFF_HOME", "HANDOFF_BROKER", "HANDOFF_CLINIC",
                         "HANDOFF_ADMIN",  "HANDOFF_REVIEWER"};
    size_t k = 10;
    for (size_t i = 0; env && env[i] && k < 31; i++)
        e[k++] = env[i];
    e[k] = NULL;
    const char *argv[40] = {net_bin("services/cli/handoff")};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 39; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    hx_spawn_opts_t o = {.argv = argv, .env = e, .out_pipe = true, .err_pipe = true};
    int64_t t0 = now_ms();
    cr_assert_eq(hx_spawn_run(&o, R.out, sizeof R.out, R.err, sizeof R.err, &R.status), 0);
    R.took_ms = now_ms() - t0;
}

#define RUN(...)                                                                                        \
    do {                                                                                                \
        const char *const args_[] = {__VA_ARGS__, NULL};                                                \
        run_env(NULL, args_);                                                                           \
    } while (0)

/* The run exited 2 before any network wait, and its message holds each of the strings. */
#define EXPECT_USAGE(...)                                                                               \
    do {                                                                                                \
        const char *const want_[] = {__VA_ARGS__, NULL};                                                \
        cr_expect_eq(R.status, 2, "exit %d, expected 2; stderr: %s", R.status, R.err);                  \
        cr_expect_lt(R.took_ms, TIMEOUT_MS, "took %lld ms: it waited for the network",                  \
                     (long long)R.took_ms);                                                             \
        for (size_t i_ = 0; want_[i_]; i_++)                                                            \
            cr_expect(strstr(R.err, want_[i_]), "stderr does not say '%s': %s", want_[i_], R.err);      \
    } while (0)

static const char *key_path(const char *name, const char *ext)
{
    static char p[8][512];
    static int k;
    char *out = p[k++ % 8];
    snprintf(out, sizeof p[0], "%s/%s.%s", keys, name, ext);
    return out;
}

static char *first_line(const char *path)
{
    static char line[4][64];
    static int k;
    char *l = line[k++ % 4];
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    cr_assert_not_null(fgets(l, sizeof line[0], f));
    fclose(f);
    l[strcspn(l, "\n")] = '\0';
    return l;
}

/* Copies keys/name.ext to HOME/.handoff/as with mode; returns its path there. */
static const char *install(const char *name, const char *ext, const char *as, int mode)
{
    static char p[4][600];
    static int k;
    char *dst = p[k++ % 4];
    snprintf(dst, sizeof p[0], "%s/%s", dot, as);
    FILE *f = fopen(dst, "w");
    cr_assert_not_null(f, "%s", dst);
    fprintf(f, "%s\n", first_line(key_path(name, ext)));
    fclose(f);
    cr_assert_eq(chmod(dst, (mode_t)mode), 0);
    return dst;
}

static void setup(void)
{
    net_init(&net);
    snprintf(keys, sizeof keys, "%s/keys", net.dir);
    snprintf(home, sizeof home, "%s/host", net.dir);
    snprintf(dot, sizeof dot, "%s/.handoff", home);
    cr_assert_eq(mkdir(keys, 0700), 0);
    cr_assert_eq(mkdir(home, 0700), 0);
    cr_assert_eq(mkdir(dot, 0700), 0);
    const char *names[] = {"broker", "northpoint", "stranger"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        RUN("--dir", keys, "keygen", names[i]);
        cr_assert_eq(R.status, 0, "keygen %s: %s", names[i], R.err);
    }
    char allow[512];
    snprintf(allow, sizeof allow, "%s/allow.txt", keys);
    FILE *f = fopen(allow, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s clinic northpoint\n", first_line(key_path("northpoint", "pub")));
    fclose(f);
    const char *extra[] = {"--curve-secret", key_path("broker", "key"), "--allow", allow, NULL};
    net_start_broker(&net, extra);
    snprintf(silent, sizeof silent, "tcp://127.0.0.1:%d", net_free_port());
}

static void teardown(void)
{
    net_fini_verdict(net_stop_all(&net), net.dir);
}

TestSuite(cli_setup, .init = setup, .fini = teardown, .timeout = 180);

Test(cli_setup, the_keys_in_home_dot_handoff_are_used_without_any_key_option)
{
    const char *key = install("northpoint", "key", "northpoint.key", 0600);
    install("broker", "pub", "broker.pub", 0644);
    RUN("--broker", net.endpoint, "--clinic", "northpoint", "--timeout-ms", "20000", "inbox");
    cr_expect_eq(R.status, 0, "exit %d; stderr: %s", R.status, R.err);
    /* the broker takes CURVE only: a run without those keys is refused */
    char plain[500];
    snprintf(plain, sizeof plain, "%s/plain-home", net.dir);
    RUN("--broker", net.endpoint, "--clinic", "northpoint", "--home", plain, "--timeout-ms", "20000", "inbox");
    cr_expect_eq(R.status, 77, "without the keys: exit %d; stderr: %s", R.status, R.err);
    RUN("--broker", net.endpoint, "--clinic", "northpoint", "--json", "config");
    cr_expect(strstr(R.out, key), "config shows the key found: %s", R.out);
    cr_expect(strstr(R.out, "found in the home directory"), "%s", R.out);
    /* the config file names the broker and the clinic: no option at all */
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/config", dot);
    FILE *f = fopen(cfg, "w");
    cr_assert_not_null(f);
    fprintf(f, "broker = %s\nclinic = northpoint\ntimeout-ms = 20000\n", net.endpoint);
    fclose(f);
    RUN("inbox");
    cr_expect_eq(R.status, 0, "from ~/.handoff/config: exit %d; stderr: %s", R.status, R.err);
}

Test(cli_setup, one_key_without_the_other_exits_2_naming_where_it_looked)
{
    char want[700];
    install("broker", "pub", "broker.pub", 0644);
    RUN("--broker", silent, "--clinic", "northpoint", "--timeout-ms", "10000", "inbox");
    snprintf(want, sizeof want, "there is no %s/northpoint.key", dot);
    EXPECT_USAGE("CURVE needs this clinic's secret key", want, "broker.pub");

    char path[600];
    snprintf(path, sizeof path, "%s/broker.pub", dot);
    cr_assert_eq(unlink(path), 0);
    install("northpoint", "key", "northpoint.key", 0600);
    RUN("--broker", silent, "--clinic", "northpoint", "--timeout-ms", "10000", "inbox");
    snprintf(want, sizeof want, "there is no %s/broker.pub", dot);
    EXPECT_USAGE("CURVE needs the broker's public key", want, "northpoint.key");

    /* a server key named by a variable, no clinic key anywhere */
    cr_assert_eq(unlink(install("northpoint", "key", "northpoint.key", 0600)), 0);
    char var[700];
    snprintf(var, sizeof var, "HANDOFF_SERVER_KEY=%s", key_path("broker", "pub"));
    const char *env[] = {var, NULL};
    const char *args[] = {"--broker", silent, "--clinic", "northpoint", "--timeout-ms", "10000", "inbox", NULL};
    run_env(env, args);
    EXPECT_USAGE("from HANDOFF_SERVER_KEY", "--key FILE, HANDOFF_KEY");
}

Test(cli_setup, a_bad_key_file_exits_2_naming_it)
{
    install("broker", "pub", "broker.pub", 0644);
    const char *key = install("northpoint", "key", "northpoint.key", 0644);
    RUN("--broker", silent, "--clinic", "northpoint", "--timeout-ms", "10000", "inbox");
    char want[700];
    snprintf(want, sizeof want, "chmod 600 %s", key);
    EXPECT_USAGE("mode 0644 is wider than 0600", want);

    chmod(key, 0600);
    RUN("--broker", silent, "--clinic", "northpoint", "--key", "/nonexistent/northpoint.key", "--timeout-ms",
        "10000", "inbox");
    EXPECT_USAGE("key /nonexistent/northpoint.key (from --key): cannot be read: No such file or directory");

    const char *junk = key;                     /* something else saved under the key's name */
    FILE *f = fopen(junk, "w");
    cr_assert_not_null(f);
    fputs("-----BEGIN PRIVATE KEY-----\n", f);
    fclose(f);
    RUN("--broker", silent, "--clinic", "northpoint", "--timeout-ms", "10000", "inbox");
    snprintf(want, sizeof want, "key %s (default, found in the home directory): not a CURVE secret key", junk);
    EXPECT_USAGE(want);

    RUN("--broker", silent, "--clinic", "northpoint", "--key", key_path("northpoint", "pub"), "--timeout-ms",
        "10000", "inbox");
    EXPECT_USAGE("northpoint.pub (from --key): a public key file (.pub)");
}

Test(cli_setup, no_clinic_id_or_a_bad_endpoint_exits_2_naming_the_setting)
{
    RUN("--broker", silent, "--timeout-ms", "10000", "inbox");
    char want[700];
    snprintf(want, sizeof want, "%s/config", dot);
    EXPECT_USAGE("inbox needs this clinic's id: --clinic ID, HANDOFF_CLINIC", want);

    RUN("--broker", "tcp://127.0.0.1", "--clinic", "northpoint", "--timeout-ms", "10000", "inbox");
    EXPECT_USAGE("--broker: must be a ZeroMQ endpoint tcp://HOST:PORT", "'tcp://127.0.0.1'");
    const char *env[] = {"HANDOFF_BROKER=tcp://broker.example.org:70000", NULL};
    const char *args[] = {"--clinic", "northpoint", "--timeout-ms", "10000", "inbox", NULL};
    run_env(env, args);
    EXPECT_USAGE("HANDOFF_BROKER: broker: must be a ZeroMQ endpoint", "a port from 1 to 65535");
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/config", dot);
    FILE *f = fopen(cfg, "w");
    cr_assert_not_null(f);
    fputs("clinic = northpoint\nbroker = broker.example.org:5555\n", f);
    fclose(f);
    RUN("--timeout-ms", "10000", "inbox");
    snprintf(want, sizeof want, "%s:2: broker: must be a ZeroMQ endpoint", cfg);
    EXPECT_USAGE(want);
}

/* Nothing listens: exit 3 after the attempts, saying which endpoint and what to check. */
Test(cli_setup, a_broker_that_does_not_answer_is_named_with_what_to_check)
{
    install("broker", "pub", "broker.pub", 0644);
    install("northpoint", "key", "northpoint.key", 0600);
    RUN("--broker", silent, "--clinic", "northpoint", "--timeout-ms", "300", "inbox");
    cr_expect_eq(R.status, 3, "exit %d; stderr: %s", R.status, R.err);
    char want[200];
    snprintf(want, sizeof want, "nothing answered at %s (broker, from --broker)", silent);
    const char *says[] = {want, "address and port", "firewall", "handoff-broker runs there", "allow-list needs the line",
                          first_line(key_path("northpoint", "pub"))};
    for (size_t i = 0; i < sizeof says / sizeof *says; i++)
        cr_expect(strstr(R.err, says[i]), "stderr does not say '%s': %s", says[i], R.err);
}

/* A key the allow-list does not hold: 77 at once, naming the key file and its public key. */
Test(cli_setup, a_refused_key_is_named_with_its_allow_list_line)
{
    install("broker", "pub", "broker.pub", 0644);
    const char *key = install("stranger", "key", "northpoint.key", 0600);
    RUN("--broker", net.endpoint, "--clinic", "northpoint", "--timeout-ms", "20000", "inbox");
    cr_expect_eq(R.status, 77, "exit %d; stderr: %s", R.status, R.err);
    cr_expect_lt(R.took_ms, 20000, "took %lld ms", (long long)R.took_ms);
    char want[200];
    snprintf(want, sizeof want, "'%s clinic northpoint'", first_line(key_path("stranger", "pub")));
    cr_expect(strstr(R.err, key), "names the key file: %s", R.err);
    cr_expect(strstr(R.err, want), "names the allow-list line: %s", R.err);
}

Test(cli_setup, play_takes_each_clinics_key_from_the_home_too)
{
    const char *story = net_src("deploy/sample/stories/07-post-surgical-knee.json");
    install("broker", "pub", "broker.pub", 0644);
    /* CURVE from broker.pub in the home; the referring clinic's key looked for there too */
    RUN("--broker", net.endpoint, "--timeout-ms", "300", "play", story);
    EXPECT_USAGE("northpoint", "northpoint.key", "home directory");
    install("northpoint", "key", "northpoint.key", 0600);
    /* found and accepted: the story then waits for a booking no scheduling will make here */
    RUN("--broker", net.endpoint, "--timeout-ms", "300", "play", story);
    cr_expect_eq(R.status, 1, "exit %d, expected 1 (the referral never booked); stderr: %s", R.status, R.err);
    cr_expect_null(strstr(R.err, "refused"), "the key from the home was refused: %s", R.err);
}
