/* Integration: a referral's care thread end to end through the CLI against the real broker,
 * intake, triage and scheduling on 127.0.0.1. The referrer asks a question, the receiving
 * clinic sees it awaiting its reply and replies, both see the whole thread; a clinic not on
 * the referral is refused and never receives a post; a ThreadPost put straight into a mailbox
 * from a clinic's session is refused by the broker's routing policy. Attachments: a PDF
 * reaches the receiver whole; a renamed executable, a file over 256 KiB or a bad name is
 * refused, by the CLI and by scheduling itself; with a data key nothing of a post or the
 * patient is readable in the broker's log or scheduling's database. A completion needs its
 * summary.
 *
 * Every wait is a condition polled with a deadline (net_wait). */
#define _GNU_SOURCE     /* memmem */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "harness.h"
#include "hx_client.h"
#include "hx_wire.h"
#include "referral.pb-c.h"

#define START "2026-11-23T08:00"       /* a Monday */
#define WAIT_MS 60000

static net_t net;

static void setup(void)
{
    net_init(&net);
    const char *extra[] = {"--heartbeat-ms", "200", NULL};
    net_start_broker(&net, extra);
    net_start_services(&net, START);
}

static void teardown(void)
{
    net_fini_verdict(net_stop_all(&net), net.dir);
}

TestSuite(thread, .init = setup, .fini = teardown, .timeout = 300);

/* `handoff --json ARGS...` as clinic (harness.h); args NULL-terminated. */
#define cli(clinic, out, ...) net_cli_json(&net, (clinic), (out), __VA_ARGS__)

typedef struct {
    const char *rid;
    char receiver[64];
} booked_t;

/* True when harbour's history of rid has the booking; the receiving clinic in receiver. */
static bool referrer_saw_booking(void *arg)
{
    booked_t *b = arg;
    json_t *j = NULL;
    if (cli("harbour", &j, "status", b->rid, NULL) == 0 && j) {
        json_t *h = json_object_get(j, "history"), *u;
        size_t i;
        json_array_foreach(h, i, u) {
            const char *ev = json_string_value(json_object_get(u, "event"));
            json_t *bk = json_array_get(json_object_get(u, "bookings"), 0);
            if (ev && !strcmp(ev, "book") && bk)
                snprintf(b->receiver, sizeof b->receiver, "%s", json_string_value(json_object_get(bk, "clinic_id")));
        }
    }
    json_decref(j);
    return b->receiver[0] != '\0';
}

typedef struct {
    const char *clinic, *rid;
    size_t posts;               /* wanted number of posts */
    int awaiting;               /* wanted awaiting_reply */
    json_t *thread;             /* the last thread read */
} thread_want_t;

static bool thread_is(void *arg)
{
    thread_want_t *w = arg;
    json_decref(w->thread);
    w->thread = NULL;
    if (cli(w->clinic, &w->thread, "thread", w->rid, NULL) != 0 || !w->thread)
        return false;
    return json_array_size(json_object_get(w->thread, "posts")) == w->posts &&
           json_is_true(json_object_get(w->thread, "awaiting_reply")) == w->awaiting;
}

static const char *post_field(json_t *thread, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(thread, "posts"), i), key));
}

/* Submits the ankle sprain sample as harbour and waits until it is booked. */
static void booked(const char *ref, char rid[32], char receiver[64])
{
    static char path[512];
    json_error_t jerr;
    json_t *j = json_load_file(net_src("deploy/sample/referrals/01-ankle-sprain.json"), 0, &jerr);
    cr_assert_not_null(j, "%s", jerr.text);
    json_object_set_new(j, "ref", json_string(ref));
    snprintf(path, sizeof path, "%s/%s.json", net.dir, ref);
    cr_assert_eq(json_dump_file(j, path, 0), 0);
    json_decref(j);
    json_t *out = NULL;
    int rc = cli("harbour", &out, "submit", path, NULL);
    cr_assert_eq(rc, 0, "submit: exit %d (logs in %s)", rc, net.dir);
    snprintf(rid, 32, "%s", json_string_value(json_object_get(json_array_get(out, 0), "referral_id")));
    json_decref(out);
    booked_t b = {.rid = rid};
    cr_assert(net_wait(referrer_saw_booking, &b, WAIT_MS), "%s is booked (logs in %s)", rid, net.dir);
    cr_assert_str_neq(b.receiver, "harbour");
    snprintf(receiver, 64, "%s", b.receiver);
}

