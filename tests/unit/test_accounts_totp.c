/* Unit: the portal's second factor. hx_totp (RFC 6238 through liboath): the RFC's SHA-1 test
 * vectors (their 8-digit codes truncated to 6: a code is the truncated HMAC mod 10^digits, so
 * the last six digits), now's step and one either side accepted and no further, a step once
 * used never again, base32 and the otpauth:// URI. hx_accounts with an injected clock: a
 * clinic's policy, enrolment after the password (the secret sealed in the store), the code
 * at later sign-ins, replays refused, wrong codes counted with wrong passwords, the pending
 * sign-in's expiry, reset clearing the enrolment, and other clinics and the network's roles
 * unaffected. Expected codes come from liboath directly (oath_totp_generate). */
#define _GNU_SOURCE     /* memmem */
#include <criterion/criterion.h>
#include <liboath/oath.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_accounts.h"
#include "hx_pgtest_hooks.h"
#include "hx_totp.h"

static const uint8_t rfc_secret[] = "12345678901234567890";    /* RFC 6238 appendix B, SHA-1 */
#define RFC_LEN 20

Test(totp, rfc6238_sha1_vectors_truncated_to_six_digits)
{
    static const struct {
        uint64_t t;
        const char *eight;
    } v[] = {{59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
             {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000ull, "65353130"}};
    cr_assert_eq(hx_totp_init(), 0);
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        char code[HX_TOTP_DIGITS + 1];
        const char *six = v[i].eight + 2;
        cr_assert_eq(hx_totp_code(rfc_secret, RFC_LEN, v[i].t / 30, code), 0);
        cr_expect_str_eq(code, six, "T=%llu", (unsigned long long)v[i].t);
        cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, v[i].t, six, -1), (int64_t)(v[i].t / 30), "T=%llu",
                     (unsigned long long)v[i].t);
    }
}

Test(totp, one_step_of_drift_either_side_and_no_more)
{
    cr_assert_eq(hx_totp_init(), 0);
    uint64_t now = 1795000015, step = now / 30;    /* the middle of a step */
    char c[5][HX_TOTP_DIGITS + 1];
    for (int d = -2; d <= 2; d++)
        cr_assert_eq(hx_totp_code(rfc_secret, RFC_LEN, step + (uint64_t)(int64_t)d, c[d + 2]), 0);
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, c[0], -1), -1, "two steps behind");
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, c[1], -1), (int64_t)step - 1, "one behind");
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, c[2], -1), (int64_t)step, "now");
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, c[3], -1), (int64_t)step + 1, "one ahead");
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, c[4], -1), -1, "two steps ahead");
    /* at a step's first and last second the window is still now's step and one either side */
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, step * 30, c[1], -1), (int64_t)step - 1);
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, step * 30 + 29, c[3], -1), (int64_t)step + 1);
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, step * 30 + 30, c[1], -1), -1, "the next step: too old");
}

Test(totp, a_used_step_is_never_accepted_again)
{
    cr_assert_eq(hx_totp_init(), 0);
    uint64_t now = 1795000015, step = now / 30;
    char before[HX_TOTP_DIGITS + 1], cur[HX_TOTP_DIGITS + 1], next[HX_TOTP_DIGITS + 1];
    hx_totp_code(rfc_secret, RFC_LEN, step - 1, before);
    hx_totp_code(rfc_secret, RFC_LEN, step, cur);
    hx_totp_code(rfc_secret, RFC_LEN, step + 1, next);
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, cur, (int64_t)step), -1, "the same code again");
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, before, (int64_t)step), -1, "an older code");
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, next, (int64_t)step), (int64_t)step + 1, "a newer code");
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, next, (int64_t)step + 1), -1);
}

Test(totp, only_six_digits_are_a_code)
{
    cr_assert_eq(hx_totp_init(), 0);
    uint64_t now = 59;
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, "287082", -1), 1);
    const char *bad[] = {"", "28708", "2870820", "94287082", "28708a", " 87082", "287082\n", "-87082"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, bad[i], -1), -1, "'%s'", bad[i]);
    cr_expect_eq(hx_totp_match(rfc_secret, RFC_LEN, now, NULL, -1), -1);
}

