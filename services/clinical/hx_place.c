/* hx_place — locations, closures, areas and distances (see hx_place.h). */
#include "hx_place.h"
#include "hx_util.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EARTH_KM 6371.0088      /* the mean radius (IUGG) */
#define AREAS_MAX 5000

double hx_geo_km(double lat1, double lon1, double lat2, double lon2)
{
    const double r = M_PI / 180.0;
    double dlat = (lat2 - lat1) * r, dlon = (lon2 - lon1) * r;
    double a = sin(dlat / 2) * sin(dlat / 2) + cos(lat1 * r) * cos(lat2 * r) * sin(dlon / 2) * sin(dlon / 2);
    return 2 * EARTH_KM * asin(sqrt(a < 1 ? a : 1));
}

int hx_place_fsa(const char *postal_code, char fsa[4])
{
    /* Canada Post never uses D, F, I, O, Q, U, W, Z as the first letter */
    if (!postal_code || strlen(postal_code) < 3)
        return -1;
    char a = (char)toupper((unsigned char)postal_code[0]), b = postal_code[1],
         c = (char)toupper((unsigned char)postal_code[2]);
    if (!strchr("ABCEGHJKLMNPRSTVXY", a) || a == '\0' || !isdigit((unsigned char)b) || !isalpha((unsigned char)c))
        return -1;
    fsa[0] = a, fsa[1] = b, fsa[2] = c, fsa[3] = '\0';
    return 0;
}

static bool number(const json_t *v, double lo, double hi, double *out)
{
    if (!json_is_number(v))
        return false;
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return false;
    *out = x;
    return true;
}

/* A latitude and longitude from o's "lat" and "lon", errors under path. */
static bool lat_lon(const json_t *o, const char *path, double *lat, double *lon, hx_errors_t *e)
{
    char p[128];
    bool ok = true;
    hx_path_key(p, sizeof p, path, "lat");
    if (!number(json_object_get(o, "lat"), -90, 90, lat)) {
        hx_errors_add(e, p, "required: a latitude in degrees, -90 to 90");
        ok = false;
    }
    hx_path_key(p, sizeof p, path, "lon");
    if (!number(json_object_get(o, "lon"), -180, 180, lon)) {
        hx_errors_add(e, p, "required: a longitude in degrees, -180 to 180");
        ok = false;
    }
    return ok;
}

void hx_place_parse_location(const json_t *v, const char *path, hx_clinic_t *c, hx_errors_t *e)
{
    if (!json_is_object(v)) {
        hx_errors_add(e, path, "must be an object: {\"lat\": 43.65, \"lon\": -79.38, \"postal_code\": \"M5V 2T6\"}");
        return;
    }
    const char *key;
    json_t *x;
    char p[128];
    json_object_foreach((json_t *)v, key, x) {
        hx_path_key(p, sizeof p, path, key);
        if (strcmp(key, "lat") && strcmp(key, "lon") && strcmp(key, "postal_code"))
            hx_errors_add(e, p, "unknown field");
    }
    c->located = lat_lon(v, path, &c->lat, &c->lon, e);
    const json_t *pc = json_object_get(v, "postal_code");
    char fsa[4];
    if (!pc)
        return;
    hx_path_key(p, sizeof p, path, "postal_code");
    const char *s = json_string_value(pc);
    if (!s || strlen(s) >= sizeof c->postal_code || hx_place_fsa(s, fsa) != 0)
        hx_errors_add(e, p, "must be a Canadian postal code such as \"M5V 2T6\" (at most 7 characters)");
    else
        snprintf(c->postal_code, sizeof c->postal_code, "%s", s);
}

static const char *const provinces[] = {"AB", "BC", "MB", "NB", "NL", "NS", "NT", "NU", "ON", "PE", "QC", "SK", "YT"};

