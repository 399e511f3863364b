#define _GNU_SOURCE     /* qsort_r */
/* web_pages — the portal's frame, sign-in, inbox, admin, review and notices pages (web.h). Every
 * value reaches the page through hx_html (escaped); titles never carry a patient's detail. */
#include "web_pages.h"
#include "hx_inbox.h"
#include "hx_refjson.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- the frame ------------------------------------------------------------------------------ */

void web_page_begin(web_req_t *r, const char *title, uint64_t live_version)
{
    hx_html_t *b = &r->body;
    HX_HTML_F(b,
              "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
              "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
              "<title>%s · Handoff</title><link rel=\"stylesheet\" href=\"/static/app.css\">"
              "<script src=\"/static/app.js\" defer></script>",
              title);
    if (r->refresh_s)
        HX_HTML_F(b, "<meta http-equiv=\"refresh\" content=\"%u\">", r->refresh_s);
    HX_HTML_MARKUP(b, "</head><body>");
    HX_HTML_MARKUP(b, "<a class=\"skip\" href=\"#main\">Skip to content</a>");
    if (r->signed_in) {
        HX_HTML_MARKUP(b, "<header class=\"top\"><a class=\"brand\" href=\"/\">Handoff</a><nav aria-label=\"Main\"><ul>");
        if (r->hosted && !r->hosted->reviewer) {
            HX_HTML_MARKUP(b, "<li><a href=\"/\">Inbox</a></li>");
            if (r->user.role != HX_USER_REVIEWER)
                HX_HTML_MARKUP(b, "<li><a href=\"/new\">New referral</a></li><li><a href=\"/import\">Import</a></li>");
        }
        if (r->user.role == HX_USER_REVIEWER)
            HX_HTML_MARKUP(b, "<li><a href=\"/review\">Needs review</a></li>");
        if (r->user.role == HX_USER_CLINIC_ADMIN || r->user.role == HX_USER_NETWORK_ADMIN)
            HX_HTML_MARKUP(b, "<li><a href=\"/glance\">Network</a></li><li><a href=\"/admin\">Admin</a></li>");
        if (r->user.clinic[0])
            HX_HTML_MARKUP(b, "<li><a href=\"/prefs\">Notices</a></li>");
        HX_HTML_F(b, "</ul></nav><div class=\"who\"><span>%s · %s%s%s</span>", r->user.name,
                  hx_user_role_text(r->user.role), r->user.clinic[0] ? " · " : "", r->user.clinic);
        HX_HTML_F(b,
                  "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
                  "<button type=\"submit\" class=\"link\">Sign out</button></form></div></header>",
                  r->csrf);
    }
    if (live_version)
        HX_HTML_F(b, "<main id=\"main\" data-live=\"%llu\">", (unsigned long long)live_version);
    else
        HX_HTML_MARKUP(b, "<main id=\"main\">");
    HX_HTML_MARKUP(b, "<p id=\"live-note\" class=\"live-note\" role=\"status\" aria-live=\"polite\"></p>");
}

void web_page_end(web_req_t *r)
{
    HX_HTML_MARKUP(&r->body, "</main></body></html>");
}

void page_error(web_req_t *r, int status, const char *title, const char *text)
{
    r->status = status;
    hx_html_free(&r->body);
    hx_html_init(&r->body);
    web_page_begin(r, title, 0);
    HX_HTML_F(&r->body, "<h1>%s</h1><p>%s</p><p><a href=\"/\">Back to the inbox</a></p>", title, text);
    web_page_end(r);
}

void web_flash(web_req_t *r, bool ok, const char *text)
{
    if (text && *text)
        HX_HTML_F(&r->body, "<div class=\"flash %s\" role=\"%s\">%s</div>", ok ? "ok" : "bad",
                  ok ? "status" : "alert", text);
}

void web_time_text(uint64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!ms || !localtime_r(&t, &tm))
        snprintf(out, 32, "-");
    else
        strftime(out, 32, "%Y-%m-%d %H:%M", &tm);
}

