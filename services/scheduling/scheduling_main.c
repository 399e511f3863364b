/* handoff-scheduling — finds the therapist and the earliest slot for each discipline of a
 * triaged case, books it, hands the referral to each receiving clinic's mailbox and tells
 * the referring clinic. */
#include "hx_errors.h"
#include "hx_intake.h"
#include "hx_log.h"
#include "hx_opt.h"
#include "hx_refjson.h"
#include "hx_schedule.h"
#include "hx_seal.h"
#include "hx_svc.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "hx_audit.h"
#include "hx_booking.h"
#include "hx_curve.h"

static const char usage[] =
    "usage: handoff-scheduling --directory FILE [options]\n"
    "\n"
    "Serves the 'scheduling' service: for each discipline the triage decided, books the\n"
    "earliest free slot of the right length (physiotherapy assessment 60 min; massage as\n"
    "asked) with a therapist who works then, speaks the patient's language and fits the\n"
    "patient's availability (preferred clinics win ties); collaborative care books the\n"
    "physiotherapy assessment first and massage after it. Sends a Handoff to each receiving\n"
    "clinic and the bookings to the referring clinic; with no slot, the referral is on-hold.\n"
    "Takes each clinic's change to its own handoff (accept, decline, start, complete, fail,\n"
    "redirect to another clinic or therapist), the referrer's revoke, a physiotherapy clinic's\n"
    "request to add massage (checked by triage first), reviewers' decisions and care-thread posts.\n"
    "\n"
    "options (each also from the environment variable shown, then its default):\n";

enum { S_DIRECTORY, S_START, S_HORIZON, S_COLLAB, S_COLLAB_KM, S_NEAR_DAYS, S_AUDIT, S_AUDIT_MAX_BYTES,
       S_AUDIT_ROTATE, S_AUDIT_KEEP_DAYS, S_DB, S_DATA_KEY, S_REVIEWERS, S_RETRY, S_ROUTINE_DAYS, S_REKEY, S_COUNT };
