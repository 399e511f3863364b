/* Unit: the FHIR API's clients, tokens and subscriptions (services/web/hx_api): clients with
 * checked ids, clinics and scopes; secrets and tokens the store never holds; one answer for an
 * unknown client and a wrong secret; the throttle and its release, token expiry (an injected
 * clock, no sleeps); reset and disable ending tokens; asked scopes within the client's; SMART
 * scopes v1 and v2 with wildcards; subscriptions of one clinic only, their progress kept across
 * a reopening of the store, and the per-clinic limit; `handoff-web client` on the same store
 * (when the program is built beside this suite). On either store: ctest runs it again as
 * test_api_pg with HX_TEST_STORE=postgres. */
#define _GNU_SOURCE     /* memmem */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hx_api.h"
#include "hx_pgtest_hooks.h"
#include <sqlite3.h>

static char dir_path[] = "/tmp/hx-api-XXXXXX";
static char db_path[1100];         /* a file, or a PostgreSQL URL (hx_pgtest_store_url) */
static hx_accounts_t *acc;
static uint64_t clock_now = 1795000000000ull;
static char secret[HX_TOKEN_LEN + 1];

static const char lake_scopes[] = "system/Task.cruds system/ServiceRequest.crs system/Patient.read";

static uint64_t test_clock(void *arg)
{
    return *(const uint64_t *)arg;
}

static void store_open(void)
{
    hx_accounts_config_t cfg = {.clock_ms = test_clock, .clock_arg = &clock_now};
    char err[256];
    cr_assert_eq(hx_accounts_open(db_path, &cfg, &acc, err, sizeof err), 0, "%s", err);
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir_path));
    char why0[512];
    cr_assert_eq(hx_pgtest_store_url(dir_path, "accounts.db", db_path, sizeof db_path, why0, sizeof why0), 0, "%s",
                 why0);
    store_open();
    char why[256];
    cr_assert_eq(hx_api_client_add(acc, "lake-emr", "lakeside", lake_scopes, secret, why, sizeof why), 0, "%s", why);
}

static void teardown(void)
{
    hx_accounts_close(&acc);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir_path);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 120);

/* Whether the store holds needle (1, 0; -1 when it could not be read). */
static int stored(const char *needle)
{
    return hx_pgtest_store_has(db_path, needle, strlen(needle));
}

/* ---- clients ---- */

static void client_collect(void *ud, const hx_api_client_t *c)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 1024 - n, "%s/%s/%s/%d;", c->id, c->clinic, c->scopes, c->disabled);
}

Test(api, a_client_is_added_once_with_a_secret_shown_once)
{
    char why[256], s2[HX_TOKEN_LEN + 1];
    cr_expect_eq(strlen(secret), HX_TOKEN_LEN);
    cr_expect_eq(strspn(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), HX_TOKEN_LEN,
                 "base64url without padding");
    cr_expect_eq(stored(secret), 0, "the secret is not stored");
    cr_expect_eq(stored("lake-emr"), 1, "(the check finds what is stored)");
    cr_expect_eq(hx_api_client_add(acc, "lake-emr", "other", "system/Task.r", s2, why, sizeof why), -1);
    cr_expect_str_eq(why, "id: taken");
    cr_expect_eq(s2[0], '\0', "no secret for a refused client");
    cr_assert_eq(hx_api_client_add(acc, "north.emr_2", "North-Clinic", "system/*.read", s2, why, sizeof why), 0, "%s",
                 why);
    cr_expect_str_neq(s2, secret, "each client its own secret");
    char all[1024] = "", lake[1024] = "";
    cr_assert_eq(hx_api_client_each(acc, NULL, client_collect, all), 0);
    cr_expect_str_eq(all, "north.emr_2/North-Clinic/system/*.read/0;lake-emr/lakeside/system/Task.cruds "
                          "system/ServiceRequest.crs system/Patient.read/0;");
    cr_assert_eq(hx_api_client_each(acc, "lakeside", client_collect, lake), 0);
    cr_expect_str_eq(lake, "lake-emr/lakeside/system/Task.cruds system/ServiceRequest.crs system/Patient.read/0;");
}

