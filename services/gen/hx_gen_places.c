/* hx_gen_places — where the synthetic network is, and when its clinics are closed: the places
 * clinics are in (cities of several provinces and time zones, each neighbourhood with its
 * forward sortation area and coordinates), postal codes, the statutory holidays of each
 * province and a clinic's own closures, and the registration of a therapist or physician by
 * the bodies of the registration file (hx_registration) for the province. Every coordinate
 * is kept in ten-thousandths of a degree, so the output is the same on every platform. */
#include "hx_gen_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_registration.h"
#include "hx_util.h"

/* The Ontario places come first (the network's first clinic, and most others, are drawn from
 * them, in this order: keep it); the places of the other provinces follow. Coordinates are
 * near the neighbourhood; the forward sortation area is one of it. */
static const place_t places[] = {
    {"northpoint", "Northpoint", "Toronto", "416", false, "ON", "M2N", 437615, -794111},
    {"lakeside", "Lakeside", "Mississauga", "905", false, "ON", "L5B", 435890, -796441},
    {"riverdale", "Riverdale", "Toronto", "416", false, "ON", "M4K", 436770, -793500},
    {"eastgate", "Eastgate", "Ottawa", "613", false, "ON", "K1P", 454215, -756972},
    {"harbour", "Harbour", "Hamilton", "905", false, "ON", "L8P", 432557, -798711},
    {"laurier", "Laurier", "Ottawa", "613", true, "ON", "K1N", 454231, -756831},
    {"bayview", "Bayview", "Toronto", "416", false, "ON", "M4G", 437110, -793740},
    {"danforth", "Danforth", "Toronto", "416", false, "ON", "M4J", 436850, -793370},
    {"leslieville", "Leslieville", "Toronto", "416", false, "ON", "M4M", 436620, -793330},
    {"annex", "Annex", "Toronto", "416", false, "ON", "M5R", 436700, -794070},
    {"junction", "Junction", "Toronto", "416", false, "ON", "M6P", 436650, -794700},
    {"beaches", "Beaches", "Toronto", "416", false, "ON", "M4E", 436760, -792970},
    {"parkdale", "Parkdale", "Toronto", "416", false, "ON", "M6K", 436400, -794370},
    {"roncesvalles", "Roncesvalles", "Toronto", "416", false, "ON", "M6R", 436480, -794490},
    {"yorkville", "Yorkville", "Toronto", "416", false, "ON", "M5R", 436710, -793930},
    {"port-credit", "Port Credit", "Mississauga", "905", false, "ON", "L5H", 435510, -795860},
    {"streetsville", "Streetsville", "Mississauga", "905", false, "ON", "L5M", 435830, -797120},
    {"erin-mills", "Erin Mills", "Mississauga", "905", false, "ON", "L5L", 435400, -797000},
    {"meadowvale", "Meadowvale", "Mississauga", "905", false, "ON", "L5N", 435930, -797520},
    {"westdale", "Westdale", "Hamilton", "905", false, "ON", "L8S", 432620, -799060},
    {"ancaster", "Ancaster", "Hamilton", "905", false, "ON", "L9G", 432180, -799870},
    {"stoney-creek", "Stoney Creek", "Hamilton", "905", false, "ON", "L8G", 432170, -797650},
    {"kanata", "Kanata", "Ottawa", "613", false, "ON", "K2L", 453090, -758990},
    {"barrhaven", "Barrhaven", "Ottawa", "613", false, "ON", "K2J", 452760, -757420},
    {"orleans", "Orléans", "Ottawa", "613", true, "ON", "K1C", 454680, -755150},
    {"westboro", "Westboro", "Ottawa", "613", false, "ON", "K1Z", 453930, -757520},
    {"glebe", "Glebe", "Ottawa", "613", false, "ON", "K1S", 454010, -756880},
    {"vanier", "Vanier", "Ottawa", "613", true, "ON", "K1L", 454370, -756620},
    {"cote-de-sable", "Côte-de-Sable", "Ottawa", "613", true, "ON", "K1N", 454260, -756830},
    {"unionville", "Unionville", "Markham", "905", false, "ON", "L3R", 438620, -793140},
    {"thornhill", "Thornhill", "Vaughan", "905", false, "ON", "L4J", 438150, -794250},
    {"bramalea", "Bramalea", "Brampton", "905", false, "ON", "L6T", 437250, -797200},
    {"springdale", "Springdale", "Brampton", "905", false, "ON", "L6R", 437580, -797420},
    {"glen-abbey", "Glen Abbey", "Oakville", "905", false, "ON", "L6M", 434390, -797230},
    {"aldershot", "Aldershot", "Burlington", "905", false, "ON", "L7T", 433000, -798580},
    {"old-south", "Old South", "London", "519", false, "ON", "N6C", 429700, -812400},
    {"masonville", "Masonville", "London", "519", false, "ON", "N6G", 430260, -812770},
    {"uptown", "Uptown", "Waterloo", "519", false, "ON", "N2L", 434650, -805220},
    {"belmont", "Belmont Village", "Kitchener", "519", false, "ON", "N2M", 434400, -805000},
    {"riverside", "Riverside", "Windsor", "519", false, "ON", "N8Y", 423230, -829600},
    {"allandale", "Allandale", "Barrie", "705", false, "ON", "L4N", 443720, -796870},
    {"minnow-lake", "Minnow Lake", "Sudbury", "705", false, "ON", "P3A", 464890, -809560},
    {"portsmouth", "Portsmouth", "Kingston", "613", false, "ON", "K7M", 442240, -765220},
    /* the other provinces */
    {"plateau", "Plateau", "Montréal", "514", true, "QC", "H2J", 455250, -735820},
    {"outremont", "Outremont", "Montréal", "514", true, "QC", "H2V", 455180, -736070},
    {"rosemont", "Rosemont", "Montréal", "514", true, "QC", "H2G", 455430, -735960},
    {"verdun", "Verdun", "Montréal", "514", true, "QC", "H4G", 454580, -735710},
    {"saint-roch", "Saint-Roch", "Québec", "418", true, "QC", "G1K", 468120, -712220},
    {"sainte-foy", "Sainte-Foy", "Québec", "418", true, "QC", "G1V", 467760, -712840},
    {"hull", "Hull", "Gatineau", "819", true, "QC", "J8X", 454280, -757160},
    {"kitsilano", "Kitsilano", "Vancouver", "604", false, "BC", "V6K", 492684, -1231686},
    {"commercial-drive", "Commercial Drive", "Vancouver", "604", false, "BC", "V5N", 492650, -1230690},
    {"mount-pleasant", "Mount Pleasant", "Vancouver", "604", false, "BC", "V5T", 492630, -1231000},
    {"kerrisdale", "Kerrisdale", "Vancouver", "604", false, "BC", "V6M", 492340, -1231550},
    {"west-end", "West End", "Vancouver", "604", false, "BC", "V6G", 492870, -1231350},
    {"lonsdale", "Lonsdale", "North Vancouver", "604", false, "BC", "V7M", 493180, -1230720},
    {"metrotown", "Metrotown", "Burnaby", "604", false, "BC", "V5H", 492260, -1230030},
    {"james-bay", "James Bay", "Victoria", "250", false, "BC", "V8V", 484150, -1233700},
    {"fernwood", "Fernwood", "Victoria", "250", false, "BC", "V8T", 484320, -1233480},
    {"kensington", "Kensington", "Calgary", "403", false, "AB", "T2N", 510530, -1140900},
    {"inglewood", "Inglewood", "Calgary", "403", false, "AB", "T2G", 510370, -1140200},
    {"beltline", "Beltline", "Calgary", "403", false, "AB", "T2R", 510380, -1140750},
    {"strathcona", "Old Strathcona", "Edmonton", "780", false, "AB", "T6E", 535180, -1134970},
    {"oliver", "Oliver", "Edmonton", "780", false, "AB", "T5K", 535410, -1135200},
    {"north-end", "North End", "Halifax", "902", false, "NS", "B3K", 446600, -636000},
    {"spring-garden", "Spring Garden", "Halifax", "902", false, "NS", "B3J", 446430, -635780},
    {"osborne", "Osborne Village", "Winnipeg", "204", false, "MB", "R3L", 498760, -971430},
    {"saint-boniface", "Saint-Boniface", "Winnipeg", "204", true, "MB", "R2H", 498880, -971170},
};

