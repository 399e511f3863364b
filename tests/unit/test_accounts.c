/* Unit: the portal's accounts (services/web/hx_accounts): Argon2id password hashes, one answer
 * for every refused login, sessions by tokens the store never holds, the idle timeout and the
 * absolute expiry (an injected clock, no sleeps), login throttling, disable and reset ending
 * sessions, CSRF tokens bound to the session; e-mail notices: addresses that cannot inject a
 * header, preferences (also on a file from before them), recipients, the outbox and its retries.
 * On either store: ctest runs it again as test_accounts_pg with HX_TEST_STORE=postgres. */
#define _GNU_SOURCE     /* memmem */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hx_accounts.h"
#include "hx_pgtest_hooks.h"
#include <sqlite3.h>

static char dir_path[] = "/tmp/hx-accounts-XXXXXX";
static char db_path[1100];         /* the store: a file, or a PostgreSQL URL (hx_pgtest_store_url) */
static hx_accounts_t *acc;
static uint64_t clock_now = 1795000000000ull;

static uint64_t test_clock(void *arg)
{
    return *(const uint64_t *)arg;
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir_path));
    char why0[512];
    cr_assert_eq(hx_pgtest_store_url(dir_path, "accounts.db", db_path, sizeof db_path, why0, sizeof why0), 0, "%s",
                 why0);
    hx_accounts_config_t cfg = {.idle_s = 900, .absolute_s = 3600, .max_failures = 3, .hold_s = 300,
                                .clock_ms = test_clock, .clock_arg = &clock_now};
    char err[256];
    cr_assert_eq(hx_accounts_open(db_path, &cfg, &acc, err, sizeof err), 0, "%s", err);
    char why[256];
    cr_assert_eq(hx_user_add(acc, "mei@lakeside", "lakeside", HX_USER_CLINICIAN, "correct horse battery", why,
                             sizeof why), 0, "%s", why);
}

static void teardown(void)
{
    hx_accounts_close(&acc);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir_path);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(accounts, .init = setup, .fini = teardown, .timeout = 120);

/* Whether the store holds needle (1, 0; -1 when it could not be read). */
static int stored(const char *needle)
{
    return hx_pgtest_store_has(db_path, needle, strlen(needle));
}

Test(accounts, a_password_is_an_argon2id_hash_and_a_login_opens_a_session)
{
    char token[HX_TOKEN_LEN + 1];
    hx_user_t u;
    cr_assert_eq(hx_login(acc, "mei@lakeside", "correct horse battery", token, &u), HX_LOGIN_OK);
    cr_expect_eq(strlen(token), HX_TOKEN_LEN);
    cr_expect_str_eq(u.clinic, "lakeside");
    cr_expect_eq(u.role, HX_USER_CLINICIAN);
    hx_user_t s;
    cr_assert_eq(hx_session_user(acc, token, &s), 0);
    cr_expect_str_eq(s.name, "mei@lakeside");
    /* the store holds an Argon2id hash, never the password or the token */
    cr_expect_eq(stored("$argon2id$"), 1, "an Argon2id hash is stored");
    cr_expect_eq(stored("correct horse"), 0, "the password is not stored");
    cr_expect_eq(stored(token), 0, "the token is not stored");
    hx_logout(acc, token);
    cr_expect_eq(hx_session_user(acc, token, &s), -1, "logged out");
}

Test(accounts, every_refusal_is_the_same_answer)
{
    char token[HX_TOKEN_LEN + 1], why[256];
    hx_user_t u;
    cr_expect_eq(hx_login(acc, "mei@lakeside", "wrong password!!", token, &u), HX_LOGIN_REFUSED);
    cr_expect_eq(hx_login(acc, "nobody", "correct horse battery", token, &u), HX_LOGIN_REFUSED);
    cr_expect_eq(hx_login(acc, "Bad Name", "correct horse battery", token, &u), HX_LOGIN_REFUSED);
    cr_expect_str_eq(token, "");
    cr_assert_eq(hx_user_disable(acc, "mei@lakeside", why, sizeof why), 0, "%s", why);
    cr_expect_eq(hx_login(acc, "mei@lakeside", "correct horse battery", token, &u), HX_LOGIN_REFUSED,
                 "disabled looks like any refusal");
}