/* "2026-12-01 09:30 (-05:00, America/Toronto)" from a booking's JSON */
void web_slot_text(json_t *booking, char *out, size_t cap)
{
    const char *start = json_string_value(json_object_get(booking, "start"));
    const char *off = json_string_value(json_object_get(booking, "utc_offset"));
    const char *tz = json_string_value(json_object_get(booking, "time_zone"));
    if (!start || !*start) {
        snprintf(out, cap, "-");
        return;
    }
    char day[32];
    snprintf(day, sizeof day, "%s", start);
    char *t = strchr(day, 'T');
    if (t)
        *t = ' ';
    snprintf(out, cap, "%s%s%s%s%s%s", day, off || tz ? " (" : "", off ? off : "", off && tz ? ", " : "",
             tz ? tz : "", off || tz ? ")" : "");
}

/* ---- sign-in ------------------------------------------------------------------------------- */

void page_login(web_req_t *r, const char *error)
{
    if (r->status == 200 && error)
        r->status = 401;
    hx_html_t *b = &r->body;
    web_page_begin(r, "Sign in", 0);
    HX_HTML_MARKUP(b, "<section class=\"login\"><h1>Sign in to Handoff</h1>"
                      "<p>The referral inbox of your clinic network.</p>");
    if (error)
        web_flash(r, false, error);
    HX_HTML_MARKUP(b, "<form method=\"post\" action=\"/login\" class=\"stack\">"
                      "<label for=\"user\">User name</label>"
                      "<input id=\"user\" name=\"user\" autocomplete=\"username\" required autofocus "
                      "autocapitalize=\"none\" spellcheck=\"false\">"
                      "<label for=\"password\">Password</label>"
                      "<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" "
                      "required>"
                      "<button type=\"submit\">Sign in</button></form></section>");
    web_page_end(r);
}

/* ---- the inbox ------------------------------------------------------------------------------ */

#define PAGE_ROWS 25

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Case-insensitive: does hay contain needle? */
static bool contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return true;
    return false;
}

/* Search: the patient's surname (any part of the name), the referral id or the clinic's ref. */
static bool row_matches(json_t *row, const char *q)
{
    return contains(jstr(row, "patient"), q) || contains(jstr(row, "referral_id"), q) ||
           contains(jstr(row, "ref"), q);
}

typedef struct {
    const char *key;
    bool desc;
} sort_t;

static int row_cmp(const void *a, const void *b, void *arg)
{
    const sort_t *s = arg;
    const char *sort_key = s->key;
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c;
    if (!strcmp(sort_key, "patient"))
        c = strcasecmp(jstr(x, "patient"), jstr(y, "patient"));
    else if (!strcmp(sort_key, "status"))
        c = strcmp(jstr(x, "status"), jstr(y, "status"));
    else if (!strcmp(sort_key, "referral"))
        c = strcmp(jstr(x, "referral_id"), jstr(y, "referral_id"));
    else {
        json_int_t p = json_integer_value(json_object_get(x, "updated_ms"));
        json_int_t q = json_integer_value(json_object_get(y, "updated_ms"));
        c = p < q ? -1 : p > q;
    }
    if (!c)
        c = strcmp(jstr(x, "referral_id"), jstr(y, "referral_id"));
    return s->desc ? -c : c;
}

static void sort_link(web_req_t *r, const char *folder, const char *key, const char *label, const char *cur,
                      bool desc)
{
    bool on = !strcmp(cur, key);
    HX_HTML_MARKUP(&r->body, "<th scope=\"col\"");
    if (on)
        HX_HTML_F(&r->body, " aria-sort=\"%s\"", desc ? "descending" : "ascending");
    HX_HTML_MARKUP(&r->body, "><a href=\"/?folder=");
    hx_html_query(&r->body, folder);
    HX_HTML_F(&r->body, "&amp;sort=%s&amp;dir=%s\">%s%s</a></th>", key, on && !desc ? "desc" : "asc", label,
              on ? (desc ? " ▼" : " ▲") : "");
}

