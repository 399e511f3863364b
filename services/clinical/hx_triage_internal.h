/* hx_triage_internal — what the triage modules share and nothing else may include: the
 * rules model (hx_triage.c loads it), the lexicon matcher (hx_lexicon.c), the reading of a
 * referral into evidence (hx_triage_read.c) and the decision (hx_triage_decide.c). */
#ifndef HX_TRIAGE_INTERNAL_H
#define HX_TRIAGE_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "hx_text.h"
#include "hx_triage.h"

enum { PLAN_PHYSIO = 1, PLAN_MASSAGE = 2, PLAN_BOTH = 3 };

typedef enum { K_CONDITION, K_RED_FLAG, K_CONTRA, K_FACT, K_KINDS } rule_kind_t;

/* NegEx / ConText trigger types (hx_triage_read.c says how each acts). */
typedef enum {
    TR_PRE_NEG, TR_POST_NEG, TR_PSEUDO, TR_TERM, TR_HIST, TR_HIST_POST, TR_FAMILY, TR_AWARE,
    TR_KINDS
} trigger_t;

/* Phrase groups: a match competes (longest wins) only with matches of its own group. */
typedef enum { G_CONCEPT, G_FACT, G_TRIGGER, G_SITE, G_EXPLAIN, G_GROUPS } group_t;

/* One alternative of a compound rule: every fact affirmed, one of the conditions placed
 * (when any are listed), and the age test (-1 = none). */
typedef struct {
    int *facts;                 /* rule indices (K_FACT) */
    size_t n_facts;
    int *conditions;            /* rule indices (K_CONDITION) */
    size_t n_conditions;
    int age_over, age_under, age_at_least;
} when_t;

typedef struct rule {
    char *code;
    rule_kind_t kind;
    int index;                  /* in rules->all */
    char *text;                 /* condition label, flag / contraindication reason, fact label */
    unsigned plan;              /* conditions */
    bool emergency;             /* red flags */
    Handoff__Priority priority; /* 0 = none given */
    char *snomed, *snomed_display;
    int site;                   /* conditions: default body site (-1 none, SITE_WHOLE_BODY) */
    char *precaution;           /* conditions: a massage precaution to note */
    bool history_fires;         /* a past mention fires ("history of cancer") */
    int recent_days;            /* > 0: a mention dated longer ago does not count */
    bool at_site;               /* contraindications: only for massage of the same site */
    int aware_as;               /* red flags: contraindication it becomes when a physician knows */
    int *only_with;             /* red flags: only when one of these conditions is placed */
    size_t n_only_with;
    int *not_when_only;         /* red flags: not when every placed condition is one of these */
    size_t n_not_when_only;
    int *recent_of;             /* contraindications: recent mentions of these conditions */
    size_t n_recent_of;
    int *lifted_by;             /* contraindications: not when one of these conditions is placed */
    size_t n_lifted_by;
    int cleared_by;             /* contraindications: a fact that lifts a text-only mention */
    when_t *when;               /* compound alternatives */
    size_t n_when;
    UT_hash_handle hh;          /* by code */
    UT_hash_handle hs;          /* by SNOMED id (first rule with the id) */
} rule_t;

#define SITE_WHOLE_BODY (-2)

typedef struct {
    char *w;
    size_t id;                  /* index in rules->vocab */
    bool prefix;                /* "numb*" */
    bool fuzzy_target;          /* a concept or fact word of 7+ letters a misspelling may hit */
    UT_hash_handle hh;
} vword_t;

#define GAP_ID UINT16_MAX        /* "...": 0 to 3 words */

typedef struct {
    uint16_t *ids;
    size_t n;
    group_t group;
    int target;                 /* rule index, trigger_t, site index, or rule index (explain) */
    char *text;                 /* as written in rules.json, for the evidence */
} phrase_t;

typedef struct {
    char **names;               /* site names */
    size_t n;
} sites_t;