Test(thread, a_question_awaits_the_reply_and_both_see_the_thread)
{
    char rid[32], rx[64];
    booked("HB-THR-1", rid, rx);
    json_t *j = NULL;
    int rc = cli("harbour", &j, "note", rid, "Any swelling after the first session?", "--ask", NULL);
    cr_assert_eq(rc, 0, "note --ask: exit %d (logs in %s)", rc, net.dir);
    cr_expect_str_eq(json_string_value(json_object_get(j, "kind")), "question");
    cr_expect_str_eq(json_string_value(json_object_get(j, "by")), "harbour");
    cr_expect(json_is_true(json_object_get(j, "awaiting_reply")));
    json_decref(j);

    thread_want_t w = {.clinic = rx, .rid = rid, .posts = 1, .awaiting = 1};
    cr_assert(net_wait(thread_is, &w, WAIT_MS), "the receiver %s sees the question awaiting its reply", rx);
    cr_expect_str_eq(json_string_value(json_object_get(w.thread, "asked_by")), "harbour");
    cr_expect_str_eq(post_field(w.thread, 0, "text"), "Any swelling after the first session?");
    json_decref(w.thread);

    rc = cli(rx, &j, "reply", rid, "None; range of motion is improving.", NULL);
    cr_assert_eq(rc, 0, "reply: exit %d (logs in %s)", rc, net.dir);
    cr_expect_str_eq(json_string_value(json_object_get(j, "kind")), "reply");
    cr_expect_not(json_is_true(json_object_get(j, "awaiting_reply")));
    json_decref(j);

    const char *both[] = {"harbour", rx};
    for (size_t i = 0; i < 2; i++) {
        thread_want_t t = {.clinic = both[i], .rid = rid, .posts = 2, .awaiting = 0};
        cr_assert(net_wait(thread_is, &t, WAIT_MS), "%s sees the question and the reply", both[i]);
        cr_expect_str_eq(post_field(t.thread, 0, "kind"), "question");
        cr_expect_str_eq(post_field(t.thread, 0, "by"), "harbour");
        cr_expect_str_eq(post_field(t.thread, 1, "kind"), "reply");
        cr_expect_str_eq(post_field(t.thread, 1, "by"), rx);
        json_decref(t.thread);
    }

    /* the receiver completes with a summary, which reaches the referrer on the thread */
    const char *steps[] = {"accept", "start"};
    for (size_t i = 0; i < 2; i++) {
        rc = cli(rx, &j, steps[i], rid, NULL);
        cr_assert_eq(rc, 0, "%s: exit %d (logs in %s)", steps[i], rc, net.dir);
        json_decref(j);
    }
    rc = cli(rx, &j, "complete", rid, "--summary", "Discharged: full range, home program.", NULL);
    cr_assert_eq(rc, 0, "complete --summary: exit %d (logs in %s)", rc, net.dir);
    cr_expect_str_eq(json_string_value(json_object_get(j, "status")), "completed");
    json_decref(j);
    thread_want_t t = {.clinic = "harbour", .rid = rid, .posts = 3, .awaiting = 0};
    cr_assert(net_wait(thread_is, &t, WAIT_MS), "the referrer reads the summary");
    cr_expect_str_eq(post_field(t.thread, 2, "kind"), "summary");
    cr_expect_str_eq(post_field(t.thread, 2, "by"), rx);
    cr_expect_str_eq(post_field(t.thread, 2, "text"), "Discharged: full range, home program.");
    json_decref(t.thread);
}

