/* web_glance — the network at a glance, for clinic and network administrators: scheduling's
 * NetworkStats (docs/PROTOCOL.md, "Network statistics"; asked with hx_clinic_stats from the
 * user's clinic's session, or for a network admin from the reviewer's or any hosted clinic's)
 * drawn as inline SVG on the server. No script and no inline style (the CSP admits neither):
 * the SVG is markup literals with numbers (%u) and escaped labels (%s) through hx_html, its
 * colours presentation attributes, its type and lines classes of the stylesheet. Every chart
 * has a title and a description (role="img") and the same figures as a data table; the page
 * carries aggregates only, never a referral id or anything of a patient. */
#include "web_pages.h"
#include "hx_refjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PHYSIO HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY
#define MASSAGE HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY
#define WEEKS_MAX 52

/* Colours on white, each at least 4.5:1 (text) and 3:1 (graphics, WCAG 1.4.11) against white
 * and told apart by more than hue in the tables. */
#define C_PHYSIO "#0b5cad"
#define C_MASSAGE "#b34700"
#define C_NONE "#5f6b76"

/* ---- words and numbers -------------------------------------------------------------------- */

static const char *disc_name(Handoff__Discipline d)
{
    return d == PHYSIO ? "Physiotherapy" : d == MASSAGE ? "Massage therapy" : "Not placed";
}

static const char *disc_short(Handoff__Discipline d)
{
    return d == PHYSIO ? "physio" : d == MASSAGE ? "massage" : "not placed";
}

/* A duration for people: "45 min", "5.5 h", "2.3 d". */
static void duration_text(uint32_t min, char *out, size_t cap)
{
    if (min < 60)
        snprintf(out, cap, "%u min", min);
    else if (min < 24 * 60)
        snprintf(out, cap, "%u.%u h", min / 60, min % 60 * 10 / 60);
    else
        snprintf(out, cap, "%u.%u d", min / 1440, min % 1440 * 10 / 1440);
}

/* num / den as a percentage with one decimal ("12.5%"), "–" when den is 0. */
static void rate_text(uint32_t num, uint32_t den, char *out, size_t cap)
{
    if (!den) {
        snprintf(out, cap, "–");
        return;
    }
    uint64_t pm = ((uint64_t)num * 1000 + den / 2) / den;     /* per mille, rounded */
    snprintf(out, cap, "%llu.%llu%%", (unsigned long long)(pm / 10), (unsigned long long)(pm % 10));
}

/* YYYY-MM-DD (UTC) of an instant in ms. */
static void day_text(uint64_t ms, char out[16])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        snprintf(out, 16, "-");
    else
        strftime(out, 16, "%Y-%m-%d", &tm);
}

/* The smallest 1, 2 or 5 times a power of ten that is at least v (at least 1). */
static uint32_t nice_max(uint64_t v)
{
    uint64_t p = 1;
    for (;;) {
        if (v <= p)
            return (uint32_t)p;
        if (v <= 2 * p)
            return (uint32_t)(2 * p);
        if (v <= 5 * p)
            return (uint32_t)(5 * p);
        if (p > UINT32_MAX / 10)
            return UINT32_MAX;
        p *= 10;
    }
}

/* A clinic's id as a chart's label: at most 16 characters ("…" for the rest; the tables have
 * it whole). Ids are [A-Za-z0-9._-]: one byte each. */
static void chart_id(const char *id, char *out, size_t cap)
{
    if (strlen(id) <= 16)
        snprintf(out, cap, "%s", id);
    else
        snprintf(out, cap, "%.15s…", id);
}

/* How a clinic reads in a table: its name, else its id. */
static const char *clinic_label(const char *id, const char *name)
{
    return name && name[0] ? name : id;
}

/* ---- the answer ---------------------------------------------------------------------------- */

/* The session that asks: the user's clinic; a network admin has none, so the reviewer's
 * mailbox when the portal hosts one (a network-level principal), else the first clinic. */
static web_hosted_t *asking_session(web_req_t *r)
{
    if (r->hosted)
        return r->hosted;
    web_hosted_t *h = web_hosted_find(r->web, NULL, true);
    return h ? h : r->web->n_hosted ? &r->web->hosted[0] : NULL;
}

/* The weeks asked for in the URL (?weeks=N, 1..52), else 12. */
static uint32_t weeks_arg(web_req_t *r)
{
    const char *w = web_arg(r, "weeks");
    char *end = NULL;
    long n = w && *w ? strtol(w, &end, 10) : 0;
    return end && !*end && n >= 1 && n <= WEEKS_MAX ? (uint32_t)n : 12;
}