Test(totp, base32_and_the_key_uri)
{
    char b32[HX_TOTP_BASE32_LEN + 1], uri[HX_TOTP_URI_MAX];
    cr_assert_eq(hx_totp_init(), 0);
    cr_assert_eq(hx_totp_base32(rfc_secret, RFC_LEN, b32), 0);
    cr_expect_str_eq(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");     /* RFC 4648 of "1234567890" twice */
    cr_assert_eq(hx_totp_uri("mei@lakeside", b32, uri, sizeof uri), 0);
    cr_expect_str_eq(uri, "otpauth://totp/Handoff:mei%40lakeside?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                          "&issuer=Handoff&algorithm=SHA1&digits=6&period=30");
    cr_expect_eq(hx_totp_uri("mei@lakeside", b32, uri, 40), -1, "too small a buffer is refused");
}

/* ---- the store ---------------------------------------------------------------------------- */

static char dir_path[] = "/tmp/hx-totp-XXXXXX";
static char db_path[1100];         /* a file, or a PostgreSQL URL (hx_pgtest_store_url) */
static hx_accounts_t *acc;
static uint64_t clock_now = 1795000005000ull;      /* 5 s into a step */
static const char pw[] = "correct horse battery";

static uint64_t test_clock(void *arg)
{
    return *(const uint64_t *)arg;
}

static void add(const char *name, const char *clinic, hx_user_role_t role)
{
    char why[256];
    cr_assert_eq(hx_user_add(acc, name, clinic, role, pw, why, sizeof why), 0, "%s", why);
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
    add("mei@lakeside", "lakeside", HX_USER_CLINICIAN);
    add("ana@lakeside", "lakeside", HX_USER_FRONT_DESK);
    add("raj@harbour", "harbour", HX_USER_CLINICIAN);
    add("rev", "", HX_USER_REVIEWER);
}

static void teardown(void)
{
    hx_accounts_close(&acc);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir_path);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(totp_store, .init = setup, .fini = teardown, .timeout = 120);

static void policy(const char *clinic, bool on)
{
    char why[256];
    cr_assert_eq(hx_totp_policy_set(acc, clinic, on, why, sizeof why), 0, "%s", why);
}

/* The code of a base32 secret at the clock's time (plus skew_s), from liboath itself. */
static void code_at(const char *b32, int64_t skew_s, char out[HX_TOTP_DIGITS + 1])
{
    char *raw = NULL;
    size_t n = 0;
    cr_assert_eq(oath_base32_decode(b32, strlen(b32), &raw, &n), OATH_OK);
    cr_assert_eq(n, HX_TOTP_SECRET_BYTES);
    cr_assert_eq(oath_totp_generate(raw, n, (time_t)(clock_now / 1000) + skew_s, 30, 0, 6, out), OATH_OK);
    free(raw);
}

/* A code that is not `code` (k: 1, 2, ...). */
static void not_code(const char *code, int k, char out[HX_TOTP_DIGITS + 1])
{
    unsigned v = ((unsigned)atoi(code) + (unsigned)k) % 1000000u;
    snprintf(out, HX_TOTP_DIGITS + 1, "%06u", v);
}

/* Signs name in with the password: the pending token (HX_LOGIN_TOTP expected). */
static void password_step(const char *name, char pending[HX_TOKEN_LEN + 1])
{
    hx_user_t u;
    cr_assert_eq(hx_login(acc, name, pw, pending, &u), HX_LOGIN_TOTP, "%s: a code is asked for", name);
    cr_assert_eq(strlen(pending), HX_TOKEN_LEN);
}

/* Enrols name through its first sign-in; its base32 secret in b32. */
static void enrol(const char *name, char b32[HX_TOTP_BASE32_LEN + 1])
{
    char pending[HX_TOKEN_LEN + 1], token[HX_TOKEN_LEN + 1], code[7];
    hx_pending_t p;
    hx_user_t u;
    password_step(name, pending);
    cr_assert_eq(hx_pending(acc, pending, &p), 0);
    cr_assert(p.enrolling);
    snprintf(b32, HX_TOTP_BASE32_LEN + 1, "%s", p.secret_base32);
    code_at(b32, 0, code);
    cr_assert_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_OK);
    cr_assert_str_eq(u.name, name);
}

Test(totp_store, off_by_default_a_password_opens_a_session)
{
    char token[HX_TOKEN_LEN + 1];
    hx_user_t u;
    cr_expect_eq(hx_totp_policy(acc, "lakeside"), 0);
    cr_expect_eq(hx_login(acc, "mei@lakeside", pw, token, &u), HX_LOGIN_OK);
}

Test(totp_store, enrolment_after_the_password_then_the_code_opens_the_session)
{
    policy("lakeside", true);
    cr_expect_eq(hx_totp_policy(acc, "lakeside"), 1);
    char pending[HX_TOKEN_LEN + 1], token[HX_TOKEN_LEN + 1], code[7];
    hx_user_t u;
    password_step("mei@lakeside", pending);
    cr_expect_eq(hx_session_user(acc, pending, &u), -1, "the pending token is no session");
    hx_pending_t p, again;
    cr_assert_eq(hx_pending(acc, pending, &p), 0);
    cr_expect(p.enrolling);
    cr_expect_str_eq(p.user.name, "mei@lakeside");
    cr_expect_eq(strlen(p.secret_base32), HX_TOTP_BASE32_LEN);
    char want[HX_TOTP_URI_MAX];
    snprintf(want, sizeof want, "otpauth://totp/Handoff:mei%%40lakeside?secret=%s&issuer=Handoff", p.secret_base32);
    cr_expect(!strncmp(p.uri, want, strlen(want)), "%s", p.uri);
    cr_assert_eq(hx_pending(acc, pending, &again), 0);
    cr_expect_str_eq(again.secret_base32, p.secret_base32, "the same secret until it is confirmed");
    cr_expect_eq(hx_totp_enrolled(acc, "mei@lakeside"), 0);
    /* a wrong code enrols nothing */
    code_at(p.secret_base32, 0, code);
    char wrong[7];
    not_code(code, 1, wrong);
    cr_expect_eq(hx_login_totp(acc, pending, wrong, token, &u), HX_LOGIN_REFUSED);
    cr_expect_eq(hx_totp_enrolled(acc, "mei@lakeside"), 0);
    cr_assert_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_OK);
    cr_expect_eq(hx_totp_enrolled(acc, "mei@lakeside"), 1);
    hx_user_t s;
    cr_expect_eq(hx_session_user(acc, token, &s), 0);
    cr_expect_str_eq(s.name, "mei@lakeside");
    /* the pending sign-in is over: no secret shown again, no second session from it */
    cr_expect_eq(hx_pending(acc, pending, &again), -1);
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_EXPIRED);
    /* the secret is sealed: neither its bytes nor its base32 are in the store */
    char *raw = NULL;
    size_t n = 0;
    cr_assert_eq(oath_base32_decode(p.secret_base32, HX_TOTP_BASE32_LEN, &raw, &n), OATH_OK);
    cr_expect_eq(hx_pgtest_store_has(db_path, raw, n), 0, "the raw secret is not stored");
    cr_expect_eq(hx_pgtest_store_has(db_path, p.secret_base32, HX_TOTP_BASE32_LEN), 0,
                 "the base32 secret is not stored");
    cr_expect_eq(hx_pgtest_store_has(db_path, "lakeside", 8), 1, "(the check finds what is stored)");
    free(raw);
}

