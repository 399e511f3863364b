/* cli_cmd_backup — `handoff admin backup OUT` and `handoff admin restore BUNDLE`: an online
 * backup of a whole Handoff installation while everything keeps serving, and its restore.
 *
 * What a backup takes, in this order (the order is what makes the copies agree):
 *   1. the broker's log (--broker-data), by hx_store_log_snapshot: consistent at the log's
 *      durable end E, as a crash at E would have left it;
 *   2. the audit logs (--audit, each with its rotated files FILE.YYYYMMDDTHHMMSSZ), each up
 *      to its last complete line. The log's commit records anchor the audit chain's head and
 *      trail the file, so a copy taken after the log's is at or past the head it anchors;
 *   3. every SQLite file (--db, --db-dir) with SQLite's online backup API, beside the
 *      program writing it.
 *
 * The bundle is one file, its format in cli_bundle.h. Inside: broker/<segments, SYNCED,
 * audit.anchor>, audit/<label>/<files>, db/<name>.db and, last, manifest.json (each file's
 * role, original path, size and SHA-256, and E). Written to OUT.tmp, synced, then renamed.
 *
 * A restore writes DIR.tmp, checks every file against the manifest, recovers the restored
 * log (hx_store_log_new + recover) and runs PRAGMA integrity_check on every SQLite file;
 * only then is DIR.tmp renamed DIR. */
#define _GNU_SOURCE
#include "cli_bundle.h"
#include "cli_cmd.h"
#include "cli_help.h"
#include "hx_audit.h"
#include "hx_curve.h"
#include "hx_db.h"
#include "hx_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MANIFEST "manifest.json"
#ifndef HANDOFF_VERSION
#define HANDOFF_VERSION "unknown"
#endif

/* ---- backup ------------------------------------------------------------------------------- */

typedef struct {
    const char *out;
    const char *broker_data, *key;
    const char *pg;             /* --pg URL: the services' PostgreSQL database, by pg_dump */
    const char **audits, **dbs, **db_dirs;
    size_t n_audits, n_dbs, n_db_dirs;
    const char *into, *data_key;
    int list;
} admin_opts_t;

typedef struct {
    struct archive *ar;
    bundle_writer_t w;
    json_t *files;              /* the manifest's entries */
    uint64_t bytes;             /* file bytes taken */
    const char *role, *src_dir; /* of the files being added */
    char err[ERR_CAP];
} backup_t;

/* path made absolute (for the manifest: where the file came from), or path as it is. */
static const char *absolute(const char *path, char out[PATH_MAX])
{
    return realpath(path, out) ? out : path;
}

/* Adds one file to the bundle: [0, len) of fd, or data; its manifest entry with the SHA-256. */
static int backup_add(backup_t *b, const char *name, const char *path, int fd, uint64_t len, const uint8_t *data)
{
    struct archive_entry *e = archive_entry_new();
    if (!e) {
        snprintf(b->err, sizeof b->err, "out of memory");
        return -1;
    }
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)len);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0600);
    archive_entry_set_mtime(e, time(NULL), 0);
    int rc = archive_write_header(b->ar, e) == ARCHIVE_OK ? 0 : -1;
    archive_entry_free(e);
    if (rc) {
        snprintf(b->err, sizeof b->err, "%s: %s", name, archive_error_string(b->ar));
        return -1;
    }
    crypto_hash_sha256_state sha;
    crypto_hash_sha256_init(&sha);
    static uint8_t buf[1 << 16];
    uint64_t done = 0;
    while (done < len) {
        size_t want = len - done < sizeof buf ? (size_t)(len - done) : sizeof buf;
        const uint8_t *p = data ? data + done : buf;
        ssize_t n = data ? (ssize_t)want : pread(fd, buf, want, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(b->err, sizeof b->err, "cannot read %s: %s", path, n < 0 ? strerror(errno) : "it became shorter");
            return -1;
        }
        crypto_hash_sha256_update(&sha, p, (size_t)n);
        if (archive_write_data(b->ar, p, (size_t)n) != n) {
            snprintf(b->err, sizeof b->err, "%s", archive_error_string(b->ar));
            return -1;
        }
        done += (uint64_t)n;
    }
    uint8_t digest[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256_final(&sha, digest);
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    b->bytes += len;
    if (strcmp(name, MANIFEST) != 0)
        json_array_append_new(b->files, json_pack("{s:s, s:s, s:s, s:I, s:s}", "name", name, "role", b->role, "path",
                                                  path, "size", (json_int_t)len, "sha256", hex));
    return 0;
}

/* hx_store_log_snapshot's receiver: each file of the log into broker/. */
static int backup_log_file(void *arg, const char *name, int fd, uint64_t len, const uint8_t *data)
{
    backup_t *b = arg;
    char entry[128], path[PATH_MAX + 64];
    snprintf(entry, sizeof entry, "broker/%s", name);
    snprintf(path, sizeof path, "%s/%s", b->src_dir, name);
    return backup_add(b, entry, path, fd, len, data) == 0 ? 0 : HX_EIO;
}

/* One file of an audit series, held open. */
typedef struct {
    char name[NAME_MAX + 1];
    int fd;
} audit_file_t;

static int audit_cmp(const void *a, const void *b)
{
    return strcmp(((const audit_file_t *)a)->name, ((const audit_file_t *)b)->name);
}

/* Opens every rotated file of base in dir not yet in files. */
static int audit_scan(const char *dir, const char *base, audit_file_t **files, size_t *n, char *err, size_t errcap)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errcap, "cannot read %s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (!hx_audit_rotated_name(base, de->d_name, NULL))
            continue;
        bool have = false;
        for (size_t i = 0; i < *n; i++)
            have |= strcmp((*files)[i].name, de->d_name) == 0;
        if (have)
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                continue;                       /* deleted meanwhile (--audit-keep-days) */
            snprintf(err, errcap, "cannot open %s/%s: %s", dir, de->d_name, strerror(errno));
            rc = -1;
            break;
        }
        audit_file_t *t = realloc(*files, (*n + 1) * sizeof **files);
        if (!t) {
            close(fd);
            snprintf(err, errcap, "out of memory");
            rc = -1;
            break;
        }
        *files = t;
        snprintf(t[*n].name, sizeof t[*n].name, "%s", de->d_name);
        t[*n].fd = fd;
        (*n)++;
    }
    closedir(d);
    return rc;
}

