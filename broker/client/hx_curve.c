/* hx_curve — keys and the allow-list. */
#include "hx_curve.h"
#include "hx_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <zmq.h>

typedef struct {
    uint8_t key[32];
    char principal[HX_PRINCIPAL_MAX];
    UT_hash_handle hh;
} allowed_t;

struct hx_allow {
    allowed_t *keys;
    size_t n;
};

void hx_allow_destroy(hx_allow_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    allowed_t *k, *t;
    HASH_ITER(hh, (*self_p)->keys, k, t) {
        HASH_DELETE(hh, (*self_p)->keys, k);
        free(k);
    }
    free(*self_p);
    *self_p = NULL;
}

hx_allow_t *hx_allow_new(void)
{
    return calloc(1, sizeof(hx_allow_t));
}

int hx_allow_put(hx_allow_t *a, const uint8_t key[32], const char *principal)
{
    allowed_t *k = NULL;
    HASH_FIND(hh, a->keys, key, 32, k);
    if (!k) {
        if (!(k = calloc(1, sizeof *k)))
            return -1;
        memcpy(k->key, key, 32);
        HASH_ADD(hh, a->keys, key, 32, k);
        a->n++;
    }
    snprintf(k->principal, sizeof k->principal, "%s", principal ? principal : "");
    return 0;
}

bool hx_allow_remove(hx_allow_t *a, const uint8_t key[32])
{
    allowed_t *k = NULL;
    HASH_FIND(hh, a->keys, key, 32, k);
    if (!k)
        return false;
    HASH_DELETE(hh, a->keys, k);
    free(k);
    a->n--;
    return true;
}

/* One list from text. An allow-list line is "<key> <clinic|service|admin|reviewer> <name>", nothing
 * more; a revoked record's line is "<key>" and then anything (keys.sh: role, name, date, why),
 * its principal taken from the role and name when they are valid. */
static hx_allow_t *parse_list(const char *text, bool revoked, char *err, size_t errcap)
{
    hx_allow_t *a = hx_allow_new();
    if (!a) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    int line = 0;
    const char *p = text;
    while (p && *p) {
        line++;
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char buf[512];
        if (len >= sizeof buf) {
            snprintf(err, errcap, "line %d: longer than %zu characters", line, sizeof buf - 1);
            goto fail;
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        p = end ? end + 1 : NULL;
        char key[64], role[32] = "", name[72] = "", extra[8];
        int n = sscanf(buf, " %63s %31s %71s %7s", key, role, name, extra);
        if (n <= 0 || key[0] == '#')
            continue;
        if (!revoked && n != 3) {
            snprintf(err, errcap, "line %d: expected '<public key> <clinic|service|admin|reviewer> <name>'", line);
            goto fail;
        }
        uint8_t raw[32];
        if (strlen(key) != HX_KEY_Z85 || !zmq_z85_decode(raw, key)) {
            snprintf(err, errcap, "line %d: the key is not 40 characters of Z85", line);
            goto fail;
        }
        bool role_ok = !strcmp(role, "clinic") || !strcmp(role, "service") || !strcmp(role, "admin") ||
                       !strcmp(role, "reviewer");
        bool name_ok = hx_name_valid(name);
        if (!revoked && !role_ok) {
            snprintf(err, errcap, "line %d: role '%.20s' is not clinic, service, admin or reviewer", line, role);
            goto fail;
        }
        if (!revoked && !name_ok) {
            snprintf(err, errcap, "line %d: name must be 1 to %d characters of [A-Za-z0-9._-]", line, HX_NAME_MAX);
            goto fail;
        }
        if (hx_allow_find(a, raw)) {
            if (revoked)
                continue;                           /* revoked twice is revoked */
            snprintf(err, errcap, "line %d: the key is listed twice", line);
            goto fail;
        }
        char principal[HX_PRINCIPAL_MAX] = "";
        if (role_ok && name_ok)
            snprintf(principal, sizeof principal, "%.8s:%.64s", role, name);
        if (hx_allow_put(a, raw, principal) != 0) {
            snprintf(err, errcap, "out of memory");
            goto fail;
        }
    }
    return a;
fail:
    hx_allow_destroy(&a);
    return NULL;
}

hx_allow_t *hx_allow_parse(const char *text, char *err, size_t errcap)
{
    return parse_list(text, false, err, errcap);
}

hx_allow_t *hx_revoked_parse(const char *text, char *err, size_t errcap)
{
    return parse_list(text, true, err, errcap);
}

/* The whole of a small text file, NUL-terminated (malloc'd), or NULL with the reason. */
static char *read_list_file(const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errcap, "%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    if (st.st_nlink == 0) {
        snprintf(err, errcap,
                 "%s: this file was deleted or replaced after it was opened here, so it is not what is on disk "
                 "now: a file mounted on its own (docker -v FILE:..., a compose secret) keeps the old copy "
                 "when an editor, sed -i or keys.sh replaces it; mount its folder instead",
                 path);
        fclose(f);
        return NULL;
    }
    char *text = NULL;
    size_t cap = 0, len = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                fclose(f);
                snprintf(err, errcap, "out of memory");
                return NULL;
            }
            text = t;
        }
        memcpy(text + len, chunk, n);
        len += n;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(text);
        snprintf(err, errcap, "%s: cannot read it", path);
        return NULL;
    }
    if (!text && !(text = malloc(1))) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    text[len] = '\0';
    return text;
}

