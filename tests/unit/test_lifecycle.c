/* Unit tests for hx_lifecycle: the full status × event × actor matrix against an expected
 * table written here (independently of the implementation's), the refusal messages, the
 * queries, and end-to-end paths through the lifecycle. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_lifecycle.h"
#include "hx_refjson.h"

#define ST(x) HANDOFF__TASK_STATUS__TASK_##x
#define N_STATUS 13     /* TASK_UNSPECIFIED .. TASK_ENTERED_IN_ERROR */

enum { R = 1, V = 2, S = 4 };   /* referrer, receiver (V for "receiVer"), service */

static unsigned actor_bit(hx_actor_t a)
{
    return a == HX_ACTOR_REFERRER ? R : a == HX_ACTOR_RECEIVER ? V : a == HX_ACTOR_SERVICE ? S : 0;
}

/* The expected lifecycle, from DOMAIN.md and the brief: every legal (status, event) with who
 * may cause it and the status it leads to. Anything not listed must be refused. */
static const struct expect {
    Handoff__TaskStatus from;
    hx_event_t ev;
    unsigned who;
    Handoff__TaskStatus to;
} expected[] = {
    {ST(DRAFT), HX_EVENT_SUBMIT, R, ST(REQUESTED)},
    {ST(DRAFT), HX_EVENT_REVOKE, R, ST(CANCELLED)},
    {ST(DRAFT), HX_EVENT_FAIL, S, ST(FAILED)},
    {ST(DRAFT), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},

    {ST(REQUESTED), HX_EVENT_RECEIVE, S, ST(RECEIVED)},
    {ST(REQUESTED), HX_EVENT_REJECT, S, ST(REJECTED)},
    {ST(REQUESTED), HX_EVENT_REVOKE, R, ST(CANCELLED)},
    {ST(REQUESTED), HX_EVENT_FAIL, S, ST(FAILED)},
    {ST(REQUESTED), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},

    {ST(RECEIVED), HX_EVENT_REJECT, S, ST(REJECTED)},
    {ST(RECEIVED), HX_EVENT_BOOK, S, ST(READY)},
    {ST(RECEIVED), HX_EVENT_HOLD, S, ST(ON_HOLD)},
    {ST(RECEIVED), HX_EVENT_REVOKE, R, ST(CANCELLED)},
    {ST(RECEIVED), HX_EVENT_FAIL, S, ST(FAILED)},
    {ST(RECEIVED), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},

    {ST(ON_HOLD), HX_EVENT_BOOK, S, ST(READY)},
    {ST(ON_HOLD), HX_EVENT_REVOKE, R, ST(CANCELLED)},
    {ST(ON_HOLD), HX_EVENT_FAIL, S, ST(FAILED)},
    {ST(ON_HOLD), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},

    {ST(READY), HX_EVENT_ACCEPT, V, ST(ACCEPTED)},
    {ST(READY), HX_EVENT_DECLINE, V, ST(RECEIVED)},
    {ST(READY), HX_EVENT_REVOKE, R, ST(CANCELLED)},
    {ST(READY), HX_EVENT_FAIL, V | S, ST(FAILED)},
    {ST(READY), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},
    {ST(READY), HX_EVENT_REDIRECT, V, ST(READY)},

    {ST(ACCEPTED), HX_EVENT_DECLINE, V, ST(RECEIVED)},
    {ST(ACCEPTED), HX_EVENT_START, V, ST(IN_PROGRESS)},
    {ST(ACCEPTED), HX_EVENT_REVOKE, R, ST(CANCELLED)},
    {ST(ACCEPTED), HX_EVENT_FAIL, V, ST(FAILED)},
    {ST(ACCEPTED), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},
    {ST(ACCEPTED), HX_EVENT_REDIRECT, V, ST(READY)},
    {ST(ACCEPTED), HX_EVENT_ADD, V, ST(ACCEPTED)},

    {ST(IN_PROGRESS), HX_EVENT_COMPLETE, V, ST(COMPLETED)},
    {ST(IN_PROGRESS), HX_EVENT_REVOKE, R, ST(CANCELLED)},
    {ST(IN_PROGRESS), HX_EVENT_FAIL, V, ST(FAILED)},
    {ST(IN_PROGRESS), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},
    {ST(IN_PROGRESS), HX_EVENT_ADD, V, ST(IN_PROGRESS)},

    {ST(REJECTED), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},
    {ST(CANCELLED), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},
    {ST(FAILED), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},
    {ST(COMPLETED), HX_EVENT_ERROR, R | S, ST(ENTERED_IN_ERROR)},
    /* entered-in-error: nothing */
};

static const Handoff__TaskStatus all_status[] = {
    ST(DRAFT), ST(REQUESTED), ST(RECEIVED), ST(ACCEPTED), ST(REJECTED), ST(READY),
    ST(CANCELLED), ST(IN_PROGRESS), ST(ON_HOLD), ST(FAILED), ST(COMPLETED), ST(ENTERED_IN_ERROR),
};
#define N_ALL (sizeof all_status / sizeof all_status[0])

