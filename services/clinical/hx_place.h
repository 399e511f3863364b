/* hx_place — where clinics and patients are, and when clinics are closed: the directory's
 * location, closure and area entries (docs/OPERATIONS.md, "Directory"), and distances.
 * For hx_schedule.c; pure. */
#ifndef HX_PLACE_H
#define HX_PLACE_H
#include <jansson.h>
#include <stdbool.h>

#include "hx_errors.h"
#include "hx_schedule.h"

/* One forward sortation area of the directory's "areas": where its patients are taken to be. */
typedef struct {
    char fsa[4];                /* "M5V" */
    double lat, lon;
} hx_area_t;

/* "location": {"lat": 43.65, "lon": -79.38, "postal_code": "M5V 2T6"} into c. */
void hx_place_parse_location(const json_t *v, const char *path, hx_clinic_t *c, hx_errors_t *e);
/* "closures": [{"from": "2026-12-25", "to": "2026-12-26", "reason": "..."}] into c. */
void hx_place_parse_closures(const json_t *v, const char *path, hx_clinic_t *c, hx_errors_t *e);
/* "province": a Canadian province or territory ("ON") into c. */
void hx_place_parse_province(const json_t *v, const char *path, hx_clinic_t *c, hx_errors_t *e);
/* "areas": [{"fsa": "M5V", "lat": 43.64, "lon": -79.40}] into a malloc'd array. */
hx_area_t *hx_place_parse_areas(const json_t *v, const char *path, size_t *n, hx_errors_t *e);
/* The forward sortation area of a Canadian postal code ("m5v 2t6" -> "M5V"): 0, or -1 when it
 * does not begin with one (letter, digit, letter; the first letter one Canada Post uses). */
int hx_place_fsa(const char *postal_code, char fsa[4]);

#endif