/* The provinces of the places: their IANA zone, and how often a clinic outside Ontario is
 * in them. */
typedef struct {
    const char *code, *zone;
    unsigned weight;
} province_t;

static const province_t provinces[] = {
    {"ON", "America/Toronto", 0},
    {"QC", "America/Toronto", 12},
    {"BC", "America/Vancouver", 10},
    {"AB", "America/Edmonton", 8},
    {"NS", "America/Halifax", 4},
    {"MB", "America/Winnipeg", 4},
};

size_t gen_places(const place_t **out)
{
    *out = places;
    return GEN_COUNT(places);
}

size_t gen_places_ontario(void)
{
    size_t n = 0;
    while (n < GEN_COUNT(places) && !strcmp(places[n].province, "ON"))
        n++;
    return n;
}

const char *gen_province_zone(const char *province)
{
    for (size_t i = 0; i < GEN_COUNT(provinces); i++)
        if (!strcmp(provinces[i].code, province))
            return provinces[i].zone;
    return GEN_NETWORK_ZONE;
}

/* A place of the province, drawn uniformly. */
static size_t place_in(rng_t *p, const char *province)
{
    size_t n = 0, first = 0;
    for (size_t i = 0; i < GEN_COUNT(places); i++)
        if (!strcmp(places[i].province, province) && n++ == 0)
            first = i;
    size_t k = below(p, n);
    for (size_t i = first; i < GEN_COUNT(places); i++)
        if (!strcmp(places[i].province, province) && k-- == 0)
            return i;
    return 0;
}

