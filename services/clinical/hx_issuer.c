/* hx_issuer — the issuer table of the clinical types a mailbox receives. */
#include "hx_issuer.h"

#include <stdio.h>
#include <string.h>

/* type -> the services that issue it into mailboxes (docs/PROTOCOL.md, "The clinical layer"):
 * scheduling hands a booked referral to the receiving clinic; intake (requested, rejected),
 * triage (received, rejected) and scheduling (ready, on-hold, the lifecycle's answers and
 * changes) tell clinics where a referral stands; scheduling asks the network's reviewers to
 * decide a referral triage could not place (ReviewRequest); scheduling delivers the posts of
 * a referral's care thread (ThreadPost) to its participants; scheduling answers a clinic's or
 * reviewer's StatsRequest with the network's aggregates (NetworkStats). */
static const struct {
    const char *type;
    const char *const services[4];
} ISSUERS[] = {
    {"handoff.Handoff", {"scheduling", NULL}},
    {"handoff.StatusUpdate", {"intake", "triage", "scheduling", NULL}},
    {"handoff.ReviewRequest", {"scheduling", NULL}},
    {"handoff.ThreadPost", {"scheduling", NULL}},
    {"handoff.NetworkStats", {"scheduling", NULL}},
};

const char *const *hx_issuer_services(const char *type)
{
    for (size_t i = 0; type && i < sizeof ISSUERS / sizeof *ISSUERS; i++)
        if (strcmp(ISSUERS[i].type, type) == 0)
            return ISSUERS[i].services;
    return NULL;
}

bool hx_issuer_trusted(const char *type, bool from_service, const char *from)
{
    const char *const *s = hx_issuer_services(type);
    if (!s || !from_service || !from)
        return false;
    for (; *s; s++)
        if (strcmp(*s, from) == 0)
            return true;
    return false;
}

int hx_issuer_check(const char *type, bool from_service, const char *from, char *why, size_t cap)
{
    if (hx_issuer_trusted(type, from_service, from))
        return 0;
    if (!why || cap == 0)
        return -1;
    const char *const *s = hx_issuer_services(type);
    if (!s) {
        snprintf(why, cap, "%s is not a type a clinic's mailbox receives", type ? type : "(no type)");
        return -1;
    }
    size_t n = 0;
    while (s[n])
        n++;
    /* "only service:a issues T", "only service:a or service:b issue T", "only service:a,
     * service:b or service:c issue T" */
    size_t len = (size_t)snprintf(why, cap, "only ");
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(why + len, cap - len, "%sservice:%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", s[i]);
    if (len < cap)
        snprintf(why + len, cap - len, " %s %s", n == 1 ? "issues" : "issue", type);
    return -1;
}