Test(thread, a_clinic_not_on_the_referral_is_refused_and_reads_nothing)
{
    char rid[32], rx[64];
    booked("HB-THR-2", rid, rx);
    const char *stranger = strcmp(rx, "eastgate") != 0 ? "eastgate" : "laurier";
    json_t *j = NULL;
    int rc = cli("harbour", &j, "note", rid, "Referral letter follows by fax.", NULL);
    cr_assert_eq(rc, 0, "note: exit %d (logs in %s)", rc, net.dir);
    json_decref(j);
    rc = cli(stranger, &j, "note", rid, "Let me in", NULL);
    cr_expect_eq(rc, 1, "a clinic not on the referral is refused (exit %d)", rc);
    cr_expect(json_is_true(json_object_get(j, "refused")));
    cr_expect_not_null(strstr(json_string_value(json_object_get(j, "reason")), "neither the referring clinic"),
                       "%s", json_string_value(json_object_get(j, "reason")));
    json_decref(j);
    /* the receiver has the referrer's note; the stranger has nothing */
    thread_want_t w = {.clinic = rx, .rid = rid, .posts = 1, .awaiting = 0};
    cr_assert(net_wait(thread_is, &w, WAIT_MS), "the receiver sees the note");
    json_decref(w.thread);
    thread_want_t s = {.clinic = stranger, .rid = rid, .posts = 0, .awaiting = 0};
    cr_expect(thread_is(&s), "the stranger reads nothing");
    json_decref(s.thread);
    /* text limits are checked before anything is sent */
    rc = cli("harbour", &j, "note", rid, "", NULL);
    cr_expect_eq(rc, 2, "an empty note: exit %d", rc);
    json_decref(j);
}

Test(thread, a_forged_post_into_a_mailbox_is_refused_by_the_broker)
{
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, "eastgate");
    Handoff__ThreadPost p = HANDOFF__THREAD_POST__INIT;
    p.referral_id = "R-0A1B2C3D4E5F6G7H";
    p.kind = "note";
    p.text = "from scheduling, honest";
    p.by = "harbour";
    uint8_t buf[256];
    size_t len = handoff__thread_post__pack(&p, buf);
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_MAILBOX;
    m.to = "lakeside";
    m.type = "handoff.ThreadPost";
    m.payload = buf;
    m.payload_len = len;
    cr_expect_eq(hx_client_submit(c, &m, 1), HX_EREFUSED);
    cr_expect_eq(hx_client_error_code(c), HANDOFF__ERROR_CODE__ERR_FORBIDDEN, "%s", hx_client_error(c));
    hx_client_destroy(&c);
}

/* ---- the audit log: every post, taken or refused, by ids and never by its text ---------- */

