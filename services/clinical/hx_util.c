/* hx_util — dates, clock times, text checks (see hx_util.h). */
#include "hx_util.h"

#include <stdio.h>
#include <string.h>

/* Howard Hinnant's days_from_civil / civil_from_days, valid for every proleptic Gregorian
 * date representable in int64_t days. */
int64_t hx_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);                          /* [0, 399] */
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;   /* [0, 365] */
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;             /* [0, 146096] */
    return era * 146097 + (int64_t)doe - 719468;
}

void hx_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

unsigned hx_days_in_month(int64_t y, unsigned m)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12)
        return 0;
    if (m == 2) {
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        return leap ? 29 : 28;
    }
    return days[m - 1];
}

unsigned hx_weekday(int64_t days)
{
    int64_t r = (days + 3) % 7;     /* 1970-01-01 (day 0) was a Thursday = 4 */
    if (r < 0)
        r += 7;
    return (unsigned)r + 1;
}

static bool digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

int hx_date_parse(const char *s, int64_t *days)
{
    unsigned y, m, d;
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &m) || !digits(s + 8, 2, &d))
        return -1;
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > hx_days_in_month(y, m))
        return -1;
    *days = hx_days_from_civil(y, m, d);
    return 0;
}

int hx_hhmm_parse(const char *s, bool allow_24, unsigned *minutes)
{
    unsigned h, m;
    if (!s || strlen(s) != 5 || s[2] != ':')
        return -1;
    if (!digits(s, 2, &h) || !digits(s + 3, 2, &m))
        return -1;
    if (m > 59 || h > 24 || (h == 24 && (!allow_24 || m != 0)))
        return -1;
    *minutes = h * 60 + m;
    return 0;
}

size_t hx_utf8_chars(const char *s)
{
    size_t n = 0;
    if (!s)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80)
            n++;
    return n;
}

bool hx_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!p)
        return true;
    while (*p) {
        unsigned c = *p, n;
        uint32_t cp, min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;   /* also stops at the NUL terminator */
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n + 1;
    }
    return true;
}

bool hx_is_code(const char *s)
{
    size_t n = 0;
    if (!s || !*s)
        return false;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return n <= HX_CODE_MAX;
}

bool hx_is_id(const char *s)
{
    size_t n = 0;
    if (!s || !*s)
        return false;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return n <= HX_ID_MAX;
}

bool hx_is_blank(const char *s)
{
    if (!s)
        return true;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

/* Paths are truncated on purpose (an error's path has a fixed size); the return value is
 * checked so the compiler knows the truncation is deliberate. */
void hx_path_key(char *out, size_t cap, const char *base, const char *key)
{
    if (snprintf(out, cap, "%s%s%s", base, base[0] ? "." : "", key) < 0 && cap)
        out[0] = '\0';
}

void hx_path_index(char *out, size_t cap, const char *base, size_t i)
{
    if (snprintf(out, cap, "%s[%zu]", base, i) < 0 && cap)
        out[0] = '\0';
}

json_t *hx_json_read(const char *path, const char *text, const char *what, hx_errors_t *errs)
{
    if (!path && !text) {
        hx_errors_add(errs, "", "no %s given", what);
        return NULL;
    }
    json_error_t err;
    json_t *root = path ? json_load_file(path, JSON_REJECT_DUPLICATES, &err)
                        : json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (root)
        return root;
    if (err.line < 0) {         /* not a syntax error: the file could not be read */
        hx_errors_add(errs, path ? path : "", "%s", err.text);
    } else {
        char where[48];
        snprintf(where, sizeof where, "line %d, column %d", err.line, err.column);
        hx_errors_add(errs, where, "%s", err.text);
    }
    return NULL;
}
