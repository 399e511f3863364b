/* hx_html — escaped HTML output (see hx_html.h). */
#include "hx_html.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hx_html_init(hx_html_t *b)
{
    memset(b, 0, sizeof *b);
}

void hx_html_free(hx_html_t *b)
{
    free(b->data);
    hx_html_init(b);
}

static void put(hx_html_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void hx_html_markup_(hx_html_t *b, const char *lit)
{
    put(b, lit, strlen(lit));
}

void hx_html_exposition(hx_html_t *b, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c < ' ' && c != '\n') || c > '~' || strchr("<>&", c)) {
            b->failed = 1;
            return;
        }
    }
    put(b, text, len);
}

/* The length of a valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || (n == 2 && s[0] < 0xC2) || (n == 4 && s[0] > 0xF4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xE0 && s[1] < 0xA0) || (n == 3 && s[0] == 0xED && s[1] >= 0xA0) ||
        (n == 4 && s[0] == 0xF0 && s[1] < 0x90) || (n == 4 && s[0] == 0xF4 && s[1] >= 0x90))
        return 0;   /* overlong, a surrogate, or past U+10FFFF */
    return n;
}

void hx_html_text(hx_html_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (p && *p) {
        const char *rep = NULL;
        switch (*p) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        case '`': rep = "&#96;"; break;
        default: break;
        }
        size_t n = rep ? 1 : utf8_len(p);
        if (rep)
            put(b, rep, strlen(rep));
        else if (n == 0 || (*p < 0x20 && *p != '\t' && *p != '\n') || *p == 0x7f)
            put(b, "\xEF\xBF\xBD", 3);      /* U+FFFD: never a control character or broken UTF-8 */
        else
            put(b, (const char *)p, n);
        p += n ? n : 1;
    }
}

void hx_html_query(hx_html_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        bool keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                    *p == '-' || *p == '.' || *p == '_' || *p == '~';
        char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        put(b, keep ? (const char *)p : enc, keep ? 1 : 3);   /* nothing here needs HTML escaping */
    }
}

/* One conversion at *f (after '%'): written from ap; returns the characters of the format it
 * used, or 0 when it is not one hx_html takes. */
static size_t convert(hx_html_t *b, const char *f, va_list *ap)
{
    char num[32];
    if (f[0] == 's') {
        hx_html_text(b, va_arg(*ap, const char *));
        return 1;
    }
    if (f[0] == '%') {
        put(b, "%", 1);
        return 1;
    }
    static const struct {
        const char *spec;
        int kind;
    } nums[] = {{"lld", 5}, {"llu", 6}, {"ld", 3}, {"lu", 4}, {"zu", 7}, {"d", 1}, {"u", 2}};
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        size_t n = strlen(nums[i].spec);
        if (strncmp(f, nums[i].spec, n) != 0)
            continue;
        switch (nums[i].kind) {
        case 1: snprintf(num, sizeof num, "%d", va_arg(*ap, int)); break;
        case 2: snprintf(num, sizeof num, "%u", va_arg(*ap, unsigned)); break;
        case 3: snprintf(num, sizeof num, "%ld", va_arg(*ap, long)); break;
        case 4: snprintf(num, sizeof num, "%lu", va_arg(*ap, unsigned long)); break;
        case 5: snprintf(num, sizeof num, "%lld", va_arg(*ap, long long)); break;
        case 6: snprintf(num, sizeof num, "%llu", va_arg(*ap, unsigned long long)); break;
        default: snprintf(num, sizeof num, "%zu", va_arg(*ap, size_t)); break;
        }
        put(b, num, strlen(num));
        return n;
    }
    return 0;
}

void hx_html_f_(hx_html_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *f = fmt; *f && !b->failed;) {
        const char *pct = strchr(f, '%');
        if (!pct) {
            put(b, f, strlen(f));
            break;
        }
        put(b, f, (size_t)(pct - f));
        size_t used = convert(b, pct + 1, &ap);
        if (used == 0)
            b->failed = 1;  /* a conversion hx_html does not take: the page is refused, not guessed */
        f = pct + 1 + used;
    }
    va_end(ap);
}