static void setup_audited(void)
{
    net_init(&net);
    const char *extra[] = {"--heartbeat-ms", "200", NULL};
    net_start_broker(&net, extra);
    net_start_front(&net);
    char audit[512];
    snprintf(audit, sizeof audit, "%s/scheduling-audit.jsonl", net.dir);
    const char *sched[] = {"--audit", audit, NULL};
    net_start_scheduling(&net, "scheduling", START, NULL, sched);
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

Test(thread_audit, every_post_is_audited_without_its_text, .init = setup_audited, .fini = teardown, .timeout = 300)
{
    char rid[32], rx[64], audit[512], who[256];
    snprintf(audit, sizeof audit, "%s/scheduling-audit.jsonl", net.dir);
    booked("HB-THR-3", rid, rx);
    const char *stranger = strcmp(rx, "eastgate") != 0 ? "eastgate" : "laurier";
    json_t *j = NULL;
    cr_assert_eq(cli("harbour", &j, "note", rid, "SECRET-WORDS-1 about the patient", "--ask", NULL), 0);
    json_decref(j);
    cr_expect_eq(cli(stranger, &j, "note", rid, "SECRET-WORDS-2 from a stranger", NULL), 1);
    json_decref(j);
    snprintf(who, sizeof who, "\"principal\":\"clinic:harbour\",\"action\":\"referral.thread\",\"id\":\"%s\"", rid);
    cr_expect(file_contains(audit, who), "the post is audited");
    cr_expect(file_contains(audit, "(question); awaiting reply"));
    snprintf(who, sizeof who, "\"principal\":\"clinic:%s\",\"action\":\"referral.thread\",\"id\":\"%s\"", stranger,
             rid);
    cr_expect(file_contains(audit, who), "the refused post is audited");
    cr_expect(file_contains(audit, "refused: clinic "));
    cr_expect_not(file_contains(audit, "SECRET-WORDS"), "no post's text is in the audit log");
    static char out[4096];
    const char *verify[] = {"audit", "verify", audit, NULL};
    cr_expect_eq(net_cli(&net, "unused", out, sizeof out, verify), 0, "%s", out);
}

/* ---- attachments, the required completion summary, and sealing at rest ------------------ */

static char sealed_db[512], sealed_broker[512], sealed_audit[512];

/* A broker and scheduling that both seal with a data key, as in production; scheduling audits. */
static void setup_sealed(void)
{
    net_init(&net);
    char key[512];
    static char out[1024];
    snprintf(key, sizeof key, "%s/data.key", net.dir);
    const char *mk[] = {"datakey", key, NULL};
    cr_assert_eq(net_cli(&net, "unused", out, sizeof out, mk), 0, "handoff datakey: %s", out);
    snprintf(sealed_broker, sizeof sealed_broker, "%s/broker-data", net.dir);
    const char *extra[] = {"--heartbeat-ms", "200", "--data", sealed_broker, "--data-key", key, NULL};
    net_start_broker(&net, extra);
    net_start_front(&net);
    snprintf(sealed_db, sizeof sealed_db, "%s/sealed-scheduling.db", net.dir);
    snprintf(sealed_audit, sizeof sealed_audit, "%s/scheduling-audit.jsonl", net.dir);
    const char *sched[] = {"--data-key", key, "--audit", sealed_audit, NULL};
    net_start_scheduling(&net, "scheduling", START, sealed_db, sched);
}

TestSuite(attach, .init = setup_sealed, .fini = teardown, .timeout = 300);

/* Writes len bytes: a small PDF whose comment holds mark, padded with spaces to len. */
static void pdf_write(const char *path, const char *mark, size_t len)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "%%PDF-1.4\n%% %s\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%%%EOF\n",
                     mark);
    cr_assert((size_t)n <= len);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    fwrite(head, 1, (size_t)n, f);
    for (size_t i = (size_t)n; i < len; i++)
        fputc(' ', f);
    cr_assert_eq(fclose(f), 0);
}

/* Whether needle occurs in the file's bytes (a file that cannot be read: false). */
/* Whether text occurs in any regular file anywhere under dir (which must exist). */
static bool holds_text(const char *dir, const char *text)
{
    return net_dir_holds(dir, text, strlen(text));
}

static bool bytes_contain(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t cap = 1 << 20, n = 0, k = strlen(needle);
    char *buf = malloc(cap);
    bool found = false;
    size_t got;
    while (buf && !found && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        found = memmem(buf, n, needle, k) != NULL;
        if (n > k) {                    /* keep the tail: a match may straddle reads */
            memmove(buf, buf + n - k, k);
            n = k;
        }
    }
    free(buf);
    fclose(f);
    return found;
}


typedef struct {
    const char *clinic, *rid;
    char post_id[32];
} attached_t;

/* True when clinic's thread of rid has a post with an attachment; its id in post_id. */
static bool sees_attachment(void *arg)
{
    attached_t *a = arg;
    json_t *t = NULL;
    if (cli(a->clinic, &t, "thread", a->rid, NULL) == 0 && t) {
        json_t *posts = json_object_get(t, "posts"), *p;
        size_t i;
        json_array_foreach(posts, i, p) {
            if (json_object_get(p, "attachment"))
                snprintf(a->post_id, sizeof a->post_id, "%s", json_string_value(json_object_get(p, "post_id")));
        }
    }
    json_decref(t);
    return a->post_id[0] != '\0';
}