static const hx_event_t all_events[] = {
    HX_EVENT_SUBMIT, HX_EVENT_RECEIVE, HX_EVENT_REJECT, HX_EVENT_BOOK, HX_EVENT_HOLD,
    HX_EVENT_ACCEPT, HX_EVENT_DECLINE, HX_EVENT_START, HX_EVENT_COMPLETE, HX_EVENT_REVOKE,
    HX_EVENT_FAIL, HX_EVENT_ERROR, HX_EVENT_REDIRECT, HX_EVENT_ADD,
};
#define N_EVENTS (sizeof all_events / sizeof all_events[0])

static const hx_actor_t all_actors[] = {HX_ACTOR_REFERRER, HX_ACTOR_RECEIVER, HX_ACTOR_SERVICE};
#define N_ACTORS 3

static const struct expect *lookup(Handoff__TaskStatus from, hx_event_t ev)
{
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        if (expected[i].from == from && expected[i].ev == ev)
            return &expected[i];
    return NULL;
}

static bool expected_final(Handoff__TaskStatus s)
{
    return s == ST(COMPLETED) || s == ST(CANCELLED) || s == ST(FAILED) || s == ST(REJECTED) ||
           s == ST(ENTERED_IN_ERROR);
}

/* ---- the matrix ---------------------------------------------------------------------- */

Test(lifecycle, full_matrix_against_the_expected_table)
{
    size_t legal = 0, refused = 0;
    for (size_t i = 0; i < N_ALL; i++) {
        for (size_t k = 0; k < N_EVENTS; k++) {
            for (size_t a = 0; a < N_ACTORS; a++) {
                Handoff__TaskStatus from = all_status[i];
                hx_event_t ev = all_events[k];
                hx_actor_t actor = all_actors[a];
                const struct expect *x = lookup(from, ev);
                bool ok = x && (x->who & actor_bit(actor));
                const char *name = hx_status_text(from);
                Handoff__TaskStatus to = (Handoff__TaskStatus)99;
                char why[512];
                int rc = hx_lifecycle_apply(from, ev, actor, &to, why, sizeof why);
                if (ok) {
                    legal++;
                    cr_expect_eq(rc, 0, "%s + %s by %s should be allowed: %s", name,
                                 hx_event_text(ev), hx_actor_text(actor), why);
                    cr_expect_eq(to, x->to, "%s + %s by %s: got %s, expected %s", name,
                                 hx_event_text(ev), hx_actor_text(actor), hx_status_text(to),
                                 hx_status_text(x->to));
                    cr_expect(strstr(why, hx_status_text(x->to)),
                              "success text should name the new status: %s", why);
                } else {
                    refused++;
                    cr_expect_eq(rc, -1, "%s + %s by %s should be refused", name,
                                 hx_event_text(ev), hx_actor_text(actor));
                    cr_expect_eq(to, (Handoff__TaskStatus)99, "a refusal must leave *to alone");
                    cr_expect(strstr(why, name), "refusal must name the status %s: \"%s\"", name, why);
                    if (x)  /* the event is legal here, the actor is not */
                        cr_expect(strstr(why, "only "), "actor refusal should say who may: %s", why);
                    else
                        cr_expect(strstr(why, "cannot "), "state refusal should say cannot: %s", why);
                }
            }
        }
    }
    cr_expect_eq(legal, 53, "legal triples: %zu", legal);
    cr_expect_eq(legal + refused, N_ALL * N_EVENTS * N_ACTORS);
}

Test(lifecycle, allowed_matches_the_expected_table)
{
    for (size_t i = 0; i < N_ALL; i++) {
        for (size_t a = 0; a < N_ACTORS; a++) {
            hx_event_t want[HX_EVENT_COUNT];
            size_t n_want = 0;
            for (size_t k = 0; k < N_EVENTS; k++) {
                const struct expect *x = lookup(all_status[i], all_events[k]);
                if (x && (x->who & actor_bit(all_actors[a])))
                    want[n_want++] = all_events[k];
            }
            hx_event_t got[HX_EVENT_COUNT];
            size_t n = hx_lifecycle_allowed(all_status[i], all_actors[a], got, HX_EVENT_COUNT);
            cr_expect_eq(n, n_want, "%s by %s: %zu events, expected %zu",
                         hx_status_text(all_status[i]), hx_actor_text(all_actors[a]), n, n_want);
            for (size_t k = 0; k < n && k < n_want; k++)
                cr_expect_eq(got[k], want[k], "%s by %s: event %zu is %s, expected %s",
                             hx_status_text(all_status[i]), hx_actor_text(all_actors[a]), k,
                             hx_event_text(got[k]), hx_event_text(want[k]));
            /* counting only, and a short buffer */
            cr_expect_eq(hx_lifecycle_allowed(all_status[i], all_actors[a], NULL, 0), n_want);
            hx_event_t one[1] = {HX_EVENT_NONE};
            cr_expect_eq(hx_lifecycle_allowed(all_status[i], all_actors[a], one, 1), n_want);
            if (n_want)
                cr_expect_eq(one[0], want[0]);
        }
    }
}

