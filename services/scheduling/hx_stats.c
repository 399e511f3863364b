/* hx_stats — the network at a glance: scheduling's answer to a StatsRequest (docs/PROTOCOL.md,
 * "Network statistics").
 *
 * Everything comes from scheduling's own database, in the request's read transaction:
 *   referrals per ISO week and discipline   referrals.received_ms, the plan in case_pb
 *   booked, time to booking, per clinic      bookings.booked_ms - referrals.received_ms
 *   first session, time to it                bookings.started_ms (the first start event)
 *   declines, per clinic                     handoff_log "decline" (the booking row is gone)
 *   on hold, per referring clinic            handoff_log "hold"; on the wait list now: waitlist
 *   the review backlog                       reviews in state pending
 *   the next free slot, per clinic           the slot finder (hx_slot_find) on the calendar
 * Only counts, minutes and slots leave: never a referral id, a name, a reason, a therapist.
 * The window is the referrals received from Monday 00:00 UTC of its first ISO week to now. */
#include "hx_booking_internal.h"
#include "hx_log.h"
#include "hx_refjson.h"
#include "hx_stats.h"
#include "hx_svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY_MS (24ull * 60 * 60 * 1000)
#define WEEK_MS (7 * DAY_MS)
#define PHYSIO HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY
#define MASSAGE HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY

/* ---- the pure parts (hx_stats.h) ------------------------------------------------------------ */

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void hx_stats_quantiles(uint32_t *v, size_t n, uint32_t *median, uint32_t *p90)
{
    *median = *p90 = 0;
    if (n == 0)
        return;
    qsort(v, n, sizeof *v, u32_cmp);
    *median = v[(n + 1) / 2 - 1];            /* rank ceil(n / 2) */
    *p90 = v[(9 * n + 9) / 10 - 1];          /* rank ceil(9n / 10) */
}

void hx_stats_iso_week(uint64_t ms, char out[12], uint64_t *week_start_ms)
{
    int64_t day = (int64_t)(ms / DAY_MS);
    int64_t monday = day - (day + 3) % 7;    /* 1970-01-01 was a Thursday */
    time_t thursday = (time_t)((monday + 3) * 86400);
    struct tm tm;
    gmtime_r(&thursday, &tm);
    char text[32];
    snprintf(text, sizeof text, "%04d-W%02d", tm.tm_year + 1900, tm.tm_yday / 7 + 1);
    snprintf(out, 12, "%.11s", text);
    *week_start_ms = (uint64_t)monday * DAY_MS;
}

/* ---- accumulating per clinic and discipline --------------------------------------------------- */

typedef struct {
    char clinic[HX_NAME_MAX + 1];
    Handoff__Discipline d;
    uint32_t *to_book, *to_start;             /* minutes */
    size_t n_book, cap_book, n_start, cap_start;
    uint32_t declined, referred, on_hold;
} acc_t;

typedef struct {
    acc_t *a;
    size_t n, cap;
    size_t last;                              /* the last one found: rows come grouped */
} accs_t;

static void accs_free(accs_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->a[i].to_book);
        free(s->a[i].to_start);
    }
    free(s->a);
    memset(s, 0, sizeof *s);
}

/* The accumulator of (clinic, d), added when new; NULL when out of memory. */
static acc_t *acc_of(accs_t *s, const char *clinic, Handoff__Discipline d)
{
    if (s->last < s->n && s->a[s->last].d == d && !strcmp(s->a[s->last].clinic, clinic))
        return &s->a[s->last];
    for (size_t i = 0; i < s->n; i++)
        if (s->a[i].d == d && !strcmp(s->a[i].clinic, clinic))
            return &s->a[s->last = i];
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        acc_t *grown = realloc(s->a, cap * sizeof *grown);
        if (!grown)
            return NULL;
        s->a = grown;
        s->cap = cap;
    }
    acc_t *a = &s->a[s->last = s->n++];
    memset(a, 0, sizeof *a);
    snprintf(a->clinic, sizeof a->clinic, "%s", clinic);
    a->d = d;
    return a;
}

static int push(uint32_t **v, size_t *n, size_t *cap, uint32_t x)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        uint32_t *grown = realloc(*v, c * sizeof *grown);
        if (!grown)
            return -1;
        *v = grown;
        *cap = c;
    }
    (*v)[(*n)++] = x;
    return 0;
}