static const hx_opt_t options[S_COUNT] = {
    [S_DIRECTORY] = {"directory", HX_OPT_TEXT, "HANDOFF_DIRECTORY", NULL, 0, 0, "FILE",
                     "clinics and therapists (required)"},
    [S_START] = {"start", HX_OPT_TEXT, "HANDOFF_SCHEDULE_START", NULL, 0, 0, "YYYY-MM-DDTHH:MM",
                 "book nothing earlier, the directory's time zone (without it: now)"},
    [S_HORIZON] = {"horizon-days", HX_OPT_U32, "HANDOFF_HORIZON_DAYS", "60", 1, 365, "N",
                   "look this far ahead, 1..365"},
    [S_COLLAB] = {"collab-days", HX_OPT_U32, "HANDOFF_COLLAB_DAYS", "14", 1, 90, "N",
                  "massage within N days after the physiotherapy assessment, 1..90"},
    [S_COLLAB_KM] = {"collab-km", HX_OPT_U32, "HANDOFF_COLLAB_KM", "100", 1, 5000, "KM",
                     "a collaborative patient's two clinics at most KM apart (great-circle),\nunless a session is "
                     "virtual; 1..5000"},
    [S_NEAR_DAYS] = {"near-days", HX_OPT_U32, "HANDOFF_NEAR_DAYS", "14", 1, 365, "N",
                     "with the patient's postal code: the nearest clinic among slots this\nmany days ahead "
                     "(routine; stat 1, asap 3, urgent 7), else the earliest"},
    [S_AUDIT] = {"audit", HX_OPT_TEXT, "HANDOFF_AUDIT", NULL, 0, 0, "FILE",
                 "audit log of every clinic's change, done or refused (hash-chained\nJSON lines; handoff audit "
                 "verify)"},
    [S_AUDIT_MAX_BYTES] = {"audit-max-bytes", HX_OPT_U64, "HANDOFF_AUDIT_MAX_BYTES", "67108864", 0, UINT64_MAX,
                           "N",
                           "rotate the audit log before a line would take it past N bytes:\nFILE becomes "
                           "FILE.YYYYMMDDTHHMMSSZ and a new FILE continues the chain;\n0: no size limit"},
    [S_AUDIT_ROTATE] = {"audit-rotate", HX_OPT_TEXT, "HANDOFF_AUDIT_ROTATE", "size", 0, 0, "WHEN",
                        "size (by --audit-max-bytes only), or daily: also at the first event\nof each UTC day"},
    [S_AUDIT_KEEP_DAYS] = {"audit-keep-days", HX_OPT_U32, "HANDOFF_AUDIT_KEEP_DAYS", "0", 0, 36500, "N",
                           "after a rotation, delete rotated audit files more than N days old;\n0: keep them all "
                           "(deleting audit records is the custodian's decision)"},
    [S_DB] = {"db", HX_OPT_TEXT, "HANDOFF_SCHEDULING_DB", "scheduling.db", 0, 0, "URL",
              "referrals, bookings and the calendar: a SQLite file (WAL; also\nsqlite:PATH), or "
              "postgresql://USER@HOST:PORT/DB (schema\n\"scheduling\"). Workers sharing it take turns "
              "with each burst;\non PostgreSQL they may run on several machines"},
    [S_DATA_KEY] = {"data-key", HX_OPT_TEXT, "HANDOFF_DATA_KEY", NULL, 0, 0, "FILE",
                    "seal what --db holds of patients with this key (64 hex characters;\nhandoff datakey FILE "
                    "makes one): each referral, the care thread's text\nand attachments, the stored outputs. "
                    "Without it they are stored in clear"},
    [S_REKEY] = {"rekey", HX_OPT_TEXT, NULL, NULL, 0, 0, "NEW_KEY_FILE",
                 "seal what --db holds of patients again with this key (and what is\nin clear), in one "
                 "transaction, VACUUM the file and exit; --data-key\nnames the key in use. Stop the "
                 "workers first; start them with\nthe new key after. SQLite only"},
    [S_REVIEWERS] = {"reviewers", HX_OPT_TEXT, "HANDOFF_REVIEWERS", "review", 0, 0, "NAMES",
                     "the reviewers (sessions of role reviewer), comma or space separated:\neach gets every "
                     "referral triage could not place, and any of them decides"},
    [S_RETRY] = {"retry-minutes", HX_OPT_U32, "HANDOFF_RETRY_MINUTES", "15", 1, 1440, "N",
                 "every N minutes, retry the wait list (referrals on hold) as new days\nenter the horizon, "
                 "stat first, then asap, urgent, routine, each by arrival"},
    [S_ROUTINE_DAYS] = {"routine-days", HX_OPT_U32, "HANDOFF_ROUTINE_DAYS", "30", 1, 365, "N",
                        "escalate a routine referral on the wait list longer than N days\n(stat 1, asap 3, "
                        "urgent 7): the referrer is told, metric\nhandoff_scheduling_escalated_total, a warning "
                        "in the log"},
};

/* One or more valid names, comma or space separated. */
static bool reviewers_valid(const char *list)
{
    size_t names = 0;
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, " ,");
        char name[HX_NAME_MAX + 2];
        if (n > 0) {
            if (n > HX_NAME_MAX)
                return false;
            memcpy(name, p, n);
            name[n] = '\0';
            if (!hx_name_valid(name))
                return false;
            names++;
        }
        p += n;
        p += strspn(p, " ,");
    }
    return names > 0;
}