/* The length of fd's content up to and with its last newline. */
static int complete_lines(int fd, uint64_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    uint64_t end = (uint64_t)st.st_size;
    uint8_t buf[4096];
    while (end > 0) {
        size_t want = end < sizeof buf ? (size_t)end : sizeof buf;
        ssize_t n = pread(fd, buf, want, (off_t)(end - want));
        if (n != (ssize_t)want)
            return -1;
        for (size_t i = want; i-- > 0;)
            if (buf[i] == '\n') {
                *len = end - want + i + 1;
                return 0;
            }
        end -= want;
    }
    *len = 0;
    return 0;
}

/* An audit log and its rotated files, into audit/<label>/. The rotated files are listed and
 * opened, then FILE, then they are listed again: a rotation meanwhile shows as a new rotated
 * file, and when that is the file opened as FILE, FILE is opened again. */
static int backup_audit(backup_t *b, const char *file, const char *label)
{
    char dcopy[PATH_MAX], bcopy[PATH_MAX];
    snprintf(dcopy, sizeof dcopy, "%s", file);
    snprintf(bcopy, sizeof bcopy, "%s", file);
    char dir_abs[PATH_MAX];
    const char *dir = absolute(dirname(dcopy), dir_abs), *base = basename(bcopy);
    audit_file_t *files = NULL;
    size_t n = 0;
    int cur = -1, rc = 0;
    for (int attempt = 0; rc == 0 && attempt < 10; attempt++) {
        if ((rc = audit_scan(dir, base, &files, &n, b->err, sizeof b->err)) != 0)
            break;
        if (cur >= 0)
            close(cur);
        cur = open(file, O_RDONLY | O_CLOEXEC);
        if (cur < 0 && errno != ENOENT) {
            snprintf(b->err, sizeof b->err, "cannot open %s: %s", file, strerror(errno));
            rc = -1;
            break;
        }
        size_t before = n;
        if ((rc = audit_scan(dir, base, &files, &n, b->err, sizeof b->err)) != 0)
            break;
        struct stat cs, rs;
        bool rotated_under_us = false;
        for (size_t i = before; cur >= 0 && i < n; i++)
            if (fstat(cur, &cs) == 0 && fstat(files[i].fd, &rs) == 0 && cs.st_ino == rs.st_ino && cs.st_dev == rs.st_dev)
                rotated_under_us = true;
        if (!rotated_under_us)
            break;
    }
    if (rc == 0 && cur < 0 && n == 0) {
        snprintf(b->err, sizeof b->err, "--audit %s: no such file, and no rotated files of it", file);
        rc = -1;
    }
    if (n)
        qsort(files, n, sizeof *files, audit_cmp);
    b->role = "audit";
    for (size_t i = 0; rc == 0 && i <= n; i++) {
        int fd = i < n ? files[i].fd : cur;
        const char *name = i < n ? files[i].name : base;
        if (fd < 0)
            continue;
        uint64_t len;
        char entry[PATH_MAX], path[2 * PATH_MAX];
        snprintf(entry, sizeof entry, "audit/%s/%s", label, name);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (complete_lines(fd, &len) != 0) {
            snprintf(b->err, sizeof b->err, "cannot read %s: %s", path, strerror(errno));
            rc = -1;
        } else {
            rc = backup_add(b, entry, path, fd, len, NULL);
        }
    }
    for (size_t i = 0; i < n; i++)
        close(files[i].fd);
    free(files);
    if (cur >= 0)
        close(cur);
    return rc;
}

/* One SQLite file through the online backup API into stage (a new file), retrying while the
 * writer holds its lock; then into the bundle as db/<name>. */
