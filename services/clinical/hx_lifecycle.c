/* hx_lifecycle — the referral lifecycle state machine (see hx_lifecycle.h).
 *
 * The whole machine is `machine` below: status × event → next status and the actors allowed
 * to cause it. An empty cell is a refusal. Everything else here only reads that table.
 *
 * Why the table looks as it does (DOMAIN.md, "Priority and lifecycle"; FHIR R4 Task):
 * - Before a receiving clinic exists (requested, received, on-hold) the network services
 *   move the referral: intake receives or rejects it, triage rejects a red flag,
 *   scheduling books it or puts it on hold.
 * - Once it is handed over (ready, accepted, in-progress) only the current receiver may
 *   change it: accept, decline, start, complete, fail. A decline (FHIR "rejected by the
 *   performer") goes back to received so scheduling reassigns it. In ready the services
 *   may still fail it: the handoff may be undeliverable to the receiver's mailbox.
 * - Before care starts (ready, accepted) the receiver may redirect its handoff to another
 *   clinic or therapist: it is ready again, with the new receiver (FHIR: the Task's owner
 *   changes). Once treating (accepted, in-progress) it may ask for a discipline to be added
 *   to the referral: its own handoff does not move (the new one starts its own life).
 * - The referrer may revoke anything not final; the answer is cancelled.
 * - Final: completed, cancelled, failed, rejected; from them only entered-in-error
 *   (a record made by mistake, marked by its author or by the network), which is final too. */
#include "hx_lifecycle.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hx_refjson.h"

#define S_(x) HANDOFF__TASK_STATUS__TASK_##x
#define STATUS_COUNT (S_(ENTERED_IN_ERROR) + 1)

#define REFERRER (1u << HX_ACTOR_REFERRER)
#define RECEIVER (1u << HX_ACTOR_RECEIVER)
#define SERVICE (1u << HX_ACTOR_SERVICE)

typedef struct {
    Handoff__TaskStatus next;   /* 0: the event is not allowed from this status */
    unsigned actors;            /* bit (1 << hx_actor_t) per actor allowed */
} cell_t;

