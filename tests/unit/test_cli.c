/* Unit: the clinic CLI's pure parts — aligned tables, readable times, settings with their
 * precedence and errors (flag, environment, file:line), endpoints, the CURVE key files (found
 * in the home directory, and every way one can be wrong), CSV and NDJSON import files, the
 * inbox's groups (the clinic library's hx_inbox.h) and tables, the top screen from two stats
 * samples, the progress line. The inbox's folders are tests/unit/test_inbox.c's. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_config.h"
#include "cli_fmt.h"
#include "cli_keys.h"
#include "hx_curve.h"
#include "hx_import.h"
#include "cli_inbox.h"
#include "cli_progress.h"
#include "cli_table.h"
#include "cli_top.h"
#include "hx_refjson.h"

/* What f printed (f is a tmpfile), malloc'd. */
static char *slurp(FILE *f)
{
    long n = ftell(f);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static char *write_temp(const char *suffix, const char *text)
{
    static char path[8][128];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, sizeof path[0], "/tmp/hx-cli-unit-XXXXXX%s", suffix);
    int fd = mkstemps(p, (int)strlen(suffix));
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return p;
}

/* ---- tables -------------------------------------------------------------------------------- */

Test(table, columns_align_by_characters_not_bytes)
{
    const char *head[] = {"NAME", "N", "NOTE"};
    cli_table_t *t = cli_table_new(3, head, "lrl");
    const char *r1[] = {"Zoë Ça", "7", "a\nb"};
    const char *r2[] = {"Al", "1234", ""};
    cli_table_add(t, r1);
    cli_table_add(t, r2);
    cr_assert_eq(cli_table_rows(t), 2);
    FILE *f = tmpfile();
    cli_table_print(t, f);
    char *s = slurp(f);
    cr_expect_str_eq(s, "NAME       N  NOTE\n"
                        "Zoë Ça     7  a b\n"
                        "Al      1234\n");
    free(s);
    fclose(f);
    cli_table_destroy(&t);
    cr_expect_null(t);
}

Test(table, a_capped_column_ends_in_an_ellipsis)
{
    const char *head[] = {"A", "B"};
    cli_table_t *t = cli_table_new(2, head, NULL);
    cli_table_cap(t, 0, 5);
    const char *r[] = {"abcdefgh", "x"};
    cli_table_add(t, r);
    FILE *f = tmpfile();
    cli_table_print(t, f);
    char *s = slurp(f);
    cr_expect_str_eq(s, "A      B\nabcd…  x\n");
    free(s);
    fclose(f);
    cli_table_destroy(&t);
}

/* ---- times and numbers ------------------------------------------------------------------- */

Test(fmt, times_read_like_people_say_them)
{
    setenv("TZ", "UTC", 1);
    tzset();
    char b[CLI_FMT_LEN];
    uint64_t t = 1795615500000ull;          /* 2026-11-25 14:05 UTC */
    cr_expect_str_eq(cli_time_abs(t, b), "2026-11-25 14:05");
    cr_expect_str_eq(cli_time_abs(0, b), "-");
    cr_expect_str_eq(cli_time_ago(t + 2000, t, b), "just now");
    cr_expect_str_eq(cli_time_ago(t + 42000, t, b), "42s ago");
    cr_expect_str_eq(cli_time_ago(t + 3 * 60000 + 5000, t, b), "3m ago");
    cr_expect_str_eq(cli_time_ago(t + 5 * 3600000ull, t, b), "5h ago");
    cr_expect_str_eq(cli_time_ago(t + 2 * 86400000ull, t, b), "2d ago");
    cr_expect_str_eq(cli_time_ago(t + 8 * 86400000ull, t, b), "2026-11-25 14:05", "a week on: the date");
    cr_expect_str_eq(cli_time_ago(t, t + 120000, b), "2026-11-25 14:07", "the future: the date");
    cr_expect_str_eq(cli_duration(850, b), "850ms");
    cr_expect_str_eq(cli_duration(185000, b), "3m05s");
    cr_expect_str_eq(cli_duration(7800000, b), "2h10m");
    cr_expect_str_eq(cli_bytes(512, b), "512 B");
    cr_expect_str_eq(cli_bytes(3500, b), "3.4 KiB");
    cr_expect_str_eq(cli_rate(0, b), "0");
    cr_expect_str_eq(cli_rate(0.4, b), "0.4");
    cr_expect_str_eq(cli_rate(3200, b), "3200");
    cr_expect_str_eq(cli_rate(32000, b), "32.0k");
    cr_expect_str_eq(cli_slot_text("2026-11-24T09:00", NULL, b), "2026-11-24 09:00");
    cr_expect_str_eq(cli_slot_text("2026-11-24T09:00", "-08:00", b), "2026-11-24 09:00 -08:00");
    cr_expect_str_eq(cli_slot_text("soon", "-08:00", b), "soon");
    setenv("HANDOFF_TEST_NOW_MS", "1795615500000", 1);
    cr_expect_eq(cli_now_ms(), t);
    unsetenv("HANDOFF_TEST_NOW_MS");
}

Test(progress, the_line_has_done_total_rate_and_eta)
{
    char b[256];
    cr_expect_str_eq(cli_progress_text(b, sizeof b, 250, 1000, 1000, 10), "[###.......]  250/1000   25%  250/s  ETA 3s");
    cr_expect_str_eq(cli_progress_text(b, sizeof b, 250, 1000, 1000, 0), "250/1000 (25%), 250/s, ETA 3s");
    cr_expect_str_eq(cli_progress_text(b, sizeof b, 10, 10, 2000, 0), "10/10 (100%), 5.0/s, done in 2s");
    cr_expect_str_eq(cli_progress_text(b, sizeof b, 0, 10, 0, 0), "0/10 (0%), 0/s, ETA -");
}

