/* Integration: the clinic CLI as staff and scripts use it, against the real broker and
 * services on 127.0.0.1 — table and --json snapshots of import, inbox and status (golden
 * files in tests/integration/golden/, times normalised; HX_UPDATE_GOLDEN=1 rewrites them),
 * import of good and bad rows and its rerun (nothing submitted twice: each referral reaches
 * its receiving clinic exactly once), the progress bar only on a terminal (a pty), watch
 * printing a status change as it arrives and stopping cleanly on SIGTERM, top, settings
 * precedence and errors, help pages; one inbox empties a mailbox that holds more than a
 * FETCH reply may carry, and a clinical type from anyone but its issuing service is dropped.
 *
 * Every wait is a condition polled with a deadline; deadlines are generous for slow machines
 * and the sanitizers. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "envelope.pb-c.h"
#include "harness.h"
#include "hx_spawn.h"
#include "referral.pb-c.h"
#include <zmq.h>

#define START "2026-11-23T08:00"
#define WAIT_MS 60000

static net_t net;

static void setup(void)
{
    net_init(&net);
    net_start_broker(&net, NULL);
}

static void teardown(void)
{
    net_fini_verdict(net_stop_all(&net), net.dir);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 300);

/* ---- running the CLI --------------------------------------------------------------------- */

typedef struct {
    char out[1 << 20], err[1 << 16];
    int status;                 /* exit code, or -1 */
} run_t;

/* The child's environment: TZ=UTC, no HANDOFF_CONFIG, then env ("K=V", may be NULL). */
static const char *const *child_env(const char *const env[])
{
    static const char *list[40];
    size_t k = 0;
    list[k++] = "TZ=UTC";
    list[k++] = "HANDOFF_CONFIG";
    for (size_t i = 0; env && env[i] && k < 39; i++)
        list[k++] = env[i];
    list[k] = NULL;
    return list;
}

static void child_argv(const char *clinic, const char *const args[], const char **argv)
{
    static char home[512];
    snprintf(home, sizeof home, "%s/home", net.dir);
    size_t k = 0;
    argv[k++] = net_bin("services/cli/handoff");
    if (net.endpoint[0]) {
        argv[k++] = "--broker";
        argv[k++] = net.endpoint;
    }
    argv[k++] = "--home";
    argv[k++] = home;
    argv[k++] = "--timeout-ms";
    argv[k++] = "10000";
    if (clinic) {
        argv[k++] = "--clinic";
        argv[k++] = clinic;
    }
    for (size_t i = 0; args[i] && k < 62; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
}

/* Runs `handoff` (broker, home in the test dir, clinic when set, then args) with env
 * ("K=V", NULL-terminated, may be NULL) added; stdout and stderr are pipes. */
static void run(run_t *r, const char *const env[], const char *clinic, const char *const args[])
{
    const char *argv[64];
    child_argv(clinic, args, argv);
    hx_spawn_opts_t o = {.argv = argv, .env = child_env(env), .out_pipe = true, .err_pipe = true};
    cr_assert_eq(hx_spawn_run(&o, r->out, sizeof r->out, r->err, sizeof r->err, &r->status), 0);
}

static run_t R;                 /* one run at a time: the buffers are large */

#define RUN(expect, clinic, ...)                                                                         \
    do {                                                                                                \
        const char *const args_[] = {__VA_ARGS__, NULL};                                                \
        run(&R, NULL, clinic, args_);                                                                   \
        cr_assert_eq(R.status, expect, "handoff %s: exit %d, expected %d\nstdout: %.2000s\nstderr: %.2000s", \
                     args_[0], R.status, expect, R.out, R.err);                                         \
    } while (0)

static json_t *out_json(void)
{
    json_error_t e;
    json_t *j = json_loads(R.out, 0, &e);
    cr_assert_not_null(j, "not JSON: %s: %.1000s", e.text, R.out);
    return j;
}

/* ---- golden files ------------------------------------------------------------------------ */

static void replace_all(char *s, size_t cap, const char *from, const char *to)
{
    size_t lf = strlen(from), lt = strlen(to);
    for (char *p = strstr(s, from); p && lf; p = strstr(p + lt, from)) {
        size_t rest = strlen(p + lf);
        if ((size_t)(p - s) + lt + rest + 1 > cap)
            return;
        memmove(p + lt, p + lf, rest + 1);
        memcpy(p, to, lt);
    }
}

/* Text as compared: the test dir as <dir>, relative times as <ago>; with blanks, runs of
 * blanks as two (alignment is the unit suite's business) and no trailing blanks. */
static void normalise_text(const char *in, char *out, size_t cap, bool blanks)
{
    snprintf(out, cap, "%s", in);
    replace_all(out, cap, net.dir, "<dir>");
    regex_t re;
    cr_assert_eq(regcomp(&re, "(just now|[0-9]+[smhd] ago)", REG_EXTENDED), 0);
    regmatch_t m;
    for (char *p = out; regexec(&re, p, 1, &m, 0) == 0;) {
        char *at = p + m.rm_so;
        size_t len = (size_t)(m.rm_eo - m.rm_so), rest = strlen(at + len);
        memmove(at + 5, at + len, rest + 1);
        memcpy(at, "<ago>", 5);
        p = at + 5;
    }
    regfree(&re);
    if (!blanks)
        return;
    char *w = out;
    for (const char *p = out; *p; p++) {
        if (*p == ' ' && p[1] == ' ') {
            while (p[1] == ' ')
                p++;
            if (p[1] != '\n' && p[1] != '\0') {
                *w++ = ' ';
                *w++ = ' ';
            }
            continue;
        }
        if (*p == ' ' && (p[1] == '\n' || p[1] == '\0'))
            continue;
        *w++ = *p;
    }
    *w = '\0';
}

static void normalise_json_value(json_t *j)
{
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach(j, key, v) {
            size_t n = strlen(key);
            if (n > 3 && strcmp(key + n - 3, "_ms") == 0 && json_is_integer(v))
                json_object_set_new(j, key, json_integer(0));
            else if (strcmp(key, "at") == 0 && json_is_string(v))
                json_object_set_new(j, key, json_string("<at>"));
            else
                normalise_json_value(v);
        }
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v)
            normalise_json_value(v);
    }
}