Test(totp_store, later_sign_ins_ask_for_the_code_and_a_code_is_never_accepted_twice)
{
    policy("lakeside", true);
    char b32[HX_TOTP_BASE32_LEN + 1], pending[HX_TOKEN_LEN + 1], token[HX_TOKEN_LEN + 1], used[7], code[7];
    hx_user_t u;
    hx_pending_t p;
    enrol("mei@lakeside", b32);
    code_at(b32, 0, used);
    password_step("mei@lakeside", pending);
    cr_assert_eq(hx_pending(acc, pending, &p), 0);
    cr_expect_not(p.enrolling, "enrolled: the code alone");
    cr_expect_str_eq(p.secret_base32, "", "the secret is never shown again");
    cr_expect_str_eq(p.uri, "");
    cr_expect_eq(hx_login_totp(acc, pending, used, token, &u), HX_LOGIN_REFUSED, "the enrolment's code, replayed");
    clock_now += 30000;                             /* the next step */
    cr_expect_eq(hx_login_totp(acc, pending, used, token, &u), HX_LOGIN_REFUSED, "still refused a step later");
    code_at(b32, 0, code);
    cr_assert_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_OK);
    /* that code, once more, at another sign-in within its window */
    password_step("mei@lakeside", pending);
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_REFUSED);
    /* a clock 30 s ahead of the server's: the next step's code is taken, and then not again */
    code_at(b32, 30, code);
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_OK);
    password_step("mei@lakeside", pending);
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_REFUSED);
    clock_now += 90000;
    code_at(b32, -60, code);                        /* two steps behind */
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_REFUSED);
    code_at(b32, -30, code);                        /* one behind */
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_OK);
}

