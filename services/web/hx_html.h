/* hx_html — the one way the portal writes HTML, so escaping is never left to a call site:
 * markup is only ever a string literal of the page's own (the macros refuse anything else at
 * compile time), and every value — a patient's name, a referral's reason, a clinic id — goes
 * through hx_html_text or a %s of HX_HTML_F, escaped for element content and for quoted
 * attribute values alike (& < > " ' and `), with control characters and invalid UTF-8
 * replaced. Values in a URL's query go through hx_html_query (percent-encoding, then escaped). */
#ifndef HX_HTML_H
#define HX_HTML_H
#include <stdarg.h>
#include <stddef.h>

typedef struct {
    char *data;
    size_t len, cap;
    int failed;                     /* out of memory, or a bad format: the page is not to be sent */
} hx_html_t;

void hx_html_init(hx_html_t *b);
void hx_html_free(hx_html_t *b);

/* Markup of the page's own: a string literal only ("" lit "" does not compile otherwise). */
#define HX_HTML_MARKUP(b, lit) hx_html_markup_((b), "" lit "")
/* A literal format whose %s arguments are values (escaped); also %d, %u, %ld, %lu, %lld, %llu,
 * %zu and %%. Any other conversion marks the page failed. */
#define HX_HTML_F(b, fmt, ...) hx_html_f_((b), "" fmt "", __VA_ARGS__)

/* A value, escaped. NULL writes nothing. */
void hx_html_text(hx_html_t *b, const char *s);
/* A value inside a URL's query (href="/r?id=..."): percent-encoded (RFC 3986 unreserved kept),
 * then escaped. */
void hx_html_query(hx_html_t *b, const char *s);

void hx_html_markup_(hx_html_t *b, const char *lit);
/* Prometheus' text exposition, made by hx_metrics (for /metrics, text/plain): appended as it
 * is when it holds only printable ASCII and newlines, none of < > & (no element or entity can
 * come of it); anything else marks the page failed. */
void hx_html_exposition(hx_html_t *b, const char *text, size_t len);
void hx_html_f_(hx_html_t *b, const char *fmt, ...);

#endif