static const char usage_tail[] =
    "\n"
    "Also handles the clinics' lifecycle changes (handoff.StatusChange), one handoff at a\n"
    "time: the receiving clinic accepts, declines (that discipline is booked again with another\n"
    "therapist), starts, completes or fails its handoff; the referring clinic revokes. The\n"
    "referral's status is derived from its handoffs. Referrals on hold wait on a wait list\n"
    "(stat first, then asap, urgent, routine; each by arrival), tried again in that order every\n"
    "--retry-minutes as new days enter the horizon and whenever a slot is freed (only those\n"
    "whose discipline still has a free session within reach, and those due to be escalated);\n"
    "the referrer is told its position and an estimated date when they change, and one that\n"
    "waits longer than its priority's bound is escalated (once).\n"
    "Referrals triage could not place go to every --reviewers mailbox (handoff.ReviewRequest);\n"
    "a reviewer's handoff.ReviewDecision books them or sends them to a physician. The care\n"
    "thread (handoff.ThreadPost: notes, questions, replies, summaries) is kept and delivered\n"
    "to the referrer and the clinics holding the referral's handoffs, and no one else.\n"
    "\n"
    "example:\n"
    "  handoff-scheduling --directory deploy/sample/directory.json\n";

typedef struct {
    const char *directory_path;
    const char *db_url;
    const char *start_text;
    hx_directory_t *dir;
    hx_booking_t *booking;
    unsigned reloads;
    uint64_t started_ms;
    hx_metric_t *outcomes[16];
    hx_metric_t *escalated;         /* handoff_scheduling_escalated_total */
    hx_metric_t *stats;             /* handoff_scheduling_stats_requests_total */
    hx_metric_t *waiting[5];        /* handoff_scheduling_waitlist_handoffs, by priority */
    uint64_t retry_ms;              /* --retry-minutes */
} sched_t;

/* What a handled message came to, read from the first StatusUpdate it produced. */
enum { O_BOOKED, O_ON_HOLD, O_DECLINED, O_ACCEPTED, O_STARTED, O_COMPLETED, O_REVOKED, O_REFUSED, O_OTHER,
       O_IGNORED, O_COUNT };
static const char *const outcome_labels[O_COUNT] = {"booked", "on_hold", "declined", "accepted", "started",
                                                    "completed", "revoked", "refused", "other", "ignored"};

static int outcome_class(const Handoff__StatusUpdate *u)
{
    return u->refused                                                 ? O_REFUSED
           : strcmp(u->event, "decline") == 0                         ? O_DECLINED
           : u->status == HANDOFF__TASK_STATUS__TASK_ON_HOLD          ? O_ON_HOLD
           : u->status == HANDOFF__TASK_STATUS__TASK_READY            ? O_BOOKED
           : u->status == HANDOFF__TASK_STATUS__TASK_ACCEPTED         ? O_ACCEPTED
           : u->status == HANDOFF__TASK_STATUS__TASK_IN_PROGRESS      ? O_STARTED
           : u->status == HANDOFF__TASK_STATUS__TASK_COMPLETED        ? O_COMPLETED
           : u->status == HANDOFF__TASK_STATUS__TASK_CANCELLED        ? O_REVOKED
                                                                      : O_OTHER;
}

/* The outcome of the first StatusUpdate the outputs hold (O_IGNORED: none), and how many of
 * them are of event "escalate" (each to a referrer). */
static int outcome_of(const hx_outbox_t *out, uint64_t *escalations)
{
    int o = O_IGNORED;
    *escalations = 0;
    for (size_t i = 0; i < hx_outbox_count(out); i++) {
        hx_addr_kind_t kind;
        const char *to, *type;
        const uint8_t *payload;
        size_t len;
        if (hx_outbox_get(out, i, &kind, &to, &type, &payload, &len) || strcmp(type, "handoff.StatusUpdate") != 0)
            continue;
        Handoff__StatusUpdate *u = handoff__status_update__unpack(NULL, len, payload);
        if (!u)
            continue;
        if (o == O_IGNORED)
            o = outcome_class(u);
        *escalations += strcmp(u->event, "escalate") == 0;
        handoff__status_update__free_unpacked(u, NULL);
    }
    return o;
}

static int handle(void *arg, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    sched_t *s = arg;
    int rc = hx_booking_handle(s->booking, in, out, err, errcap);
    if (rc == 0 && strcmp(in->type, "handoff.StatsRequest") == 0) {
        hx_metric_add(s->stats, 1);             /* a query, not a referral's outcome */
    } else if (rc == 0) {
        uint64_t escalations;
        hx_metric_add(s->outcomes[outcome_of(out, &escalations)], 1);
        hx_metric_add(s->escalated, escalations);
    }
    return rc;
}