/* The state machine: machine[from][event]. */
static const cell_t machine[STATUS_COUNT][HX_EVENT_COUNT] = {
    [S_(DRAFT)] = {
        [HX_EVENT_SUBMIT]   = {S_(REQUESTED), REFERRER},
        [HX_EVENT_REVOKE]   = {S_(CANCELLED), REFERRER},
        [HX_EVENT_FAIL]     = {S_(FAILED), SERVICE},
        [HX_EVENT_ERROR]    = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE},
    },
    [S_(REQUESTED)] = {
        [HX_EVENT_RECEIVE]  = {S_(RECEIVED), SERVICE},
        [HX_EVENT_REJECT]   = {S_(REJECTED), SERVICE},
        [HX_EVENT_REVOKE]   = {S_(CANCELLED), REFERRER},
        [HX_EVENT_FAIL]     = {S_(FAILED), SERVICE},
        [HX_EVENT_ERROR]    = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE},
    },
    [S_(RECEIVED)] = {
        [HX_EVENT_REJECT]   = {S_(REJECTED), SERVICE},
        [HX_EVENT_BOOK]     = {S_(READY), SERVICE},
        [HX_EVENT_HOLD]     = {S_(ON_HOLD), SERVICE},
        [HX_EVENT_REVOKE]   = {S_(CANCELLED), REFERRER},
        [HX_EVENT_FAIL]     = {S_(FAILED), SERVICE},
        [HX_EVENT_ERROR]    = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE},
    },
    [S_(ON_HOLD)] = {
        [HX_EVENT_BOOK]     = {S_(READY), SERVICE},
        [HX_EVENT_REVOKE]   = {S_(CANCELLED), REFERRER},
        [HX_EVENT_FAIL]     = {S_(FAILED), SERVICE},
        [HX_EVENT_ERROR]    = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE},
    },
    [S_(READY)] = {
        [HX_EVENT_ACCEPT]   = {S_(ACCEPTED), RECEIVER},
        [HX_EVENT_DECLINE]  = {S_(RECEIVED), RECEIVER},
        [HX_EVENT_REDIRECT] = {S_(READY), RECEIVER},
        [HX_EVENT_REVOKE]   = {S_(CANCELLED), REFERRER},
        [HX_EVENT_FAIL]     = {S_(FAILED), RECEIVER | SERVICE},
        [HX_EVENT_ERROR]    = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE},
    },
    [S_(ACCEPTED)] = {
        [HX_EVENT_DECLINE]  = {S_(RECEIVED), RECEIVER},
        [HX_EVENT_START]    = {S_(IN_PROGRESS), RECEIVER},
        [HX_EVENT_REVOKE]   = {S_(CANCELLED), REFERRER},
        [HX_EVENT_FAIL]     = {S_(FAILED), RECEIVER},
        [HX_EVENT_ERROR]    = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE},
        [HX_EVENT_REDIRECT] = {S_(READY), RECEIVER},
        [HX_EVENT_ADD]      = {S_(ACCEPTED), RECEIVER},
    },
    [S_(IN_PROGRESS)] = {
        [HX_EVENT_COMPLETE] = {S_(COMPLETED), RECEIVER},
        [HX_EVENT_REVOKE]   = {S_(CANCELLED), REFERRER},
        [HX_EVENT_FAIL]     = {S_(FAILED), RECEIVER},
        [HX_EVENT_ERROR]    = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE},
        [HX_EVENT_ADD]      = {S_(IN_PROGRESS), RECEIVER},
    },
    [S_(REJECTED)]  = {[HX_EVENT_ERROR] = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE}},
    [S_(CANCELLED)] = {[HX_EVENT_ERROR] = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE}},
    [S_(FAILED)]    = {[HX_EVENT_ERROR] = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE}},
    [S_(COMPLETED)] = {[HX_EVENT_ERROR] = {S_(ENTERED_IN_ERROR), REFERRER | SERVICE}},
    [S_(ENTERED_IN_ERROR)] = {{0}},
};

/* ---- names --------------------------------------------------------------------------- */

static const struct {
    const char *text;   /* hx_event_text */
    const char *verb;   /* "cannot <verb> a referral", "may <verb>" */
    const char *done;   /* "<done> by the receiving clinic" */
} events[HX_EVENT_COUNT] = {
    [HX_EVENT_SUBMIT]   = {"submit", "submit", "submitted"},
    [HX_EVENT_RECEIVE]  = {"receive", "receive", "received"},
    [HX_EVENT_REJECT]   = {"reject", "reject", "rejected"},
    [HX_EVENT_BOOK]     = {"book", "book", "booked"},
    [HX_EVENT_HOLD]     = {"hold", "put on hold", "put on hold"},
    [HX_EVENT_ACCEPT]   = {"accept", "accept", "accepted"},
    [HX_EVENT_DECLINE]  = {"decline", "decline", "declined"},
    [HX_EVENT_START]    = {"start", "start", "started"},
    [HX_EVENT_COMPLETE] = {"complete", "complete", "completed"},
    [HX_EVENT_REVOKE]   = {"revoke", "revoke", "revoked"},
    [HX_EVENT_FAIL]     = {"fail", "fail", "failed"},
    [HX_EVENT_ERROR]    = {"error", "mark as entered-in-error", "marked as entered-in-error"},
    [HX_EVENT_REDIRECT] = {"redirect", "redirect", "redirected"},
    [HX_EVENT_ADD]      = {"add", "ask to add a discipline to", "a discipline asked for"},
};

static const struct {
    const char *text;   /* hx_actor_text */
    const char *who;    /* "the receiver may ..." */
    const char *only;   /* "only <only> may ...", "<done> by <only>" */
} actors[HX_ACTOR_COUNT] = {
    [HX_ACTOR_REFERRER] = {"referrer", "the referrer", "the referring clinic"},
    [HX_ACTOR_RECEIVER] = {"receiver", "the receiver", "the current receiving clinic"},
    [HX_ACTOR_SERVICE]  = {"service", "a service", "a network service (intake, triage or scheduling)"},
};