size_t gen_place_elsewhere(rng_t *p, const char *province)
{
    if (!province) {
        unsigned w[GEN_COUNT(provinces)];
        for (size_t i = 0; i < GEN_COUNT(provinces); i++)
            w[i] = provinces[i].weight;
        province = provinces[weighted(p, w, GEN_COUNT(w))].code;
    }
    return place_in(p, province);
}

size_t gen_place_in_city(rng_t *p, const char *city)
{
    size_t n = 0;
    for (size_t i = 0; i < GEN_COUNT(places); i++)
        n += !strcmp(places[i].city, city);
    size_t k = below(p, n);
    for (size_t i = 0; i < GEN_COUNT(places); i++)
        if (!strcmp(places[i].city, city) && k-- == 0)
            return i;
    return 0;
}

void gen_postal_code(rng_t *p, const char *fsa, char out[8])
{
    /* the letters Canada Post uses in every position */
    static const char letters[] = "ABCEGHJKLMNPRSTVXY";
    snprintf(out, 8, "%.3s %u%c%u", fsa, between(p, 0, 9), letters[below(p, sizeof letters - 1)], between(p, 0, 9));
}

void gen_jitter(rng_t *p, int32_t *lat_e4, int32_t *lon_e4)
{
    *lat_e4 += (int32_t)between(p, 0, 160) - 80;      /* about 1 km either way */
    *lon_e4 += (int32_t)between(p, 0, 240) - 120;
}

json_t *gen_coordinate(int32_t e4)
{
    return json_real((double)e4 / 10000.0);
}

/* ---- registration ------------------------------------------------------------------------ */

static Handoff__Discipline discipline_of(int d)
{
    return d == D_PT    ? HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY
           : d == D_RMT ? HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY
                        : HANDOFF__DISCIPLINE__DISCIPLINE_PHYSICIAN;
}

const char *gen_registration(const char *province, int d, uint64_t pick, const char *digits, char *number, size_t cap)
{
    const hx_registration_t *reg = hx_registration_builtin();
    size_t n = 0;
    const hx_body_t *bodies = reg ? hx_registration_bodies(reg, province, discipline_of(d), &n) : NULL;
    if (n == 0 && reg)
        bodies = hx_registration_bodies(reg, HX_PROVINCE_DEFAULT, discipline_of(d), &n);
    if (n == 0) {
        snprintf(number, cap, "%s", digits);
        return d == D_PT ? "CPO" : d == D_RMT ? "CMTO" : "CPSO";
    }
    const hx_body_t *b = &bodies[pick % n];
    /* digits fit both kinds of number; cut to the body's longest, or padded to its shortest
     * with a leading 1 and zeros (all numbers of a body then keep their order and stay apart) */
    size_t len = strlen(digits);
    if (len > b->max)
        snprintf(number, cap, "%s", digits + (len - b->max));
    else if (len < b->min && b->min < cap)
        snprintf(number, cap, "1%.*s%s", (int)(b->min - len - 1), "00000000000", digits);
    else
        snprintf(number, cap, "%s", digits);
    return b->acronym;
}

/* ---- holidays and closures --------------------------------------------------------------- */

/* A statutory holiday: a fixed date (day > 0), the n-th Monday of the month (monday > 0), the
 * Monday before May 25 (VICTORIA), or a day from Easter (EASTER + offset). provinces: the codes
 * it holds in, "*" all; since, until: the years it held (0: always). */
enum { FIXED, MONDAY, VICTORIA, EASTER };

typedef struct {
    const char *name;
    int rule;
    unsigned month;
    int n;                      /* FIXED: the day; MONDAY: which Monday; EASTER: days from it */
    const char *provinces;
    int since, until;
} holiday_t;