static int batch_begin(void *arg, char *err, size_t errcap)
{
    return hx_booking_batch_begin(((sched_t *)arg)->booking, err, errcap);
}

static int batch_commit(void *arg, char *err, size_t errcap)
{
    return hx_booking_batch_commit(((sched_t *)arg)->booking, err, errcap);
}

static void batch_rollback(void *arg)
{
    hx_booking_batch_rollback(((sched_t *)arg)->booking);
}

/* PostgreSQL unreachable: the worker gave the burst back and asks here until it answers. */
static int batch_probe(void *arg, char *err, size_t errcap)
{
    return hx_booking_ping(((sched_t *)arg)->booking, err, errcap);
}

static int metrics_init(sched_t *s, hx_metrics_t *m)
{
    static const char help[] =
        "Messages scheduling handled, by outcome: booked, on_hold (no slot yet), declined (by the receiving "
        "clinic, then booked again or on hold), accepted, started, completed, revoked, refused (a change "
        "that was not allowed), other, ignored (no status produced). A redelivered message counts again.";
    for (int i = 0; i < O_COUNT; i++)
        if (!(s->outcomes[i] = hx_metrics_counter(m, "handoff_scheduling_referrals_total", help, "outcome",
                                                  outcome_labels[i])))
            return -1;
    static const char esc_help[] =
        "Referrals escalated: on the wait list (on hold) longer than their priority's bound (stat 1 day, asap 3, "
        "urgent 7, routine --routine-days); each once, the referrer told. A redelivered message counts again.";
    static const char wait_help[] =
        "Handoffs on the wait list (a referral waiting for two disciplines counts twice), by priority, as of the "
        "last retry tick (--retry-minutes).";
    static const char *const prio[5] = {"unspecified", "routine", "urgent", "asap", "stat"};
    if (!(s->escalated = hx_metrics_counter(m, "handoff_scheduling_escalated_total", esc_help, NULL, NULL)))
        return -1;
    static const char stats_help[] =
        "Requests for the network's figures (handoff.StatsRequest) scheduling answered, refused ones included.";
    if (!(s->stats = hx_metrics_counter(m, "handoff_scheduling_stats_requests_total", stats_help, NULL, NULL)))
        return -1;
    for (int i = 1; i < 5; i++)
        if (!(s->waiting[i] = hx_metrics_gauge(m, "handoff_scheduling_waitlist_handoffs", wait_help, "priority",
                                               prio[i])))
            return -1;
    return 0;
}

/* Posts a handoff.Retry for each referral on hold a retry could book (its discipline has a
 * free slot within reach) or must escalate, in wait-list order; gen makes the ids (one per
 * referral and generation: exact). */
static void post_retries(hx_worker_t *w, sched_t *s, const char *gen)
{
    enum { MAX_RETRIES = 10000 };
    char (*ids)[32] = malloc(MAX_RETRIES * sizeof *ids);
    size_t n = ids ? hx_booking_to_retry(s->booking, ids, MAX_RETRIES) : 0;
    for (size_t i = 0; i < n; i++) {
        Handoff__Retry t = HANDOFF__RETRY__INIT;
        t.referral_id = ids[i];
        uint8_t buf[64], id[HX_ID_LEN];
        size_t len = handoff__retry__pack(&t, buf);
        hx_submission_id(gen, ids[i], id);
        if (hx_worker_post(w, id, HX_TO_SERVICE, "scheduling", "handoff.Retry", buf, len) != 0)
            hx_warn("could not ask for a retry of %s", ids[i]);
    }
    if (n)
        hx_info("%zu referral(s) on hold will be tried again, in wait-list order", n);
    free(ids);
}

