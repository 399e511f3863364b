/* hx_audit — a hash-chained JSON-lines audit log (libsodium SHA-256, jansson). */
#include "hx_audit.h"

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
    char prev[2 * crypto_hash_sha256_BYTES + 1];  /* hex SHA-256 of the last line */
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

/* Walks the chain; on success leaves the last record's hash in last. */
static long walk(FILE *f, size_t *lines, char *why, size_t cap, char last[65])
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
    long bad = walk(f, lines, why, cap, last);
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
    long bad = walk(f, NULL, why, sizeof why, a->prev);
    if (bad) {
        snprintf(err, errcap, "%s: %s; refusing to append to a broken chain", path, why);
        fclose(f);
        free(a);
        return NULL;
    }
    a->f = f;
    return a;
}

void hx_audit_close(hx_audit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fclose((*self_p)->f);
    free(*self_p);
    *self_p = NULL;
}

int hx_audit_write(hx_audit_t *a, const char *principal, const char *action, const char *id, const char *outcome)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
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
    if (rc == 0)
        memcpy(a->prev, hash, sizeof a->prev);
    free(line);
    return rc;
}
