/* handoff-scheduling — finds the therapist and the earliest slot for each discipline of a
 * triaged case, books it, hands the referral to each receiving clinic's mailbox and tells
 * the referring clinic. */
#include "hx_errors.h"
#include "hx_intake.h"
#include "hx_log.h"
#include "hx_opt.h"
#include "hx_refjson.h"
#include "hx_schedule.h"
#include "hx_svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uthash.h>

static const char usage[] =
    "usage: handoff-scheduling --directory FILE [options]\n"
    "\n"
    "Serves the 'scheduling' service: for each discipline the triage decided, books the\n"
    "earliest free slot of the right length (physiotherapy assessment 60 min; massage as\n"
    "asked) with a therapist who works then, speaks the patient's language and fits the\n"
    "patient's availability (preferred clinics win ties); collaborative care books the\n"
    "physiotherapy assessment first and massage after it. Sends a Handoff to each receiving\n"
    "clinic and the bookings to the referring clinic; with no slot, the referral is on-hold.\n"
    "\n"
    "  --directory FILE      clinics and therapists [HANDOFF_DIRECTORY]\n"
    "  --start YYYY-MM-DDTHH:MM\n"
    "                        book nothing earlier [HANDOFF_SCHEDULE_START, default: now]\n"
    "  --horizon-days N      look this far ahead, 1..365 [HANDOFF_HORIZON_DAYS, 60]\n"
    "  --collab-days N       massage within N days after the physiotherapy assessment\n"
    "                        [HANDOFF_COLLAB_DAYS, 14]\n"
    "\n"
    "Bookings are kept in memory by this process.\n"
    "\n"
    "example:\n"
    "  handoff-scheduling --directory deploy/sample/directory.json\n";

typedef struct {
    char referral_id[HX_REFERRAL_ID_LEN + 8];
    size_t n;
    Handoff__Discipline discipline[2];
    const hx_therapist_t *therapist[2];
    hx_minute_t start[2];
    uint32_t minutes[2];
    UT_hash_handle hh;
} booked_t;

typedef struct {
    const char *directory_path;
    const char *start_text;
    const char *horizon_text, *collab_text;
    hx_directory_t *dir;
    hx_calendar_t *cal;
    hx_minute_t start;          /* -1: now */
    uint32_t horizon_days, collab_days;
    booked_t *booked;           /* referral id -> its bookings, so a redelivery books nothing twice */
} sched_t;

static hx_minute_t now_minutes(void)
{
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    return ((hx_minute_t)t + tm.tm_gmtoff) / 60;
}

static int find_slots(sched_t *s, const Handoff__Referral *r, const Handoff__TriageDecision *d, booked_t *b,
                      char *why, size_t cap)
{
    hx_minute_t not_before = s->start >= 0 ? s->start : now_minutes();
    not_before = (not_before + 14) / 15 * 15;
    const Handoff__Preferences *p = r->preferences;
    b->n = 0;
    for (size_t i = 0; i < d->n_disciplines && b->n < 2; i++) {
        Handoff__Discipline disc = d->disciplines[i];
        hx_slot_query_t q = {0};
        q.discipline = disc;
        q.minutes = hx_session_minutes(disc, p ? p->massage_minutes : 0);
        q.not_before = not_before;
        q.horizon = not_before + (hx_minute_t)s->horizon_days * 24 * 60;
        if (b->n > 0) {                         /* collaborative: after the assessment, within collab_days */
            q.not_before = b->start[0] + b->minutes[0];
            q.horizon = b->start[0] + (hx_minute_t)s->collab_days * 24 * 60;
        }
        if (p) {
            q.clinic_ids = (const char *const *)p->clinic_ids;
            q.n_clinic_ids = p->n_clinic_ids;
            q.language = p->language;
            q.availability = (const Handoff__Availability *const *)p->availability;
            q.n_availability = p->n_availability;
        }
        hx_slot_t slot;
        if (hx_slot_find(s->dir, s->cal, &q, &slot) != 0) {
            snprintf(why, cap, "no %s slot of %u min within %u days that fits the patient's availability%s%s",
                     hx_discipline_text(disc), q.minutes, b->n ? s->collab_days : s->horizon_days,
                     q.language && q.language[0] ? " and language " : "", q.language ? q.language : "");
            return -1;
        }
        b->discipline[b->n] = disc;
        b->therapist[b->n] = slot.therapist;
        b->start[b->n] = slot.start;
        b->minutes[b->n] = slot.minutes;
        b->n++;
    }
    return 0;
}