Test(api, bad_ids_clinics_and_scopes_are_refused_with_the_field_named)
{
    char why[256], s[HX_TOKEN_LEN + 1], long_id[80];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    const char *bad_ids[] = {"", "Lake", "lake emr", "lake/emr", long_id, NULL};
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        cr_expect_eq(hx_api_client_add(acc, bad_ids[i], "lakeside", "system/Task.r", s, why, sizeof why), -1);
        cr_expect(!strncmp(why, "id: ", 4), "%s", why);
    }
    long_id[64] = '\0';
    cr_expect_eq(hx_api_client_add(acc, long_id, "lakeside", "system/Task.r", s, why, sizeof why), 0, "64 is fine");
    const char *bad_clinics[] = {"", "lake side", "lake/side", "a-clinic-id-of-thirty-two-chars!", NULL};
    for (size_t i = 0; i < sizeof bad_clinics / sizeof *bad_clinics; i++) {
        cr_expect_eq(hx_api_client_add(acc, "x", bad_clinics[i], "system/Task.r", s, why, sizeof why), -1);
        cr_expect(!strncmp(why, "clinic: ", 8), "%s", why);
    }
    cr_expect_eq(hx_api_client_add(acc, "x", "lakeside", "", s, why, sizeof why), -1);
    cr_expect_str_eq(why, "scopes: none given");
    cr_expect_eq(hx_api_client_add(acc, "x", "lakeside", "system/Task.r user/Task.r", s, why, sizeof why), -1);
    cr_expect(strstr(why, "'user/Task.r'") != NULL, "%s", why);
    cr_expect_eq(hx_api_client_add(acc, "x", "lakeside", "system/Task.rx", s, why, sizeof why), -1);
    cr_expect(strstr(why, "permissions 'rx'") != NULL, "%s", why);
}

