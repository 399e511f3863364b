/* hx_audit — the append-only audit log: one JSON line per event (time, principal, action,
 * id, outcome — never clinical text or patient names), each carrying the SHA-256 of the line
 * before it, so an edited, deleted or reordered line breaks the chain. A chain cannot show
 * that lines were cut from its end; the anchor can: the broker records the chain's head (line
 * count and hash) in its durable log (the log store's anchor hook), keeps a copy in
 * DATA/audit.anchor, and the file is checked against it.
 *
 * The log rotates (hx_audit_rotation_t): FILE is synced and renamed FILE.YYYYMMDDTHHMMSSZ
 * (the UTC time of the rotation; the names sort in time), and a new FILE starts with an
 * "audit.rotated" line naming that file, with its line count and the series' so far, whose
 * prev is that file's last hash: one chain over the series. Line counts in anchors count the
 * whole series. */
#ifndef HX_AUDIT_H
#define HX_AUDIT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct hx_audit hx_audit_t;

/* Opens (creating, mode 0600) the log for appending; the chain continues from its last
 * line. NULL with the reason in err (e.g. the existing file's chain is already broken). */
hx_audit_t *hx_audit_open(const char *path, char *err, size_t errcap);

/* When the log rotates: before a line would take the file past max_bytes, or on the first
 * line of a new UTC day (daily); a file always takes one event, and at most one rotation
 * happens a second (the name must be free: the file grows until it is). After a rotation,
 * rotated files whose name is more than keep_days days old are deleted, oldest first. */
typedef struct hx_audit_rotation {
    uint64_t max_bytes;             /* 0: no size limit */
    bool daily;
    uint32_t keep_days;             /* 0: every rotated file is kept */
    time_t (*clock)(void *arg);     /* NULL: the system clock (tests set their own) */
    void *clock_arg;
} hx_audit_rotation_t;
/* hx_audit_open with rotation (rot NULL: none). An empty or missing FILE beside rotated
 * files (a rotation stopped by a crash) continues the newest of them. */
hx_audit_t *hx_audit_open_rotating(const char *path, const hx_audit_rotation_t *rot, char *err, size_t errcap);
void hx_audit_close(hx_audit_t **self_p);
/* Appends one event and flushes it to the file. id may be "" (no message or referral). */
int hx_audit_write(hx_audit_t *a, const char *principal, const char *action, const char *id, const char *outcome);

/* What hx_audit_verify_series found. */
typedef struct {
    size_t files;                   /* checked, oldest first, FILE last */
    uint64_t lines;                 /* in them */
    uint64_t start;                 /* series lines before the oldest present (0: it starts the chain) */
    char oldest[4200];              /* the oldest file present */
    char trusted[256];              /* "" or the file it continues, no longer present: the oldest's
                                       first line (that file's last hash and counts) is trusted */
    bool log_empty;                 /* FILE is empty or missing: the series ends in a rotated file */
    uint64_t anchored;              /* with an anchor: the series line it names, reached */
    char bad_file[4200];            /* when it fails: the file at fault */
} hx_audit_report_t;
/* Checks FILE and the files rotated out of it (each named by its successor's first line,
 * followed back to the oldest present), the chain within each file and across each rotation,
 * and, with anchor (a data directory, whose audit.anchor is read, or an anchor file), that
 * the series reaches the head the broker's log recorded. 0 when all holds; otherwise the line
 * of r->bad_file at fault, with why (a file missing from the middle of the series, or a
 * rotated file the series does not reach, is at fault too); -1 when a file cannot be read. */
long hx_audit_verify_series(const char *path, const char *anchor, hx_audit_report_t *r, char *why, size_t cap);
/* The same without the report: lines counted in *lines. */
long hx_audit_verify(const char *path, size_t *lines, char *why, size_t cap);

/* An anchor: u64 line count (little-endian), then the raw SHA-256 of that line (zeros for
 * none). The file the broker keeps it in, beside its log: */
#define HX_AUDIT_ANCHOR_LEN 40
#define HX_AUDIT_ANCHOR_FILE "audit.anchor"

/* The log store's anchor hook (arg: an hx_audit_t): the chain's head now, and in *sync_fd
 * the audit file, to be made durable before the head is recorded. */
size_t hx_audit_anchor_hook(void *arg, uint8_t *out, size_t cap, int *sync_fd);
/* The log store's on_anchor hook (arg: an hx_audit_t): a head became durable. The first is
 * what recovery found: the file is checked against it (see hx_audit_anchor_error; an empty
 * file starts a new chain whose first line names the old head). Each is written to the
 * anchor file, when one was set. */
void hx_audit_anchored_hook(void *arg, const uint8_t *blob, size_t len);
/* Where to keep the latest durable head for handoff audit verify (replaced atomically). */
int hx_audit_set_anchor_file(hx_audit_t *a, const char *path);
/* NULL, or why the file does not reach the head the log recorded: its tail was cut, or it
 * was replaced. Nothing should be appended then (it would hide the cut). */
const char *hx_audit_anchor_error(const hx_audit_t *a);
/* hx_audit_verify_series with an anchor (*anchored: the anchored line count). */
long hx_audit_verify_anchored(const char *path, const char *anchor, size_t *lines, size_t *anchored, char *why,
                              size_t cap);

/* Whether name (no directory) is a file rotated out of the log called base: base.YYYYMMDDTHHMMSSZ
 * with a real UTC time, put in *when unless when is NULL. */
bool hx_audit_rotated_name(const char *base, const char *name, time_t *when);

#endif
