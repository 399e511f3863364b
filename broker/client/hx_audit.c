/* hx_audit — a hash-chained JSON-lines audit log (libsodium SHA-256, jansson), and its anchor. */
#include "hx_audit.h"
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
    char prev[2 * crypto_hash_sha256_BYTES + 1];  /* hex SHA-256 of the last line */
    uint64_t lines;                               /* in the file */
    char *anchor_path;                            /* where durable heads are copied, or NULL */
    bool anchor_seen;                             /* the first durable head was checked */
    bool anchor_failed;
    uint8_t recovered[HX_AUDIT_ANCHOR_LEN];       /* the head the log held, when the file fails it */
    char anchor_err[1024];
};

/* The hash of a record: SHA-256 over prev and every field, separated by 0x1f. */
static void record_hash(const char *prev, const char *const fields[5], char out[2 * crypto_hash_sha256_BYTES + 1])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)prev, strlen(prev));
    for (int i = 0; i < 5; i++) {
        crypto_hash_sha256_update(&st, (const unsigned char *)"\x1f", 1);
        crypto_hash_sha256_update(&st, (const unsigned char *)fields[i], strlen(fields[i]));
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(out, 2 * crypto_hash_sha256_BYTES + 1, h, sizeof h);
}

static const char *const FIELDS[5] = {"time", "principal", "action", "id", "outcome"};

/* Walks the chain; on success leaves the last record's hash in last, and that of line
 * `target` (when the file has it) in at_target. */
static long walk(FILE *f, size_t *lines, char *why, size_t cap, char last[65], long target, char at_target[65])
{
    memset(last, '0', 64);
    last[64] = '\0';
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    long no = 0, bad = 0;
    while (!bad && (n = getline(&line, &lcap, f)) > 0) {
        no++;
        json_error_t jerr;
        json_t *j = json_loadb(line, (size_t)n, 0, &jerr);
        const char *prev = j ? json_string_value(json_object_get(j, "prev")) : NULL;
        const char *hash = j ? json_string_value(json_object_get(j, "hash")) : NULL;
        const char *fields[5];
        for (int i = 0; i < 5; i++)
            fields[i] = j ? json_string_value(json_object_get(j, FIELDS[i])) : NULL;
        bool complete = prev && hash && fields[0] && fields[1] && fields[2] && fields[3] && fields[4];
        char want[65];
        if (!complete) {
            snprintf(why, cap, "line %ld: not an audit record (%s)", no, j ? "a field is missing" : jerr.text);
            bad = no;
        } else if (strcmp(prev, last) != 0) {
            snprintf(why, cap, "line %ld: does not follow line %ld (a line was deleted, added or moved)", no,
                     no - 1);
            bad = no;
        } else if (record_hash(prev, fields, want), strcmp(want, hash) != 0) {
            snprintf(why, cap, "line %ld: its content does not match its hash (the line was edited)", no);
            bad = no;
        } else {
            memcpy(last, hash, 65);
            if (no == target && at_target)
                memcpy(at_target, hash, 65);
        }
        json_decref(j);
    }
    free(line);
    if (lines)
        *lines = (size_t)(bad ? bad - 1 : no);
    return bad;
}

long hx_audit_verify(const char *path, size_t *lines, char *why, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    char last[65];
    long bad = walk(f, lines, why, cap, last, 0, NULL);
    fclose(f);
    return bad;
}

hx_audit_t *hx_audit_open(const char *path, char *err, size_t errcap)
{
    if (sodium_init() < 0) {
        snprintf(err, errcap, "libsodium cannot start");
        return NULL;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "a+") : NULL;
    if (!f) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    hx_audit_t *a = calloc(1, sizeof *a);
    if (!a) {
        fclose(f);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    rewind(f);
    char why[256];
    size_t lines = 0;
    long bad = walk(f, &lines, why, sizeof why, a->prev, 0, NULL);
    if (bad || !(a->path = strdup(path))) {
        if (bad)
            snprintf(err, errcap, "%s: %s; refusing to append to a broken chain", path, why);
        else
            snprintf(err, errcap, "out of memory");
        fclose(f);
        free(a);
        return NULL;
    }
    a->f = f;
    a->lines = lines;
    return a;
}

void hx_audit_close(hx_audit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fclose((*self_p)->f);
    free((*self_p)->path);
    free((*self_p)->anchor_path);
    free(*self_p);
    *self_p = NULL;
}

int hx_audit_write(hx_audit_t *a, const char *principal, const char *action, const char *id, const char *outcome)
{
    char when[HX_TIME_LEN];
    hx_time_now_iso(when);
    const char *fields[5] = {when, principal ? principal : "", action, id ? id : "", outcome};
    char hash[65];
    record_hash(a->prev, fields, hash);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "time", when, "principal", fields[1], "action",
                          action, "id", fields[3], "outcome", outcome, "prev", a->prev, "hash", hash);
    char *line = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!line)
        return -1;
    int rc = fprintf(a->f, "%s\n", line) < 0 || fflush(a->f) != 0 ? -1 : 0;
    if (rc == 0) {
        memcpy(a->prev, hash, sizeof a->prev);
        a->lines++;
    }
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
    put_u64(out, a->lines);
    size_t n = 0;
    if (sodium_hex2bin(out + 8, crypto_hash_sha256_BYTES, a->prev, 64, NULL, &n, NULL) != 0 ||
        n != crypto_hash_sha256_BYTES)
        memset(out + 8, 0, crypto_hash_sha256_BYTES);
    *sync_fd = fileno(a->f);
    return HX_AUDIT_ANCHOR_LEN;
}