/* ---- the weekly chart ----------------------------------------------------------------------- */

typedef struct {
    const char *week;               /* "2026-W48" */
    uint32_t c[3];                  /* not placed, physiotherapy, massage therapy */
} week_row_t;

/* The weeks of s in order (at most WEEKS_MAX): n written. */
static size_t weeks_of(const Handoff__NetworkStats *s, week_row_t *w)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_referrals; i++) {
        const Handoff__WeekCount *e = s->referrals[i];
        if (!n || strcmp(w[n - 1].week, e->week) != 0) {
            if (n == WEEKS_MAX)
                break;
            memset(&w[n], 0, sizeof w[n]);
            w[n++].week = e->week;
        }
        if (e->discipline <= MASSAGE)
            w[n - 1].c[e->discipline] += e->count;
    }
    return n;
}

static const char *week_short(const char *week)
{
    const char *p = strchr(week, 'W');
    return p ? p : week;
}

static void chart_weeks(hx_html_t *b, const week_row_t *w, size_t n)
{
    enum { W = 560, H = 300, LEFT = 44, RIGHT = 10, TOP = 14, BOTTOM = 58 };
    const unsigned pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
    uint32_t total[3] = {0, 0, 0}, most = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t t = w[i].c[0] + w[i].c[1] + w[i].c[2];
        most = t > most ? t : most;
        for (int d = 0; d < 3; d++)
            total[d] += w[i].c[d];
    }
    uint32_t top = nice_max(most), step = top <= 5 ? 1 : top / 5;
    HX_HTML_MARKUP(b, "<figure class=\"chart-box\"><figcaption id=\"weeks-title\">Referrals per week, by "
                      "discipline</figcaption>");
    HX_HTML_F(b, "<svg class=\"chart\" viewBox=\"0 0 %u %u\" role=\"img\" aria-labelledby=\"weeks-title weeks-desc\">",
              (unsigned)W, (unsigned)H);
    HX_HTML_F(b, "<desc id=\"weeks-desc\">Stacked bars, one per ISO week from %s to %s: %u for physiotherapy, %u for "
                 "massage therapy, %u not placed. The table below has every week.</desc>",
              n ? w[0].week : "-", n ? w[n - 1].week : "-", total[1], total[2], total[0]);
    for (uint32_t v = 0; v <= top; v += step) {
        unsigned y = TOP + ph - (unsigned)((uint64_t)v * ph / top);
        HX_HTML_F(b, "<line class=\"gl%s\" x1=\"%u\" x2=\"%u\" y1=\"%u\" y2=\"%u\"/>", v ? "" : " base",
                  (unsigned)LEFT, (unsigned)(W - RIGHT), y, y);
        HX_HTML_F(b, "<text class=\"tick\" x=\"%u\" y=\"%u\" text-anchor=\"end\">%u</text>", (unsigned)(LEFT - 6),
                  y + 4, v);
    }
    unsigned slot = n ? pw / (unsigned)n : pw, bar = slot * 7 / 10 ? slot * 7 / 10 : 1;
    /* a label every `every` weeks; every other one is minor, left out on small screens */
    size_t every = n <= 13 ? 1 : n <= 26 ? 2 : 4;
    static const char *const fill[3] = {C_NONE, C_PHYSIO, C_MASSAGE};
    static const int order[3] = {PHYSIO, MASSAGE, 0};        /* bottom to top */
    for (size_t i = 0; i < n; i++) {
        unsigned x = LEFT + (unsigned)i * slot + (slot - bar) / 2, base = TOP + ph;
        for (int k = 0; k < 3; k++) {
            int d = order[k];
            if (!w[i].c[d])
                continue;
            unsigned h = (unsigned)((uint64_t)w[i].c[d] * ph / top);
            h = h ? h : 1;
            HX_HTML_F(b, "<rect x=\"%u\" y=\"%u\" width=\"%u\" height=\"%u\" fill=\"%s\" class=\"seg\"><title>%s, %s: "
                         "%u</title></rect>",
                      x, base - h, bar, h, fill[d], w[i].week, disc_name((Handoff__Discipline)d), w[i].c[d]);
            base -= h;
        }
        if ((n - 1 - i) % every == 0)       /* counted back from this week, which always has one */
            HX_HTML_F(b, "<text class=\"tick%s\" x=\"%u\" y=\"%u\" text-anchor=\"middle\">%s</text>",
                      (n - 1 - i) / every % 2 ? " minor" : "", x + bar / 2, (unsigned)(TOP + ph + 24),
                      week_short(w[i].week));
    }
    HX_HTML_F(b, "<text class=\"axis\" x=\"%u\" y=\"%u\" text-anchor=\"middle\">ISO week (UTC)</text>",
              (unsigned)(LEFT + pw / 2), (unsigned)(H - 6));
    HX_HTML_MARKUP(b, "</svg><ul class=\"legend\">"
                      "<li><svg class=\"key\" viewBox=\"0 0 12 12\" aria-hidden=\"true\" focusable=\"false\">"
                      "<rect width=\"12\" height=\"12\" fill=\"" C_PHYSIO "\"/></svg>Physiotherapy</li>"
                      "<li><svg class=\"key\" viewBox=\"0 0 12 12\" aria-hidden=\"true\" focusable=\"false\">"
                      "<rect width=\"12\" height=\"12\" fill=\"" C_MASSAGE "\"/></svg>Massage therapy</li>"
                      "<li><svg class=\"key\" viewBox=\"0 0 12 12\" aria-hidden=\"true\" focusable=\"false\">"
                      "<rect width=\"12\" height=\"12\" fill=\"" C_NONE "\"/></svg>Not placed (under review, or "
                      "to a physician)</li></ul>");
    if (!total[0] && !total[1] && !total[2])
        HX_HTML_MARKUP(b, "<p class=\"empty\">No referrals reached scheduling in this window.</p>");
    HX_HTML_MARKUP(b, "<details class=\"data\"><summary>The numbers</summary><div class=\"scroll\">"
                      "<table id=\"referrals-table\"><caption>Referrals scheduling received per ISO week (UTC), by "
                      "discipline of their plan</caption><thead><tr><th scope=\"col\">Week</th>"
                      "<th scope=\"col\">Physiotherapy</th><th scope=\"col\">Massage therapy</th>"
                      "<th scope=\"col\">Not placed</th><th scope=\"col\">Total</th></tr></thead><tbody>");
    for (size_t i = 0; i < n; i++)
        HX_HTML_F(b, "<tr><th scope=\"row\">%s</th><td>%u</td><td>%u</td><td>%u</td><td>%u</td></tr>", w[i].week,
                  w[i].c[1], w[i].c[2], w[i].c[0], w[i].c[0] + w[i].c[1] + w[i].c[2]);
    HX_HTML_F(b, "</tbody><tfoot><tr><th scope=\"row\">All weeks</th><td>%u</td><td>%u</td><td>%u</td><td>%u</td>"
                 "</tr></tfoot></table></div></details></figure>",
              total[1], total[2], total[0], total[0] + total[1] + total[2]);
}