/* Compares (normalised) output with tests/integration/golden/name; HX_UPDATE_GOLDEN=1 writes it. */
static void golden(const char *name, const char *output, bool is_json)
{
    static char norm[1 << 20];
    if (is_json) {
        json_error_t e;
        json_t *j = json_loads(output, 0, &e);
        cr_assert_not_null(j, "%s: not JSON: %s", name, e.text);
        normalise_json_value(j);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(j);
        normalise_text(s, norm, sizeof norm, false);
        free(s);
        strncat(norm, "\n", sizeof norm - strlen(norm) - 1);
    } else {
        normalise_text(output, norm, sizeof norm, true);
    }
    char rel[256];
    snprintf(rel, sizeof rel, "tests/integration/golden/%s", name);
    const char *path = net_src(rel);
    if (getenv("HX_UPDATE_GOLDEN")) {
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f, "%s: %s", path, strerror(errno));
        fputs(norm, f);
        fclose(f);
        return;
    }
    static char want[1 << 20];
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s (HX_UPDATE_GOLDEN=1 writes it)", path, strerror(errno));
    size_t n = fread(want, 1, sizeof want - 1, f);
    want[n] = '\0';
    fclose(f);
    if (strcmp(norm, want) != 0) {
        char actual[512];
        snprintf(actual, sizeof actual, "%s/%s.actual", net.dir, name);
        FILE *a = fopen(actual, "w");
        if (a) {
            fputs(norm, a);
            fclose(a);
        }
        setenv("HX_KEEP_TEST_DIR", "1", 1);
        cr_expect_fail("%s differs from the golden file: diff %s %s", name, path, actual);
    }
}

/* ---- test data --------------------------------------------------------------------------- */

static const char CSV_HEADER[] =
    "ref,patient.given_name,patient.family_name,patient.birth_date,patient.phone,patient.health_card,"
    "patient.language,referrer.name,referrer.discipline,referrer.registration_body,referrer.registration_number,"
    "referrer.clinic_id,reason,conditions,priority,consent,referral_date,preferences.clinic_ids,"
    "preferences.virtual_ok,preferences.availability\n";