Test(totp_store, wrong_codes_count_with_wrong_passwords_and_hold_the_user)
{
    policy("lakeside", true);
    char b32[HX_TOTP_BASE32_LEN + 1], pending[HX_TOKEN_LEN + 1], token[HX_TOKEN_LEN + 1], code[7], wrong[7];
    hx_user_t u;
    hx_pending_t p;
    enrol("mei@lakeside", b32);
    clock_now += 30000;
    code_at(b32, 0, code);
    /* one wrong password, then the right one: that failure is not forgotten before the code */
    cr_expect_eq(hx_login(acc, "mei@lakeside", "not the password", token, &u), HX_LOGIN_REFUSED);
    password_step("mei@lakeside", pending);
    not_code(code, 1, wrong);
    cr_expect_eq(hx_login_totp(acc, pending, wrong, token, &u), HX_LOGIN_REFUSED);
    not_code(code, 2, wrong);
    cr_expect_eq(hx_login_totp(acc, pending, wrong, token, &u), HX_LOGIN_REFUSED);
    /* max_failures (3) reached: held, and the right code does not get in meanwhile */
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_HELD);
    cr_expect_eq(hx_pending(acc, pending, &p), -1, "the hold ends the pending sign-in");
    cr_expect_eq(hx_login(acc, "mei@lakeside", pw, token, &u), HX_LOGIN_HELD, "the password too is held");
    clock_now += 301000;
    password_step("mei@lakeside", pending);
    code_at(b32, 0, code);
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_OK);
    /* the right code forgets the failures: two wrong codes are not a hold */
    clock_now += 30000;
    code_at(b32, 0, code);
    password_step("mei@lakeside", pending);
    for (int k = 1; k <= 2; k++) {
        not_code(code, k, wrong);
        cr_expect_eq(hx_login_totp(acc, pending, wrong, token, &u), HX_LOGIN_REFUSED);
    }
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_OK);
}

Test(totp_store, a_pending_sign_in_lasts_five_minutes)
{
    policy("lakeside", true);
    char pending[HX_TOKEN_LEN + 1], token[HX_TOKEN_LEN + 1], code[7];
    hx_user_t u;
    hx_pending_t p;
    password_step("mei@lakeside", pending);
    cr_assert_eq(hx_pending(acc, pending, &p), 0);
    cr_expect_eq(p.expires_ms, clock_now + HX_PENDING_S * 1000ull);
    char b32[HX_TOTP_BASE32_LEN + 1];
    snprintf(b32, sizeof b32, "%s", p.secret_base32);
    clock_now += HX_PENDING_S * 1000ull;
    code_at(b32, 0, code);
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_EXPIRED);
    cr_expect_eq(hx_pending(acc, pending, &p), -1);
    cr_expect_eq(hx_totp_enrolled(acc, "mei@lakeside"), 0, "an expired enrolment is not kept");
    /* a new sign-in shows a new secret */
    password_step("mei@lakeside", pending);
    cr_assert_eq(hx_pending(acc, pending, &p), 0);
    cr_expect_str_neq(p.secret_base32, b32);
    /* only the newest pending sign-in of a user lives */
    char newer[HX_TOKEN_LEN + 1];
    password_step("mei@lakeside", newer);
    cr_expect_eq(hx_pending(acc, pending, &p), -1);
    cr_expect_eq(hx_pending(acc, newer, &p), 0);
    cr_expect_eq(hx_pending(acc, "not a token", &p), -1);
    cr_expect_eq(hx_login_totp(acc, NULL, "123456", token, &u), HX_LOGIN_EXPIRED);
}

