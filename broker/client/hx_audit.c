/* hx_audit — a hash-chained JSON-lines audit log (libsodium SHA-256, jansson): the writer,
 * its rotation and retention, and its anchor. Checking is in hx_audit_series.c. */
#include "hx_audit.h"
#include "hx_audit_internal.h"
#include "hx_log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct hx_audit {
    FILE *f;
    char *path;
    char prev[AUDIT_HEX];                         /* hex SHA-256 of the last line */
    uint64_t lines;                               /* in the file */
    uint64_t start;                               /* the series' lines before the file */
    uint64_t bytes;                               /* the file's size */
    long day;                                     /* UTC day of the file's first line; -1: none */
    bool opens_rotated;                           /* its first line is (or will be) audit.rotated */
    bool pending;                                 /* that line is still to be written: */
    char from[256];                               /*   the file it continues */
    uint64_t from_lines;                          /*   and that file's line count */
    hx_audit_rotation_t rot;
    bool fd_lent;                                 /* fileno(f) went to the log store to sync */
    FILE *lent;                                   /* a rotated file the store may still be syncing */
    char *anchor_path;                            /* where durable heads are copied, or NULL */
    bool anchor_seen;                             /* the first durable head was checked */
    bool anchor_failed;
    uint8_t recovered[HX_AUDIT_ANCHOR_LEN];       /* the head the log held, when the file fails it */
    char anchor_err[1024];
};

static time_t clock_now(const hx_audit_t *a, char when[HX_TIME_LEN])
{
    if (!a->rot.clock) {
        hx_time_now_iso(when);
        return time(NULL);
    }
    time_t now = a->rot.clock(a->rot.clock_arg);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, HX_TIME_LEN, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    return now;
}

/* One record as a line, its hash into hash; NULL when out of memory. */
static char *record_line(const char *prev, const char *const fields[5], const uint64_t *rot, char hash[AUDIT_HEX])
{
    audit_record_hash(prev, fields, rot, hash);
    json_t *j = rot ? json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "time", fields[0], "principal",
                                fields[1], "action", fields[2], "id", fields[3], "outcome", fields[4], "lines",
                                (json_int_t)rot[0], "series", (json_int_t)rot[1], "prev", prev, "hash", hash)
                    : json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "time", fields[0], "principal", fields[1],
                                "action", fields[2], "id", fields[3], "outcome", fields[4], "prev", prev, "hash",
                                hash);
    char *line = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return line;
}

static int append(hx_audit_t *a, const char *line, const char hash[AUDIT_HEX])
{
    if (fprintf(a->f, "%s\n", line) < 0 || fflush(a->f) != 0)
        return -1;
    memcpy(a->prev, hash, AUDIT_HEX);
    a->lines++;
    a->bytes += strlen(line) + 1;
    return 0;
}

/* The first line of a file that continues a rotated one. */
static int write_rotated(hx_audit_t *a, const char *when)
{
    char outcome[400], hash[AUDIT_HEX];
    snprintf(outcome, sizeof outcome, "continues %s: %llu line(s) there, %llu in the series so far", a->from,
             (unsigned long long)a->from_lines, (unsigned long long)a->start);
    const char *fields[5] = {when, "audit", AUDIT_ROTATED, a->from, outcome};
    uint64_t rot[2] = {a->from_lines, a->start};
    char *line = record_line(a->prev, fields, rot, hash);
    int rc = line ? append(a, line, hash) : -1;
    free(line);
    if (rc == 0)
        a->pending = false;
    return rc;
}