/* ---- times: median and p90, per clinic and discipline ---------------------------------------- */

typedef struct {
    const char *id, *title, *what, *solid, *light;
    bool start;                     /* to the first session, else to booking */
} times_chart_t;

/* A horizontal chart's rows: each a line of text (the clinic, the discipline, the values) over
 * its bars, so that the bars may use the whole width and the text stays readable when the
 * chart is drawn narrow (web_static.c makes the text larger on small screens). */
enum { HB_W = 560, HB_X = 8, HB_PLOT = 530, HB_TOP = 6, HB_AXIS = 40 };

/* The vertical grid of a horizontal chart: a line and a label per tick (text is "%u" then unit). */
static void hgrid(hx_html_t *b, uint32_t top, uint32_t step, const char *unit, unsigned y_end)
{
    for (uint32_t v = 0; v <= top; v += step) {
        unsigned x = HB_X + (unsigned)((uint64_t)v * HB_PLOT / top);
        HX_HTML_F(b, "<line class=\"gl%s\" x1=\"%u\" x2=\"%u\" y1=\"%u\" y2=\"%u\"/>", v ? "" : " base", x, x,
                  (unsigned)HB_TOP, y_end);
        HX_HTML_F(b, "<text class=\"tick\" x=\"%u\" y=\"%u\" text-anchor=\"%s\">%u%s</text>", x, y_end + 24,
                  v == 0 ? "start" : v + step > top ? "end" : "middle", v, unit);
    }
}

