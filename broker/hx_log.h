/* hx_log — leveled log lines on stderr: "2026-11-22T10:00:00.123Z info broker: text".
 * Log ids and counts only, never clinical text or patient details. */
#ifndef HX_LOG_H
#define HX_LOG_H

typedef enum { HX_LOG_DEBUG = 0, HX_LOG_INFO, HX_LOG_WARN, HX_LOG_ERROR } hx_log_level_t;

/* Sets the program name and the lowest level written (process-wide, set once in main). */
void hx_log_init(const char *program, hx_log_level_t level);
/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int hx_log_level_parse(const char *s, hx_log_level_t *out);
void hx_log(hx_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hx_debug(...) hx_log(HX_LOG_DEBUG, __VA_ARGS__)
#define hx_info(...) hx_log(HX_LOG_INFO, __VA_ARGS__)
#define hx_warn(...) hx_log(HX_LOG_WARN, __VA_ARGS__)
#define hx_error(...) hx_log(HX_LOG_ERROR, __VA_ARGS__)

#endif