static int handle(void *arg, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    sched_t *s = arg;
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(in->id, hex);
    if (in->from_kind != HX_TO_SERVICE || strcmp(in->type, "handoff.Case") != 0) {
        hx_warn("message %s from %s ignored: scheduling takes handoff.Case from services", hex, in->from);
        return 0;
    }
    Handoff__Case *c = handoff__case__unpack(NULL, in->payload_len, in->payload);
    if (!c || !c->referral || !c->decision || c->decision->n_disciplines == 0 || !c->referral->referral_id[0] ||
        !c->referral->referring_clinic[0] || strlen(c->referral->referral_id) > HX_REFERRAL_ID_LEN) {
        hx_warn("message %s from %s ignored: not a triaged Case", hex, in->from);
        if (c)
            handoff__case__free_unpacked(c, NULL);
        return 0;
    }
    Handoff__Referral *r = c->referral;
    int rc = 0;
    booked_t *b = NULL;
    HASH_FIND_STR(s->booked, r->referral_id, b);
    if (!b) {
        booked_t tmp = {0};
        char why[256];
        if (find_slots(s, r, c->decision, &tmp, why, sizeof why) != 0) {
            hx_info("referral %s on hold: %s", r->referral_id, why);
            rc = hx_svc_status(out, r->referring_clinic, r->referral_id, r->ref, HANDOFF__TASK_STATUS__TASK_ON_HOLD,
                               why, "scheduling", NULL, 0, c->decision);
            handoff__case__free_unpacked(c, NULL);
            return rc ? -1 : 0;
        }
        for (size_t i = 0; i < tmp.n; i++)
            if (hx_calendar_book(s->cal, tmp.therapist[i]->id, tmp.start[i], tmp.minutes[i]) != 0) {
                snprintf(err, errcap, "slot taken while booking");   /* cannot happen in one process */
                handoff__case__free_unpacked(c, NULL);
                return -1;
            }
        b = malloc(sizeof *b);
        if (!b) {
            handoff__case__free_unpacked(c, NULL);
            snprintf(err, errcap, "out of memory");
            return -1;
        }
        *b = tmp;
        snprintf(b->referral_id, sizeof b->referral_id, "%s", r->referral_id);
        HASH_ADD_STR(s->booked, referral_id, b);
    }

    Handoff__Booking bk[2], *bp[2];
    char starts[2][17];
    for (size_t i = 0; i < b->n; i++) {
        handoff__booking__init(&bk[i]);
        hx_minute_format(b->start[i], starts[i]);
        bk[i].referral_id = r->referral_id;
        bk[i].discipline = b->discipline[i];
        bk[i].therapist_id = (char *)b->therapist[i]->id;
        bk[i].therapist_name = (char *)b->therapist[i]->name;
        bk[i].clinic_id = (char *)b->therapist[i]->clinic_id;
        bk[i].start = starts[i];
        bk[i].minutes = b->minutes[i];
        bp[i] = &bk[i];
    }
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        Handoff__Handoff h = HANDOFF__HANDOFF__INIT;
        h.referral_id = r->referral_id;
        h.referral = r;
        h.decision = c->decision;
        h.booking = &bk[i];
        rc = hx_svc_emit(out, HX_TO_MAILBOX, bk[i].clinic_id, "handoff.Handoff", &h.base);
    }
    char why[256];
    size_t n = (size_t)snprintf(why, sizeof why, "booked:");
    for (size_t i = 0; i < b->n && n < sizeof why; i++)
        n += (size_t)snprintf(why + n, sizeof why - n, "%s %s with %s at %s %s", i ? ";" : "",
                              hx_discipline_text(bk[i].discipline), bk[i].therapist_name, bk[i].clinic_id,
                              bk[i].start);
    if (rc == 0)
        rc = hx_svc_status(out, r->referring_clinic, r->referral_id, r->ref, HANDOFF__TASK_STATUS__TASK_READY, why,
                           "scheduling", bp, b->n, c->decision);
    char ids[160];                              /* logs carry ids, not names */
    size_t k = 0;
    ids[0] = '\0';
    for (size_t i = 0; i < b->n && k < sizeof ids; i++)
        k += (size_t)snprintf(ids + k, sizeof ids - k, "%s%s@%s %s", i ? ", " : "", bk[i].therapist_id,
                              bk[i].clinic_id, bk[i].start);
    hx_info("referral %s booked: %s", r->referral_id, ids);
    handoff__case__free_unpacked(c, NULL);
    if (rc)
        snprintf(err, errcap, "could not build the outputs");
    return rc ? -1 : 0;
}

