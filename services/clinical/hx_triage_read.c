/* hx_triage_read — reads a referral for triage: its codes (the project's or SNOMED CT ids)
 * and its words (reason, history, diagnosis, current treatment, expectations), giving one
 * mention per rule phrase found, each with its status: affirmed, or why it does not count.
 *
 * The status follows NegEx: Chapman WW, Bridewell W, Hanbury P, Cooper GF, Buchanan BG. A
 * simple algorithm for identifying negated findings and diseases in discharge summaries.
 * J Biomed Inform 2001;34(5):301-310; and its extension ConText for who had it and when:
 * Harkema H, Dowling JN, Thornblade T, Chapman WW. ConText: an algorithm for determining
 * negation, experiencer, and temporal status from clinical reports. J Biomed Inform
 * 2009;42(5):839-851. The trigger phrases are data (rules.json "context"):
 *   - a pre-negation ("no", "denies", "without", "nil", "pas de") negates a mention that
 *     follows it within PRE_SCOPE units of the same sentence, unless a terminator ("but",
 *     "however", "new", "now", "mais") comes between. A unit is a word, or a whole other
 *     mention ("no fever, chills or night pain" negates all three); commas, "and", "or",
 *     "/" count nothing;
 *   - a post-negation ("normal", "intact", "NAD", "ruled out", "excluded") negates a mention
 *     it follows within POST_SCOPE words, not across a comma or another mention ("saddle
 *     numbness, B&B normal" still fires the saddle numbness);
 *   - a pseudo-negation ("no change", "not only", "cannot rule out") is a trigger that
 *     negates nothing: its words do not act;
 *   - historical ("history of", "previous", "h/o"; after: "in the past", "resolved") makes a
 *     mention past: it fires only for rules that say so ("history of cancer"); a date or a
 *     time ("in 2019", "3 years ago") older than the rule's recent_days does the same;
 *   - family ("family history of", "mother had") is someone else's: it never fires;
 *   - physician-aware ("being investigated", "on antibiotics") in the same sentence: a red
 *     flag a physician already knows of becomes its physician_aware_as contraindication;
 *   - a rule's explained_by phrase in the same sentence ("after childbirth" for urinary
 *     incontinence) explains the mention away.
 * A trigger inside a mention's own words (the "not" of "unable to pass urine ... not") does
 * not act on it. Times: "3 days ago", "two weeks after surgery", "x 3/52", "POD 2",
 * "yesterday", "in 2019", "2026-11-09" (against the referral date); the nearest in the same
 * sentence dates a mention. */
#include "hx_triage_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_util.h"

#define PRE_SCOPE 6
#define POST_SCOPE 4
#define TIME_REACH 12
#define SITE_NEAR 4
#define SITE_REACH 10

static const char *const source_names[SRC_COUNT] = {
    "reason", "history", "diagnosis", "current_treatment", "expectations", "conditions", "findings", "age"};

const char *hx_source_name(int source)
{
    return source >= 0 && source < SRC_COUNT ? source_names[source] : "?";
}

const char *hx_status_name(status_t st)
{
    static const char *const names[] = {"affirmed", "negated", "historical", "family", "physician_aware",
                                        "explained", "old", "unmet"};
    return st <= ST_UNMET ? names[st] : "?";
}

/* ---- times --------------------------------------------------------------------------- */

typedef struct {
    size_t at;                  /* token */
    int days;
} when_at_t;

typedef struct {
    const hx_toks_t *toks;
    int64_t ref_days;           /* referral date, or -1 */
    when_at_t *w;
    size_t n, cap;
} times_t;

static const char *word(const hx_toks_t *t, size_t i)
{
    return i < t->n ? t->t[i].w : "";
}

static bool same_sentence(const hx_toks_t *t, size_t a, size_t b)
{
    return a < t->n && b < t->n && t->t[a].sentence == t->t[b].sentence;
}

static void add_time(times_t *tm, size_t at, int64_t days)
{
    if (days < 0 || days > 36500)
        return;
    if (tm->n == tm->cap) {
        size_t cap = tm->cap ? tm->cap * 2 : 16;
        when_at_t *grown = realloc(tm->w, cap * sizeof *grown);
        if (!grown)
            return;     /* a time not read leaves a mention undated: it still counts */
        tm->w = grown;
        tm->cap = cap;
    }
    tm->w[tm->n++] = (when_at_t){at, (int)days};
}

