/* hx_audit — the append-only audit log: one JSON line per event (time, principal, action,
 * id, outcome — never clinical text or patient names), each carrying the SHA-256 of the line
 * before it, so an edited, deleted or reordered line breaks the chain. A chain cannot show
 * that lines were cut from its end; the anchor can: the broker records the chain's head (line
 * count and hash) in its durable log (the log store's anchor hook), keeps a copy in
 * DATA/audit.anchor, and the file is checked against it. */
#ifndef HX_AUDIT_H
#define HX_AUDIT_H
#include <stddef.h>
#include <stdint.h>

typedef struct hx_audit hx_audit_t;

/* Opens (creating, mode 0600) the log for appending; the chain continues from its last
 * line. NULL with the reason in err (e.g. the existing file's chain is already broken). */
hx_audit_t *hx_audit_open(const char *path, char *err, size_t errcap);
void hx_audit_close(hx_audit_t **self_p);
/* Appends one event and flushes it to the file. id may be "" (no message or referral). */
int hx_audit_write(hx_audit_t *a, const char *principal, const char *action, const char *id, const char *outcome);

/* Checks a log: 0 when the whole chain holds (lines counted in *lines), otherwise the
 * number of the first line that breaks it, with why. */
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
/* hx_audit_verify, and then that the file reaches the head in `anchor` (a data directory,
 * whose audit.anchor is read, or an anchor file): 0 when both hold (*anchored: the anchored
 * line count); otherwise the first line that breaks the chain or that is missing, with why;
 * -1 when a file cannot be read. */
long hx_audit_verify_anchored(const char *path, const char *anchor, size_t *lines, size_t *anchored, char *why,
                              size_t cap);

#endif