static void inbox_table(web_req_t *r, json_t **v, size_t n, const char *folder, const char *sort, bool desc)
{
    hx_html_t *b = &r->body;
    if (n == 0) {
        HX_HTML_MARKUP(b, "<p class=\"empty\">Nothing here.</p>");
        return;
    }
    HX_HTML_MARKUP(b, "<div class=\"scroll\"><table class=\"inbox\"><caption class=\"vh\">Referrals</caption><thead><tr>");
    sort_link(r, folder, "referral", "Referral", sort, desc);
    HX_HTML_MARKUP(b, "<th scope=\"col\">Ref</th>");
    sort_link(r, folder, "patient", "Patient", sort, desc);
    HX_HTML_MARKUP(b, "<th scope=\"col\">Born</th><th scope=\"col\">With</th><th scope=\"col\">Discipline</th>"
                      "<th scope=\"col\">Therapist</th><th scope=\"col\">Slot</th>");
    sort_link(r, folder, "status", "Status", sort, desc);
    sort_link(r, folder, "updated", "Updated", sort, desc);
    HX_HTML_MARKUP(b, "</tr></thead><tbody>");
    for (size_t i = 0; i < n; i++) {
        json_t *row = v[i], *bk = json_array_get(json_object_get(row, "bookings"), 0);
        bool received = !strcmp(jstr(row, "side"), "received");
        char when[32], slot[96], with[96];
        web_time_text((uint64_t)json_integer_value(json_object_get(row, "updated_ms")), when);
        web_slot_text(bk, slot, sizeof slot);
        const char *other = jstr(row, "other_clinic");
        snprintf(with, sizeof with, "%s %s", received ? "from" : "to", *other ? other : "-");
        HX_HTML_MARKUP(b, "<tr><td><a href=\"/referral?id=");
        hx_html_query(b, jstr(row, "referral_id"));
        HX_HTML_F(b, "\">%s</a></td><td data-label=\"Ref\">%s</td><td data-label=\"Patient\">%s</td>"
                     "<td data-label=\"Born\">%s</td><td data-label=\"With\">%s</td>"
                     "<td data-label=\"Discipline\">%s</td><td data-label=\"Therapist\">%s</td>"
                     "<td data-label=\"Slot\">%s</td>",
                  jstr(row, "referral_id"), jstr(row, "ref"), *jstr(row, "patient") ? jstr(row, "patient") : "-",
                  *jstr(row, "born") ? jstr(row, "born") : "-", with, bk ? jstr(bk, "discipline") : "-",
                  bk ? jstr(bk, "therapist_name") : "-", slot);
        HX_HTML_F(b, "<td data-label=\"Status\"><span class=\"st st-%s\">%s</span>", jstr(row, "folder"),
                  jstr(row, "status"));
        if (json_is_true(json_object_get(row, "needs_reply")))     /* markup: never through %s (escaped) */
            HX_HTML_MARKUP(b, " <span class=\"tag\">reply</span>");
        HX_HTML_F(b, "</td><td data-label=\"Updated\">%s</td></tr>", when);
    }
    HX_HTML_MARKUP(b, "</tbody></table></div>");
}

