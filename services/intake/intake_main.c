/* handoff-intake — validates each referral a clinic submits, assigns its network id and
 * passes it to triage; an invalid one goes back to the referrer as rejected, with every
 * bad field named. */
#include "hx_db.h"
#include "intake_store.h"
#include "hx_errors.h"
#include "hx_intake.h"
#include "hx_log.h"
#include "hx_opt.h"
#include "hx_svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: handoff-intake [options]\n"
    "\n"
    "Serves the 'intake' service: checks that each referral carries every required field\n"
    "(patient, referrer and registration, reason, conditions, consent), assigns its\n"
    "network-wide referral id and sends it on to 'triage'. The referring clinic is told\n"
    "'requested', or 'rejected' with each bad field and why.\n"
    "A referrer's registration body must be one the registration file lists for its\n"
    "province (ON when the referral names none) and discipline: a college, or where the\n"
    "profession is not regulated (massage therapy in Alberta) an association; the\n"
    "referral goes on saying which. SIGHUP reloads the file; one that fails validation\n"
    "is refused and the last good one stays in force.\n"
    "\n"
    "options (each also from the environment variable shown, then its default):\n";

static const char usage_tail[] =
    "\n"
    "example:\n"
    "  handoff-intake --broker tcp://127.0.0.1:5555\n";

static const hx_opt_t options[] = {
    {"db", HX_OPT_TEXT, "HANDOFF_INTAKE_DB", "intake.db", 0, 0, "URL",
     "the intake record: sqlite:FILE (or a FILE; SQLite, WAL) or\npostgresql://USER@HOST:PORT/DB (schema intake); "
     "one row per\nreferral with its referring clinic, the clinic's number, the\noutcome and, for a refusal, which "
     "fields were wrong; never\npatient details or clinical text"},
    {"registration", HX_OPT_TEXT, "HANDOFF_REGISTRATION", NULL, 0, 0, "FILE",
     "the registration bodies by province and discipline\n(default: the built-in copy of "
     "services/intake/registration.json)"},
};

typedef struct {
    const char *db_url;
    const char *registration_path;      /* NULL: the built-in file */
    hx_registration_t *loaded;          /* from registration_path */
    const hx_registration_t *registration;
    hx_db_t *db;
    hx_metric_t *accepted, *rejected, *ignored;     /* referrals handled, by outcome */
} intake_t;

static const char referrals_help[] =
    "Referrals intake handled, by outcome: accepted (sent on to triage), rejected (back to the referrer "
    "with the bad fields), ignored (not a referral from a clinic). A redelivered message counts again.";

static const char record_sql[] = "INSERT INTO referrals(referral_id, clinic, ref, outcome, reason, received_ms) "
                                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (referral_id) DO NOTHING";

/* One row per referral, the first outcome kept: a redelivered message changes nothing. */
static int record(intake_t *t, const char *rid, const char *clinic, const char *ref, const char *outcome,
                  const char *reason)
{
    hx_db_val_t a[] = {HX_DB_T(rid), HX_DB_T(clinic), HX_DB_T(ref), HX_DB_T(outcome), HX_DB_T(reason),
                       HX_DB_I(hx_svc_now_ms())};
    char err[512];
    int rc = hx_db_exec(t->db, record_sql, a, 6, NULL, err, sizeof err);
    if (rc)
        hx_error("intake record: %s", err);
    return rc;
}

