/* Unit tests for hx_issuer: every type a test can name × every kind of sender against an
 * expected table written here (from docs/PROTOCOL.md, independently of the implementation's),
 * and the reasons a receiver prints when it drops a message. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <string.h>

#include "hx_issuer.h"

static const char *const TYPES[] = {"handoff.Handoff", "handoff.StatusUpdate", "handoff.Referral", "handoff.Case",
                                    "handoff.StatusChange", "handoff.Retry", "handoff.Refusal", "test.echo",
                                    "handoff.handoff", "handoff.NetworkStats", "handoff.StatsRequest", ""};
static const char *const NAMES[] = {"scheduling", "intake", "triage", "billing", "clinic-a", "Scheduling",
                                    "scheduling2", ""};

/* The expectation: a service sender named in this list for this type; nothing else. */
static bool expected(const char *type, bool from_service, const char *from)
{
    if (!from_service)
        return false;
    if (strcmp(type, "handoff.Handoff") == 0 || strcmp(type, "handoff.NetworkStats") == 0)
        return strcmp(from, "scheduling") == 0;
    if (strcmp(type, "handoff.StatusUpdate") == 0)
        return !strcmp(from, "intake") || !strcmp(from, "triage") || !strcmp(from, "scheduling");
    return false;
}

Test(issuer, matrix_of_types_and_senders)
{
    for (size_t t = 0; t < sizeof TYPES / sizeof *TYPES; t++)
        for (size_t n = 0; n < sizeof NAMES / sizeof *NAMES; n++)
            for (int svc = 0; svc < 2; svc++) {
                bool want = expected(TYPES[t], svc, NAMES[n]);
                cr_expect_eq(hx_issuer_trusted(TYPES[t], svc, NAMES[n]), want, "%s from %s:%s: expected %s",
                             TYPES[t], svc ? "service" : "mailbox", NAMES[n], want ? "trusted" : "not trusted");
                char why[256] = "untouched";
                cr_expect_eq(hx_issuer_check(TYPES[t], svc, NAMES[n], why, sizeof why), want ? 0 : -1);
                if (want)
                    cr_expect_str_eq(why, "untouched", "a trusted message leaves why alone");
            }
}

Test(issuer, null_type_or_sender_is_never_trusted)
{
    cr_expect_not(hx_issuer_trusted(NULL, true, "scheduling"));
    cr_expect_not(hx_issuer_trusted("handoff.Handoff", true, NULL));
    char why[128];
    cr_expect_eq(hx_issuer_check(NULL, true, "scheduling", why, sizeof why), -1);
    cr_expect_str_eq(why, "(no type) is not a type a clinic's mailbox receives");
}

Test(issuer, the_listed_services_per_type)
{
    const char *const *s = hx_issuer_services("handoff.Handoff");
    cr_assert_not_null(s);
    cr_expect_str_eq(s[0], "scheduling");
    cr_expect_null(s[1]);
    s = hx_issuer_services("handoff.StatusUpdate");
    cr_assert_not_null(s);
    cr_expect_str_eq(s[0], "intake");
    cr_expect_str_eq(s[1], "triage");
    cr_expect_str_eq(s[2], "scheduling");
    cr_expect_null(s[3]);
    cr_expect_null(hx_issuer_services("handoff.Referral"), "a clinic sends referrals; its mailbox never gets one");
    cr_expect_null(hx_issuer_services(NULL));
}

Test(issuer, reasons_name_the_issuing_services)
{
    char why[256];
    cr_expect_eq(hx_issuer_check("handoff.Handoff", false, "clinic-a", why, sizeof why), -1);
    cr_expect_str_eq(why, "only service:scheduling issues handoff.Handoff");
    cr_expect_eq(hx_issuer_check("handoff.Handoff", true, "intake", why, sizeof why), -1);
    cr_expect_str_eq(why, "only service:scheduling issues handoff.Handoff");
    cr_expect_eq(hx_issuer_check("handoff.StatusUpdate", false, "scheduling", why, sizeof why), -1,
                 "a clinic named like a service is still a clinic");
    cr_expect_str_eq(why, "only service:intake, service:triage or service:scheduling issue handoff.StatusUpdate");
    cr_expect_eq(hx_issuer_check("test.echo", true, "echo", why, sizeof why), -1);
    cr_expect_str_eq(why, "test.echo is not a type a clinic's mailbox receives");
}

Test(issuer, a_short_buffer_is_cut_and_terminated)
{
    char why[12];
    memset(why, 'x', sizeof why);
    cr_expect_eq(hx_issuer_check("handoff.StatusUpdate", false, "clinic-a", why, sizeof why), -1);
    cr_expect_eq(strlen(why), sizeof why - 1);
    cr_expect_str_eq(why, "only servic");
    cr_expect_eq(hx_issuer_check("handoff.Handoff", false, "clinic-a", NULL, 0), -1);
}