void page_inbox(web_req_t *r)
{
    web_hosted_t *h = r->hosted;
    if (!h || h->reviewer) {
        if (r->user.role == HX_USER_REVIEWER)
            web_redirect(r, "/review");
        else if (r->user.role == HX_USER_NETWORK_ADMIN)
            web_redirect(r, "/admin");
        else
            page_error(r, 503, "Clinic not hosted", "This portal does not host your clinic; ask your administrator.");
        return;
    }
    bool search = !strcmp(r->method, "POST");
    const char *q = search ? web_field(r, "q") : NULL;
    if (q && (strlen(q) > 80 || !*q))
        q = NULL;
    const char *folder = web_arg(r, "folder");
    hx_folder_t f = folder ? hx_folder_from_key(folder) : HX_FOLDER_NEW;
    if (f == HX_FOLDER_COUNT)
        f = HX_FOLDER_NEW;
    folder = hx_folder_key(f);
    const char *sort = web_arg(r, "sort");
    if (!sort || (strcmp(sort, "updated") && strcmp(sort, "patient") && strcmp(sort, "status") &&
                  strcmp(sort, "referral")))
        sort = "updated";
    const char *dir = web_arg(r, "dir");
    bool desc = dir ? strcmp(dir, "asc") != 0 : !strcmp(sort, "updated");
    const char *pg = web_arg(r, "page");
    long page = pg ? strtol(pg, NULL, 10) : 1;
    if (page < 1 || page > 100000)
        page = 1;

    hx_inbox_t *in = NULL;
    size_t counts[HX_FOLDER_COUNT] = {0};
    pthread_mutex_lock(&h->mu);
    int rc = hx_inbox_load(h->clinic, &in);
    uint64_t version = h->version;
    char sync_error[256];
    snprintf(sync_error, sizeof sync_error, "%s", h->last_error);
    pthread_mutex_unlock(&h->mu);
    if (rc != 0) {
        page_error(r, 500, "Inbox unavailable", "The clinic's store could not be read.");
        return;
    }
    for (int i = 0; i < HX_FOLDER_COUNT; i++)
        counts[i] = hx_inbox_folder_count(in, (hx_folder_t)i);
    json_t *rows = hx_inbox_rows_json(in);
    hx_inbox_destroy(&in);
    size_t total = json_array_size(rows), n = 0;
    json_t **v = malloc((total ? total : 1) * sizeof *v);
    for (size_t i = 0; v && i < total; i++) {
        json_t *row = json_array_get(rows, i);
        if (q ? row_matches(row, q) : !strcmp(jstr(row, "folder"), folder))
            v[n++] = row;
    }
    sort_t how = {.key = sort, .desc = desc};
    if (v)
        qsort_r(v, n, sizeof *v, row_cmp, &how);

    hx_html_t *b = &r->body;
    web_page_begin(r, q ? "Search" : hx_folder_title(f), q ? 0 : version);   /* a search result is not redrawn */
    if (sync_error[0])
        web_flash(r, false, "The broker cannot be reached just now: this inbox shows what had arrived before.");
    HX_HTML_F(b, "<div class=\"inbox-head\"><h1>%s</h1>", q ? "Search results" : hx_folder_title(f));
    HX_HTML_F(b,
              "<form method=\"post\" action=\"/\" class=\"search\" role=\"search\">"
              "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
              "<label for=\"q\">Search by surname, referral id or ref</label>"
              "<input id=\"q\" name=\"q\" maxlength=\"80\" value=\"%s\"><button type=\"submit\">Search</button>"
              "</form></div>",
              r->csrf, q ? q : "");
    HX_HTML_MARKUP(b, "<nav aria-label=\"Folders\" class=\"folders\"><ul>");
    for (int i = 0; i < HX_FOLDER_COUNT; i++) {
        HX_HTML_F(b, "<li><a href=\"/?folder=%s\"%s>%s <span class=\"count\">%zu</span></a></li>",
                  hx_folder_key((hx_folder_t)i), !q && (int)f == i ? " aria-current=\"page\"" : "",
                  hx_folder_title((hx_folder_t)i), counts[i]);
    }
    HX_HTML_MARKUP(b, "</ul></nav>");
    size_t first = (size_t)(page - 1) * PAGE_ROWS;
    if (first > n)
        first = 0, page = 1;
    size_t shown = n - first < PAGE_ROWS ? n - first : PAGE_ROWS;
    inbox_table(r, v ? v + first : NULL, v ? shown : 0, folder, sort, desc);
    if (n > PAGE_ROWS && !q) {
        long pages = (long)((n + PAGE_ROWS - 1) / PAGE_ROWS);
        HX_HTML_F(b, "<nav aria-label=\"Pages\" class=\"pager\"><span>Page %ld of %ld</span>", page, pages);
        if (page > 1)
            HX_HTML_F(b, " <a href=\"/?folder=%s&amp;sort=%s&amp;dir=%s&amp;page=%ld\">Previous</a>", folder, sort,
                      desc ? "desc" : "asc", page - 1);
        if (page < pages)
            HX_HTML_F(b, " <a href=\"/?folder=%s&amp;sort=%s&amp;dir=%s&amp;page=%ld\">Next</a>", folder, sort,
                      desc ? "desc" : "asc", page + 1);
        HX_HTML_MARKUP(b, "</nav>");
    }
    web_page_end(r);
    free(v);
    json_decref(rows);
    web_audit(r, q ? "search" : "inbox", "", folder);
}

