/* cli_progress — a progress bar or progress lines (see cli_progress.h). */
#include "cli_progress.h"
#include "cli_fmt.h"

#include <string.h>

const char *cli_progress_text(char *buf, size_t cap, size_t done, size_t total, uint64_t elapsed_ms,
                              int bar_width)
{
    double frac = total ? (double)done / (double)total : 1.0;
    if (frac > 1)
        frac = 1;
    double rate = elapsed_ms ? (double)done * 1000.0 / (double)elapsed_ms : 0;
    char r[CLI_FMT_LEN], d[CLI_FMT_LEN], eta[CLI_FMT_LEN + 8];
    cli_rate(rate, r);
    if (done >= total)
        snprintf(eta, sizeof eta, "done in %s", cli_duration(elapsed_ms, d));
    else if (rate > 0)
        snprintf(eta, sizeof eta, "ETA %s", cli_duration((uint64_t)((double)(total - done) * 1000.0 / rate), d));
    else
        snprintf(eta, sizeof eta, "ETA -");
    size_t len = 0;
    if (bar_width > 0 && cap > (size_t)bar_width + 3) {
        int fill = (int)(frac * bar_width + 0.5);
        buf[len++] = '[';
        for (int i = 0; i < bar_width; i++)
            buf[len++] = i < fill ? '#' : '.';
        buf[len++] = ']';
        snprintf(buf + len, cap - len, "  %zu/%zu  %3d%%  %s/s  %s", done, total, (int)(frac * 100), r, eta);
    } else {
        snprintf(buf, cap, "%zu/%zu (%d%%), %s/s, %s", done, total, (int)(frac * 100), r, eta);
    }
    return buf;
}

static void draw(cli_progress_t *p, uint64_t now_ms, int final)
{
    char line[256];
    uint64_t elapsed = now_ms > p->start_ms ? now_ms - p->start_ms : 0;
    if (p->tty) {
        cli_progress_text(line, sizeof line, p->done, p->total, elapsed, 30);
        fprintf(p->out, "\r%s %s\x1b[K%s", p->label, line, final ? "\n" : "");
    } else {
        cli_progress_text(line, sizeof line, p->done, p->total, elapsed, 0);
        fprintf(p->out, "%s %s\n", p->label, line);
    }
    fflush(p->out);
    p->last_draw_ms = now_ms;
    p->drawn = 1;
}

void cli_progress_start(cli_progress_t *p, FILE *out, int tty, const char *label, size_t total, uint64_t now_ms)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = tty;
    p->label = label;
    p->total = total;
    p->start_ms = now_ms;
    if (tty)
        draw(p, now_ms, 0);
}

void cli_progress_update(cli_progress_t *p, size_t done, uint64_t now_ms)
{
    p->done = done;
    if (p->tty) {
        if (now_ms >= p->last_draw_ms + 100)
            draw(p, now_ms, 0);
        return;
    }
    int tenth = p->total ? (int)(done * 10 / p->total) : 10;
    if (tenth > p->last_tenth && done < p->total) {
        p->last_tenth = tenth;
        draw(p, now_ms, 0);
    }
}

void cli_progress_finish(cli_progress_t *p, uint64_t now_ms)
{
    draw(p, now_ms, 1);
}