Test(api, scopes_are_checked_as_the_header_says)
{
    char why[256];
    const char *good[] = {"system/Task.cruds", "system/Task.c", "system/Task.rs", "system/*.read", "system/*.*",
                          "system/Patient.write", "system/Binary.*", "system/Subscription.cruds",
                          "  system/Task.r   system/Task.s  ", ""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        cr_expect_eq(hx_api_scopes_check(good[i], why, sizeof why), 0, "'%s': %s", good[i], why);
    struct {
        const char *scopes, *why;
    } bad[] = {
        {"system/Task.sr", "permissions 'sr'"},           /* out of order */
        {"system/Task.rr", "permissions 'rr'"},           /* twice */
        {"system/Task.", "permissions ''"},
        {"system/Task.x", "permissions 'x'"},
        {"system/Task.Read", "permissions 'Read'"},
        {"system/Tasks.r", "'Tasks' is not a resource type"},
        {"system/task.r", "'task' is not a resource type"},
        {"system/Condition.r", "'Condition' is not a resource type"},
        {"system/Task", "no '.'"},
        {"patient/Task.r", "not system/TYPE.PERMISSIONS"},
        {"system/.r", "'' is not a resource type"},
        {"system/Task.r\tsystem/Task.s", "permissions"},
        {"system/Task.r launch", "'launch'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_eq(hx_api_scopes_check(bad[i].scopes, why, sizeof why), -1, "'%s'", bad[i].scopes);
        cr_expect(strstr(why, bad[i].why) != NULL, "'%s': %s", bad[i].scopes, why);
    }
    char huge[HX_API_SCOPES_MAX + 20] = "";
    while (strlen(huge) + 14 < sizeof huge)
        strcat(huge, "system/Task.r ");
    cr_expect_eq(hx_api_scopes_check(huge, why, sizeof why), -1);
    cr_expect(strstr(why, "longer than") != NULL, "%s", why);
    cr_expect_eq(hx_api_scopes_check(NULL, why, sizeof why), -1);
}

Test(api, scope_allows_matrix_with_v1_v2_and_wildcards)
{
    struct {
        const char *granted, *type, *perms_allowed;
    } m[] = {
        {"system/Task.rs", "Task", "rs"},
        {"system/Task.rs", "ServiceRequest", ""},
        {"system/Task.cruds", "Task", "cruds"},
        {"system/Task.cu", "Task", "cu"},
        {"system/Task.read", "Task", "rs"},
        {"system/Task.write", "Task", "cud"},
        {"system/Task.*", "Task", "cruds"},
        {"system/*.rs", "Patient", "rs"},
        {"system/*.rs", "Subscription", "rs"},
        {"system/*.read", "Binary", "rs"},
        {"system/*.write", "Communication", "cud"},
        {"system/*.*", "DocumentReference", "cruds"},
        {"system/Task.r system/Task.s system/Task.c", "Task", "crs"},
        {"system/Patient.r system/*.s", "Patient", "rs"},
        {"system/Patient.r system/*.s", "Task", "s"},
        {"system/Task.r bogus system/Task.x", "Task", "r"},     /* a bad scope grants nothing */
        {"", "Task", ""},
        {"system/*.*", "Condition", ""},                         /* not a type of this API */
        {"system/*.*", "task", ""},
        {"user/Task.cruds", "Task", ""},
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        for (const char *p = "cruds"; *p; p++)
            cr_expect_eq(hx_api_scope_allows(m[i].granted, m[i].type, *p), strchr(m[i].perms_allowed, *p) != NULL,
                         "'%s' on %s, %c", m[i].granted, m[i].type, *p);
    cr_expect_not(hx_api_scope_allows("system/*.*", "Task", 'x'));
    cr_expect_not(hx_api_scope_allows("system/*.*", "Task", '\0'));
    cr_expect_not(hx_api_scope_allows(NULL, "Task", 'r'));
    cr_expect_not(hx_api_scope_allows("system/*.*", NULL, 'r'));
}

/* ---- tokens ---- */

Test(api, a_token_for_the_right_secret_is_bound_to_the_client_and_its_clinic)
{
    char token[HX_TOKEN_LEN + 1], why[256];
    hx_api_client_t g;
    cr_assert_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, &g, why, sizeof why), HX_API_TOKEN_OK);
    cr_expect_eq(strlen(token), HX_TOKEN_LEN);
    cr_expect_str_eq(g.id, "lake-emr");
    cr_expect_str_eq(g.clinic, "lakeside");
    cr_expect_str_eq(g.scopes, lake_scopes, "none asked: all it may have");
    cr_expect_eq(stored(token), 0, "the token is not stored");
    hx_api_client_t c;
    cr_assert_eq(hx_api_token_check(acc, token, &c), 0);
    cr_expect_str_eq(c.id, "lake-emr");
    cr_expect_str_eq(c.clinic, "lakeside");
    cr_expect_str_eq(c.scopes, lake_scopes);
    cr_expect_eq(c.created_ms, clock_now, "when it was issued");
    /* a token differing in one character, or of another length, is none */
    char other[HX_TOKEN_LEN + 1];
    memcpy(other, token, sizeof other);
    other[5] = other[5] == 'A' ? 'B' : 'A';
    cr_expect_eq(hx_api_token_check(acc, other, &c), -1);
    cr_expect_eq(hx_api_token_check(acc, "short", &c), -1);
    cr_expect_eq(hx_api_token_check(acc, NULL, &c), -1);
    /* the secret is not a token */
    cr_expect_eq(hx_api_token_check(acc, secret, &c), -1);
    char t2[HX_TOKEN_LEN + 1];
    cr_assert_eq(hx_api_token(acc, "lake-emr", secret, "", t2, NULL, why, sizeof why), HX_API_TOKEN_OK);
    cr_expect_str_neq(t2, token, "each token new");
    cr_expect_eq(hx_api_token_check(acc, token, NULL), 0, "an earlier token still lives");
}

Test(api, unknown_client_wrong_secret_and_disabled_are_one_answer)
{
    char token[HX_TOKEN_LEN + 1], why[256], wrong[HX_TOKEN_LEN + 1];
    memcpy(wrong, secret, sizeof wrong);
    wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
    cr_expect_eq(hx_api_token(acc, "lake-emr", wrong, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED);
    cr_expect_eq(token[0], '\0');
    cr_expect_eq(hx_api_token(acc, "nobody", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED);
    cr_expect_eq(hx_api_token(acc, "Bad Id", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED);
    cr_expect_eq(hx_api_token(acc, "lake-emr", "", NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED);
    cr_expect_eq(hx_api_token(acc, "lake-emr", NULL, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED);
    char s2[HX_TOKEN_LEN + 1];
    cr_assert_eq(hx_api_client_add(acc, "off-emr", "lakeside", "system/Task.r", s2, why, sizeof why), 0);
    cr_assert_eq(hx_api_client_disable(acc, "off-emr", why, sizeof why), 0);
    cr_expect_eq(hx_api_token(acc, "off-emr", s2, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED);
}

Test(api, five_failures_hold_the_client_then_the_hold_ends)
{
    char token[HX_TOKEN_LEN + 1], why[256];
    const char *wrong = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    /* failures not in a row do not add up: a success in between forgets them */
    for (int i = 0; i < 4; i++)
        cr_expect_eq(hx_api_token(acc, "lake-emr", wrong, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED);
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(hx_api_token(acc, "lake-emr", wrong, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED);
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK);
    /* five in a row: held, the right secret too */
    for (int i = 0; i < 5; i++)
        cr_expect_eq(hx_api_token(acc, "lake-emr", wrong, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED,
                     "failure %d", i + 1);
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_HELD);
    cr_expect_eq(token[0], '\0');
    clock_now += 299 * 1000;
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_HELD);
    clock_now += 1000;
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK,
                 "300 s later");
    /* another client is not held by this one's failures */
    char s2[HX_TOKEN_LEN + 1];
    cr_assert_eq(hx_api_client_add(acc, "other", "lakeside", "system/Task.r", s2, why, sizeof why), 0);
    for (int i = 0; i < 5; i++)
        hx_api_token(acc, "lake-emr", wrong, NULL, token, NULL, why, sizeof why);
    cr_expect_eq(hx_api_token(acc, "other", s2, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK);
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_HELD);
}

Test(api, a_token_ends_after_its_lifetime)
{
    char token[HX_TOKEN_LEN + 1], why[256];
    cr_assert_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK);
    clock_now += HX_API_TOKEN_S * 1000ull - 1;
    cr_expect_eq(hx_api_token_check(acc, token, NULL), 0, "alive its last millisecond");
    clock_now += 1;
    cr_expect_eq(hx_api_token_check(acc, token, NULL), -1, "ended");
    clock_now -= 10;
    cr_expect_eq(hx_api_token_check(acc, token, NULL), -1, "purged: gone even if the clock went back");
}

Test(api, reset_and_disable_end_the_tokens)
{
    char token[HX_TOKEN_LEN + 1], why[256], fresh[HX_TOKEN_LEN + 1];
    cr_assert_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK);
    cr_assert_eq(hx_api_client_reset(acc, "lake-emr", fresh, why, sizeof why), 0, "%s", why);
    cr_expect_str_neq(fresh, secret);
    cr_expect_eq(hx_api_token_check(acc, token, NULL), -1, "reset ends the tokens");
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED,
                 "the old secret stops working");
    cr_assert_eq(hx_api_token(acc, "lake-emr", fresh, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK);
    cr_assert_eq(hx_api_client_disable(acc, "lake-emr", why, sizeof why), 0, "%s", why);
    cr_expect_eq(hx_api_token_check(acc, token, NULL), -1, "disable ends the tokens");
    char all[1024] = "";
    hx_api_client_each(acc, "lakeside", client_collect, all);
    cr_expect(strstr(all, "/1;") != NULL, "listed as disabled: %s", all);
    /* a reset enables it again */
    cr_assert_eq(hx_api_client_reset(acc, "lake-emr", fresh, why, sizeof why), 0, "%s", why);
    cr_expect_eq(hx_api_token(acc, "lake-emr", fresh, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK);
    /* unknown clients */
    cr_expect_eq(hx_api_client_reset(acc, "nobody", fresh, why, sizeof why), -1);
    cr_expect_str_eq(why, "id: no such client");
    cr_expect_eq(fresh[0], '\0');
    cr_expect_eq(hx_api_client_disable(acc, "nobody", why, sizeof why), -1);
    cr_expect_str_eq(why, "id: no such client");
    cr_expect_eq(hx_api_client_disable(acc, "No Body", why, sizeof why), -1);
}

Test(api, asked_scopes_must_be_within_the_clients)
{
    char token[HX_TOKEN_LEN + 1], why[256];
    hx_api_client_t g, c;
    cr_assert_eq(hx_api_token(acc, "lake-emr", secret, "system/Task.rs", token, &g, why, sizeof why),
                 HX_API_TOKEN_OK, "%s", why);
    cr_expect_str_eq(g.scopes, "system/Task.rs");
    cr_assert_eq(hx_api_token_check(acc, token, &c), 0);
    cr_expect_str_eq(c.scopes, "system/Task.rs", "the token grants what was asked, no more");
    cr_expect(hx_api_scope_allows(c.scopes, "Task", 'r'));
    cr_expect_not(hx_api_scope_allows(c.scopes, "Task", 'u'));
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, " system/Patient.rs  system/Task.write ", token, &g, why,
                              sizeof why), HX_API_TOKEN_OK, "%s", why);
    cr_expect_str_eq(g.scopes, "system/Patient.rs system/Task.write");
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, "system/Patient.write", token, &g, why, sizeof why),
                 HX_API_TOKEN_SCOPE);
    cr_expect(strstr(why, "'system/Patient.write'") != NULL, "%s", why);
    cr_expect_eq(token[0], '\0');
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, "system/Task.r system/ServiceRequest.u", token, &g, why,
                              sizeof why), HX_API_TOKEN_SCOPE);
    cr_expect(strstr(why, "'system/ServiceRequest.u'") != NULL, "%s", why);
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, "system/*.r", token, &g, why, sizeof why), HX_API_TOKEN_SCOPE,
                 "a wildcard beyond the client's types");
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, "system/Task.rx", token, &g, why, sizeof why),
                 HX_API_TOKEN_SCOPE, "a malformed scope");
    cr_expect(strstr(why, "permissions 'rx'") != NULL, "%s", why);
    /* a client of every type and permission (the wildcard scope) may ask for anything, wildcards too */
    char s2[HX_TOKEN_LEN + 1];
    cr_assert_eq(hx_api_client_add(acc, "all-emr", "lakeside", "system/*.*", s2, why, sizeof why), 0);
    cr_expect_eq(hx_api_token(acc, "all-emr", s2, "system/*.rs system/Subscription.cruds", token, &g, why, sizeof why),
                 HX_API_TOKEN_OK, "%s", why);
    cr_expect_eq(hx_api_token(acc, "all-emr", s2, "system/*.read", token, &g, why, sizeof why), HX_API_TOKEN_OK);
    /* the asked scope is checked after the secret: a wrong secret is refused, not told about scopes */
    cr_expect_eq(hx_api_token(acc, "lake-emr", s2, "system/Patient.write", token, &g, why, sizeof why),
                 HX_API_TOKEN_REFUSED);
}

