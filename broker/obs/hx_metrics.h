/* hx_metrics — counters, gauges and histograms for a program's /metrics page, rendered in
 * the Prometheus text exposition format 0.0.4 (HELP and TYPE lines, counters named
 * *_total, histograms as *_bucket{le=...}, *_sum and *_count).
 *
 * Series are registered once at start-up (that allocates); after that, updating one is a
 * relaxed atomic add on memory the series owns, from any thread, with no lock and no
 * allocation, and rendering may run on another thread at the same time. Values computed
 * at scrape time (queue depths) are written with the hx_metrics_write_* helpers. */
#ifndef HX_METRICS_H
#define HX_METRICS_H
#include <stddef.h>
#include <stdint.h>
#include "hx_wire.h"

typedef struct hx_metrics hx_metrics_t;
typedef struct hx_metric hx_metric_t;

typedef enum { HX_METRIC_COUNTER, HX_METRIC_GAUGE, HX_METRIC_HISTOGRAM } hx_metric_type_t;

#define HX_METRICS_MAX_BUCKETS 24

hx_metrics_t *hx_metrics_new(void);
void hx_metrics_destroy(hx_metrics_t **self_p);

/* Registers one series of family `name` (a counter's name ends in _total), with at most
 * one label (label and value both NULL: none). Series of one family share its help and
 * type; registering the same name and label value again returns the same series. NULL on
 * a bad name, a type or help that differs from the family's, or no memory. Not
 * thread-safe against rendering: register before serving. */
hx_metric_t *hx_metrics_counter(hx_metrics_t *m, const char *name, const char *help, const char *label,
                                const char *value);
hx_metric_t *hx_metrics_gauge(hx_metrics_t *m, const char *name, const char *help, const char *label,
                              const char *value);
/* A histogram observed in integer units (e.g. nanoseconds) and shown divided by `scale`
 * (e.g. 1e9 for seconds): bounds are ascending upper bounds in those units (1 to
 * HX_METRICS_MAX_BUCKETS of them; +Inf is implied). */
hx_metric_t *hx_metrics_histogram(hx_metrics_t *m, const char *name, const char *help, const char *label,
                                  const char *value, const uint64_t *bounds, size_t n_bounds, double scale);

/* Counter: adds n. Gauge: adds n (use hx_metric_set to set). Any thread. */
void hx_metric_add(hx_metric_t *s, uint64_t n);
/* Gauge: sets the value. Any thread. */
void hx_metric_set(hx_metric_t *s, int64_t v);
/* Histogram: one observation of v units. Any thread. */
void hx_metric_observe(hx_metric_t *s, uint64_t v);
/* The current value of a counter or gauge, or a histogram's count. */
int64_t hx_metric_value(const hx_metric_t *s);

/* Appends every registered family to out. 0 or HX_ENOMEM. */
int hx_metrics_render(const hx_metrics_t *m, hx_buf_t *out);

/* Helpers for values computed at scrape time: the HELP and TYPE lines of a family, then
 * its samples. label/value may be NULL (no label); values are escaped as the format asks.
 * 0 or HX_ENOMEM. */
int hx_metrics_write_family(hx_buf_t *out, const char *name, hx_metric_type_t type, const char *help);
int hx_metrics_write_u64(hx_buf_t *out, const char *name, const char *label, const char *value, uint64_t v);
int hx_metrics_write_f64(hx_buf_t *out, const char *name, const char *label, const char *value, double v);

/* True when name is a valid metric or label name ([a-zA-Z_:][a-zA-Z0-9_:]*; no ':' for labels). */
int hx_metrics_name_valid(const char *name, int is_label);

#endif