void hx_place_parse_province(const json_t *v, const char *path, hx_clinic_t *c, hx_errors_t *e)
{
    const char *s = json_string_value(v);
    for (size_t i = 0; s && i < sizeof provinces / sizeof *provinces; i++)
        if (!strcmp(s, provinces[i])) {
            snprintf(c->province, sizeof c->province, "%s", s);
            return;
        }
    hx_errors_add(e, path, "must be a province or territory: AB, BC, MB, NB, NL, NS, NT, NU, ON, PE, QC, SK or YT");
}

/* One closure {"from", "to" (optional: one day), "reason" (optional)}; 0 or -1. */
static int closure(const json_t *o, const char *path, hx_closure_t *out, hx_errors_t *e)
{
    char p[128];
    const char *key;
    json_t *x;
    if (!json_is_object(o)) {
        hx_errors_add(e, path, "must be an object: {\"from\": \"2026-12-25\", \"to\": \"2026-12-26\", \"reason\": \"...\"}");
        return -1;
    }
    json_object_foreach((json_t *)o, key, x) {
        hx_path_key(p, sizeof p, path, key);
        if (strcmp(key, "from") && strcmp(key, "to") && strcmp(key, "reason"))
            hx_errors_add(e, p, "unknown field");
        else if (!strcmp(key, "reason") && (!json_is_string(x) || json_string_length(x) > 120))
            hx_errors_add(e, p, "must be a string of at most 120 bytes");
    }
    const char *from = json_string_value(json_object_get(o, "from"));
    const json_t *tj = json_object_get(o, "to");
    const char *to = tj ? json_string_value(tj) : from;
    hx_path_key(p, sizeof p, path, "from");
    if (!from || hx_date_parse(from, &out->from_day) != 0) {
        hx_errors_add(e, p, "required: a date YYYY-MM-DD (the clinic's own calendar)");
        return -1;
    }
    hx_path_key(p, sizeof p, path, "to");
    if (!to || hx_date_parse(to, &out->to_day) != 0 || out->to_day < out->from_day) {
        hx_errors_add(e, p, "must be a date YYYY-MM-DD, not before \"from\"");
        return -1;
    }
    return 0;
}

void hx_place_parse_closures(const json_t *v, const char *path, hx_clinic_t *c, hx_errors_t *e)
{
    if (!json_is_array(v) || json_array_size(v) > HX_CLOSURES_MAX) {
        hx_errors_add(e, path, "must be an array of at most %d closures", HX_CLOSURES_MAX);
        return;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        char p[128];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        if (closure(json_array_get(v, i), p, &c->closures[c->n_closures], e) == 0)
            c->n_closures++;
    }
}

hx_area_t *hx_place_parse_areas(const json_t *v, const char *path, size_t *n, hx_errors_t *e)
{
    *n = 0;
    if (!json_is_array(v) || json_array_size(v) > AREAS_MAX) {
        hx_errors_add(e, path, "must be an array of at most %d areas", AREAS_MAX);
        return NULL;
    }
    hx_area_t *a = calloc(json_array_size(v) + 1, sizeof *a);
    if (!a) {
        hx_errors_add(e, path, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        char p[128], fp[140];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        const json_t *o = json_array_get(v, i);
        const char *fsa = json_string_value(json_object_get(o, "fsa"));
        hx_path_key(fp, sizeof fp, p, "fsa");
        if (!json_is_object(o) || json_object_size(o) != 3) {
            hx_errors_add(e, p, "must be {\"fsa\": \"M5V\", \"lat\": 43.64, \"lon\": -79.40} and nothing else");
            continue;
        }
        if (!fsa || strlen(fsa) != 3 || hx_place_fsa(fsa, a[*n].fsa) != 0) {
            hx_errors_add(e, fp, "must be a forward sortation area: letter, digit, letter (\"M5V\")");
            continue;
        }
        if (lat_lon(o, p, &a[*n].lat, &a[*n].lon, e))
            (*n)++;
    }
    return a;
}
