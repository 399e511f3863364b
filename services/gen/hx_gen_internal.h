/* hx_gen_internal — what the generator's files share: the random streams, the generator's
 * state, and the functions one file defines for another (gen_ prefix). Private to
 * hx_gen*.c; users see only include/hx_gen.h.
 *
 *   hx_gen.c           construction, the public entry points
 *   hx_gen_rules.c     the condition, red-flag and contraindication codes from the rules
 *   hx_gen_people.c    names, cultures and languages of patients, therapists and physicians
 *   hx_gen_text.c      the clinical wording: reasons, histories, red-flag and
 *                      contraindication stories for the codes the default rules know
 *   hx_gen_network.c   the network: clinics, therapists, weekly hours (the directory)
 *   hx_gen_places.c    places, zones, postal codes, holidays and closures; registration by
 *                      the bodies of the clinic's province
 *   hx_gen_plan.c      a referral's clinical plan: codes, findings, referrer, reason, age
 *   hx_gen_referral.c  a referral as JSON: patient, referrer, clinical text, preferences
 *   hx_gen_story.c     a collaborative referral's story after booking (handoff play) */
#ifndef HX_GEN_INTERNAL_H
#define HX_GEN_INTERNAL_H
#include "hx_gen.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GEN_COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define DAY_MIN(h, m) ((h) * 60 + (m))

enum { PLAN_PHYSIO = 1, PLAN_MASSAGE = 2, PLAN_BOTH = 3 };     /* bits: PLAN_BOTH = both */
enum { D_PT = 1, D_RMT = 2, D_MD = 3 };                         /* disciplines of referrers */

/* ---- random numbers: splitmix64 streams (see hx_gen.c) ------------------------------- */

typedef struct {
    uint64_t s;
} rng_t;

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline rng_t rng_stream(uint64_t seed, uint64_t stream)
{
    rng_t r = {seed};
    uint64_t a = rng_next(&r);
    r.s = a ^ (stream * UINT64_C(0xD1B54A32D192ED03));
    (void)rng_next(&r);
    return r;
}

/* Uniform in [0, n); n > 0. The modulo bias is below 2^-40 for the small n used here. */
static inline size_t below(rng_t *r, size_t n)
{
    return n ? (size_t)(rng_next(r) % n) : 0;
}

/* Uniform in [lo, hi]. */
static inline unsigned between(rng_t *r, unsigned lo, unsigned hi)
{
    return lo + (unsigned)below(r, (size_t)(hi - lo) + 1);
}

/* True with probability pct/100. */
static inline bool chance(rng_t *r, unsigned pct)
{
    return below(r, 100) < pct;
}