static void reload(void *arg)
{
    sched_t *s = arg;
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_directory_t *d = hx_directory_load(s->directory_path, &errs);
    if (!d) {
        char why[2048];
        hx_errors_join(&errs, why, sizeof why);
        hx_error("directory %s refused, keeping the one in force: %s", s->directory_path, why);
        return;
    }
    /* bookings already made point at the old therapists: keep the old directory alive
     * only if something was booked; simplest safe choice is to refuse the swap then. */
    if (s->booked) {
        hx_warn("directory reload needs a restart once bookings exist; keeping the one in force");
        hx_directory_destroy(&d);
        return;
    }
    hx_directory_destroy(&s->dir);
    s->dir = d;
    hx_info("directory reloaded from %s", s->directory_path);
}

static int on_opt(void *ctx, int code, const char *arg)
{
    sched_t *s = ctx;
    switch (code) {
    case 'd': s->directory_path = arg; break;
    case 's': s->start_text = arg; break;
    case 'H': s->horizon_text = arg; break;
    case 'C': s->collab_text = arg; break;
    default: return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option extra[] = {{"directory", required_argument, NULL, 'd'},
                                          {"start", required_argument, NULL, 's'},
                                          {"horizon-days", required_argument, NULL, 'H'},
                                          {"collab-days", required_argument, NULL, 'C'},
                                          {NULL, 0, NULL, 0}};
    const char *prog = "handoff-scheduling";
    sched_t s = {0};
    hx_svc_opts_t o;
    int rc = hx_svc_parse(argc, argv, prog, usage, extra, on_opt, &s, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    s.directory_path = hx_opt_pick(s.directory_path, "HANDOFF_DIRECTORY", NULL);
    s.start_text = hx_opt_pick(s.start_text, "HANDOFF_SCHEDULE_START", NULL);
    if (!s.directory_path) {
        fprintf(stderr, "%s: --directory FILE is required (or HANDOFF_DIRECTORY)\n", prog);
        return 2;
    }
    s.start = -1;
    if (s.start_text && hx_minute_parse(s.start_text, &s.start) != 0) {
        fprintf(stderr, "%s: --start: must be YYYY-MM-DDTHH:MM, got '%s'\n", prog, s.start_text);
        return 2;
    }
    if (hx_opt_u32(prog, "--horizon-days", hx_opt_pick(s.horizon_text, "HANDOFF_HORIZON_DAYS", "60"), 1, 365,
                   &s.horizon_days) ||
        hx_opt_u32(prog, "--collab-days", hx_opt_pick(s.collab_text, "HANDOFF_COLLAB_DAYS", "14"), 1, 90,
                   &s.collab_days))
        return 2;
    hx_errors_t errs;
    hx_errors_clear(&errs);
    s.dir = hx_directory_load(s.directory_path, &errs);
    if (!s.dir) {
        char why[2048];
        hx_errors_join(&errs, why, sizeof why);
        fprintf(stderr, "%s: directory %s: %s\n", prog, s.directory_path, why);
        return 1;
    }
    s.cal = hx_calendar_new();
    rc = s.cal ? hx_svc_run(&o, prog, "scheduling", handle, &s, reload, &s) : 1;
    booked_t *b, *tmp;
    HASH_ITER(hh, s.booked, b, tmp) {
        HASH_DEL(s.booked, b);
        free(b);
    }
    hx_calendar_destroy(&s.cal);
    hx_directory_destroy(&s.dir);
    return rc;
}
