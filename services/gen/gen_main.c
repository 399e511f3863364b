/* handoff-gen — writes a realistic synthetic network (directory.json) and referrals for demos,
 * tests and benchmarks. Thin: flags, files and progress here; the generation is hx_gen. */
#include <errno.h>
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
#include "hx_opt.h"
#include "hx_triage.h"
#include "hx_util.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_DATAERR = 65 };

#define PROG "handoff-gen"
#define MAX_REFERRALS 10000000
#define DEFAULT_RULES "services/triage/rules.json"
#define STR(x) STR_(x)
#define STR_(x) #x

static const char usage_head[] =
    "usage: handoff-gen [options] --out DIR\n"
    "\n"
    "Writes a realistic synthetic Handoff network and referrals for demos, tests and\n"
    "benchmarks: DIR/directory.json (clinics and therapists, version 2 of the format of\n"
    "deploy/sample/directory.json) and DIR/referrals/000001.json ... (the format of\n"
    "deploy/sample/referrals). Clinics are in cities of several provinces (Ontario, Quebec,\n"
    "British Columbia, Alberta, Nova Scotia, Manitoba) and time zones, from two clinics on\n"
    "Eastern and Pacific: each with its province, zone, a location near its city with a postal\n"
    "code, and as closures the province's statutory holidays from the first referral date to\n"
    "120 days after --date (and a clinic's own closure or two for some). The directory lists\n"
    "the forward sortation areas patients live in; most patients have a postal code in their\n"
    "referring clinic's city. Registrations name a body the built-in registration file lists\n"
    "for the clinic's province (CPO, CHCPBC, ...). Every referral passes intake. For each\n"
    "collaborative referral, DIR/stories/000001.json ... (same number) holds its story after\n"
    "booking, which `handoff play` plays: physiotherapy accepts and starts, massage sometimes\n"
    "declines and is booked again, a question and its answer on the care thread, both complete\n"
    "with a summary (format: docs/OPERATIONS.md, \"Stories\"; none with --ndjson). The mix\n"
    "follows the triage rules: about 45% physiotherapy, 25% massage therapy, 20% collaborative\n"
    "care, 5% red flags (some cauda equina) and 5% massage contraindications; mostly routine\n"
    "priority.\n"
    "All people are fictional and marked \"(generated)\"; health cards start with 5555.\n"
    "The same options and seed always give the same files.\n"
    "\n"
    "options:\n";

static const char usage_tail[] =
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

enum { O_CLINICS, O_THERAPISTS, O_REFERRALS, O_SEED, O_DATE, O_RULES, O_OUT, O_NDJSON, O_COUNT };
static const hx_opt_t options[O_COUNT] = {
    [O_CLINICS] = {"clinics", HX_OPT_U64, NULL, "6", 1, HX_GEN_MAX_CLINICS, "N",
                   "clinics in the network, 1 to " STR(HX_GEN_MAX_CLINICS)},
    [O_THERAPISTS] = {"therapists", HX_OPT_U64, NULL, NULL, 1, HX_GEN_MAX_THERAPISTS, "M",
                      "therapists, from N (each clinic has one) to " STR(HX_GEN_MAX_THERAPISTS) " [3 x N]"},
    [O_REFERRALS] = {"referrals", HX_OPT_U64, NULL, "100", 0, MAX_REFERRALS, "K",
                     "referrals to write, 0 to " STR(MAX_REFERRALS)},
    [O_SEED] = {"seed", HX_OPT_U64, NULL, "1", 0, UINT64_MAX, "S", "random seed, 0 to 18446744073709551615"},
    [O_DATE] = {"date", HX_OPT_TEXT, NULL, HX_GEN_DEFAULT_DATE, 0, 0, "YYYY-MM-DD",
                "the last referral date, 2000-01-01 to 9999-12-31; dates fall in\nthe 28 days up to it, "
                "closures run to 120 days after it"},
    [O_RULES] = {"rules", HX_OPT_TEXT, NULL, DEFAULT_RULES, 0, 0, "FILE",
                 "triage rules to take the condition and finding codes from (the\ndefault is relative to the "
                 "current directory)"},
    [O_OUT] = {"out", HX_OPT_TEXT, NULL, NULL, 0, 0, "DIR",
               "required: where directory.json and referrals/ go (created if\nmissing; existing files of the "
               "same names are replaced)"},
    [O_NDJSON] = {"ndjson", HX_OPT_TEXT, NULL, NULL, 0, 0, "FILE",
                  "write the referrals to FILE as newline-delimited JSON, one\nreferral per line, instead of "
                  "DIR/referrals/ (\"-\": standard output)"},
};

typedef struct {
    uint64_t clinics, therapists, referrals, seed;
    const char *date, *rules, *out, *ndjson;
} options_t;

/* What the table cannot say: a date, values that must not be empty, --out required, at
 * least one therapist per clinic. Returns EXIT_OK, or EXIT_USAGE after saying what is wrong. */