Test(accounts, idle_timeout_and_absolute_expiry)
{
    char token[HX_TOKEN_LEN + 1];
    hx_user_t u;
    cr_assert_eq(hx_login(acc, "mei@lakeside", "correct horse battery", token, &u), HX_LOGIN_OK);
    clock_now += 899 * 1000ull;
    cr_expect_eq(hx_session_user(acc, token, &u), 0, "used within 15 minutes");
    clock_now += 899 * 1000ull;
    cr_expect_eq(hx_session_user(acc, token, &u), 0, "the idle timer started again");
    clock_now += 900 * 1000ull;
    cr_expect_eq(hx_session_user(acc, token, &u), -1, "15 minutes idle: ended");
    clock_now += 1;
    cr_expect_eq(hx_session_user(acc, token, &u), -1, "and stays ended");
    /* a session used all the time still ends an hour after login */
    cr_assert_eq(hx_login(acc, "mei@lakeside", "correct horse battery", token, &u), HX_LOGIN_OK);
    for (int i = 0; i < 6; i++) {
        clock_now += 599 * 1000ull;
        cr_expect_eq(hx_session_user(acc, token, &u), 0, "step %d", i);
    }
    clock_now += 599 * 1000ull;
    cr_expect_eq(hx_session_user(acc, token, &u), -1, "past the absolute expiry");
}

Test(accounts, failed_logins_hold_the_user_back)
{
    char token[HX_TOKEN_LEN + 1];
    hx_user_t u;
    for (int i = 0; i < 3; i++)
        cr_expect_eq(hx_login(acc, "mei@lakeside", "not the password", token, &u), HX_LOGIN_REFUSED);
    cr_expect_eq(hx_login(acc, "mei@lakeside", "correct horse battery", token, &u), HX_LOGIN_HELD,
                 "held after three failures, even with the right password");
    clock_now += 301 * 1000ull;
    cr_expect_eq(hx_login(acc, "mei@lakeside", "correct horse battery", token, &u), HX_LOGIN_OK,
                 "let in once the hold has passed");
}

Test(accounts, reset_and_disable_end_the_sessions)
{
    char token[HX_TOKEN_LEN + 1], why[256];
    hx_user_t u;
    cr_assert_eq(hx_login(acc, "mei@lakeside", "correct horse battery", token, &u), HX_LOGIN_OK);
    cr_assert_eq(hx_user_reset(acc, "mei@lakeside", "a brand new passphrase", why, sizeof why), 0, "%s", why);
    cr_expect_eq(hx_session_user(acc, token, &u), -1, "a reset ends the sessions");
    cr_expect_eq(hx_login(acc, "mei@lakeside", "correct horse battery", token, &u), HX_LOGIN_REFUSED);
    cr_assert_eq(hx_login(acc, "mei@lakeside", "a brand new passphrase", token, &u), HX_LOGIN_OK);
    cr_assert_eq(hx_user_disable(acc, "mei@lakeside", why, sizeof why), 0, "%s", why);
    cr_expect_eq(hx_session_user(acc, token, &u), -1, "disabling ends the sessions");
    cr_expect_eq(hx_user_reset(acc, "nobody", "a brand new passphrase", why, sizeof why), -1);
    cr_expect_str_eq(why, "name: no such user");
    cr_expect_eq(hx_user_reset(acc, "mei@lakeside", "short", why, sizeof why), -1);
    cr_expect_str_eq(why, "password: 5 bytes, must be 12 to 1024");
}

Test(accounts, adding_users_checks_every_field)
{
    char why[256];
    cr_expect_eq(hx_user_add(acc, "mei@lakeside", "lakeside", HX_USER_CLINICIAN, "correct horse battery", why,
                             sizeof why), -1);
    cr_expect_str_eq(why, "name: taken");
    cr_expect_eq(hx_user_add(acc, "Front Desk", "lakeside", HX_USER_FRONT_DESK, "correct horse battery", why,
                             sizeof why), -1);
    cr_expect(strstr(why, "name: 1 to 64"), "%s", why);
    cr_expect_eq(hx_user_add(acc, "desk", "", HX_USER_FRONT_DESK, "correct horse battery", why, sizeof why), -1);
    cr_expect_str_eq(why, "clinic: required for a clinic role");
    cr_expect_eq(hx_user_add(acc, "dr-osei", "lakeside", HX_USER_REVIEWER, "correct horse battery", why,
                             sizeof why), -1);
    cr_expect_str_eq(why, "clinic: a network role belongs to no clinic");
    cr_expect_eq(hx_user_add(acc, "dr-osei", "", HX_USER_REVIEWER, "correct horse battery", why, sizeof why), 0,
                 "%s", why);
    cr_expect_eq(hx_user_role_from_text("front-desk"), HX_USER_FRONT_DESK);
    cr_expect_str_eq(hx_user_role_text(HX_USER_NETWORK_ADMIN), "network-admin");
    cr_expect_eq(hx_user_role_from_text("root"), 0);
    struct stat sb;
    if (!hx_pgtest_wanted()) {
        cr_assert_eq(stat(db_path, &sb), 0);
        cr_expect_eq(sb.st_mode & 077, 0, "the store is mode 0600");
    }
}