/* An index drawn with the given weights (all zero: 0). */
static inline size_t weighted(rng_t *r, const unsigned *w, size_t n)
{
    unsigned total = 0;
    for (size_t i = 0; i < n; i++)
        total += w[i];
    if (total == 0)
        return 0;
    unsigned x = (unsigned)below(r, total);
    for (size_t i = 0; i < n; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return n - 1;
}

/* One element of an array (a real array: its size is taken with sizeof). */
#define PICK(r, arr) ((arr)[below((r), GEN_COUNT(arr))])

/* ---- the generator ------------------------------------------------------------------- */

typedef struct {
    const char *code, *label;   /* point into g->rules */
    const char *priority;       /* NULL: none */
    unsigned plan;
} cond_t;

typedef struct {
    const char *code, *reason;
    bool emergency;
} flag_t;

typedef struct {
    char id[32];
    char city[48];
    char area[4];               /* telephone area code */
    char province[3];
    size_t place;               /* index into gen_places() */
    unsigned disciplines;       /* bit D_PT, bit D_RMT */
} g_clinic_t;

typedef struct {
    char name[64];
    char email_local[40];
    int discipline;             /* D_PT or D_RMT */
    const char *body;           /* registration body's acronym (the built-in registration file's) */
    char number[16];            /* registration number */
    size_t clinic;
} g_therapist_t;

struct hx_gen {
    json_t *rules;              /* own copy; the strings below point into it */
    cond_t *conds;
    size_t n_conds;
    size_t *pool[4];            /* indices into conds by plan: [PLAN_PHYSIO], [PLAN_MASSAGE], [PLAN_BOTH] */
    size_t n_pool[4];
    flag_t *flags;              /* red flags */
    size_t n_flags;
    flag_t *contras;            /* massage contraindications */
    size_t n_contras;
    const char *rmt_finding;    /* the "needs diagnosis" finding, or NULL */
    bool rmt_rule;              /* triage sends an RMT's physiotherapy conditions to a PT */
    unsigned kind_weights[HX_GEN_KIND_COUNT];
    uint64_t seed;
    int64_t last_day;

    json_t *directory;
    g_clinic_t *clinics;
    size_t n_clinics;
    g_therapist_t *therapists;
    size_t n_therapists;
    size_t *by_discipline[3];   /* therapist indices, [D_PT], [D_RMT] */
    size_t n_by_discipline[3];
};

/* JSON building: any failed allocation (v NULL included) sets *oom; the finished object is
 * then dropped. */
static inline void gen_put(json_t *o, const char *key, json_t *v, bool *oom)
{
    if (!v || json_object_set_new(o, key, v) != 0)
        *oom = true;
}

static inline void gen_push(json_t *a, json_t *v, bool *oom)
{
    if (!v || json_array_append_new(a, v) != 0)
        *oom = true;
}

/* ---- hx_gen_rules.c ------------------------------------------------------------------- */

/* Fills conds, pools, flags, contraindications, the RMT rule and the kind weights from
 * g->rules; problems go to e, named by their path in the rules. */
void gen_read_rules(hx_gen_t *g, hx_errors_t *e);
/* The condition `code` whose plan shares a bit with need_plan_bits, or NULL. */
const cond_t *gen_find_cond(const hx_gen_t *g, const char *code, unsigned need_plan_bits);
/* The flag `code` among flags[0..n), or NULL. */
const flag_t *gen_find_flag(const flag_t *flags, size_t n, const char *code);

/* ---- hx_gen_people.c ------------------------------------------------------------------- */

/* A name culture (an index into the people table), drawn by who lives in the network's
 * cities; in a French-speaking area, French more often. */
int gen_culture(rng_t *r, bool french_area);
/* The language a culture brings ("fr", "zh", ...); NULL: English only. */
const char *gen_culture_language(int culture);
/* A given and a family name of the culture (two draws, in that order). */
void gen_name(rng_t *r, int culture, const char **given, const char **family);
/* A physician's given and family name (two draws, in that order). */
void gen_physician_name(rng_t *r, const char **given, const char **family);
/* Languages a therapist of the culture speaks, most used first (1..4 entries). */
size_t gen_therapist_languages(rng_t *r, int culture, const char *out[4]);
/* Lower-case ASCII letters of s, accents folded ("Élodie" -> "elodie") and anything else
 * dropped, at most cap-1 characters. */
void gen_ascii_slug(char *out, size_t cap, const char *s);
/* The first ASCII letter of s, upper-case; 'X' when none. */
char gen_initial(const char *s);

/* ---- hx_gen_text.c -------------------------------------------------------------------- */

/* The values a template may use as {side}, {Side}, {weeks}, {months}, {age}. */
typedef struct {
    const char *side;           /* "left" or "right" */
    unsigned weeks, months, age;
} vars_t;

/* Wording for a condition. Templates may use {side}, {Side}, {weeks}, {months}, {age}. */
typedef struct {
    const char *code;
    unsigned age_lo, age_hi;
    const char *reason[2];
    const char *history;
    const char *diagnosis;      /* only written when the referrer may diagnose */
    const char *treatment;
    const char *expectations;
} condition_text_t;

/* Conditions that often come together with a main one, for referrals with two codes. */
typedef struct {
    const char *code;
    const char *with[3];        /* NULL after the last */
} companion_t;

/* A red-flag situation: the finding, where it usually shows up, and how it was noticed. */
typedef struct {
    const char *flag;
    const char *conditions[3];  /* the complaint it comes with, most likely first */
    unsigned age_lo, age_hi;
    const char *reason;
    const char *companion;      /* a second flag often seen with it, or NULL */
} red_flag_text_t;

/* A massage contraindication and the plan it usually interrupts. */
typedef struct {
    const char *finding;
    const char *conditions[2];
    unsigned age_lo, age_hi;
    const char *reason;
} contra_text_t;

/* The wording for a code, or NULL when the tables do not know it. */
const condition_text_t *gen_condition_text(const char *code);
const companion_t *gen_companions(const char *code);
const red_flag_text_t *gen_red_flag_text(const char *code);
const contra_text_t *gen_contra_text(const char *code);
/* Expands {side}, {Side}, {weeks}, {months}, {age} in tmpl into out (truncated to cap). */
void gen_expand(char *out, size_t cap, const char *tmpl, const vars_t *v);

/* ---- hx_gen_network.c ------------------------------------------------------------------ */

/* A weekly window: day 1 (Monday) .. 7, minutes after midnight. */
typedef struct {
    unsigned day, from, to;
} win_t;

static inline size_t gen_add_win(win_t *w, size_t n, unsigned day, unsigned from, unsigned to)
{
    w[n] = (win_t){day, from, to};
    return n + 1;
}

/* Windows as the directory's "hours" array ([{"day", "from": "HH:MM", "to"}]). */
json_t *gen_hours_json(const win_t *w, size_t n, bool *oom);
/* Builds the clinics, the therapists and g->directory from stream 0 of the seed. Returns 0,
 * or -1 when out of memory. */
int gen_build_network(hx_gen_t *g, size_t n_clinics, size_t n_therapists);

/* ---- hx_gen_places.c ------------------------------------------------------------------- */

/* The network's own zone (the directory's "time_zone"). */
#define GEN_NETWORK_ZONE "America/Toronto"
/* Streams apart from the network's (0), the referrals' (i + 1) and the stories' (2^63 | i):
 * the places of the network, and the postal code of referral i (GEN_STREAM_PLACES | i + 1). */
#define GEN_STREAM_PLACES (UINT64_C(1) << 62)
/* Closures cover the referral dates and this many days after the last one (the booking
 * horizon, with room). */
#define GEN_CLOSURE_DAYS_AFTER 120

/* Where a clinic is: id slug, display name, city, telephone area code, French-speaking,
 * province, a forward sortation area of it, coordinates in 1/10000 degree. */
typedef struct {
    const char *slug, *display, *city, *area;
    bool french;
    const char *province, *fsa;
    int32_t lat_e4, lon_e4;
} place_t;

/* Every place; the first gen_places_ontario() are Ontario's. */
size_t gen_places(const place_t **out);
size_t gen_places_ontario(void);
/* The IANA zone of a province of the places (GEN_NETWORK_ZONE for another). */
const char *gen_province_zone(const char *province);
/* A place outside Ontario: in the province, or (NULL) in one drawn by weight. */
size_t gen_place_elsewhere(rng_t *p, const char *province);
/* A place of the city, drawn uniformly. */
size_t gen_place_in_city(rng_t *p, const char *city);
/* A postal code of the forward sortation area ("M4C 2B7"): three draws. */
void gen_postal_code(rng_t *p, const char *fsa, char out[8]);
/* Moves a coordinate by about a kilometre (two draws). */
void gen_jitter(rng_t *p, int32_t *lat_e4, int32_t *lon_e4);
json_t *gen_coordinate(int32_t e4);
/* The registration body (its acronym) of discipline d (D_PT, D_RMT, D_MD) in the province, the
 * pick-th of those the registration file lists (modulo), and into number the digits fitted
 * to that body's length. */
const char *gen_registration(const char *province, int d, uint64_t pick, const char *digits, char *number,
                             size_t cap);
/* The province's statutory holidays in [first, last] (days), with their observed days, and
 * the clinic's own closures drawn from p, as the directory's "closures". */
json_t *gen_closures_json(rng_t *p, const char *province, int64_t first, int64_t last, bool *oom);

/* ---- hx_gen_plan.c --------------------------------------------------------------------- */

#define GEN_MAX_CODES 4

/* What a referral is about, before it is written out. */
typedef struct {
    const cond_t *conds[GEN_MAX_CODES];
    size_t n_conds;
    const cond_t *primary;      /* the condition the wording is about */
    const char *findings[GEN_MAX_CODES];
    size_t n_findings;
    int referrer;               /* D_PT, D_RMT, D_MD */
    unsigned age_lo, age_hi;
    char reason[1024];
    const char *priority;       /* NULL: pick a usual one */
    bool massage;               /* the plan includes massage */
} plan_t;

/* Draws the plan of a referral of the given kind (p zeroed by the caller), then the
 * patient's age into v->age; the reason is expanded with v. */
void gen_plan(const hx_gen_t *g, rng_t *r, hx_gen_kind_t kind, vars_t *v, plan_t *p);

#endif
