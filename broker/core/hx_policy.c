/* hx_policy — the routing policy table and its JSON form.
 *
 * A rule is {"from": ROLE ":" NAME, "to": KIND ":" NAME, "types": [TYPE, ...]}, where NAME may
 * be "*" (any), "from" may be "*" (any sender), "to" may be "*" (anywhere) and "types" may
 * be ["*"] (any type). A message is allowed when some rule matches all three; the order of
 * rules does not matter. The table is small (tens of rules), so a linear scan costs less
 * than the hash of the message id; the broker checks every message it accepts. */
#include "hx_policy.h"
#include "hx_wire.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANY NULL                /* a NULL name or type matches anything */

typedef struct {
    int role;                   /* 0: any */
    char *from;                 /* ANY or a name */
    int to_kind;                /* 0: any */
    char *to;                   /* ANY or a name */
    char **types;               /* NULL: any type */
    size_t n_types;
} rule_t;

struct hx_policy {
    rule_t *rules;
    size_t n;
};

/* The Handoff network (docs/PROTOCOL.md): a clinic refers to intake and asks scheduling
 * for lifecycle changes (and, as a reviewer does, for the network's figures: StatsRequest);
 * each service passes the case on; only the service that issues a
 * clinical type may put it into a mailbox. Nothing else, and never a clinic into a mailbox. */
static const struct {
    const char *from, *to, *types[6];
} builtin[] = {
    {"clinic:*", "service:intake", {"handoff.Referral"}},
    {"clinic:*", "service:scheduling", {"handoff.StatusChange", "handoff.ThreadPost", "handoff.StatsRequest"}},
    {"reviewer:*", "service:scheduling", {"handoff.ReviewDecision", "handoff.StatsRequest"}},
    {"service:intake", "service:triage", {"handoff.Case"}},
    {"service:intake", "mailbox:*", {"handoff.StatusUpdate"}},
    {"service:triage", "service:scheduling", {"handoff.Case"}},
    {"service:triage", "mailbox:*", {"handoff.StatusUpdate"}},
    {"service:scheduling",
     "mailbox:*",
     {"handoff.Handoff", "handoff.StatusUpdate", "handoff.ReviewRequest", "handoff.ThreadPost",
      "handoff.NetworkStats"}},
    {"service:scheduling", "service:scheduling", {"handoff.Retry"}},
    {"service:scheduling", "service:triage", {"handoff.Case"}},     /* an add, for triage to check */
};

static const char *role_word(int role)
{
    return role == HX_POLICY_CLINIC     ? "clinic"
           : role == HX_POLICY_SERVICE  ? "service"
           : role == HX_POLICY_ADMIN    ? "admin"
           : role == HX_POLICY_REVIEWER ? "reviewer"
                                        : "*";
}

static const char *kind_word(int kind)
{
    return kind == HX_POLICY_TO_SERVICE ? "service" : kind == HX_POLICY_TO_MAILBOX ? "mailbox" : "*";
}

static void rule_free(rule_t *r)
{
    free(r->from);
    free(r->to);
    for (size_t i = 0; i < r->n_types; i++)
        free(r->types[i]);
    free(r->types);
}

void hx_policy_destroy(hx_policy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_policy_t *p = *self_p;
    for (size_t i = 0; i < p->n; i++)
        rule_free(&p->rules[i]);
    free(p->rules);
    free(p);
    *self_p = NULL;
}

/* "ROLE:NAME" (or "*") into role and name; false with the problem in err. */
static bool parse_end(const char *s, bool from, int *kind, char **name, const char *where, char *err, size_t cap)
{
    *kind = 0;
    *name = ANY;
    if (strcmp(s, "*") == 0)
        return true;
    const char *colon = strchr(s, ':');
    size_t klen = colon ? (size_t)(colon - s) : 0;
    const char *words[] = {"clinic", "service", "admin", "mailbox", "reviewer"};
    const int values[] = {HX_POLICY_CLINIC, HX_POLICY_SERVICE, HX_POLICY_ADMIN, HX_POLICY_TO_MAILBOX,
                          HX_POLICY_REVIEWER};
    for (size_t i = 0; colon && i < 5; i++) {
        if (strlen(words[i]) != klen || strncmp(s, words[i], klen) != 0)
            continue;
        if (from && i == 3)
            break;
        if (!from && (i == 0 || i == 2 || i == 4))
            break;
        *kind = !from && i == 1 ? HX_POLICY_TO_SERVICE : values[i];
    }
    if (!*kind) {
        snprintf(err, cap, "%s: '%.80s' must be %s followed by ':' and a name or '*'", where, s,
                 from ? "clinic, service, admin or reviewer" : "service or mailbox");
        return false;
    }
    const char *n = colon + 1;
    if (strcmp(n, "*") == 0)
        return true;
    if (!hx_name_valid(n)) {
        snprintf(err, cap, "%s: the name in '%.80s' must be '*' or 1 to %d characters of [A-Za-z0-9._-]", where, s,
                 HX_NAME_MAX);
        return false;
    }
    *name = strdup(n);
    if (!*name) {
        snprintf(err, cap, "%s: out of memory", where);
        return false;
    }
    return true;
}