/* Days in one unit word, or 0. */
static int unit_days(const char *w)
{
    static const struct {
        const char *w;
        int days;
    } units[] = {
        {"day", 1}, {"days", 1}, {"d", 1}, {"jour", 1}, {"jours", 1}, {"j", 1}, {"week", 7}, {"weeks", 7},
        {"wk", 7}, {"wks", 7}, {"w", 7}, {"semaine", 7}, {"semaines", 7}, {"sem", 7}, {"month", 30},
        {"months", 30}, {"mo", 30}, {"mos", 30}, {"mth", 30}, {"mths", 30}, {"mois", 30}, {"year", 365},
        {"years", 365}, {"yr", 365}, {"yrs", 365}, {"an", 365}, {"ans", 365}, {"annee", 365},
        {"annees", 365}, {"hour", 0}, {"hours", 0}, {"hr", 0}, {"hrs", 0}, {"heure", 0}, {"heures", 0},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(units[i].w, w))
            return units[i].days > 0 ? units[i].days : -1;     /* hours: -1, same day */
    return 0;
}

static bool is_age_phrase(const hx_toks_t *t, size_t num, size_t unit)
{
    const char *u = word(t, unit), *next = word(t, unit + 1);
    if (!strcmp(next, "old") || !strcmp(next, "of"))
        return true;
    if (!strcmp(u, "ans") || !strcmp(u, "an")) {
        const char *b1 = num ? word(t, num - 1) : "", *b2 = num > 1 ? word(t, num - 2) : "";
        return strcmp(b1, "depuis") && strcmp(b1, "pendant") && strcmp(b1, "a") && strcmp(b2, "y") &&
               strcmp(b1, "dans");
    }
    return false;
}

/* A number (digits or a number word) then a unit at token i. */
static void read_duration(times_t *tm, size_t i)
{
    const hx_toks_t *t = tm->toks;
    int64_t n = t->t[i].kind == HX_TOK_NUM ? t->t[i].value : hx_text_number_word(t->t[i].w);
    if (n < 0 || !same_sentence(t, i, i + 1))
        return;
    size_t u = i + 1;
    if (!strcmp(word(t, u), "to") || !strcmp(word(t, u), "or") || !strcmp(word(t, u), "a")) {
        if (i + 2 < t->n && t->t[i + 2].kind == HX_TOK_NUM) {
            n = t->t[i + 2].value;      /* "3 to 4 weeks": the later bound */
            u = i + 3;
        }
    }
    int days = unit_days(word(t, u));
    if (days == 0 || is_age_phrase(t, i, u))
        return;
    add_time(tm, i, days < 0 ? 0 : n * days);
}

static void read_word_time(times_t *tm, size_t i)
{
    static const struct {
        const char *a, *b;
        int days;
    } words[] = {
        {"yesterday", NULL, 1}, {"today", NULL, 0}, {"tonight", NULL, 0}, {"this", "morning", 0},
        {"last", "night", 1}, {"last", "week", 7}, {"last", "month", 30}, {"last", "year", 365},
        {"recently", NULL, 7}, {"recent", NULL, 7}, {"hier", NULL, 1}, {"aujourd", "hui", 0},
        {"ce", "matin", 0}, {"semaine", "derniere", 7}, {"mois", "dernier", 30}, {"an", "dernier", 365},
        {"annee", "derniere", 365}, {"recemment", NULL, 7}, {"recente", NULL, 7}, {"this", "week", 3},
        {"cette", "semaine", 3}, {"overnight", NULL, 1},
    };
    const hx_toks_t *t = tm->toks;
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (!strcmp(t->t[i].w, words[k].a) && (!words[k].b || !strcmp(word(t, i + 1), words[k].b)))
            add_time(tm, i, words[k].days);
    /* "POD 3", "day 3 post-op", "jour 3" */
    if ((!strcmp(t->t[i].w, "pod") || !strcmp(t->t[i].w, "day") || !strcmp(t->t[i].w, "jour")) &&
        i + 1 < t->n && t->t[i + 1].kind == HX_TOK_NUM && same_sentence(t, i, i + 1))
        add_time(tm, i, t->t[i + 1].value);
}