/* ---- subscriptions ---- */

static hx_api_sub_t sub_new(const char *clinic)
{
    hx_api_sub_t s = {0};
    snprintf(s.client, sizeof s.client, "lake-emr");
    snprintf(s.clinic, sizeof s.clinic, "%s", clinic);
    snprintf(s.sub.topic, sizeof s.sub.topic, "%s", HX_FHIR_TOPIC_TASK);
    snprintf(s.sub.endpoint, sizeof s.sub.endpoint, "https://emr.lakeside.example/hook");
    snprintf(s.sub.header, sizeof s.sub.header, "Authorization: Bearer hook-secret");
    snprintf(s.sub.status, sizeof s.sub.status, "requested");
    snprintf(s.sub.reason, sizeof s.sub.reason, "new handoffs");
    s.sub.payload = HX_FHIR_PAYLOAD_ID_ONLY;
    s.sub.end_ms = clock_now + 86400000ull;
    s.cursor = 41;
    return s;
}

static void sub_ids(void *ud, const hx_api_sub_t *s)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 2048 - n, "%s@%s;", s->sub.id, s->clinic);
}

Test(api, a_subscription_is_its_clinics_alone)
{
    char why[256];
    hx_api_sub_t s = sub_new("lakeside"), got;
    cr_assert_eq(hx_api_sub_add(acc, &s, why, sizeof why), 0, "%s", why);
    cr_expect_eq(strlen(s.sub.id), 18);
    cr_expect(!strncmp(s.sub.id, "S-", 2));
    cr_expect_eq(strspn(s.sub.id + 2, "0123456789abcdef"), 16);
    cr_assert_eq(hx_api_sub_get(acc, "lakeside", s.sub.id, &got), 0);
    cr_expect_str_eq(got.sub.id, s.sub.id);
    cr_expect_str_eq(got.client, "lake-emr");
    cr_expect_str_eq(got.sub.topic, HX_FHIR_TOPIC_TASK);
    cr_expect_str_eq(got.sub.endpoint, "https://emr.lakeside.example/hook");
    cr_expect_str_eq(got.sub.header, "Authorization: Bearer hook-secret");
    cr_expect_str_eq(got.sub.status, "requested");
    cr_expect_str_eq(got.sub.reason, "new handoffs");
    cr_expect_eq(got.sub.payload, HX_FHIR_PAYLOAD_ID_ONLY);
    cr_expect_eq(got.sub.end_ms, clock_now + 86400000ull);
    cr_expect_eq(got.cursor, 41);
    cr_expect_not(got.handshake_done);
    /* another clinic: none such, for reading, changing and deleting alike */
    cr_expect_eq(hx_api_sub_get(acc, "northside", s.sub.id, &got), -1);
    cr_expect_eq(hx_api_sub_update(acc, "northside", s.sub.id, &s.sub, why, sizeof why), -1);
    cr_expect_str_eq(why, "id: no such subscription");
    cr_expect_eq(hx_api_sub_delete(acc, "northside", s.sub.id), -1);
    cr_expect_eq(hx_api_sub_get(acc, "lakeside", "S-0000000000000000", &got), -1);
    hx_api_sub_t n = sub_new("northside");
    cr_assert_eq(hx_api_sub_add(acc, &n, why, sizeof why), 0, "%s", why);
    cr_expect_str_neq(n.sub.id, s.sub.id);
    char all[2048] = "", lake[2048] = "", want[2048];
    cr_assert_eq(hx_api_sub_each(acc, NULL, sub_ids, all), 0);
    snprintf(want, sizeof want, "%s@lakeside;%s@northside;", s.sub.id, n.sub.id);
    cr_expect_str_eq(all, want, "oldest first");
    cr_assert_eq(hx_api_sub_each(acc, "lakeside", sub_ids, lake), 0);
    snprintf(want, sizeof want, "%s@lakeside;", s.sub.id);
    cr_expect_str_eq(lake, want);
    cr_expect_eq(hx_api_sub_delete(acc, "lakeside", s.sub.id), 0);
    cr_expect_eq(hx_api_sub_get(acc, "lakeside", s.sub.id, &got), -1);
    cr_expect_eq(hx_api_sub_delete(acc, "lakeside", s.sub.id), -1, "deleted once");
    cr_expect_eq(hx_api_sub_get(acc, "northside", n.sub.id, &got), 0, "the other clinic's is untouched");
}