static const char *write_file(const char *name, const char *text)
{
    static char paths[4][512];
    static int k;
    char *p = paths[k++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", net.dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* Two good rows (an ankle sprain for lakeside's physiotherapy, tension headaches for massage)
 * and one bad one. */
static const char *import_csv(void)
{
    static char text[4096];
    snprintf(text, sizeof text, "%s%s", CSV_HEADER,
             "NP-T-1,Tiago,Mendes-Example,1994-07-19,+1 905-555-0141,5555-141-001-TM,pt,Isabel Ruiz,physiotherapy,"
             "CPO,19877,northpoint,\"Inversion sprain of the right ankle, still limping on stairs\",ankle_sprain,"
             "routine,given,2026-11-16,lakeside,false,mon 07:30-12:00; tue 07:30-12:00; 3 07:30-12:00\n"
             "NP-T-2,Alma,Bad-Row,1990-02-31,+1 905-555-0142,5555-142-001-AB,en,Isabel Ruiz,physiotherapy,CPO,"
             "19877,northpoint,Neck pain,neck_pain,soonish,given,2026-11-16,,maybe,\n"
             "NP-T-3,Hannah,Kowalski-Demo,1986-05-11,+1 905-555-0143,5555-143-001-HK,en,Isabel Ruiz,"
             "physiotherapy,CPO,19877,northpoint,Tension headaches from desk work,tension_headache,routine,given,"
             "2026-11-16,northpoint,false,\n");
    return write_file("referrals.csv", text);
}

typedef struct {
    const char *clinic;
    size_t want;
} settled_t;

static bool settled(void *arg)
{
    settled_t *s = arg;
    const char *const args[] = {"--json", "status", NULL};
    run(&R, NULL, s->clinic, args);
    json_t *j = json_loads(R.out, 0, NULL);
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(j, i, v) {
        const char *st = json_string_value(json_object_get(v, "status"));
        n += st && (!strcmp(st, "ready") || !strcmp(st, "rejected") || !strcmp(st, "on-hold"));
    }
    json_decref(j);
    return n >= s->want;
}

/* ---- 1. import, rerun, snapshots ------------------------------------------------------- */

Test(cli, import_good_and_bad_rows_rerun_submits_nothing_twice_and_snapshots)
{
    net_start_services(&net, START);
    const char *csv = import_csv();
    RUN(65, "northpoint", "import", csv);
    golden("import_summary.txt", R.out, false);
    cr_expect(strstr(R.err, "import 2/2 (100%)"), "plain progress on a pipe: %s", R.err);
    cr_expect_null(strchr(R.err, '\r'), "no carriage returns when stderr is a pipe");

    /* the same file again: nothing is sent, the two are counted as accepted earlier */
    RUN(65, "northpoint", "--json", "import", csv);
    golden("import_rerun.json", R.out, true);
    json_t *j = out_json();
    cr_expect_eq(json_integer_value(json_object_get(j, "submitted")), 0);
    cr_expect_eq(json_integer_value(json_object_get(j, "already_accepted")), 2);
    cr_expect_eq(json_integer_value(json_object_get(j, "failed")), 1);
    json_decref(j);

    /* from a fresh home the CLI cannot tell: it sends both again, and the broker keeps one */
    char other[512];
    snprintf(other, sizeof other, "%s/other-home", net.dir);
    RUN(65, "northpoint", "--home", other, "--json", "import", csv);
    j = out_json();
    cr_expect_eq(json_integer_value(json_object_get(j, "submitted")), 2);
    json_decref(j);

    settled_t s = {"northpoint", 2};
    cr_assert(net_wait(settled, &s, WAIT_MS), "the imported referrals did not settle (logs in %s)", net.dir);
    /* each referral reached exactly one receiving clinic, once */
    static const char *const clinics[] = {"northpoint", "harbour", "lakeside", "eastgate", "riverdale", "laurier"};
    size_t seen[2] = {0};
    for (size_t c = 0; c < sizeof clinics / sizeof *clinics; c++) {
        RUN(0, clinics[c], "--json", "handoffs");
        json_t *h = out_json();
        size_t i;
        json_t *v;
        json_array_foreach(h, i, v) {
            const char *ref = json_string_value(json_object_get(v, "ref"));
            const char *reg = json_string_value(json_object_get(json_object_get(v, "referrer"), "registration"));
            if (ref && !strncmp(ref, "NP-T-", 5))      /* intake said which kind of body registers the referrer */
                cr_expect(reg && strstr(reg, " (college)"), "%s: referrer.registration is '%s'", ref, reg ? reg : "");
            seen[0] += ref && !strcmp(ref, "NP-T-1");
            seen[1] += ref && !strcmp(ref, "NP-T-3");
        }
        json_decref(h);
    }
    cr_expect_eq(seen[0], 1, "NP-T-1 handed off %zu times", seen[0]);
    cr_expect_eq(seen[1], 1, "NP-T-3 handed off %zu times", seen[1]);

    RUN(0, "northpoint", "inbox");
    golden("inbox_northpoint.txt", R.out, false);
    RUN(0, "northpoint", "--json", "inbox");
    golden("inbox_northpoint.json", R.out, true);
    RUN(0, "lakeside", "inbox");
    golden("inbox_lakeside.txt", R.out, false);
    RUN(0, "northpoint", "status");
    golden("status_northpoint.txt", R.out, false);
    RUN(0, "northpoint", "--json", "status");
    golden("status_northpoint.json", R.out, true);
}

/* ---- 2. the progress bar ----------------------------------------------------------------- */

static const char *ndjson_file(size_t n)
{
    static char text[1 << 16];
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "{\"ref\":\"NP-P-%zu\",\"patient\":{\"given_name\":\"P%zu\",\"family_name\":\"Test\","
                                "\"birth_date\":\"1980-01-01\",\"phone\":\"905-555-0100\",\"health_card\":"
                                "\"5555-100-%03zu-PT\"},\"referrer\":{\"name\":\"I R\",\"discipline\":\"physiotherapy\","
                                "\"registration_body\":\"CPO\",\"registration_number\":\"19877\",\"clinic_id\":"
                                "\"northpoint\"},\"reason\":\"knee\",\"conditions\":[\"ankle_sprain\"],\"priority\":"
                                "\"routine\",\"consent\":\"given\",\"referral_date\":\"2026-11-16\"}\n",
                                i, i, i);
    return write_file("many.ndjson", text);
}

Test(cli, progress_bar_only_on_a_terminal)
{
    const char *file = ndjson_file(40);
    /* stderr a pipe: plain lines, no control characters */
    RUN(0, "northpoint", "import", file);
    cr_expect_null(strchr(R.err, '\r'), "stderr: %s", R.err);
    cr_expect_null(strchr(R.err, '\x1b'), "stderr: %s", R.err);
    cr_expect(strstr(R.err, "import 40/40 (100%)"), "stderr: %s", R.err);

    /* a terminal: the bar is redrawn in place */
    char home[512];
    snprintf(home, sizeof home, "%s/pty-home", net.dir);
    const char *const args[] = {"--home", home, "import", file, NULL};
    const char *argv[64];
    child_argv("northpoint", args, argv);
    hx_proc_t p;
    cr_assert_eq(hx_spawn(&(hx_spawn_opts_t){.argv = argv, .env = child_env(NULL), .pty = true}, &p), 0);
    static char tty[1 << 16];
    hx_spawn_read(&p, tty, sizeof tty, NULL, 0, 60000);    /* until the child closes the pty */
    int status = -1;
    hx_spawn_stop(p.pid, 0, 60000, &status);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d: %s", status, tty);
    cr_expect(strstr(tty, "\rimport ["), "a carriage-return redraw: %s", tty);
    cr_expect(strstr(tty, "40/40  100%"), "%s", tty);
    cr_expect(strstr(tty, "\x1b[K"), "the rest of the line is cleared: %s", tty);
}

/* ---- 3. watch ---------------------------------------------------------------------------- */

typedef struct {
    int fd;
    char buf[1 << 16];
    size_t len;
    const char *needle;
} reader_t;

static bool output_has(void *arg)
{
    reader_t *r = arg;
    ssize_t n;
    while ((n = read(r->fd, r->buf + r->len, sizeof r->buf - 1 - r->len)) > 0)
        r->len += (size_t)n;
    r->buf[r->len] = '\0';
    return strstr(r->buf, r->needle) != NULL;
}

Test(cli, watch_prints_a_line_when_a_status_arrives)
{
    net_start_services(&net, START);
    const char *const args[] = {"--json", "--interval-ms", "100", "watch", NULL};
    const char *argv[64];
    child_argv("northpoint", args, argv);
    hx_proc_t p;
    cr_assert_eq(hx_spawn(&(hx_spawn_opts_t){.argv = argv, .env = child_env(NULL), .out_pipe = true}, &p), 0);
    fcntl(p.out, F_SETFL, O_NONBLOCK);
    RUN(0, "northpoint", "submit", net_src("deploy/sample/referrals/04-tension-headache.json"));
    reader_t r = {.fd = p.out, .needle = "\"status\":\"ready\""};
    cr_assert(net_wait(output_has, &r, WAIT_MS), "watch printed no ready status: %s (logs in %s)", r.buf, net.dir);
    /* one JSON object per line */
    char *line = strtok(r.buf, "\n");
    cr_assert_not_null(line);
    json_t *j = json_loads(line, 0, NULL);
    cr_expect_not_null(j, "a line is one JSON object: %s", line);
    cr_expect_str_eq(json_string_value(json_object_get(j, "referral_id")), "R-H8JZ1RF8N29WEWAS");
    json_decref(j);
    int status = -1;
    hx_spawn_stop(p.pid, SIGTERM, 10000, &status);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "watch ends with exit 0 on SIGTERM (status %d)", status);
    close(p.out);
}