struct hx_rules {
    rule_t *by_code;            /* hash of every rule by code (codes are unique across tables) */
    rule_t *by_snomed;
    rule_t **all;
    size_t n_all, cap_all;
    char **never_alone_fragment, **never_alone_reason;
    size_t n_never_alone;
    char **rmt_findings;
    size_t n_rmt_findings;
    char *rmt_reason;           /* NULL: no rmt_needs_diagnosis rule */
    int rmt_fact;               /* fact index of "needs_diagnosis", or -1 */
    int massage_request_fact;   /* fact "massage_request", or -1 */
    int sentinel_fact;          /* fact "cauda_equina_words", or -1: affirmed and placed by no
                                   concept, it sends the referral to review */
    sites_t sites;
    /* the lexicon */
    vword_t *vocab_hash;
    vword_t **vocab;
    size_t n_vocab, cap_vocab;
    size_t *prefix_ids;         /* vocabulary entries that are prefixes */
    size_t n_prefix;
    phrase_t *phrases;
    size_t n_phrases, cap_phrases;
    size_t **first;             /* per vocabulary id: phrases starting with it (count first) */
    char **not_misspellings;    /* words never read as a misspelling */
    size_t n_not_misspellings;
};

/* ---- the lexicon (hx_lexicon.c) ----------------------------------------------------- */

/* Adds a phrase (normalised like referral text; "..." is a gap, a trailing "*" a prefix).
 * Returns 0, -1 when out of memory, -2 when the phrase has no word. */
int hx_lex_add(hx_rules_t *rules, const char *phrase, group_t group, int target);
/* Builds the first-word index once every phrase is in. Returns 0 or -1 (memory). */
int hx_lex_finish(hx_rules_t *rules);
void hx_lex_free(hx_rules_t *rules);

typedef struct {
    size_t s, e;                /* token range [s, e) */
    group_t group;
    int target;
    size_t phrase;
    char fuzzy_from[HX_WORD_MAX], fuzzy_to[HX_WORD_MAX];   /* a misspelling read, or "" */
} match_t;

typedef struct {
    match_t *m;
    size_t n, cap;
    bool oom;
} matches_t;

/* Matches every phrase of every group against toks; within a group overlapping matches are
 * resolved longest first (then leftmost). A pseudo-negation that overlaps a concept is
 * dropped so that the plain trigger inside it acts. Sorted by start. */
int hx_lex_match(const hx_rules_t *rules, const hx_toks_t *toks, matches_t *out);
void hx_matches_free(matches_t *m);

/* ---- reading a referral (hx_triage_read.c) ------------------------------------------ */

typedef enum {
    ST_AFFIRMED, ST_NEGATED, ST_HISTORICAL, ST_FAMILY, ST_AWARE, ST_EXPLAINED, ST_OLD,
    ST_UNMET
} status_t;

typedef struct {
    int rule;                   /* rule index */
    status_t status;
    int source;                 /* SRC_* */
    char words[160];            /* as written (or the code) */
    char cue[96];               /* the words that negated / dated / explained it */
    char note[120];             /* "read 'x' as 'y'", "3 weeks ago", "age 67" */
    int days_ago;               /* -1 unknown */
    unsigned sites;             /* bit per site named near it */
    bool coded;                 /* from conditions[] / findings[] */
    bool as_words;              /* a code no rule has, read as words */
} mention_t;

enum { SRC_REASON, SRC_HISTORY, SRC_DIAGNOSIS, SRC_TREATMENT, SRC_EXPECTATIONS, SRC_CONDITIONS,
       SRC_FINDINGS, SRC_AGE, SRC_COUNT };

typedef struct {
    mention_t *m;
    size_t n, cap;
    char **unplaced;            /* what the rules could not place */
    size_t n_unplaced;
    int age;                    /* years, -1 unknown */
    bool oom;
} reading_t;

/* Reads the referral: codes (project or SNOMED ids; an unknown code is read as words) and
 * the text fields, each mention with its status. Returns 0 or -1 (memory). */
int hx_triage_read(const hx_rules_t *rules, const Handoff__Referral *r, reading_t *out);
void hx_reading_free(reading_t *rd);
const char *hx_source_name(int source);
const char *hx_status_name(status_t st);

#endif