static void read_times(times_t *tm)
{
    const hx_toks_t *t = tm->toks;
    int64_t ref_year = 0;
    unsigned mm, dd;
    if (tm->ref_days >= 0)
        hx_civil_from_days(tm->ref_days, &ref_year, &mm, &dd);
    for (size_t i = 0; i < t->n; i++) {
        const hx_tok_t *k = &t->t[i];
        if (k->kind == HX_TOK_DATE && tm->ref_days >= 0) {
            add_time(tm, i, tm->ref_days - k->value);
        } else if (k->kind == HX_TOK_FRACTION) {
            int per = k->den == 52 ? 7 : k->den == 7 ? 1 : k->den == 12 ? 30 : 0;
            if (per)
                add_time(tm, i, k->value * per);
        } else if (k->kind == HX_TOK_NUM && k->value >= 1900 && k->value <= 2100 && strlen(k->w) == 4 &&
                   tm->ref_days >= 0 && !unit_days(word(t, i + 1))) {
            if (k->value < ref_year)
                add_time(tm, i, (ref_year - k->value) * 365);
            else if (k->value == ref_year)
                add_time(tm, i, 90);    /* this year: months ago, not known */
        } else if (k->kind == HX_TOK_NUM || k->kind == HX_TOK_WORD) {
            read_duration(tm, i);
            if (k->kind == HX_TOK_WORD)
                read_word_time(tm, i);
        }
    }
}

/* The nearest time of the sentence to tokens [s, e), or -1. */
static int time_of(const times_t *tm, size_t s, size_t e)
{
    int best = -1;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < tm->n; i++) {
        size_t at = tm->w[i].at;
        if (!same_sentence(tm->toks, at, s))
            continue;
        size_t d = at < s ? s - at : at >= e ? at - e + 1 : 0;
        if (d <= TIME_REACH && d < best_d) {
            best_d = d;
            best = tm->w[i].days;
        }
    }
    return best;
}

/* ---- age ----------------------------------------------------------------------------- */

static int age_from_dates(const Handoff__Referral *r, int64_t ref_days)
{
    int64_t born;
    if (!r->patient || ref_days < 0 || hx_date_parse(r->patient->birth_date, &born) != 0 || born > ref_days)
        return -1;
    int64_t by, ry;
    unsigned bm, bd, rm, rdd;
    hx_civil_from_days(born, &by, &bm, &bd);
    hx_civil_from_days(ref_days, &ry, &rm, &rdd);
    int64_t age = ry - by - ((rm < bm || (rm == bm && rdd < bd)) ? 1 : 0);
    return age >= 0 && age < 150 ? (int)age : -1;
}

/* "45F", "72 yo", "72-year-old", "aged 72", "72 ans" when no birth date says. */
static int age_from_words(const hx_toks_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        const hx_tok_t *k = &t->t[i];
        if (k->kind == HX_TOK_WORD && (!strcmp(k->w, "aged") || !strcmp(k->w, "age") || !strcmp(k->w, "agee")) &&
            i + 1 < t->n && t->t[i + 1].kind == HX_TOK_NUM && t->t[i + 1].value < 120)
            return (int)t->t[i + 1].value;
        if (k->kind != HX_TOK_NUM || k->value < 1 || k->value > 110)
            continue;
        const char *n1 = word(t, i + 1), *n2 = word(t, i + 2), *n3 = word(t, i + 3);
        bool yr = !strcmp(n1, "year") || !strcmp(n1, "years") || !strcmp(n1, "yr") || !strcmp(n1, "yrs");
        if (!strcmp(n1, "f") || !strcmp(n1, "m") || !strcmp(n1, "yo") || !strcmp(n1, "y/o") ||
            !strcmp(n1, "yof") || !strcmp(n1, "yom") || (yr && (!strcmp(n2, "old") || !strcmp(n3, "old"))) ||
            ((!strcmp(n1, "ans") || !strcmp(n1, "an")) && is_age_phrase(t, i, i + 1)))
            return (int)k->value;
    }
    return -1;
}