/* ---- 4. top ------------------------------------------------------------------------------ */

Test(cli, top_prints_one_snapshot_when_not_a_terminal)
{
    RUN(0, NULL, "--admin", "ops", "top");
    cr_expect(strstr(R.out, "handoff top  broker tcp://127.0.0.1:"), "%s", R.out);
    cr_expect(strstr(R.out, "\nQUEUE "), "%s", R.out);
    cr_expect_null(strchr(R.out, '\x1b'), "no screen control when stdout is a pipe");
    RUN(0, NULL, "--admin", "ops", "top", "--json");
    json_t *j = out_json();
    cr_expect(json_is_array(json_object_get(j, "queues")));
    cr_expect(json_is_object(json_object_get(j, "totals")));
    json_decref(j);
}

/* ---- 5. settings and help (no broker needed) ------------------------------------------- */

TestSuite(cli_settings, .init = setup, .fini = teardown, .timeout = 120);

static const char *setting(json_t *j, const char *name, const char *field)
{
    const char *s = json_string_value(json_object_get(json_object_get(json_object_get(j, "settings"), name), field));
    return s ? s : "";
}

Test(cli_settings, flag_over_environment_over_file_over_default)
{
    const char *ini = write_file("clinic.ini", "broker = tcp://file:1\nclinic = fileclinic\ntimeout-ms = 4000\n"
                                               "window = 8\n");
    char cfg[600];
    snprintf(cfg, sizeof cfg, "HANDOFF_CONFIG=%s", ini);
    const char *const env[] = {cfg, "HANDOFF_CLINIC=envclinic", "HANDOFF_TIMEOUT_MS=5000", NULL};
    const char *const args[] = {"--json", "--timeout-ms", "6000", "config", NULL};
    char saved[128];
    snprintf(saved, sizeof saved, "%s", net.endpoint);
    net.endpoint[0] = '\0';                     /* no --broker flag in this run */
    run(&R, env, NULL, args);
    snprintf(net.endpoint, sizeof net.endpoint, "%s", saved);
    cr_assert_eq(R.status, 0, "%s", R.err);
    json_t *j = out_json();
    cr_expect_str_eq(setting(j, "broker", "value"), "tcp://file:1");
    char where[600];
    snprintf(where, sizeof where, "%s:1", ini);
    cr_expect_str_eq(setting(j, "broker", "where"), where);
    cr_expect_str_eq(setting(j, "clinic", "value"), "envclinic");
    cr_expect_str_eq(setting(j, "clinic", "from"), "env");
    cr_expect_str_eq(setting(j, "timeout-ms", "value"), "6000");
    cr_expect_str_eq(setting(j, "timeout-ms", "from"), "flag");
    cr_expect_str_eq(setting(j, "window", "value"), "8");
    cr_expect_str_eq(setting(j, "admin", "from"), "default");
    json_decref(j);
}