Test(lifecycle, final_states)
{
    for (size_t i = 0; i < N_ALL; i++)
        cr_expect_eq(hx_lifecycle_final(all_status[i]), expected_final(all_status[i]), "%s",
                     hx_status_text(all_status[i]));
    cr_expect_not(hx_lifecycle_final(ST(UNSPECIFIED)));
    cr_expect_not(hx_lifecycle_final((Handoff__TaskStatus)77));
}

Test(lifecycle, nothing_leaves_a_final_state_but_entered_in_error)
{
    for (size_t i = 0; i < N_ALL; i++) {
        if (!hx_lifecycle_final(all_status[i]))
            continue;
        for (size_t k = 0; k < N_EVENTS; k++)
            for (size_t a = 0; a < N_ACTORS; a++) {
                Handoff__TaskStatus to = 0;
                char why[512];
                if (hx_lifecycle_apply(all_status[i], all_events[k], all_actors[a], &to, why,
                                       sizeof why) == 0) {
                    cr_expect_eq(all_events[k], HX_EVENT_ERROR, "%s left by %s",
                                 hx_status_text(all_status[i]), hx_event_text(all_events[k]));
                    cr_expect_eq(to, ST(ENTERED_IN_ERROR));
                    cr_expect_neq(all_status[i], ST(ENTERED_IN_ERROR));
                } else if (all_events[k] == HX_EVENT_ERROR &&
                           all_status[i] != ST(ENTERED_IN_ERROR)) {
                    cr_expect(strstr(why, "only the referring clinic or a network service"), "%s", why);
                    cr_expect(strstr(why, hx_status_text(all_status[i])), "%s", why);
                } else {
                    cr_expect(strstr(why, "is final"), "%s", why);
                    cr_expect(strstr(why, hx_status_text(all_status[i])), "%s", why);
                }
            }
    }
}

/* Every status is reachable from draft, and from every status that is not final some
 * final status is reachable: no dead ends. Walks the implementation through apply only. */
Test(lifecycle, reachability_and_no_dead_ends)
{
    bool seen[N_STATUS] = {false};
    Handoff__TaskStatus queue[N_STATUS];
    size_t head = 0, tail = 0;
    queue[tail++] = ST(DRAFT);
    seen[ST(DRAFT)] = true;
    while (head < tail) {
        Handoff__TaskStatus s = queue[head++];
        for (size_t k = 0; k < N_EVENTS; k++)
            for (size_t a = 0; a < N_ACTORS; a++) {
                Handoff__TaskStatus to;
                if (hx_lifecycle_apply(s, all_events[k], all_actors[a], &to, NULL, 0) == 0 &&
                    !seen[to]) {
                    seen[to] = true;
                    queue[tail++] = to;
                }
            }
    }
    for (size_t i = 0; i < N_ALL; i++)
        cr_expect(seen[all_status[i]], "%s unreachable from draft", hx_status_text(all_status[i]));

    for (size_t i = 0; i < N_ALL; i++) {
        if (hx_lifecycle_final(all_status[i]))
            continue;
        /* completed, cancelled or failed must be reachable without entered-in-error */
        bool reach[N_STATUS] = {false};
        Handoff__TaskStatus q[N_STATUS];
        size_t h = 0, t = 0;
        q[t++] = all_status[i];
        reach[all_status[i]] = true;
        bool final_reached = false;
        while (h < t) {
            Handoff__TaskStatus s = q[h++];
            for (size_t k = 0; k < N_EVENTS; k++) {
                if (all_events[k] == HX_EVENT_ERROR)
                    continue;
                for (size_t a = 0; a < N_ACTORS; a++) {
                    Handoff__TaskStatus to;
                    if (hx_lifecycle_apply(s, all_events[k], all_actors[a], &to, NULL, 0) != 0 ||
                        reach[to])
                        continue;
                    reach[to] = true;
                    q[t++] = to;
                    final_reached |= hx_lifecycle_final(to);
                }
            }
        }
        cr_expect(final_reached, "%s is a dead end", hx_status_text(all_status[i]));
    }
}

/* ---- messages ------------------------------------------------------------------------ */

Test(lifecycle, refusal_lists_what_is_allowed)
{
    char why[512];
    Handoff__TaskStatus to;
    cr_assert_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_START, HX_ACTOR_RECEIVER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "cannot start a referral that is ready"), "%s", why);
    cr_expect(strstr(why, "the receiver may accept, decline, fail or redirect"), "%s", why);
    cr_expect(strstr(why, "the referrer may revoke or mark as entered-in-error"), "%s", why);
    cr_expect(strstr(why, "a service may fail or mark as entered-in-error"), "%s", why);

    cr_assert_eq(hx_lifecycle_apply(ST(COMPLETED), HX_EVENT_REVOKE, HX_ACTOR_REFERRER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "cannot revoke a referral that is completed: completed is final"), "%s", why);

    cr_assert_eq(hx_lifecycle_apply(ST(ENTERED_IN_ERROR), HX_EVENT_ERROR, HX_ACTOR_SERVICE, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "entered-in-error is final"), "%s", why);
    cr_expect(strstr(why, "nothing may follow it"), "%s", why);

    cr_assert_eq(hx_lifecycle_apply(ST(ON_HOLD), HX_EVENT_HOLD, HX_ACTOR_SERVICE, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "cannot put on hold a referral that is on-hold"), "%s", why);
}

