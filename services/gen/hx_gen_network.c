/* hx_gen_network — the synthetic network: clinics in places of several provinces, their
 * therapists (discipline, registration, name, languages, weekly hours, virtual visits) and the
 * directory file that describes them (version 2: zones, locations, areas, closures). From
 * stream 0 of the seed, and what version 2 added from a stream of its own
 * (GEN_STREAM_PLACES), so the rest stayed as it was for a seed. */
#include "hx_gen_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A therapist's weekly hours, from the shapes clinics actually staff: day shifts, split
 * days, late shifts with a Saturday morning, evenings, part-time, weekends, four long days.
 * Windows come out by day, then by time, never overlapping. */
static size_t make_hours(rng_t *r, win_t out[21])
{
    static const unsigned shape_weights[] = {26, 12, 16, 10, 14, 8, 14};
    size_t n = 0;
    switch (weighted(r, shape_weights, GEN_COUNT(shape_weights))) {
    case 0: {   /* day shift, sometimes a weekday off */
        static const unsigned starts[] = {DAY_MIN(7, 30), DAY_MIN(8, 0), DAY_MIN(8, 30), DAY_MIN(9, 0)};
        unsigned from = PICK(r, starts);
        unsigned off = chance(r, 30) ? between(r, 1, 5) : 0;
        for (unsigned d = 1; d <= 5; d++)
            if (d != off)
                n = gen_add_win(out, n, d, from, from + 8 * 60);
        break;
    }
    case 1:     /* split day with a lunch break */
        for (unsigned d = 1; d <= 5; d++) {
            n = gen_add_win(out, n, d, DAY_MIN(9, 0), DAY_MIN(12, 0));
            n = gen_add_win(out, n, d, DAY_MIN(13, 0), DAY_MIN(17, 0));
        }
        break;
    case 2: {   /* alternating late and early shifts, Saturday morning */
        bool late_first = chance(r, 50);
        for (unsigned d = 1; d <= 4; d++) {
            bool late = (d % 2 == 1) == late_first;
            n = late ? gen_add_win(out, n, d, DAY_MIN(12, 0), DAY_MIN(20, 0))
                     : gen_add_win(out, n, d, DAY_MIN(8, 0), DAY_MIN(16, 0));
        }
        if (chance(r, 60))
            n = gen_add_win(out, n, 6, DAY_MIN(9, 0), DAY_MIN(13, 0));
        break;
    }
    case 3:     /* evenings and Saturday morning */
        for (unsigned d = 1; d <= 5; d++)
            n = gen_add_win(out, n, d, DAY_MIN(16, 0), DAY_MIN(21, 0));
        n = gen_add_win(out, n, 6, DAY_MIN(8, 0), DAY_MIN(12, 0));
        break;
    case 4: {   /* part-time: three weekdays and Saturday */
        unsigned skip1 = between(r, 1, 5), skip2 = between(r, 1, 5);
        while (skip2 == skip1)
            skip2 = between(r, 1, 5);
        for (unsigned d = 1; d <= 5; d++)
            if (d != skip1 && d != skip2)
                n = gen_add_win(out, n, d, DAY_MIN(10, 0), DAY_MIN(18, 0));
        n = gen_add_win(out, n, 6, DAY_MIN(9, 0), DAY_MIN(15, 0));
        break;
    }
    case 5: {   /* weekend-heavy: Thursday or Wednesday to Sunday */
        unsigned first = chance(r, 50) ? 3 : 4;
        for (unsigned d = first; d <= 6; d++)
            n = gen_add_win(out, n, d, DAY_MIN(9, 0), DAY_MIN(17, 0));
        n = gen_add_win(out, n, 7, DAY_MIN(10, 0), DAY_MIN(16, 0));
        break;
    }
    default:    /* four long days and Saturday */
        for (unsigned d = 2; d <= 6; d++)
            n = gen_add_win(out, n, d, DAY_MIN(10, 0), DAY_MIN(18, 0));
        break;
    }
    return n;
}

/* A unique registration number for the k-th therapist of a discipline: an affine
 * permutation of the number range, so numbers look random but never repeat.
 * Physiotherapists 5 digits; massage therapists 4 (5 past 9,000); then fitted to the body
 * (gen_registration). */
static void registration_number(int discipline, size_t k, uint64_t offset, char out[8])
{
    const uint64_t a = 7919;    /* prime, coprime with 9,000 and 90,000 */
    if (discipline == D_RMT && k < 9000)
        snprintf(out, 8, "%u", (unsigned)(1000 + (a * k + offset) % 9000));
    else
        snprintf(out, 8, "%u", (unsigned)(10000 + (a * (discipline == D_RMT ? k - 9000 : k) + offset) % 90000));
}