static void chart_times(hx_html_t *b, const Handoff__NetworkStats *s, const times_chart_t *t)
{
    enum { ROW = 56 };
    size_t rows = 0;
    uint32_t most = 0;
    for (size_t i = 0; i < s->n_clinics; i++) {
        const Handoff__ClinicStats *c = s->clinics[i];
        uint32_t n = t->start ? c->started : c->booked, p90 = t->start ? c->to_start_p90_min : c->to_booking_p90_min;
        rows += n > 0;
        most = n && p90 > most ? p90 : most;
    }
    HX_HTML_F(b, "<figure class=\"chart-box\"><figcaption id=\"%s-title\">%s</figcaption>", t->id, t->title);
    if (!rows) {
        HX_HTML_F(b, "<p class=\"empty\">Nothing %s in this window yet.</p></figure>", t->what);
        return;
    }
    /* hours while the longest p90 is under two days, else days */
    uint32_t unit = most < 2 * 1440 ? 60 : 1440, top = nice_max((most + unit - 1) / unit);
    uint32_t step = top <= 5 ? 1 : top / 5;
    unsigned y_end = HB_TOP + (unsigned)rows * ROW, H = y_end + HB_AXIS;
    HX_HTML_F(b, "<svg class=\"chart\" viewBox=\"0 0 %u %u\" role=\"img\" aria-labelledby=\"%s-title %s-desc\">",
              (unsigned)HB_W, H, t->id, t->id);
    HX_HTML_F(b, "<desc id=\"%s-desc\">For each clinic and discipline, a dark bar to the median and an outlined bar "
                 "to the 90th percentile of the time from scheduling's receipt of a referral to %s. The table below "
                 "has the figures.</desc>",
              t->id, t->start ? "the first session" : "its booking");
    hgrid(b, top, step, unit == 60 ? " h" : " d", y_end);
    uint64_t scale = (uint64_t)top * unit;
    size_t k = 0;
    for (size_t i = 0; i < s->n_clinics; i++) {
        const Handoff__ClinicStats *c = s->clinics[i];
        uint32_t n = t->start ? c->started : c->booked;
        if (!n)
            continue;
        uint32_t med = t->start ? c->to_start_median_min : c->to_booking_median_min;
        uint32_t p90 = t->start ? c->to_start_p90_min : c->to_booking_p90_min;
        unsigned y = HB_TOP + (unsigned)k++ * ROW;
        unsigned wp = (unsigned)((uint64_t)p90 * HB_PLOT / scale), wm = (unsigned)((uint64_t)med * HB_PLOT / scale);
        char tm[24], tp[24];
        duration_text(med, tm, sizeof tm);
        duration_text(p90, tp, sizeof tp);
        char id[24];
        chart_id(c->clinic_id, id, sizeof id);
        HX_HTML_F(b, "<text class=\"label\" x=\"%u\" y=\"%u\">%s · %s</text>", (unsigned)HB_X + 4, y + 22, id,
                  disc_short(c->discipline));
        HX_HTML_F(b, "<text class=\"value\" x=\"%u\" y=\"%u\" text-anchor=\"end\">median %s · p90 %s<tspan "
                     "class=\"minor\"> (n=%u)</tspan></text>",
                  (unsigned)(HB_X + HB_PLOT), y + 22, tm, tp, n);
        HX_HTML_F(b, "<rect x=\"%u\" y=\"%u\" width=\"%u\" height=\"18\" fill=\"%s\" stroke=\"%s\" "
                     "stroke-width=\"1.5\"><title>%s, %s: 90th percentile %s (n = %u)</title></rect>",
                  (unsigned)HB_X, y + 30, wp ? wp : 1, t->light, t->solid, c->clinic_id, disc_short(c->discipline),
                  tp, n);
        if (wm)
            HX_HTML_F(b, "<rect x=\"%u\" y=\"%u\" width=\"%u\" height=\"10\" fill=\"%s\"><title>%s, %s: median %s"
                         "</title></rect>",
                      (unsigned)HB_X, y + 34, wm, t->solid, c->clinic_id, disc_short(c->discipline), tm);
    }
    HX_HTML_F(b, "</svg><ul class=\"legend\"><li><svg class=\"key\" viewBox=\"0 0 12 12\" aria-hidden=\"true\" "
                 "focusable=\"false\"><rect width=\"12\" height=\"12\" fill=\"%s\"/></svg>median</li>"
                 "<li><svg class=\"key\" viewBox=\"0 0 12 12\" aria-hidden=\"true\" focusable=\"false\"><rect x=\"1\" "
                 "y=\"1\" width=\"10\" height=\"10\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.5\"/></svg>90th "
                 "percentile</li></ul></figure>",
              t->solid, t->light, t->solid);
}