static void reload(hx_worker_t *w, void *arg)
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
    if (hx_booking_set_directory(s->booking, d) != 0) {
        hx_error("directory %s could not be stored; keeping the one in force", s->directory_path);
        hx_directory_destroy(&d);
        return;
    }
    hx_directory_destroy(&s->dir);
    s->dir = d;
    hx_info("directory reloaded from %s", s->directory_path);
    if (hx_directory_notes(d)[0])
        hx_warn("directory %s: %s", s->directory_path, hx_directory_notes(d));
    /* A new directory may have room for what waited: each on-hold referral is tried again
     * through the broker, as a message like any other (exact: one id per referral and
     * reload). */
    s->reloads++;
    char gen[48];
    snprintf(gen, sizeof gen, "retry-%llu-%u", (unsigned long long)s->started_ms, s->reloads);
    post_retries(w, s, gen);
}

/* Every --retry-minutes: the wait list is tried again in its order as the horizon advances
 * (new days, new slots), each referral by a handoff.Retry through the broker; its effects
 * (booked, a new position, an escalation) are stored with its outputs. The ids are one per
 * referral and period of the real clock, so two scheduling workers sharing the database post
 * the same ids and the broker keeps one. */
static void tick(hx_worker_t *w, void *arg)
{
    sched_t *s = arg;
    uint64_t by[5];
    if (hx_booking_waiting(s->booking, by) == 0)
        for (int i = 1; i < 5; i++)
            hx_metric_set(s->waiting[i], (int64_t)(by[i] + (i == 1 ? by[0] : 0)));
    char gen[48];
    snprintf(gen, sizeof gen, "wait-%llu", (unsigned long long)(hx_svc_now_ms() / s->retry_ms));
    post_retries(w, s, gen);
}

/* --rekey: the database (opened once, so it is migrated to this version) sealed again with the
 * key in new_file, then exit. */