Test(lifecycle, actor_refusals_name_who_may)
{
    char why[512];
    Handoff__TaskStatus to;
    cr_assert_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_ACCEPT, HX_ACTOR_REFERRER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "only the current receiving clinic may accept a referral that is ready"), "%s", why);
    cr_expect(strstr(why, "not the referring clinic"), "%s", why);

    cr_assert_eq(hx_lifecycle_apply(ST(IN_PROGRESS), HX_EVENT_COMPLETE, HX_ACTOR_SERVICE, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "only the current receiving clinic may complete"), "%s", why);

    cr_assert_eq(hx_lifecycle_apply(ST(ACCEPTED), HX_EVENT_REVOKE, HX_ACTOR_RECEIVER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "only the referring clinic may revoke a referral that is accepted"), "%s", why);

    cr_assert_eq(hx_lifecycle_apply(ST(RECEIVED), HX_EVENT_BOOK, HX_ACTOR_REFERRER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "only a network service"), "%s", why);

    cr_assert_eq(hx_lifecycle_apply(ST(COMPLETED), HX_EVENT_ERROR, HX_ACTOR_RECEIVER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "only the referring clinic or a network service"), "%s", why);
    cr_expect(strstr(why, "completed"), "%s", why);

    cr_assert_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_FAIL, HX_ACTOR_REFERRER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "only the current receiving clinic or a network service"), "%s", why);
}

Test(lifecycle, success_text_and_decline)
{
    char why[256];
    Handoff__TaskStatus to = 0;
    cr_assert_eq(hx_lifecycle_apply(ST(ACCEPTED), HX_EVENT_DECLINE, HX_ACTOR_RECEIVER, &to, why, sizeof why), 0);
    cr_expect_eq(to, ST(RECEIVED));
    cr_expect(strstr(why, "declined by the current receiving clinic (accepted -> received)"), "%s", why);
    cr_expect(strstr(why, "reassigned"), "%s", why);

    cr_assert_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_REVOKE, HX_ACTOR_REFERRER, &to, why, sizeof why), 0);
    cr_expect_str_eq(why, "revoked by the referring clinic (ready -> cancelled)");
}

/* A redirect hands the handoff on before care starts; asking for a discipline to be added
 * needs care under way and leaves the asker's own handoff where it is. */
Test(lifecycle, redirect_and_add)
{
    char why[512];
    Handoff__TaskStatus to = 0;
    cr_assert_eq(hx_lifecycle_apply(ST(ACCEPTED), HX_EVENT_REDIRECT, HX_ACTOR_RECEIVER, &to, why, sizeof why), 0);
    cr_expect_eq(to, ST(READY));
    cr_expect_str_eq(why, "redirected by the current receiving clinic (accepted -> ready): handed to the clinic or "
                          "therapist it names");
    cr_assert_eq(hx_lifecycle_apply(ST(IN_PROGRESS), HX_EVENT_REDIRECT, HX_ACTOR_RECEIVER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "cannot redirect a referral that is in-progress: from in-progress the receiver may "
                          "complete, fail or ask to add a discipline to"), "%s", why);
    cr_assert_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_REDIRECT, HX_ACTOR_REFERRER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "only the current receiving clinic may redirect a referral that is ready"), "%s", why);

    cr_assert_eq(hx_lifecycle_apply(ST(IN_PROGRESS), HX_EVENT_ADD, HX_ACTOR_RECEIVER, &to, why, sizeof why), 0);
    cr_expect_eq(to, ST(IN_PROGRESS));
    cr_assert_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_ADD, HX_ACTOR_RECEIVER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "cannot ask to add a discipline to a referral that is ready: from ready the receiver may "
                          "accept, decline, fail or redirect"), "%s", why);
    cr_assert_eq(hx_lifecycle_apply(ST(ACCEPTED), HX_EVENT_ADD, HX_ACTOR_REFERRER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "only the current receiving clinic may ask to add a discipline to"), "%s", why);
}