static void table_times(hx_html_t *b, const Handoff__NetworkStats *s)
{
    HX_HTML_MARKUP(b, "<details class=\"data\"><summary>The numbers</summary><div class=\"scroll\">"
                      "<table id=\"times-table\"><caption>Time from scheduling's receipt of a referral, per receiving "
                      "clinic and discipline (nearest-rank median and 90th percentile)</caption><thead><tr>"
                      "<th scope=\"col\">Clinic</th><th scope=\"col\">Discipline</th><th scope=\"col\">Booked</th>"
                      "<th scope=\"col\">To booking, median</th><th scope=\"col\">To booking, p90</th>"
                      "<th scope=\"col\">First sessions</th><th scope=\"col\">To first session, median</th>"
                      "<th scope=\"col\">To first session, p90</th></tr></thead><tbody>");
    for (size_t i = 0; i < s->n_clinics; i++) {
        const Handoff__ClinicStats *c = s->clinics[i];
        if (!c->booked)
            continue;
        char bm[24], bp[24], sm[24] = "–", sp[24] = "–";
        duration_text(c->to_booking_median_min, bm, sizeof bm);
        duration_text(c->to_booking_p90_min, bp, sizeof bp);
        if (c->started) {
            duration_text(c->to_start_median_min, sm, sizeof sm);
            duration_text(c->to_start_p90_min, sp, sizeof sp);
        }
        HX_HTML_F(b, "<tr><th scope=\"row\">%s</th><td>%s</td><td>%u</td><td>%s</td><td>%s</td><td>%u</td>"
                     "<td>%s</td><td>%s</td></tr>",
                  clinic_label(c->clinic_id, c->clinic_name), disc_name(c->discipline), c->booked, bm, bp, c->started,
                  sm, sp);
    }
    HX_HTML_MARKUP(b, "</tbody></table></div></details>");
}

/* ---- decline and on-hold rates ------------------------------------------------------------------ */