/* ---- context of one mention ---------------------------------------------------------- */

typedef struct {
    const hx_rules_t *rules;
    const hx_toks_t *toks;
    const matches_t *mt;
    const times_t *times;
    const char *const *texts;   /* per source */
    int *trig_end;              /* per token: the trigger match ending here, or -1 */
    int *trig_start;            /* per token: the trigger match starting here, or -1 */
    int *mention_at;            /* per token: the concept / fact match covering it, or -1 */
} ctx_t;

static bool connector(const hx_tok_t *k)
{
    static const char *const words[] = {"and", "or", "nor", "/", "&", "et", "ou", "ni", "any", "of"};
    if (k->kind == HX_TOK_COMMA)
        return true;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(k->w, words[i]))
            return true;
    return false;
}

/* Copies the source words of tokens [s, e) into out. */
static void quote(const ctx_t *c, size_t s, size_t e, char *out, size_t cap)
{
    const hx_tok_t *a = &c->toks->t[s], *b = &c->toks->t[e - 1];
    const char *text = c->texts[a->field];
    if (!text || b->field != a->field || b->end < a->start) {
        snprintf(out, cap, "%s", a->w);
        return;
    }
    size_t n = b->end - a->start;
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)text[a->start + n] & 0xC0) == 0x80)
            n--;    /* do not cut a character in two */
    }
    memcpy(out, text + a->start, n);
    out[n] = '\0';
}

typedef struct {
    int neg, hist, family;      /* trigger match index, or -1 */
} pre_t;

/* Whether trigger match t, or another trigger phrase over the same words, is of type ty. */
static bool trigger_is(const ctx_t *c, int t, trigger_t ty)
{
    const match_t *m = &c->mt->m[t];
    for (int i = t; i >= 0 && c->mt->m[i].s == m->s; i--)
        if (c->mt->m[i].group == G_TRIGGER && c->mt->m[i].e == m->e && c->mt->m[i].target == (int)ty)
            return true;
    for (size_t i = (size_t)t + 1; i < c->mt->n && c->mt->m[i].s == m->s; i++)
        if (c->mt->m[i].group == G_TRIGGER && c->mt->m[i].e == m->e && c->mt->m[i].target == (int)ty)
            return true;
    return false;
}

/* A pre-negation, historical or family trigger that starts before the mention and ends
 * inside it ("no new" over "new back pain"). */
static void straddling(const ctx_t *c, const match_t *m, pre_t *p)
{
    for (size_t i = 0; i < c->mt->n; i++) {
        const match_t *t = &c->mt->m[i];
        if (t->group != G_TRIGGER || !(t->s < m->s && t->e > m->s))
            continue;
        if (p->neg < 0 && trigger_is(c, (int)i, TR_PRE_NEG))
            p->neg = (int)i;
        if (p->hist < 0 && trigger_is(c, (int)i, TR_HIST))
            p->hist = (int)i;
        if (p->family < 0 && trigger_is(c, (int)i, TR_FAMILY))
            p->family = (int)i;
    }
}

/* Walks back from the mention: the nearest pre-negation, historical and family triggers. */
static pre_t scan_before(const ctx_t *c, const match_t *m)
{
    pre_t p = {-1, -1, -1};
    straddling(c, m, &p);
    size_t units = 0;
    for (size_t pos = m->s; pos-- > 0 && same_sentence(c->toks, pos, m->s) && units <= PRE_SCOPE;) {
        int t = c->trig_end[pos];
        if (t >= 0) {
            if (trigger_is(c, t, TR_TERM))
                break;
            if (p.neg < 0 && trigger_is(c, t, TR_PRE_NEG))
                p.neg = t;
            if (p.hist < 0 && trigger_is(c, t, TR_HIST))
                p.hist = t;
            if (p.family < 0 && trigger_is(c, t, TR_FAMILY))
                p.family = t;
            pos = c->mt->m[t].s;
            units++;
            continue;
        }
        int other = c->mention_at[pos];
        if (other >= 0 && c->mt->m[other].s < pos) {
            pos = c->mt->m[other].s;    /* a whole other mention is one unit */
            units++;
            continue;
        }
        if (!connector(&c->toks->t[pos]))
            units++;
    }
    return p;
}