Test(progress, a_pipe_gets_plain_lines_a_terminal_gets_redraws)
{
    FILE *f = tmpfile();
    cli_progress_t p;
    cli_progress_start(&p, f, 0, "import", 100, 0);
    for (size_t i = 1; i <= 100; i++)
        cli_progress_update(&p, i, i * 10);
    cli_progress_finish(&p, 1000);
    char *s = slurp(f);
    cr_expect_null(strchr(s, '\r'));
    cr_expect_null(strchr(s, '\x1b'));
    size_t lines = 0;
    for (char *q = s; *q; q++)
        lines += *q == '\n';
    cr_expect_eq(lines, 10, "9 tenths and the end: %zu lines\n%s", lines, s);
    free(s);
    fclose(f);

    f = tmpfile();
    cli_progress_start(&p, f, 1, "import", 100, 0);
    for (size_t i = 1; i <= 100; i++)
        cli_progress_update(&p, i, i * 10);  /* 1 s in all: at most 10 redraws */
    cli_progress_finish(&p, 1000);
    s = slurp(f);
    size_t cr = 0;
    for (char *q = s; *q; q++)
        cr += *q == '\r';
    cr_expect(cr >= 3 && cr <= 13, "redraws: %zu", cr);
    cr_expect_eq(s[strlen(s) - 1], '\n');
    free(s);
    fclose(f);
}

/* ---- settings ------------------------------------------------------------------------------ */

static const char *fake_env(const char *name)
{
    if (!strcmp(name, "HANDOFF_BROKER"))
        return "tcp://env:1";
    if (!strcmp(name, "HANDOFF_CLINIC"))
        return "envclinic";
    if (!strcmp(name, "HANDOFF_ADMIN"))
        return "";                          /* empty: as if unset */
    return NULL;
}

static const char *bad_env(const char *name)
{
    return strcmp(name, "HANDOFF_WINDOW") == 0 ? "0" : NULL;
}