static void chart_rates(hx_html_t *b, const Handoff__NetworkStats *s)
{
    enum { ROW = 62 };
    size_t rows = 0;
    for (size_t i = 0; i < s->n_clinics; i++)
        rows += s->clinics[i]->booked + s->clinics[i]->declined + s->clinics[i]->referred > 0;
    HX_HTML_MARKUP(b, "<figure class=\"chart-box\"><figcaption id=\"rates-title\">Decline rate (as the receiving "
                      "clinic) and on-hold rate (as the referring clinic)</figcaption>");
    if (!rows) {
        HX_HTML_MARKUP(b, "<p class=\"empty\">Nothing to count in this window yet.</p></figure>");
        return;
    }
    unsigned y_end = HB_TOP + (unsigned)rows * ROW, H = y_end + HB_AXIS;
    HX_HTML_F(b, "<svg class=\"chart\" viewBox=\"0 0 %u %u\" role=\"img\" aria-labelledby=\"rates-title "
                 "rates-desc\"><desc id=\"rates-desc\">For each clinic and discipline, the share of handoffs booked "
                 "with it that it declined, and the share of the referrals it sent that went on hold for want of a "
                 "slot, from 0 to 100 percent. The table below has the counts.</desc>",
              (unsigned)HB_W, H);
    hgrid(b, 100, 25, "%", y_end);
    size_t k = 0;
    for (size_t i = 0; i < s->n_clinics; i++) {
        const Handoff__ClinicStats *c = s->clinics[i];
        if (c->booked + c->declined + c->referred == 0)
            continue;
        unsigned y = HB_TOP + (unsigned)k++ * ROW;
        uint32_t offered = c->booked + c->declined;
        char dr[24], hr[24];
        rate_text(c->declined, offered, dr, sizeof dr);
        rate_text(c->on_hold, c->referred, hr, sizeof hr);
        unsigned wd = offered ? (unsigned)((uint64_t)c->declined * HB_PLOT / offered) : 0;
        unsigned wh = c->referred ? (unsigned)((uint64_t)c->on_hold * HB_PLOT / c->referred) : 0;
        char id[24];
        chart_id(c->clinic_id, id, sizeof id);
        HX_HTML_F(b, "<text class=\"label\" x=\"%u\" y=\"%u\">%s · %s</text>", (unsigned)HB_X + 4, y + 22, id,
                  disc_short(c->discipline));
        HX_HTML_F(b, "<text class=\"value\" x=\"%u\" y=\"%u\" text-anchor=\"end\">declined %s · on hold %s</text>",
                  (unsigned)(HB_X + HB_PLOT), y + 22, dr, hr);
        if (wd)
            HX_HTML_F(b, "<rect x=\"%u\" y=\"%u\" width=\"%u\" height=\"11\" fill=\"#a1261b\"><title>%s, %s: declined "
                         "%s</title></rect>",
                      (unsigned)HB_X, y + 30, wd, c->clinic_id, disc_short(c->discipline), dr);
        if (wh)
            HX_HTML_F(b, "<rect x=\"%u\" y=\"%u\" width=\"%u\" height=\"11\" fill=\"#6b4400\"><title>%s, %s: on hold "
                         "%s</title></rect>",
                      (unsigned)HB_X, y + 44, wh, c->clinic_id, disc_short(c->discipline), hr);
    }
    HX_HTML_MARKUP(b, "</svg><ul class=\"legend\"><li><svg class=\"key\" viewBox=\"0 0 12 12\" aria-hidden=\"true\" "
                      "focusable=\"false\"><rect width=\"12\" height=\"12\" fill=\"#a1261b\"/></svg>declined, of the "
                      "handoffs booked with the clinic</li><li><svg class=\"key\" viewBox=\"0 0 12 12\" "
                      "aria-hidden=\"true\" focusable=\"false\"><rect width=\"12\" height=\"12\" fill=\"#6b4400\"/>"
                      "</svg>on hold at least once, of the referrals the clinic sent</li></ul>");
    HX_HTML_MARKUP(b, "<details class=\"data\"><summary>The numbers</summary><div class=\"scroll\">"
                      "<table id=\"rates-table\"><caption>Declines and holds per clinic and discipline</caption>"
                      "<thead><tr><th scope=\"col\">Clinic</th><th scope=\"col\">Discipline</th>"
                      "<th scope=\"col\">Booked with it</th><th scope=\"col\">Declined</th>"
                      "<th scope=\"col\">Decline rate</th><th scope=\"col\">Referred by it</th>"
                      "<th scope=\"col\">Went on hold</th><th scope=\"col\">On-hold rate</th></tr></thead><tbody>");
    for (size_t i = 0; i < s->n_clinics; i++) {
        const Handoff__ClinicStats *c = s->clinics[i];
        if (c->booked + c->declined + c->referred == 0)
            continue;
        char dr[24], hr[24];
        rate_text(c->declined, c->booked + c->declined, dr, sizeof dr);
        rate_text(c->on_hold, c->referred, hr, sizeof hr);
        HX_HTML_F(b, "<tr><th scope=\"row\">%s</th><td>%s</td><td>%u</td><td>%u</td><td>%s</td><td>%u</td><td>%u</td>"
                     "<td>%s</td></tr>",
                  clinic_label(c->clinic_id, c->clinic_name), disc_name(c->discipline), c->booked, c->declined, dr,
                  c->referred, c->on_hold, hr);
    }
    HX_HTML_MARKUP(b, "</tbody></table></div></details></figure>");
}

/* ---- the next free slot ---------------------------------------------------------------------- */

static int slot_cmp(const void *x, const void *y)
{
    const Handoff__NextSlot *a = *(Handoff__NextSlot *const *)x, *b = *(Handoff__NextSlot *const *)y;
    if (a->discipline != b->discipline)
        return (int)a->discipline - (int)b->discipline;
    if (a->found != b->found)
        return a->found ? -1 : 1;
    if (a->wait_min != b->wait_min)
        return a->wait_min < b->wait_min ? -1 : 1;
    return strcmp(a->clinic_id, b->clinic_id);
}