Test(cli_settings, bad_values_name_the_setting_where_it_came_from_and_why)
{
    const char *ini = write_file("bad.ini", "broker = tcp://x:1\n# fine so far\ninterval-ms = often\n");
    RUN(2, "northpoint", "--config", ini, "inbox");
    char want[800];
    snprintf(want, sizeof want, "handoff: %s:3: interval-ms: must be a whole number of milliseconds from 100 to "
             "3600000, got 'often' (--config)\n", ini);
    cr_expect_str_eq(R.err, want);
    ini = write_file("typo.ini", "clinc = northpoint\n");
    RUN(2, NULL, "--config", ini, "status");
    cr_expect(strstr(R.err, ":1: unknown setting 'clinc' (did you mean 'clinic'?"), "%s", R.err);

    const char *const env[] = {"HANDOFF_WINDOW=lots", NULL};
    const char *const args[] = {"status", NULL};
    run(&R, env, "northpoint", args);
    cr_expect_eq(R.status, 2);
    cr_expect_str_eq(R.err, "handoff: HANDOFF_WINDOW: window: must be a whole number of requests in flight from 1 "
                            "to 1000, got 'lots'\n");
    RUN(2, "northpoint", "--timeout-ms", "5", "status");
    cr_expect_str_eq(R.err, "handoff: --timeout-ms: must be a whole number of milliseconds from 100 to 600000, got "
                            "'5'\n");
    RUN(2, NULL, "--config", "/nonexistent/handoff.ini", "status");
    cr_expect(strstr(R.err, "/nonexistent/handoff.ini: No such file or directory"), "%s", R.err);
}

Test(cli_settings, every_command_has_a_help_page_with_examples)
{
    static const char *const cmds[] = {"inbox", "status", "submit", "import", "watch", "handoffs", "accept",
                                       "decline", "start", "complete", "fail", "revoke", "top", "dlq", "health", "config",
                                       "keygen", "datakey", "audit"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        RUN(0, NULL, "help", cmds[i]);
        cr_expect(strstr(R.out, "usage: handoff"), "%s: %s", cmds[i], R.out);
        cr_expect(strstr(R.out, "example"), "%s has examples", cmds[i]);
        RUN(0, NULL, cmds[i], "--help");
    }
    RUN(0, NULL, "--help");
    cr_expect(strstr(R.out, "exit codes:\n  0 "), "%s", R.out);
    cr_expect(strstr(R.out, "  65  input data is invalid"), "%s", R.out);
    RUN(2, NULL, "help", "frobnicate");
    cr_expect(strstr(R.err, "no command 'frobnicate'"), "%s", R.err);
    RUN(2, NULL, "frobnicate");
}

/* ---- 6. the mailbox: drained past max_frame; clinical types only from their issuers ----- */

#define SMALL_FRAME 65536

static void setup_small_frame(void)
{
    net_init(&net);
    char frame[16];
    snprintf(frame, sizeof frame, "%d", SMALL_FRAME);
    const char *extra[] = {"--max-frame", frame, NULL};
    net_start_broker(&net, extra);
}

TestSuite(cli_mailbox, .init = setup_small_frame, .fini = teardown, .timeout = 120);

/* A worker session spoken by hand (the client library opens clinic and admin sessions only):
 * what a service's outputs into a clinic's mailbox look like to the broker. */
typedef struct {
    void *zctx, *sock;
} raw_worker_t;

static void raw_send(raw_worker_t *w, const Handoff__Envelope *e)
{
    size_t n = handoff__envelope__get_packed_size(e);
    uint8_t *buf = malloc(n ? n : 1);
    cr_assert_not_null(buf);
    handoff__envelope__pack(e, buf);
    cr_assert_geq(zmq_send(w->sock, buf, n, 0), 0);
    free(buf);
}