Test(api, bad_subscriptions_are_refused)
{
    char why[256];
    hx_api_sub_t s = sub_new("lakeside");
    snprintf(s.sub.topic, sizeof s.sub.topic, "urn:handoff:topic:everything");
    cr_expect_eq(hx_api_sub_add(acc, &s, why, sizeof why), -1);
    cr_expect(!strncmp(why, "topic: ", 7), "%s", why);
    s = sub_new("lakeside");
    snprintf(s.sub.endpoint, sizeof s.sub.endpoint, "ftp://emr/hook");
    cr_expect_eq(hx_api_sub_add(acc, &s, why, sizeof why), -1);
    cr_expect(!strncmp(why, "endpoint: ", 10), "%s", why);
    s = sub_new("lakeside");
    snprintf(s.sub.header, sizeof s.sub.header, "X-A: 1\r\nX-B: 2");
    cr_expect_eq(hx_api_sub_add(acc, &s, why, sizeof why), -1);
    cr_expect(!strncmp(why, "header: ", 8), "%s", why);
    s = sub_new("lakeside");
    s.sub.payload = (hx_fhir_payload_t)7;
    cr_expect_eq(hx_api_sub_add(acc, &s, why, sizeof why), -1);
    cr_expect(!strncmp(why, "payload: ", 9), "%s", why);
    s = sub_new("lakeside");
    snprintf(s.sub.status, sizeof s.sub.status, "on");
    cr_expect_eq(hx_api_sub_add(acc, &s, why, sizeof why), -1);
    cr_expect(!strncmp(why, "status: ", 8), "%s", why);
    s = sub_new("lake side");
    cr_expect_eq(hx_api_sub_add(acc, &s, why, sizeof why), -1);
    cr_expect(!strncmp(why, "clinic: ", 8), "%s", why);
    s = sub_new("lakeside");
    memset(s.sub.reason, 'x', sizeof s.sub.reason);     /* not NUL-terminated */
    cr_expect_eq(hx_api_sub_add(acc, &s, why, sizeof why), -1);
    char all[2048] = "";
    hx_api_sub_each(acc, NULL, sub_ids, all);
    cr_expect_str_eq(all, "", "nothing stored");
}