static int handle_one(intake_t *t, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    char rid[HX_REFERRAL_ID_LEN + 1];
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(in->id, hex);
    if (in->from_kind != HX_TO_MAILBOX) {
        hx_warn("message %s from service %s ignored: referrals come from clinics", hex, in->from);
        hx_metric_add(t->ignored, 1);
        return 0;
    }
    if (strcmp(in->type, "handoff.Referral") != 0) {
        hx_warn("message %s from %s ignored: type '%.64s' is not handoff.Referral", hex, in->from, in->type);
        hx_metric_add(t->ignored, 1);
        return 0;
    }
    Handoff__Referral *r = handoff__referral__unpack(NULL, in->payload_len, in->payload);
    if (!r) {
        hx_referral_id(in->id, rid);
        hx_warn("message %s from %s: payload is not a Referral", hex, in->from);
        hx_metric_add(t->rejected, 1);
        return hx_svc_status(out, in->from, rid, "", HANDOFF__TASK_STATUS__TASK_REJECTED,
                             "payload: not a decodable handoff.Referral", "intake", NULL, 0, NULL, "reject", false)
                   ? -1
                   : 0;
    }
    /* The referring clinic is whoever the broker says sent it, never what the payload claims. */
    uint8_t sid[HX_ID_LEN];
    hx_submission_id(in->from, r->ref, sid);
    hx_referral_id(sid, rid);
    hx_errors_t errs;
    hx_errors_clear(&errs);
    if (r->referrer && r->referrer->clinic_id[0] && strcmp(r->referrer->clinic_id, in->from) != 0)
        hx_errors_add(&errs, "referrer.clinic_id", "is '%.40s' but the referral was sent by clinic '%s'",
                      r->referrer->clinic_id, in->from);
    if (!r->ref[0])
        hx_errors_add(&errs, "ref", "required: the referring clinic's own number for the referral");
    hx_intake_check(r, t->registration, &errs);
    int rc;
    if (errs.count) {
        char why[2048];
        hx_errors_join(&errs, why, sizeof why);
        hx_info("referral %s from %s rejected: %zu field error(s)", rid, in->from, errs.count);
        rc = record(t, rid, in->from, r->ref, "rejected", why);
        if (rc == 0)
            rc = hx_svc_status(out, in->from, rid, r->ref, HANDOFF__TASK_STATUS__TASK_REJECTED, why, "intake", NULL, 0,
                               NULL, "reject", false);
    } else {
        if (r->priority == HANDOFF__PRIORITY__PRIORITY_UNSPECIFIED)
            r->priority = HANDOFF__PRIORITY__PRIORITY_ROUTINE;
        Handoff__Case c = HANDOFF__CASE__INIT;
        c.referral = r;
        const char *kind = hx_intake_registration_kind(r, t->registration);
        rc = hx_pb_set_string(&r->referral_id, rid) || hx_pb_set_string(&r->referring_clinic, in->from) ||
                     (kind && hx_pb_set_string(&r->referrer->registration_kind, kind))
                 ? -1
                 : record(t, rid, in->from, r->ref, "requested", "");
        if (rc == 0)
            rc = hx_svc_emit(out, HX_TO_SERVICE, "triage", "handoff.Case", &c.base);
        if (rc == 0)
            rc = hx_svc_status(out, in->from, rid, r->ref, HANDOFF__TASK_STATUS__TASK_REQUESTED,
                               "validated by intake", "intake", NULL, 0, NULL, "submit", false);
        hx_info("referral %s from %s accepted into the network", rid, in->from);
    }
    handoff__referral__free_unpacked(r, NULL);
    if (rc == 0)
        hx_metric_add(errs.count ? t->rejected : t->accepted, 1);
    if (rc)
        snprintf(err, errcap, "could not build the outputs");
    return rc ? -1 : 0;
}

/* A delivered burst's referrals recorded in one transaction (hx_worker_batch_t): one commit
 * for the burst, a savepoint per referral. One that fails (its row refused, its outputs not
 * built) is nacked and its row undone; the others' stay (on PostgreSQL a failed statement
 * would otherwise doom the whole transaction). */
static int handle(void *arg, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    intake_t *t = arg;
    if (hx_db_savepoint(t->db, err, errcap) != 0)
        return -1;
    int rc = handle_one(t, in, out, err, errcap);
    char why[256];
    if (rc != 0 && hx_db_rollback_to(t->db, why, sizeof why) != 0)
        hx_error("intake: %s", why);    /* the commit then fails too, and the burst is nacked */
    if (rc == 0 && hx_db_release(t->db, err, errcap) != 0)
        rc = -1;
    return rc;
}