static int sync_dir(const char *path)
{
    const char *base = audit_base(path);
    char dir[AUDIT_PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", base == path ? 1 : (int)(base - path), base == path ? "." : path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Opens the log for appending; NULL (err) when it cannot be. */
static FILE *open_append(const char *path, int extra, char *err, size_t errcap)
{
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | extra, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "a+") : NULL;
    if (!f) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    return f;
}

/* Takes the state of the file walked (w) as the chain's end; with an empty file, that of the
 * newest rotated file, which it then continues. 0 or -1 (err). */
static int take_chain(hx_audit_t *a, const audit_walk_t *w, char *err, size_t errcap)
{
    memcpy(a->prev, w->last, AUDIT_HEX);
    a->lines = (uint64_t)w->lines;
    a->start = w->rotated ? w->start : 0;
    a->opens_rotated = w->rotated;
    a->day = w->lines ? (long)(w->first_time / 86400) : -1;
    if (w->lines)
        return 0;
    char **rot;
    size_t n;
    if (audit_rotated_list(a->path, &rot, &n, err, errcap) != 0)
        return -1;
    int rc = 0;
    if (n) {
        audit_walk_t pw;
        char why[512];
        FILE *f = fopen(rot[n - 1], "r");
        long bad = f ? audit_walk(f, 0, false, &pw, why, sizeof why) : -1;
        if (f)
            fclose(f);
        if (bad) {
            snprintf(err, errcap, "%s: %s; refusing to continue a broken chain", rot[n - 1],
                     f ? why : strerror(errno));
            rc = -1;
        } else {
            memcpy(a->prev, pw.last, AUDIT_HEX);
            snprintf(a->from, sizeof a->from, "%s", audit_base(rot[n - 1]));
            a->from_lines = (uint64_t)pw.lines;
            a->start = (pw.rotated ? pw.start : 0) + (uint64_t)pw.lines;
            a->opens_rotated = a->pending = true;
        }
    }
    audit_paths_free(rot, n);
    return rc;
}

hx_audit_t *hx_audit_open_rotating(const char *path, const hx_audit_rotation_t *rot, char *err, size_t errcap)
{
    if (sodium_init() < 0) {
        snprintf(err, errcap, "libsodium cannot start");
        return NULL;
    }
    FILE *f = open_append(path, 0, err, errcap);
    if (!f)
        return NULL;
    hx_audit_t *a = calloc(1, sizeof *a);
    if (!a || !(a->path = strdup(path))) {
        fclose(f);
        free(a);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    a->f = f;
    if (rot)
        a->rot = *rot;
    rewind(f);
    char why[512];
    audit_walk_t w;
    long bad = audit_walk(f, 0, false, &w, why, sizeof why);
    struct stat st;
    if (bad)
        snprintf(err, errcap, "%s: %s; refusing to append to a broken chain", path, why);
    if (bad || take_chain(a, &w, err, errcap) != 0) {
        hx_audit_close(&a);
        return NULL;
    }
    a->bytes = fstat(fileno(f), &st) == 0 ? (uint64_t)st.st_size : 0;
    return a;
}

hx_audit_t *hx_audit_open(const char *path, char *err, size_t errcap)
{
    return hx_audit_open_rotating(path, NULL, err, errcap);
}

void hx_audit_close(hx_audit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_audit_t *a = *self_p;
    if (a->f)
        fclose(a->f);
    if (a->lent)
        fclose(a->lent);
    free(a->path);
    free(a->anchor_path);
    free(a);
    *self_p = NULL;
}

/* ---- rotation and retention -------------------------------------------------------------- */

/* Whether a line of len bytes at `now` goes into a new file. */
static bool rotation_due(const hx_audit_t *a, size_t len, time_t now)
{
    if (a->pending || a->lines <= (a->opens_rotated ? 1u : 0u))
        return false;                           /* a file takes one event at least */
    bool size = a->rot.max_bytes && a->bytes + len + 1 > a->rot.max_bytes;
    bool day = a->rot.daily && a->day >= 0 && now / 86400 != a->day;
    return size || day;
}

/* Deletes rotated files more than keep_days old, oldest first (so what is left is a series). */
static void retention(hx_audit_t *a, time_t now)
{
    char **rot, why[512];
    size_t n;
    if (!a->rot.keep_days || audit_rotated_list(a->path, &rot, &n, why, sizeof why) != 0)
        return;
    bool deleted = false;
    for (size_t i = 0; i + 1 < n; i++) {        /* never the newest: the current file continues it */
        time_t when;
        if (!hx_audit_rotated_name(audit_base(a->path), audit_base(rot[i]), &when) ||
            now - when <= (time_t)a->rot.keep_days * 86400)
            break;
        if (unlink(rot[i]) != 0) {
            hx_warn("audit: cannot delete %s (older than --audit-keep-days %u): %s", rot[i], a->rot.keep_days,
                    strerror(errno));
            break;
        }
        hx_info("audit: deleted %s, rotated more than %u day(s) ago (--audit-keep-days)", rot[i],
                a->rot.keep_days);
        deleted = true;
    }
    if (deleted && sync_dir(a->path) != 0)
        hx_warn("audit: cannot sync the directory of %s: %s", a->path, strerror(errno));
    audit_paths_free(rot, n);
}

/* Closes the file, renames it FILE.YYYYMMDDTHHMMSSZ and starts a new FILE whose first line
 * continues it. The old file is synced before the rename, the directory after it and after
 * the new file's first line: a crash leaves the old FILE, or the renamed file with no FILE or
 * an empty one (which the next open continues), or the new FILE. 0, 1 when the name is
 * taken (not this second), -1 when it failed (the file is kept). */
static int rotate(hx_audit_t *a, time_t now, const char *when)
{
    char name[AUDIT_PATH_MAX], stamp[AUDIT_STAMP_LEN + 1], err[600];
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(name, sizeof name, "%s.%s", a->path, stamp);
    struct stat st;
    if (lstat(name, &st) == 0)
        return 1;
    if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0 || rename(a->path, name) != 0) {
        hx_warn("audit: cannot rotate %s to %s: %s; appending to it still", a->path, name, strerror(errno));
        return -1;
    }
    if (sync_dir(a->path) != 0)
        hx_warn("audit: cannot sync the directory of %s: %s", a->path, strerror(errno));
    FILE *f = open_append(a->path, O_EXCL, err, sizeof err);
    if (!f) {
        hx_warn("audit: cannot start a new %s (%s); appending to the old one still", a->path, err);
        if (rename(name, a->path) != 0)
            hx_error("audit: cannot rename %s back to %s: %s", name, a->path, strerror(errno));
        return -1;
    }
    if (a->fd_lent && !a->lent)
        a->lent = a->f;                         /* the store may be syncing it: closed at its next ask */
    else
        fclose(a->f);
    a->f = f;
    a->fd_lent = false;
    snprintf(a->from, sizeof a->from, "%s", audit_base(name));
    a->from_lines = a->lines;
    a->start += a->lines;
    a->lines = a->bytes = 0;
    a->day = (long)(now / 86400);
    a->opens_rotated = a->pending = true;
    if (write_rotated(a, when) != 0 || fsync(fileno(a->f)) != 0 || sync_dir(a->path) != 0)
        hx_warn("audit: cannot make the start of the new %s durable: %s", a->path, strerror(errno));
    hx_info("audit: rotated %s to %s (%llu line(s))", a->path, name, (unsigned long long)a->from_lines);
    retention(a, now);
    return 0;
}

int hx_audit_write(hx_audit_t *a, const char *principal, const char *action, const char *id, const char *outcome)
{
    char when[HX_TIME_LEN];
    time_t now = clock_now(a, when);
    const char *fields[5] = {when, principal ? principal : "", action, id ? id : "", outcome};
    char hash[AUDIT_HEX];
    char *line = record_line(a->prev, fields, NULL, hash);
    if (line && rotation_due(a, strlen(line), now) && rotate(a, now, when) == 0) {
        free(line);                             /* it follows the new file's first line */
        line = record_line(a->prev, fields, NULL, hash);
    }
    if (line && a->pending && write_rotated(a, when) == 0) {
        free(line);
        line = record_line(a->prev, fields, NULL, hash);
    }
    int rc = line && !a->pending ? append(a, line, hash) : -1;
    if (rc == 0 && a->day < 0)
        a->day = (long)(now / 86400);
    free(line);
    return rc;
}

/* ---- the anchor -------------------------------------------------------------------------- */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

size_t hx_audit_anchor_hook(void *arg, uint8_t *out, size_t cap, int *sync_fd)
{
    hx_audit_t *a = arg;
    if (cap < HX_AUDIT_ANCHOR_LEN)
        return 0;
    if (a->anchor_failed) {                     /* keep what the log holds: it is the evidence */
        memcpy(out, a->recovered, HX_AUDIT_ANCHOR_LEN);
        return HX_AUDIT_ANCHOR_LEN;
    }
    if (a->lent) {                              /* the store asks again: its last sync is done */
        fclose(a->lent);
        a->lent = NULL;
    }
    put_u64(out, a->start + a->lines);
    size_t n = 0;
    if (sodium_hex2bin(out + 8, crypto_hash_sha256_BYTES, a->prev, 64, NULL, &n, NULL) != 0 ||
        n != crypto_hash_sha256_BYTES)
        memset(out + 8, 0, crypto_hash_sha256_BYTES);
    *sync_fd = fileno(a->f);
    a->fd_lent = true;
    return HX_AUDIT_ANCHOR_LEN;
}

/* The file against the head the log recorded (m lines into the series, the last one's
 * hash): anchor_err set when it does not reach it. */
static void check_head(hx_audit_t *a, uint64_t m, const char *hash)
{
    uint64_t end = a->start + a->lines;
    if (m == 0 || (m == end && strcmp(hash, a->prev) == 0))
        return;
    if (end == 0) {                             /* an empty file: a new chain, which says so */
        char outcome[200];
        snprintf(outcome, sizeof outcome, "new chain: the log anchored an earlier audit log at line %llu",
                 (unsigned long long)m);
        hx_warn("audit: %s is empty, but the log anchored an audit log of %llu line(s): starting a new chain, "
                "whose first line says so", a->path, (unsigned long long)m);
        if (hx_audit_write(a, "broker", "audit.new-chain", hash, outcome) != 0)
            hx_error("audit: cannot write %s", a->path);
        return;
    }
    if (end < m) {
        snprintf(a->anchor_err, sizeof a->anchor_err, "the audit log ends at line %llu but the log anchored line "
                 "%llu: lines %llu to %llu of %s were cut; restore it from a backup, or move it and its rotated "
                 "files aside to start a new chain (see OPERATIONS.md, The audit log)", (unsigned long long)end,
                 (unsigned long long)m, (unsigned long long)end + 1, (unsigned long long)m, a->path);
        a->anchor_failed = true;
        return;
    }
    audit_series_t s;
    char why[512];
    audit_walk_t w;
    FILE *f = NULL;
    if (audit_series(a->path, m, &s, why, sizeof why) == 0 && s.starts[0] < m && (f = fopen(s.paths[0], "r")))
        audit_walk(f, (long)(m - s.starts[0]), false, &w, why, sizeof why);
    if (!f || strcmp(w.at, hash) != 0) {
        snprintf(a->anchor_err, sizeof a->anchor_err, "line %llu of the audit log %s is not the line the log "
                 "anchored: the file was rewritten or replaced (see OPERATIONS.md, The audit log)",
                 (unsigned long long)m, s.n ? s.paths[0] : a->path);
        a->anchor_failed = true;
    }
    if (f)
        fclose(f);
    audit_series_free(&s);
}

void hx_audit_anchored_hook(void *arg, const uint8_t *blob, size_t len)
{
    hx_audit_t *a = arg;
    if (len != HX_AUDIT_ANCHOR_LEN)
        return;
    uint64_t m = get_u64(blob);
    char hash[65];
    sodium_bin2hex(hash, sizeof hash, blob + 8, crypto_hash_sha256_BYTES);
    if (!a->anchor_seen) {
        a->anchor_seen = true;
        check_head(a, m, hash);
        if (a->anchor_failed) {
            memcpy(a->recovered, blob, HX_AUDIT_ANCHOR_LEN);
            return;
        }
    }
    if (!a->anchor_path || a->anchor_failed)
        return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", a->anchor_path);
    json_t *j = json_pack("{s:I, s:s}", "lines", (json_int_t)m, "hash", hash);
    int rc = j ? json_dump_file(j, tmp, JSON_COMPACT | JSON_PRESERVE_ORDER) : -1;
    json_decref(j);
    if (rc != 0 || rename(tmp, a->anchor_path) != 0)
        hx_warn("audit: cannot write %s: %s", a->anchor_path, strerror(errno));
}

int hx_audit_set_anchor_file(hx_audit_t *a, const char *path)
{
    free(a->anchor_path);
    a->anchor_path = strdup(path);
    return a->anchor_path ? 0 : -1;
}

const char *hx_audit_anchor_error(const hx_audit_t *a)
{
    return a && a->anchor_failed ? a->anchor_err : NULL;
}