/* Whole minutes from `from` to `to` (ms), 0 when to is earlier. */
static uint32_t minutes_between(int64_t from, int64_t to)
{
    if (to <= from)
        return 0;
    uint64_t m = (uint64_t)(to - from) / 60000;
    return m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
}

static int acc_cmp(const void *x, const void *y)
{
    const acc_t *a = x, *b = y;
    int c = strcmp(a->clinic, b->clinic);
    return c ? c : (int)a->d - (int)b->d;
}

/* ---- what the request is computed from ------------------------------------------------------ */

typedef struct {
    uint32_t weeks;
    uint64_t from_ms, to_ms;
    uint32_t (*week)[3];                      /* [week][discipline 0, physio, massage] */
    accs_t accs;
    size_t undecodable;
    uint32_t received;                        /* referrals, each once */
} window_t;

static int step_rows(hx_booking_t *b, hx_db_stmt_t *st, int rc)
{
    bk_done(b, st);
    return rc;
}

/* Referrals received in the window: per week and discipline of their plan, and per referring
 * clinic and discipline (referred). */
static int count_referrals(hx_booking_t *b, window_t *w)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT referring_clinic, received_ms, case_pb FROM referrals "
                                  "WHERE received_ms >= ? AND received_ms <= ? ORDER BY referring_clinic");
    if (!st)
        return -1;
    hx_db_bind_int(st, 1, (int64_t)w->from_ms);
    hx_db_bind_int(st, 2, (int64_t)w->to_ms);
    int step, rc = 0;
    while (rc == 0 && (step = hx_db_step(st)) == HX_DB_ROW) {
        const char *clinic = hx_db_col_text(st, 0);
        uint64_t at = (uint64_t)hx_db_col_int(st, 1);
        size_t wk = (size_t)((at - w->from_ms) / WEEK_MS);
        uint8_t *v = NULL;
        size_t len = 0;
        Handoff__Case *c = bk_column_open(b, st, 2, &v, &len) == 0 ? handoff__case__unpack(NULL, len, v) : NULL;
        free(v);
        w->received++;
        if (!c) {
            w->undecodable++;       /* logged by bk_column_open or here below; the rest still count */
            continue;
        }
        bool has[3] = {false, false, false};
        const Handoff__TriageDecision *d = c->decision;
        for (size_t i = 0; d && i < d->n_disciplines; i++)
            if (d->disciplines[i] == PHYSIO || d->disciplines[i] == MASSAGE)
                has[d->disciplines[i]] = true;
        handoff__case__free_unpacked(c, NULL);
        if (wk < w->weeks)
            for (int k = 0; k < 3; k++)
                w->week[wk][k] += k ? has[k] : !has[PHYSIO] && !has[MASSAGE];
        for (int k = PHYSIO; k <= MASSAGE && rc == 0; k++) {
            acc_t *a = has[k] ? acc_of(&w->accs, clinic, (Handoff__Discipline)k) : NULL;
            if (has[k] && !a)
                rc = -1;
            else if (a)
                a->referred++;
        }
    }
    return step_rows(b, st, rc == 0 && step == HX_DB_DONE ? 0 : -1);
}

/* Each booking of a referral received in the window: the minutes to it and to its first session. */
static int count_bookings(hx_booking_t *b, window_t *w)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT k.clinic_id, k.discipline, r.received_ms, k.booked_ms, k.started_ms "
                                  "FROM bookings k JOIN referrals r USING (referral_id) "
                                  "WHERE r.received_ms >= ? AND r.received_ms <= ? AND k.booked_ms IS NOT NULL "
                                  "ORDER BY k.clinic_id, k.discipline");
    if (!st)
        return -1;
    hx_db_bind_int(st, 1, (int64_t)w->from_ms);
    hx_db_bind_int(st, 2, (int64_t)w->to_ms);
    int step, rc = 0;
    while (rc == 0 && (step = hx_db_step(st)) == HX_DB_ROW) {
        Handoff__Discipline d = (Handoff__Discipline)hx_db_col_int(st, 1);
        if (d != PHYSIO && d != MASSAGE)
            continue;
        acc_t *a = acc_of(&w->accs, hx_db_col_text(st, 0), d);
        int64_t received = hx_db_col_int(st, 2);
        rc = a ? push(&a->to_book, &a->n_book, &a->cap_book, minutes_between(received, hx_db_col_int(st, 3)))
               : -1;
        if (rc == 0 && !hx_db_col_null(st, 4))
            rc = push(&a->to_start, &a->n_start, &a->cap_start, minutes_between(received, hx_db_col_int(st, 4)));
    }
    return step_rows(b, st, rc == 0 && step == HX_DB_DONE ? 0 : -1);
}

