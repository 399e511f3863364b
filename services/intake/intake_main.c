/* handoff-intake — validates each referral a clinic submits, assigns its network id and
 * passes it to triage; an invalid one goes back to the referrer as rejected, with every
 * bad field named. */
#include "hx_errors.h"
#include "hx_intake.h"
#include "hx_log.h"
#include "hx_svc.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: handoff-intake [options]\n"
    "\n"
    "Serves the 'intake' service: checks that each referral carries every required field\n"
    "(patient, referrer and registration, reason, conditions, consent), assigns its\n"
    "network-wide referral id and sends it on to 'triage'. The referring clinic is told\n"
    "'requested', or 'rejected' with each bad field and why.\n"
    "\n"
    "example:\n"
    "  handoff-intake --broker tcp://127.0.0.1:5555\n";

static int handle(void *arg, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap)
{
    (void)arg;
    (void)err;
    (void)errcap;
    char rid[HX_REFERRAL_ID_LEN + 1];
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(in->id, hex);
    if (in->from_kind != HX_TO_MAILBOX) {
        hx_warn("message %s from service %s ignored: referrals come from clinics", hex, in->from);
        return 0;
    }
    if (strcmp(in->type, "handoff.Referral") != 0) {
        hx_warn("message %s from %s ignored: type '%.64s' is not handoff.Referral", hex, in->from, in->type);
        return 0;
    }
    Handoff__Referral *r = handoff__referral__unpack(NULL, in->payload_len, in->payload);
    if (!r) {
        hx_referral_id(in->id, rid);
        hx_warn("message %s from %s: payload is not a Referral", hex, in->from);
        return hx_svc_status(out, in->from, rid, "", HANDOFF__TASK_STATUS__TASK_REJECTED,
                             "payload: not a decodable handoff.Referral", "intake", NULL, 0, NULL) ? -1 : 0;
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
    hx_intake_validate(r, &errs);
    int rc;
    if (errs.count) {
        char why[2048];
        hx_errors_join(&errs, why, sizeof why);
        hx_info("referral %s from %s rejected: %zu field error(s)", rid, in->from, errs.count);
        rc = hx_svc_status(out, in->from, rid, r->ref, HANDOFF__TASK_STATUS__TASK_REJECTED, why, "intake", NULL, 0,
                           NULL);
    } else {
        if (r->priority == HANDOFF__PRIORITY__PRIORITY_UNSPECIFIED)
            r->priority = HANDOFF__PRIORITY__PRIORITY_ROUTINE;
        Handoff__Case c = HANDOFF__CASE__INIT;
        c.referral = r;
        rc = hx_pb_set_string(&r->referral_id, rid) || hx_pb_set_string(&r->referring_clinic, in->from)
                 ? -1
                 : hx_svc_emit(out, HX_TO_SERVICE, "triage", "handoff.Case", &c.base);
        if (rc == 0)
            rc = hx_svc_status(out, in->from, rid, r->ref, HANDOFF__TASK_STATUS__TASK_REQUESTED,
                               "validated by intake", "intake", NULL, 0, NULL);
        hx_info("referral %s from %s accepted into the network", rid, in->from);
    }
    handoff__referral__free_unpacked(r, NULL);
    if (rc)
        snprintf(err, errcap, "could not build the outputs");
    return rc ? -1 : 0;
}

int main(int argc, char **argv)
{
    hx_svc_opts_t o;
    int rc = hx_svc_parse(argc, argv, "handoff-intake", usage, NULL, NULL, NULL, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    return hx_svc_run(&o, "handoff-intake", "intake", handle, NULL, NULL, NULL);
}