static const holiday_t holidays[] = {
    {"New Year's Day", FIXED, 1, 1, "*", 0, 0},
    {"Family Day", MONDAY, 2, 3, "AB", 1990, 0},
    {"Family Day", MONDAY, 2, 3, "ON SK", 2008, 0},
    {"Family Day", MONDAY, 2, 3, "NB", 2018, 0},
    {"Family Day", MONDAY, 2, 2, "BC", 2013, 2018},
    {"Family Day", MONDAY, 2, 3, "BC", 2019, 0},
    {"Louis Riel Day", MONDAY, 2, 3, "MB", 2008, 0},
    {"Heritage Day", MONDAY, 2, 3, "NS", 2015, 0},
    {"Good Friday", EASTER, 0, -2, "*", 0, 0},
    {"Victoria Day", VICTORIA, 5, 0, "ON BC AB MB SK", 0, 0},
    {"National Patriots' Day", VICTORIA, 5, 0, "QC", 0, 0},
    {"Fête nationale du Québec", FIXED, 6, 24, "QC", 0, 0},
    {"Canada Day", FIXED, 7, 1, "*", 0, 0},
    {"British Columbia Day", MONDAY, 8, 1, "BC", 0, 0},
    {"Labour Day", MONDAY, 9, 1, "*", 0, 0},
    {"National Day for Truth and Reconciliation", FIXED, 9, 30, "BC MB", 2023, 0},
    {"Thanksgiving", MONDAY, 10, 2, "ON QC BC AB MB SK", 0, 0},
    {"Remembrance Day", FIXED, 11, 11, "BC AB NS SK NB PE NL", 0, 0},
    {"Christmas Day", FIXED, 12, 25, "*", 0, 0},
    {"Boxing Day", FIXED, 12, 26, "ON", 0, 0},
};

/* Easter Sunday of year y (the Gregorian computus). */
static int64_t easter(int64_t y)
{
    int64_t a = y % 19, b = y / 100, c = y % 100, d = b / 4, e = b % 4, f = (b + 8) / 25, g = (b - f + 1) / 3;
    int64_t h = (19 * a + b - d - g + 15) % 30, i = c / 4, k = c % 4, l = (32 + 2 * e + 2 * i - h - k) % 7;
    int64_t m = (a + 11 * h + 22 * l) / 451, month = (h + l - 7 * m + 114) / 31, day = (h + l - 7 * m + 114) % 31 + 1;
    return hx_days_from_civil(y, (unsigned)month, (unsigned)day);
}

static int64_t holiday_day(const holiday_t *h, int64_t y)
{
    switch (h->rule) {
    case FIXED:
        return hx_days_from_civil(y, h->month, (unsigned)h->n);
    case MONDAY: {
        int64_t first = hx_days_from_civil(y, h->month, 1);
        return first + (8 - hx_weekday(first)) % 7 + 7 * (h->n - 1);
    }
    case VICTORIA: {
        int64_t d24 = hx_days_from_civil(y, 5, 24);
        return d24 - (hx_weekday(d24) + 6) % 7;
    }
    default:
        return easter(y) + h->n;
    }
}

static bool holds_in(const holiday_t *h, const char *province, int64_t y)
{
    if ((h->since && y < h->since) || (h->until && y > h->until))
        return false;
    if (!strcmp(h->provinces, "*"))
        return true;
    for (const char *s = h->provinces; (s = strstr(s, province)) != NULL; s++)
        if ((s == h->provinces || s[-1] == ' ') && (s[2] == ' ' || s[2] == '\0'))
            return true;
    return false;
}

/* One closure being built: its days, and up to four names of what it is. */
typedef struct {
    int64_t from, to;
    const char *names[4];
    bool observed[4];
    size_t n_names;
} closure_t;

#define MAX_GEN_CLOSURES 48

static bool day_taken(const closure_t *c, size_t n, int64_t day)
{
    for (size_t i = 0; i < n; i++)
        if (day >= c[i].from && day <= c[i].to)
            return true;
    return false;
}

/* The province's holidays of year y into c (n so far); a fixed-date one on a weekend is also
 * closed on its observed day, the next weekday not closed already. */
static size_t year_holidays(const char *province, int64_t y, closure_t *c, size_t n)
{
    for (size_t i = 0; i < GEN_COUNT(holidays) && n + 2 <= MAX_GEN_CLOSURES; i++) {
        const holiday_t *h = &holidays[i];
        if (!holds_in(h, province, y))
            continue;
        int64_t day = holiday_day(h, y);
        c[n++] = (closure_t){day, day, {h->name}, {false}, 1};
        if (h->rule != FIXED || hx_weekday(day) < 6)
            continue;
        int64_t obs = day + 1;
        while (hx_weekday(obs) >= 6 || day_taken(c, n, obs))
            obs++;
        c[n++] = (closure_t){obs, obs, {h->name}, {true}, 1};
    }
    return n;
}