/* A one-word terminator that only links a mention to what follows ("fever has resolved"):
 * it ends a negation's reach backwards, not forwards. */
static bool auxiliary(const ctx_t *c, int t)
{
    static const char *const words[] = {"has", "have", "had", "is", "was", "been", "now", "since"};
    const match_t *m = &c->mt->m[t];
    for (size_t i = 0; m->e == m->s + 1 && i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(c->toks->t[m->s].w, words[i]))
            return true;
    return false;
}

/* Walks forward: a post-negation or post-historical trigger (-1 when none). */
static int scan_after(const ctx_t *c, const match_t *m, trigger_t *type)
{
    size_t units = 0;
    for (size_t pos = m->e; pos < c->toks->n && same_sentence(c->toks, pos, m->s) && units <= POST_SCOPE; pos++) {
        const hx_tok_t *k = &c->toks->t[pos];
        if (k->kind == HX_TOK_COMMA && strcmp(k->w, ":"))
            break;
        int t = c->trig_start[pos];
        if (t >= 0) {
            if (trigger_is(c, t, TR_POST_NEG) || trigger_is(c, t, TR_HIST_POST)) {
                *type = trigger_is(c, t, TR_POST_NEG) ? TR_POST_NEG : TR_HIST_POST;
                return t;
            }
            if ((trigger_is(c, t, TR_TERM) && !auxiliary(c, t)) || trigger_is(c, t, TR_PRE_NEG))
                break;
            pos = c->mt->m[t].e - 1;
            units++;
            continue;
        }
        int other = c->mention_at[pos];
        if (other >= 0 && c->mt->m[other].group == G_CONCEPT)
            break;
        if (!connector(k))
            units++;
    }
    return -1;
}

/* An aware trigger or the rule's explanation in the same sentence (match index or -1). */
static int in_sentence(const ctx_t *c, const match_t *m, group_t group, int target)
{
    for (size_t i = 0; i < c->mt->n; i++) {
        const match_t *o = &c->mt->m[i];
        bool inside = o->s < m->e && m->s < o->e;   /* its own words explain nothing */
        if (o->group == group && o->target == target && same_sentence(c->toks, o->s, m->s) && !inside)
            return (int)i;
    }
    return -1;
}

static unsigned sites_near(const ctx_t *c, const match_t *m)
{
    unsigned near = 0, nearest = 0;
    size_t best = SIZE_MAX;
    for (size_t i = 0; i < c->mt->n; i++) {
        const match_t *o = &c->mt->m[i];
        if (o->group != G_SITE || !same_sentence(c->toks, o->s, m->s))
            continue;
        size_t d = o->e <= m->s ? m->s - o->e : o->s >= m->e ? o->s - m->e : 0;
        if (d <= SITE_NEAR)
            near |= 1u << o->target;
        if (d <= SITE_REACH && d < best) {
            best = d;
            nearest = 1u << o->target;
        }
    }
    return near ? near : nearest;
}

static void set_cue(const ctx_t *c, int match, mention_t *out)
{
    if (match >= 0)
        quote(c, c->mt->m[match].s, c->mt->m[match].e, out->cue, sizeof out->cue);
}

static void describe(const ctx_t *c, const match_t *m, const rule_t *r, mention_t *out)
{
    pre_t pre = scan_before(c, m);
    trigger_t post_type = TR_KINDS;
    int post = scan_after(c, m, &post_type);
    int aware = in_sentence(c, m, G_TRIGGER, TR_AWARE);
    int explained = in_sentence(c, m, G_EXPLAIN, r->index);
    out->days_ago = time_of(c->times, m->s, m->e);
    out->sites = sites_near(c, m);
    if (pre.family >= 0) {
        out->status = ST_FAMILY, set_cue(c, pre.family, out);
    } else if (pre.neg >= 0 || post_type == TR_POST_NEG) {
        out->status = ST_NEGATED, set_cue(c, pre.neg >= 0 ? pre.neg : post, out);
    } else if (pre.hist >= 0 || post_type == TR_HIST_POST) {
        out->status = r->history_fires ? ST_AFFIRMED : ST_HISTORICAL;
        set_cue(c, pre.hist >= 0 ? pre.hist : post, out);
    } else if (r->recent_days > 0 && out->days_ago > r->recent_days) {
        out->status = ST_OLD;
    } else if (explained >= 0) {
        out->status = ST_EXPLAINED, set_cue(c, explained, out);
    } else if (aware >= 0 && r->kind == K_RED_FLAG && r->aware_as >= 0 && !r->emergency) {
        out->status = ST_AWARE, set_cue(c, aware, out);
    }
    if (out->days_ago >= 0)
        snprintf(out->note, sizeof out->note, "%d days ago", out->days_ago);
    if (m->fuzzy_from[0]) {
        size_t n = strlen(out->note);
        snprintf(out->note + n, sizeof out->note - n, "%sread \"%s\" as \"%s\"", n ? "; " : "", m->fuzzy_from,
                 m->fuzzy_to);
    }
}