Test(api, an_update_changes_what_a_client_may_change)
{
    char why[256];
    hx_api_sub_t s = sub_new("lakeside"), got;
    cr_assert_eq(hx_api_sub_add(acc, &s, why, sizeof why), 0, "%s", why);
    /* delivered, then failing: the notifier's progress */
    snprintf(s.sub.status, sizeof s.sub.status, "error");
    snprintf(s.sub.error, sizeof s.sub.error, "HTTP 503");
    s.failures = 4;
    s.next_ms = clock_now + 60000;
    s.handshake_done = true;
    cr_assert_eq(hx_api_sub_progress(acc, &s), 0);
    /* the client changes its header and payload, and keeps the status it read: no fresh start */
    hx_fhir_sub_t up = s.sub;
    snprintf(up.header, sizeof up.header, "Authorization: Bearer new");
    up.payload = HX_FHIR_PAYLOAD_FULL;
    up.end_ms = 0;
    snprintf(up.reason, sizeof up.reason, "all changes");
    snprintf(up.error, sizeof up.error, "a client cannot set this");
    cr_assert_eq(hx_api_sub_update(acc, "lakeside", s.sub.id, &up, why, sizeof why), 0, "%s", why);
    cr_assert_eq(hx_api_sub_get(acc, "lakeside", s.sub.id, &got), 0);
    cr_expect_str_eq(got.sub.header, "Authorization: Bearer new");
    cr_expect_eq(got.sub.payload, HX_FHIR_PAYLOAD_FULL);
    cr_expect_eq(got.sub.end_ms, 0);
    cr_expect_str_eq(got.sub.reason, "all changes");
    cr_expect_str_eq(got.sub.status, "error");
    cr_expect_str_eq(got.sub.error, "HTTP 503");
    cr_expect_eq(got.failures, 4);
    cr_expect(got.handshake_done);
    cr_expect_eq(got.cursor, 41, "the cursor is the notifier's");
    /* asked for again: a new handshake, failures and error forgotten */
    snprintf(up.status, sizeof up.status, "requested");
    cr_assert_eq(hx_api_sub_update(acc, "lakeside", s.sub.id, &up, why, sizeof why), 0, "%s", why);
    cr_assert_eq(hx_api_sub_get(acc, "lakeside", s.sub.id, &got), 0);
    cr_expect_str_eq(got.sub.status, "requested");
    cr_expect_str_eq(got.sub.error, "");
    cr_expect_eq(got.failures, 0);
    cr_expect_eq(got.next_ms, 0);
    cr_expect_not(got.handshake_done);
    /* active, then a new endpoint: requested again, with a new handshake */
    got.handshake_done = true;
    snprintf(got.sub.status, sizeof got.sub.status, "active");
    cr_assert_eq(hx_api_sub_progress(acc, &got), 0);
    up = got.sub;
    snprintf(up.endpoint, sizeof up.endpoint, "https://emr2.lakeside.example/hook");
    cr_assert_eq(hx_api_sub_update(acc, "lakeside", s.sub.id, &up, why, sizeof why), 0, "%s", why);
    cr_assert_eq(hx_api_sub_get(acc, "lakeside", s.sub.id, &got), 0);
    cr_expect_str_eq(got.sub.endpoint, "https://emr2.lakeside.example/hook");
    cr_expect_str_eq(got.sub.status, "requested");
    cr_expect_not(got.handshake_done);
    /* off */
    snprintf(up.status, sizeof up.status, "off");
    cr_assert_eq(hx_api_sub_update(acc, "lakeside", s.sub.id, &up, why, sizeof why), 0, "%s", why);
    cr_assert_eq(hx_api_sub_get(acc, "lakeside", s.sub.id, &got), 0);
    cr_expect_str_eq(got.sub.status, "off");
    /* what a client may not do */
    snprintf(up.status, sizeof up.status, "active");
    cr_expect_eq(hx_api_sub_update(acc, "lakeside", s.sub.id, &up, why, sizeof why), -1);
    cr_expect_str_eq(why, "status: a client may set off or requested");
    snprintf(up.status, sizeof up.status, "off");
    snprintf(up.topic, sizeof up.topic, "%s", HX_FHIR_TOPIC_SERVICE_REQUEST);
    cr_expect_eq(hx_api_sub_update(acc, "lakeside", s.sub.id, &up, why, sizeof why), -1);
    cr_expect(!strncmp(why, "topic: ", 7), "%s", why);
    snprintf(up.topic, sizeof up.topic, "%s", HX_FHIR_TOPIC_TASK);
    snprintf(up.endpoint, sizeof up.endpoint, "gopher://x");
    cr_expect_eq(hx_api_sub_update(acc, "lakeside", s.sub.id, &up, why, sizeof why), -1);
    cr_expect(!strncmp(why, "endpoint: ", 10), "%s", why);
    cr_assert_eq(hx_api_sub_get(acc, "lakeside", s.sub.id, &got), 0);
    cr_expect_str_eq(got.sub.endpoint, "https://emr2.lakeside.example/hook", "a refused update changes nothing");
}