static bool type_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > HX_TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
            return false;
    return true;
}

/* One rule from its three strings; types NULL-terminated ("*" alone: any). */
static bool rule_set(rule_t *r, const char *from, const char *to, const char *const *types, size_t n_types,
                     size_t index, char *err, size_t cap)
{
    char where[48];
    memset(r, 0, sizeof *r);
    snprintf(where, sizeof where, "rules[%zu].from", index);
    if (!parse_end(from, true, &r->role, &r->from, where, err, cap))
        return false;
    snprintf(where, sizeof where, "rules[%zu].to", index);
    if (!parse_end(to, false, &r->to_kind, &r->to, where, err, cap))
        return false;
    if (n_types == 0) {
        snprintf(err, cap, "rules[%zu].types: name at least one type, or \"*\"", index);
        return false;
    }
    if (n_types == 1 && strcmp(types[0], "*") == 0)
        return true;
    r->types = calloc(n_types, sizeof *r->types);
    if (!r->types) {
        snprintf(err, cap, "rules[%zu]: out of memory", index);
        return false;
    }
    for (size_t i = 0; i < n_types; i++) {
        if (!type_valid(types[i]) || strcmp(types[i], "*") == 0) {
            snprintf(err, cap, "rules[%zu].types[%zu]: '%.80s' must be a type name of 1 to %d printable characters "
                     "(\"*\" only alone)", index, i, types[i], HX_TYPE_MAX);
            return false;
        }
        if (!(r->types[r->n_types] = strdup(types[i]))) {
            snprintf(err, cap, "rules[%zu]: out of memory", index);
            return false;
        }
        r->n_types++;
    }
    return true;
}

hx_policy_t *hx_policy_default(void)
{
    size_t n = sizeof builtin / sizeof builtin[0];
    hx_policy_t *p = calloc(1, sizeof *p);
    if (!p || !(p->rules = calloc(n, sizeof *p->rules))) {
        free(p);
        return NULL;
    }
    char err[160];
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < sizeof builtin[i].types / sizeof builtin[i].types[0] && builtin[i].types[k])
            k++;
        if (!rule_set(&p->rules[i], builtin[i].from, builtin[i].to, builtin[i].types, k, i, err, sizeof err)) {
            p->n = i + 1;
            hx_policy_destroy(&p);
            return NULL;
        }
        p->n = i + 1;
    }
    return p;
}

