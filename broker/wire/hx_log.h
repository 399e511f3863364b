/* hx_log — leveled log lines on stderr, one per event, in one of two formats:
 *   text: "2026-11-22T10:00:00.123Z info broker: text"
 *   json: {"ts":"2026-11-22T10:00:00.123Z","level":"info","program":"handoff-broker","msg":"text"}
 * Log ids and counts only, never clinical text or patient details. */
#ifndef HX_LOG_H
#define HX_LOG_H

typedef enum { HX_LOG_DEBUG = 0, HX_LOG_INFO, HX_LOG_WARN, HX_LOG_ERROR } hx_log_level_t;
typedef enum { HX_LOG_TEXT = 0, HX_LOG_JSON } hx_log_format_t;

/* Sets the program name and the lowest level written (process-wide, set once in main). */
void hx_log_init(const char *program, hx_log_level_t level);
/* Chooses the line format (text unless called); program names the program in JSON lines
 * (NULL: the name given to hx_log_init). Set once in main, before any thread starts. */
void hx_log_set_format(hx_log_format_t format, const char *program);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int hx_log_level_parse(const char *s, hx_log_level_t *out);
/* Parses "text" or "json"; returns -1 when unknown. */
int hx_log_format_parse(const char *s, hx_log_format_t *out);
void hx_log(hx_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The current time as ISO 8601 UTC with milliseconds, "2026-11-28T08:53:01.123Z" (the log
 * lines' and the audit log's stamp); returns out. */
#define HX_TIME_LEN 64
char *hx_time_now_iso(char out[HX_TIME_LEN]);

#define hx_debug(...) hx_log(HX_LOG_DEBUG, __VA_ARGS__)
#define hx_info(...) hx_log(HX_LOG_INFO, __VA_ARGS__)
#define hx_warn(...) hx_log(HX_LOG_WARN, __VA_ARGS__)
#define hx_error(...) hx_log(HX_LOG_ERROR, __VA_ARGS__)

#endif