Test(lifecycle, bad_values_are_refused_not_asserted)
{
    char why[512];
    Handoff__TaskStatus to = ST(DRAFT);
    cr_expect_eq(hx_lifecycle_apply(ST(UNSPECIFIED), HX_EVENT_SUBMIT, HX_ACTOR_REFERRER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "unspecified"), "%s", why);
    cr_expect_eq(hx_lifecycle_apply((Handoff__TaskStatus)42, HX_EVENT_SUBMIT, HX_ACTOR_REFERRER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "unknown referral status 42"), "%s", why);
    cr_expect_eq(hx_lifecycle_apply((Handoff__TaskStatus)-3, HX_EVENT_SUBMIT, HX_ACTOR_REFERRER, &to, why, sizeof why), -1);
    cr_expect_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_NONE, HX_ACTOR_RECEIVER, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "unknown event 0") && strstr(why, "ready"), "%s", why);
    cr_expect_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_COUNT, HX_ACTOR_RECEIVER, &to, why, sizeof why), -1);
    cr_expect_eq(hx_lifecycle_apply(ST(READY), (hx_event_t)-1, HX_ACTOR_RECEIVER, &to, why, sizeof why), -1);
    cr_expect_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_ACCEPT, HX_ACTOR_NONE, &to, why, sizeof why), -1);
    cr_expect(strstr(why, "unknown actor 0") && strstr(why, "ready"), "%s", why);
    cr_expect_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_ACCEPT, (hx_actor_t)9, &to, why, sizeof why), -1);
    cr_expect_eq(to, ST(DRAFT), "refusals leave *to alone");
    cr_expect_eq(hx_lifecycle_allowed(ST(UNSPECIFIED), HX_ACTOR_REFERRER, NULL, 0), 0);
    cr_expect_eq(hx_lifecycle_allowed(ST(READY), HX_ACTOR_NONE, NULL, 0), 0);
    cr_expect_eq(hx_lifecycle_allowed((Handoff__TaskStatus)100, HX_ACTOR_SERVICE, NULL, 0), 0);
}

Test(lifecycle, why_is_optional_and_truncated_safely)
{
    Handoff__TaskStatus to;
    cr_expect_eq(hx_lifecycle_apply(ST(DRAFT), HX_EVENT_SUBMIT, HX_ACTOR_REFERRER, &to, NULL, 0), 0);
    cr_expect_eq(to, ST(REQUESTED));
    cr_expect_eq(hx_lifecycle_apply(ST(DRAFT), HX_EVENT_SUBMIT, HX_ACTOR_REFERRER, NULL, NULL, 0), 0);
    cr_expect_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_START, HX_ACTOR_RECEIVER, NULL, NULL, 0), -1);
    for (size_t cap = 1; cap < 40; cap++) {
        char buf[48];
        memset(buf, 'x', sizeof buf);
        cr_expect_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_START, HX_ACTOR_RECEIVER, &to, buf, cap), -1);
        cr_expect_eq(strlen(buf), cap - 1, "cap %zu", cap);
        cr_expect_eq(buf[cap], 'x', "wrote past cap %zu", cap);
        memset(buf, 'x', sizeof buf);
        cr_expect_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_ACCEPT, HX_ACTOR_RECEIVER, &to, buf, cap), 0);
        cr_expect(strlen(buf) < cap);
        cr_expect_eq(buf[cap], 'x');
    }
    char one[1] = {'x'};
    cr_expect_eq(hx_lifecycle_apply(ST(READY), HX_EVENT_START, HX_ACTOR_RECEIVER, &to, one, 1), -1);
    cr_expect_eq(one[0], '\0');
}

Test(lifecycle, event_and_actor_texts)
{
    static const struct {
        hx_event_t ev;
        const char *text;
    } names[] = {
        {HX_EVENT_SUBMIT, "submit"}, {HX_EVENT_RECEIVE, "receive"}, {HX_EVENT_REJECT, "reject"},
        {HX_EVENT_BOOK, "book"}, {HX_EVENT_HOLD, "hold"}, {HX_EVENT_ACCEPT, "accept"},
        {HX_EVENT_DECLINE, "decline"}, {HX_EVENT_START, "start"}, {HX_EVENT_COMPLETE, "complete"},
        {HX_EVENT_REVOKE, "revoke"}, {HX_EVENT_FAIL, "fail"}, {HX_EVENT_ERROR, "error"},
        {HX_EVENT_REDIRECT, "redirect"}, {HX_EVENT_ADD, "add"},
    };
    cr_assert_eq(sizeof names / sizeof names[0], HX_EVENT_COUNT - 1);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cr_expect_str_eq(hx_event_text(names[i].ev), names[i].text);
        cr_expect_eq(hx_event_from_text(names[i].text), names[i].ev, "%s", names[i].text);
    }
    cr_expect_str_eq(hx_event_text(HX_EVENT_NONE), "unknown");
    cr_expect_str_eq(hx_event_text((hx_event_t)99), "unknown");
    cr_expect_eq(hx_event_from_text(NULL), HX_EVENT_NONE);
    cr_expect_eq(hx_event_from_text(""), HX_EVENT_NONE);
    cr_expect_eq(hx_event_from_text("Accept"), HX_EVENT_NONE);
    cr_expect_eq(hx_event_from_text("accepted"), HX_EVENT_NONE);
    cr_expect_eq(hx_event_from_text("unknown"), HX_EVENT_NONE);

    cr_expect_str_eq(hx_actor_text(HX_ACTOR_REFERRER), "referrer");
    cr_expect_str_eq(hx_actor_text(HX_ACTOR_RECEIVER), "receiver");
    cr_expect_str_eq(hx_actor_text(HX_ACTOR_SERVICE), "service");
    cr_expect_str_eq(hx_actor_text(HX_ACTOR_NONE), "unknown");
    cr_expect_eq(hx_actor_from_text("receiver"), HX_ACTOR_RECEIVER);
    cr_expect_eq(hx_actor_from_text("referrer"), HX_ACTOR_REFERRER);
    cr_expect_eq(hx_actor_from_text("service"), HX_ACTOR_SERVICE);
    cr_expect_eq(hx_actor_from_text("clinic"), HX_ACTOR_NONE);
    cr_expect_eq(hx_actor_from_text(NULL), HX_ACTOR_NONE);
}