static int check_options(const hx_opt_val_t *v, options_t *o)
{
    int64_t days;
    if (hx_date_parse(o->date, &days) != 0 || days < hx_days_from_civil(2000, 1, 1)) {
        fprintf(stderr, "%s: --date: must be a date YYYY-MM-DD from 2000-01-01 to 9999-12-31, got '%s'\n", PROG,
                o->date);
        return EXIT_USAGE;
    }
    for (int i = O_RULES; i <= O_NDJSON; i++)
        if (v[i].text && !*v[i].text) {
            fprintf(stderr, "%s: --%s: must not be empty\n", PROG, options[i].name);
            return EXIT_USAGE;
        }
    if (!o->out) {
        fprintf(stderr, "%s: --out DIR is required: where directory.json goes (see --help)\n", PROG);
        return EXIT_USAGE;
    }
    if (!v[O_THERAPISTS].given)
        o->therapists = o->clinics * 3 > HX_GEN_MAX_THERAPISTS ? HX_GEN_MAX_THERAPISTS : o->clinics * 3;
    if (o->therapists < o->clinics) {
        fprintf(stderr, "%s: --therapists: must be at least --clinics (%" PRIu64 "): every clinic has a therapist (got %" PRIu64 ")\n",
                PROG, o->clinics, o->therapists);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* Returns EXIT_OK, or EXIT_USAGE after saying what is wrong; -1 for --help (printed). */
static int parse_args(int argc, char **argv, options_t *o)
{
    hx_opt_val_t v[O_COUNT];
    int rc = hx_opt_parse(PROG, options, O_COUNT, argc, argv, usage_head, usage_tail, v);
    if (rc == 1)
        return -1;
    if (rc != 0)
        return EXIT_USAGE;
    *o = (options_t){.clinics = v[O_CLINICS].u64, .therapists = v[O_THERAPISTS].u64,
                     .referrals = v[O_REFERRALS].u64, .seed = v[O_SEED].u64, .date = v[O_DATE].text,
                     .rules = v[O_RULES].text, .out = v[O_OUT].text, .ndjson = v[O_NDJSON].text};
    return check_options(v, o);
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

/* Writes j (indented, with a final newline; coordinates as written, 43.7615, not
 * 43.761499999999998) to path; returns 0 or -1 after saying why. */
static int write_json_file(const char *path, const json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
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

/* The network and the rules it follows; NULL (with *exit_code set) after saying why. */
static hx_gen_t *make_generator(const options_t *o, int *exit_code)
{
    json_t *rules = load_rules(o->rules, exit_code);
    if (!rules)
        return NULL;
    hx_errors_t errs;
    hx_errors_clear(&errs);
    hx_gen_options_t gopt = {.clinics = (size_t)o->clinics, .therapists = (size_t)o->therapists,
                             .seed = o->seed, .last_date = o->date};
    hx_gen_t *gen = hx_gen_new(rules, &gopt, &errs);
    json_decref(rules);
    if (!gen) {
        char buf[2048];
        fprintf(stderr, "%s: %s\n", PROG, hx_errors_join(&errs, buf, sizeof buf));
        *exit_code = EXIT_DATAERR;
    }
    return gen;
}

/* DIR (created) and DIR/directory.json; returns 0 or -1 after saying why. */
static int write_directory(const hx_gen_t *gen, const char *out)
{
    if (make_dirs(out) != 0)
        return -1;
    char path[4200];
    json_t *dir = hx_gen_directory(gen);
    snprintf(path, sizeof path, "%s/directory.json", out);
    int rc = dir ? write_json_file(path, dir) : -1;
    json_decref(dir);
    return rc;
}

/* Where the referrals go: one NDJSON stream (a file or standard output), or one file each
 * in DIR/referrals/. */
typedef struct {
    const char *out, *ndjson;
    FILE *nd;                   /* NULL: one file each, and DIR/stories/ */
    bool nd_stdout;
    uint64_t stories;           /* written */
} sink_t;

static const char *sink_name(const sink_t *s)
{
    return s->nd_stdout ? "standard output" : s->ndjson;
}

/* Returns 0 or -1 after saying why. */
static int sink_open(sink_t *s, const options_t *o)
{
    *s = (sink_t){.out = o->out, .ndjson = o->ndjson, .nd_stdout = o->ndjson && strcmp(o->ndjson, "-") == 0};
    if (!o->ndjson) {
        char path[4200];
        snprintf(path, sizeof path, "%s/referrals", o->out);
        if (make_dirs(path) != 0)
            return -1;
        snprintf(path, sizeof path, "%s/stories", o->out);
        return make_dirs(path);
    }
    s->nd = s->nd_stdout ? stdout : fopen(o->ndjson, "w");
    if (!s->nd) {
        fprintf(stderr, "%s: --ndjson %s: %s\n", PROG, o->ndjson, strerror(errno));
        return -1;
    }
    return 0;
}

/* Referral number index (0-based); returns 0 or -1 after saying why. */
static int sink_write(sink_t *s, const json_t *ref, uint64_t index)
{
    if (!s->nd) {
        char path[4200];
        snprintf(path, sizeof path, "%s/referrals/%06" PRIu64 ".json", s->out, index + 1);
        return write_json_file(path, ref);
    }
    if (json_dumpf(ref, s->nd, JSON_COMPACT) == 0 && fputc('\n', s->nd) != EOF)
        return 0;
    fprintf(stderr, "%s: cannot write %s: %s\n", PROG, sink_name(s), strerror(errno));
    return -1;
}

/* The story of referral number index (0-based) when it is collaborative, in DIR/stories/
 * (one file each only); returns 0 or -1 after saying why. */
static int sink_story(sink_t *s, const hx_gen_t *gen, uint64_t index)
{
    json_t *story = NULL;
    if (s->nd)
        return 0;
    if (hx_gen_story(gen, index, &story) != 0) {
        fprintf(stderr, "%s: out of memory at the story of referral %" PRIu64 "\n", PROG, index + 1);
        return -1;
    }
    if (!story)
        return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/stories/%06" PRIu64 ".json", s->out, index + 1);
    int rc = write_json_file(path, story);
    json_decref(story);
    s->stories += rc == 0;
    return rc;
}

/* Flushes (standard output) or closes the stream; with ok false only closes, quietly.
 * Returns 0 or -1 after saying why. */
static int sink_close(sink_t *s, bool ok)
{
    FILE *nd = s->nd;
    s->nd = NULL;
    if (!nd || (!ok && s->nd_stdout))
        return 0;
    if (!ok) {
        fclose(nd);
        return 0;
    }
    if ((s->nd_stdout ? fflush(nd) : fclose(nd)) == 0)
        return 0;
    fprintf(stderr, "%s: cannot write %s: %s\n", PROG, sink_name(s), strerror(errno));
    return -1;
}

/* Writes the referrals, counting them by kind; *done says how many were written. Returns
 * 0 or -1 after saying why. */
static int write_referrals(const hx_gen_t *gen, sink_t *s, uint64_t total, bool tty,
                           uint64_t kinds[HX_GEN_KIND_COUNT], uint64_t *done)
{
    for (; *done < total; (*done)++) {
        hx_gen_kind_t kind;
        json_t *ref = hx_gen_referral(gen, *done, &kind);
        if (!ref) {
            fprintf(stderr, "%s: out of memory at referral %" PRIu64 "\n", PROG, *done + 1);
            return -1;
        }
        kinds[kind]++;
        int w = sink_write(s, ref, *done);
        json_decref(ref);
        if (w == 0 && kind == HX_GEN_BOTH)
            w = sink_story(s, gen, *done);
        if (w)
            return -1;
        progress(tty, *done + 1, total);
    }
    return 0;
}

static void report(FILE *f, const options_t *o, const uint64_t kinds[HX_GEN_KIND_COUNT], uint64_t stories)
{
    fprintf(f, "%s: %s/directory.json: %" PRIu64 " clinics, %" PRIu64 " therapists; %" PRIu64
               " referrals in %s%s (physiotherapy %" PRIu64 ", massage %" PRIu64 ", both %" PRIu64
               ", red flag %" PRIu64 ", contraindicated %" PRIu64 "); seed %" PRIu64 "\n",
            PROG, o->out, o->clinics, o->therapists, o->referrals, o->ndjson ? o->ndjson : o->out,
            o->ndjson ? "" : "/referrals/", kinds[HX_GEN_PHYSIO], kinds[HX_GEN_MASSAGE], kinds[HX_GEN_BOTH],
            kinds[HX_GEN_RED_FLAG], kinds[HX_GEN_CONTRAINDICATED], o->seed);
    if (!o->ndjson)
        fprintf(f, "%s: %" PRIu64 " stories of collaborative referrals in %s/stories/ (handoff play)\n", PROG, stories,
                o->out);
}

int main(int argc, char **argv)
{
    options_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc != EXIT_OK)
        return rc < 0 ? EXIT_OK : rc;
    hx_gen_t *gen = make_generator(&o, &rc);
    if (!gen)
        return rc;

    sink_t sink = {0};
    uint64_t kinds[HX_GEN_KIND_COUNT] = {0};
    uint64_t done = 0;
    const bool tty = isatty(STDERR_FILENO);
    bool ok = write_directory(gen, o.out) == 0 && sink_open(&sink, &o) == 0 &&
              write_referrals(gen, &sink, o.referrals, tty, kinds, &done) == 0;
    if (sink_close(&sink, ok) != 0)
        ok = false;
    if (ok) {
        if (tty && o.referrals)
            fputc('\n', stderr);
        /* with the referrals on standard output, the summary goes to a terminal only */
        if (!sink.nd_stdout || tty)
            report(sink.nd_stdout ? stderr : stdout, &o, kinds, sink.stories);
    } else if (tty && done) {
        fputc('\n', stderr);
    }
    hx_gen_destroy(&gen);
    return ok ? EXIT_OK : EXIT_FAIL;
}