/* Minutes after midnight as "HH:MM". */
static void format_hhmm(unsigned minutes, char out[6])
{
    snprintf(out, 6, "%02u:%02u", (minutes / 60) % 100u, minutes % 60);
}

json_t *gen_hours_json(const win_t *w, size_t n, bool *oom)
{
    json_t *a = json_array();
    if (!a) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char from[6], to[6];
        format_hhmm(w[i].from, from);
        format_hhmm(w[i].to, to);
        json_t *o = json_object();
        if (o) {
            gen_put(o, "day", json_integer(w[i].day), oom);
            gen_put(o, "from", json_string(from), oom);
            gen_put(o, "to", json_string(to), oom);
        }
        gen_push(a, o, oom);
    }
    return a;
}

/* The pattern of a clinic's name ("%s Physiotherapy"), by what it offers. */
static const char *clinic_kind_name(rng_t *r, unsigned disciplines, bool french)
{
    static const char *const mixed[] = {"%s Physiotherapy & Massage", "%s Physio and Massage Therapy",
                                        "%s Rehab and Wellness", "%s Health Collective",
                                        "%s Sports Medicine & Massage", "%s Integrated Health"};
    static const char *const pt[] = {"%s Physiotherapy", "%s Physio Clinic", "%s Rehabilitation Centre"};
    static const char *const rmt[] = {"%s Massage Therapy", "%s Therapeutic Massage", "%s Massage Studio"};
    if (french)
        return disciplines == (1u << D_PT)    ? "Physiothérapie %s"
               : disciplines == (1u << D_RMT) ? "Massothérapie %s"
                                              : "Clinique %s";
    return disciplines == (1u << D_PT)    ? PICK(r, pt)
           : disciplines == (1u << D_RMT) ? PICK(r, rmt)
                                          : PICK(r, mixed);
}

/* Therapists per clinic: one each, the rest spread with uneven weights (1..4). */
static int clinic_sizes(rng_t *r, size_t n_clinics, size_t n_therapists, size_t *sizes)
{
    unsigned *cum = calloc(n_clinics, sizeof *cum);
    if (!cum)
        return -1;
    unsigned total = 0;
    for (size_t i = 0; i < n_clinics; i++) {
        sizes[i] = 1;
        total += (unsigned)between(r, 1, 4);
        cum[i] = total;
    }
    for (size_t k = n_clinics; k < n_therapists; k++) {
        unsigned x = (unsigned)below(r, total);
        size_t lo = 0, hi = n_clinics - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cum[mid] > x)
                hi = mid;
            else
                lo = mid + 1;
        }
        sizes[lo]++;
    }
    free(cum);
    return 0;
}

/* What clinics offer: most both disciplines; some physiotherapy only, some massage only. */
enum { CLINIC_MIXED, CLINIC_PT, CLINIC_RMT };

/* The discipline of the k-th of n therapists at a clinic of that kind: a mixed clinic's first
 * two are a physiotherapist and a massage therapist. */
static int therapist_discipline(rng_t *r, size_t clinic_kind, size_t k, size_t n)
{
    if (clinic_kind == CLINIC_PT)
        return D_PT;
    if (clinic_kind == CLINIC_RMT)
        return D_RMT;
    if (n == 1)
        return chance(r, 65) ? D_PT : D_RMT;
    return k == 0 ? D_PT : k == 1 ? D_RMT : chance(r, 60) ? D_PT : D_RMT;
}

/* The network as it is built: the directory's arrays, how often each place is used, the
 * next therapist, the registration offsets by discipline; p, the places' stream. */
typedef struct {
    json_t *clinics, *therapists;
    unsigned *place_uses;
    size_t next_therapist;
    uint64_t offset[3];
    rng_t p;
    bool oom;
} net_t;

/* Therapist t (discipline d) at clinic i: its record in g and its directory entry. The
 * registration numbers of a discipline are permuted by net->offset[d]. Returns 0, or -1
 * when out of memory. */