/* ---- paths --------------------------------------------------------------------------- */

static void step(Handoff__TaskStatus *s, hx_event_t ev, hx_actor_t actor, Handoff__TaskStatus want)
{
    char why[512];
    Handoff__TaskStatus to;
    int rc = hx_lifecycle_apply(*s, ev, actor, &to, why, sizeof why);
    cr_assert_eq(rc, 0, "%s + %s by %s refused: %s", hx_status_text(*s), hx_event_text(ev),
                 hx_actor_text(actor), why);
    cr_assert_eq(to, want, "%s + %s: got %s, want %s", hx_status_text(*s), hx_event_text(ev),
                 hx_status_text(to), hx_status_text(want));
    *s = to;
}

Test(lifecycle, path_to_completed)
{
    Handoff__TaskStatus s = ST(DRAFT);
    step(&s, HX_EVENT_SUBMIT, HX_ACTOR_REFERRER, ST(REQUESTED));
    step(&s, HX_EVENT_RECEIVE, HX_ACTOR_SERVICE, ST(RECEIVED));
    step(&s, HX_EVENT_BOOK, HX_ACTOR_SERVICE, ST(READY));
    step(&s, HX_EVENT_ACCEPT, HX_ACTOR_RECEIVER, ST(ACCEPTED));
    step(&s, HX_EVENT_START, HX_ACTOR_RECEIVER, ST(IN_PROGRESS));
    step(&s, HX_EVENT_COMPLETE, HX_ACTOR_RECEIVER, ST(COMPLETED));
    cr_expect(hx_lifecycle_final(s));
    cr_expect_eq(hx_lifecycle_allowed(s, HX_ACTOR_RECEIVER, NULL, 0), 0);
}

Test(lifecycle, decline_goes_back_to_scheduling)
{
    Handoff__TaskStatus s = ST(REQUESTED);
    step(&s, HX_EVENT_RECEIVE, HX_ACTOR_SERVICE, ST(RECEIVED));
    step(&s, HX_EVENT_BOOK, HX_ACTOR_SERVICE, ST(READY));
    step(&s, HX_EVENT_DECLINE, HX_ACTOR_RECEIVER, ST(RECEIVED));
    step(&s, HX_EVENT_HOLD, HX_ACTOR_SERVICE, ST(ON_HOLD));        /* no other slot yet */
    step(&s, HX_EVENT_BOOK, HX_ACTOR_SERVICE, ST(READY));          /* a slot opened */
    step(&s, HX_EVENT_ACCEPT, HX_ACTOR_RECEIVER, ST(ACCEPTED));
    step(&s, HX_EVENT_DECLINE, HX_ACTOR_RECEIVER, ST(RECEIVED));   /* declined after accepting */
    step(&s, HX_EVENT_BOOK, HX_ACTOR_SERVICE, ST(READY));
    step(&s, HX_EVENT_ACCEPT, HX_ACTOR_RECEIVER, ST(ACCEPTED));
}

Test(lifecycle, revoke_from_ready_is_cancelled)
{
    Handoff__TaskStatus s = ST(REQUESTED);
    step(&s, HX_EVENT_RECEIVE, HX_ACTOR_SERVICE, ST(RECEIVED));
    step(&s, HX_EVENT_BOOK, HX_ACTOR_SERVICE, ST(READY));
    step(&s, HX_EVENT_REVOKE, HX_ACTOR_REFERRER, ST(CANCELLED));
    cr_expect(hx_lifecycle_final(s));
    char why[512];
    cr_expect_eq(hx_lifecycle_apply(s, HX_EVENT_ACCEPT, HX_ACTOR_RECEIVER, NULL, why, sizeof why), -1);
    cr_expect(strstr(why, "cancelled is final"), "%s", why);
    step(&s, HX_EVENT_ERROR, HX_ACTOR_REFERRER, ST(ENTERED_IN_ERROR));
    for (size_t k = 0; k < N_EVENTS; k++)
        for (size_t a = 0; a < N_ACTORS; a++)
            cr_expect_eq(hx_lifecycle_apply(s, all_events[k], all_actors[a], NULL, NULL, 0), -1);
}