/* The order in which refusals list who may do what: the actor expected to act first. */
static const hx_actor_t listing_order[] = {HX_ACTOR_RECEIVER, HX_ACTOR_REFERRER, HX_ACTOR_SERVICE};

static bool valid_status(Handoff__TaskStatus s)
{
    return (int)s > 0 && (int)s < STATUS_COUNT;
}

static bool valid_event(hx_event_t ev)
{
    return (int)ev > HX_EVENT_NONE && (int)ev < HX_EVENT_COUNT;
}

static bool valid_actor(hx_actor_t a)
{
    return (int)a > HX_ACTOR_NONE && (int)a < HX_ACTOR_COUNT;
}

const char *hx_event_text(hx_event_t ev)
{
    return valid_event(ev) ? events[ev].text : "unknown";
}

hx_event_t hx_event_from_text(const char *s)
{
    if (!s)
        return HX_EVENT_NONE;
    for (int ev = HX_EVENT_NONE + 1; ev < HX_EVENT_COUNT; ev++)
        if (!strcmp(events[ev].text, s))
            return (hx_event_t)ev;
    return HX_EVENT_NONE;
}

const char *hx_actor_text(hx_actor_t a)
{
    return valid_actor(a) ? actors[a].text : "unknown";
}

hx_actor_t hx_actor_from_text(const char *s)
{
    if (!s)
        return HX_ACTOR_NONE;
    for (int a = HX_ACTOR_NONE + 1; a < HX_ACTOR_COUNT; a++)
        if (!strcmp(actors[a].text, s))
            return (hx_actor_t)a;
    return HX_ACTOR_NONE;
}

/* ---- queries ------------------------------------------------------------------------- */

bool hx_lifecycle_final(Handoff__TaskStatus s)
{
    switch (s) {
    case S_(COMPLETED):
    case S_(CANCELLED):
    case S_(FAILED):
    case S_(REJECTED):
    case S_(ENTERED_IN_ERROR):
        return true;
    default:
        return false;
    }
}

size_t hx_lifecycle_allowed(Handoff__TaskStatus s, hx_actor_t actor, hx_event_t *out, size_t cap)
{
    if (!valid_status(s) || !valid_actor(actor))
        return 0;
    size_t n = 0;
    for (int ev = HX_EVENT_NONE + 1; ev < HX_EVENT_COUNT; ev++) {
        const cell_t *c = &machine[s][ev];
        if (!c->next || !(c->actors & (1u << actor)))
            continue;
        if (out && n < cap)
            out[n] = (hx_event_t)ev;
        n++;
    }
    return n;
}

/* ---- messages ------------------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t cap, len;    /* len may pass cap: the text is then truncated */
} msg_t;

