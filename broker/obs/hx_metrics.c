/* hx_metrics — a registry of metric families and their text rendering (Prometheus 0.0.4).
 * Values are C11 atomics updated with relaxed order: each is a statistic on its own, no
 * reader needs one to be ordered against another, and a scrape that sees a histogram's
 * buckets a few observations apart from its sum is still a true sample of a moving value. */
#include "hx_metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hx_metric {
    hx_metric_type_t type;
    char *label, *value;
    _Atomic int64_t v;                          /* counter, gauge */
    size_t n_bounds;
    uint64_t bounds[HX_METRICS_MAX_BUCKETS];
    _Atomic uint64_t buckets[HX_METRICS_MAX_BUCKETS + 1];  /* not cumulative; the last is +Inf */
    _Atomic uint64_t sum;
    double scale;
    struct hx_metric *next;
};

typedef struct family {
    char *name, *help;
    hx_metric_type_t type;
    hx_metric_t *series, *last;
    struct family *next;
} family_t;

struct hx_metrics {
    family_t *families, *last;
};

hx_metrics_t *hx_metrics_new(void)
{
    return calloc(1, sizeof(hx_metrics_t));
}

void hx_metrics_destroy(hx_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    family_t *f = (*self_p)->families;
    while (f) {
        family_t *fn = f->next;
        hx_metric_t *s = f->series;
        while (s) {
            hx_metric_t *sn = s->next;
            free(s->label);
            free(s->value);
            free(s);
            s = sn;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fn;
    }
    free(*self_p);
    *self_p = NULL;
}

int hx_metrics_name_valid(const char *name, int is_label)
{
    if (!name || !*name)
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!is_label && c == ':');
        if (!alpha && !(p > name && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

static family_t *family_get(hx_metrics_t *m, const char *name, const char *help, hx_metric_type_t type)
{
    for (family_t *f = m->families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f->type == type && strcmp(f->help, help) == 0 ? f : NULL;
    family_t *f = calloc(1, sizeof *f);
    if (!f || !(f->name = strdup(name)) || !(f->help = strdup(help))) {
        if (f)
            free(f->name);
        free(f);
        return NULL;
    }
    f->type = type;
    if (m->last)
        m->last->next = f;
    else
        m->families = f;
    m->last = f;
    return f;
}

static hx_metric_t *series_get(hx_metrics_t *m, const char *name, const char *help, hx_metric_type_t type,
                               const char *label, const char *value)
{
    if (!m || !hx_metrics_name_valid(name, 0) || !help || (!label) != (!value) ||
        (label && (!hx_metrics_name_valid(label, 1) || strcmp(label, "le") == 0)))
        return NULL;
    size_t len = strlen(name);
    bool total = len > 6 && strcmp(name + len - 6, "_total") == 0;
    if ((type == HX_METRIC_COUNTER) != total)
        return NULL;                            /* the format's convention, so queries can rely on it */
    family_t *f = family_get(m, name, help, type);
    if (!f)
        return NULL;
    for (hx_metric_t *s = f->series; s; s = s->next)
        if ((!label && !s->label) || (label && s->label && strcmp(s->label, label) == 0 &&
                                      strcmp(s->value, value) == 0))
            return s;
        else if ((!label) != (!s->label) || (label && strcmp(s->label, label) != 0))
            return NULL;                        /* one family, one label name */
    hx_metric_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (label && (!(s->label = strdup(label)) || !(s->value = strdup(value)))) {
        free(s->label);
        free(s);
        return NULL;
    }
    s->type = type;
    if (f->last)
        f->last->next = s;
    else
        f->series = s;
    f->last = s;
    return s;
}

hx_metric_t *hx_metrics_counter(hx_metrics_t *m, const char *name, const char *help, const char *label,
                                const char *value)
{
    return series_get(m, name, help, HX_METRIC_COUNTER, label, value);
}

hx_metric_t *hx_metrics_gauge(hx_metrics_t *m, const char *name, const char *help, const char *label,
                              const char *value)
{
    return series_get(m, name, help, HX_METRIC_GAUGE, label, value);
}

hx_metric_t *hx_metrics_histogram(hx_metrics_t *m, const char *name, const char *help, const char *label,
                                  const char *value, const uint64_t *bounds, size_t n_bounds, double scale)
{
    if (!bounds || n_bounds == 0 || n_bounds > HX_METRICS_MAX_BUCKETS || !(scale > 0))
        return NULL;
    for (size_t i = 1; i < n_bounds; i++)
        if (bounds[i] <= bounds[i - 1])
            return NULL;
    hx_metric_t *s = series_get(m, name, help, HX_METRIC_HISTOGRAM, label, value);
    if (!s)
        return NULL;
    if (s->n_bounds == 0) {
        memcpy(s->bounds, bounds, n_bounds * sizeof *bounds);
        s->n_bounds = n_bounds;
        s->scale = scale;
    } else if (s->n_bounds != n_bounds || memcmp(s->bounds, bounds, n_bounds * sizeof *bounds) != 0) {
        return NULL;
    }
    return s;
}

void hx_metric_add(hx_metric_t *s, uint64_t n)
{
    if (s)
        atomic_fetch_add_explicit(&s->v, (int64_t)n, memory_order_relaxed);
}

void hx_metric_set(hx_metric_t *s, int64_t v)
{
    if (s)
        atomic_store_explicit(&s->v, v, memory_order_relaxed);
}

void hx_metric_observe(hx_metric_t *s, uint64_t v)
{
    if (!s || s->type != HX_METRIC_HISTOGRAM)
        return;
    size_t i = 0;
    while (i < s->n_bounds && v > s->bounds[i])
        i++;
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum, v, memory_order_relaxed);
}

int64_t hx_metric_value(const hx_metric_t *s)
{
    if (!s)
        return 0;
    if (s->type != HX_METRIC_HISTOGRAM)
        return atomic_load_explicit(&s->v, memory_order_relaxed);
    uint64_t n = 0;
    for (size_t i = 0; i <= s->n_bounds; i++)
        n += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
    return (int64_t)n;
}

/* ---- text --------------------------------------------------------------------------- */

/* HELP text escapes \ and newline; label values also escape ". */
static int append_escaped(hx_buf_t *out, const char *s, bool quote)
{
    for (; *s; s++) {
        int rc = *s == '\\' ? hx_buf_append(out, "\\\\", 2)
                 : *s == '\n' ? hx_buf_append(out, "\\n", 2)
                 : quote && *s == '"' ? hx_buf_append(out, "\\\"", 2)
                                      : hx_buf_append(out, s, 1);
        if (rc)
            return rc;
    }
    return 0;
}

static void format_f64(char *buf, size_t cap, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "NaN");
    else if (isinf(v))
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
    else
        snprintf(buf, cap, "%.15g", v);
}

int hx_metrics_write_family(hx_buf_t *out, const char *name, hx_metric_type_t type, const char *help)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    if (hx_buf_appendf(out, "# HELP %s ", name) || append_escaped(out, help, false) ||
        hx_buf_appendf(out, "\n# TYPE %s %s\n", name, types[type]))
        return HX_ENOMEM;
    return 0;
}

/* name{label="value",le="bound"} text\n; any part may be absent. */
static int write_sample(hx_buf_t *out, const char *name, const char *suffix, const char *label, const char *value,
                        const char *le, const char *text)
{
    if (hx_buf_appendf(out, "%s%s", name, suffix))
        return HX_ENOMEM;
    if (label || le) {
        if (hx_buf_append(out, "{", 1))
            return HX_ENOMEM;
        if (label && (hx_buf_appendf(out, "%s=\"", label) || append_escaped(out, value ? value : "", true) ||
                      hx_buf_append(out, "\"", 1)))
            return HX_ENOMEM;
        if (le && hx_buf_appendf(out, "%sle=\"%s\"", label ? "," : "", le))
            return HX_ENOMEM;
        if (hx_buf_append(out, "}", 1))
            return HX_ENOMEM;
    }
    return hx_buf_appendf(out, " %s\n", text);
}

int hx_metrics_write_u64(hx_buf_t *out, const char *name, const char *label, const char *value, uint64_t v)
{
    char text[32];
    snprintf(text, sizeof text, "%llu", (unsigned long long)v);
    return write_sample(out, name, "", label, value, NULL, text);
}

int hx_metrics_write_f64(hx_buf_t *out, const char *name, const char *label, const char *value, double v)
{
    char text[48];
    format_f64(text, sizeof text, v);
    return write_sample(out, name, "", label, value, NULL, text);
}

static int write_histogram(hx_buf_t *out, const char *name, const hx_metric_t *s)
{
    uint64_t cum = 0;
    char le[48], text[48];
    for (size_t i = 0; i <= s->n_bounds; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < s->n_bounds)
            format_f64(le, sizeof le, (double)s->bounds[i] / s->scale);
        else
            snprintf(le, sizeof le, "+Inf");
        snprintf(text, sizeof text, "%llu", (unsigned long long)cum);
        if (write_sample(out, name, "_bucket", s->label, s->value, le, text))
            return HX_ENOMEM;
    }
    format_f64(text, sizeof text, (double)atomic_load_explicit(&s->sum, memory_order_relaxed) / s->scale);
    if (write_sample(out, name, "_sum", s->label, s->value, NULL, text))
        return HX_ENOMEM;
    snprintf(text, sizeof text, "%llu", (unsigned long long)cum);    /* _count equals the +Inf bucket */
    return write_sample(out, name, "_count", s->label, s->value, NULL, text);
}

int hx_metrics_render(const hx_metrics_t *m, hx_buf_t *out)
{
    for (const family_t *f = m ? m->families : NULL; f; f = f->next) {
        if (hx_metrics_write_family(out, f->name, f->type, f->help))
            return HX_ENOMEM;
        for (const hx_metric_t *s = f->series; s; s = s->next) {
            int rc;
            if (f->type == HX_METRIC_HISTOGRAM) {
                rc = write_histogram(out, f->name, s);
            } else {
                char text[32];
                snprintf(text, sizeof text, "%lld", (long long)atomic_load_explicit(&s->v, memory_order_relaxed));
                rc = write_sample(out, f->name, "", s->label, s->value, NULL, text);
            }
            if (rc)
                return HX_ENOMEM;
        }
    }
    return 0;
}