Test(lifecycle, red_flag_is_rejected)
{
    Handoff__TaskStatus s = ST(REQUESTED);
    step(&s, HX_EVENT_RECEIVE, HX_ACTOR_SERVICE, ST(RECEIVED));
    step(&s, HX_EVENT_REJECT, HX_ACTOR_SERVICE, ST(REJECTED));
    cr_expect(hx_lifecycle_final(s));
    s = ST(REQUESTED);
    step(&s, HX_EVENT_REJECT, HX_ACTOR_SERVICE, ST(REJECTED));    /* invalid at intake */
}

/* Random walks: the status stays a real one, and once final only entered-in-error follows. */
Test(lifecycle, random_walks)
{
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (int walk = 0; walk < 2000; walk++) {
        Handoff__TaskStatus s = walk % 2 ? ST(DRAFT) : ST(REQUESTED);
        bool was_final = false;
        for (int n = 0; n < 40; n++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            hx_event_t ev = all_events[x % N_EVENTS];
            hx_actor_t actor = all_actors[(x >> 16) % N_ACTORS];
            Handoff__TaskStatus to;
            if (hx_lifecycle_apply(s, ev, actor, &to, NULL, 0) != 0)
                continue;
            cr_assert(hx_status_text(to)[0] && strcmp(hx_status_text(to), "unknown") != 0);
            if (was_final)
                cr_assert_eq(to, ST(ENTERED_IN_ERROR), "left final %s by %s",
                             hx_status_text(s), hx_event_text(ev));
            s = to;
            was_final = hx_lifecycle_final(s);
        }
    }
}

/* ---- the referral's status from its handoffs (hx_referral_status) ------------------------ */

/* The table of docs/PROTOCOL.md ("Handoffs"), written here again from the document as a
 * different procedure: the statuses are looked at as sets, from the top row down. */
static Handoff__TaskStatus expected_referral(const Handoff__TaskStatus *h, size_t n)
{
    static const Handoff__TaskStatus open_best_first[] = {ST(ACCEPTED), ST(READY),     ST(RECEIVED),
                                                          ST(ON_HOLD),  ST(REQUESTED), ST(DRAFT)};
    bool has[N_STATUS] = {false};
    bool all_final = true, all_same = true;
    for (size_t i = 0; i < n; i++) {
        has[h[i]] = true;
        all_final &= h[i] == ST(COMPLETED) || h[i] == ST(CANCELLED) || h[i] == ST(FAILED) ||
                     h[i] == ST(REJECTED) || h[i] == ST(ENTERED_IN_ERROR);
        all_same &= h[i] == h[0];
    }
    if (has[ST(IN_PROGRESS)])
        return ST(IN_PROGRESS);
    if (all_final)
        return has[ST(COMPLETED)] ? ST(COMPLETED) : has[ST(FAILED)] ? ST(FAILED)
                                                  : all_same ? h[0] : ST(CANCELLED);
    if (has[ST(COMPLETED)])
        return ST(IN_PROGRESS);
    for (size_t k = 0; k < sizeof open_best_first / sizeof *open_best_first; k++)
        if (has[open_best_first[k]])
            return open_best_first[k];
    return ST(UNSPECIFIED);
}

Test(referral_status, every_single_handoff)
{
    for (int a = 1; a < N_STATUS; a++) {
        Handoff__TaskStatus h[] = {(Handoff__TaskStatus)a};
        Handoff__TaskStatus got = hx_referral_status(ST(RECEIVED), h, 1);
        /* one handoff: the referral is where its handoff is */
        cr_expect_eq(got, h[0], "[%s] -> %s, expected %s", hx_status_text(h[0]), hx_status_text(got),
                     hx_status_text(h[0]));
        cr_expect_eq(got, expected_referral(h, 1), "[%s]", hx_status_text(h[0]));
    }
}

Test(referral_status, every_pair_of_handoffs_in_either_order)
{
    size_t checked = 0;
    for (int a = 1; a < N_STATUS; a++)
        for (int b = 1; b < N_STATUS; b++) {
            Handoff__TaskStatus h[] = {(Handoff__TaskStatus)a, (Handoff__TaskStatus)b};
            Handoff__TaskStatus r[] = {h[1], h[0]};
            Handoff__TaskStatus want = expected_referral(h, 2);
            Handoff__TaskStatus got = hx_referral_status(ST(REQUESTED), h, 2);
            cr_expect_eq(got, want, "[%s, %s] -> %s, expected %s", hx_status_text(h[0]), hx_status_text(h[1]),
                         hx_status_text(got), hx_status_text(want));
            cr_expect_eq(hx_referral_status(ST(REQUESTED), r, 2), got, "the order of the handoffs does not matter");
            /* own says nothing once there are handoffs */
            cr_expect_eq(hx_referral_status(ST(CANCELLED), h, 2), got);
            checked++;
        }
    cr_expect_eq(checked, 144);
}

