/* handoff-gen — writes a realistic synthetic network (directory.json) and referrals for demos,
 * tests and benchmarks. Thin: flags, files and progress here; the generation is hx_gen. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hx_errors.h"
#include "hx_gen.h"
#include "hx_triage.h"
#include "hx_util.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_DATAERR = 65 };

#define PROG "handoff-gen"
#define MAX_REFERRALS UINT64_C(10000000)
#define DEFAULT_RULES "services/triage/rules.json"

static const char usage[] =
    "usage: handoff-gen [options] --out DIR\n"
    "\n"
    "Writes a realistic synthetic Handoff network and referrals for demos, tests and\n"
    "benchmarks: DIR/directory.json (clinics and therapists, the format of\n"
    "deploy/sample/directory.json) and DIR/referrals/000001.json ... (the format of\n"
    "deploy/sample/referrals). Every referral passes intake. The mix follows the triage\n"
    "rules: about 45% physiotherapy, 25% massage therapy, 20% collaborative care, 5% red\n"
    "flags (some cauda equina) and 5% massage contraindications; mostly routine priority.\n"
    "All people are fictional and marked \"(generated)\"; health cards start with 5555.\n"
    "The same options and seed always give the same files.\n"
    "\n"
    "options:\n"
    "  --clinics N         clinics in the network, 1 to 1000 [6]\n"
    "  --therapists M      therapists, from N (each clinic has one) to 10000 [3 x N]\n"
    "  --referrals K       referrals to write, 0 to 10000000 [100]\n"
    "  --seed S            random seed, 0 to 18446744073709551615 [1]\n"
    "  --date YYYY-MM-DD   the last referral date; dates fall in the 28 days up to it\n"
    "                      [" HX_GEN_DEFAULT_DATE "]\n"
    "  --rules FILE        triage rules to take the condition and finding codes from\n"
    "                      [" DEFAULT_RULES ", relative to the current directory]\n"
    "  --out DIR           where directory.json and referrals/ go (created if missing;\n"
    "                      existing files of the same names are replaced)\n"
    "  --ndjson FILE       write the referrals to FILE as newline-delimited JSON, one\n"
    "                      referral per line, instead of DIR/referrals/ (\"-\": standard output)\n"
    "  -h, --help          this text\n"
    "\n"
    "Progress goes to standard error when it is a terminal.\n"
    "exit codes: 0 written; 1 a file could not be written; 2 usage; 65 the rules file is invalid.\n"
    "\n"
    "examples:\n"
    "  handoff-gen --out /tmp/demo\n"
    "  handoff-gen --clinics 40 --therapists 200 --referrals 5000 --seed 7 --out /tmp/bench\n"
    "  handoff-gen --clinics 1000 --therapists 10000 --referrals 1000000 \\\n"
    "              --out /tmp/big --ndjson /tmp/big/referrals.ndjson\n"
    "  handoff-gen --referrals 10 --out /tmp/demo --ndjson - | head -1\n"
    "  handoff-gen --rules /etc/handoff/rules.json --date 2027-03-01 --out /tmp/spring\n";

typedef struct {
    uint64_t clinics, therapists, referrals, seed;
    bool therapists_set;
    const char *date, *rules, *out, *ndjson;
} options_t;

/* A decimal integer in [min, max], digits only; on error says so naming the flag. */
static int parse_u64(const char *flag, const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *s = value;
    bool ok = *s != '\0' && strspn(s, "0123456789") == strlen(s);
    uint64_t v = 0;
    if (ok) {
        errno = 0;
        char *end;
        unsigned long long x = strtoull(s, &end, 10);
        ok = errno == 0 && *end == '\0' && x >= min && x <= max;
        v = (uint64_t)x;
    }
    if (!ok) {
        fprintf(stderr, "%s: %s: must be an integer from %" PRIu64 " to %" PRIu64 " (got \"%.40s\")\n",
                PROG, flag, min, max, value);
        return -1;
    }
    *out = v;
    return 0;
}

