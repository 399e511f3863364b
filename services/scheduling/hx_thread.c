/* hx_thread — the care thread of a referral (docs/PROTOCOL.md, "Care thread").
 *
 * The referring clinic and the clinics holding one of the referral's handoffs (and only they)
 * post to it with a ThreadPost; who posts is the broker-set sender, never the payload. An
 * accepted post is stored in the thread table (once: hx_booking_handle replays a redelivered
 * input's outputs) and delivered, as stored (by, at_ms, post_id, awaiting_reply set here), to
 * every participant's mailbox; the sender's copy is its answer (correlated to its message).
 * A question leaves the thread awaiting a reply from the other side until someone else
 * replies (thread_state). A refused post gets a refused StatusUpdate, event "thread". Every
 * post, taken or refused, is in the audit log by ids, never by its text. A post may carry one
 * attachment (PDF, PNG or JPEG by its content, hx_attach.h); scheduling sets its media type
 * and SHA-256. The text and the attachment are stored sealed when scheduling has a data key.
 * A completion's summary (StatusChange.summary) is posted here too (hx_thread_summary). */
#include "hx_booking_internal.h"
#include "hx_intake.h"
#include "hx_log.h"
#include "hx_svc.h"
#include "hx_thread_rules.h"
#include "hx_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHY_MAX 300

static void audit_post(hx_booking_t *b, const hx_msg_t *in, const char *rid, const char *outcome)
{
    bk_audit_write(b, "clinic", in, "thread", rid, outcome);
}

static int refuse(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const char *rid, const char *why)
{
    return bk_refuse_request(b, in, out, "clinic", "thread", rid, why);
}

/* 1 when clinic holds a live (not cancelled) handoff of the referral, 0 not, -1 error. */
static int holds_handoff(hx_booking_t *b, const char *rid, const char *clinic)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT 1 FROM bookings WHERE referral_id = ? AND clinic_id = ? AND status != ?");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, rid);
    hx_db_bind_text(st, 2, clinic);
    hx_db_bind_int(st, 3, HANDOFF__TASK_STATUS__TASK_CANCELLED);
    int rc = hx_db_step(st);
    bk_done(b, st);
    return rc == HX_DB_ROW ? 1 : rc == HX_DB_DONE ? 0 : -1;
}

/* The question awaiting a reply (its id and who asked); 1 found, 0 none, -1 error. */
static int awaiting(hx_booking_t *b, const char *rid, char qid[HX_THREAD_POST_ID_LEN + 1], char *by, size_t cap)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT question_id, asked_by FROM thread_state WHERE referral_id = ?");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, rid);
    int rc = hx_db_step(st);
    int found = rc == HX_DB_ROW ? 1 : rc == HX_DB_DONE ? 0 : -1;
    if (found == 1) {
        snprintf(qid, HX_THREAD_POST_ID_LEN + 1, "%s", hx_db_col_text(st, 0));
        snprintf(by, cap, "%s", hx_db_col_text(st, 1));
    }
    bk_done(b, st);
    return found;
}

/* 1 when post_id is a question on this referral's thread, 0 not, -1 error. */
static int is_question(hx_booking_t *b, const char *rid, const char *post_id)
{
    hx_db_stmt_t *st = bk_prep(b, "SELECT 1 FROM thread WHERE post_id = ? AND referral_id = ? AND kind = 'question'");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, post_id);
    hx_db_bind_text(st, 2, rid);
    int rc = hx_db_step(st);
    bk_done(b, st);
    return rc == HX_DB_ROW ? 1 : rc == HX_DB_DONE ? 0 : -1;
}

static int run(hx_booking_t *b, const char *sql, const char *a, const char *c, const char *d, int64_t n)
{
    hx_db_stmt_t *st = bk_prep(b, sql);
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, a);
    if (c)
        hx_db_bind_text(st, 2, c);
    if (d)
        hx_db_bind_text(st, 3, d);
    if (n >= 0)
        hx_db_bind_int(st, 4, n);
    int rc = hx_db_step(st) == HX_DB_DONE ? 0 : -1;
    bk_done(b, st);
    return rc;
}

/* Binds the post's attachment (packed, sealed with the store's key) or NULL. */
static int bind_attachment(hx_booking_t *b, hx_db_stmt_t *st, int idx, const Handoff__Attachment *a)
{
    if (!a)
        return hx_db_bind_null(st, idx);
    size_t len = handoff__attachment__get_packed_size(a);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return -1;
    handoff__attachment__pack(a, buf);
    int rc = bk_bind_sealed(b, st, idx, buf, len, false);
    free(buf);
    return rc;
}