static void put(msg_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(msg_t *m, const char *fmt, ...)
{
    if (!m->buf || m->cap == 0)
        return;
    size_t room = m->len < m->cap ? m->cap - m->len : 0;
    if (room == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->buf + m->len, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        m->len += (size_t)n;
}

/* "the receiver may accept, decline or fail; the referrer may revoke or ..." for status s;
 * "nothing may follow it" when no one may do anything. */
static void put_allowed(msg_t *m, Handoff__TaskStatus s)
{
    bool any = false;
    for (size_t k = 0; k < sizeof listing_order / sizeof listing_order[0]; k++) {
        hx_actor_t a = listing_order[k];
        hx_event_t evs[HX_EVENT_COUNT];
        size_t n = hx_lifecycle_allowed(s, a, evs, HX_EVENT_COUNT);
        if (n == 0)
            continue;
        put(m, "%s%s may ", any ? "; " : "", actors[a].who);
        for (size_t i = 0; i < n; i++)
            put(m, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ", events[evs[i]].verb);
        any = true;
    }
    if (!any)
        put(m, "nothing may follow it");
}

/* "the referring clinic or a network service (...)" for an actor mask. */
static void put_actors(msg_t *m, unsigned mask)
{
    size_t n = 0, total = 0;
    for (int a = HX_ACTOR_NONE + 1; a < HX_ACTOR_COUNT; a++)
        total += (mask >> a) & 1u;
    for (int a = HX_ACTOR_NONE + 1; a < HX_ACTOR_COUNT; a++) {
        if (!((mask >> a) & 1u))
            continue;
        put(m, "%s%s", n == 0 ? "" : n + 1 == total ? " or " : ", ", actors[a].only);
        n++;
    }
}

int hx_lifecycle_apply(Handoff__TaskStatus from, hx_event_t ev, hx_actor_t actor,
                       Handoff__TaskStatus *to, char *why, size_t cap)
{
    msg_t m = {.buf = why, .cap = cap};
    if (why && cap)
        why[0] = '\0';
    const char *state = hx_status_text(from);

    if (!valid_status(from)) {
        put(&m, "unknown referral status %d (%s): the lifecycle starts at draft or requested",
            (int)from, state);
        return -1;
    }
    if (!valid_event(ev)) {
        put(&m, "unknown event %d for a referral that is %s: from %s ", (int)ev, state, state);
        put_allowed(&m, from);
        return -1;
    }
    if (!valid_actor(actor)) {
        put(&m, "unknown actor %d: who may %s a referral that is %s must be the referrer, the "
                "receiver or a service", (int)actor, events[ev].verb, state);
        return -1;
    }

    const cell_t *c = &machine[from][ev];
    if (!c->next) {
        put(&m, "cannot %s a referral that is %s: ", events[ev].verb, state);
        if (hx_lifecycle_final(from))
            put(&m, "%s is final; from %s ", state, state);
        else
            put(&m, "from %s ", state);
        put_allowed(&m, from);
        return -1;
    }
    if (!(c->actors & (1u << actor))) {
        put(&m, "only ");
        put_actors(&m, c->actors);
        put(&m, " may %s a referral that is %s, not %s", events[ev].verb, state,
            actors[actor].only);
        return -1;
    }

    if (to)
        *to = c->next;
    put(&m, "%s by %s (%s -> %s)", events[ev].done, actors[actor].only, state,
        hx_status_text(c->next));
    if (ev == HX_EVENT_DECLINE)
        put(&m, ": back to scheduling to be reassigned to another therapist");
    if (ev == HX_EVENT_REDIRECT)
        put(&m, ": handed to the clinic or therapist it names");
    return 0;
}

/* ---- the referral's status from its handoffs ------------------------------------------- */

/* How far an open handoff is (rule 5 of hx_referral_status); 0 for final ones. */
static int open_rank(Handoff__TaskStatus s)
{
    switch (s) {
    case S_(DRAFT):     return 1;
    case S_(REQUESTED): return 2;
    case S_(ON_HOLD):   return 3;
    case S_(RECEIVED):  return 4;
    case S_(READY):     return 5;
    case S_(ACCEPTED):  return 6;
    default:            return 0;
    }
}

Handoff__TaskStatus hx_referral_status(Handoff__TaskStatus own, const Handoff__TaskStatus *handoffs, size_t n)
{
    if (n == 0)
        return valid_status(own) ? own : S_(UNSPECIFIED);
    if (!handoffs)
        return S_(UNSPECIFIED);
    size_t completed = 0, failed = 0, same = 0, final = 0;
    bool in_progress = false;
    Handoff__TaskStatus furthest = S_(UNSPECIFIED);
    for (size_t i = 0; i < n; i++) {
        Handoff__TaskStatus s = handoffs[i];
        if (!valid_status(s))
            return S_(UNSPECIFIED);
        in_progress |= s == S_(IN_PROGRESS);
        completed += s == S_(COMPLETED);
        failed += s == S_(FAILED);
        same += s == handoffs[0];
        final += hx_lifecycle_final(s);
        if (open_rank(s) > open_rank(furthest))
            furthest = s;
    }
    if (in_progress)
        return S_(IN_PROGRESS);
    if (final == n)
        return completed ? S_(COMPLETED) : failed ? S_(FAILED) : same == n ? handoffs[0] : S_(CANCELLED);
    if (completed)
        return S_(IN_PROGRESS);
    return furthest;
}
