/* Unit: the portal's accounts (services/web/hx_accounts): Argon2id password hashes, one answer
 * for every refused login, sessions by tokens the store never holds, the idle timeout and the
 * absolute expiry (an injected clock, no sleeps), login throttling, disable and reset ending
 * sessions, CSRF tokens bound to the session. */
#define _GNU_SOURCE     /* memmem */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hx_accounts.h"

static char dir_path[] = "/tmp/hx-accounts-XXXXXX";
static char db_path[600];
static hx_accounts_t *acc;
static uint64_t clock_now = 1795000000000ull;

static uint64_t test_clock(void *arg)
{
    return *(const uint64_t *)arg;
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir_path));
    snprintf(db_path, sizeof db_path, "%s/accounts.db", dir_path);
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

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return memmem(buf, n, needle, strlen(needle)) != NULL;
}

Test(accounts, a_password_is_an_argon2id_hash_and_a_login_opens_a_session)
{
    char token[HX_TOKEN_LEN + 1], wal[620];
    hx_user_t u;
    cr_assert_eq(hx_login(acc, "mei@lakeside", "correct horse battery", token, &u), HX_LOGIN_OK);
    cr_expect_eq(strlen(token), HX_TOKEN_LEN);
    cr_expect_str_eq(u.clinic, "lakeside");
    cr_expect_eq(u.role, HX_USER_CLINICIAN);
    hx_user_t s;
    cr_assert_eq(hx_session_user(acc, token, &s), 0);
    cr_expect_str_eq(s.name, "mei@lakeside");
    /* the store holds an Argon2id hash, never the password or the token */
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    cr_expect(file_has(db_path, "$argon2id$") || file_has(wal, "$argon2id$"), "an Argon2id hash is stored");
    cr_expect_not(file_has(db_path, "correct horse") || file_has(wal, "correct horse"));
    cr_expect_not(file_has(db_path, token) || file_has(wal, token), "the token is not stored");
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
    cr_assert_eq(stat(db_path, &sb), 0);
    cr_expect_eq(sb.st_mode & 077, 0, "the store is mode 0600");
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