/* The broker's reply to request id (heartbeats skipped); fails the test after 10 s. */
static Handoff__Envelope *raw_reply(raw_worker_t *w, const uint8_t id[HX_ID_LEN])
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int got = zmq_msg_recv(&m, w->sock, 0);
        cr_assert_geq(got, 0, "no reply from the broker (see %s/broker.log)", net.dir);
        Handoff__Envelope *e = handoff__envelope__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        cr_assert_not_null(e, "the broker's reply does not decode");
        if (e->correlation_id.len == HX_ID_LEN && memcmp(e->correlation_id.data, id, HX_ID_LEN) == 0)
            return e;
        handoff__envelope__free_unpacked(e, NULL);
    }
}

static void raw_worker_open(raw_worker_t *w, const char *service)
{
    w->zctx = zmq_ctx_new();
    w->sock = zmq_socket(w->zctx, ZMQ_DEALER);
    int zero = 0, timeout = 10000;
    zmq_setsockopt(w->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(w->sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    cr_assert_eq(zmq_connect(w->sock, net.endpoint), 0);
    uint8_t id[HX_ID_LEN];
    hx_id_random(id);
    Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
    e.version = 1;
    e.kind = HANDOFF__KIND__KIND_HELLO;
    e.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    e.role = HANDOFF__ROLE__ROLE_WORKER;
    e.name = (char *)service;
    e.credit = 1;
    raw_send(w, &e);
    Handoff__Envelope *r = raw_reply(w, id);
    cr_assert_eq(r->kind, HANDOFF__KIND__KIND_WELCOME, "worker %s: %s", service, r->error_text);
    handoff__envelope__free_unpacked(r, NULL);
}

/* Submits one message to mailbox `to` and waits for the answer: ERR_NONE when accepted. */
static Handoff__ErrorCode raw_worker_put(raw_worker_t *w, const char *to, const char *type, const uint8_t *payload,
                                         size_t len, uint8_t msg_id[HX_ID_LEN])
{
    uint8_t req[HX_ID_LEN];
    hx_id_random(req);
    hx_id_random(msg_id);
    Handoff__Address a = HANDOFF__ADDRESS__INIT;
    a.kind = HANDOFF__ADDRESS_KIND__ADDRESS_MAILBOX;
    a.name = (char *)to;
    Handoff__Message m = HANDOFF__MESSAGE__INIT, *mp = &m;
    m.id = (ProtobufCBinaryData){HX_ID_LEN, msg_id};
    m.to = &a;
    m.type = (char *)type;
    m.payload = (ProtobufCBinaryData){len, (uint8_t *)payload};
    Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
    e.version = 1;
    e.kind = HANDOFF__KIND__KIND_SUBMIT;
    e.id = (ProtobufCBinaryData){HX_ID_LEN, req};
    e.n_messages = 1;
    e.messages = &mp;
    raw_send(w, &e);
    Handoff__Envelope *r = raw_reply(w, req);
    Handoff__ErrorCode code = r->kind == HANDOFF__KIND__KIND_ACCEPTED ? HANDOFF__ERROR_CODE__ERR_NONE : r->error_code;
    cr_assert(r->kind == HANDOFF__KIND__KIND_ACCEPTED || r->kind == HANDOFF__KIND__KIND_ERROR, "kind %d", r->kind);
    handoff__envelope__free_unpacked(r, NULL);
    return code;
}

static void raw_worker_close(raw_worker_t *w)
{
    uint8_t id[HX_ID_LEN];
    hx_id_random(id);
    Handoff__Envelope e = HANDOFF__ENVELOPE__INIT;
    e.version = 1;
    e.kind = HANDOFF__KIND__KIND_BYE;
    e.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    raw_send(w, &e);
    zmq_close(w->sock);
    zmq_ctx_term(w->zctx);
}

/* A handoff of referral rid from northpoint to receiver, its history padded to about pad
 * bytes (packed, malloc'd). */
static uint8_t *handoff_payload(const char *rid, const char *receiver, size_t pad, size_t *len)
{
    char *history = malloc(pad + 1);
    cr_assert_not_null(history);
    for (size_t i = 0; i < pad; i++)
        history[i] = "Left knee replaced 2026-09; stiff on stairs. "[i % 45];
    history[pad] = '\0';
    Handoff__Patient pt = HANDOFF__PATIENT__INIT;
    pt.given_name = "Ana";
    pt.family_name = "Drain-Example";
    pt.birth_date = "1970-03-04";
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    r.referral_id = (char *)rid;
    r.ref = (char *)rid + 2;
    r.referring_clinic = "northpoint";
    r.patient = &pt;
    r.reason = "Knee rehabilitation after replacement";
    r.history = history;
    Handoff__Booking b = HANDOFF__BOOKING__INIT;
    b.referral_id = (char *)rid;
    b.discipline = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
    b.therapist_id = "t-lucas";
    b.therapist_name = "Lucas Ferreira";
    b.clinic_id = (char *)receiver;
    b.start = "2026-11-23T08:00";
    b.minutes = 60;
    Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
    h.referral_id = (char *)rid;
    h.referral = &r;
    h.booking = &b;
    *len = handoff__handoff__get_packed_size(&h);
    uint8_t *buf = malloc(*len);
    cr_assert_not_null(buf);
    handoff__handoff__pack(&h, buf);
    free(history);
    return buf;
}

/* A status update of referral rid (packed, malloc'd). */
static uint8_t *status_payload(const char *rid, Handoff__TaskStatus status, const char *event, const char *by,
                               const char *reason, size_t *len)
{
    Handoff__StatusUpdate s = HANDOFF__STATUS_UPDATE__INIT;
    s.referral_id = (char *)rid;
    s.ref = (char *)rid + 2;
    s.status = status;
    s.event = (char *)event;
    s.by = (char *)by;
    s.reason = (char *)reason;
    s.at_ms = (uint64_t)time(NULL) * 1000u;
    *len = handoff__status_update__get_packed_size(&s);
    uint8_t *buf = malloc(*len ? *len : 1);
    cr_assert_not_null(buf);
    handoff__status_update__pack(&s, buf);
    return buf;
}

/* How many messages one FETCH of clinic's mailbox hands out (then puts back): 0 when the
 * mailbox is empty, fewer than are waiting when they do not fit in one reply. */
static size_t one_fetch(const char *clinic)
{
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, clinic);
    hx_batch_t *b = NULL;
    cr_assert_eq(hx_client_fetch(c, 100, &b), 0, "%s", hx_client_error(c));
    size_t n = b->count;
    hx_batch_destroy(&b);
    hx_client_destroy(&c);
    return n;
}

static size_t json_count(void)
{
    json_t *j = out_json();
    size_t n = json_array_size(j);
    json_decref(j);
    return n;
}

Test(cli_mailbox, inbox_drains_mailbox_larger_than_max_frame)
{
    /* ten handoffs of ~20 KB from scheduling: about 200 KB, while one FETCH reply holds at most
     * SMALL_FRAME bytes (three of them) */
    enum { N = 10, PAD = 20000 };
    raw_worker_t w;
    raw_worker_open(&w, "scheduling");
    for (int i = 0; i < N; i++) {
        char rid[24];
        snprintf(rid, sizeof rid, "R-00000000000DR%03d", i);
        size_t len;
        uint8_t *p = handoff_payload(rid, "lakeside", PAD, &len);
        uint8_t id[HX_ID_LEN];
        cr_assert_eq(raw_worker_put(&w, "lakeside", "handoff.Handoff", p, len, id), HANDOFF__ERROR_CODE__ERR_NONE);
        free(p);
    }
    raw_worker_close(&w);
    size_t first = one_fetch("lakeside");
    cr_assert(first > 0 && first < N, "one FETCH reply carries %zu of the %d: the test needs a mailbox larger than "
                                      "one reply", first, N);

    RUN(0, "lakeside", "inbox");
    cr_expect(strstr(R.out, "NEW (10)"), "all ten handoffs are new in the inbox:\n%s\nstderr: %s", R.out, R.err);
    size_t left = one_fetch("lakeside");
    cr_assert_eq(left, 0, "one inbox left messages in the mailbox (a FETCH reply's worth was stored): %s", R.out);
    RUN(0, "lakeside", "--json", "handoffs");
    cr_expect_eq(json_count(), N, "every handoff is in the local store");
    cr_expect_null(strstr(R.err, "dropped"), "%s", R.err);
}

/* Submits as clinic from_clinic to mailbox `to`: 0, or the broker's error code. */
static int clinic_put(const char *from_clinic, const char *to, const char *type, const uint8_t *payload, size_t len,
                      char hex[2 * HX_ID_LEN + 1])
{
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, from_clinic);
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_MAILBOX;
    m.to = to;
    m.type = type;
    m.payload = payload;
    m.payload_len = len;
    int rc = hx_client_submit(c, &m, 1);
    cr_assert(rc == 0 || rc == HX_EREFUSED, "%s", hx_client_error(c));
    int code = rc ? (int)hx_client_error_code(c) : 0;
    hx_client_destroy(&c);
    hx_id_hex(m.id, hex);
    return code;
}