static int add_therapist(hx_gen_t *g, rng_t *r, net_t *net, size_t t, size_t i, int d, bool french)
{
    json_t *therapists = net->therapists;
    bool *oom = &net->oom;
    g_therapist_t *th = &g->therapists[t];
    g_clinic_t *c = &g->clinics[i];
    c->disciplines |= 1u << d;
    th->discipline = d;
    th->clinic = i;
    size_t nth = g->n_by_discipline[d];
    g->by_discipline[d][g->n_by_discipline[d]++] = t;
    char digits[8];
    registration_number(d, nth, net->offset[d], digits);
    th->body = gen_registration(c->province, d, rng_next(&net->p), digits, th->number, sizeof th->number);

    const char *given, *family;
    int cu = gen_culture(r, french);
    gen_name(r, cu, &given, &family);
    snprintf(th->name, sizeof th->name, "%s %s (generated)", given, family);
    char gslug[16], fslug[24], id[32];
    gen_ascii_slug(gslug, sizeof gslug, given);
    gen_ascii_slug(fslug, sizeof fslug, family);
    snprintf(th->email_local, sizeof th->email_local, "%c%s", gslug[0] ? gslug[0] : 't', fslug);
    snprintf(id, sizeof id, "t-%s-%zu", gslug[0] ? gslug : "x", t + 1);

    const char *langs[4];
    size_t n_langs = gen_therapist_languages(r, cu, langs);
    win_t hours[21];
    size_t n_hours = make_hours(r, hours);
    bool virtual_ok = chance(r, d == D_PT ? 55 : 15);

    json_t *o = json_object(), *la = json_array();
    if (!o || !la) {
        json_decref(o);
        json_decref(la);
        return -1;
    }
    for (size_t l = 0; l < n_langs; l++)
        gen_push(la, json_string(langs[l]), oom);
    char registration[32];
    snprintf(registration, sizeof registration, "%s %s", th->body, th->number);
    gen_put(o, "id", json_string(id), oom);
    gen_put(o, "name", json_string(th->name), oom);
    gen_put(o, "discipline", json_string(d == D_PT ? "physiotherapy" : "massage_therapy"), oom);
    gen_put(o, "registration", json_string(registration), oom);
    gen_put(o, "clinic_id", json_string(c->id), oom);
    gen_put(o, "languages", la, oom);
    gen_put(o, "virtual", json_boolean(virtual_ok), oom);
    gen_put(o, "hours", gen_hours_json(hours, n_hours, oom), oom);
    gen_push(therapists, o, oom);
    return 0;
}

/* Where clinic i is: the Ontario place drawn from r (as before places outside Ontario), then
 * from the places' stream: the second clinic in British Columbia (the network spans the
 * Eastern and Pacific zones from two clinics on), others outside Ontario about a third of
 * the time. */
static const place_t *clinic_place(rng_t *r, net_t *net, size_t i, size_t *pi)
{
    const place_t *all;
    gen_places(&all);
    *pi = below(r, gen_places_ontario());
    if (i == 1)
        *pi = gen_place_elsewhere(&net->p, "BC");
    else if (i > 1 && chance(&net->p, 38))
        *pi = gen_place_elsewhere(&net->p, NULL);
    return &all[*pi];
}

/* The clinic's directory entry: where and when, with its location near its place. */
static json_t *clinic_json(const hx_gen_t *g, net_t *net, const g_clinic_t *c, const place_t *pl,
                           const char *name)
{
    bool *oom = &net->oom;
    json_t *o = json_object(), *loc = json_object();
    if (!o || !loc) {
        json_decref(o);
        json_decref(loc);
        *oom = true;
        return NULL;
    }
    int32_t lat = pl->lat_e4, lon = pl->lon_e4;
    gen_jitter(&net->p, &lat, &lon);
    char postal[8];
    gen_postal_code(&net->p, pl->fsa, postal);
    gen_put(loc, "lat", gen_coordinate(lat), oom);
    gen_put(loc, "lon", gen_coordinate(lon), oom);
    gen_put(loc, "postal_code", json_string(postal), oom);
    gen_put(o, "id", json_string(c->id), oom);
    gen_put(o, "name", json_string(name), oom);
    gen_put(o, "city", json_string(c->city), oom);
    gen_put(o, "province", json_string(c->province), oom);
    gen_put(o, "time_zone", json_string(gen_province_zone(c->province)), oom);
    gen_put(o, "location", loc, oom);
    gen_put(o, "closures", gen_closures_json(&net->p, c->province, g->last_day - 27,
                                             g->last_day + GEN_CLOSURE_DAYS_AFTER, oom), oom);
    return o;
}