/* Stores p (by, at_ms, post_id set) and moves the thread's state; sets p->awaiting_reply. */
static int store(hx_booking_t *b, Handoff__ThreadPost *p)
{
    hx_db_stmt_t *st = bk_prep(b, "INSERT INTO thread(post_id, referral_id, kind, \"by\", in_reply_to, at_ms, text, "
                                  "attachment) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st)
        return -1;
    const char *v[] = {p->post_id, p->referral_id, p->kind, p->by, p->in_reply_to};
    for (int i = 0; i < 5; i++)
        hx_db_bind_text(st, i + 1, v[i]);
    hx_db_bind_int(st, 6, (int64_t)p->at_ms);
    int rc = bk_bind_sealed(b, st, 7, p->text, strlen(p->text), true) == 0 &&
                     bind_attachment(b, st, 8, p->attachment) == 0 && hx_db_step(st) == HX_DB_DONE
                 ? 0
                 : -1;
    bk_done(b, st);
    char qid[HX_THREAD_POST_ID_LEN + 1] = "", asker[HX_NAME_MAX + 1] = "";
    int open = rc == 0 ? awaiting(b, p->referral_id, qid, asker, sizeof asker) : -1;
    if (open < 0)
        return -1;
    hx_post_kind_t k = hx_post_kind(p->kind);
    if (k == HX_POST_QUESTION) {
        rc = run(b, "INSERT INTO thread_state(referral_id, question_id, asked_by, asked_ms) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (referral_id) DO UPDATE SET question_id = excluded.question_id, "
                    "asked_by = excluded.asked_by, asked_ms = excluded.asked_ms", p->referral_id, p->post_id, p->by, (int64_t)p->at_ms);
        open = 1;
        snprintf(asker, sizeof asker, "%s", p->by);
    } else if (k == HX_POST_REPLY && open == 1 && strcmp(asker, p->by) != 0) {
        rc = run(b, "DELETE FROM thread_state WHERE referral_id = ?", p->referral_id, NULL, NULL, -1);
        open = 0;
    }
    p->awaiting_reply = open == 1;
    return rc == 0 && hx_pb_set_string(&p->asked_by, open == 1 ? asker : "") == 0 ? 0 : -1;
}

typedef struct {
    char names[3][HX_NAME_MAX + 1];
    size_t n;
} people_t;

static void people_add(people_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0)
            return;
    if (p->n < 3 && name[0])
        snprintf(p->names[p->n++], sizeof p->names[0], "%s", name);
}

/* The referrer and every clinic holding a live handoff of the referral. */
static int participants(hx_booking_t *b, const char *rid, const char *referrer, people_t *p)
{
    people_add(p, referrer);
    hx_db_stmt_t *st = bk_prep(b, "SELECT DISTINCT clinic_id FROM bookings WHERE referral_id = ? AND status != ?");
    if (!st)
        return -1;
    hx_db_bind_text(st, 1, rid);
    hx_db_bind_int(st, 2, HANDOFF__TASK_STATUS__TASK_CANCELLED);
    int rc;
    while ((rc = hx_db_step(st)) == HX_DB_ROW)
        people_add(p, hx_db_col_text(st, 0));
    bk_done(b, st);
    return rc == HX_DB_DONE ? 0 : -1;
}

/* Stores an allowed post and delivers it: the sender's copy first (its answer), then the others. */
static int take(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, Handoff__ThreadPost *p, const char *referrer)
{
    char pid[HX_THREAD_POST_ID_LEN + 1] = "P-";
    for (int i = 0; i < 8; i++)
        snprintf(pid + 2 + 2 * i, 3, "%02x", in->id[i]);
    p->at_ms = bk_now_ms(b);
    if (hx_pb_set_string(&p->by, in->from) || hx_pb_set_string(&p->post_id, pid) || hx_pb_set_string(&p->asked_by, ""))
        return -1;
    people_t who = {0};
    if (store(b, p) != 0 || participants(b, p->referral_id, referrer, &who) != 0)
        return -1;
    int rc = hx_svc_emit(out, HX_TO_MAILBOX, in->from, "handoff.ThreadPost", &p->base);
    for (size_t i = 0; rc == 0 && i < who.n; i++)
        if (strcmp(who.names[i], in->from) != 0)
            rc = hx_svc_emit(out, HX_TO_MAILBOX, who.names[i], "handoff.ThreadPost", &p->base);
    char outcome[256], att[160] = "";
    if (p->attachment)    /* its type, size and hash; never its name, which may name the patient */
        snprintf(att, sizeof att, " with an attachment (%s, %zu bytes, sha256 %s)", p->attachment->media_type,
                 p->attachment->data.len, p->attachment->sha256);
    snprintf(outcome, sizeof outcome, "posted %s (%s)%s%s", pid, p->kind, att,
             p->awaiting_reply ? "; awaiting reply" : "");
    audit_post(b, in, p->referral_id, outcome);
    hx_info("referral %s: %s %s by %s to %zu participant(s)", p->referral_id, p->kind, pid, in->from, who.n);
    return rc;
}