/* Returns EXIT_OK, or EXIT_USAGE after saying what is wrong; -1 for --help (printed). */
static int parse_args(int argc, char **argv, options_t *o)
{
    enum { O_CLINICS = 1000, O_THERAPISTS, O_REFERRALS, O_SEED, O_DATE, O_RULES, O_OUT, O_NDJSON };
    static const struct option longopts[] = {
        {"clinics", required_argument, NULL, O_CLINICS},
        {"therapists", required_argument, NULL, O_THERAPISTS},
        {"referrals", required_argument, NULL, O_REFERRALS},
        {"seed", required_argument, NULL, O_SEED},
        {"date", required_argument, NULL, O_DATE},
        {"rules", required_argument, NULL, O_RULES},
        {"out", required_argument, NULL, O_OUT},
        {"ndjson", required_argument, NULL, O_NDJSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (options_t){.clinics = 6, .referrals = 100, .seed = 1, .date = HX_GEN_DEFAULT_DATE,
                     .rules = DEFAULT_RULES};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            return -1;
        case O_CLINICS:
            if (parse_u64("--clinics", optarg, 1, HX_GEN_MAX_CLINICS, &o->clinics))
                return EXIT_USAGE;
            break;
        case O_THERAPISTS:
            if (parse_u64("--therapists", optarg, 1, HX_GEN_MAX_THERAPISTS, &o->therapists))
                return EXIT_USAGE;
            o->therapists_set = true;
            break;
        case O_REFERRALS:
            if (parse_u64("--referrals", optarg, 0, MAX_REFERRALS, &o->referrals))
                return EXIT_USAGE;
            break;
        case O_SEED:
            if (parse_u64("--seed", optarg, 0, UINT64_MAX, &o->seed))
                return EXIT_USAGE;
            break;
        case O_DATE: {
            int64_t days;
            if (hx_date_parse(optarg, &days) != 0 || days < hx_days_from_civil(2000, 1, 1)) {
                fprintf(stderr, "%s: --date: must be a date YYYY-MM-DD from 2000-01-01 to 9999-12-31 (got \"%.40s\")\n",
                        PROG, optarg);
                return EXIT_USAGE;
            }
            o->date = optarg;
            break;
        }
        case O_RULES:
        case O_OUT:
        case O_NDJSON:
            if (!*optarg) {
                fprintf(stderr, "%s: %s: must not be empty\n", PROG,
                        c == O_RULES ? "--rules" : c == O_OUT ? "--out" : "--ndjson");
                return EXIT_USAGE;
            }
            *(c == O_RULES ? &o->rules : c == O_OUT ? &o->out : &o->ndjson) = optarg;
            break;
        case ':':
            fprintf(stderr, "%s: %s needs a value (see --help)\n", PROG, argv[optind - 1]);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "%s: unknown option %s (see --help)\n", PROG, argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%.60s\" (options only; see --help)\n", PROG, argv[optind]);
        return EXIT_USAGE;
    }
    if (!o->out) {
        fprintf(stderr, "%s: --out DIR is required: where directory.json goes (see --help)\n", PROG);
        return EXIT_USAGE;
    }
    if (!o->therapists_set)
        o->therapists = o->clinics * 3 > HX_GEN_MAX_THERAPISTS ? HX_GEN_MAX_THERAPISTS : o->clinics * 3;
    if (o->therapists < o->clinics) {
        fprintf(stderr, "%s: --therapists: must be at least --clinics (%" PRIu64 "): every clinic has a therapist (got %" PRIu64 ")\n",
                PROG, o->clinics, o->therapists);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* mkdir -p for path; returns 0 or -1 after saying why. */
static int make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        fprintf(stderr, "%s: %s: path too long\n", PROG, path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        char saved = *p;
        if (saved != '/' && saved != '\0')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "%s: cannot create %s: %s\n", PROG, buf, strerror(errno));
            return -1;
        }
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "%s: %s is not a directory\n", PROG, path);
        return -1;
    }
    return 0;
}

/* Writes j (indented, with a final newline) to path; returns 0 or -1 after saying why. */
static int write_json_file(const char *path, const json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2));
    if (!text) {
        fprintf(stderr, "%s: %s: out of memory\n", PROG, path);
        return -1;
    }
    FILE *f = fopen(path, "w");
    int rc = 0;
    if (!f) {
        rc = -1;
    } else {
        size_t n = strlen(text);
        if (fwrite(text, 1, n, f) != n || fputc('\n', f) == EOF)
            rc = -1;
        if (fclose(f) != 0)
            rc = -1;
    }
    if (rc)
        fprintf(stderr, "%s: cannot write %s: %s\n", PROG, path, strerror(errno));
    free(text);
    return rc;
}

/* The rules as JSON, after hx_rules_load has checked them as triage will. */
static json_t *load_rules(const char *path, int *exit_code)
{
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "%s: --rules %s: %s%s\n", PROG, path, strerror(errno),
                strcmp(path, DEFAULT_RULES) == 0 ? " (run from the project root, or pass --rules FILE)" : "");
        *exit_code = EXIT_USAGE;
        return NULL;
    }
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_rules_t *rules = hx_rules_load(path, &errs);
    json_t *j = rules ? hx_json_read(path, NULL, "rules file", &errs) : NULL;
    hx_rules_destroy(&rules);
    if (!j) {
        char buf[2048];
        fprintf(stderr, "%s: --rules %s: %s\n", PROG, path, hx_errors_join(&errs, buf, sizeof buf));
        *exit_code = EXIT_DATAERR;
    }
    return j;
}

