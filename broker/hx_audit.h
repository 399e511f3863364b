/* hx_audit — the append-only audit log: one JSON line per event (time, principal, action,
 * id, outcome — never clinical text or patient names), each carrying the SHA-256 of the line
 * before it, so an edited, deleted or reordered line breaks the chain. */
#ifndef HX_AUDIT_H
#define HX_AUDIT_H
#include <stddef.h>

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

#endif
