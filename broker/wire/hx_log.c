/* hx_log — leveled log lines on stderr, as text or as one JSON object per line. */
#include "hx_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *log_program = "handoff";
static const char *log_json_program = NULL;
static hx_log_level_t log_level = HX_LOG_INFO;
static hx_log_format_t log_format = HX_LOG_TEXT;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void hx_log_init(const char *program, hx_log_level_t level)
{
    log_program = program;
    log_level = level;
}

void hx_log_set_format(hx_log_format_t format, const char *program)
{
    log_format = format;
    log_json_program = program;
}

int hx_log_level_parse(const char *s, hx_log_level_t *out)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (hx_log_level_t)i;
            return 0;
        }
    return -1;
}

int hx_log_format_parse(const char *s, hx_log_format_t *out)
{
    if (s && strcmp(s, "text") == 0)
        *out = HX_LOG_TEXT;
    else if (s && strcmp(s, "json") == 0)
        *out = HX_LOG_JSON;
    else
        return -1;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||     /* overlong, surrogate */
        (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))       /* overlong, > U+10FFFF */
        return 0;
    return len;
}

/* Appends s as the body of a JSON string: quotes, backslashes and control characters
 * escaped, bytes that are not UTF-8 replaced by U+FFFD, so every line parses. */
static size_t json_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0, n = strlen(s);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n && o + 8 < cap;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
            i++;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            out[o++] = (char)c;
            i++;
        } else {
            size_t len = utf8_len(p + i, n - i);
            if (len) {
                memcpy(out + o, p + i, len);
                o += len;
                i += len;
            } else {
                memcpy(out + o, "\xEF\xBF\xBD", 3);
                o += 3;
                i++;
            }
        }
    }
    out[o] = '\0';
    return o;
}

char *hx_time_now_iso(char out[HX_TIME_LEN])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, HX_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
    return out;
}

void hx_log(hx_log_level_t level, const char *fmt, ...)
{
    if (level < log_level)
        return;
    char stamp[HX_TIME_LEN];
    hx_time_now_iso(stamp);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_format == HX_LOG_JSON) {
        char emsg[6 * sizeof msg + 8], eprog[256];
        json_escape(emsg, sizeof emsg, msg);
        json_escape(eprog, sizeof eprog, log_json_program ? log_json_program : log_program);
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"program\":\"%s\",\"msg\":\"%s\"}\n", stamp,
                level_names[level], eprog, emsg);
        return;
    }
    fprintf(stderr, "%s %s %s: %s\n", stamp, level_names[level], log_program, msg);
}