/* Checks the sender and the post against the referral; 0 allowed, 1 refused (why set), -1 error. */
static int judge(hx_booking_t *b, const hx_msg_t *in, const Handoff__ThreadPost *p, const bk_row_t *row, char *why,
                 size_t cap)
{
    int holder = holds_handoff(b, p->referral_id, in->from);
    if (holder < 0)
        return -1;
    bool referrer = strcmp(row->referring_clinic, in->from) == 0;
    if (hx_thread_may_post(in->from, hx_post_kind(p->kind), referrer, holder == 1, why, cap) != 0)
        return 1;
    if (p->in_reply_to[0]) {
        int q = is_question(b, p->referral_id, p->in_reply_to);
        if (q < 0)
            return -1;
        if (q == 0) {
            snprintf(why, cap, "in_reply_to: %s is not a question on the thread of %s", p->in_reply_to,
                     p->referral_id);
            return 1;
        }
    }
    return 0;
}

/* Checks a post's attachment by its content and sets what scheduling vouches for: its
 * media type and SHA-256. 0, or -1 with why. */
static int attachment_take(hx_booking_t *b, Handoff__Attachment *a, char *why, size_t cap)
{
    const char *type;
    char hex[65];
    if (hx_attach_check(bk_typer(b), a->name, a->data.data, a->data.len, &type, why, cap) != 0)
        return -1;
    hx_attach_sha256_hex(a->data.data, a->data.len, hex);
    if (hx_pb_set_string(&a->media_type, type) || hx_pb_set_string(&a->sha256, hex)) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    return 0;
}

int hx_thread_summary(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, const char *rid, const char *referrer,
                      const char *text)
{
    Handoff__ThreadPost *p = malloc(sizeof *p);
    if (!p)
        return -1;
    handoff__thread_post__init(p);
    int rc = hx_pb_set_string(&p->referral_id, rid) || hx_pb_set_string(&p->kind, "summary") ||
                     hx_pb_set_string(&p->text, text)
                 ? -1
                 : take(b, in, out, p, referrer);
    handoff__thread_post__free_unpacked(p, NULL);
    return rc;
}

int hx_thread_on_post(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out)
{
    Handoff__ThreadPost *p = handoff__thread_post__unpack(NULL, in->payload_len, in->payload);
    if (!p)
        return refuse(b, in, out, "", "payload: not a decodable handoff.ThreadPost");
    char why[WHY_MAX];
    bk_row_t row = {0};
    int rc = 0, found, verdict;
    const char *rid = hx_name_valid(p->referral_id) && strlen(p->referral_id) == HX_REFERRAL_ID_LEN ? p->referral_id
                                                                                                     : "";
    if (!rid[0])
        rc = refuse(b, in, out, "", "referral_id: must be a referral id such as R-0A1B2C3D4E5F6G7H");
    else if (hx_thread_post_check(p->kind, p->text, p->in_reply_to, why, sizeof why) != 0)
        rc = refuse(b, in, out, rid, why);
    else if (p->attachment && attachment_take(b, p->attachment, why, sizeof why) != 0)
        rc = refuse(b, in, out, rid, why);
    else if ((found = bk_row_load(b, rid, &row)) < 0)
        rc = -1;
    else if (found == 0)
        rc = refuse(b, in, out, rid, "referral_id: no referral has this id");
    else if ((verdict = judge(b, in, p, &row, why, sizeof why)) < 0)
        rc = -1;
    else if (verdict == 1)
        rc = refuse(b, in, out, rid, why);
    else
        rc = take(b, in, out, p, row.referring_clinic);
    bk_row_free(&row);
    handoff__thread_post__free_unpacked(p, NULL);
    return rc;
}