/* ---- the reading --------------------------------------------------------------------- */

static mention_t *add_mention(reading_t *rd)
{
    if (rd->n == rd->cap) {
        size_t cap = rd->cap ? rd->cap * 2 : 32;
        mention_t *grown = realloc(rd->m, cap * sizeof *grown);
        if (!grown) {
            rd->oom = true;
            return NULL;
        }
        rd->m = grown;
        rd->cap = cap;
    }
    mention_t *m = &rd->m[rd->n++];
    memset(m, 0, sizeof *m);
    m->days_ago = -1;
    return m;
}

static void add_unplaced(reading_t *rd, const char *fmt, const char *a, const char *b)
{
    char buf[256];
    snprintf(buf, sizeof buf, fmt, a, b);
    char **grown = realloc(rd->unplaced, (rd->n_unplaced + 1) * sizeof *grown);
    char *s = strdup(buf);
    if (!grown || !s) {
        free(s);
        if (grown)
            rd->unplaced = grown;
        rd->oom = true;
        return;
    }
    rd->unplaced = grown;
    rd->unplaced[rd->n_unplaced++] = s;
}

/* Mentions for every concept and fact match of toks; returns how many were affirmed. */
static size_t read_matches(const hx_rules_t *rules, const hx_toks_t *toks, const char *const *texts,
                           int64_t ref_days, reading_t *rd)
{
    matches_t mt;
    if (hx_lex_match(rules, toks, &mt) != 0) {
        rd->oom = true;
        return 0;
    }
    times_t tm = {.toks = toks, .ref_days = ref_days};
    read_times(&tm);
    ctx_t c = {.rules = rules, .toks = toks, .mt = &mt, .times = &tm, .texts = texts};
    c.trig_end = malloc((toks->n + 1) * sizeof *c.trig_end);
    c.trig_start = malloc((toks->n + 1) * sizeof *c.trig_start);
    c.mention_at = malloc((toks->n + 1) * sizeof *c.mention_at);
    size_t affirmed = 0;
    if (!c.trig_end || !c.trig_start || !c.mention_at) {
        rd->oom = true;
        goto out;
    }
    for (size_t i = 0; i < toks->n; i++)
        c.trig_end[i] = c.trig_start[i] = c.mention_at[i] = -1;
    for (size_t i = 0; i < mt.n; i++) {
        const match_t *m = &mt.m[i];
        if (m->group == G_TRIGGER) {
            c.trig_end[m->e - 1] = c.trig_start[m->s] = (int)i;
        } else if (m->group == G_CONCEPT || m->group == G_FACT) {
            for (size_t k = m->s; k < m->e; k++)
                if (c.mention_at[k] < 0 || m->group == G_CONCEPT)
                    c.mention_at[k] = (int)i;
        }
    }
    for (size_t i = 0; i < mt.n; i++) {
        const match_t *m = &mt.m[i];
        if (m->group != G_CONCEPT && m->group != G_FACT)
            continue;
        mention_t *out = add_mention(rd);
        if (!out)
            break;
        out->rule = m->target;
        out->source = toks->t[m->s].field;
        quote(&c, m->s, m->e, out->words, sizeof out->words);
        describe(&c, m, rules->all[m->target], out);
        affirmed += out->status == ST_AFFIRMED || out->status == ST_AWARE;
    }
out:
    free(c.trig_end);
    free(c.trig_start);
    free(c.mention_at);
    free(tm.w);
    hx_matches_free(&mt);
    return affirmed;
}