static void table_slots(hx_html_t *b, const Handoff__NetworkStats *s)
{
    HX_HTML_MARKUP(b, "<section class=\"card wide\" aria-labelledby=\"slots-title\"><h2 id=\"slots-title\">Next "
                      "available slot</h2>");
    if (!s->n_next_slots) {
        HX_HTML_MARKUP(b, "<p class=\"empty\">Scheduling's directory has no therapists.</p></section>");
        return;
    }
    Handoff__NextSlot **v = malloc(s->n_next_slots * sizeof *v);
    if (!v) {
        b->failed = 1;
        return;
    }
    memcpy(v, s->next_slots, s->n_next_slots * sizeof *v);
    qsort(v, s->n_next_slots, sizeof *v, slot_cmp);
    uint64_t horizon = (uint64_t)(s->horizon_days ? s->horizon_days : 1) * 1440;
    HX_HTML_F(b, "<p class=\"note\">The earliest free %u-minute session at each clinic, as scheduling would book it "
                 "now for a referral with no preferences (any language, any time of the clinic's hours); a referral's "
                 "own availability, language or priority may make it later. Scheduling looks %u days ahead.</p>",
              v[0]->minutes ? v[0]->minutes : 60, s->horizon_days);
    HX_HTML_MARKUP(b, "<div class=\"scroll\"><table id=\"slots-table\"><caption class=\"vh\">Next available slot per "
                      "clinic and discipline, soonest first</caption><thead><tr><th scope=\"col\">Discipline</th>"
                      "<th scope=\"col\">Clinic</th><th scope=\"col\">Next free slot (the clinic's time)</th>"
                      "<th scope=\"col\">Wait from now</th><th scope=\"col\">Therapists</th></tr></thead><tbody>");
    for (size_t i = 0; i < s->n_next_slots; i++) {
        const Handoff__NextSlot *n = v[i];
        HX_HTML_F(b, "<tr><td>%s</td><th scope=\"row\">%s <small>%s</small></th>", disc_name(n->discipline),
                  clinic_label(n->clinic_id, n->clinic_name), n->clinic_id);
        if (!n->found) {
            HX_HTML_F(b, "<td>none within %u days</td><td>–</td><td>%u</td></tr>", s->horizon_days, n->therapists);
            continue;
        }
        char when[40], wait[24];
        snprintf(when, sizeof when, "%.16s", n->start);
        char *t = strchr(when, 'T');
        if (t)
            *t = ' ';
        duration_text(n->wait_min, wait, sizeof wait);
        unsigned w = (unsigned)((uint64_t)n->wait_min * 100 / horizon);
        HX_HTML_F(b, "<td><time datetime=\"%s\">%s</time> <small>%s %s</small></td>", n->start_utc, when,
                  n->utc_offset, n->time_zone);
        HX_HTML_F(b, "<td class=\"wait\"><span>%s</span><svg class=\"spark\" viewBox=\"0 0 100 8\" "
                     "preserveAspectRatio=\"none\" aria-hidden=\"true\" focusable=\"false\"><rect width=\"100\" "
                     "height=\"8\" fill=\"#e3e8ee\"/><rect width=\"%u\" height=\"8\" fill=\"%s\"/></svg></td>"
                     "<td>%u</td></tr>",
                  wait, w > 100 ? 100 : w ? w : 1, n->discipline == MASSAGE ? C_MASSAGE : C_PHYSIO, n->therapists);
    }
    HX_HTML_MARKUP(b, "</tbody></table></div></section>");
    free(v);
}

/* ---- the page ---------------------------------------------------------------------------------- */

static void key_figures(hx_html_t *b, const Handoff__NetworkStats *s)
{
    uint32_t booked = 0, declined = 0;
    for (size_t i = 0; i < s->n_clinics; i++) {
        booked += s->clinics[i]->booked;
        declined += s->clinics[i]->declined;
    }
    char oldest[24] = "";
    if (s->review_pending && s->review_oldest_ms && s->at_ms > s->review_oldest_ms)
        duration_text((uint32_t)((s->at_ms - s->review_oldest_ms) / 60000), oldest, sizeof oldest);
    HX_HTML_F(b, "<section aria-label=\"Key figures\"><dl class=\"kpis\">"
                 "<div><dt>Referrals received</dt><dd id=\"kpi-received\">%u</dd></div>"
                 "<div><dt>Handoffs booked</dt><dd id=\"kpi-booked\">%u</dd></div>"
                 "<div><dt>Declined by a clinic</dt><dd id=\"kpi-declined\">%u</dd></div>"
                 "<div><dt>On the wait list now</dt><dd id=\"kpi-on-hold\">%u</dd></div>",
              s->received, booked, declined, s->on_hold_now);
    HX_HTML_F(b, "<div class=\"%s\"><dt>Awaiting review now</dt><dd id=\"kpi-review\">%u",
              s->review_pending ? "attn" : "", s->review_pending);
    if (oldest[0])
        HX_HTML_F(b, " <small>oldest waiting %s</small>", oldest);
    HX_HTML_MARKUP(b, "</dd></div></dl></section>");
}