Test(api, progress_is_kept_across_a_reopening)
{
    char why[256];
    hx_api_sub_t s = sub_new("lakeside"), got;
    cr_assert_eq(hx_api_sub_add(acc, &s, why, sizeof why), 0, "%s", why);
    s.cursor = 1234567890123ll;
    s.sub.events = 17;
    snprintf(s.sub.status, sizeof s.sub.status, "active");
    snprintf(s.sub.error, sizeof s.sub.error, "timed out after 10 s");
    s.failures = 2;
    s.next_ms = clock_now + 120000;
    s.handshake_done = true;
    cr_assert_eq(hx_api_sub_progress(acc, &s), 0);
    char token[HX_TOKEN_LEN + 1];
    cr_assert_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK);
    hx_accounts_close(&acc);
    store_open();
    cr_assert_eq(hx_api_sub_get(acc, "lakeside", s.sub.id, &got), 0);
    cr_expect_eq(got.cursor, 1234567890123ll);
    cr_expect_eq(got.sub.events, 17);
    cr_expect_str_eq(got.sub.status, "active");
    cr_expect_str_eq(got.sub.error, "timed out after 10 s");
    cr_expect_eq(got.failures, 2);
    cr_expect_eq(got.next_ms, clock_now + 120000);
    cr_expect(got.handshake_done);
    cr_expect_eq(hx_api_token_check(acc, token, NULL), 0, "a token outlives a restart (same key)");
    cr_expect_eq(hx_api_token(acc, "lake-emr", secret, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK,
                 "the secret too");
    /* progress of a subscription that is gone, or with a status that is none */
    hx_api_sub_t gone = s;
    snprintf(gone.sub.id, sizeof gone.sub.id, "S-0000000000000000");
    cr_expect_eq(hx_api_sub_progress(acc, &gone), -1);
    snprintf(s.sub.status, sizeof s.sub.status, "paused");
    cr_expect_eq(hx_api_sub_progress(acc, &s), -1);
}

Test(api, a_clinic_has_at_most_its_limit_of_subscriptions)
{
    char why[256];
    for (int i = 0; i < HX_API_SUBS_MAX; i++) {
        hx_api_sub_t s = sub_new("lakeside");
        cr_assert_eq(hx_api_sub_add(acc, &s, why, sizeof why), 0, "%d: %s", i, why);
    }
    hx_api_sub_t s = sub_new("lakeside");
    cr_expect_eq(hx_api_sub_add(acc, &s, why, sizeof why), -1);
    cr_expect(strstr(why, "20") != NULL, "%s", why);
    hx_api_sub_t n = sub_new("northside");
    cr_expect_eq(hx_api_sub_add(acc, &n, why, sizeof why), 0, "another clinic's count is its own: %s", why);
    char lake[4096] = "";
    cr_assert_eq(hx_api_sub_each(acc, "lakeside", sub_ids, lake), 0);
    /* one deleted: room for one more */
    char first[64];
    snprintf(first, sizeof first, "%.18s", lake);
    cr_assert_eq(hx_api_sub_delete(acc, "lakeside", first), 0, "%s", first);
    cr_expect_eq(hx_api_sub_add(acc, &s, why, sizeof why), 0, "%s", why);
}

Test(api, disabling_a_client_turns_its_subscriptions_off)
{
    char why[256];
    hx_api_sub_t s = sub_new("lakeside"), got;
    cr_assert_eq(hx_api_sub_add(acc, &s, why, sizeof why), 0, "%s", why);
    cr_assert_eq(hx_api_client_disable(acc, "lake-emr", why, sizeof why), 0, "%s", why);
    cr_assert_eq(hx_api_sub_get(acc, "lakeside", s.sub.id, &got), 0);
    cr_expect_str_eq(got.sub.status, "off");
}