static bool files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    int ca = 0, cb = 0;
    while (same && (ca = fgetc(fa)) != EOF) {
        cb = fgetc(fb);
        same = ca == cb;
    }
    if (same)
        same = fgetc(fb) == EOF;
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

Test(attach, a_pdf_reaches_the_receiver_whole_and_nothing_is_readable_at_rest)
{
    char rid[32], rx[64], pdf[512], got[512];
    booked("HB-ATT-1", rid, rx);
    snprintf(pdf, sizeof pdf, "%s/gait assessment.pdf", net.dir);
    pdf_write(pdf, "SEALED-MARKER-PDF", 4096);
    json_t *j = NULL;
    int rc = cli("harbour", &j, "note", rid, "SEALED-MARKER-TEXT: gait assessment attached", "--attach", pdf, NULL);
    cr_assert_eq(rc, 0, "note --attach: exit %d (logs in %s)", rc, net.dir);
    json_t *a = json_object_get(j, "attachment");
    cr_expect_str_eq(json_string_value(json_object_get(a, "name")), "gait assessment.pdf");
    cr_expect_str_eq(json_string_value(json_object_get(a, "media_type")), "application/pdf");
    cr_expect_eq(json_integer_value(json_object_get(a, "size")), 4096);
    cr_expect_eq(strlen(json_string_value(json_object_get(a, "sha256"))), 64);
    json_decref(j);

    attached_t at = {.clinic = rx, .rid = rid};
    cr_assert(net_wait(sees_attachment, &at, WAIT_MS), "the receiver %s sees the attachment", rx);
    snprintf(got, sizeof got, "%s/saved.pdf", net.dir);
    rc = cli(rx, &j, "attachment", at.post_id, "--out", got, NULL);
    cr_assert_eq(rc, 0, "attachment --out: exit %d", rc);
    json_decref(j);
    cr_expect(files_equal(pdf, got), "the receiver saved the same bytes");
    rc = cli(rx, &j, "attachment", at.post_id, "--out", got, NULL);
    cr_expect_eq(rc, 1, "an existing file is never overwritten (exit %d)", rc);
    json_decref(j);
    rc = cli(rx, &j, "attachment", "P-00000000000000ff", NULL);
    cr_expect_eq(rc, 4, "no such post: exit %d", rc);
    json_decref(j);

    /* Nothing of the post is readable anywhere at rest: not in the clinics' own stores (sealed
     * with each store's key), where the scan does find the clear referral id (the control that
     * it finds what is there), nor in the broker's log or scheduling's database. */
    char home[512], wal[600];
    snprintf(home, sizeof home, "%s/home", net.dir);
    cr_expect(holds_text(home, rid), "the scan finds the referral id in a clinic's store");
    cr_expect_not(holds_text(home, "SEALED-MARKER-TEXT"), "the text is sealed in the clinics' stores");
    cr_expect_not(holds_text(home, "SEALED-MARKER-PDF"), "the file is sealed in the clinics' stores");
    snprintf(wal, sizeof wal, "%s-wal", sealed_db);
    const char *marks[] = {"SEALED-MARKER-TEXT", "SEALED-MARKER-PDF", "Mendes-Example"};
    /* ... because they are there, sealed: the post, its attachment and the referral, each a
     * value that begins with the seal's mark and its key's id (not merely absent) */
    static const char *const stored[] = {
        "SELECT COUNT(*) FROM thread WHERE substr(text, 1, 3) = x'007332' AND substr(attachment, 1, 3) = x'007332'",
        "SELECT COUNT(*) FROM referrals WHERE substr(case_pb, 1, 3) = x'007332'",
        "SELECT COUNT(*) FROM handled WHERE substr(outputs, 1, 3) != x'007332'"};
    const int want[] = {1, 1, 0};
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(sealed_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    for (size_t i = 0; i < 3; i++) {
        sqlite3_stmt *st;
        cr_assert_eq(sqlite3_prepare_v2(db, stored[i], -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
        cr_expect_eq(sqlite3_column_int(st, 0), want[i], "%s: %d", stored[i], sqlite3_column_int(st, 0));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    for (size_t i = 0; i < 3; i++) {
        cr_expect_not(holds_text(sealed_broker, marks[i]), "%s is not readable in the broker's log", marks[i]);
        cr_expect_not(bytes_contain(sealed_db, marks[i]), "%s is not readable in scheduling's database", marks[i]);
        cr_expect_not(bytes_contain(wal, marks[i]), "%s is not readable in scheduling's WAL", marks[i]);
    }
}

/* Sends a ThreadPost straight to scheduling from clinic's own session (what a client that
 * skips the CLI's checks can do), with an attachment of the given bytes. */
static void post_raw(const char *clinic, const char *rid, const char *name, const uint8_t *data, size_t len)
{
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, clinic);
    Handoff__Attachment a = HANDOFF__ATTACHMENT__INIT;
    a.name = (char *)name;
    a.data = (ProtobufCBinaryData){len, (uint8_t *)data};
    a.media_type = "application/pdf";       /* a claim scheduling does not take */
    Handoff__ThreadPost p = HANDOFF__THREAD_POST__INIT;
    p.referral_id = (char *)rid;
    p.kind = "note";
    p.text = "see attached";
    p.attachment = &a;
    size_t plen = handoff__thread_post__get_packed_size(&p);
    uint8_t *buf = malloc(plen);
    cr_assert_not_null(buf);
    handoff__thread_post__pack(&p, buf);
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_SERVICE;
    m.to = "scheduling";
    m.type = "handoff.ThreadPost";
    m.payload = buf;
    m.payload_len = plen;
    cr_assert_eq(hx_client_submit(c, &m, 1), 0, "%s", hx_client_error(c));
    free(buf);
    hx_client_destroy(&c);
}

static bool audit_has(void *arg)
{
    return file_contains(sealed_audit, arg);
}

static uint8_t *file_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    uint8_t *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

Test(attach, only_pdf_png_and_jpeg_up_to_256_kib_are_taken_whatever_the_name)
{
    char rid[32], rx[64], path[512];
    booked("HB-ATT-2", rid, rx);
    json_t *j = NULL;
    /* a program renamed .pdf: the CLI refuses it before sending */
    const char *exe = net_bin("services/cli/handoff");
    snprintf(path, sizeof path, "%s/scan.pdf", net.dir);
    size_t n;
    uint8_t *elf = file_bytes(exe, &n);
    FILE *f = fopen(path, "wb");
    fwrite(elf, 1, n, f);
    fclose(f);
    int rc = cli("harbour", &j, "note", rid, "scan attached", "--attach", path, NULL);
    cr_expect_eq(rc, 2, "a renamed executable is refused before it is sent (exit %d)", rc);
    json_decref(j);
    /* one byte over the limit, then exactly the limit (which goes through the broker whole) */
    snprintf(path, sizeof path, "%s/big.pdf", net.dir);
    pdf_write(path, "big", 262145);
    rc = cli("harbour", &j, "note", rid, "too big", "--attach", path, NULL);
    cr_expect_eq(rc, 2, "262,145 bytes are refused (exit %d)", rc);
    json_decref(j);
    pdf_write(path, "big", 262144);
    rc = cli("harbour", &j, "note", rid, "exactly 256 KiB", "--attach", path, NULL);
    cr_expect_eq(rc, 0, "262,144 bytes are taken (exit %d, logs in %s)", rc, net.dir);
    json_decref(j);
    attached_t at = {.clinic = rx, .rid = rid};
    cr_expect(net_wait(sees_attachment, &at, WAIT_MS), "the 256 KiB file reaches the receiver");

    /* past the CLI: scheduling itself tells the type by content and refuses, audited */
    post_raw("harbour", rid, "xray.png", elf, n);
    cr_expect(net_wait(audit_has, "refused: attachment.data: the content is application/x-", WAIT_MS),
              "scheduling refuses the executable whatever its name and claimed type");
    free(elf);
    uint8_t *big = calloc(1, 262145);
    memcpy(big, "%PDF-1.4\n", 9);
    post_raw("harbour", rid, "big.pdf", big, 262145);
    free(big);
    cr_expect(net_wait(audit_has, "refused: attachment.data: 262145 bytes, at most 262144", WAIT_MS),
              "scheduling refuses a file over the limit");
    uint8_t png[64] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                       0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0};
    post_raw("harbour", rid, "bad/name.png", png, sizeof png);
    cr_expect(net_wait(audit_has, "refused: attachment.name: byte 4 (0x2f)", WAIT_MS),
              "a name with a path separator is refused");
    post_raw("harbour", rid, "wound.png", png, sizeof png);
    cr_expect(net_wait(audit_has, "with an attachment (image/png, 64 bytes", WAIT_MS), "a PNG is taken");
}

Test(attach, a_completion_needs_its_summary)
{
    char rid[32], rx[64];
    booked("HB-ATT-3", rid, rx);
    json_t *j = NULL;
    const char *steps[] = {"accept", "start"};
    for (size_t i = 0; i < 2; i++) {
        cr_assert_eq(cli(rx, &j, steps[i], rid, NULL), 0, "%s", steps[i]);
        json_decref(j);
    }
    int rc = cli(rx, &j, "complete", rid, NULL);
    cr_expect_eq(rc, 2, "complete without --summary is refused before it is sent (exit %d)", rc);
    json_decref(j);
    /* past the CLI: scheduling refuses a completion without a summary */
    hx_client_t *c = net_session(&net, HX_ROLE_CLINIC, rx);
    Handoff__StatusChange ch = HANDOFF__STATUS_CHANGE__INIT;
    ch.referral_id = rid;
    ch.event = "complete";
    uint8_t buf[128];
    size_t len = handoff__status_change__pack(&ch, buf);
    hx_msg_t m = {0};
    hx_id_random(m.id);
    m.to_kind = HX_TO_SERVICE;
    m.to = "scheduling";
    m.type = "handoff.StatusChange";
    m.payload = buf;
    m.payload_len = len;
    cr_assert_eq(hx_client_submit(c, &m, 1), 0, "%s", hx_client_error(c));
    hx_client_destroy(&c);
    cr_expect(net_wait(audit_has, "refused: summary: required (1 to 4000 bytes)", WAIT_MS),
              "scheduling refuses a completion without a summary");
    rc = cli("harbour", &j, "status", rid, NULL);
    json_t *last = json_array_get(json_object_get(j, "history"), json_array_size(json_object_get(j, "history")) - 1);
    cr_expect_str_eq(json_string_value(json_object_get(last, "status")), "in-progress", "still in progress");
    json_decref(j);
    /* with its summary (from a file) it completes, and the referrer reads the summary */
    char path[512];
    snprintf(path, sizeof path, "%s/summary.txt", net.dir);
    FILE *f = fopen(path, "w");
    fputs("Six sessions; ankle stable, hopping pain-free. Discharged to a home program.\n", f);
    fclose(f);
    rc = cli(rx, &j, "complete", rid, "--summary", path, NULL);
    cr_expect_eq(rc, 0, "complete --summary FILE: exit %d", rc);
    json_decref(j);
    thread_want_t t = {.clinic = "harbour", .rid = rid, .posts = 1, .awaiting = 0};
    cr_assert(net_wait(thread_is, &t, WAIT_MS), "the referrer reads the summary");
    cr_expect_str_eq(post_field(t.thread, 0, "kind"), "summary");
    cr_expect_str_eq(post_field(t.thread, 0, "by"), rx);
    cr_expect_str_eq(post_field(t.thread, 0, "text"),
                     "Six sessions; ankle stable, hopping pain-free. Discharged to a home program.");
    json_decref(t.thread);
}
