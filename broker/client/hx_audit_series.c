/* hx_audit_series — checking an audit log: each file's chain (libsodium SHA-256, jansson),
 * the series of rotated files followed back from the log's first line, and the anchor. */
#define _GNU_SOURCE     /* strptime */
#include "hx_audit.h"
#include "hx_audit_internal.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const FIELDS[5] = {"time", "principal", "action", "id", "outcome"};
static const char ZEROS[AUDIT_HEX] = "0000000000000000000000000000000000000000000000000000000000000000";

void audit_record_hash(const char *prev, const char *const fields[5], const uint64_t *rot, char out[AUDIT_HEX])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)prev, strlen(prev));
    for (int i = 0; i < 5; i++) {
        crypto_hash_sha256_update(&st, (const unsigned char *)"\x1f", 1);
        crypto_hash_sha256_update(&st, (const unsigned char *)fields[i], strlen(fields[i]));
    }
    if (rot) {
        char counts[64];
        int n = snprintf(counts, sizeof counts, "\x1f%" PRIu64 "\x1f%" PRIu64, rot[0], rot[1]);
        crypto_hash_sha256_update(&st, (const unsigned char *)counts, (size_t)n);
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(out, AUDIT_HEX, h, sizeof h);
}

const char *audit_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* A count carried by a rotated record: a JSON integer from 0. */
static bool count_of(const json_t *j, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(j, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Line 1's time (the records' "YYYY-MM-DDTHH:MM:SS..." in UTC), or 0. */
static time_t record_time(const char *text)
{
    struct tm tm = {0};
    const char *end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    return end ? timegm(&tm) : 0;
}

/* Line `no` (text, n bytes) against the chain so far (w->last); 0 or no, with why. */
static long check_line(const char *line, size_t n, long no, audit_walk_t *w, char *why, size_t cap)
{
    json_error_t jerr;
    json_t *j = json_loadb(line, n, 0, &jerr);
    const char *prev = j ? json_string_value(json_object_get(j, "prev")) : NULL;
    const char *hash = j ? json_string_value(json_object_get(j, "hash")) : NULL;
    const char *fields[5];
    for (int i = 0; i < 5; i++)
        fields[i] = j ? json_string_value(json_object_get(j, FIELDS[i])) : NULL;
    bool complete = prev && hash && fields[0] && fields[1] && fields[2] && fields[3] && fields[4];
    uint64_t rot[2];
    bool rotated = complete && strcmp(fields[2], AUDIT_ROTATED) == 0;
    if (rotated && !(count_of(j, "lines", &rot[0]) && count_of(j, "series", &rot[1])))
        complete = false;
    long bad = 0;
    char want[AUDIT_HEX];
    if (!complete) {
        snprintf(why, cap, "line %ld: not an audit record (%s)", no, j ? "a field is missing" : jerr.text);
        bad = no;
    } else if (no == 1 && rotated && strlen(fields[3]) < sizeof w->from) {
        w->rotated = true;                      /* the chain continues the file it names */
        snprintf(w->from, sizeof w->from, "%s", fields[3]);
        w->from_lines = rot[0];
        w->start = rot[1];
        snprintf(w->start_hash, sizeof w->start_hash, "%s", prev);
        snprintf(w->last, sizeof w->last, "%s", prev);
    }
    if (!bad && no == 1)
        w->first_time = record_time(fields[0]);
    if (!bad && strcmp(prev, w->last) != 0) {
        snprintf(why, cap, "line %ld: does not follow line %ld (a line was deleted, added or moved)", no, no - 1);
        bad = no;
    } else if (!bad && (audit_record_hash(prev, fields, rotated ? rot : NULL, want), strcmp(want, hash) != 0)) {
        snprintf(why, cap, "line %ld: its content does not match its hash (the line was edited)", no);
        bad = no;
    } else if (!bad) {
        memcpy(w->last, hash, AUDIT_HEX);
    }
    json_decref(j);
    return bad;
}

long audit_walk(FILE *f, long target, bool first_only, audit_walk_t *w, char *why, size_t cap)
{
    memset(w, 0, sizeof *w);
    memcpy(w->last, ZEROS, AUDIT_HEX);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    long no = 0, bad = 0;
    while (!bad && !(first_only && no == 1) && (n = getline(&line, &lcap, f)) > 0) {
        no++;
        bad = check_line(line, (size_t)n, no, w, why, cap);
        if (!bad && no == target)
            memcpy(w->at, w->last, AUDIT_HEX);
    }
    free(line);
    w->lines = bad ? bad - 1 : no;
    return bad;
}

/* audit_walk on a file by name: -1 (with why) when it cannot be opened. */
static long walk_path(const char *path, long target, bool first_only, audit_walk_t *w, char *why, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    long bad = audit_walk(f, target, first_only, w, why, cap);
    fclose(f);
    return bad;
}

/* ---- the series: FILE.YYYYMMDDTHHMMSSZ, oldest first ------------------------------------------ */

bool hx_audit_rotated_name(const char *base, const char *name, time_t *when)
{
    size_t bl = strlen(base);
    if (strncmp(name, base, bl) != 0 || name[bl] != '.' || strlen(name + bl + 1) != AUDIT_STAMP_LEN)
        return false;
    struct tm tm = {0};
    const char *end = strptime(name + bl + 1, "%Y%m%dT%H%M%SZ", &tm);
    if (!end || *end)
        return false;
    if (when)
        *when = timegm(&tm);
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void audit_paths_free(char **paths, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

int audit_rotated_list(const char *path, char ***paths, size_t *n, char *why, size_t cap)
{
    *paths = NULL;
    *n = 0;
    const char *base = audit_base(path);
    char dir[AUDIT_PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", base == path ? 1 : (int)(base - path), base == path ? "." : path);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(why, cap, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    size_t have = 0;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!hx_audit_rotated_name(base, e->d_name, NULL))
            continue;
        char **grown = *n == have ? realloc(*paths, (have = have ? 2 * have : 8) * sizeof *grown) : *paths;
        char full[AUDIT_PATH_MAX + 256];
        snprintf(full, sizeof full, "%s%s", base == path ? "" : dir, e->d_name);
        if (grown)
            *paths = grown;
        if (!grown || !((*paths)[*n] = strdup(full))) {
            snprintf(why, cap, "out of memory");
            rc = -1;
        } else {
            (*n)++;
        }
    }
    closedir(d);
    if (rc != 0) {
        audit_paths_free(*paths, *n);
        *paths = NULL;
        *n = 0;
    } else if (*n > 1) {
        qsort(*paths, *n, sizeof **paths, by_name);
    }
    return rc;
}

void audit_series_free(audit_series_t *s)
{
    audit_paths_free(s->paths, s->n);
    free(s->starts);
    free(s->bad_path);
    memset(s, 0, sizeof *s);
}

/* Puts path in front of the series (the files are found newest first). */
static int series_prepend(audit_series_t *s, const char *path, uint64_t start)
{
    char **p = realloc(s->paths, (s->n + 1) * sizeof *p);
    if (p)
        s->paths = p;
    uint64_t *st = p ? realloc(s->starts, (s->n + 1) * sizeof *st) : NULL;
    if (st)
        s->starts = st;
    char *copy = st ? strdup(path) : NULL;
    if (!copy)
        return -1;
    memmove(s->paths + 1, s->paths, s->n * sizeof *s->paths);
    memmove(s->starts + 1, s->starts, s->n * sizeof *s->starts);
    s->paths[0] = copy;
    s->starts[0] = start;
    s->n++;
    return 0;
}

static int series_fail(audit_series_t *s, const char *path, long line)
{
    free(s->bad_path);
    s->bad_path = path ? strdup(path) : NULL;
    s->bad_line = line;
    return -1;
}

/* Where the series' newest file is: the log, or (empty or missing) the newest rotated one. */
static const char *series_end(const char *path, char **rot, size_t nrot, bool *log_empty, char *why, size_t cap)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (st.st_size > 0 || nrot == 0)
            return path;
    } else if (errno != ENOENT || nrot == 0) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    *log_empty = true;                          /* a rotation stopped before its first line */
    return rot[nrot - 1];
}

/* The index of the rotated file called name, or -1. */
static long find_rotated(char **rot, size_t nrot, const char *name)
{
    for (size_t i = 0; i < nrot; i++)
        if (strcmp(audit_base(rot[i]), name) == 0)
            return (long)i;
    return -1;
}

/* Steps back from cur, whose first line names `from`: its index in rot, -2 when from is not
 * present and nothing older is (the trusted start), -1 (why) when the series is broken. */
static long step_back(const char *path, const char *cur, const audit_walk_t *w, char **rot, size_t nrot,
                      const bool *used, char *why, size_t cap)
{
    if (!hx_audit_rotated_name(audit_base(path), w->from, NULL)) {
        snprintf(why, cap, "%s line 1: continues '%s', which is not a rotated file of %s", cur, w->from, path);
        return -1;
    }
    long i = find_rotated(rot, nrot, w->from);
    if (i >= 0 && used[i]) {
        snprintf(why, cap, "%s line 1: continues %s, which the series already passed (the files loop)", cur,
                 w->from);
        return -1;
    }
    if (i >= 0)
        return i;
    for (size_t k = 0; k < nrot; k++)
        if (!used[k] && strcmp(audit_base(rot[k]), w->from) < 0) {
            snprintf(why, cap, "%s is missing: %s continues it, and the older %s is still there (a file was "
                     "deleted from the middle of the series)", w->from, cur, rot[k]);
            return -1;
        }
    return -2;
}

int audit_series(const char *path, uint64_t down_to, audit_series_t *s, char *why, size_t cap)
{
    memset(s, 0, sizeof *s);
    char **rot;
    size_t nrot;
    if (audit_rotated_list(path, &rot, &nrot, why, cap) != 0)
        return -1;
    bool *used = calloc(nrot + 1, sizeof *used);
    const char *cur = used ? series_end(path, rot, nrot, &s->log_empty, why, cap) : NULL;
    int rc = cur ? 0 : -1;
    if (!used)
        snprintf(why, cap, "out of memory");
    if (s->log_empty)
        used[nrot - 1] = true;
    while (rc == 0) {
        audit_walk_t w;
        long bad = walk_path(cur, 0, true, &w, why, cap);
        if (bad) {
            rc = series_fail(s, cur, bad);
            break;
        }
        if (series_prepend(s, cur, w.rotated ? w.start : 0) != 0) {
            snprintf(why, cap, "out of memory");
            rc = -1;
            break;
        }
        if (!w.rotated || (down_to && w.start < down_to))
            break;
        long i = step_back(path, cur, &w, rot, nrot, used, why, cap);
        if (i == -1)
            rc = series_fail(s, cur, 1);
        if (i == -2)
            snprintf(s->trusted, sizeof s->trusted, "%s", w.from);
        if (i < 0)
            break;
        used[i] = true;
        cur = rot[i];
    }
    for (size_t k = 0; rc == 0 && !down_to && k < nrot; k++)
        if (!used[k]) {
            snprintf(why, cap, "%s: a rotated file the series from %s does not reach (%s starts a new chain); "
                     "move the older files aside", rot[k], path, s->paths[0]);
            rc = series_fail(s, rot[k], 1);
        }
    free(used);
    audit_paths_free(rot, nrot);
    if (rc != 0) {
        char *bad = s->bad_path;
        long line = s->bad_line;
        s->bad_path = NULL;
        audit_series_free(s);
        s->bad_path = bad;
        s->bad_line = line;
    }
    return rc;
}

/* ---- verifying ------------------------------------------------------------------------------- */

/* File i of the series against the one before it (p, walked as pw): its first line must name
 * it, carry its line count and the series' and chain from its last line. */
static long check_link(const audit_series_t *s, size_t i, const audit_walk_t *pw, const audit_walk_t *w,
                       hx_audit_report_t *r, char *why, size_t cap)
{
    const char *p = s->paths[i - 1], *cur = s->paths[i];
    uint64_t want = s->starts[i - 1] + (uint64_t)pw->lines;
    const char *at = p;
    long line = 1;
    if ((uint64_t)pw->lines < w->from_lines) {
        snprintf(why, cap, "%s ends at line %ld, but %s line 1 says it had %" PRIu64 ": lines %ld to %" PRIu64
                 " of %s were cut", p, pw->lines, cur, w->from_lines, pw->lines + 1, w->from_lines, p);
        line = pw->lines + 1;
    } else if ((uint64_t)pw->lines > w->from_lines) {
        snprintf(why, cap, "%s has %ld line(s), but %s line 1 says it had %" PRIu64 ": lines were added after "
                 "it was rotated", p, pw->lines, cur, w->from_lines);
        line = (long)w->from_lines + 1;
    } else if (strcmp(w->start_hash, pw->last) != 0) {
        snprintf(why, cap, "%s line %ld is not the line %s line 1 continues: %s was rewritten or replaced", p,
                 pw->lines, cur, p);
        line = pw->lines;
    } else if (w->start != want) {
        snprintf(why, cap, "%s line 1: says %" PRIu64 " line(s) of the series came before it, but they are %"
                 PRIu64, cur, w->start, want);
        at = cur;
    } else {
        return 0;
    }
    snprintf(r->bad_file, sizeof r->bad_file, "%s", at);
    return line;
}

/* Every file of the series, oldest first; the hash of series line m (m > 0) into at. */
static long walk_series(const audit_series_t *s, uint64_t m, char at[AUDIT_HEX], hx_audit_report_t *r, char *why,
                        size_t cap)
{
    audit_walk_t prev = {0}, w;
    for (size_t i = 0; i < s->n; i++) {
        uint64_t start = s->starts[i];
        long target = m > start && m - start <= (uint64_t)LONG_MAX ? (long)(m - start) : 0;
        long bad = walk_path(s->paths[i], target, false, &w, why, cap);
        if (bad > 0) {                          /* name the file in front of "line N: ..." */
            char line_why[512];
            snprintf(line_why, sizeof line_why, "%s", why);
            snprintf(why, cap, "%s %s", s->paths[i], line_why);
            snprintf(r->bad_file, sizeof r->bad_file, "%s", s->paths[i]);
        }
        if (bad)
            return bad;
        if (i > 0 && (bad = check_link(s, i, &prev, &w, r, why, cap)) != 0)
            return bad;
        if (target && target <= w.lines)
            memcpy(at, w.at, AUDIT_HEX);
        if (m && m == start && i == 0)
            memcpy(at, w.rotated ? w.start_hash : ZEROS, AUDIT_HEX);
        r->files++;
        r->lines += (uint64_t)w.lines;
        prev = w;
    }
    return 0;
}

/* The head in `anchor` (a data directory or an anchor file): 0, or -1 with why. */
static int read_anchor(const char *anchor, uint64_t *m, char hash[AUDIT_HEX], char *why, size_t cap)
{
    char file[AUDIT_PATH_MAX];
    struct stat st;
    if (stat(anchor, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(file, sizeof file, "%s/%s", anchor, HX_AUDIT_ANCHOR_FILE);
    else
        snprintf(file, sizeof file, "%s", anchor);
    json_error_t jerr;
    json_t *j = json_load_file(file, 0, &jerr);
    json_t *jl = j ? json_object_get(j, "lines") : NULL;
    const char *jh = j ? json_string_value(json_object_get(j, "hash")) : NULL;
    bool ok = json_is_integer(jl) && json_integer_value(jl) >= 0 && jh && strlen(jh) == 64 &&
              strspn(jh, "0123456789abcdef") == 64;
    if (ok) {
        *m = (uint64_t)json_integer_value(jl);
        memcpy(hash, jh, AUDIT_HEX);
    }
    json_decref(j);
    if (!ok)
        snprintf(why, cap, "%s: %s", file, j ? "not an audit anchor" : jerr.text);
    return ok ? 0 : -1;
}

/* The series against the anchored head (m, hash); 0 or the line (of r->bad_file) at fault. */
static long check_anchor(const audit_series_t *s, uint64_t m, const char *hash, const char *at,
                         hx_audit_report_t *r, char *why, size_t cap)
{
    uint64_t end = r->start + r->lines;
    const char *last = s->paths[s->n - 1];
    if (m > end) {
        snprintf(why, cap, "the audit log ends at line %" PRIu64 " but the log anchored line %" PRIu64 ": lines %"
                 PRIu64 " to %" PRIu64 " were cut", end, m, end + 1, m);
        snprintf(r->bad_file, sizeof r->bad_file, "%s", last);
        return (long)(end - s->starts[s->n - 1]) + 1;
    }
    if (m > 0 && m < r->start) {
        snprintf(why, cap, "the log anchored line %" PRIu64 ", which is in a file no longer present (%s starts "
                 "after line %" PRIu64 ")", m, s->paths[0], r->start);
        snprintf(r->bad_file, sizeof r->bad_file, "%s", s->paths[0]);
        return 1;
    }
    if (m > 0 && strcmp(at, hash) != 0) {
        size_t i = s->n - 1;
        while (i > 0 && s->starts[i] >= m)
            i--;
        snprintf(why, cap, "line %" PRIu64 " is not the line the log anchored: %s was rewritten or replaced", m,
                 s->paths[i]);
        snprintf(r->bad_file, sizeof r->bad_file, "%s", s->paths[i]);
        return m > s->starts[i] ? (long)(m - s->starts[i]) : 1;
    }
    r->anchored = m;
    return 0;
}

long hx_audit_verify_series(const char *path, const char *anchor, hx_audit_report_t *r, char *why, size_t cap)
{
    memset(r, 0, sizeof *r);
    uint64_t m = 0;
    char hash[AUDIT_HEX] = "", at[AUDIT_HEX] = "";
    if (anchor && read_anchor(anchor, &m, hash, why, cap) != 0)
        return -1;
    audit_series_t s;
    if (audit_series(path, 0, &s, why, cap) != 0) {
        long bad = s.bad_path ? (s.bad_line > 0 ? s.bad_line : 1) : -1;
        if (s.bad_path)
            snprintf(r->bad_file, sizeof r->bad_file, "%s", s.bad_path);
        free(s.bad_path);
        return bad;
    }
    r->start = s.starts[0];
    r->log_empty = s.log_empty;
    snprintf(r->oldest, sizeof r->oldest, "%s", s.paths[0]);
    snprintf(r->trusted, sizeof r->trusted, "%s", s.trusted);
    long bad = walk_series(&s, m, at, r, why, cap);
    if (!bad && anchor)
        bad = check_anchor(&s, m, hash, at, r, why, cap);
    audit_series_free(&s);
    return bad;
}

long hx_audit_verify(const char *path, size_t *lines, char *why, size_t cap)
{
    hx_audit_report_t r;
    long bad = hx_audit_verify_series(path, NULL, &r, why, cap);
    if (lines)
        *lines = (size_t)r.lines;
    return bad;
}

long hx_audit_verify_anchored(const char *path, const char *anchor, size_t *lines, size_t *anchored, char *why,
                              size_t cap)
{
    hx_audit_report_t r;
    long bad = hx_audit_verify_series(path, anchor, &r, why, cap);
    if (lines)
        *lines = (size_t)r.lines;
    if (anchored)
        *anchored = (size_t)r.anchored;
    return bad;
}