/* PostgreSQL unreachable: the worker gives the burst back and waits for batch_probe. */
static int batch_begin(void *arg, char *err, size_t errcap)
{
    intake_t *t = arg;
    int rc = hx_db_begin(t->db, err, errcap);
    return rc == HX_DB_UNAVAILABLE ? HX_WORKER_STORE_DOWN : rc;
}

static int batch_probe(void *arg, char *err, size_t errcap)
{
    intake_t *t = arg;
    return hx_db_ping(t->db, err, errcap);
}

static int batch_commit(void *arg, char *err, size_t errcap)
{
    intake_t *t = arg;
    return hx_db_commit(t->db, err, errcap);
}

static void batch_rollback(void *arg)
{
    intake_t *t = arg;
    hx_db_rollback(t->db);
}

static int open_db(intake_t *t)
{
    char err[1024];
    if (!(t->db = hx_db_open(t->db_url, "intake", hx_intake_steps, hx_intake_n_steps, err, sizeof err))) {
        fprintf(stderr, "handoff-intake: --db: %s\n", err);
        return -1;
    }
    return 0;
}

static hx_registration_t *load_registration(const char *path)
{
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_registration_t *reg = hx_registration_load(path, &errs);
    if (!reg) {
        char why[2048];
        hx_errors_join(&errs, why, sizeof why);
        hx_error("registration file %s refused: %s", path, why);
    }
    return reg;
}

/* SIGHUP: the file again; the bodies in force stay when it is refused. */
static void reload(hx_worker_t *w, void *arg)
{
    (void)w;
    intake_t *t = arg;
    if (!t->registration_path) {
        hx_info("registration: the built-in file is in force (no --registration to reload)");
        return;
    }
    hx_registration_t *reg = load_registration(t->registration_path);
    if (!reg) {
        hx_warn("keeping the registration bodies in force");
        return;
    }
    hx_registration_destroy(&t->loaded);
    t->registration = t->loaded = reg;
    hx_info("registration bodies reloaded from %s", t->registration_path);
}

int main(int argc, char **argv)
{
    intake_t t = {0};
    hx_svc_opts_t o;
    hx_opt_val_t v[2];
    int rc = hx_svc_parse(argc, argv, "handoff-intake", usage, usage_tail, options, 2, v, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    t.db_url = v[0].text;
    t.registration_path = v[1].text && v[1].text[0] ? v[1].text : NULL;
    if (t.registration_path && !(t.registration = t.loaded = load_registration(t.registration_path)))
        return 1;
    if (!t.registration && !(t.registration = hx_registration_builtin())) {
        fprintf(stderr, "handoff-intake: the built-in registration file does not load\n");
        return 1;
    }
    o.metrics = hx_metrics_new();
    t.accepted = hx_metrics_counter(o.metrics, "handoff_intake_referrals_total", referrals_help, "outcome", "accepted");
    t.rejected = hx_metrics_counter(o.metrics, "handoff_intake_referrals_total", referrals_help, "outcome", "rejected");
    t.ignored = hx_metrics_counter(o.metrics, "handoff_intake_referrals_total", referrals_help, "outcome", "ignored");
    if (!t.accepted || !t.rejected || !t.ignored) {
        fprintf(stderr, "handoff-intake: out of memory\n");
        hx_metrics_destroy(&o.metrics);
        hx_registration_destroy(&t.loaded);
        return 1;
    }
    o.batch = (hx_worker_batch_t){.begin = batch_begin, .commit = batch_commit, .rollback = batch_rollback,
                                  .probe = batch_probe, .arg = &t};
    rc = open_db(&t) == 0 && hx_db_metrics(t.db, o.metrics) == 0
             ? hx_svc_run(&o, "handoff-intake", "intake", handle, &t, reload, &t)
             : 1;
    hx_metrics_destroy(&o.metrics);
    hx_registration_destroy(&t.loaded);
    hx_db_close(&t.db);
    return rc;
}