/* The file against the head the log recorded: "" when it reaches it, else why not. */
static void check_head(hx_audit_t *a, uint64_t m, const char *hash)
{
    if (m == 0 || (m == a->lines && strcmp(hash, a->prev) == 0))
        return;
    if (a->lines == 0) {                        /* an empty file: a new chain, which says so */
        char outcome[200];
        snprintf(outcome, sizeof outcome, "new chain: the log anchored an earlier audit log at line %llu",
                 (unsigned long long)m);
        hx_warn("audit: %s is empty, but the log anchored an audit log of %llu line(s): starting a new chain, "
                "whose first line says so", a->path, (unsigned long long)m);
        if (hx_audit_write(a, "broker", "audit.new-chain", hash, outcome) != 0)
            hx_error("audit: cannot write %s", a->path);
        return;
    }
    if (a->lines < m) {
        snprintf(a->anchor_err, sizeof a->anchor_err, "the audit log ends at line %llu but the log anchored line "
                 "%llu: lines %llu to %llu of %s were cut; restore it from a backup, or move it aside to start a "
                 "new chain (see OPERATIONS.md, The audit log)", (unsigned long long)a->lines, (unsigned long long)m,
                 (unsigned long long)a->lines + 1, (unsigned long long)m, a->path);
        a->anchor_failed = true;
        return;
    }
    FILE *f = fopen(a->path, "r");
    char last[65], at[65] = "", why[256];
    size_t lines = 0;
    if (!f || walk(f, &lines, why, sizeof why, last, (long)m, at) != 0 || strcmp(at, hash) != 0) {
        snprintf(a->anchor_err, sizeof a->anchor_err, "line %llu of the audit log %s is not the line the log "
                 "anchored: the file was rewritten or replaced (see OPERATIONS.md, The audit log)",
                 (unsigned long long)m, a->path);
        a->anchor_failed = true;
    }
    if (f)
        fclose(f);
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

long hx_audit_verify_anchored(const char *path, const char *anchor, size_t *lines, size_t *anchored, char *why,
                              size_t cap)
{
    char file[4200];
    struct stat st;
    if (stat(anchor, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(file, sizeof file, "%s/%s", anchor, HX_AUDIT_ANCHOR_FILE);
    else
        snprintf(file, sizeof file, "%s", anchor);
    json_error_t jerr;
    json_t *j = json_load_file(file, 0, &jerr);
    json_t *jl = j ? json_object_get(j, "lines") : NULL;
    const char *jh = j ? json_string_value(json_object_get(j, "hash")) : NULL;
    char hash[65];
    json_int_t m = json_is_integer(jl) ? json_integer_value(jl) : -1;
    bool ok = m >= 0 && jh && strlen(jh) == 64 && strspn(jh, "0123456789abcdef") == 64;
    if (ok)
        memcpy(hash, jh, 65);
    json_decref(j);
    if (!ok) {
        snprintf(why, cap, "%s: %s", file, j ? "not an audit anchor" : jerr.text);
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    char last[65], at[65] = "";
    size_t n = 0;
    long bad = walk(f, &n, why, cap, last, (long)m, at);
    fclose(f);
    if (lines)
        *lines = n;
    if (bad)
        return bad;
    if (n < (size_t)m) {
        snprintf(why, cap, "the audit log ends at line %zu but the log anchored line %lld: lines %zu to %lld were "
                 "cut", n, (long long)m, n + 1, (long long)m);
        return (long)n + 1;
    }
    if (m > 0 && strcmp(at, hash) != 0) {
        snprintf(why, cap, "line %lld is not the line the log anchored: the file was rewritten or replaced",
                 (long long)m);
        return (long)m;
    }
    if (anchored)
        *anchored = (size_t)m;
    return 0;
}