/* Puts a forged message into mailbox `to` as clinic `from_clinic`. A broker with a routing
 * policy refuses that (ERR_FORBIDDEN); then the broker is started again with a policy file
 * that lets anyone put anything anywhere — a deployment's mistake the receivers must survive —
 * and the forgery sent again. Call it first: a restarted broker (in memory) starts empty.
 * Writes the message id (hex). */
static void forge(const char *from_clinic, const char *to, const char *type, const uint8_t *payload, size_t len,
                  char hex[2 * HX_ID_LEN + 1])
{
    int code = clinic_put(from_clinic, to, type, payload, len, hex);
    if (code == HANDOFF__ERROR_CODE__ERR_FORBIDDEN) {
        const char *lax = write_file("lax-policy.json", "{\"note\": \"anyone may put anything anywhere\", "
                                                        "\"rules\": [{\"from\": \"*\", \"to\": \"*\", "
                                                        "\"types\": [\"*\"]}]}\n");
        cr_assert_eq(net_stop(&net, net_pid(&net, "broker"), SIGTERM), 0, "the broker stops cleanly");
        char frame[16];
        snprintf(frame, sizeof frame, "%d", SMALL_FRAME);
        const char *extra[] = {"--max-frame", frame, "--policy", lax, NULL};
        net_start_broker(&net, extra);
        code = clinic_put(from_clinic, to, type, payload, len, hex);
    }
    cr_assert_eq(code, 0, "the broker refused the forgery (error %d): nothing reaches the receiver to test", code);
}