static hx_allow_t *load_list(const char *path, bool revoked, char *err, size_t errcap)
{
    char *text = read_list_file(path, err, errcap);
    if (!text)
        return NULL;
    char why[256];
    hx_allow_t *a = parse_list(text, revoked, why, sizeof why);
    free(text);
    if (!a)
        snprintf(err, errcap, "%s: %s", path, why);
    return a;
}

hx_allow_t *hx_allow_load(const char *path, char *err, size_t errcap)
{
    return load_list(path, false, err, errcap);
}

hx_allow_t *hx_revoked_load(const char *path, char *err, size_t errcap)
{
    return load_list(path, true, err, errcap);
}

void hx_allow_each_missing(const hx_allow_t *a, const hx_allow_t *b, hx_allow_fn fn, void *arg)
{
    for (const allowed_t *k = a->keys; k; k = k->hh.next) {
        const char *there = hx_allow_find(b, k->key);
        if (there && strcmp(there, k->principal) == 0)
            continue;
        char z85[HX_KEY_Z85 + 1];
        zmq_z85_encode(z85, k->key, 32);
        fn(arg, k->key, k->principal, z85);
    }
}

size_t hx_allow_subtract(hx_allow_t *a, const hx_allow_t *revoked, hx_allow_fn fn, void *arg)
{
    size_t out = 0;
    allowed_t *k, *t;
    HASH_ITER(hh, a->keys, k, t) {
        if (!hx_allow_find(revoked, k->key))
            continue;
        if (fn) {
            char z85[HX_KEY_Z85 + 1];
            zmq_z85_encode(z85, k->key, 32);
            fn(arg, k->key, k->principal, z85);
        }
        HASH_DELETE(hh, a->keys, k);
        free(k);
        a->n--;
        out++;
    }
    return out;
}

const char *hx_allow_find(const hx_allow_t *a, const uint8_t key[32])
{
    allowed_t *k = NULL;
    HASH_FIND(hh, a->keys, key, 32, k);
    return k ? k->principal : NULL;
}

bool hx_allow_has_principal(const hx_allow_t *a, const char *principal)
{
    const allowed_t *k;
    for (k = a->keys; k; k = k->hh.next)
        if (strcmp(k->principal, principal) == 0)
            return true;
    return false;
}

size_t hx_allow_count(const hx_allow_t *a)
{
    return a->n;
}

int hx_key_generate(char pub[HX_KEY_Z85 + 1], char sec[HX_KEY_Z85 + 1])
{
    return zmq_curve_keypair(pub, sec) == 0 ? 0 : -1;
}

static int read_key_line(const char *path, char out[HX_KEY_Z85 + 1], char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[128] = "";
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    uint8_t raw[32];
    if (!ok || strlen(line) != HX_KEY_Z85 || !zmq_z85_decode(raw, line)) {
        snprintf(err, errcap, "%s: the first line must be a key of 40 Z85 characters", path);
        return -1;
    }
    memcpy(out, line, HX_KEY_Z85 + 1);
    return 0;
}

int hx_key_load(const char *path, char pub[HX_KEY_Z85 + 1], char sec[HX_KEY_Z85 + 1], char *err, size_t errcap)
{
    if (read_key_line(path, sec, err, errcap))
        return -1;
    if (zmq_curve_public(pub, sec) != 0) {
        snprintf(err, errcap, "%s: not a CURVE secret key", path);
        return -1;
    }
    return 0;
}

int hx_key_file_write(const char *path, const char *text, int mode, char *err, size_t errcap)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || close(fd) != 0) {
        snprintf(err, errcap, "%s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (a key is never overwritten: remove it first)" : "");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return 0;
}

void hx_data_key_generate(char hex[65])
{
    uint8_t key[32];
    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, 65, key, sizeof key);
    sodium_memzero(key, sizeof key);
}

int hx_data_key_load(const char *path, uint8_t key[32], char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[128] = "";
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    size_t n = 0;
    if (!ok || strlen(line) != 64 || sodium_hex2bin(key, 32, line, 64, NULL, &n, NULL) != 0 || n != 32) {
        snprintf(err, errcap, "%s: the first line must be 64 hexadecimal characters (32 bytes)", path);
        return -1;
    }
    return 0;
}

int hx_key_load_public(const char *path, char pub[HX_KEY_Z85 + 1], char *err, size_t errcap)
{
    return read_key_line(path, pub, err, errcap);
}