static int backup_db(backup_t *b, const char *path, const char *name, const char *stage)
{
    sqlite3 *src = NULL, *dst = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {   /* never checkpoints */
        snprintf(b->err, sizeof b->err, "--db %s: %s", path, src ? sqlite3_errmsg(src) : "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(src, 5000);
    int sfd = open(stage, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);   /* 0600 before SQLite fills it */
    if (sfd < 0) {
        snprintf(b->err, sizeof b->err, "cannot create %s: %s", stage, strerror(errno));
        goto out;
    }
    close(sfd);
    if (sqlite3_open_v2(stage, &dst, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        snprintf(b->err, sizeof b->err, "cannot create %s: %s", stage, dst ? sqlite3_errmsg(dst) : "cannot open");
        goto out;
    }
    sqlite3_backup *bk = sqlite3_backup_init(dst, "main", src, "main");
    if (!bk) {
        snprintf(b->err, sizeof b->err, "--db %s: %s", path, sqlite3_errmsg(dst));
        goto out;
    }
    int src_rc;
    double deadline = mono_s() + 60;
    while ((src_rc = sqlite3_backup_step(bk, -1)) == SQLITE_BUSY || src_rc == SQLITE_LOCKED) {
        if (mono_s() > deadline)
            break;
        sqlite3_sleep(50);
    }
    sqlite3_backup_finish(bk);
    if (src_rc != SQLITE_DONE) {
        snprintf(b->err, sizeof b->err, "--db %s: the backup failed: %s%s", path, sqlite3_errstr(src_rc),
                 src_rc == SQLITE_BUSY || src_rc == SQLITE_LOCKED ? " (still locked after 60 s)" : "");
        goto out;
    }
    sqlite3_close(dst);
    dst = NULL;
    int fd = open(stage, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(b->err, sizeof b->err, "cannot read %s: %s", stage, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    char entry[PATH_MAX], abs[PATH_MAX];
    snprintf(entry, sizeof entry, "db/%s", name);
    b->role = "sqlite";
    rc = backup_add(b, entry, absolute(path, abs), fd, (uint64_t)st.st_size, NULL);
    close(fd);
out:
    sqlite3_close(src);
    sqlite3_close(dst);
    unlink(stage);
    return rc;
}

/* The services' schemas of the PostgreSQL database at url, by pg_dump (custom format: what
 * pg_restore takes; a consistent snapshot while everything serves), into the bundle as
 * pg/postgres.pgdump. $HANDOFF_PG_DUMP names the program, else pg_dump on the PATH. */
static int backup_pg(backup_t *b, const char *url, const char *stage_dir)
{
    char stage[PATH_MAX + 32], errfile[PATH_MAX + 32], file_arg[PATH_MAX + 48], db_arg[4200], where[600];
    snprintf(stage, sizeof stage, "%s/postgres.pgdump", stage_dir);
    snprintf(errfile, sizeof errfile, "%s/pg_dump.err", stage_dir);
    snprintf(file_arg, sizeof file_arg, "--file=%s", stage);
    snprintf(db_arg, sizeof db_arg, "--dbname=%s", url);
    hx_db_url_display(url, where, sizeof where);
    const char *prog = getenv("HANDOFF_PG_DUMP");
    prog = prog && *prog ? prog : "pg_dump";
    char *const argv[] = {(char *)prog, "--format=custom", "--schema=intake", "--schema=scheduling",
                          "--schema=accounts", file_arg, db_arg, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    mode_t old = umask(077);                        /* the dump 0600 from its first byte */
    pid_t pid;
    extern char **environ;
    int e = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    umask(old);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    if (e != 0) {
        snprintf(b->err, sizeof b->err, "--pg %s: cannot run %s: %s (install postgresql-client, or set "
                 "HANDOFF_PG_DUMP)", where, prog, strerror(e));
        return -1;
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int rc = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[600] = "";
        FILE *f = fopen(errfile, "r");
        size_t n = f ? fread(why, 1, sizeof why - 1, f) : 0;
        if (f)
            fclose(f);
        why[n] = '\0';
        why[strcspn(why, "\n")] = '\0';
        snprintf(b->err, sizeof b->err, "--pg %s: pg_dump failed: %s", where, why[0] ? why : "no reason given");
    } else {
        int fd = open(stage, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0) {
            b->role = "pg_dump";
            rc = backup_add(b, "pg/postgres.pgdump", where, fd, (uint64_t)st.st_size, NULL);
        } else {
            snprintf(b->err, sizeof b->err, "cannot read %s: %s", stage, strerror(errno));
        }
        if (fd >= 0)
            close(fd);
    }
    unlink(stage);
    unlink(errfile);
    return rc;
}

/* A name not yet used among names[0..n) (base, else base-2, base-3, ...; an extension kept). */
static void unique_name(char names[][NAME_MAX + 1], size_t n, const char *base, char *out, size_t cap)
{
    snprintf(out, cap, "%s", base);
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    for (int k = 2;; k++) {
        bool used = false;
        for (size_t i = 0; i < n; i++)
            used |= strcmp(names[i], out) == 0;
        if (!used)
            return;
        snprintf(out, cap, "%.*s-%d%s", stem, base, k, dot && dot != base ? dot : "");
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.db files of --db-dir dir, sorted, appended to *list (malloc'd names). */
static int db_dir_list(const char *dir, char ***list, size_t *n, char *err, size_t errcap)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errcap, "--db-dir %s: %s", dir, strerror(errno));
        return -1;
    }
    size_t start = *n;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 4 || strcmp(de->d_name + l - 3, ".db") != 0)
            continue;
        char **t = realloc(*list, (*n + 1) * sizeof **list);
        if (!t || asprintf(&t[*n], "%s/%s", dir, de->d_name) < 0) {
            *list = t ? t : *list;
            closedir(d);
            snprintf(err, errcap, "out of memory");
            return -1;
        }
        *list = t;
        (*n)++;
    }
    closedir(d);
    qsort(*list + start, *n - start, sizeof **list, cmp_str);
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Removes a directory this command made, with what is in it. */
static void remove_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int fsync_dir_of(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int cmd_backup(const admin_opts_t *o)
{
    double t0 = mono_s();
    char err[2 * PATH_MAX + 1024];
    bundle_key_t key;
    if (!o->key) {
        fprintf(stderr, "handoff: admin backup needs --key FILE (or HANDOFF_BACKUP_KEY): 64 hex characters, as "
                        "handoff datakey makes; the broker's --data-key may serve\n");
        return EXIT_USAGE;
    }
    if (!o->broker_data && !o->n_audits && !o->n_dbs && !o->n_db_dirs && !o->pg) {
        fprintf(stderr, "handoff: admin backup: nothing to take: name --broker-data DIR, --audit FILE, --db PATH, "
                        "--db-dir DIR or --pg URL\n");
        return EXIT_USAGE;
    }
    if (key_load(o->key, &key, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: --key: %s\n", err);
        return EXIT_USAGE;
    }
    struct stat st;
    if (lstat(o->out, &st) == 0) {
        fprintf(stderr, "handoff: %s exists: a backup never overwrites a file; name a new one\n", o->out);
        sodium_memzero(&key, sizeof key);
        return EXIT_FAIL;
    }
    /* the SQLite files, listed first so a bad --db-dir fails before anything is written */
    char **dbs = NULL;
    size_t n_dbs = 0;
    int rc = EXIT_FAIL;
    for (size_t i = 0; i < o->n_dbs; i++) {
        char **t = realloc(dbs, (n_dbs + 1) * sizeof *dbs);
        if (!t || !(t[n_dbs] = strdup(o->dbs[i]))) {
            dbs = t ? t : dbs;
            fprintf(stderr, "handoff: out of memory\n");
            goto free_dbs;
        }
        dbs = t;
        n_dbs++;
    }
    for (size_t i = 0; i < o->n_db_dirs; i++)
        if (db_dir_list(o->db_dirs[i], &dbs, &n_dbs, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: %s\n", err);
            rc = EXIT_USAGE;
            goto free_dbs;
        }

    char tmp[PATH_MAX], stage_dir[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", o->out);
    snprintf(stage_dir, sizeof stage_dir, "%s.parts-XXXXXX", o->out);   /* the SQLite copies, each removed once in */
    if ((n_dbs || o->pg) && !mkdtemp(stage_dir)) {
        fprintf(stderr, "handoff: cannot create %s: %s\n", stage_dir, strerror(errno));
        goto free_dbs;
    }
    static backup_t b;
    memset(&b, 0, sizeof b);
    b.w.fd = -1;
    b.w.progress = isatty(STDERR_FILENO);
    b.files = json_array();
    hx_store_snapshot_t snap = {0};
    bool failed = true;
    if (bw_open(&b.w, tmp, &key) != 0) {
        snprintf(b.err, sizeof b.err, "%s", b.w.err);
        goto fail;
    }
    b.ar = archive_write_new();
    if (!b.ar || archive_write_set_format_pax_restricted(b.ar) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(b.ar, 1) != ARCHIVE_OK ||
        archive_write_open(b.ar, &b.w, NULL, bw_archive_write, NULL) != ARCHIVE_OK) {
        snprintf(b.err, sizeof b.err, "cannot start the archive: %s", b.ar ? archive_error_string(b.ar) : "no memory");
        goto fail;
    }
    /* 1. the log */
    char broker_abs[PATH_MAX];
    const char *broker_data = o->broker_data ? absolute(o->broker_data, broker_abs) : NULL;
    if (broker_data) {
        b.role = "broker-log";
        b.src_dir = broker_data;
        int src = hx_store_log_snapshot(broker_data, backup_log_file, &b, &snap, err, sizeof err);
        if (src != 0) {
            if (!b.err[0])
                snprintf(b.err, sizeof b.err, "--broker-data: %s", err);
            goto fail;
        }
    }
    /* 2. the audit logs */
    char labels[64][NAME_MAX + 1];
    size_t n_labels = 0;
    for (size_t i = 0; i < o->n_audits; i++) {
        char pcopy[PATH_MAX], label[NAME_MAX + 1], want[NAME_MAX + 1];
        snprintf(pcopy, sizeof pcopy, "%s", o->audits[i]);
        char *parent = dirname(pcopy);
        char resolved_a[PATH_MAX], resolved_b[PATH_MAX];
        bool in_broker = o->broker_data && realpath(parent, resolved_a) && realpath(o->broker_data, resolved_b) &&
                         strcmp(resolved_a, resolved_b) == 0;
        snprintf(want, sizeof want, "%s", in_broker ? "broker" : basename(parent));
        if (n_labels == sizeof labels / sizeof *labels) {
            snprintf(b.err, sizeof b.err, "too many --audit files (at most %zu)", sizeof labels / sizeof *labels);
            goto fail;
        }
        unique_name(labels, n_labels, want, label, sizeof label);
        snprintf(labels[n_labels++], sizeof labels[0], "%s", label);
        if (backup_audit(&b, o->audits[i], label) != 0)
            goto fail;
    }
    /* 3. the SQLite files */
    char names[256][NAME_MAX + 1];
    for (size_t i = 0; i < n_dbs; i++) {
        char pcopy[PATH_MAX], name[NAME_MAX + 1], stage[2 * PATH_MAX];
        if (i == sizeof names / sizeof *names) {
            snprintf(b.err, sizeof b.err, "too many SQLite files (at most %zu)", sizeof names / sizeof *names);
            goto fail;
        }
        snprintf(pcopy, sizeof pcopy, "%s", dbs[i]);
        unique_name(names, i, basename(pcopy), name, sizeof name);
        snprintf(names[i], sizeof names[0], "%s", name);
        snprintf(stage, sizeof stage, "%s/%s", stage_dir, name);
        if (backup_db(&b, dbs[i], name, stage) != 0)
            goto fail;
    }
    /* 4. the services' PostgreSQL database */
    if (o->pg && backup_pg(&b, o->pg, stage_dir) != 0)
        goto fail;
    /* the manifest, last: it has every file's digest */
    time_t now = time(NULL);
    struct tm tm;
    char created[32];
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *m = json_pack("{s:s, s:i, s:s, s:s, s:s, s:O}", "format", "handoff-backup", "version", BUNDLE_VERSION,
                          "created", created, "handoff_version", HANDOFF_VERSION, "key_id", key.id_hex, "files",
                          b.files);
    if (o->broker_data)
        json_object_set_new(m, "log", json_pack("{s:s, s:{s:I, s:I}, s:I, s:I}", "source", broker_data,
                                                "durable_end", "segment", (json_int_t)snap.end_seg, "offset",
                                                (json_int_t)snap.end_off, "first_segment", (json_int_t)snap.first_seg,
                                                "segments", (json_int_t)snap.segments));
    char *text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(m);
    uint64_t data_bytes = b.bytes;
    b.role = "manifest";
    int mrc = text ? backup_add(&b, MANIFEST, MANIFEST, -1, strlen(text), (const uint8_t *)text) : -1;
    free(text);
    if (mrc != 0)
        goto fail;
    if (archive_write_close(b.ar) != ARCHIVE_OK) {
        snprintf(b.err, sizeof b.err, "%s", b.w.err[0] ? b.w.err : archive_error_string(b.ar));
        goto fail;
    }
    if (bw_finish(&b.w) != 0) {
        snprintf(b.err, sizeof b.err, "%s", b.w.err);
        goto fail;
    }
    if (rename(tmp, o->out) != 0 || fsync_dir_of(o->out) != 0) {
        snprintf(b.err, sizeof b.err, "cannot rename %s to %s: %s", tmp, o->out, strerror(errno));
        goto fail;
    }
    failed = false;
    size_t n_files = json_array_size(b.files);
    char end[96] = "no broker log";
    if (o->broker_data)
        snprintf(end, sizeof end, "the log's durable end segment %llu offset %llu",
                 (unsigned long long)snap.end_seg, (unsigned long long)snap.end_off);
    fprintf(stderr, "backup: %s: %zu file(s), %llu bytes (bundle %llu bytes), %s, %.1f s\n", o->out, n_files,
            (unsigned long long)data_bytes, (unsigned long long)b.w.bytes_out, end, mono_s() - t0);
    rc = EXIT_OK;
fail:
    if (b.ar)
        archive_write_free(b.ar);
    if (b.w.fd >= 0)
        close(b.w.fd);
    if (failed) {
        if (b.w.progress)
            fputc('\n', stderr);
        fprintf(stderr, "handoff: admin backup: %s; nothing was written to %s\n", b.err[0] ? b.err : "failed", o->out);
        unlink(tmp);
    }
    json_decref(b.files);
    if (n_dbs || o->pg)
        remove_tree(stage_dir);
free_dbs:
    for (size_t i = 0; i < n_dbs; i++)
        free(dbs[i]);
    free(dbs);
    sodium_memzero(&key, sizeof key);
    return rc;
}

/* ---- restore ------------------------------------------------------------------------------ */

/* A file read out of the bundle. */
typedef struct {
    char name[PATH_MAX];
    uint64_t size;
    char sha256[65];
} got_file_t;

typedef struct {
    got_file_t *files;
    size_t n;
    char *manifest;
    char err[ERR_CAP];
} restore_t;

/* A name the bundle may hold: manifest.json, broker/F, audit/L/F, db/F (F, L: no slash, no
 * leading dot). */
static bool safe_name(const char *name)
{
    const char *rest;
    int parts;
    if (strcmp(name, MANIFEST) == 0)
        return true;
    if (strncmp(name, "broker/", 7) == 0)
        rest = name + 7, parts = 1;
    else if (strncmp(name, "db/", 3) == 0)
        rest = name + 3, parts = 1;
    else if (strncmp(name, "pg/", 3) == 0)
        rest = name + 3, parts = 1;
    else if (strncmp(name, "audit/", 6) == 0)
        rest = name + 6, parts = 2;
    else
        return false;
    for (int k = 0; k < parts; k++) {
        const char *slash = strchr(rest, '/');
        size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
        if (len == 0 || len > NAME_MAX || rest[0] == '.' || (k < parts - 1) != (slash != NULL))
            return false;
        rest = slash ? slash + 1 : rest + len;
    }
    return *rest == '\0';
}

/* Reads the whole bundle: each file into into/NAME (when into is not NULL) or only hashed;
 * the manifest kept. */
static int restore_read(restore_t *r, bundle_reader_t *br, const char *into)
{
    struct archive *a = archive_read_new();
    if (!a || archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_open(a, br, NULL, br_archive_read, NULL) != ARCHIVE_OK) {
        snprintf(r->err, sizeof r->err, "%s", br->err[0] ? br->err : a ? archive_error_string(a) : "out of memory");
        if (a)
            archive_read_free(a);
        return -1;
    }
    int rc = 0;
    struct archive_entry *e;
    static uint8_t buf[1 << 16];
    for (;;) {
        int h = archive_read_next_header(a, &e);
        if (h == ARCHIVE_EOF)
            break;
        if (h != ARCHIVE_OK) {
            snprintf(r->err, sizeof r->err, "%s", br->err[0] ? br->err : archive_error_string(a));
            rc = -1;
            break;
        }
        const char *name = archive_entry_pathname(e);
        if (!name || !safe_name(name) || archive_entry_filetype(e) != AE_IFREG) {
            snprintf(r->err, sizeof r->err, "%s holds an entry it should not: \"%s\"", br->path, name ? name : "");
            rc = -1;
            break;
        }
        bool is_manifest = strcmp(name, MANIFEST) == 0;
        int fd = -1;
        char path[2 * PATH_MAX];
        if (into && !is_manifest) {
            snprintf(path, sizeof path, "%s/%s", into, name);
            char dcopy[2 * PATH_MAX];
            snprintf(dcopy, sizeof dcopy, "%s", path);
            char *d = dirname(dcopy);
            char parent[2 * PATH_MAX];
            snprintf(parent, sizeof parent, "%s", d);
            char *p2 = dirname(parent);         /* audit/<label>/ has two levels */
            if (strncmp(name, "audit/", 6) == 0)
                mkdir(p2, 0700);
            mkdir(d, 0700);
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0) {
                snprintf(r->err, sizeof r->err, "cannot create %s: %s", path, strerror(errno));
                rc = -1;
                break;
            }
        }
        crypto_hash_sha256_state sha;
        crypto_hash_sha256_init(&sha);
        uint64_t size = 0;
        char *mtext = NULL;
        size_t mlen = 0;
        la_ssize_t n;
        while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
            crypto_hash_sha256_update(&sha, buf, (size_t)n);
            size += (uint64_t)n;
            if (fd >= 0 && write_all(fd, buf, (size_t)n) != 0) {
                snprintf(r->err, sizeof r->err, "cannot write %s: %s", path, strerror(errno));
                n = -2;
                break;
            }
            if (is_manifest) {
                char *t = mlen + (size_t)n < (1u << 26) ? realloc(mtext, mlen + (size_t)n + 1) : NULL;
                if (!t) {
                    snprintf(r->err, sizeof r->err, "%s: its manifest is too large", br->path);
                    n = -2;
                    break;
                }
                mtext = t;
                memcpy(mtext + mlen, buf, (size_t)n);
                mlen += (size_t)n;
                mtext[mlen] = '\0';
            }
        }
        if (n < 0 && n != -2)
            snprintf(r->err, sizeof r->err, "%s", br->err[0] ? br->err : archive_error_string(a));
        if (fd >= 0 && n == 0 && fsync(fd) != 0) {
            snprintf(r->err, sizeof r->err, "cannot write %s: %s", path, strerror(errno));
            n = -2;
        }
        if (fd >= 0)
            close(fd);
        if (n < 0) {
            free(mtext);
            rc = -1;
            break;
        }
        if (is_manifest) {
            free(r->manifest);
            r->manifest = mtext ? mtext : strdup("");
            continue;
        }
        got_file_t *t = realloc(r->files, (r->n + 1) * sizeof *t);
        if (!t) {
            snprintf(r->err, sizeof r->err, "out of memory");
            rc = -1;
            break;
        }
        r->files = t;
        got_file_t *g = &t[r->n++];
        snprintf(g->name, sizeof g->name, "%s", name);
        g->size = size;
        uint8_t digest[crypto_hash_sha256_BYTES];
        crypto_hash_sha256_final(&sha, digest);
        sodium_bin2hex(g->sha256, sizeof g->sha256, digest, sizeof digest);
    }
    archive_read_free(a);
    if (rc == 0 && br_drain(br) != 0) {
        snprintf(r->err, sizeof r->err, "%s", br->err);
        rc = -1;
    }
    if (rc == 0 && !br->final) {
        snprintf(r->err, sizeof r->err, "%s is truncated: it ends without its final chunk", br->path);
        rc = -1;
    }
    return rc;
}

/* The manifest against what was read: every file listed, with its size and SHA-256, and
 * nothing else. Returns the parsed manifest, or NULL with the reason. */
static json_t *restore_check(restore_t *r, const char *bundle)
{
    if (!r->manifest) {
        snprintf(r->err, sizeof r->err, "%s holds no %s", bundle, MANIFEST);
        return NULL;
    }
    json_error_t jerr;
    json_t *m = json_loads(r->manifest, 0, &jerr);
    json_t *files = m ? json_object_get(m, "files") : NULL;
    if (!json_is_array(files) || !json_is_string(json_object_get(m, "format")) ||
        strcmp(json_string_value(json_object_get(m, "format")), "handoff-backup")) {
        snprintf(r->err, sizeof r->err, "%s: its %s is not a backup manifest%s%s", bundle, MANIFEST, m ? "" : ": ",
                 m ? "" : jerr.text);
        json_decref(m);
        return NULL;
    }
    if (json_array_size(files) != r->n) {
        snprintf(r->err, sizeof r->err, "%s: its manifest lists %zu file(s) but it holds %zu", bundle,
                 json_array_size(files), r->n);
        json_decref(m);
        return NULL;
    }
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        const got_file_t *g = NULL;
        for (size_t k = 0; name && k < r->n; k++)
            if (strcmp(r->files[k].name, name) == 0)
                g = &r->files[k];
        if (!g) {
            snprintf(r->err, sizeof r->err, "%s: its manifest lists %s, which it does not hold", bundle,
                     name ? name : "(no name)");
            json_decref(m);
            return NULL;
        }
        const char *sha = json_string_value(json_object_get(f, "sha256"));
        if ((uint64_t)json_integer_value(json_object_get(f, "size")) != g->size || !sha ||
            strcmp(sha, g->sha256) != 0) {
            snprintf(r->err, sizeof r->err, "%s: %s (%llu bytes, SHA-256 %s) does not match its manifest (%llu "
                     "bytes, SHA-256 %s)", bundle, name, (unsigned long long)g->size, g->sha256,
                     (unsigned long long)json_integer_value(json_object_get(f, "size")), sha ? sha : "none");
            json_decref(m);
            return NULL;
        }
    }
    return m;
}

static void count_put(void *arg, uint64_t h, const uint8_t *msg, size_t len)
{
    (void)h;
    (void)msg;
    (void)len;
    ((uint64_t *)arg)[0]++;
}

static void count_id(void *arg, const uint8_t id[HX_ID_LEN])
{
    (void)id;
    ((uint64_t *)arg)[1]++;
}

static void count_dead(void *arg, const uint8_t id[HX_ID_LEN], uint32_t attempts, uint64_t at, const char *reason)
{
    (void)id;
    (void)attempts;
    (void)at;
    (void)reason;
    ((uint64_t *)arg)[1]++;
}

static void count_attempts(void *arg, const uint8_t id[HX_ID_LEN], uint32_t attempts)
{
    (void)id;
    (void)attempts;
    ((uint64_t *)arg)[1]++;
}

/* Recovery on the restored log, as the broker will run it: 0, or -1 with why. counts[0]: the
 * messages put, counts[1]: the other entries. */
static int restore_check_log(const char *dir, const uint8_t *data_key, uint64_t counts[2], char *err, size_t errcap)
{
    hx_store_log_config_t cfg = {.dir = dir, .key = data_key};
    hx_store_t *s = hx_store_log_new(&cfg, err, errcap);
    if (!s)
        return -1;
    hx_store_visitor_t v = {count_put, count_id, count_dead, count_id, count_attempts, count_id};
    int rc = s->ops->recover(s, &v, counts);
    if (rc) {
        const char *why = "";
        s->ops->health(s, &why);
        snprintf(err, errcap, "%s", why && *why ? why : hx_strerror(rc));
    }
    hx_store_destroy(&s);
    return rc ? -1 : 0;
}

static int restore_check_db(const char *path, char *err, size_t errcap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errcap, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
        goto out;
    }
    if (sqlite3_step(st) != SQLITE_ROW) {
        snprintf(err, errcap, "%s: integrity_check: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    const char *res = (const char *)sqlite3_column_text(st, 0);
    if (!res || strcmp(res, "ok") != 0) {
        snprintf(err, errcap, "%s fails PRAGMA integrity_check: %s", path, res ? res : "(no answer)");
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* The first name in dir other than . and .., or NULL (dir empty); *missing when there is no dir. */
static bool dir_first_entry(const char *dir, char *name, size_t cap, bool *missing)
{
    DIR *d = opendir(dir);
    *missing = !d && errno == ENOENT;
    if (!d) {
        snprintf(name, cap, "%s", strerror(errno));
        return !*missing;
    }
    struct dirent *de;
    bool found = false;
    while (!found && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            found = true, snprintf(name, cap, "%s", de->d_name);
    closedir(d);
    return found;
}

static void print_manifest(json_t *m, const char *bundle)
{
    json_t *log = json_object_get(m, "log");
    printf("bundle:   %s\ncreated:  %s (handoff %s, key id %s)\n", bundle,
           json_string_value(json_object_get(m, "created")), json_string_value(json_object_get(m, "handoff_version")),
           json_string_value(json_object_get(m, "key_id")));
    if (log) {
        json_t *end = json_object_get(log, "durable_end");
        printf("log:      %s, %lld segment(s), consistent at segment %lld offset %lld\n",
               json_string_value(json_object_get(log, "source")),
               (long long)json_integer_value(json_object_get(log, "segments")),
               (long long)json_integer_value(json_object_get(end, "segment")),
               (long long)json_integer_value(json_object_get(end, "offset")));
    }
    printf("%-10s  %12s  %-64s  %s\n", "ROLE", "BYTES", "SHA-256", "NAME (ORIGINAL PATH)");
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(m, "files"), i, f)
        printf("%-10s  %12lld  %s  %s (%s)\n", json_string_value(json_object_get(f, "role")),
               (long long)json_integer_value(json_object_get(f, "size")),
               json_string_value(json_object_get(f, "sha256")), json_string_value(json_object_get(f, "name")),
               json_string_value(json_object_get(f, "path")));
}

/* Where each restored file went, and what to point at it. */
static void print_restored(json_t *m, const char *into, bool sealed_checked, const uint64_t counts[2])
{
    printf("restored into %s:\n", into);
    json_t *log = json_object_get(m, "log");
    if (log)
        printf("  broker log (was %s): %s/broker\n      recovers: %llu message(s) put, %llu other entries%s\n"
               "      handoff-broker --data %s/broker (HANDOFF_DATA), with the same --data-key\n",
               json_string_value(json_object_get(log, "source")), into, (unsigned long long)counts[0],
               (unsigned long long)counts[1], sealed_checked ? "; every body opens with --data-key" : "", into);
    char last_label[NAME_MAX + 1] = "";
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(m, "files"), i, f) {
        const char *role = json_string_value(json_object_get(f, "role"));
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *path = json_string_value(json_object_get(f, "path"));
        if (!role || !name || !path)
            continue;
        if (!strcmp(role, "audit") && strchr(name + 6, '/')) {
            char label[NAME_MAX + 1];
            snprintf(label, sizeof label, "%.*s", (int)(strchr(name + 6, '/') - (name + 6)), name + 6);
            if (strcmp(label, last_label) != 0)
                printf("  audit series %s:\n", label);
            snprintf(last_label, sizeof last_label, "%s", label);
            printf("      %s/%s (was %s)\n", into, name, path);
            /* the series' live file: the one not named FILE.YYYYMMDDTHHMMSSZ */
            const char *base = strrchr(name, '/') + 1, *dot = strrchr(base, '.');
            char stem[NAME_MAX + 1];
            snprintf(stem, sizeof stem, "%.*s", dot ? (int)(dot - base) : (int)strlen(base), base);
            if (!dot || !hx_audit_rotated_name(stem, base, NULL))
                printf("      --audit %s/%s for the program that wrote %s (HANDOFF_AUDIT)\n", into, name, path);
        } else if (!strcmp(role, "sqlite")) {
            printf("  SQLite %s/%s (was %s): point the option that named %s at it (handoff-scheduling --db, "
                   "handoff-intake --db, handoff-web --accounts, ...)\n", into, name, path, path);
        } else if (!strcmp(role, "pg_dump")) {
            printf("  PostgreSQL dump %s/%s (the schemas intake and scheduling of %s): into an empty database,\n"
                   "      pg_restore --dbname=postgresql://USER@HOST:PORT/DB %s/%s\n", into, name, path, into, name);
        }
    }
}

static int cmd_restore(const admin_opts_t *o, const char *bundle)
{
    char err[2 * PATH_MAX + 1024];
    if (!o->key) {
        fprintf(stderr, "handoff: admin restore needs --key FILE (or HANDOFF_BACKUP_KEY): the key the backup was "
                        "made with\n");
        return EXIT_USAGE;
    }
    if (!o->list && !o->into) {
        fprintf(stderr, "handoff: admin restore needs --into DIR (a new or empty directory), or --list\n");
        return EXIT_USAGE;
    }
    bundle_key_t key;
    if (key_load(o->key, &key, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: --key: %s\n", err);
        return EXIT_USAGE;
    }
    uint8_t data_key[32];
    bool have_data_key = false;
    if (o->data_key) {
        if (hx_data_key_load(o->data_key, data_key, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: --data-key: %s\n", err);
            return EXIT_USAGE;
        }
        have_data_key = true;
    }
    char tmp[PATH_MAX];
    bool into_exists = false;
    if (!o->list) {
        char first[NAME_MAX + 64];
        bool missing;
        if (dir_first_entry(o->into, first, sizeof first, &missing)) {
            fprintf(stderr, "handoff: --into %s is not empty (it holds %s): restore into a new or empty directory\n",
                    o->into, first);
            return EXIT_FAIL;
        }
        into_exists = !missing;
        snprintf(tmp, sizeof tmp, "%s.tmp", o->into);
        struct stat st;
        if (lstat(tmp, &st) == 0) {
            fprintf(stderr, "handoff: %s exists (an interrupted restore?): remove it, then restore again\n", tmp);
            return EXIT_FAIL;
        }
        if (mkdir(tmp, 0700) != 0) {
            fprintf(stderr, "handoff: cannot create %s: %s\n", tmp, strerror(errno));
            return EXIT_FAIL;
        }
    }
    static bundle_reader_t br;
    memset(&br, 0, sizeof br);
    restore_t r = {0};
    json_t *m = NULL;
    int rc = EXIT_FAIL;
    uint64_t counts[2] = {0, 0};
    if (br_open(&br, bundle, &key) != 0) {
        snprintf(r.err, sizeof r.err, "%s", br.err);
        goto out;
    }
    if (restore_read(&r, &br, o->list ? NULL : tmp) != 0 || !(m = restore_check(&r, bundle)))
        goto out;
    if (o->list) {
        print_manifest(m, bundle);
        printf("ok: the bundle authenticates with this key, and all %zu file(s) match the manifest\n", r.n);
        rc = EXIT_OK;
        goto out;
    }
    if (json_object_get(m, "log")) {
        char dir[PATH_MAX + 16];
        snprintf(dir, sizeof dir, "%s/broker", tmp);
        if (restore_check_log(dir, have_data_key ? data_key : NULL, counts, err, sizeof err) != 0) {
            snprintf(r.err, sizeof r.err, "the restored log does not recover: %s", err);
            goto out;
        }
    }
    for (size_t i = 0; i < r.n; i++) {
        if (strncmp(r.files[i].name, "db/", 3) != 0)
            continue;
        char path[2 * PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", tmp, r.files[i].name);
        if (restore_check_db(path, err, sizeof err) != 0) {
            snprintf(r.err, sizeof r.err, "%s", err);
            goto out;
        }
    }
    /* every directory synced, then the whole of it put in place at once */
    const char *subs[] = {"", "/broker", "/audit", "/db", "/pg"};
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++) {
        char d[PATH_MAX + 16];
        snprintf(d, sizeof d, "%s%s", tmp, subs[i]);
        int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
    }
    if ((into_exists && rmdir(o->into) != 0) || rename(tmp, o->into) != 0 || fsync_dir_of(o->into) != 0) {
        snprintf(r.err, sizeof r.err, "cannot rename %s to %s: %s", tmp, o->into, strerror(errno));
        goto out;
    }
    print_restored(m, o->into, have_data_key, counts);
    rc = EXIT_OK;
out:
    if (rc != EXIT_OK) {
        fprintf(stderr, "handoff: admin restore: %s%s\n", r.err[0] ? r.err : "failed",
                o->list ? "" : "; nothing was restored");
        if (!o->list)
            remove_tree(tmp);
    }
    if (br.fd > 0)
        close(br.fd);
    json_decref(m);
    free(r.files);
    free(r.manifest);
    sodium_memzero(&key, sizeof key);
    sodium_memzero(data_key, sizeof data_key);
    return rc;
}

/* ---- the options -------------------------------------------------------------------------- */

enum { A_BROKER_DATA = 1, A_AUDIT, A_DB, A_DB_DIR, A_KEY, A_INTO, A_LIST, A_DATA_KEY, A_PG, A_HELP };

/* A colon-separated environment list appended to *list (strings point into a copy kept in
 * *keep). */
static int env_list(const char *env, const char ***list, size_t *n, char **keep)
{
    const char *v = getenv(env);
    if (!v || !*v)
        return 0;
    *keep = strdup(v);
    if (!*keep)
        return -1;
    for (char *save = NULL, *t = strtok_r(*keep, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
        const char **nl = realloc(*list, (*n + 1) * sizeof **list);
        if (!nl)
            return -1;
        *list = nl;
        nl[(*n)++] = t;
    }
    return 0;
}

static int add_opt(const char ***list, size_t *n, const char *v)
{
    const char **nl = realloc(*list, (*n + 1) * sizeof **list);
    if (!nl)
        return -1;
    *list = nl;
    nl[(*n)++] = v;
    return 0;
}

static const char *env_or(const char *flag, const char *env)
{
    const char *v = getenv(env);
    return flag ? flag : v && *v ? v : NULL;
}

int cmd_admin(int argc, char **argv)
{
    static const struct option opts[] = {
        {"broker-data", required_argument, NULL, A_BROKER_DATA}, {"audit", required_argument, NULL, A_AUDIT},
        {"db", required_argument, NULL, A_DB},           {"db-dir", required_argument, NULL, A_DB_DIR},
        {"key", required_argument, NULL, A_KEY},         {"into", required_argument, NULL, A_INTO},
        {"list", no_argument, NULL, A_LIST},             {"data-key", required_argument, NULL, A_DATA_KEY},
        {"pg", required_argument, NULL, A_PG},
        {"help", no_argument, NULL, A_HELP},             {NULL, 0, NULL, 0}};
    const char *sub = argc > 1 && argv[1][0] != '-' ? argv[1] : NULL;
    if (sub && strcmp(sub, "migrate") == 0)
        return cmd_migrate(argc - 1, argv + 1);
    if (!sub || (strcmp(sub, "backup") != 0 && strcmp(sub, "restore") != 0)) {
        bool help = argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
        fputs(cli_command_help("admin"), help ? stdout : stderr);
        return help ? EXIT_OK : EXIT_USAGE;
    }
    admin_opts_t o = {0};
    const char **pos = NULL;
    size_t n_pos = 0;
    bool audit_flag = false, db_flag = false, db_dir_flag = false, help = false;
    int rc = EXIT_USAGE;
    char *keep[3] = {NULL, NULL, NULL};
    optind = 0;                                 /* a fresh scan (glibc) */
    opterr = 1;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case A_BROKER_DATA: o.broker_data = optarg; break;
        case A_AUDIT: bad = add_opt(&o.audits, &o.n_audits, optarg); audit_flag = true; break;
        case A_DB: bad = add_opt(&o.dbs, &o.n_dbs, optarg); db_flag = true; break;
        case A_DB_DIR: bad = add_opt(&o.db_dirs, &o.n_db_dirs, optarg); db_dir_flag = true; break;
        case A_KEY: o.key = optarg; break;
        case A_INTO: o.into = optarg; break;
        case A_LIST: o.list = 1; break;
        case A_DATA_KEY: o.data_key = optarg; break;
        case A_PG: o.pg = optarg; break;
        case 'h':
        case A_HELP: help = true; break;
        default: fprintf(stderr, "handoff: see handoff admin %s --help\n", sub); goto out;
        }
        if (bad) {
            fprintf(stderr, "handoff: out of memory\n");
            goto out;
        }
    }
    for (int i = optind; i < argc - 1; i++)         /* argv[1], the subcommand, was getopt's argv[0] */
        if (add_opt(&pos, &n_pos, argv[1 + i]) != 0) {
            fprintf(stderr, "handoff: out of memory\n");
            goto out;
        }
    if (help) {
        fputs(cli_command_help("admin"), stdout);
        rc = EXIT_OK;
        goto out;
    }
    o.broker_data = env_or(o.broker_data, "HANDOFF_BACKUP_BROKER_DATA");
    o.key = env_or(o.key, "HANDOFF_BACKUP_KEY");
    o.into = env_or(o.into, "HANDOFF_RESTORE_INTO");
    o.data_key = env_or(o.data_key, "HANDOFF_DATA_KEY");
    o.pg = env_or(o.pg, "HANDOFF_BACKUP_PG");
    if ((!audit_flag && env_list("HANDOFF_BACKUP_AUDIT", &o.audits, &o.n_audits, &keep[0]) != 0) ||
        (!db_flag && env_list("HANDOFF_BACKUP_DB", &o.dbs, &o.n_dbs, &keep[1]) != 0) ||
        (!db_dir_flag && env_list("HANDOFF_BACKUP_DB_DIR", &o.db_dirs, &o.n_db_dirs, &keep[2]) != 0)) {
        fprintf(stderr, "handoff: out of memory\n");
        goto out;
    }
    if (n_pos != 1) {
        fprintf(stderr, "handoff: usage: handoff admin %s\n", strcmp(sub, "backup") == 0
                                                                  ? "backup OUT [--broker-data DIR] [--audit FILE]... "
                                                                    "[--db PATH]... [--db-dir DIR]... [--pg URL] "
                                                                    "--key FILE"
                                                                  : "restore BUNDLE --key FILE --into DIR | restore "
                                                                    "--list BUNDLE --key FILE");
        goto out;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "handoff: libsodium failed to start\n");
        rc = EXIT_FAIL;
        goto out;
    }
    if (strcmp(sub, "backup") == 0) {
        o.out = pos[0];
        rc = cmd_backup(&o);
    } else {
        rc = cmd_restore(&o, pos[0]);
    }
out:
    free(pos);
    free(o.audits);
    free(o.dbs);
    free(o.db_dirs);
    for (int i = 0; i < 3; i++)
        free(keep[i]);
    return rc;
}
