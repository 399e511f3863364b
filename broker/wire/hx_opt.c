/* hx_opt — checked command-line and environment values, and the option table. */
#include "hx_opt.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int hx_opt_u32(const char *prog, const char *name, const char *value, uint32_t min, uint32_t max, uint32_t *out)
{
    /* one check for both: digits only, in bounds (hx_opt_u64 says what is wrong) */
    uint64_t v;
    if (hx_opt_u64(prog, name, value, min, max, &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int hx_opt_u64(const char *prog, const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
    /* digits only: strtoull alone would skip blanks and take "+1", and " -1" would wrap */
    bool ok = value && *value && strspn(value, "0123456789") == strlen(value);
    unsigned long long v = 0;
    if (ok) {
        errno = 0;
        v = strtoull(value, NULL, 10);
        ok = errno == 0 && v >= min && v <= max;
    }
    if (!ok) {
        fprintf(stderr, "%s: %s: must be an integer from %" PRIu64 " to %" PRIu64 ", got '%s'\n", prog, name, min,
                max, value ? value : "");
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

const char *hx_opt_pick(const char *value, const char *env, const char *def)
{
    if (value)
        return value;
    const char *e = env ? getenv(env) : NULL;
    return e && *e ? e : def;
}

void hx_opt_help(FILE *f, const hx_opt_t *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const hx_opt_t *o = &opts[i];
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s", o->name, o->kind == HX_OPT_FLAG ? "" : " ",
                 o->kind == HX_OPT_FLAG ? "" : (o->arg ? o->arg : "VALUE"));
        char where[160] = "";
        if (o->env && o->def)
            snprintf(where, sizeof where, " [%s, %s]", o->env, o->def);
        else if (o->env)
            snprintf(where, sizeof where, " [%s]", o->env);
        else if (o->def)
            snprintf(where, sizeof where, " [%s]", o->def);
        /* the help's lines, the first beside the flag, the bracket after the last */
        const char *h = o->help ? o->help : "";
        bool first = true;
        while (first || *h) {
            const char *nl = strchr(h, '\n');
            size_t len = nl ? (size_t)(nl - h) : strlen(h);
            bool last = !nl, wrap = last && where[0] && 25 + len + strlen(where) > 100;
            fprintf(f, "  %-22s %.*s%s\n", first ? flag : "", (int)len, h, last && !wrap ? where : "");
            if (wrap)                           /* the bracket on a line of its own */
                fprintf(f, "  %-22s %s\n", "", where + 1);
            h = nl ? nl + 1 : h + len;
            first = false;
        }
    }
    fprintf(f, "  %-22s %s\n", "-h, --help", "this text");
}

int hx_opt_parse(const char *prog, const hx_opt_t *opts, size_t n, int argc, char **argv, const char *head,
                 const char *tail, hx_opt_val_t *vals)
{
    struct option *lo = calloc(n + 2, sizeof *lo);
    if (!lo) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        lo[i] = (struct option){opts[i].name, opts[i].kind == HX_OPT_FLAG ? no_argument : required_argument, NULL,
                                256 + (int)i};
        vals[i] = (hx_opt_val_t){0};
    }
    lo[n] = (struct option){"help", no_argument, NULL, 'h'};
    int c, rc = 0;
    optind = 1;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == 'h') {
            if (head)
                fputs(head, stdout);
            hx_opt_help(stdout, opts, n);
            if (tail)
                fputs(tail, stdout);
            rc = 1;
        } else if (c >= 256 && (size_t)(c - 256) < n) {
            hx_opt_val_t *v = &vals[c - 256];
            v->given = true;
            v->on = true;
            v->text = optarg;
        } else {
            const char *bad = argv[optind - 1] ? argv[optind - 1] : "?";
            if (optopt >= 256 && (size_t)(optopt - 256) < n)
                fprintf(stderr, "%s: --%s needs a value (see --help)\n", prog, opts[optopt - 256].name);
            else
                fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, bad);
            rc = 2;
        }
    }
    free(lo);
    if (rc)
        return rc;
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, argv[optind]);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        const hx_opt_t *o = &opts[i];
        hx_opt_val_t *v = &vals[i];
        if (o->kind == HX_OPT_FLAG) {       /* the variable: 1/true/yes/on or 0/false/no/off */
            const char *e = o->env && !v->given ? getenv(o->env) : NULL;
            if (e && *e) {
                bool yes = !strcmp(e, "1") || !strcasecmp(e, "true") || !strcasecmp(e, "yes") || !strcasecmp(e, "on");
                bool no = !strcmp(e, "0") || !strcasecmp(e, "false") || !strcasecmp(e, "no") || !strcasecmp(e, "off");
                if (!yes && !no) {
                    fprintf(stderr, "%s: %s: must be 1, true, yes, on or 0, false, no, off (got '%s')\n", prog, o->env, e);
                    return 2;
                }
                v->on = yes;
                v->given = v->from_env = true;
            }
            continue;
        }
        if (!v->text && o->env) {
            const char *e = getenv(o->env);
            if (e && *e) {
                v->text = e;
                v->given = v->from_env = true;
            }
        }
        if (!v->text)
            v->text = o->def;
        if ((o->kind == HX_OPT_U32 || o->kind == HX_OPT_U64) && v->text) {
            char name[72];
            snprintf(name, sizeof name, "--%s", o->name);
            int bad = o->kind == HX_OPT_U32
                          ? hx_opt_u32(prog, name, v->text, (uint32_t)o->min, (uint32_t)o->max, &v->u32)
                          : hx_opt_u64(prog, name, v->text, o->min, o->max, &v->u64);
            if (bad)
                return 2;
        }
    }
    return 0;
}