/* Clinic i, with its n therapists. Returns 0, or -1 when out of memory. */
static int add_clinic(hx_gen_t *g, rng_t *r, net_t *net, size_t i, size_t n)
{
    g_clinic_t *c = &g->clinics[i];
    size_t pi;
    const place_t *pl = clinic_place(r, net, i, &pi);
    unsigned use = ++net->place_uses[pi];
    if (use == 1)
        snprintf(c->id, sizeof c->id, "%s", pl->slug);
    else
        snprintf(c->id, sizeof c->id, "%s-%u", pl->slug, use);
    snprintf(c->city, sizeof c->city, "%s", pl->city);
    snprintf(c->area, sizeof c->area, "%s", pl->area);
    snprintf(c->province, sizeof c->province, "%s", pl->province);
    c->place = pi;

    static const unsigned clinic_kinds[] = {[CLINIC_MIXED] = 85, [CLINIC_PT] = 10, [CLINIC_RMT] = 5};
    size_t ck = weighted(r, clinic_kinds, GEN_COUNT(clinic_kinds));
    for (size_t k = 0; k < n; k++, net->next_therapist++) {
        int d = therapist_discipline(r, ck, k, n);
        if (add_therapist(g, r, net, net->next_therapist, i, d, pl->french) != 0)
            return -1;
    }

    char display[48], name[64];
    if (use == 1)
        snprintf(display, sizeof display, "%s", pl->display);
    else
        snprintf(display, sizeof display, "%s %u", pl->display, use);
    const char *fmt = clinic_kind_name(r, c->disciplines, pl->french);
    const char *hole = strstr(fmt, "%s");
    snprintf(name, sizeof name, "%.*s%s%s (generated)", (int)(hole - fmt), fmt, display, hole + 2);
    gen_push(net->clinics, clinic_json(g, net, c, pl, name), &net->oom);
    return 0;
}

/* The directory's "areas": the forward sortation areas of every place in a city of the
 * network (where its patients live, gen_place_in_city), each once, at its place. */
static int add_areas(const hx_gen_t *g, json_t *areas, bool *oom)
{
    const place_t *all;
    size_t n = gen_places(&all);
    bool *city_used = calloc(n, sizeof *city_used);
    if (!city_used)
        return -1;
    for (size_t i = 0; i < g->n_clinics; i++)
        for (size_t k = 0; k < n; k++)
            city_used[k] |= !strcmp(all[k].city, g->clinics[i].city);
    for (size_t k = 0; k < n; k++) {
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = city_used[j] && !strcmp(all[j].fsa, all[k].fsa);
        if (!city_used[k] || seen)
            continue;
        json_t *o = json_object();
        if (o) {
            gen_put(o, "fsa", json_string(all[k].fsa), oom);
            gen_put(o, "lat", gen_coordinate(all[k].lat_e4), oom);
            gen_put(o, "lon", gen_coordinate(all[k].lon_e4), oom);
        }
        gen_push(areas, o, oom);
    }
    free(city_used);
    return 0;
}

int gen_build_network(hx_gen_t *g, size_t n_clinics, size_t n_therapists)
{
    rng_t r = rng_stream(g->seed, 0);
    const place_t *all;
    net_t net = {.clinics = json_array(), .therapists = json_array(),
                 .place_uses = calloc(gen_places(&all), sizeof *net.place_uses),
                 .p = rng_stream(g->seed, GEN_STREAM_PLACES)};
    json_t *areas = json_array();
    size_t *sizes = calloc(n_clinics, sizeof *sizes);
    g->clinics = calloc(n_clinics, sizeof *g->clinics);
    g->therapists = calloc(n_therapists, sizeof *g->therapists);
    g->by_discipline[D_PT] = calloc(n_therapists, sizeof(size_t));
    g->by_discipline[D_RMT] = calloc(n_therapists, sizeof(size_t));
    g->directory = json_object();
    int rc = -1;
    if (!g->clinics || !g->therapists || !sizes || !net.place_uses || !g->by_discipline[D_PT] ||
        !g->by_discipline[D_RMT] || !net.clinics || !net.therapists || !g->directory || !areas)
        goto out;
    gen_put(g->directory, "version", json_integer(2), &net.oom);
    gen_put(g->directory, "time_zone", json_string(GEN_NETWORK_ZONE), &net.oom);
    gen_put(g->directory, "areas", json_incref(areas), &net.oom);
    gen_put(g->directory, "clinics", json_incref(net.clinics), &net.oom);
    gen_put(g->directory, "therapists", json_incref(net.therapists), &net.oom);

    if (clinic_sizes(&r, n_clinics, n_therapists, sizes) != 0)
        goto out;
    net.offset[D_PT] = rng_next(&r) % 90000;
    net.offset[D_RMT] = rng_next(&r) % 9000;
    for (size_t i = 0; i < n_clinics; i++)
        if (add_clinic(g, &r, &net, i, sizes[i]) != 0)
            goto out;
    g->n_clinics = n_clinics;
    g->n_therapists = n_therapists;
    if (add_areas(g, areas, &net.oom) != 0)
        goto out;
    rc = net.oom ? -1 : 0;

out:
    json_decref(areas);
    json_decref(net.clinics);
    json_decref(net.therapists);
    free(net.place_uses);
    free(sizes);
    return rc;
}