Test(accounts, a_csrf_token_belongs_to_its_session)
{
    char t1[HX_TOKEN_LEN + 1], t2[HX_TOKEN_LEN + 1], c1[HX_TOKEN_LEN + 1];
    hx_user_t u;
    cr_assert_eq(hx_login(acc, "mei@lakeside", "correct horse battery", t1, &u), HX_LOGIN_OK);
    cr_assert_eq(hx_login(acc, "mei@lakeside", "correct horse battery", t2, &u), HX_LOGIN_OK);
    cr_expect_str_neq(t1, t2, "every login a new token");
    hx_csrf_token(acc, t1, c1);
    cr_expect(hx_csrf_ok(acc, t1, c1));
    cr_expect_not(hx_csrf_ok(acc, t2, c1), "another session's CSRF token is refused");
    cr_expect_not(hx_csrf_ok(acc, t1, ""), "no token is refused");
    cr_expect_not(hx_csrf_ok(acc, t1, NULL));
    /* the key survives a restart: a page served before it still posts after */
    hx_accounts_close(&acc);
    hx_accounts_config_t cfg = {.clock_ms = test_clock, .clock_arg = &clock_now};
    char err[256];
    cr_assert_eq(hx_accounts_open(db_path, &cfg, &acc, err, sizeof err), 0, "%s", err);
    cr_expect(hx_csrf_ok(acc, t1, c1));
}

/* ---- e-mail notices ---- */

typedef struct {
    char text[512];
} recipients_t;

static void recipient(void *ud, const char *name, const char *email)
{
    recipients_t *l = ud;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "%s=%s;", name, email);
}

static void user_with_notices(const char *name, const char *clinic, const char *email, int notify)
{
    char why[256];
    cr_assert_eq(hx_user_add(acc, name, clinic, HX_USER_CLINICIAN, "correct horse battery", why, sizeof why), 0,
                 "%s", why);
    cr_assert_eq(hx_user_set_notify(acc, name, email, notify, why, sizeof why), 0, "%s", why);
}