/* ---- admin ------------------------------------------------------------------------------------ */

static void user_row(void *ud, const hx_user_t *u)
{
    web_req_t *r = ud;
    HX_HTML_F(&r->body, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>", u->name,
              u->clinic[0] ? u->clinic : "(network)", hx_user_role_text(u->role), u->disabled ? "disabled" : "active");
}

static void audit_row(void *ud, const hx_audit_t *e)
{
    web_req_t *r = ud;
    char when[32];
    web_time_text(e->at_ms, when);
    HX_HTML_F(&r->body, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>", when, e->user,
              e->action, e->referral_id, e->detail, e->address);
}

void page_admin(web_req_t *r)
{
    bool network = r->user.role == HX_USER_NETWORK_ADMIN;
    if (!network && r->user.role != HX_USER_CLINIC_ADMIN) {
        r->web->denied++;
        web_audit(r, "denied", "", "admin page");
        page_error(r, 403, "Not allowed", "The admin page is for clinic and network administrators.");
        return;
    }
    const char *clinic = network ? NULL : r->user.clinic;
    hx_html_t *b = &r->body;
    web_page_begin(r, "Admin", 0);
    HX_HTML_F(b, "<h1>Admin%s%s</h1>", clinic ? ": " : "", clinic ? clinic : "");
    HX_HTML_MARKUP(b, "<h2>Mailboxes</h2><table><thead><tr><th scope=\"col\">Clinic</th><th scope=\"col\">Public key"
                      " (fingerprint)</th><th scope=\"col\">Broker</th></tr></thead><tbody>");
    for (size_t i = 0; i < r->web->n_hosted; i++) {
        web_hosted_t *h = &r->web->hosted[i];
        if (clinic && (h->reviewer || strcmp(h->id, clinic)))
            continue;
        pthread_mutex_lock(&h->mu);
        char state[300];
        snprintf(state, sizeof state, "%s", h->last_error[0] ? h->last_error : h->connected ? "in sync" : "connecting");
        pthread_mutex_unlock(&h->mu);
        HX_HTML_F(b, "<tr><td>%s%s</td><td><code>%s</code></td><td>%s</td></tr>", h->id,
                  h->reviewer ? " (reviewer)" : "", h->public_key[0] ? h->public_key : "(no CURVE)", state);
    }
    HX_HTML_MARKUP(b, "</tbody></table><h2>Users</h2><p>Add, disable and reset users with "
                      "<code>handoff-web user</code> on the portal's host.</p><table><thead><tr>"
                      "<th scope=\"col\">User</th><th scope=\"col\">Clinic</th><th scope=\"col\">Role</th>"
                      "<th scope=\"col\">State</th></tr></thead><tbody>");
    pthread_mutex_lock(&r->web->lock);
    hx_user_each(r->web->accounts, clinic, user_row, r);
    HX_HTML_MARKUP(b, "</tbody></table><h2>Recent activity</h2><div class=\"scroll\"><table><thead><tr>"
                      "<th scope=\"col\">When</th><th scope=\"col\">User</th><th scope=\"col\">Action</th>"
                      "<th scope=\"col\">Referral</th><th scope=\"col\">Detail</th><th scope=\"col\">Address</th>"
                      "</tr></thead><tbody>");
    hx_audit_each(r->web->accounts, clinic, NULL, 50, audit_row, r);
    pthread_mutex_unlock(&r->web->lock);
    HX_HTML_MARKUP(b, "</tbody></table></div>");
    web_page_end(r);
    web_audit(r, "admin", "", "");
}

/* ---- the user's notices ---------------------------------------------------------------------- */