/* Declines per declining clinic (kind "decline"), and handoffs that went on hold per referring
 * clinic (kind "hold", each referral and discipline once), of referrals received in the window. */
static int count_log(hx_booking_t *b, window_t *w, bool holds)
{
    hx_db_stmt_t *st = bk_prep(b, holds ? "SELECT r.referring_clinic, l.discipline, COUNT(DISTINCT l.referral_id) "
                                          "FROM handoff_log l JOIN referrals r USING (referral_id) "
                                          "WHERE l.event = 'hold' AND r.received_ms >= ? AND r.received_ms <= ? "
                                          "GROUP BY 1, 2"
                                        : "SELECT l.clinic_id, l.discipline, COUNT(*) "
                                          "FROM handoff_log l JOIN referrals r USING (referral_id) "
                                          "WHERE l.event = 'decline' AND r.received_ms >= ? AND r.received_ms <= ? "
                                          "GROUP BY 1, 2");
    if (!st)
        return -1;
    hx_db_bind_int(st, 1, (int64_t)w->from_ms);
    hx_db_bind_int(st, 2, (int64_t)w->to_ms);
    int step, rc = 0;
    while (rc == 0 && (step = hx_db_step(st)) == HX_DB_ROW) {
        Handoff__Discipline d = (Handoff__Discipline)hx_db_col_int(st, 1);
        if (d != PHYSIO && d != MASSAGE)
            continue;
        acc_t *a = acc_of(&w->accs, hx_db_col_text(st, 0), d);
        if (!a)
            rc = -1;
        else if (holds)
            a->on_hold += (uint32_t)hx_db_col_int(st, 2);
        else
            a->declined += (uint32_t)hx_db_col_int(st, 2);
    }
    return step_rows(b, st, rc == 0 && step == HX_DB_DONE ? 0 : -1);
}

/* One row of one or two integers (a COUNT, a MIN). */
static int query_pair(hx_booking_t *b, const char *sql, int bind, int64_t *x, int64_t *y)
{
    hx_db_stmt_t *st = bk_prep(b, sql);
    if (!st)
        return -1;
    if (bind)
        hx_db_bind_int(st, 1, bind);
    int rc = hx_db_step(st) == HX_DB_ROW ? 0 : -1;
    if (rc == 0) {
        *x = hx_db_col_int(st, 0);
        if (y)
            *y = hx_db_col_int(st, 1);
    }
    bk_done(b, st);
    return rc;
}

/* ---- the next free slot per clinic and discipline --------------------------------------------- */

typedef struct {
    Handoff__NextSlot pb;
    char start_utc[18], start[17], offset[7];
} slot_out_t;

static size_t therapists_of(const hx_directory_t *dir, const char *clinic, Handoff__Discipline d)
{
    const hx_therapist_t *t;
    size_t n = hx_directory_therapists(dir, &t), k = 0;
    for (size_t i = 0; i < n; i++)
        k += t[i].discipline == d && !strcmp(t[i].clinic_id, clinic);
    return k;
}

/* The slots, one per clinic and discipline it has a therapist of (at most 2 per clinic), from
 * where booking would start (now, or --start) to the horizon. *n: how many were written. */