static void progress(bool tty, uint64_t done, uint64_t total)
{
    if (tty && (done % 1000 == 0 || done == total))
        fprintf(stderr, "\r%s: %" PRIu64 "/%" PRIu64 " referrals", PROG, done, total);
}

int main(int argc, char **argv)
{
    options_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc != EXIT_OK)
        return rc < 0 ? EXIT_OK : rc;

    json_t *rules = load_rules(o.rules, &rc);
    if (!rules)
        return rc;
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_gen_options_t gopt = {.clinics = (size_t)o.clinics, .therapists = (size_t)o.therapists,
                             .seed = o.seed, .last_date = o.date};
    hx_gen_t *gen = hx_gen_new(rules, &gopt, &errs);
    json_decref(rules);
    if (!gen) {
        char buf[2048];
        fprintf(stderr, "%s: %s\n", PROG, hx_errors_join(&errs, buf, sizeof buf));
        return EXIT_DATAERR;
    }

    char path[4200];
    FILE *nd = NULL;
    bool nd_stdout = o.ndjson && strcmp(o.ndjson, "-") == 0;
    uint64_t kinds[HX_GEN_KIND_COUNT] = {0};
    uint64_t done = 0;
    const bool tty = isatty(STDERR_FILENO);
    rc = EXIT_FAIL;

    if (make_dirs(o.out) != 0)
        goto out;
    json_t *dir = hx_gen_directory(gen);
    snprintf(path, sizeof path, "%s/directory.json", o.out);
    int wrc = dir ? write_json_file(path, dir) : -1;
    json_decref(dir);
    if (wrc != 0)
        goto out;

    if (o.ndjson) {
        nd = nd_stdout ? stdout : fopen(o.ndjson, "w");
        if (!nd) {
            fprintf(stderr, "%s: --ndjson %s: %s\n", PROG, o.ndjson, strerror(errno));
            goto out;
        }
    } else {
        snprintf(path, sizeof path, "%s/referrals", o.out);
        if (make_dirs(path) != 0)
            goto out;
    }

    for (; done < o.referrals; done++) {
        hx_gen_kind_t kind;
        json_t *ref = hx_gen_referral(gen, done, &kind);
        if (!ref) {
            fprintf(stderr, "%s: out of memory at referral %" PRIu64 "\n", PROG, done + 1);
            goto out;
        }
        kinds[kind]++;
        int w;
        if (nd) {
            w = json_dumpf(ref, nd, JSON_COMPACT) == 0 && fputc('\n', nd) != EOF ? 0 : -1;
            if (w)
                fprintf(stderr, "%s: cannot write %s: %s\n", PROG, nd_stdout ? "standard output" : o.ndjson,
                        strerror(errno));
        } else {
            snprintf(path, sizeof path, "%s/referrals/%06" PRIu64 ".json", o.out, done + 1);
            w = write_json_file(path, ref);
        }
        json_decref(ref);
        if (w)
            goto out;
        progress(tty, done + 1, o.referrals);
    }
    if (nd) {
        int e = nd_stdout ? fflush(nd) : fclose(nd);
        nd = NULL;
        if (e != 0) {
            fprintf(stderr, "%s: cannot write %s: %s\n", PROG, nd_stdout ? "standard output" : o.ndjson,
                    strerror(errno));
            goto out;
        }
    }
    if (tty && o.referrals)
        fputc('\n', stderr);
    rc = EXIT_OK;
    FILE *report = nd_stdout ? stderr : stdout;
    if (!nd_stdout || tty)
        fprintf(report, "%s: %s/directory.json: %" PRIu64 " clinics, %" PRIu64 " therapists; %" PRIu64
                        " referrals in %s%s (physiotherapy %" PRIu64 ", massage %" PRIu64 ", both %" PRIu64
                        ", red flag %" PRIu64 ", contraindicated %" PRIu64 "); seed %" PRIu64 "\n",
                PROG, o.out, o.clinics, o.therapists, o.referrals, o.ndjson ? o.ndjson : o.out,
                o.ndjson ? "" : "/referrals/", kinds[HX_GEN_PHYSIO], kinds[HX_GEN_MASSAGE], kinds[HX_GEN_BOTH],
                kinds[HX_GEN_RED_FLAG], kinds[HX_GEN_CONTRAINDICATED], o.seed);

out:
    if (nd && !nd_stdout)
        fclose(nd);
    if (rc != EXIT_OK && tty && done)
        fputc('\n', stderr);
    hx_gen_destroy(&gen);
    return rc;
}