void page_prefs(web_req_t *r)
{
    web_t *w = r->web;
    hx_html_t *b = &r->body;
    char email[HX_EMAIL_MAX + 1] = "", why[256] = "", text[64];
    unsigned bits = 0;
    const char *error = NULL;
    if (!strcmp(r->method, "POST")) {
        /* the address as typed, without the blanks around it */
        const char *e = web_field(r, "email");
        e = e ? e + strspn(e, " \t") : "";
        size_t n = strlen(e);
        while (n > 0 && (e[n - 1] == ' ' || e[n - 1] == '\t'))
            n--;
        static const struct {
            const char *field;
            unsigned bit;
        } boxes[] = {{"n_new", HX_NOTIFY_HANDOFF}, {"n_question", HX_NOTIFY_QUESTION}, {"n_status", HX_NOTIFY_STATUS}};
        for (size_t i = 0; i < sizeof boxes / sizeof *boxes; i++)
            if (web_field(r, boxes[i].field))
                bits |= boxes[i].bit;
        int rc = -1;
        if (n <= HX_EMAIL_MAX) {
            memcpy(email, e, n);
            email[n] = '\0';
            pthread_mutex_lock(&w->lock);
            rc = hx_user_set_notify(w->accounts, r->user.name, email, (int)bits, why, sizeof why);
            pthread_mutex_unlock(&w->lock);
        }
        if (rc == 0) {
            hx_notify_text(email[0] ? bits : 0, text, sizeof text);
            web_audit(r, "notices", "", text);
            web_redirect(r, "/prefs?saved=1");
            return;
        }
        r->status = 400;
        error = "That is not an e-mail address notices can be sent to: one @ and a domain, no spaces, "
                "at most 254 characters. Nothing was changed.";
        if (n > HX_EMAIL_MAX)
            email[0] = '\0';
    } else {
        pthread_mutex_lock(&w->lock);
        int rc = hx_user_notify(w->accounts, r->user.name, email, &bits);
        pthread_mutex_unlock(&w->lock);
        if (rc != 0) {
            page_error(r, 500, "Notices unavailable", "The accounts store could not be read; try again.");
            return;
        }
    }
    web_page_begin(r, "Notices", 0);
    HX_HTML_MARKUP(b, "<h1>E-mail notices</h1>");
    if (error)
        web_flash(r, false, error);
    else if (web_arg(r, "saved"))
        web_flash(r, true, "Saved.");
    if (!r->user.clinic[0])
        HX_HTML_MARKUP(b, "<p>Notices are about a clinic's referrals; your role belongs to the network, so none are "
                          "sent to you.</p>");
    if (!w->notify)
        HX_HTML_MARKUP(b, "<p>This portal sends no e-mail at present (no mail server is set up): your choices are "
                          "kept for when it does.</p>");
    HX_HTML_F(b,
              "<form method=\"post\" action=\"/prefs\" class=\"stack\">"
              "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
              "<label for=\"email\">E-mail address</label>"
              "<input id=\"email\" name=\"email\" type=\"email\" maxlength=\"254\" autocomplete=\"email\" "
              "spellcheck=\"false\" value=\"%s\" aria-describedby=\"email-help\">"
              "<p id=\"email-help\">Leave it empty for no e-mail. A notice names your clinic, the kind of event "
              "and the referral's id, with a link to it here: never a patient's details.</p>"
              "<fieldset><legend>Send me a notice when</legend>",
              r->csrf, email);
    HX_HTML_MARKUP(b, "<div><label><input type=\"checkbox\" name=\"n_new\" value=\"1\"");
    if (bits & HX_NOTIFY_HANDOFF)
        HX_HTML_MARKUP(b, " checked");
    HX_HTML_MARKUP(b, "> a new handoff arrives for my clinic</label></div>"
                      "<div><label><input type=\"checkbox\" name=\"n_question\" value=\"1\"");
    if (bits & HX_NOTIFY_QUESTION)
        HX_HTML_MARKUP(b, " checked");
    HX_HTML_MARKUP(b, "> a question awaits my clinic's reply</label></div>"
                      "<div><label><input type=\"checkbox\" name=\"n_status\" value=\"1\"");
    if (bits & HX_NOTIFY_STATUS)
        HX_HTML_MARKUP(b, " checked");
    HX_HTML_MARKUP(b, "> a referral's status changes</label></div></fieldset>"
                      "<button type=\"submit\">Save</button></form>");
    web_page_end(r);
}
