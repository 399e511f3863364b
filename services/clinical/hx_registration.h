/* hx_registration — who registers a referrer, by province or territory and discipline: the
 * regulatory colleges and, where a profession is not regulated (massage therapy in Alberta),
 * the professional associations whose membership numbers insurers accept. Read from a data
 * file (services/intake/registration.json; its format in docs/OPERATIONS.md), the same file
 * built into the library as the default, so intake and the clinic CLI check alike. */
#ifndef HX_REGISTRATION_H
#define HX_REGISTRATION_H
#include <stdbool.h>
#include <stddef.h>
#include "referral.pb-c.h"
#include "hx_errors.h"

/* A referral that does not name its referrer's province is read as this one. */
#define HX_PROVINCE_DEFAULT "ON"
#define HX_REG_ACRONYM_MAX 15   /* an acronym: A-Z, 0-9, at most 15 characters */
#define HX_REG_NUMBER_MAX 12    /* a registration number: at most 12 characters */

typedef enum { HX_BODY_COLLEGE = 1, HX_BODY_ASSOCIATION = 2 } hx_body_kind_t;

typedef struct {
    const char *acronym;        /* "CMTO", "MTAA" */
    const char *name;           /* "College of Massage Therapists of Ontario" */
    hx_body_kind_t kind;
    bool digits;                /* numbers: digits only (else letters, digits and hyphens) */
    unsigned min, max;          /* numbers: length, 1 <= min <= max <= HX_REG_NUMBER_MAX */
} hx_body_t;

typedef struct hx_registration hx_registration_t;

/* Reads the file at path (or, for _parse, the JSON text). Every problem is added to errs
 * with its path in the JSON ("provinces.AB.massage_therapy[1].kind"); NULL when any. The
 * callers name the file. Every Canadian province and territory must be present, each with
 * physiotherapy, massage_therapy and physician, each a non-empty list of bodies of one kind. */
hx_registration_t *hx_registration_load(const char *path, hx_errors_t *errs);
hx_registration_t *hx_registration_parse(const char *text, hx_errors_t *errs);
void hx_registration_destroy(hx_registration_t **reg);

/* The file as shipped, built into the library (parsed once; never NULL in a good build). */
const hx_registration_t *hx_registration_builtin(void);

/* The province's name ("Alberta"), or NULL when code is not one of the 13 codes. */
const char *hx_registration_province(const hx_registration_t *reg, const char *code);
/* The codes, for messages: "AB, BC, MB, NB, NL, NS, NT, NU, ON, PE, QC, SK, YT". */
const char *hx_registration_codes(void);
/* The bodies registering discipline d in the province, in the file's order; *n their count
 * (0 for an unknown province or discipline). */
const hx_body_t *hx_registration_bodies(const hx_registration_t *reg, const char *province,
                                        Handoff__Discipline d, size_t *n);
/* The body named acronym (exact spelling) for d in the province, or NULL. */
const hx_body_t *hx_registration_find(const hx_registration_t *reg, const char *province,
                                      Handoff__Discipline d, const char *acronym);

/* "college" or "association" (as the file and Referrer.registration_kind spell them), and back
 * (0 when unknown). */
const char *hx_body_kind_text(hx_body_kind_t k);
hx_body_kind_t hx_body_kind_from_text(const char *s);

/* The referrer's registration as a receiving clinic reads it, into buf (always terminated):
 * "CMTO 27755 (college)", "MTAA 12345 (association: massage therapy is not regulated by a
 * college in AB)", or "CPO 14523" when intake has not said which it is. Returns buf. */
const char *hx_registration_text(const Handoff__Referrer *r, char *buf, size_t cap);

#endif