Test(api, a_store_from_before_the_api_gains_its_tables)
{
    if (hx_pgtest_wanted())
        cr_skip_test("a SQLite file of the versions before (PostgreSQL stores began with the API)");
    hx_accounts_close(&acc);
    char side[1120];
    cr_assert_eq(unlink(db_path), 0);
    snprintf(side, sizeof side, "%s-wal", db_path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db_path);
    unlink(side);
    /* an accounts file as it was before: its users table and nothing of the API */
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TABLE users (name TEXT PRIMARY KEY, clinic TEXT NOT NULL, role INTEGER NOT NULL,"
                              " hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL)"
                              " WITHOUT ROWID;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    store_open();
    char why[256], s2[HX_TOKEN_LEN + 1], token[HX_TOKEN_LEN + 1];
    cr_assert_eq(hx_api_client_add(acc, "lake-emr", "lakeside", "system/Task.r", s2, why, sizeof why), 0, "%s", why);
    cr_expect_eq(hx_api_token(acc, "lake-emr", s2, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_OK);
}

/* ---- handoff-web client (the program beside this suite in the build tree) ---- */

/* handoff-web's path in the build tree, or "" when it is not built. */
static void web_program(char *out, size_t cap)
{
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    out[0] = '\0';
    if (n <= 0)
        return;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, cap, "%s/../services/web/handoff-web", self);
    if (access(out, X_OK) != 0)
        out[0] = '\0';
}

/* Runs handoff-web with args on the suite's store: its exit code, its standard output in out. */
static int web_run(const char *prog, const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s --accounts '%s' 2>/dev/null", prog, args, db_path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(api, the_client_command_adds_lists_resets_and_disables)
{
    char prog[600], out[4096], why[256], token[HX_TOKEN_LEN + 1];
    web_program(prog, sizeof prog);
    if (!prog[0])
        cr_skip_test("handoff-web is not built beside this suite");
    hx_accounts_close(&acc);        /* the program opens the store itself */
    cr_assert_eq(web_run(prog, "client add north-emr --clinic northside", out, sizeof out), 0);
    /* a line saying what it is, then the secret alone on the last line */
    char *nl = strchr(out, '\n');
    cr_assert_not_null(nl, "%s", out);
    cr_expect(strstr(out, "shown only this once") != NULL, "%s", out);
    char first[HX_TOKEN_LEN + 1];
    cr_assert_eq(strlen(nl + 1), HX_TOKEN_LEN + 1, "the secret's line: %s", nl + 1);
    snprintf(first, sizeof first, "%.*s", HX_TOKEN_LEN, nl + 1);
    cr_expect_eq(web_run(prog, "client add north-emr --clinic northside", out, sizeof out), 1, "taken");
    cr_expect_eq(web_run(prog, "client add other-emr", out, sizeof out), 2, "no --clinic");
    cr_expect_eq(web_run(prog, "client add other-emr --clinic northside --scopes 'system/Task.rz'", out, sizeof out),
                 1, "a bad scope");
    cr_expect_eq(web_run(prog, "client frob x", out, sizeof out), 2);
    cr_assert_eq(web_run(prog, "client list --clinic northside", out, sizeof out), 0);
    cr_expect(strstr(out, "north-emr") && strstr(out, "northside") && strstr(out, "active") &&
              strstr(out, "system/Task.rus") && strstr(out, "system/Subscription.cruds"), "%s", out);
    cr_expect(!strstr(out, first), "a list never shows a secret");
    cr_expect(!strstr(out, "lake-emr"), "only that clinic's: %s", out);
    store_open();
    hx_api_client_t g;
    cr_expect_eq(hx_api_token(acc, "north-emr", first, "system/Task.rs", token, &g, why, sizeof why), HX_API_TOKEN_OK,
                 "the printed secret works: %s", why);
    cr_expect_str_eq(g.clinic, "northside");
    hx_accounts_close(&acc);
    cr_assert_eq(web_run(prog, "client reset north-emr", out, sizeof out), 0);
    nl = strchr(out, '\n');
    cr_assert_not_null(nl);
    char fresh[HX_TOKEN_LEN + 1];
    snprintf(fresh, sizeof fresh, "%.*s", HX_TOKEN_LEN, nl + 1);
    cr_expect_str_neq(fresh, first);
    cr_expect_eq(web_run(prog, "client disable north-emr", out, sizeof out), 0);
    cr_expect_eq(web_run(prog, "client disable nobody", out, sizeof out), 1);
    cr_assert_eq(web_run(prog, "client list", out, sizeof out), 0);
    cr_expect(strstr(out, "disabled") != NULL, "%s", out);
    store_open();
    cr_expect_eq(hx_api_token_check(acc, token, NULL), -1, "reset ended the token");
    cr_expect_eq(hx_api_token(acc, "north-emr", fresh, NULL, token, NULL, why, sizeof why), HX_API_TOKEN_REFUSED,
                 "disabled");
}