static const rule_t *code_rule(const hx_rules_t *rules, const char *code)
{
    rule_t *r = NULL;
    if (!code || !*code)
        return NULL;
    HASH_FIND(hh, rules->by_code, code, strlen(code), r);
    if (!r && strspn(code, "0123456789") == strlen(code))
        HASH_FIND(hs, rules->by_snomed, code, strlen(code), r);
    return r;
}

static bool is_rmt_code(const hx_rules_t *rules, const char *code)
{
    for (size_t i = 0; i < rules->n_rmt_findings; i++)
        if (!strcmp(rules->rmt_findings[i], code))
            return true;
    return false;
}

/* One code: a rule's, or words ("saddle_numbness" is read as "saddle numbness"). */
static void read_code(const hx_rules_t *rules, const char *code, int source, int64_t ref_days, reading_t *rd)
{
    const rule_t *r = code_rule(rules, code);
    if (r) {
        mention_t *m = add_mention(rd);
        if (m) {
            m->rule = r->index;
            m->source = source;
            m->coded = true;
            snprintf(m->words, sizeof m->words, "%s", code);
            if (strcmp(code, r->code))
                snprintf(m->note, sizeof m->note, "SNOMED CT %s", code);
        }
        return;
    }
    if (!code || (source == SRC_FINDINGS && is_rmt_code(rules, code)))
        return;
    char words[HX_CODE_MAX + 1];
    snprintf(words, sizeof words, "%s", code);
    for (char *p = words; *p; p++)
        if (*p == '_')
            *p = ' ';
    hx_toks_t toks = {0};
    const char *texts[SRC_COUNT] = {0};
    texts[source] = words;
    size_t before = rd->n, placed = 0;
    if (hx_text_tokenize(&toks, words, (uint8_t)source) == 0)
        placed = read_matches(rules, &toks, texts, ref_days, rd);
    else
        rd->oom = true;
    hx_toks_free(&toks);
    for (size_t i = before; i < rd->n; i++) {
        rd->m[i].coded = rd->m[i].as_words = true;
        size_t n = strlen(rd->m[i].note);
        snprintf(rd->m[i].note + n, sizeof rd->m[i].note - n, "%scode %s read as words", n ? "; " : "", code);
    }
    if (!placed)
        add_unplaced(rd, "%s code %s: not known to the rules", source == SRC_CONDITIONS ? "condition" : "finding",
                     code);
}

int hx_triage_read(const hx_rules_t *rules, const Handoff__Referral *r, reading_t *rd)
{
    memset(rd, 0, sizeof *rd);
    int64_t ref_days = -1;
    if (r->referral_date && hx_date_parse(r->referral_date, &ref_days) != 0)
        ref_days = -1;
    rd->age = age_from_dates(r, ref_days);
    for (size_t i = 0; i < r->n_conditions; i++)
        read_code(rules, r->conditions[i], SRC_CONDITIONS, ref_days, rd);
    for (size_t i = 0; i < r->n_findings; i++)
        read_code(rules, r->findings[i], SRC_FINDINGS, ref_days, rd);
    const char *texts[SRC_COUNT] = {r->reason, r->history, r->diagnosis, r->current_treatment, r->expectations};
    hx_toks_t toks = {0};
    for (int s = SRC_REASON; s <= SRC_EXPECTATIONS; s++)
        if (texts[s] && hx_text_tokenize(&toks, texts[s], (uint8_t)s) != 0)
            rd->oom = true;
    if (rd->age < 0)
        rd->age = age_from_words(&toks);
    if (!rd->oom)
        read_matches(rules, &toks, texts, ref_days, rd);
    hx_toks_free(&toks);
    return rd->oom ? -1 : 0;
}

void hx_reading_free(reading_t *rd)
{
    if (!rd)
        return;
    free(rd->m);
    for (size_t i = 0; i < rd->n_unplaced; i++)
        free(rd->unplaced[i]);
    free(rd->unplaced);
    memset(rd, 0, sizeof *rd);
}