static int rekey(sched_t *s, const char *new_file, const uint8_t *old_key, uint8_t key[32])
{
    hx_booking_close(&s->booking);
    char err[2048], was[HX_SEAL_ID_TEXT] = "none", now[HX_SEAL_ID_TEXT];
    uint8_t new_key[32];
    int rc = 0;
    if (hx_data_key_load(new_file, new_key, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-scheduling: --rekey: %s\n", err);
        rc = 2;
    }
    if (old_key)
        hx_seal_key_id(old_key, was);
    hx_seal_key_id(new_key, now);
    size_t count = 0;
    if (rc == 0 && hx_booking_rekey(s->db_url, old_key, new_key, &count, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-scheduling: --rekey: %s\n", err);
        rc = 1;
    }
    if (rc == 0)
        printf("%s: %zu value(s) sealed again with the key of id %s (was %s); start every worker with --data-key %s\n",
               s->db_url, count, now, was, new_file);
    sodium_memzero(new_key, sizeof new_key);
    sodium_memzero(key, 32);
    hx_directory_destroy(&s->dir);
    return rc;
}

int main(int argc, char **argv)
{
    const char *prog = "handoff-scheduling";
    sched_t s = {0};
    hx_svc_opts_t o;
    hx_opt_val_t v[S_COUNT];
    int rc = hx_svc_parse(argc, argv, prog, usage, usage_tail, options, S_COUNT, v, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    s.directory_path = v[S_DIRECTORY].text;
    s.start_text = v[S_START].text;
    s.db_url = v[S_DB].text;
    if (!s.directory_path) {
        fprintf(stderr, "%s: --directory FILE is required (or HANDOFF_DIRECTORY)\n", prog);
        return 2;
    }
    hx_audit_rotation_t rot = {.max_bytes = v[S_AUDIT_MAX_BYTES].u64,
                               .daily = strcmp(v[S_AUDIT_ROTATE].text, "daily") == 0,
                               .keep_days = v[S_AUDIT_KEEP_DAYS].u32};
    if (!rot.daily && strcmp(v[S_AUDIT_ROTATE].text, "size") != 0) {
        fprintf(stderr, "%s: --audit-rotate: must be size or daily, got '%s'\n", prog, v[S_AUDIT_ROTATE].text);
        return 2;
    }
    hx_booking_config_t bc = {.db_url = s.db_url, .start = -1, .audit_path = v[S_AUDIT].text,
                              .audit_rotation = &rot,
                              .horizon_days = v[S_HORIZON].u32, .collab_days = v[S_COLLAB].u32,
                              .collab_km = v[S_COLLAB_KM].u32, .near_days = v[S_NEAR_DAYS].u32,
                              .reviewers = v[S_REVIEWERS].text, .routine_days = v[S_ROUTINE_DAYS].u32};
    s.retry_ms = (uint64_t)v[S_RETRY].u32 * 60000;
    if (!reviewers_valid(bc.reviewers)) {
        fprintf(stderr, "%s: --reviewers: one or more names of 1 to %d characters of [A-Za-z0-9._-], comma or "
                        "space separated, got '%s'\n", prog, HX_NAME_MAX, bc.reviewers);
        return 2;
    }
    if (s.start_text && hx_minute_parse(s.start_text, &bc.start) != 0) {
        fprintf(stderr, "%s: --start: must be YYYY-MM-DDTHH:MM, got '%s'\n", prog, s.start_text);
        return 2;
    }
    hx_errors_t errs;
    hx_errors_clear(&errs);
    s.dir = hx_directory_load(s.directory_path, &errs);
    if (!s.dir) {
        char why[2048];
        hx_errors_join(&errs, why, sizeof why);
        fprintf(stderr, "%s: directory %s: %s\n", prog, s.directory_path, why);
        return 1;
    }
    if (hx_directory_notes(s.dir)[0])
        hx_warn("directory %s: %s", s.directory_path, hx_directory_notes(s.dir));
    /* --start is the directory's wall clock; a minute its clock skips: the next that exists */
    if (bc.start >= 0 && hx_tz_to_utc(hx_directory_zone(s.dir), bc.start, &bc.start) != 0)
        bc.start = bc.start + 60 - hx_tz_offset(hx_directory_zone(s.dir), bc.start + 60);
    char err[2048];
    uint8_t key[32];
    if (v[S_DATA_KEY].text && hx_data_key_load(v[S_DATA_KEY].text, key, err, sizeof err) != 0) {
        fprintf(stderr, "%s: --data-key: %s\n", prog, err);
        hx_directory_destroy(&s.dir);
        return 2;
    }
    bc.data_key = v[S_DATA_KEY].text ? key : NULL;
    s.booking = hx_booking_open(&bc, s.dir, err, sizeof err);
    if (s.booking && v[S_REKEY].text)
        return rekey(&s, v[S_REKEY].text, bc.data_key, key);
    /* another key (or none) than the one the database is sealed with: refused now, rather than
     * each message that needs a sealed value failing, and clear values mixed in */
    if (s.booking && hx_booking_key_check(s.db_url, bc.data_key, err, sizeof err) != 0) {
        fprintf(stderr, "%s: --data-key: %s\n", prog, err);
        sodium_memzero(key, sizeof key);
        hx_booking_close(&s.booking);
        hx_directory_destroy(&s.dir);
        return 2;
    }
    sodium_memzero(key, sizeof key);
    if (!s.booking) {
        fprintf(stderr, "%s: --db: %s\n", prog, err);
        hx_directory_destroy(&s.dir);
        return 1;
    }
    s.started_ms = hx_svc_now_ms();
    o.metrics = hx_metrics_new();
    if (!o.metrics || metrics_init(&s, o.metrics) != 0 || hx_booking_metrics(s.booking, o.metrics) != 0) {
        fprintf(stderr, "%s: out of memory\n", prog);
        rc = 1;
    } else {
        o.tick = tick;
        o.tick_arg = &s;
        o.tick_ms = s.retry_ms;
        o.batch = (hx_worker_batch_t){.begin = batch_begin, .commit = batch_commit, .rollback = batch_rollback,
                                      .probe = batch_probe, .arg = &s};
        rc = hx_svc_run(&o, prog, "scheduling", handle, &s, reload, &s);
    }
    hx_metrics_destroy(&o.metrics);
    hx_booking_close(&s.booking);
    hx_directory_destroy(&s.dir);
    return rc;
}
