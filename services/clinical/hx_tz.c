/* hx_tz — IANA time zones through the C library (see hx_tz.h).
 *
 * Loading samples the zone's offset every day at 00:00 UTC from 2000 to 2100 with
 * localtime_r under TZ=name, and bisects each day whose offset differs from the day before
 * to the minute: a table of changes (instant, offset after). Zone rules change at most a few
 * times a year and never twice in a day, so daily samples find every change. The process's
 * TZ is put back afterwards. Only the loader touches the environment. */
#include "hx_tz.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FIRST_YEAR_UTC 946684800LL      /* 2000-01-01T00:00Z, seconds */
#define LAST_YEAR_UTC 4102444800LL      /* 2100-01-01T00:00Z */
#define DAY_S 86400LL

typedef struct {
    int64_t at;         /* utc minute from which offset holds */
    int offset;         /* minutes */
} change_t;

struct hx_tz {
    char name[64];
    int first;          /* offset before the first change */
    change_t *changes;
    size_t n;
};

static bool name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63 || name[0] == '/' || strstr(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '/' ||
              ch == '_' || ch == '-' || ch == '+'))
            return false;
    }
    return true;
}

/* Whether tzdata has the zone: a file that begins with TZif (the zone file's magic). */
static bool installed(const char *name)
{
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", name);
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool ok = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
    if (f)
        fclose(f);
    return ok;
}

static int offset_at(time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    return (int)(tm.tm_gmtoff / 60);
}

static int push(hx_tz_t *z, int64_t at, int offset, size_t *cap)
{
    if (z->n == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        change_t *g = realloc(z->changes, c * sizeof *g);
        if (!g)
            return -1;
        z->changes = g;
        *cap = c;
    }
    z->changes[z->n++] = (change_t){at, offset};
    return 0;
}

/* Samples the zone now in TZ; 0, or -1 (out of memory, or an offset off the quarter hour). */
static int sample(hx_tz_t *z)
{
    size_t cap = 0;
    int prev = z->first = offset_at((time_t)FIRST_YEAR_UTC);
    if (prev % 15 != 0)
        return -1;
    for (int64_t day = FIRST_YEAR_UTC + DAY_S; day <= LAST_YEAR_UTC; day += DAY_S) {
        int now = offset_at((time_t)day);
        if (now == prev)
            continue;
        if (now % 15 != 0)
            return -1;
        int64_t lo = day - DAY_S, hi = day;     /* offset prev at lo, now at hi: bisect to the minute */
        while (hi - lo > 60) {
            int64_t mid = lo + (hi - lo) / 2 / 60 * 60;
            if (mid <= lo)
                mid = lo + 60;
            if (offset_at((time_t)mid) == prev)
                lo = mid;
            else
                hi = mid;
        }
        if (push(z, hi / 60, now, &cap) != 0)
            return -1;
        prev = now;
    }
    return 0;
}

hx_tz_t *hx_tz_load(const char *name, char *why, size_t cap)
{
    if (!name_ok(name) || !installed(name)) {
        snprintf(why, cap, "'%.63s' is not a time zone of tzdata (an IANA name such as America/Toronto, "
                           "in %s)", name ? name : "", getenv("TZDIR") ? getenv("TZDIR") : "/usr/share/zoneinfo");
        return NULL;
    }
    hx_tz_t *z = calloc(1, sizeof *z);
    if (!z) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    snprintf(z->name, sizeof z->name, "%s", name);
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    char tz[80];
    snprintf(tz, sizeof tz, ":%s", name);
    setenv("TZ", tz, 1);
    tzset();
    int rc = sample(z);
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
    if (rc != 0) {
        snprintf(why, cap, "'%s': an offset is not a whole number of quarter hours (slots are on a 15-minute grid)",
                 name);
        hx_tz_destroy(&z);
    }
    return z;
}

void hx_tz_destroy(hx_tz_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->changes);
    free(*self_p);
    *self_p = NULL;
}

const char *hx_tz_name(const hx_tz_t *z)
{
    return z->name;
}

/* Index of the last change at or before utc, or -1 when utc is before every change. */
static ptrdiff_t last_change(const hx_tz_t *z, int64_t utc)
{
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->changes[mid].at <= utc)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

int hx_tz_offset(const hx_tz_t *z, int64_t utc)
{
    ptrdiff_t i = last_change(z, utc);
    return i < 0 ? z->first : z->changes[i].offset;
}

int64_t hx_tz_to_local(const hx_tz_t *z, int64_t utc)
{
    return utc + hx_tz_offset(z, utc);
}

int hx_tz_to_utc(const hx_tz_t *z, int64_t local, int64_t *utc)
{
    /* Changes are never within two days of each other: the offsets in force a day before and
     * a day after are the only candidates. The earlier valid instant wins (a fold). */
    int a = hx_tz_offset(z, local - 1440), b = hx_tz_offset(z, local + 1440);
    int64_t ua = local - a, ub = local - b;
    bool va = hx_tz_offset(z, ua) == a, vb = hx_tz_offset(z, ub) == b;
    if (!va && !vb)
        return -1;
    *utc = va && vb ? (ua < ub ? ua : ub) : va ? ua : ub;
    return 0;
}

int64_t hx_tz_next_change(const hx_tz_t *z, int64_t utc)
{
    ptrdiff_t i = last_change(z, utc);
    size_t next = (size_t)(i + 1);
    return next < z->n ? z->changes[next].at : INT64_MAX;
}

void hx_tz_offset_text(int offset, char out[7])
{
    int a = offset < 0 ? -offset : offset;
    snprintf(out, 7, "%c%02d:%02d", offset < 0 ? '-' : '+', a / 60 % 100, a % 60);
}
