/* cli_keys — the clinic CLI's CURVE keys, found and checked (see cli_keys.h). */
#include "cli_keys.h"
#include "hx_curve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How a key found in the home directory shows where it came from (`handoff config`, errors). */
#define FOUND "default, found in the home directory"

void cli_keys_dir(const char *home, char *out, size_t cap)
{
    const char *h = getenv("HOME");
    if (home)
        snprintf(out, cap, "%s", home);
    else
        snprintf(out, cap, "%s/.handoff", h && *h ? h : ".");
}

/* dir/file into out: 0, or -1 when it does not fit. */
static int join(char *out, size_t cap, const char *dir, const char *file, const char *ext)
{
    int n = snprintf(out, cap, "%s/%s%s", dir, file, ext);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int cli_keys_defaults(cli_config_t *c, const char *dir, const char *name)
{
    char path[4200];
    if (join(path, sizeof path, dir, CLI_BROKER_PUB, "") == 0 && access(path, F_OK) == 0 &&
        cli_config_default(c, CLI_SET_SERVER_KEY, path, FOUND) != 0)
        return -1;
    if (name && join(path, sizeof path, dir, name, ".key") == 0 && access(path, F_OK) == 0 &&
        cli_config_default(c, CLI_SET_KEY, path, FOUND) != 0)
        return -1;
    return 0;
}

/* "(from --key)", "(from /home/a/.handoff/config:3)", "(default, found in the home directory)" */
static void origin(const cli_value_t *v, char *out, size_t cap)
{
    snprintf(out, cap, v->from == CLI_FROM_DEFAULT ? "(%s)" : "(from %s)", v->where);
}

/* path as a shell word: in single quotes when it holds anything a shell would read. */
static void shell_word(const char *path, char *out, size_t cap)
{
    if (strpbrk(path, " \t'\"$`\\&;|<>()*?[]{}!#~"))
        snprintf(out, cap, "'%s'", path);
    else
        snprintf(out, cap, "%s", path);
}

/* The file of setting s exists, is a regular file that can be read and, when secret, may be
 * read by its owner only. 0, or -1 with err set. */
static int check_file(const cli_config_t *c, cli_set_t s, bool secret, char *err, size_t cap)
{
    const cli_value_t *v = &c->v[s];
    char from[400];
    origin(v, from, sizeof from);
    struct stat st;
    if (stat(v->value, &st) != 0) {
        snprintf(err, cap, "%s %s %s: cannot be read: %s", cli_set_name(s), v->value, from, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, cap, "%s %s %s: not a key file (a directory or a device)", cli_set_name(s), v->value, from);
        return -1;
    }
    if (secret && (st.st_mode & 0177)) {
        char word[4200];
        shell_word(v->value, word, sizeof word);
        snprintf(err, cap,
                 "%s %s %s: mode %04o is wider than 0600, and a secret key must be readable by its owner only: "
                 "run  chmod 600 %s", cli_set_name(s), v->value, from, (unsigned)(st.st_mode & 07777), word);
        return -1;
    }
    if (access(v->value, R_OK) != 0) {
        snprintf(err, cap, "%s %s %s: cannot be read: %s", cli_set_name(s), v->value, from, strerror(errno));
        return -1;
    }
    return 0;
}

/* The reason in an hx_curve error ("PATH: why"), without the path. */
static const char *reason(const char *hx_err, const char *path)
{
    size_t n = strlen(path);
    return strncmp(hx_err, path, n) == 0 && strncmp(hx_err + n, ": ", 2) == 0 ? hx_err + n + 2 : hx_err;
}

/* One of the two settings is set and the other is not: what is set, where from, and where the
 * other one was looked for. */
static void one_missing(const cli_config_t *c, const char *dir, const char *who, const char *name, char *err,
                        size_t cap)
{
    bool have_key = c->v[CLI_SET_KEY].value != NULL;
    cli_set_t set = have_key ? CLI_SET_KEY : CLI_SET_SERVER_KEY, unset = have_key ? CLI_SET_SERVER_KEY : CLI_SET_KEY;
    char from[400], path[4200] = "";
    origin(&c->v[set], from, sizeof from);
    if (have_key)
        join(path, sizeof path, dir, CLI_BROKER_PUB, "");
    else if (name)
        join(path, sizeof path, dir, name, ".key");
    char looked[4400];
    if (path[0])
        snprintf(looked, sizeof looked, ", and there is no %s", path);
    else
        snprintf(looked, sizeof looked, " (and no %s id to find ID.key by)", who);
    if (have_key)
        snprintf(err, cap,
                 "CURVE needs the broker's public key as well as this %s's secret key, key %s %s: none of "
                 "--server-key FILE, %s, 'server-key = FILE' in the config file is set%s: copy the broker's "
                 "broker.pub there, or name it", who, c->v[set].value, from, cli_set_env(unset), looked);
    else
        snprintf(err, cap,
                 "CURVE needs this %s's secret key as well as the broker's public key, server-key %s %s: none of "
                 "--key FILE, %s, 'key = FILE' in the config file is set%s: put the %s's key there (mode 0600), "
                 "or name it", who, c->v[set].value, from, cli_set_env(unset), looked, who);
}

int cli_keys_load(const cli_config_t *c, const char *dir, const char *who, const char *name, cli_keys_t *k,
                  char *err, size_t cap)
{
    memset(k, 0, sizeof *k);
    const cli_value_t *sv = &c->v[CLI_SET_SERVER_KEY], *kv = &c->v[CLI_SET_KEY];
    if (!sv->value && !kv->value)
        return 0;
    if (!sv->value || !kv->value) {
        one_missing(c, dir, who, name, err, cap);
        return -1;
    }
    char from[400], why[4400];
    origin(kv, from, sizeof from);
    size_t len = strlen(kv->value);
    if (len >= 4 && strcmp(kv->value + len - 4, ".pub") == 0) {
        snprintf(err, cap, "key %s %s: a public key file (.pub), not this %s's secret key: give the .key file "
                           "`handoff keygen` wrote with it", kv->value, from, who);
        return -1;
    }
    if (check_file(c, CLI_SET_SERVER_KEY, false, err, cap) != 0 || check_file(c, CLI_SET_KEY, true, err, cap) != 0)
        return -1;
    if (hx_key_load_public(sv->value, k->server, why, sizeof why) != 0) {
        char sfrom[400];
        origin(sv, sfrom, sizeof sfrom);
        snprintf(err, cap, "server-key %s %s: not a CURVE public key: %s", sv->value, sfrom, reason(why, sv->value));
        return -1;
    }
    if (hx_key_load(kv->value, k->pub, k->sec, why, sizeof why) != 0) {
        snprintf(err, cap, "key %s %s: not a CURVE secret key: %s", kv->value, from, reason(why, kv->value));
        return -1;
    }
    if (strcmp(k->sec, k->server) == 0) {
        snprintf(err, cap, "key %s %s: holds the broker's public key (the same as server-key %s), not this %s's "
                           "secret key", kv->value, from, sv->value, who);
        return -1;
    }
    k->curve = true;
    return 0;
}