hx_policy_t *hx_policy_parse(const char *text, char *err, size_t cap)
{
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        snprintf(err, cap, "line %d, column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    hx_policy_t *p = NULL;
    json_t *rules = json_object_get(root, "rules");
    const char *key;
    json_t *val;
    if (!json_is_object(root) || !json_is_array(rules)) {
        snprintf(err, cap, "rules: the file must be an object with an array \"rules\"");
        goto done;
    }
    json_object_foreach(root, key, val) {
        if (strcmp(key, "rules") != 0 && strcmp(key, "note") != 0) {
            snprintf(err, cap, "%.60s: unknown member (the file has \"rules\" and an optional \"note\")", key);
            goto done;
        }
    }
    size_t n = json_array_size(rules);
    p = calloc(1, sizeof *p);
    if (!p || (n && !(p->rules = calloc(n, sizeof *p->rules)))) {
        snprintf(err, cap, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(rules, i);
        if (!json_is_object(r)) {
            snprintf(err, cap, "rules[%zu]: must be an object with from, to and types", i);
            goto fail;
        }
        json_object_foreach(r, key, val) {
            if (strcmp(key, "from") && strcmp(key, "to") && strcmp(key, "types") && strcmp(key, "note")) {
                snprintf(err, cap, "rules[%zu].%.60s: unknown member (a rule has from, to, types and an optional note)",
                         i, key);
                goto fail;
            }
        }
        json_t *from = json_object_get(r, "from"), *to = json_object_get(r, "to"), *types = json_object_get(r, "types");
        if (!json_is_string(from) || !json_is_string(to)) {
            snprintf(err, cap, "rules[%zu].%s: must be a string", i, json_is_string(from) ? "to" : "from");
            goto fail;
        }
        if (!json_is_array(types)) {
            snprintf(err, cap, "rules[%zu].types: must be an array of type names, or [\"*\"]", i);
            goto fail;
        }
        size_t nt = json_array_size(types);
        const char **tv = calloc(nt ? nt : 1, sizeof *tv);
        if (!tv) {
            snprintf(err, cap, "out of memory");
            goto fail;
        }
        bool ok = true;
        for (size_t k = 0; k < nt && ok; k++) {
            tv[k] = json_string_value(json_array_get(types, k));
            if (!tv[k]) {
                snprintf(err, cap, "rules[%zu].types[%zu]: must be a string", i, k);
                ok = false;
            }
        }
        ok = ok && rule_set(&p->rules[i], json_string_value(from), json_string_value(to), tv, nt, i, err, cap);
        free(tv);
        p->n = i + 1;
        if (!ok)
            goto fail;
    }
    goto done;
fail:
    hx_policy_destroy(&p);
done:
    json_decref(root);
    return p;
}

hx_policy_t *hx_policy_load(const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "%s: cannot open", path);
        return NULL;
    }
    char *text = NULL;
    size_t len = 0, room = 0;
    for (;;) {
        if (len + 4096 + 1 > room) {
            if (room >= (1u << 20)) {
                snprintf(err, cap, "%s: larger than 1 MiB", path);
                free(text);
                fclose(f);
                return NULL;
            }
            room = room ? room * 2 : 8192;
            char *t = realloc(text, room);
            if (!t) {
                free(text);
                fclose(f);
                snprintf(err, cap, "%s: out of memory", path);
                return NULL;
            }
            text = t;
        }
        size_t got = fread(text + len, 1, 4096, f);
        len += got;
        if (got < 4096)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(text);
        snprintf(err, cap, "%s: read error", path);
        return NULL;
    }
    text[len] = 0;
    char why[256];
    hx_policy_t *p = hx_policy_parse(text, why, sizeof why);
    free(text);
    if (!p)
        snprintf(err, cap, "%s: %s", path, why);
    return p;
}

bool hx_policy_allows(const hx_policy_t *p, hx_policy_role_t role, const char *name, hx_policy_to_t to_kind,
                      const char *to, const char *type)
{
    for (size_t i = 0; i < p->n; i++) {
        const rule_t *r = &p->rules[i];
        if ((r->role && r->role != (int)role) || (r->from && strcmp(r->from, name) != 0) ||
            (r->to_kind && r->to_kind != (int)to_kind) || (r->to && strcmp(r->to, to) != 0))
            continue;
        if (!r->types)
            return true;
        for (size_t k = 0; k < r->n_types; k++)
            if (strcmp(r->types[k], type) == 0)
                return true;
    }
    return false;
}

size_t hx_policy_size(const hx_policy_t *p)
{
    return p->n;
}

char *hx_policy_json(const hx_policy_t *p)
{
    json_t *rules = json_array();
    for (size_t i = 0; rules && i < p->n; i++) {
        const rule_t *r = &p->rules[i];
        char from[HX_NAME_MAX + 16], to[HX_NAME_MAX + 16];
        if (r->role)
            snprintf(from, sizeof from, "%s:%s", role_word(r->role), r->from ? r->from : "*");
        else
            snprintf(from, sizeof from, "*");
        if (r->to_kind)
            snprintf(to, sizeof to, "%s:%s", kind_word(r->to_kind), r->to ? r->to : "*");
        else
            snprintf(to, sizeof to, "*");
        json_t *types = json_array();
        if (!r->types)
            json_array_append_new(types, json_string("*"));
        for (size_t k = 0; k < r->n_types; k++)
            json_array_append_new(types, json_string(r->types[k]));
        json_array_append_new(rules, json_pack("{s:s, s:s, s:o}", "from", from, "to", to, "types", types));
    }
    json_t *root = json_pack("{s:o}", "rules", rules);
    char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    return s;
}