Test(referral_status, the_collaborative_story)
{
    struct { Handoff__TaskStatus pt, rmt, want; const char *what; } story[] = {
        {ST(READY), ST(READY), ST(READY), "both booked"},
        {ST(ACCEPTED), ST(READY), ST(ACCEPTED), "physiotherapy accepted"},
        {ST(IN_PROGRESS), ST(READY), ST(IN_PROGRESS), "physiotherapy started"},
        {ST(IN_PROGRESS), ST(RECEIVED), ST(IN_PROGRESS), "massage declined: being booked again"},
        {ST(IN_PROGRESS), ST(ON_HOLD), ST(IN_PROGRESS), "massage declined: no slot yet"},
        {ST(ACCEPTED), ST(ON_HOLD), ST(ACCEPTED), "a booking still to come never pulls back another"},
        {ST(READY), ST(ON_HOLD), ST(READY), "one booked, one waiting"},
        {ST(ON_HOLD), ST(ON_HOLD), ST(ON_HOLD), "nothing booked"},
        {ST(RECEIVED), ST(ON_HOLD), ST(RECEIVED), "one being booked"},
        {ST(IN_PROGRESS), ST(ACCEPTED), ST(IN_PROGRESS), "massage re-booked and accepted"},
        {ST(COMPLETED), ST(IN_PROGRESS), ST(IN_PROGRESS), "physiotherapy done, massage under way"},
        {ST(COMPLETED), ST(READY), ST(IN_PROGRESS), "physiotherapy done, massage still to start"},
        {ST(COMPLETED), ST(COMPLETED), ST(COMPLETED), "both done"},
        {ST(COMPLETED), ST(CANCELLED), ST(COMPLETED), "revoked after one was done"},
        {ST(CANCELLED), ST(CANCELLED), ST(CANCELLED), "revoked"},
        {ST(FAILED), ST(CANCELLED), ST(FAILED), "one failed, the other cancelled"},
        {ST(FAILED), ST(READY), ST(READY), "a failed handoff does not end an open one"},
        {ST(COMPLETED), ST(FAILED), ST(COMPLETED), "one done, one failed"},
        {ST(ENTERED_IN_ERROR), ST(ENTERED_IN_ERROR), ST(ENTERED_IN_ERROR), "a mistake"},
        {ST(ENTERED_IN_ERROR), ST(CANCELLED), ST(CANCELLED), "a mistake and a revoke"},
        {ST(REJECTED), ST(ENTERED_IN_ERROR), ST(CANCELLED), "ended differently, none done"},
    };
    for (size_t i = 0; i < sizeof story / sizeof *story; i++) {
        Handoff__TaskStatus h[] = {story[i].pt, story[i].rmt};
        Handoff__TaskStatus got = hx_referral_status(ST(RECEIVED), h, 2);
        cr_expect_eq(got, story[i].want, "%s: [%s, %s] -> %s, expected %s", story[i].what, hx_status_text(h[0]),
                     hx_status_text(h[1]), hx_status_text(got), hx_status_text(story[i].want));
    }
}

Test(referral_status, no_handoff_is_the_referral_s_own_status)
{
    for (int a = 1; a < N_STATUS; a++)
        cr_expect_eq(hx_referral_status((Handoff__TaskStatus)a, NULL, 0), (Handoff__TaskStatus)a);
    cr_expect_eq(hx_referral_status(ST(UNSPECIFIED), NULL, 0), ST(UNSPECIFIED));
    cr_expect_eq(hx_referral_status((Handoff__TaskStatus)99, NULL, 0), ST(UNSPECIFIED));
}

Test(referral_status, bad_input_is_unspecified_not_asserted)
{
    Handoff__TaskStatus bad[] = {ST(READY), (Handoff__TaskStatus)13};
    Handoff__TaskStatus zero[] = {ST(UNSPECIFIED), ST(IN_PROGRESS)};
    Handoff__TaskStatus neg[] = {(Handoff__TaskStatus)-1};
    cr_expect_eq(hx_referral_status(ST(RECEIVED), bad, 2), ST(UNSPECIFIED));
    cr_expect_eq(hx_referral_status(ST(RECEIVED), zero, 2), ST(UNSPECIFIED), "even with an in-progress one");
    cr_expect_eq(hx_referral_status(ST(RECEIVED), neg, 1), ST(UNSPECIFIED));
    cr_expect_eq(hx_referral_status(ST(RECEIVED), NULL, 2), ST(UNSPECIFIED));
}

Test(referral_status, three_handoffs_follow_the_same_table)
{
    for (int a = 1; a < N_STATUS; a++)
        for (int b = 1; b < N_STATUS; b++)
            for (int c = 1; c < N_STATUS; c++) {
                Handoff__TaskStatus h[] = {(Handoff__TaskStatus)a, (Handoff__TaskStatus)b, (Handoff__TaskStatus)c};
                cr_expect_eq(hx_referral_status(ST(RECEIVED), h, 3), expected_referral(h, 3));
            }
}