static int next_slots(hx_booking_t *b, uint64_t now_ms, slot_out_t *out, size_t *n)
{
    *n = 0;
    const hx_directory_t *dir = bk_directory(b);
    const hx_booking_config_t *cfg = bk_config(b);
    hx_calendar_t *cal = bk_calendar(b);
    if (!cal)
        return -1;
    hx_minute_t not_before = cfg->start >= 0 ? cfg->start : (hx_minute_t)(now_ms / 60000);
    not_before = (not_before + 14) / 15 * 15;
    const hx_clinic_t *cl;
    size_t nc = hx_directory_clinics(dir, &cl);
    for (size_t i = 0; i < nc; i++)
        for (int d = PHYSIO; d <= MASSAGE; d++) {
            size_t therapists = therapists_of(dir, cl[i].id, (Handoff__Discipline)d);
            if (!therapists)
                continue;
            slot_out_t *s = &out[(*n)++];
            handoff__next_slot__init(&s->pb);
            s->pb.clinic_id = (char *)cl[i].id;
            s->pb.clinic_name = (char *)cl[i].name;
            s->pb.discipline = (Handoff__Discipline)d;
            s->pb.minutes = HX_STATS_SLOT_MINUTES;
            s->pb.time_zone = (char *)hx_tz_name(cl[i].tz);
            s->pb.therapists = (uint32_t)therapists;
            hx_slot_query_t q;
            memset(&q, 0, sizeof q);
            q.discipline = (Handoff__Discipline)d;
            q.minutes = HX_STATS_SLOT_MINUTES;
            q.not_before = not_before;
            q.horizon = not_before + (hx_minute_t)cfg->horizon_days * 24 * 60;
            q.only_clinic = cl[i].id;
            hx_slot_t slot;
            if (hx_slot_find(dir, cal, &q, &slot) != 0)
                continue;
            s->pb.found = true;
            hx_minute_format(slot.start, s->start_utc);
            strcat(s->start_utc, "Z");
            hx_minute_format(hx_tz_to_local(cl[i].tz, slot.start), s->start);
            hx_tz_offset_text(hx_tz_offset(cl[i].tz, slot.start), s->offset);
            s->pb.start_utc = s->start_utc;
            s->pb.start = s->start;
            s->pb.utc_offset = s->offset;
            s->pb.wait_min = minutes_between((int64_t)now_ms, (int64_t)slot.start * 60000);
        }
    return 0;
}

/* ---- the answer ------------------------------------------------------------------------------- */

static int refuse(const hx_msg_t *in, hx_outbox_t *out, const char *why)
{
    hx_info("stats request from %s refused: %s", in->from, why);
    return hx_svc_status(out, in->from, "", "", HANDOFF__TASK_STATUS__TASK_UNSPECIFIED, why, "scheduling", NULL, 0,
                         NULL, "stats", true) == 0 ? 0 : -1;
}

/* Everything of w into s, and the answer into out. */
static int answer(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, window_t *w, Handoff__NetworkStats *s)
{
    const hx_directory_t *dir = bk_directory(b);
    size_t n_weeks = 0, nc;
    const hx_clinic_t *cl;
    nc = hx_directory_clinics(dir, &cl);
    Handoff__WeekCount *wc = calloc((size_t)w->weeks * 3, sizeof *wc);
    Handoff__WeekCount **wcp = calloc((size_t)w->weeks * 3, sizeof *wcp);
    char (*labels)[12] = calloc(w->weeks, sizeof *labels);
    Handoff__ClinicStats *cs = calloc(w->accs.n ? w->accs.n : 1, sizeof *cs);
    Handoff__ClinicStats **csp = calloc(w->accs.n ? w->accs.n : 1, sizeof *csp);
    slot_out_t *slots = calloc(nc ? 2 * nc : 1, sizeof *slots);
    Handoff__NextSlot **slotp = calloc(nc ? 2 * nc : 1, sizeof *slotp);
    size_t n_slots = 0;
    int rc = wc && wcp && labels && cs && csp && slots && slotp ? 0 : -1;
    for (uint32_t k = 0; rc == 0 && k < w->weeks; k++) {
        uint64_t start;
        hx_stats_iso_week(w->from_ms + k * WEEK_MS, labels[k], &start);
        for (int d = 0; d < 3; d++) {
            if (d == 0 && w->week[k][0] == 0)
                continue;               /* "not placed" only when there were some */
            Handoff__WeekCount *e = &wc[n_weeks];
            handoff__week_count__init(e);
            e->week = labels[k];
            e->week_start_ms = start;
            e->discipline = (Handoff__Discipline)d;     /* 0: not placed */
            e->count = w->week[k][d];
            wcp[n_weeks++] = e;
        }
    }
    if (rc == 0 && w->accs.n)
        qsort(w->accs.a, w->accs.n, sizeof *w->accs.a, acc_cmp);
    for (size_t i = 0; rc == 0 && i < w->accs.n; i++) {
        acc_t *a = &w->accs.a[i];
        Handoff__ClinicStats *c = &cs[i];
        handoff__clinic_stats__init(c);
        const hx_clinic_t *known = hx_directory_clinic(dir, a->clinic);
        c->clinic_id = a->clinic;
        c->clinic_name = known ? (char *)known->name : "";
        c->discipline = a->d;
        c->booked = (uint32_t)a->n_book;
        hx_stats_quantiles(a->to_book, a->n_book, &c->to_booking_median_min, &c->to_booking_p90_min);
        c->started = (uint32_t)a->n_start;
        hx_stats_quantiles(a->to_start, a->n_start, &c->to_start_median_min, &c->to_start_p90_min);
        c->declined = a->declined;
        c->referred = a->referred;
        c->on_hold = a->on_hold;
        csp[i] = c;
    }
    if (rc == 0)
        rc = next_slots(b, w->to_ms, slots, &n_slots);
    for (size_t i = 0; rc == 0 && i < n_slots; i++)
        slotp[i] = &slots[i].pb;
    if (rc == 0) {
        s->referrals = wcp;
        s->n_referrals = n_weeks;
        s->clinics = csp;
        s->n_clinics = w->accs.n;
        s->next_slots = slotp;
        s->n_next_slots = n_slots;
        s->horizon_days = bk_config(b)->horizon_days;
        rc = hx_svc_emit(out, HX_TO_MAILBOX, in->from, "handoff.NetworkStats", &s->base) == 0 ? 0 : -1;
    }
    free(wc);
    free(wcp);
    free(labels);
    free(cs);
    free(csp);
    free(slots);
    free(slotp);
    return rc;
}