/* The stderr line a receiver prints for a dropped message. */
static void expect_dropped_line(const char *err, const char *type, const char *sender, const char *hex)
{
    char want[256];
    const char *why = !strcmp(type, "handoff.Handoff")
                          ? "only service:scheduling issues handoff.Handoff"
                          : "only service:intake, service:triage or service:scheduling issue handoff.StatusUpdate";
    snprintf(want, sizeof want, "handoff: dropped %s %s from %s: %s\n", type, hex, sender, why);
    cr_expect(strstr(err, want), "stderr names the dropped message: want '%s' in:\n%s", want, err);
}

Test(cli_mailbox, forged_handoff_from_a_mailbox_is_dropped)
{
    /* a genuine handoff from scheduling, and one northpoint forged into lakeside's mailbox */
    size_t glen, flen;
    uint8_t *genuine = handoff_payload("R-0000000000000G01", "lakeside", 100, &glen);
    uint8_t *forged = handoff_payload("R-0000000000000F01", "lakeside", 100, &flen);
    char hex[2 * HX_ID_LEN + 1];
    forge("northpoint", "lakeside", "handoff.Handoff", forged, flen, hex);
    raw_worker_t w;
    raw_worker_open(&w, "scheduling");
    uint8_t id[HX_ID_LEN];
    cr_assert_eq(raw_worker_put(&w, "lakeside", "handoff.Handoff", genuine, glen, id), HANDOFF__ERROR_CODE__ERR_NONE);
    raw_worker_close(&w);
    free(genuine);
    free(forged);

    RUN(0, "lakeside", "inbox");
    cr_expect(strstr(R.out, "R-0000000000000G01"), "the genuine handoff is shown:\n%s", R.out);
    cr_expect_null(strstr(R.out, "R-0000000000000F01"), "the forged handoff is not shown:\n%s", R.out);
    cr_expect(strstr(R.out, "NEW (1)\n"), "%s", R.out);
    cr_expect(strstr(R.out, "\n1 message dropped: not from its issuing service\n"), "%s", R.out);
    expect_dropped_line(R.err, "handoff.Handoff", "mailbox:northpoint", hex);
    cr_expect_eq(one_fetch("lakeside"), 0, "the dropped message is acked: it does not come back");

    RUN(0, "lakeside", "--json", "handoffs");
    json_t *j = out_json();
    cr_expect_eq(json_array_size(j), 1, "only the genuine handoff is stored: %s", R.out);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "referral_id")), "R-0000000000000G01");
    json_decref(j);
    RUN(0, "lakeside", "inbox");
    cr_expect_null(strstr(R.out, "dropped"), "a dropped message is reported by the run that dropped it: %s", R.out);
}

Test(cli_mailbox, forged_status_update_from_a_mailbox_is_dropped)
{
    /* lakeside "cancels" northpoint's referral in the name of scheduling; triage's genuine
     * update of another referral arrives too */
    size_t glen, flen;
    uint8_t *genuine = status_payload("R-0000000000000G02", HANDOFF__TASK_STATUS__TASK_RECEIVED, "receive", "triage",
                                      "triaged: physiotherapy, routine", &glen);
    uint8_t *forged = status_payload("R-0000000000000F02", HANDOFF__TASK_STATUS__TASK_CANCELLED, "revoke", "scheduling",
                                     "revoked by the referring clinic", &flen);
    char hex[2 * HX_ID_LEN + 1];
    forge("lakeside", "northpoint", "handoff.StatusUpdate", forged, flen, hex);
    raw_worker_t w;
    raw_worker_open(&w, "triage");
    uint8_t id[HX_ID_LEN];
    cr_assert_eq(raw_worker_put(&w, "northpoint", "handoff.StatusUpdate", genuine, glen, id),
                 HANDOFF__ERROR_CODE__ERR_NONE);
    raw_worker_close(&w);
    free(genuine);
    free(forged);

    RUN(0, "northpoint", "status");
    cr_expect(strstr(R.out, "R-0000000000000G02"), "the genuine update is shown:\n%s", R.out);
    cr_expect_null(strstr(R.out, "R-0000000000000F02"), "the forged update is not shown:\n%s", R.out);
    cr_expect_null(strstr(R.out, "cancelled"), "%s", R.out);
    cr_expect(strstr(R.out, "1 referral(s) with a status at northpoint"), "%s", R.out);
    expect_dropped_line(R.err, "handoff.StatusUpdate", "mailbox:lakeside", hex);
    RUN(4, "northpoint", "status", "R-0000000000000F02");
    RUN(0, "northpoint", "inbox");
    cr_expect_null(strstr(R.out, "R-0000000000000F02"), "%s", R.out);
    cr_expect_eq(one_fetch("northpoint"), 0, "the dropped message is acked: it does not come back");
}