Test(accounts, an_address_that_could_inject_a_header_is_refused)
{
    const char *good[] = {"mei@lakeside.example", "a.b+notices@clinic-one.ca", "x@localhost"};
    const char *bad[] = {"", "mei", "@lakeside.ca", "mei@", "mei@@lakeside.ca", "mei@lake@side.ca",
                         "mei @lakeside.ca", "mei@lakeside.ca\r\nBcc: all@evil.example", "mei@lakeside.ca\n",
                         "mei\t@lakeside.ca", "<mei@lakeside.ca>", "mei@lakeside.ca>", "a,b@lakeside.ca",
                         "mei@lake side.ca", "mei@lakeside..ca", "mei@lakeside.ca.", "mei@-lakeside.ca",
                         "\"mei\"@lakeside.ca", "m\xc3\xa9@lakeside.ca", "mei@lakeside.ca;x@y.z", "mei@.ca",
                         "mei@lakeside.ca\x7f"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_expect(hx_email_valid(good[i]), "%s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_not(hx_email_valid(bad[i]), "bad[%zu] is refused", i);
    /* at most 254 bytes: "mei@" and a domain of 60-letter labels */
    char addr[300] = "mei@";
    for (size_t p = strlen(addr); p < 254; p++)
        strcat(addr, (p - 4) % 61 == 60 ? "." : "a");
    cr_assert_eq(strlen(addr), 254);
    cr_expect(hx_email_valid(addr), "254 bytes");
    strcat(addr, "a");
    cr_expect_not(hx_email_valid(addr), "255 bytes");
    char local[80];
    memset(local, 'a', 65);
    snprintf(local + 65, sizeof local - 65, "@b.ca");
    cr_expect_not(hx_email_valid(local), "a local part over 64 bytes");
    char why[256];
    cr_expect_eq(hx_user_set_notify(acc, "mei@lakeside", "mei@lakeside.ca\r\nBcc: x@y.z", -1, why, sizeof why), -1);
    cr_expect(strstr(why, "email:"), "%s", why);
}

Test(accounts, notice_preferences_are_kept_and_listed)
{
    char why[256], email[HX_EMAIL_MAX + 1], text[64];
    unsigned bits = 99;
    cr_assert_eq(hx_user_notify(acc, "mei@lakeside", email, &bits), 0);
    cr_expect_str_eq(email, "");
    cr_expect_eq(bits, 0, "no notices until the user asks for them");
    cr_expect_eq(hx_notify_parse("new,question status", &bits), 0);
    cr_expect_eq(bits, HX_NOTIFY_ALL);
    cr_expect_eq(hx_notify_parse("none", &bits), 0);
    cr_expect_eq(bits, 0);
    cr_expect_eq(hx_notify_parse("new,everything", &bits), -1);
    cr_expect_eq(hx_notify_parse("none,new", &bits), -1);
    hx_notify_text(HX_NOTIFY_HANDOFF | HX_NOTIFY_STATUS, text, sizeof text);
    cr_expect_str_eq(text, "new,status");
    hx_notify_text(0, text, sizeof text);
    cr_expect_str_eq(text, "none");

    cr_assert_eq(hx_user_set_notify(acc, "mei@lakeside", "mei@lakeside.ca", HX_NOTIFY_HANDOFF | HX_NOTIFY_QUESTION,
                                    why, sizeof why), 0, "%s", why);
    user_with_notices("desk@lakeside", "lakeside", "desk@lakeside.ca", HX_NOTIFY_STATUS);
    user_with_notices("ana@lakeside", "lakeside", NULL, HX_NOTIFY_ALL);         /* no address */
    user_with_notices("old@lakeside", "lakeside", "old@lakeside.ca", HX_NOTIFY_ALL);
    cr_assert_eq(hx_user_disable(acc, "old@lakeside", why, sizeof why), 0);
    user_with_notices("kim@harbour", "harbour", "kim@harbour.ca", HX_NOTIFY_ALL);
    cr_expect_eq(hx_user_set_notify(acc, "nobody", "x@y.ca", 1, why, sizeof why), -1);
    cr_expect_str_eq(why, "name: no such user");
    cr_expect_eq(hx_user_set_notify(acc, "mei@lakeside", NULL, 8, why, sizeof why), -1, "no such notice");

    /* the address is kept when only the notices change, and the notices when only the address */
    cr_assert_eq(hx_user_set_notify(acc, "mei@lakeside", NULL, -1, why, sizeof why), 0);
    cr_assert_eq(hx_user_notify(acc, "mei@lakeside", email, &bits), 0);
    cr_expect_str_eq(email, "mei@lakeside.ca");
    cr_expect_eq(bits, HX_NOTIFY_HANDOFF | HX_NOTIFY_QUESTION);
    cr_expect_eq(hx_user_notify(acc, "nobody", email, &bits), -1);

    /* recipients: enabled users of the clinic with an address and that wish, by name */
    recipients_t l = {""};
    cr_assert_eq(hx_notice_recipients(acc, "lakeside", HX_NOTIFY_HANDOFF, recipient, &l), 0);
    cr_expect_str_eq(l.text, "mei@lakeside=mei@lakeside.ca;");
    l.text[0] = '\0';
    cr_assert_eq(hx_notice_recipients(acc, "lakeside", HX_NOTIFY_STATUS, recipient, &l), 0);
    cr_expect_str_eq(l.text, "desk@lakeside=desk@lakeside.ca;");
    l.text[0] = '\0';
    cr_assert_eq(hx_notice_recipients(acc, "harbour", HX_NOTIFY_QUESTION, recipient, &l), 0);
    cr_expect_str_eq(l.text, "kim@harbour=kim@harbour.ca;");
    l.text[0] = '\0';
    cr_assert_eq(hx_notice_recipients(acc, "", HX_NOTIFY_ALL, recipient, &l), 0);
    cr_expect_str_eq(l.text, "", "the network's roles belong to no clinic");
    /* "" clears the address: no notices then */
    cr_assert_eq(hx_user_set_notify(acc, "mei@lakeside", "", -1, why, sizeof why), 0);
    l.text[0] = '\0';
    cr_assert_eq(hx_notice_recipients(acc, "lakeside", HX_NOTIFY_HANDOFF, recipient, &l), 0);
    cr_expect_str_eq(l.text, "");
}

Test(accounts, an_accounts_file_from_before_the_notices_gains_them)
{
    char old_path[700], err[256], why[256], email[HX_EMAIL_MAX + 1];
    if (hx_pgtest_wanted())
        cr_skip_test("a SQLite file of the versions before (PostgreSQL stores began with the notices)");
    snprintf(old_path, sizeof old_path, "%s/old.db", dir_path);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(old_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TABLE users (name TEXT PRIMARY KEY, clinic TEXT NOT NULL, role INTEGER NOT "
                              "NULL, hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT "
                              "NULL) WITHOUT ROWID;"
                              "INSERT INTO users VALUES ('ana', 'lakeside', 1, 'x', 0, 1);",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    hx_accounts_t *old = NULL;
    hx_accounts_config_t cfg = {.clock_ms = test_clock, .clock_arg = &clock_now};
    cr_assert_eq(hx_accounts_open(old_path, &cfg, &old, err, sizeof err), 0, "%s", err);
    unsigned bits = 9;
    cr_assert_eq(hx_user_notify(old, "ana", email, &bits), 0);
    cr_expect_str_eq(email, "");
    cr_expect_eq(bits, 0);
    cr_assert_eq(hx_user_set_notify(old, "ana", "ana@lakeside.ca", HX_NOTIFY_ALL, why, sizeof why), 0, "%s", why);
    hx_accounts_close(&old);
    cr_assert_eq(hx_accounts_open(old_path, &cfg, &old, err, sizeof err), 0, "opens again: %s", err);
    cr_assert_eq(hx_user_notify(old, "ana", email, &bits), 0);
    cr_expect_str_eq(email, "ana@lakeside.ca");
    cr_expect_eq(bits, HX_NOTIFY_ALL);
    hx_accounts_close(&old);
}

Test(accounts, the_outbox_keeps_notices_and_tries_again_later)
{
    char why[256], err[256];
    cr_assert_eq(hx_user_set_notify(acc, "mei@lakeside", "mei@lakeside.ca", HX_NOTIFY_HANDOFF, why, sizeof why), 0);
    user_with_notices("kim@lakeside", "lakeside", "kim@lakeside.ca", HX_NOTIFY_STATUS);
    cr_expect_eq(hx_mail_queue(acc, "lakeside", HX_NOTIFY_HANDOFF, "K1", "Subject\r\nBcc: x@y.z", "b\r\n"), -1,
                 "a subject is one line");
    cr_expect_eq(hx_mail_queue(acc, "lakeside", HX_NOTIFY_HANDOFF, "K1", "New handoff", "Body\r\n"), 1);
    cr_expect_eq(hx_mail_queue(acc, "lakeside", HX_NOTIFY_HANDOFF, "K1", "New handoff", "Body\r\n"), 0,
                 "the same event queues nothing twice");
    cr_expect_eq(hx_mail_queue(acc, "harbour", HX_NOTIFY_HANDOFF, "K2", "New handoff", "Body\r\n"), 0,
                 "no recipients there");
    uint64_t t0 = clock_now, next = 1, waiting, sent, given_up;

    /* a restart keeps it */
    hx_accounts_close(&acc);
    hx_accounts_config_t cfg = {.clock_ms = test_clock, .clock_arg = &clock_now};
    cr_assert_eq(hx_accounts_open(db_path, &cfg, &acc, err, sizeof err), 0, "%s", err);
    hx_mail_t m;
    cr_assert_eq(hx_mail_due(acc, &m, &next), 1);
    cr_expect_str_eq(m.to, "mei@lakeside.ca");
    cr_expect_str_eq(m.user, "mei@lakeside");
    cr_expect_str_eq(m.subject, "New handoff");
    cr_expect_str_eq(m.body, "Body\r\n");
    cr_expect_eq(m.created_ms, t0);
    cr_expect_eq(m.attempts, 0);

    /* 30 s, then doubling, at most an hour */
    uint64_t want[] = {30000, 60000, 120000, 240000, 480000, 960000, 1920000, 3600000, 3600000};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        cr_assert_eq(hx_mail_failed(acc, m.id, NULL, "connection refused"), 0);
        cr_assert_eq(hx_mail_due(acc, &m, &next), 0, "not due yet after failure %zu", i + 1);
        cr_expect_eq(next, clock_now + want[i], "failure %zu: %llu", i + 1, (unsigned long long)(next - clock_now));
        clock_now = next;
        cr_assert_eq(hx_mail_due(acc, &m, &next), 1);
        cr_expect_eq(m.attempts, i + 1);
    }
    /* the last try is at 24 hours; failing then gives it up */
    int rc;
    while ((rc = hx_mail_failed(acc, m.id, NULL, "connection refused")) == 0) {
        cr_assert_eq(hx_mail_due(acc, &m, &next), 0);
        cr_assert_leq(next, t0 + 86400000ull);
        clock_now = next;
        cr_assert_eq(hx_mail_due(acc, &m, &next), 1);
    }
    cr_expect_eq(rc, 1);
    cr_expect_eq(clock_now, t0 + 86400000ull);
    cr_assert_eq(hx_mail_due(acc, &m, &next), 0);
    cr_expect_eq(next, 0, "nothing waits");
    cr_assert_eq(hx_mail_counts(acc, &waiting, &sent, &given_up), 0);
    cr_expect(waiting == 0 && sent == 0 && given_up == 1);

    /* a sent one is done; a shorter policy (as --smtp-retry-ms gives) is followed */
    hx_mail_retry_t quick = {.first_ms = 100};
    cr_assert_eq(hx_mail_queue(acc, "lakeside", HX_NOTIFY_STATUS, "K3", "Status", "Body\r\n"), 1);
    cr_assert_eq(hx_mail_due(acc, &m, &next), 1);
    cr_expect_str_eq(m.to, "kim@lakeside.ca");
    cr_assert_eq(hx_mail_failed(acc, m.id, &quick, "timeout"), 0);
    cr_assert_eq(hx_mail_due(acc, &m, &next), 0);
    cr_expect_eq(next, clock_now + 100);
    clock_now += 100;
    cr_assert_eq(hx_mail_due(acc, &m, &next), 1);
    cr_assert_eq(hx_mail_sent(acc, m.id), 0);
    cr_assert_eq(hx_mail_due(acc, &m, &next), 0);
    cr_assert_eq(hx_mail_counts(acc, &waiting, &sent, &given_up), 0);
    cr_expect(waiting == 0 && sent == 1 && given_up == 1);
    /* after a week the done ones are forgotten */
    clock_now += 8ull * 24 * 3600 * 1000;
    cr_assert_eq(hx_mail_queue(acc, "lakeside", HX_NOTIFY_STATUS, "K4", "Status", "Body\r\n"), 1);
    cr_assert_eq(hx_mail_due(acc, &m, &next), 1);
    cr_assert_eq(hx_mail_sent(acc, m.id), 0);
    cr_assert_eq(hx_mail_counts(acc, &waiting, &sent, &given_up), 0);
    cr_expect(waiting == 0 && sent == 1 && given_up == 0, "%llu %llu", (unsigned long long)sent,
              (unsigned long long)given_up);
    /* what waits for a user who is disabled (or has removed the address) is not sent */
    cr_assert_eq(hx_mail_queue(acc, "lakeside", HX_NOTIFY_STATUS, "K5", "Status", "Body\r\n"), 1);
    cr_assert_eq(hx_mail_queue(acc, "lakeside", HX_NOTIFY_HANDOFF, "K5", "New handoff", "Body\r\n"), 1);
    cr_assert_eq(hx_user_disable(acc, "kim@lakeside", why, sizeof why), 0);
    cr_assert_eq(hx_user_set_notify(acc, "mei@lakeside", "", -1, why, sizeof why), 0);
    cr_assert_eq(hx_mail_due(acc, &m, &next), 0);
    cr_expect_eq(next, 0);
    cr_assert_eq(hx_mail_counts(acc, &waiting, &sent, &given_up), 0);
    cr_expect(waiting == 0 && given_up == 2);
}
