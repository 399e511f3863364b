/* hx_audit_internal — what the audit writer and its verifier share: a record's hash, the
 * walk over one file's chain, and the series of files rotated out of a log (its first lines
 * followed back). */
#ifndef HX_AUDIT_INTERNAL_H
#define HX_AUDIT_INTERNAL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define AUDIT_HEX 65                    /* a SHA-256 in hex, with its NUL */
#define AUDIT_ROTATED "audit.rotated"   /* the action of a rotated file's successor's first line */
#define AUDIT_STAMP_LEN 16              /* YYYYMMDDTHHMMSSZ */
#define AUDIT_PATH_MAX 4200

/* The hash of a record: SHA-256 over prev and every field, separated by 0x1f; a rotated
 * record's (rot: {lines, series}) also over the two counts it carries. */
void audit_record_hash(const char *prev, const char *const fields[5], const uint64_t *rot, char out[AUDIT_HEX]);

/* One file's chain, as audit_walk found it. */
typedef struct {
    long lines;                 /* records that hold */
    char last[AUDIT_HEX];       /* the last one's hash (zeros: none, or the rotated start) */
    char at[AUDIT_HEX];         /* line `target`'s hash, when the file has it */
    bool rotated;               /* line 1 continues a rotated file: */
    char from[256];             /*   that file's name (no directory) */
    uint64_t from_lines;        /*   its line count */
    uint64_t start;             /*   the series' lines before this file */
    char start_hash[AUDIT_HEX]; /*   line 1's prev: that file's last hash */
    time_t first_time;          /* line 1's time; 0 when none */
} audit_walk_t;

/* Walks the chain of f (only its first line when first_only); 0, or the number of the first
 * line that breaks it, with why. Line 1 may be an audit.rotated record (the chain then starts
 * from its prev); any other first line starts from zeros. */
long audit_walk(FILE *f, long target, bool first_only, audit_walk_t *w, char *why, size_t cap);

/* The series a log belongs to, oldest first. */
typedef struct {
    char **paths;               /* the files, oldest first; the log itself last unless it is
                                   empty or missing and a rotated file ends the series */
    uint64_t *starts;           /* each file's series lines before it, from its first line */
    size_t n;
    bool log_empty;             /* the log is empty or missing: the series ends with a rotated file */
    char trusted[256];          /* "" or the file the oldest continues, which is not present */
    char *bad_path;             /* when audit_series fails: the file it names, else NULL */
    long bad_line;
} audit_series_t;

/* Follows the log at path back through its rotated files (path.YYYYMMDDTHHMMSSZ), each named
 * by its successor's first line, down to the file holding series line down_to (0: to the
 * oldest present, and then every rotated file must have been reached). 0, or -1 with why
 * (a file missing in the middle, one not reached, a first line that is no record, a file
 * that cannot be read). */
int audit_series(const char *path, uint64_t down_to, audit_series_t *s, char *why, size_t cap);
void audit_series_free(audit_series_t *s);

/* The rotated files of the log at path, oldest first (full paths); 0 or -1 with why. */
int audit_rotated_list(const char *path, char ***paths, size_t *n, char *why, size_t cap);
void audit_paths_free(char **paths, size_t n);
/* The last path component. */
const char *audit_base(const char *path);

#endif