Test(totp_store, reset_clears_the_enrolment_and_disable_ends_a_pending_sign_in)
{
    policy("lakeside", true);
    char b32[HX_TOTP_BASE32_LEN + 1], pending[HX_TOKEN_LEN + 1], token[HX_TOKEN_LEN + 1], code[7], why[256];
    hx_user_t u;
    hx_pending_t p;
    enrol("mei@lakeside", b32);
    cr_assert_eq(hx_user_reset(acc, "mei@lakeside", "a brand new passphrase", why, sizeof why), 0, "%s", why);
    cr_expect_eq(hx_totp_enrolled(acc, "mei@lakeside"), 0);
    cr_assert_eq(hx_login(acc, "mei@lakeside", "a brand new passphrase", pending, &u), HX_LOGIN_TOTP);
    cr_assert_eq(hx_pending(acc, pending, &p), 0);
    cr_expect(p.enrolling, "enrols again");
    cr_expect_str_neq(p.secret_base32, b32, "with a new secret");
    /* disabled while pending: the code does not get in */
    cr_assert_eq(hx_user_disable(acc, "mei@lakeside", why, sizeof why), 0, "%s", why);
    code_at(p.secret_base32, 0, code);
    cr_expect_eq(hx_login_totp(acc, pending, code, token, &u), HX_LOGIN_EXPIRED);
    cr_expect_eq(hx_pending(acc, pending, &p), -1);
}

Test(totp_store, other_clinics_and_the_network_follow_their_own_setting)
{
    char token[HX_TOKEN_LEN + 1], mei[HX_TOKEN_LEN + 1], raj[HX_TOKEN_LEN + 1], rev[HX_TOKEN_LEN + 1];
    hx_user_t u;
    cr_assert_eq(hx_login(acc, "mei@lakeside", pw, mei, &u), HX_LOGIN_OK);
    cr_assert_eq(hx_login(acc, "raj@harbour", pw, raj, &u), HX_LOGIN_OK);
    cr_assert_eq(hx_login(acc, "rev", pw, rev, &u), HX_LOGIN_OK);
    policy("lakeside", true);
    /* turning it on ends the clinic's sessions, and only those */
    cr_expect_eq(hx_session_user(acc, mei, &u), -1);
    cr_expect_eq(hx_session_user(acc, raj, &u), 0);
    cr_expect_eq(hx_session_user(acc, rev, &u), 0);
    cr_expect_eq(hx_login(acc, "ana@lakeside", pw, token, &u), HX_LOGIN_TOTP);
    cr_expect_eq(hx_login(acc, "raj@harbour", pw, token, &u), HX_LOGIN_OK);
    cr_expect_eq(hx_login(acc, "rev", pw, token, &u), HX_LOGIN_OK);
    /* the network's roles follow the network's setting */
    policy("", true);
    cr_expect_eq(hx_session_user(acc, rev, &u), -1);
    cr_expect_eq(hx_session_user(acc, raj, &u), 0);
    cr_expect_eq(hx_login(acc, "rev", pw, token, &u), HX_LOGIN_TOTP);
    cr_expect_eq(hx_login(acc, "raj@harbour", pw, token, &u), HX_LOGIN_OK);
    /* off again: a password alone */
    policy("lakeside", false);
    cr_expect_eq(hx_totp_policy(acc, "lakeside"), 0);
    cr_expect_eq(hx_login(acc, "mei@lakeside", pw, token, &u), HX_LOGIN_OK);
    char why[256];
    cr_expect_eq(hx_totp_policy_set(acc, "Bad Clinic", true, why, sizeof why), -1);
    cr_expect_eq(hx_totp_policy_set(acc, NULL, true, why, sizeof why), -1);
}