static int by_from(const void *x, const void *y)
{
    const closure_t *a = x, *b = y;
    if (a->from != b->from)
        return a->from < b->from ? -1 : 1;
    if (a->to != b->to)
        return a->to < b->to ? -1 : 1;
    return strcmp(a->names[0], b->names[0]);
}

/* The length of the reason the names of a and b would make together. */
static size_t reason_len(const closure_t *a, const closure_t *b)
{
    size_t len = 0;
    for (size_t k = 0; k < a->n_names; k++)
        len += strlen(a->names[k]) + (a->observed[k] ? 11 : 0) + 5;
    for (size_t k = 0; k < b->n_names; k++)
        len += strlen(b->names[k]) + (b->observed[k] ? 11 : 0) + 5;
    return len;
}

/* Sorts c and joins closures that touch (Christmas Day and Boxing Day: one closure). */
static size_t merge(closure_t *c, size_t n)
{
    qsort(c, n, sizeof *c, by_from);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && c[i].from <= c[m - 1].to + 1 && c[m - 1].n_names + c[i].n_names <= 4 &&
            reason_len(&c[m - 1], &c[i]) <= 120) {
            closure_t *last = &c[m - 1];
            if (c[i].to > last->to)
                last->to = c[i].to;
            for (size_t k = 0; k < c[i].n_names; k++) {
                last->observed[last->n_names] = c[i].observed[k];
                last->names[last->n_names++] = c[i].names[k];
            }
        } else {
            c[m++] = c[i];
        }
    }
    return m;
}

static void format_day(int64_t days, char out[11])
{
    int64_t y;
    unsigned m, d;
    hx_civil_from_days(days, &y, &m, &d);
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, m % 100u, d % 100u);
}

static json_t *closure_json(const closure_t *c, bool *oom)
{
    char from[11], to[11], reason[128] = "";
    size_t len = 0;
    for (size_t k = 0; k < c->n_names && len < sizeof reason; k++)
        len += (size_t)snprintf(reason + len, sizeof reason - len, "%s%s%s",
                                k == 0 ? "" : k + 1 == c->n_names ? " and " : ", ", c->names[k],
                                c->observed[k] ? " (observed)" : "");
    format_day(c->from, from);
    format_day(c->to, to);
    json_t *o = json_object();
    if (!o) {
        *oom = true;
        return NULL;
    }
    gen_put(o, "from", json_string(from), oom);
    if (c->to != c->from)
        gen_put(o, "to", json_string(to), oom);
    gen_put(o, "reason", json_string(reason), oom);
    return o;
}

/* A clinic's own closures: none for most, one or two for some (training, renovations, ...),
 * on weekdays in [first, last]. */
static size_t own_closures(rng_t *p, int64_t first, int64_t last, closure_t *c, size_t n)
{
    static const char *const why[] = {"Staff training day", "Renovations", "Team retreat", "Floor replacement",
                                      "Clinic move: packing and set-up"};
    static const unsigned days[] = {1, 4, 2, 2, 3};
    static const unsigned how_many_w[] = {65, 25, 10};
    size_t k = weighted(p, how_many_w, GEN_COUNT(how_many_w));
    for (size_t j = 0; j < k && n < MAX_GEN_CLOSURES && last > first + 14; j++) {
        size_t w = below(p, GEN_COUNT(why));
        int64_t from = first + (int64_t)below(p, (size_t)(last - first - 7));
        while (hx_weekday(from) >= 6)
            from++;
        c[n++] = (closure_t){from, from + days[w] - 1, {why[w]}, {false}, 1};
    }
    return n;
}

json_t *gen_closures_json(rng_t *p, const char *province, int64_t first, int64_t last, bool *oom)
{
    closure_t c[MAX_GEN_CLOSURES];
    size_t n = 0;
    int64_t y0, y1, end = hx_days_from_civil(9999, 12, 31);
    if (last > end)
        last = end;
    unsigned m, d;
    hx_civil_from_days(first, &y0, &m, &d);
    hx_civil_from_days(last, &y1, &m, &d);
    for (int64_t y = y0; y <= y1 && y <= 9999; y++)
        n = year_holidays(province, y, c, n);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i].to >= first && c[i].from <= last)
            c[kept++] = c[i];
    n = own_closures(p, first, last, c, kept);
    n = merge(c, n);
    json_t *a = json_array();
    if (!a) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        gen_push(a, closure_json(&c[i], oom), oom);
    return a;
}