int hx_stats_on_request(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out)
{
    Handoff__StatsRequest *rq = handoff__stats_request__unpack(NULL, in->payload_len, in->payload);
    if (!rq)
        return refuse(in, out, "payload: not a decodable handoff.StatsRequest");
    uint32_t weeks = rq->weeks ? rq->weeks : HX_STATS_WEEKS_DEFAULT;
    handoff__stats_request__free_unpacked(rq, NULL);
    if (weeks > HX_STATS_WEEKS_MAX) {
        char why[96];
        snprintf(why, sizeof why, "weeks: %u, must be 1 to %d (0: %d)", weeks, HX_STATS_WEEKS_MAX,
                 HX_STATS_WEEKS_DEFAULT);
        return refuse(in, out, why);
    }
    window_t w = {.weeks = weeks, .to_ms = bk_now_ms(b)};
    char label[12];
    uint64_t this_monday;
    hx_stats_iso_week(w.to_ms, label, &this_monday);
    w.from_ms = this_monday >= (weeks - 1) * WEEK_MS ? this_monday - (weeks - 1) * WEEK_MS : 0;
    w.week = calloc(weeks, sizeof *w.week);
    int64_t pending = 0, oldest = 0, held = 0;
    int rc = w.week ? 0 : -1;
    if (rc == 0)
        rc = count_referrals(b, &w);
    if (rc == 0)
        rc = count_bookings(b, &w);
    if (rc == 0)
        rc = count_log(b, &w, false);
    if (rc == 0)
        rc = count_log(b, &w, true);
    if (rc == 0)
        rc = query_pair(b, "SELECT COUNT(*), COALESCE(MIN(requested_ms), 0) FROM reviews WHERE state = 'pending'", 0,
                        &pending, &oldest);
    if (rc == 0)
        rc = query_pair(b, "SELECT COUNT(*) FROM waitlist w JOIN referrals r USING (referral_id) WHERE r.pending = ?",
                        HANDOFF__TASK_STATUS__TASK_ON_HOLD, &held, NULL);
    if (rc == 0) {
        Handoff__NetworkStats s = HANDOFF__NETWORK_STATS__INIT;
        s.weeks = weeks;
        s.from_ms = w.from_ms;
        s.at_ms = w.to_ms;
        s.review_pending = (uint32_t)pending;
        s.review_oldest_ms = (uint64_t)oldest;
        s.on_hold_now = (uint32_t)held;
        s.received = w.received;
        rc = answer(b, in, out, &w, &s);
    }
    if (w.undecodable)
        hx_warn("stats: %zu referral(s) could not be read and are not counted", w.undecodable);
    if (rc == 0)
        hx_info("stats for %s: %u week(s), %zu clinic row(s)", in->from, weeks, w.accs.n);
    accs_free(&w.accs);
    free(w.week);
    return rc;
}