static void draw(web_req_t *r, const Handoff__NetworkStats *s, uint32_t weeks)
{
    hx_html_t *b = &r->body;
    week_row_t w[WEEKS_MAX];
    size_t n = weeks_of(s, w);
    char from[16], asof[32];
    day_text(s->from_ms, from);
    web_time_text(s->at_ms, asof);
    web_page_begin(r, "Network", 0);
    HX_HTML_F(b, "<div class=\"glance-head\"><h1>The network at a glance</h1><p class=\"lede\">Referrals scheduling "
                 "received in the last %u ISO week%s (from Monday %s UTC), as of %s. Counts and times only: nothing "
                 "here names a patient or a referral.</p>",
              s->weeks, s->weeks == 1 ? "" : "s", from, asof);
    HX_HTML_MARKUP(b, "<nav aria-label=\"Window\" class=\"folders\"><ul>");
    static const uint32_t choices[] = {4, 12, 26, 52};
    for (size_t i = 0; i < sizeof choices / sizeof *choices; i++) {
        if (choices[i] == weeks)
            HX_HTML_F(b, "<li><a href=\"/glance?weeks=%u\" aria-current=\"page\">%u weeks</a></li>", choices[i],
                      choices[i]);
        else
            HX_HTML_F(b, "<li><a href=\"/glance?weeks=%u\">%u weeks</a></li>", choices[i], choices[i]);
    }
    HX_HTML_MARKUP(b, "</ul></nav></div>");
    key_figures(b, s);
    HX_HTML_MARKUP(b, "<div class=\"glance\"><section class=\"card\"><h2>Referrals</h2>");
    chart_weeks(b, w, n);
    HX_HTML_MARKUP(b, "</section><section class=\"card\"><h2>Declines and holds</h2>");
    chart_rates(b, s);
    HX_HTML_MARKUP(b, "</section><section class=\"card wide\"><h2>From referral to booking and first session</h2>"
                      "<div class=\"pair\">");
    static const times_chart_t booking = {"to-booking", "Time to booking, per clinic and discipline", "booked",
                                          C_PHYSIO, "#dbe8f6", false};
    static const times_chart_t start = {"to-start", "Time to the first session, per clinic and discipline",
                                        "started", "#1d6b35", "#dcefe1", true};
    chart_times(b, s, &booking);
    chart_times(b, s, &start);
    HX_HTML_MARKUP(b, "</div>");
    table_times(b, s);
    HX_HTML_MARKUP(b, "</section>");
    table_slots(b, s);
    HX_HTML_MARKUP(b, "</div>");
    web_page_end(r);
}

void page_glance(web_req_t *r)
{
    if (r->user.role != HX_USER_CLINIC_ADMIN && r->user.role != HX_USER_NETWORK_ADMIN) {
        r->web->denied++;
        web_audit(r, "denied", "", "network page");
        page_error(r, 403, "Not allowed", "The network page is for clinic and network administrators.");
        return;
    }
    web_hosted_t *h = asking_session(r);
    if (!h) {
        page_error(r, 503, "Network unavailable", "This portal hosts no clinic whose session could ask scheduling.");
        return;
    }
    uint32_t weeks = weeks_arg(r);
    Handoff__StatsRequest rq = HANDOFF__STATS_REQUEST__INIT;
    rq.weeks = weeks;
    Handoff__NetworkStats *s = NULL;
    char err[300];
    pthread_mutex_lock(&h->mu);
    int rc = hx_clinic_stats(h->clinic, &rq, r->web->cfg.wait_ms, &s);
    snprintf(err, sizeof err, "%s", hx_clinic_error(h->clinic));
    pthread_mutex_unlock(&h->mu);
    char detail[32];
    snprintf(detail, sizeof detail, "%u weeks", weeks);
    web_audit(r, "glance", "", rc ? "not answered" : detail);
    if (rc) {
        char text[400];
        snprintf(text, sizeof text, "Scheduling could not be asked for the network's figures: %s", err);
        page_error(r, 503, "Network unavailable", text);
        return;
    }
    if (!s) {
        page_error(r, 504, "Network figures late",
                   "Scheduling has not answered yet (it may be busy). Reload the page in a moment.");
        return;
    }
    draw(r, s, weeks);
    handoff__network_stats__free_unpacked(s, NULL);
}
