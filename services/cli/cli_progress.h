/* cli_progress — progress of a long job on stderr. On a terminal a bar redrawn in place
 * ("\r", at most 10 times a second) with done/total, rate and ETA; otherwise a plain line at
 * every tenth of the way (no control characters). */
#ifndef CLI_PROGRESS_H
#define CLI_PROGRESS_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *out;
    int tty;
    const char *label;
    size_t total, done;
    uint64_t start_ms, last_draw_ms;
    int drawn, last_tenth;
} cli_progress_t;

/* One line of progress, without "\r" or "\n": with bar_width > 0
 * "[##########..........]  340/1000  34%  812/s  ETA 1s", else "340/1000 (34%), 812/s, ETA 1s".
 * elapsed_ms is the time since the start. Returns buf. */
const char *cli_progress_text(char *buf, size_t cap, size_t done, size_t total, uint64_t elapsed_ms,
                              int bar_width);

void cli_progress_start(cli_progress_t *p, FILE *out, int tty, const char *label, size_t total, uint64_t now_ms);
/* done of total are finished now. Draws when it is time to. */
void cli_progress_update(cli_progress_t *p, size_t done, uint64_t now_ms);
/* The last drawing (and on a terminal the end of the line). */
void cli_progress_finish(cli_progress_t *p, uint64_t now_ms);

#endif
