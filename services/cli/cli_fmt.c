/* cli_fmt — times, durations, sizes and rates for people (see cli_fmt.h). */
#include "cli_fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t cli_now_ms(void)
{
    const char *fixed = getenv("HANDOFF_TEST_NOW_MS");
    if (fixed && *fixed) {
        char *end;
        unsigned long long v = strtoull(fixed, &end, 10);
        if (*end == '\0')
            return (uint64_t)v;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *cli_time_abs(uint64_t ms, char out[CLI_FMT_LEN])
{
    if (ms == 0) {
        snprintf(out, CLI_FMT_LEN, "-");
        return out;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || strftime(out, CLI_FMT_LEN, "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(out, CLI_FMT_LEN, "?");
    return out;
}

const char *cli_time_ago(uint64_t now_ms, uint64_t ms, char out[CLI_FMT_LEN])
{
    if (ms == 0)
        return cli_time_abs(0, out);
    if (ms > now_ms + 60000 || now_ms - (ms < now_ms ? ms : now_ms) >= 7ull * 86400000)
        return cli_time_abs(ms, out);
    uint64_t s = ms < now_ms ? (now_ms - ms) / 1000 : 0;
    if (s < 5)
        snprintf(out, CLI_FMT_LEN, "just now");
    else if (s < 60)
        snprintf(out, CLI_FMT_LEN, "%llus ago", (unsigned long long)s);
    else if (s < 3600)
        snprintf(out, CLI_FMT_LEN, "%llum ago", (unsigned long long)(s / 60));
    else if (s < 86400)
        snprintf(out, CLI_FMT_LEN, "%lluh ago", (unsigned long long)(s / 3600));
    else
        snprintf(out, CLI_FMT_LEN, "%llud ago", (unsigned long long)(s / 86400));
    return out;
}

const char *cli_duration(uint64_t ms, char out[CLI_FMT_LEN])
{
    unsigned long long s = ms / 1000;
    if (ms < 1000)
        snprintf(out, CLI_FMT_LEN, "%llums", (unsigned long long)ms);
    else if (s < 60)
        snprintf(out, CLI_FMT_LEN, "%llus", s);
    else if (s < 3600)
        snprintf(out, CLI_FMT_LEN, "%llum%02llus", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, CLI_FMT_LEN, "%lluh%02llum", s / 3600, s % 3600 / 60);
    else
        snprintf(out, CLI_FMT_LEN, "%llud%02lluh", s / 86400, s % 86400 / 3600);
    return out;
}

const char *cli_bytes(uint64_t n, char out[CLI_FMT_LEN])
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (n < 1024) {
        snprintf(out, CLI_FMT_LEN, "%llu B", (unsigned long long)n);
        return out;
    }
    double v = (double)n / 1024;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof unit / sizeof *unit) {
        v /= 1024;
        u++;
    }
    snprintf(out, CLI_FMT_LEN, "%.1f %s", v, unit[u]);
    return out;
}

const char *cli_rate(double per_s, char out[CLI_FMT_LEN])
{
    if (!(per_s > 0.05))            /* also NaN */
        snprintf(out, CLI_FMT_LEN, "0");
    else if (per_s < 10)
        snprintf(out, CLI_FMT_LEN, "%.1f", per_s);
    else if (per_s < 10000)
        snprintf(out, CLI_FMT_LEN, "%.0f", per_s);
    else if (per_s < 1e6)
        snprintf(out, CLI_FMT_LEN, "%.1fk", per_s / 1e3);
    else
        snprintf(out, CLI_FMT_LEN, "%.1fM", per_s / 1e6);
    return out;
}

const char *cli_slot_text(const char *start, const char *offset, char out[CLI_FMT_LEN])
{
    snprintf(out, CLI_FMT_LEN, "%s", start ? start : "");
    if (strlen(out) == 16 && out[10] == 'T') {
        out[10] = ' ';
        if (offset && strlen(offset) == 6)
            snprintf(out + 16, CLI_FMT_LEN - 16, " %s", offset);
    }
    return out;
}