Test(config, flag_beats_environment_beats_file_beats_default)
{
    const char *file = write_temp(".ini", "# clinic settings\n"
                                          "broker = tcp://file:1\n"
                                          "clinic = fileclinic\n"
                                          "[handoff]\n"
                                          "timeout-ms = 5000 ; inline comment\n"
                                          "home = \"/tmp/quoted home\"\n");
    cli_config_t c;
    char err[512];
    cli_config_init(&c);
    cr_assert_eq(cli_config_flag(&c, CLI_SET_BROKER, "tcp://flag:1", err, sizeof err), 0, "%s", err);
    cr_assert_eq(cli_config_env(&c, fake_env, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cli_config_file(&c, file, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cli_config_get(&c, CLI_SET_BROKER), "tcp://flag:1");
    cr_expect_str_eq(c.v[CLI_SET_BROKER].where, "--broker");
    cr_expect_str_eq(cli_config_get(&c, CLI_SET_CLINIC), "envclinic");
    cr_expect_str_eq(c.v[CLI_SET_CLINIC].where, "HANDOFF_CLINIC");
    cr_expect_eq(cli_config_u32(&c, CLI_SET_TIMEOUT_MS), 5000);
    char where[300];
    snprintf(where, sizeof where, "%s:5", file);
    cr_expect_str_eq(c.v[CLI_SET_TIMEOUT_MS].where, where);
    cr_expect_str_eq(cli_config_get(&c, CLI_SET_HOME), "/tmp/quoted home");
    cr_expect_str_eq(cli_config_get(&c, CLI_SET_ADMIN), "operator");
    cr_expect_eq(c.v[CLI_SET_ADMIN].from, CLI_FROM_DEFAULT);
    cr_expect_null(cli_config_get(&c, CLI_SET_KEY));
    cli_config_free(&c);
    unlink(file);
}

/* The error for a config file holding text, or "" when it loads. */
static const char *file_error(const char *text, char *err, size_t cap, const char **path)
{
    *path = write_temp(".ini", text);
    cli_config_t c;
    cli_config_init(&c);
    err[0] = '\0';
    cli_config_file(&c, *path, err, cap);
    cli_config_free(&c);
    unlink(*path);
    return err;
}

Test(config, a_bad_file_names_the_line_the_setting_and_why)
{
    char err[1024], want[600];
    const char *path;
    file_error("broker = tcp://x:1\n\ntimeout-ms = soon\n", err, sizeof err, &path);
    snprintf(want, sizeof want, "%s:3: timeout-ms: must be a whole number of milliseconds from 100 to 600000, got "
             "'soon'", path);
    cr_expect_str_eq(err, want);
    file_error("brokr = tcp://x:1\n", err, sizeof err, &path);
    cr_expect(strstr(err, ":1: unknown setting 'brokr' (did you mean 'broker'?"), "%s", err);
    file_error("[profile]\nbroker = tcp://x:1\n", err, sizeof err, &path);
    cr_expect(strstr(err, ":2: unknown section [profile]"), "%s", err);
    file_error("clinic = north point\n", err, sizeof err, &path);
    cr_expect(strstr(err, ":1: clinic: must be 1 to 64 characters of [A-Za-z0-9._-], got 'north point'"), "%s", err);
    file_error("just words\n", err, sizeof err, &path);
    cr_expect(strstr(err, ":1: not a 'name = value' line"), "%s", err);
    file_error("broker = udp://x\n", err, sizeof err, &path);
    cr_expect(strstr(err, ":1: broker: must be a ZeroMQ endpoint"), "%s", err);
    char longline[400];
    memset(longline, 'a', sizeof longline);
    memcpy(longline, "home = ", 7);
    longline[sizeof longline - 2] = '\n';
    longline[sizeof longline - 1] = '\0';
    file_error(longline, err, sizeof err, &path);
    cr_expect(strstr(err, ":1: a line longer than"), "%s", err);

    cli_config_t c;
    cli_config_init(&c);
    cr_expect_neq(cli_config_file(&c, "/nonexistent/handoff.ini", err, sizeof err), 0);
    cr_expect(strstr(err, "/nonexistent/handoff.ini: No such file"), "%s", err);
    cr_expect_neq(cli_config_env(&c, bad_env, err, sizeof err), 0);
    cr_expect_str_eq(err, "HANDOFF_WINDOW: window: must be a whole number of requests in flight from 1 to 1000, got '0'");
    cr_expect_neq(cli_config_flag(&c, CLI_SET_INTERVAL_MS, "-5", err, sizeof err), 0);
    cr_expect_str_eq(err, "--interval-ms: must be a whole number of milliseconds from 100 to 3600000, got '-5'");
    cli_config_free(&c);
}

Test(config, an_endpoint_needs_a_host_and_a_port)
{
    const char *good[] = {"tcp://broker.example.org:5555", "tcp://127.0.0.1:1", "tcp://[::1]:65535",
                          "tcp://10.0.0.2;broker:5555", "ipc:///run/handoff/broker.sock"};
    const char *bad[] = {"tcp://broker", "tcp://broker:", "tcp://:5555", "tcp://broker:0", "tcp://broker:65536",
                         "tcp://broker:55x", "tcp://broker :5555", "tcp://[]:5555", "ipc://", "broker:5555",
                         "http://broker:5555"};
    char err[512];
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cli_config_t c;
        cli_config_init(&c);
        cr_expect_eq(cli_config_flag(&c, CLI_SET_BROKER, good[i], err, sizeof err), 0, "%s: %s", good[i], err);
        cli_config_free(&c);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cli_config_t c;
        cli_config_init(&c);
        err[0] = '\0';
        cr_expect_neq(cli_config_flag(&c, CLI_SET_BROKER, bad[i], err, sizeof err), 0, "%s was taken", bad[i]);
        cr_expect(strstr(err, "--broker: must be a ZeroMQ endpoint"), "%s: %s", bad[i], err);
        cr_expect(strstr(err, bad[i]), "the error shows the value: %s", err);
        cli_config_free(&c);
    }
}

Test(config, the_broker_may_be_the_nodes_of_a_replicated_broker)
{
    char err[512] = "";
    cli_config_t c;
    cli_config_init(&c);
    const char *nodes = "tcp://10.0.0.1:5555,tcp://10.0.0.2:5555,ipc:///run/handoff/broker.sock";
    cr_expect_eq(cli_config_flag(&c, CLI_SET_BROKER, nodes, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(c.v[CLI_SET_BROKER].value, nodes);
    const struct {
        const char *list, *want;
    } bad[] = {
        {"tcp://a:1,,tcp://b:2", "--broker: endpoint 2 of 3 is empty"},
        {"tcp://a:1,tcp://b", "--broker: endpoint 2 of 2: must be a ZeroMQ endpoint tcp://HOST:PORT with a host and "
                              "a port from 1 to 65535, got 'tcp://b'"},
        {"tcp://a:1,tcp://a:2,tcp://a:3,tcp://a:4,tcp://a:5,tcp://a:6,tcp://a:7,tcp://a:8",
         "--broker: at most 7 endpoints"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        cr_expect_neq(cli_config_flag(&c, CLI_SET_BROKER, bad[i].list, err, sizeof err), 0, "%s", bad[i].list);
        cr_expect(strstr(err, bad[i].want), "%s: %s", bad[i].list, err);
    }
    cli_config_free(&c);
}

/* ---- CURVE key files ------------------------------------------------------------------------ */

static char key_home[128];
static char broker_pub[41], broker_sec[41], clinic_pub[41], clinic_sec[41];

/* dir/name holding text and mode. */
static const char *put(const char *dir, const char *name, const char *text, int mode)
{
    static char path[8][256];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    unlink(p);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fprintf(f, "%s\n", text);
    fclose(f);
    cr_assert_eq(chmod(p, (mode_t)mode), 0);
    return p;
}

static void keys_setup(void)
{
    snprintf(key_home, sizeof key_home, "/tmp/hx-cli-keys-XXXXXX");
    cr_assert_not_null(mkdtemp(key_home));
    cr_assert_eq(hx_key_generate(broker_pub, broker_sec), 0);
    cr_assert_eq(hx_key_generate(clinic_pub, clinic_sec), 0);
}

static void keys_teardown(void)
{
    const char *names[] = {"broker.pub", "northpoint.key", "northpoint.pub", "other.key", "junk.key"};
    char p[256];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", key_home, names[i]);
        unlink(p);
    }
    rmdir(key_home);
}

/* Settings from flags (each "name=value", NULL-terminated), the defaults of key_home for
 * northpoint, then cli_keys_load: its result, with err. */
static int load_with(const char *const flags[], cli_keys_t *k, char *err, size_t cap)
{
    cli_config_t c;
    cli_config_init(&c);
    for (size_t i = 0; flags && flags[i]; i++) {
        char name[32];
        const char *eq = strchr(flags[i], '=');
        snprintf(name, sizeof name, "%.*s", (int)(eq - flags[i]), flags[i]);
        cr_assert_eq(cli_config_flag(&c, (cli_set_t)cli_set_from_name(name), eq + 1, err, cap), 0, "%s", err);
    }
    cr_assert_eq(cli_keys_defaults(&c, key_home, "northpoint"), 0);
    err[0] = '\0';
    int rc = cli_keys_load(&c, key_home, "clinic", "northpoint", k, err, cap);
    cli_config_free(&c);
    return rc;
}

Test(keys, found_in_the_home_directory_when_no_setting_names_them, .init = keys_setup, .fini = keys_teardown)
{
    cli_keys_t k;
    char err[4096];
    cr_expect_eq(load_with(NULL, &k, err, sizeof err), 0, "%s", err);
    cr_expect_not(k.curve, "no key files, no settings: no CURVE");
    const char *bp = put(key_home, "broker.pub", broker_pub, 0644);
    const char *ck = put(key_home, "northpoint.key", clinic_sec, 0600);
    cr_assert_eq(load_with(NULL, &k, err, sizeof err), 0, "%s", err);
    cr_expect(k.curve);
    cr_expect_str_eq(k.server, broker_pub);
    cr_expect_str_eq(k.sec, clinic_sec);
    cr_expect_str_eq(k.pub, clinic_pub, "the public key is derived from the secret one");

    cli_config_t c;
    cli_config_init(&c);
    cr_assert_eq(cli_keys_defaults(&c, key_home, "northpoint"), 0);
    cr_expect_str_eq(cli_config_get(&c, CLI_SET_SERVER_KEY), bp);
    cr_expect_str_eq(cli_config_get(&c, CLI_SET_KEY), ck);
    cr_expect(strstr(c.v[CLI_SET_KEY].where, "found in the home directory"), "%s", c.v[CLI_SET_KEY].where);
    cli_config_free(&c);

    /* a setting wins over the file found there: another clinic's key named by --key */
    const char *other = put(key_home, "other.key", broker_sec, 0400);
    char flag[300];
    snprintf(flag, sizeof flag, "key=%s", other);
    const char *flags[] = {flag, NULL};
    cr_assert_eq(load_with(flags, &k, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(k.sec, broker_sec, "mode 0400 is narrower than 0600: fine");
}

Test(keys, one_key_without_the_other_names_both_places, .init = keys_setup, .fini = keys_teardown)
{
    cli_keys_t k;
    char err[4096], want[600];
    const char *bp = put(key_home, "broker.pub", broker_pub, 0644);
    cr_expect_neq(load_with(NULL, &k, err, sizeof err), 0);
    cr_expect(strstr(err, "CURVE needs this clinic's secret key"), "%s", err);
    cr_expect(strstr(err, bp), "names the server key it has: %s", err);
    snprintf(want, sizeof want, "there is no %s/northpoint.key", key_home);
    cr_expect(strstr(err, want), "names where it looked: %s", err);
    cr_expect(strstr(err, "--key FILE, HANDOFF_KEY, 'key = FILE'"), "%s", err);
    unlink(bp);
    put(key_home, "northpoint.key", clinic_sec, 0600);
    cr_expect_neq(load_with(NULL, &k, err, sizeof err), 0);
    cr_expect(strstr(err, "CURVE needs the broker's public key"), "%s", err);
    snprintf(want, sizeof want, "there is no %s/broker.pub", key_home);
    cr_expect(strstr(err, want), "%s", err);
    cr_expect(strstr(err, "--server-key FILE, HANDOFF_SERVER_KEY"), "%s", err);
    cr_expect_not(k.curve);
}

Test(keys, a_bad_key_file_is_named_with_what_to_do, .init = keys_setup, .fini = keys_teardown)
{
    cli_keys_t k;
    char err[4096], want[600];
    put(key_home, "broker.pub", broker_pub, 0644);
    const char *ck = put(key_home, "northpoint.key", clinic_sec, 0644);
    cr_expect_neq(load_with(NULL, &k, err, sizeof err), 0);
    snprintf(want, sizeof want, "key %s (default, found in the home directory): mode 0644 is wider than 0600", ck);
    cr_expect(strstr(err, want), "%s", err);
    snprintf(want, sizeof want, "run  chmod 600 %s", ck);
    cr_expect(strstr(err, want), "%s", err);
    chmod(ck, 0700);
    cr_expect_neq(load_with(NULL, &k, err, sizeof err), 0);
    cr_expect(strstr(err, "mode 0700 is wider than 0600"), "%s", err);

    char flag[300];
    const char *flags[] = {flag, NULL};
    snprintf(flag, sizeof flag, "key=%s/missing.key", key_home);
    cr_expect_neq(load_with(flags, &k, err, sizeof err), 0);
    snprintf(want, sizeof want, "key %s/missing.key (from --key): cannot be read: No such file", key_home);
    cr_expect(strstr(err, want), "%s", err);

    snprintf(flag, sizeof flag, "key=%s", put(key_home, "junk.key", "not a key", 0600));
    cr_expect_neq(load_with(flags, &k, err, sizeof err), 0);
    cr_expect(strstr(err, "junk.key (from --key): not a CURVE secret key: the first line must be"), "%s", err);

    snprintf(flag, sizeof flag, "key=%s", put(key_home, "northpoint.pub", clinic_pub, 0644));
    cr_expect_neq(load_with(flags, &k, err, sizeof err), 0);
    cr_expect(strstr(err, "northpoint.pub (from --key): a public key file (.pub), not this clinic's secret key"),
              "%s", err);

    snprintf(flag, sizeof flag, "key=%s", put(key_home, "other.key", broker_pub, 0600));
    cr_expect_neq(load_with(flags, &k, err, sizeof err), 0);
    cr_expect(strstr(err, "holds the broker's public key"), "%s", err);

    snprintf(flag, sizeof flag, "key=%s", key_home);
    cr_expect_neq(load_with(flags, &k, err, sizeof err), 0);
    cr_expect(strstr(err, "not a key file (a directory or a device)"), "%s", err);

    chmod(ck, 0600);
    put(key_home, "broker.pub", "short", 0644);
    cr_expect_neq(load_with(NULL, &k, err, sizeof err), 0);
    cr_expect(strstr(err, "broker.pub (default, found in the home directory): not a CURVE public key"), "%s", err);
    cr_expect_not(k.curve);
}

/* ---- import files -------------------------------------------------------------------------- */

Test(import, the_format_comes_from_the_flag_or_the_extension)
{
    hx_format_t f;
    char err[256];
    cr_expect_eq(hx_import_format("a.CSV", NULL, &f, err, sizeof err), 0);
    cr_expect_eq(f, HX_FORMAT_CSV);
    cr_expect_eq(hx_import_format("a.jsonl", NULL, &f, err, sizeof err), 0);
    cr_expect_eq(f, HX_FORMAT_NDJSON);
    cr_expect_eq(hx_import_format("a.txt", "ndjson", &f, err, sizeof err), 0);
    cr_expect_eq(f, HX_FORMAT_NDJSON);
    cr_expect_neq(hx_import_format("a.txt", NULL, &f, err, sizeof err), 0);
    cr_expect(strstr(err, "--format"), "%s", err);
    cr_expect_neq(hx_import_format("a.csv", "xml", &f, err, sizeof err), 0);
    cr_expect_str_eq(err, "--format: must be csv or ndjson, got 'xml'");
}

Test(import, csv_rows_become_referral_json)
{
    const char *path = write_temp(".csv",
        "\xEF\xBB\xBF" "ref, patient.given_name,conditions,preferences.virtual_ok,preferences.massage_minutes,"
        "preferences.availability,reason\n"
        "A-1,Ada,knee_pain; ankle_sprain,yes,60,mon 09:00-12:00; 3 13:00-17:00,\"two\nlines, \"\"quoted\"\"\"\n"
        "\n"
        "A-2,Bo,,maybe,sixty,xyz 09:00-12:00,\n"
        "A-3,too,few\n");
    hx_rows_t rows;
    char err[512];
    cr_assert_eq(hx_import_read(path, HX_FORMAT_CSV, &rows, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rows.n, 3);
    hx_row_t *r = &rows.rows[0];
    cr_expect_eq(r->line, 2);
    cr_expect_str_eq(r->ref, "A-1");
    cr_expect_eq(r->n_errs, 0);
    char *s = json_dumps(r->json, JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(s, "{\"conditions\":[\"knee_pain\",\"ankle_sprain\"],\"patient\":{\"given_name\":\"Ada\"},"
                        "\"preferences\":{\"availability\":[{\"day\":1,\"from\":\"09:00\",\"to\":\"12:00\"},"
                        "{\"day\":3,\"from\":\"13:00\",\"to\":\"17:00\"}],\"massage_minutes\":60,\"virtual_ok\":true},"
                        "\"reason\":\"two\\nlines, \\\"quoted\\\"\",\"ref\":\"A-1\"}");
    free(s);
    r = &rows.rows[1];
    cr_expect_eq(r->line, 5, "a quoted newline and a blank line are counted: line %zu", r->line);
    cr_assert_eq(r->n_errs, 3);
    cr_expect_str_eq(r->errs[0].field, "preferences.virtual_ok");
    cr_expect_str_eq(r->errs[1].field, "preferences.massage_minutes");
    cr_expect_str_eq(r->errs[2].field, "preferences.availability");
    cr_expect(strstr(r->errs[2].why, "day must be 1 (Monday) to 7 (Sunday) or mon..sun, got 'xyz'"), "%s",
              r->errs[2].why);
    r = &rows.rows[2];
    cr_expect_eq(r->line, 6);
    cr_assert_eq(r->n_errs, 1);
    cr_expect_str_eq(r->errs[0].why, "3 field(s), but the header has 7 columns");
    hx_rows_free(&rows);
    unlink(path);
}

Test(import, a_bad_header_or_bad_csv_stops_the_whole_file)
{
    hx_rows_t rows;
    char err[2048];
    const char *p = write_temp(".csv", "ref,patient.shoe_size\nA,1\n");
    cr_expect_neq(hx_import_read(p, HX_FORMAT_CSV, &rows, err, sizeof err), 0);
    cr_expect(strstr(err, "line 1 (header): column 2: unknown column 'patient.shoe_size'; the columns are: ref,"),
              "%s", err);
    unlink(p);
    p = write_temp(".csv", "patient.given_name\nAda\n");
    cr_expect_neq(hx_import_read(p, HX_FORMAT_CSV, &rows, err, sizeof err), 0);
    cr_expect(strstr(err, "no 'ref' column"), "%s", err);
    unlink(p);
    p = write_temp(".csv", "ref,ref\nA,B\n");
    cr_expect_neq(hx_import_read(p, HX_FORMAT_CSV, &rows, err, sizeof err), 0);
    cr_expect(strstr(err, "column 'ref' appears twice (columns 1 and 2)"), "%s", err);
    unlink(p);
    p = write_temp(".csv", "ref,reason\nA,fine\nB,\"never closed\n");
    cr_expect_neq(hx_import_read(p, HX_FORMAT_CSV, &rows, err, sizeof err), 0);
    cr_expect(strstr(err, "a quoted field is never closed (it starts at line 3)"), "%s", err);
    unlink(p);
    p = write_temp(".csv", "ref,reason\nA,bad\"quote\n");
    cr_expect_neq(hx_import_read(p, HX_FORMAT_CSV, &rows, err, sizeof err), 0);
    cr_expect(strstr(err, "line 2: not valid CSV"), "%s", err);
    unlink(p);
    p = write_temp(".csv", "");
    cr_expect_neq(hx_import_read(p, HX_FORMAT_CSV, &rows, err, sizeof err), 0);
    cr_expect(strstr(err, "no header row"), "%s", err);
    unlink(p);
    cr_expect_neq(hx_import_read("/nonexistent.csv", HX_FORMAT_CSV, &rows, err, sizeof err), 0);
    cr_expect(strstr(err, "/nonexistent.csv: No such file"), "%s", err);
}

Test(import, ndjson_rows_and_their_errors)
{
    const char *p = write_temp(".ndjson", "{\"ref\":\"N-1\"}\n\n[1]\n{\"ref\": \n{\"ref\":\"N-2\",\"ref\":\"x\"}\n");
    hx_rows_t rows;
    char err[512];
    cr_assert_eq(hx_import_read(p, HX_FORMAT_NDJSON, &rows, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rows.n, 4);
    cr_expect_str_eq(rows.rows[0].ref, "N-1");
    cr_expect_eq(rows.rows[1].line, 3);
    cr_expect_str_eq(rows.rows[1].errs[0].why, "must be one JSON object (a referral), got a JSON array");
    cr_expect_eq(rows.rows[2].line, 4);
    cr_expect(strstr(rows.rows[2].errs[0].why, "not JSON"), "%s", rows.rows[2].errs[0].why);
    cr_expect(strstr(rows.rows[3].errs[0].why, "duplicate"), "%s", rows.rows[3].errs[0].why);
    hx_rows_free(&rows);
    unlink(p);
}

Test(import, rows_are_checked_like_submit_checks_a_file)
{
    json_error_t jerr;
    char path[512];
    snprintf(path, sizeof path, "%s/deploy/sample/referrals/01-ankle-sprain.json", getenv("HX_SOURCE_DIR"));
    json_t *j = json_load_file(path, 0, &jerr);
    cr_assert_not_null(j, "%s", jerr.text);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    Handoff__Referral *r = hx_referral_check(j, NULL, 0, &errs);
    cr_assert_not_null(r);
    hx_referral_free(r);
    json_object_set_new(json_object_get(j, "patient"), "birth_date", json_string("1994-13-40"));
    json_object_del(j, "ref");
    hx_errors_clear(&errs);
    cr_expect_null(hx_referral_check(j, NULL, 0, &errs));
    char all[2048];
    hx_errors_join(&errs, all, sizeof all);
    cr_expect(strstr(all, "ref: required"), "%s", all);
    cr_expect(strstr(all, "patient.birth_date:"), "%s", all);
    json_decref(j);
}

/* ---- inbox groups -------------------------------------------------------------------------- */

Test(inbox, statuses_map_onto_the_four_groups)
{
    typedef Handoff__TaskStatus S;
    const struct {
        bool received;
        S status;
        const char *event;
        hx_group_t want;
    } cases[] = {
        {true, 0, "", HX_GROUP_NEW},
        {true, HANDOFF__TASK_STATUS__TASK_READY, "book", HX_GROUP_NEW},
        {true, HANDOFF__TASK_STATUS__TASK_ACCEPTED, "accept", HX_GROUP_BOOKED},
        {true, HANDOFF__TASK_STATUS__TASK_IN_PROGRESS, "start", HX_GROUP_BOOKED},
        {true, HANDOFF__TASK_STATUS__TASK_COMPLETED, "complete", HX_GROUP_BOOKED},
        {true, HANDOFF__TASK_STATUS__TASK_RECEIVED, "decline", HX_GROUP_DECLINED},
        {true, HANDOFF__TASK_STATUS__TASK_CANCELLED, "revoke", HX_GROUP_DECLINED},
        {false, 0, "", HX_GROUP_PENDING},
        {false, HANDOFF__TASK_STATUS__TASK_REQUESTED, "submit", HX_GROUP_PENDING},
        {false, HANDOFF__TASK_STATUS__TASK_RECEIVED, "receive", HX_GROUP_PENDING},
        {false, HANDOFF__TASK_STATUS__TASK_RECEIVED, "decline", HX_GROUP_PENDING},
        {false, HANDOFF__TASK_STATUS__TASK_ON_HOLD, "hold", HX_GROUP_PENDING},
        {false, HANDOFF__TASK_STATUS__TASK_READY, "book", HX_GROUP_BOOKED},
        {false, HANDOFF__TASK_STATUS__TASK_ACCEPTED, "accept", HX_GROUP_BOOKED},
        {false, HANDOFF__TASK_STATUS__TASK_COMPLETED, "complete", HX_GROUP_BOOKED},
        {false, HANDOFF__TASK_STATUS__TASK_CANCELLED, "revoke", HX_GROUP_DECLINED},
        {false, HANDOFF__TASK_STATUS__TASK_REJECTED, "reject", HX_GROUP_DECLINED},
        {false, HANDOFF__TASK_STATUS__TASK_FAILED, "fail", HX_GROUP_DECLINED},
        {true, HANDOFF__TASK_STATUS__TASK_CANCELLED, "redirect", HX_GROUP_DECLINED},
        {false, HANDOFF__TASK_STATUS__TASK_READY, "redirect", HX_GROUP_BOOKED},
        {false, HANDOFF__TASK_STATUS__TASK_IN_PROGRESS, "add", HX_GROUP_BOOKED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_expect_eq(hx_inbox_group(cases[i].received, cases[i].status, cases[i].event), cases[i].want,
                     "case %zu: %s %d %s", i, cases[i].received ? "received" : "sent", cases[i].status,
                     cases[i].event);
    cr_expect_str_eq(hx_group_key(HX_GROUP_PENDING), "pending_booking");
    cr_expect_str_eq(hx_group_title(HX_GROUP_PENDING), "PENDING BOOKING");
    cr_expect_str_eq(hx_inbox_status_text(HANDOFF__TASK_STATUS__TASK_RECEIVED, "decline"), "declined");
    cr_expect_str_eq(hx_inbox_status_text(HANDOFF__TASK_STATUS__TASK_CANCELLED, "redirect"), "redirected");
    cr_expect_str_eq(hx_inbox_status_text(HANDOFF__TASK_STATUS__TASK_READY, "redirect"), "ready");
}

static Handoff__Booking *booking(const char *rid, const char *clinic)
{
    static Handoff__Booking b[4];
    static int k;
    Handoff__Booking *x = &b[k++ % 4];
    handoff__booking__init(x);
    x->referral_id = (char *)rid;
    x->discipline = HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY;
    x->therapist_name = "Amira Haddad";
    x->clinic_id = (char *)clinic;
    x->start = "2026-11-24T08:00";
    x->minutes = 60;
    return x;
}

static Handoff__StatusUpdate update(const char *rid, Handoff__TaskStatus s, const char *ev, Handoff__Booking **b,
                                    size_t nb)
{
    Handoff__StatusUpdate u;
    handoff__status_update__init(&u);
    u.referral_id = (char *)rid;
    u.ref = "NP-1";
    u.status = s;
    u.event = (char *)ev;
    u.reason = "why";
    u.bookings = b;
    u.n_bookings = nb;
    return u;
}

Test(inbox, both_sides_of_a_clinic_from_its_messages)
{
    hx_inbox_t *in = hx_inbox_new("lakeside");
    /* lakeside referred R-A: submitted, then booked at harbour */
    hx_inbox_add_sent(in, "R-A", "LK-1", "Ada Lovelace", 1000);
    Handoff__StatusUpdate u = update("R-A", HANDOFF__TASK_STATUS__TASK_REQUESTED, "submit", NULL, 0);
    hx_inbox_add_status(in, &u, 1100);
    cr_expect_eq(hx_inbox_count(in, HX_GROUP_PENDING), 1);
    Handoff__Booking *ba[] = {booking("R-A", "harbour")};
    u = update("R-A", HANDOFF__TASK_STATUS__TASK_READY, "book", ba, 1);
    hx_inbox_add_status(in, &u, 1200);
    cr_expect_eq(hx_inbox_count(in, HX_GROUP_BOOKED), 1);
    /* lakeside received R-B from harbour, then declined it */
    Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
    Handoff__Referral r = HANDOFF__REFERRAL__INIT;
    Handoff__Patient p = HANDOFF__PATIENT__INIT;
    p.given_name = "Bo";
    p.family_name = "Diddley";
    r.patient = &p;
    r.referring_clinic = "harbour";
    r.ref = "HB-9";
    h.referral_id = "R-B";
    h.referral = &r;
    h.booking = booking("R-B", "lakeside");
    hx_inbox_add_handoff(in, &h, 2000);
    cr_expect_eq(hx_inbox_count(in, HX_GROUP_NEW), 1);
    Handoff__Booking *bb[] = {booking("R-B", "lakeside")};
    u = update("R-B", HANDOFF__TASK_STATUS__TASK_RECEIVED, "decline", bb, 1);
    hx_inbox_add_status(in, &u, 2100);
    cr_expect_eq(hx_inbox_count(in, HX_GROUP_NEW), 0);
    cr_expect_eq(hx_inbox_count(in, HX_GROUP_DECLINED), 1);
    /* a refusal changes nothing */
    u = update("R-A", HANDOFF__TASK_STATUS__TASK_READY, "accept", NULL, 0);
    u.refused = true;
    hx_inbox_add_status(in, &u, 2200);
    json_t *j = hx_inbox_json(in);
    cr_expect_eq(json_array_size(json_object_get(j, "new")), 0);
    cr_expect_eq(json_array_size(json_object_get(j, "pending_booking")), 0);
    json_t *booked = json_array_get(json_object_get(j, "booked"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(booked, "side")), "sent");
    cr_expect_str_eq(json_string_value(json_object_get(booked, "patient")), "Ada Lovelace");
    cr_expect_str_eq(json_string_value(json_object_get(booked, "other_clinic")), "harbour");
    json_t *declined = json_array_get(json_object_get(j, "declined"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(declined, "status")), "declined");
    cr_expect_str_eq(json_string_value(json_object_get(declined, "patient")), "Bo Diddley");
    cr_expect_str_eq(json_string_value(json_object_get(declined, "folder")), "declined");
    json_decref(j);
    /* the CLI's --json: the same rows without the portal's keys */
    j = cli_inbox_json(in);
    declined = json_array_get(json_object_get(j, "declined"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(declined, "status")), "declined");
    cr_expect_null(json_object_get(declined, "folder"));
    cr_expect_null(json_object_get(declined, "needs_reply"));
    cr_expect_null(json_object_get(declined, "born"));
    json_decref(j);
    FILE *f = tmpfile();
    cli_inbox_print(in, f, 2200);
    char *s = slurp(f);
    cr_expect(strstr(s, "NEW (0)\n\nPENDING BOOKING (0)\n\nBOOKED (1)\nREFERRAL  REF   PATIENT"), "%s", s);
    cr_expect(strstr(s, "DECLINED (1)\n"), "%s", s);
    free(s);
    fclose(f);
    hx_inbox_destroy(&in);
}

/* ---- top ----------------------------------------------------------------------------------- */

static json_t *sample(unsigned accepted, unsigned depth, unsigned mailbox)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"uptime_ms\":%u,\"queues\":[{\"name\":\"intake\",\"depth\":%u,\"inflight\":2,\"bytes\":2048,"
             "\"in\":%u,\"out\":%u,\"oldest_age_ms\":1500,\"workers\":1}],"
             "\"mailboxes\":[{\"name\":\"clinic-a\",\"depth\":%u,\"bytes\":100,\"in\":%u,\"out\":0}],"
             "\"dlq\":1,\"totals\":{\"accepted\":%u,\"delivered\":%u,\"acked\":%u,\"redelivered\":0,\"dead_lettered\":1,"
             "\"refused\":0},\"peers\":{\"clinic\":2,\"worker\":3,\"admin\":1},\"store\":{\"bytes_on_disk\":1048576,"
             "\"fsyncs\":10}}",
             1000 + accepted, depth, accepted, accepted - 2 * depth, mailbox, 2 * mailbox, accepted, accepted, accepted);
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    cr_assert_not_null(j, "%s", e.text);
    return j;
}

Test(top, rates_come_from_two_samples)
{
    setenv("TZ", "UTC", 1);
    tzset();
    json_t *a = sample(100, 10, 0), *b = sample(300, 6, 4);
    char err[256];
    cr_assert_eq(cli_top_check(b, err, sizeof err), 0, "%s", err);
    FILE *f = tmpfile();
    cli_top_render(f, "tcp://b:1", b, 1795615500000ull, a, 2000);
    char *s = slurp(f);
    cr_expect(strstr(s, "handoff top  broker tcp://b:1  up 1s  2026-11-25 14:05, rates over 2s\n"), "%s", s);
    cr_expect(strstr(s, "rates/s   in 100  delivered 100  out (acked) 100  redelivered 0  dead-lettered 0"), "%s", s);
    /* intake: in 100 -> 300 (100/s), out 80 -> 288 (104/s), depth 10 -> 6 (-2/s) */
    cr_expect(strstr(s, "QUEUE         DEPTH  IN FLIGHT  WORKERS  OLDEST    BYTES  IN/s  OUT/s  NET/s\n"
                        "intake            6          2        1      1s  2.0 KiB   100    104   -2.0\n"), "%s", s);
    cr_expect(strstr(s, "clinic-a      4  100 B   4.0      0   +2.0\n"), "%s", s);
    cr_expect(strstr(s, "dlq       1 dead letter(s)"), "%s", s);
    free(s);
    fclose(f);
    f = tmpfile();
    cli_top_render(f, "tcp://b:1", a, 1795615500000ull, NULL, 0);
    s = slurp(f);
    cr_expect(strstr(s, "rates/s   in -  delivered -"), "the first sample has no rates: %s", s);
    free(s);
    fclose(f);
    json_decref(a);
    json_decref(b);
}

Test(top, a_sample_of_the_wrong_shape_is_named)
{
    char err[256];
    json_t *j = json_loads("{\"uptime_ms\":1,\"queues\":[{\"name\":\"x\",\"depth\":-1}],\"mailboxes\":[],\"dlq\":0}", 0,
                           NULL);
    cr_expect_neq(cli_top_check(j, err, sizeof err), 0);
    cr_expect_str_eq(err, "stats: totals: missing");
    json_object_set_new(j, "totals", json_pack("{s:i,s:i,s:i,s:i,s:i,s:i}", "accepted", 0, "delivered", 0, "acked", 0,
                                               "redelivered", 0, "dead_lettered", 0, "refused", 0));
    cr_expect_neq(cli_top_check(j, err, sizeof err), 0);
    cr_expect_str_eq(err, "stats: queues[0].depth: must be a whole number >= 0");
    json_decref(j);
}

/* ---- stories (cli_story): a collaborative referral's steps after booking ---------------- */

#include "cli_story.h"

/* Parses text as a story; returns the errors joined ("" when it is valid). */
static const char *story_errors(const char *text)
{
    static char buf[4096];
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    cr_assert_not_null(j, "%s", jerr.text);
    hx_errors_t e;
    hx_errors_clear(&e);
    story_t s;
    int rc = cli_story_parse(j, &s, &e);
    json_decref(j);
    hx_errors_join(&e, buf, sizeof buf);
    cr_assert_eq(rc == 0, e.count == 0, "%s", buf);
    cli_story_free(&s);
    return buf;
}

Test(story, the_sample_stories_are_valid)
{
    const char *files[] = {"07-post-surgical-knee.json", "09-athletic-performance.json"};
    for (size_t i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/deploy/sample/stories/%s", getenv("HX_SOURCE_DIR"), files[i]);
        hx_errors_t e;
        hx_errors_clear(&e);
        story_t s;
        char buf[2048];
        cr_assert_eq(cli_story_load(path, &s, &e), 0, "%s: %s", files[i], hx_errors_join(&e, buf, sizeof buf));
        cr_expect_gt(s.n, 5);
        cr_expect_eq(s.steps[s.n - 1].action, STORY_COMPLETE);
        cli_story_free(&s);
    }
}

Test(story, every_field_is_checked_and_named)
{
    cr_expect_str_eq(story_errors("{\"story\":1,\"referral\":{\"clinic\":\"northpoint\",\"ref\":\"NP-1\"},"
                                  "\"steps\":[{\"actor\":\"physiotherapy\",\"action\":\"accept\"}]}"), "");
    const char *bad = story_errors(
        "{\"story\":2,\"extra\":1,\"referral\":{\"clinic\":\"North Point\",\"ref\":\"\"},\"steps\":["
        "{\"actor\":\"physio\",\"action\":\"accept\"},"
        "{\"actor\":\"massage_therapy\",\"action\":\"decline\"},"
        "{\"actor\":\"referrer\",\"action\":\"start\"},"
        "{\"actor\":\"physiotherapy\",\"action\":\"accept\",\"text\":\"hello\"},"
        "{\"actor\":\"physiotherapy\",\"action\":\"note\",\"text\":\"\"},"
        "{\"actor\":\"physiotherapy\",\"action\":\"complete\"},"
        "{\"actor\":\"physiotherapy\",\"action\":\"note\",\"text\":\"bell\\u0007\"},"
        "{\"actor\":\"massage_therapy\",\"action\":\"shout\",\"colour\":\"red\"}]}");
    const char *want[] = {"story: must be 1", "extra: not a field of a story", "referral.clinic: must be a clinic id",
                          "referral.ref: must be the referral's ref",
                          "steps[0].actor: 'physio' is not referrer, physiotherapy or massage_therapy",
                          "steps[1].reason: required", "steps[2].action: the referrer cannot start",
                          "steps[3].text: accept takes no text", "steps[4].text: required (1 to 4000 bytes)",
                          "steps[5].summary: required", "steps[6].text: byte 5 is a control character (0x07)",
                          "steps[7].action: 'shout' is not accept", "steps[7].colour: not a field of steps[7]"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        cr_expect(strstr(bad, want[i]), "'%s' in: %s", want[i], bad);
    cr_expect(strstr(story_errors("[]"), "a story is a JSON object"));
    cr_expect(strstr(story_errors("{\"story\":1,\"referral\":{\"clinic\":\"a\",\"ref\":\"b\"},\"steps\":[]}"),
                     "steps: must be: an array of 1 to 64 steps"));
}

Test(story, the_steps_follow_each_handoff_and_the_thread)
{
    const char *head = "{\"story\":1,\"referral\":{\"clinic\":\"northpoint\",\"ref\":\"NP-1\"},\"steps\":[";
    char text[2048];
    snprintf(text, sizeof text, "%s%s", head,
             "{\"actor\":\"physiotherapy\",\"action\":\"start\"},"
             "{\"actor\":\"massage_therapy\",\"action\":\"reply\",\"text\":\"Yes\"},"
             "{\"actor\":\"massage_therapy\",\"action\":\"question\",\"text\":\"When?\"},"
             "{\"actor\":\"massage_therapy\",\"action\":\"reply\",\"text\":\"Me\"},"
             "{\"actor\":\"massage_therapy\",\"action\":\"accept\"},"
             "{\"actor\":\"massage_therapy\",\"action\":\"start\"},"
             "{\"actor\":\"massage_therapy\",\"action\":\"decline\",\"reason\":\"too late\"}]}");
    const char *e = story_errors(text);
    cr_expect(strstr(e, "steps[0]: physiotherapy cannot start its handoff: it is ready by then"), "%s", e);
    cr_expect(strstr(e, "steps[1]: a reply by massage_therapy, but no question awaits one"), "%s", e);
    cr_expect(strstr(e, "steps[3]: massage_therapy replies to its own question"), "%s", e);
    cr_expect(strstr(e, "steps[6]: massage_therapy cannot decline its handoff: it is in-progress by then"), "%s", e);
    /* a decline books massage again: the next clinic accepts from ready */
    snprintf(text, sizeof text, "%s%s", head,
             "{\"actor\":\"massage_therapy\",\"action\":\"accept\"},"
             "{\"actor\":\"massage_therapy\",\"action\":\"decline\",\"reason\":\"no room\"},"
             "{\"actor\":\"massage_therapy\",\"action\":\"accept\"},"
             "{\"actor\":\"massage_therapy\",\"action\":\"start\"},"
             "{\"actor\":\"massage_therapy\",\"action\":\"complete\",\"summary\":\"Done\"}]}");
    cr_expect_str_eq(story_errors(text), "");
}
