/* hx_gen — a realistic synthetic network (clinics, therapists) and referrals for demos,
 * tests and benchmarks. Pure: the output depends only on the triage rules, the options and
 * the seed, so a seed reproduces a data set. Every name is fictional and marked
 * "(generated)", every health card starts with 5555, phones are 555-01xx, emails are at
 * example.org. handoff-gen (services/gen) writes what this makes to files. */
#ifndef HX_GEN_H
#define HX_GEN_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "hx_errors.h"

/* What hx_directory_load accepts. */
#define HX_GEN_MAX_CLINICS 1000
#define HX_GEN_MAX_THERAPISTS 10000
/* The last referral date when none is given; referral dates fall in the 28 days up to it. */
#define HX_GEN_DEFAULT_DATE "2026-11-23"

/* The clinical situation a referral was generated from, with its share of the mix:
 *   PHYSIO 45%          conditions whose plan is physiotherapy (some sent by an RMT who
 *                       needs a diagnosis)                          -> physiotherapy
 *   MASSAGE 25%         conditions whose plan is massage_therapy    -> massage therapy
 *   BOTH 20%            collaborative care (plan "both": post-surgical, chronic low back
 *                       pain, athletic performance)                 -> both
 *   RED_FLAG 5%         a red-flag finding, about 40% of them cauda equina -> a physician
 *   CONTRAINDICATED 5%  a massage contraindication on a plan with massage: about half
 *                       collaborative (-> physiotherapy only), half massage-only (-> a
 *                       physician to be cleared first)
 * A kind the rules give no codes for is left out and the others keep their proportions. */
typedef enum {
    HX_GEN_KIND_NONE = 0,
    HX_GEN_PHYSIO,
    HX_GEN_MASSAGE,
    HX_GEN_BOTH,
    HX_GEN_RED_FLAG,
    HX_GEN_CONTRAINDICATED,
    HX_GEN_KIND_COUNT
} hx_gen_kind_t;

typedef struct {
    size_t clinics;             /* 1 .. HX_GEN_MAX_CLINICS */
    size_t therapists;          /* clinics .. HX_GEN_MAX_THERAPISTS (each clinic gets one) */
    uint64_t seed;
    const char *last_date;      /* "YYYY-MM-DD"; NULL = HX_GEN_DEFAULT_DATE */
} hx_gen_options_t;

typedef struct hx_gen hx_gen_t;

/* Reads the condition, red-flag and contraindication codes from rules (the JSON of a rules
 * file, format services/triage/rules.json; borrowed, copied) and builds the network. Returns
 * NULL with errors naming the option ("clinics", "therapists", "last_date") or the rules path
 * ("rules.conditions.knee_pain.plan"). */
hx_gen_t *hx_gen_new(const json_t *rules, const hx_gen_options_t *opt, hx_errors_t *errs);
void hx_gen_destroy(hx_gen_t **self_p);

/* The network as a directory file (format deploy/sample/directory.json, version 2; loads with
 * hx_directory_parse): clinics in cities of several provinces and time zones (the first in
 * Ontario, the second in British Columbia), each with its province, zone, location and the
 * province's statutory holidays as closures; the areas its patients live in; therapists
 * registered with a body of their clinic's province. A new reference; NULL when out of
 * memory. */
json_t *hx_gen_directory(const hx_gen_t *g);

/* Referral number `index` (0-based) in the Referral JSON format (deploy/sample/referrals):
 * passes hx_referral_from_json and hx_intake_validate; its referrer works at a clinic of the
 * network, registered in its province; most patients have a postal code of the directory's
 * areas, in the referring clinic's city. Depends only on the seed, the rules, the network and index, so any referral can be
 * made alone and in any order. *kind (when not NULL) says what it was generated from. A new
 * reference; NULL when out of memory. */
json_t *hx_gen_referral(const hx_gen_t *g, uint64_t index, hx_gen_kind_t *kind);

/* The story of referral `index` after it is booked, when it is collaborative care (kind
 * HX_GEN_BOTH): the steps the referring clinic and the clinics holding its physiotherapy and
 * massage handoffs take (the format `handoff play` reads, docs/OPERATIONS.md "Stories"):
 * physiotherapy accepts and starts; massage declines first in about 40% of stories (it is
 * booked again), then accepts and starts; a question on the care thread and its answer
 * (physiotherapist and massage therapist, either way); sometimes a progress note; both
 * complete with a summary. Depends only on the seed, the rules, the network and index.
 * 0 with *out a new reference, or with *out NULL when the referral is not collaborative;
 * -1 when out of memory. */
int hx_gen_story(const hx_gen_t *g, uint64_t index, json_t **out);

/* "physiotherapy", "massage_therapy", "both", "red_flag", "contraindicated"; "unknown". */
const char *hx_gen_kind_text(hx_gen_kind_t k);

#endif
