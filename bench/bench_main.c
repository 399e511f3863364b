/* handoff-bench — measures a real handoff-broker (and, in pipeline mode, the real services)
 * on 127.0.0.1: durable submit throughput and ack latency, delivery, latency at a fixed
 * offered rate, end-to-end referrals, and restart recovery. Thin: the option table, the
 * checks it cannot express, and dispatch. */
#include "bench.h"
#include "hx_opt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_head[] =
    "usage: handoff-bench [options]\n"
    "\n"
    "Benchmarks Handoff against a real handoff-broker that it starts itself on 127.0.0.1 (a\n"
    "free port) with a durable log (--data) in a fresh temporary directory, which it removes\n"
    "afterwards; it stops every process it started, also on failure or Ctrl-C. The broker\n"
    "answers \"accepted\" only after its group-commit fdatasync, as in production. Every mode\n"
    "checks each id as it goes and reports lost and duplicated counts.\n"
    "\n"
    "modes (--mode, comma-separated; default: all, in this order):\n"
    "  submit    P producers (one session each), W requests outstanding each, S-byte\n"
    "            messages: durable submit->ack throughput and ack latency percentiles\n"
    "  deliver   fills a mailbox with N messages, then W sessions fetch and ack them:\n"
    "            throughput; every id must come back exactly once\n"
    "  pipeline  generated referrals (hx_gen network) through the real handoff-intake,\n"
    "            handoff-triage and handoff-scheduling to the receiving clinics' mailboxes:\n"
    "            referrals/s with --window in flight, then a fixed --rate for --duration-s:\n"
    "            submit->handoff-fetched latency; every bookable referral must be booked\n"
    "  latency   open loop: submits at a fixed --rate, latency measured from each one's\n"
    "            scheduled send time (no coordinated omission)\n"
    "  recovery  queues --count messages, stops the broker (SIGTERM), starts it again:\n"
    "            time until ready, RSS per queued message; then drains and checks all\n"
    "  latency-curve (not in all)\n"
    "            the closed-loop maximum (--producers, --window, --duration-s), then\n"
    "            open-loop runs at 10, 25, 50, 75 and 90 % of it: p50, p99, p99.9 at each\n"
    "\n"
    "options (defaults per mode: quick | with --full):\n";

static const char usage_tail[] =
    "\n"
    "output: per mode a table and one JSON line on stdout, e.g.\n"
    "  {\"mode\":\"submit\",\"msgs_per_s\":161000,\"p50_us\":310,\"p99_us\":1200,\"lost\":0,\"duplicated\":0,...}\n"
    "exit status: 0 every mode checked out; 1 a mode lost or doubled something or failed;\n"
    "2 a bad option.\n"
    "\n"
    "examples:\n"
    "  handoff-bench --mode submit --producers 4 --window 64 --size 1024 --count 1000000\n"
    "  handoff-bench --mode latency --rate 50000 --duration-s 10\n"
    "  handoff-bench --mode pipeline --count 0 --rate 1000 --duration-s 20\n"
    "  handoff-bench --mode recovery --count 1000000 --size 1024\n"
    "  handoff-bench --mode submit --curve\n";

#define STR(x) STR_(x)
#define STR_(x) #x
#define MAX_SIZE 900000                         /* payload bytes: a SUBMIT stays under the 1 MiB frame */
#define MAX_COUNT 100000000

/* The options. Where a default depends on the mode (and on --full) the table has none and
 * the help names them; for_mode fills them in. What the table cannot say (the mode list,
 * the decimal numbers, empty paths, checks across flags) is checked after it. */
enum { O_MODE, O_PRODUCERS, O_WINDOW, O_SIZE, O_BATCH, O_COUNT, O_DURATION, O_RATE, O_WORKERS, O_CLINICS,
       O_THERAPISTS, O_SEED, O_STORE, O_CURVE, O_FULL, O_JSON, O_BUILD, O_SOURCE, O_TMP, O_KEEP, O_PREFIX, O_SVC_PREFIX, O_ATTACH,
       O_CLUSTER, O_N };
static const hx_opt_t options[O_N] = {
    [O_MODE] = {"mode", HX_OPT_TEXT, NULL, "all", 0, 0, "LIST",
                "submit, deliver, pipeline, latency, recovery or all; several\n"
                "comma-separated, run in that order"},
    [O_PRODUCERS] = {"producers", HX_OPT_U32, NULL, NULL, 1, 256, "N",
                     "submit/latency: producer threads, 1 to 256 [submit 4, latency 2]"},
    [O_WINDOW] = {"window", HX_OPT_U32, NULL, NULL, 1, 100000, "N",
                  "submit: SUBMITs outstanding per producer; pipeline: referrals in\n"
                  "flight; 1 to 100000 [submit 64, pipeline 200]"},
    [O_SIZE] = {"size", HX_OPT_U32, NULL, "1024", 0, MAX_SIZE, "BYTES", "message payload, 0 to " STR(MAX_SIZE)},
    [O_BATCH] = {"batch", HX_OPT_U32, NULL, NULL, 1, HX_MAX_BATCH, "N",
                 "messages per SUBMIT (submit, latency) or per FETCH/ACK (deliver,\n"
                 "recovery), 1 to " STR(HX_MAX_BATCH) " [submit, latency 1; deliver 100,\n"
                 "recovery 1000]"},
    [O_COUNT] = {"count", HX_OPT_U64, NULL, NULL, 0, MAX_COUNT, "N",
                 "messages (submit, deliver, recovery, latency) or referrals\n"
                 "(pipeline's windowed run; 0 skips it), 0 to " STR(MAX_COUNT) "\n"
                 "[submit/deliver/recovery 20000 | 1000000; latency --rate x\n"
                 "--duration-s; pipeline 500 | 20000]"},
    [O_DURATION] = {"duration-s", HX_OPT_TEXT, NULL, NULL, 0, 0, "S",
                    "submit: send for S seconds instead of --count; latency and\n"
                    "pipeline's fixed-rate run: how long, 0.1 to 3600 [2 | 10]"},
    [O_RATE] = {"rate", HX_OPT_TEXT, NULL, NULL, 0, 0, "R",
                "latency: offered messages/s [50000]; pipeline: offered\n"
                "referrals/s [100 | 1000]; 1 to 10000000"},
    [O_WORKERS] = {"workers", HX_OPT_U32, NULL, NULL, 1, 64, "N",
                   "deliver/recovery: fetching sessions, 1 to 64 [deliver 4, recovery 2]"},
    [O_CLINICS] = {"clinics", HX_OPT_U32, NULL, "40", 1, 1000, "N",
                   "pipeline: clinics in the generated network, 1 to 1000"},
    [O_THERAPISTS] = {"therapists", HX_OPT_U32, NULL, NULL, 1, 10000, "N",
                      "pipeline: therapists, --clinics to 10000 [10 x clinics]"},
    [O_SEED] = {"seed", HX_OPT_U64, NULL, "1", 0, UINT64_MAX, "N", "pipeline: generator seed"},
    [O_STORE] = {"store", HX_OPT_TEXT, NULL, "sqlite", 0, 0, "KIND",
                 "pipeline: intake's and scheduling's stores on sqlite (files in\nthe run's directory) or "
                 "postgres (a PostgreSQL server of\nDebian's package started for the run on 127.0.0.1, removed "
                 "after)"},
    [O_CLUSTER] = {"cluster", HX_OPT_U32, NULL, "0", 0, 7, "N",
                   "submit, latency, deliver: run again on a replicated broker of N nodes\n"
                   "(--cluster, on Raft), the producers on its leader, and report the\n"
                   "replicated rate as a share of the single broker's; 0: not"},
    [O_CURVE] = {"curve", HX_OPT_FLAG, NULL, NULL, 0, 0, NULL,
                 "CURVE on: keys made with the project's key code, the broker\n"
                 "started with --curve-secret and --allow"},
    /* BENCH_FULL is read by main: hx_opt reads the environment for valued options only */
    [O_FULL] = {"full", HX_OPT_FLAG, NULL, NULL, 0, 0, NULL,
                "the big runs (also BENCH_FULL=1, any value but empty or 0): 1M\n"
                "messages for submit, deliver and recovery, 20000 referrals, 10 s\n"
                "latency runs"},
    [O_JSON] = {"json-only", HX_OPT_FLAG, NULL, NULL, 0, 0, NULL,
                "only the JSON lines on stdout (no table, no progress)"},
    [O_BUILD] = {"build-dir", HX_OPT_TEXT, NULL, NULL, 0, 0, "DIR",
                 "the CMake build directory holding broker/handoff-broker and\n"
                 "services/ [the parent of this program's directory]"},
    [O_SOURCE] = {"source-dir", HX_OPT_TEXT, NULL, HX_BENCH_SOURCE_DIR, 0, 0, "DIR",
                  "the source tree (triage rules)"},
    [O_TMP] = {"tmp", HX_OPT_TEXT, "TMPDIR", "/tmp", 0, 0, "DIR", "where the temporary directory goes"},
    [O_KEEP] = {"keep", HX_OPT_FLAG, NULL, NULL, 0, 0, NULL,
                "keep the temporary directory (logs, data) and say where"},
    [O_PREFIX] = {"broker-prefix", HX_OPT_TEXT, NULL, NULL, 0, 0, "CMD",
                  "profiling: run the broker under CMD (split on spaces), e.g.\n"
                  "\"valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out\""},
    [O_SVC_PREFIX] = {"service-prefix", HX_OPT_TEXT, NULL, NULL, 0, 0, "NAME=CMD",
                      "profiling, pipeline: run the service NAME (intake, triage or\n"
                      "scheduling) under CMD, e.g. \"scheduling=valgrind --tool=callgrind\""},
    [O_ATTACH] = {"attach", HX_OPT_TEXT, NULL, NULL, 0, 0, "CMD",
                  "profiling: run CMD during the measured phase of submit, deliver\n"
                  "and pipeline (its windowed run), then SIGINT it; {pid} is the\n"
                  "broker's pid, {pids} every started process's, comma-separated,\n"
                  "e.g. \"strace -c -f -o /tmp/sc.txt -p {pid}\""},
};

static const char *const mode_names[MODE_COUNT] = {"submit", "deliver", "pipeline", "latency", "recovery",
                                                   "latency-curve"};

/* "<prog>: --flag: <why>, got '<value>'", as hx_opt says it; returns -1 */
static int bad(int opt, const char *why, const char *value)
{
    fprintf(stderr, "%s: --%s: %s, got '%.60s'\n", BENCH_PROG, options[opt].name, why, value);
    return -1;
}

/* A decimal number in [min, max] (the table has no kind for one). */
static int parse_num(int opt, const char *v, double min, double max, double *out)
{
    char why[96];
    snprintf(why, sizeof why, "must be a number from %.10g to %.10g", min, max);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x) || x < min || x > max)
        return bad(opt, why, v);
    *out = x;
    return 0;
}

static int parse_modes(const char *v, bool modes[MODE_COUNT])
{
    memset(modes, 0, MODE_COUNT * sizeof *modes);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    char *save = NULL;
    int n = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "all") == 0) {
            for (int m = 0; m < MODE_COUNT; m++)
                modes[m] = m != MODE_LATENCY_CURVE;     /* six runs: asked for by name */
            n++;
            continue;
        }
        int m;
        for (m = 0; m < MODE_COUNT && strcmp(t, mode_names[m]) != 0; m++)
            ;
        if (m == MODE_COUNT)
            return bad(O_MODE, "must be submit, deliver, pipeline, latency, recovery, latency-curve or all "
                            "(comma-separated)", t);
        modes[m] = true;
        n++;
    }
    if (n == 0)
        return bad(O_MODE, "must name at least one mode", v);
    return 0;
}

/* What the command line said: the values, and which were given (the others take the
 * mode's defaults). */
typedef struct {
    bench_opts_t o;
    hx_opt_val_t v[O_N];
} given_t;

/* Whether BENCH_FULL asks for the big runs: set, and neither empty nor "0". */
static bool full_from_env(void)
{
    const char *e = getenv("BENCH_FULL");
    return e && *e && strcmp(e, "0") != 0;
}

/* Parses argv into g: the table, then what it cannot say about single options. Returns 0;
 * 1 after printing the help; 2 after saying what is wrong. */
static int read_options(int argc, char **argv, given_t *g)
{
    memset(g, 0, sizeof *g);
    int rc = hx_opt_parse(BENCH_PROG, options, O_N, argc, argv, usage_head, usage_tail, g->v);
    if (rc)
        return rc;
    const hx_opt_val_t *v = g->v;
    bench_opts_t *o = &g->o;
    *o = (bench_opts_t){.producers = v[O_PRODUCERS].u32, .window = v[O_WINDOW].u32, .size = v[O_SIZE].u32,
                        .count = v[O_COUNT].u64, .workers = v[O_WORKERS].u32, .batch = v[O_BATCH].u32,
                        .curve = v[O_CURVE].on, .json_only = v[O_JSON].on, .keep = v[O_KEEP].on,
                        .cluster = v[O_CLUSTER].u32,
                        .full = v[O_FULL].on || full_from_env(), .build_dir = v[O_BUILD].text,
                        .source_dir = v[O_SOURCE].text, .tmp_base = v[O_TMP].text, .clinics = v[O_CLINICS].u32,
                        .therapists = v[O_THERAPISTS].u32, .seed = v[O_SEED].u64,
                        .broker_prefix = v[O_PREFIX].text, .service_prefix = v[O_SVC_PREFIX].text,
                        .attach = v[O_ATTACH].text};
    if (parse_modes(v[O_MODE].text, o->modes))
        return 2;
    if (strcmp(v[O_STORE].text, "sqlite") != 0 && strcmp(v[O_STORE].text, "postgres") != 0) {
        bad(O_STORE, "must be sqlite or postgres", v[O_STORE].text);
        return 2;
    }
    o->postgres = strcmp(v[O_STORE].text, "postgres") == 0;
    if (v[O_DURATION].text && parse_num(O_DURATION, v[O_DURATION].text, 0.1, 3600, &o->duration_s))
        return 2;
    if (v[O_RATE].text && parse_num(O_RATE, v[O_RATE].text, 1, 1e7, &o->rate))
        return 2;
    const char *sp = v[O_SVC_PREFIX].text, *eq = sp ? strchr(sp, '=') : NULL;
    if (sp && (!eq || !eq[1] ||
               !((eq - sp == 6 && !strncmp(sp, "intake", 6)) || (eq - sp == 6 && !strncmp(sp, "triage", 6)) ||
                 (eq - sp == 10 && !strncmp(sp, "scheduling", 10))))) {
        fprintf(stderr, "%s: --service-prefix: must be NAME=CMD with NAME intake, triage or scheduling, got '%s'\n",
                BENCH_PROG, sp);
        return 2;
    }
    static const int paths[] = {O_BUILD, O_SOURCE, O_TMP, O_PREFIX, O_ATTACH};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (v[paths[i]].given && !*v[paths[i]].text) {
            fprintf(stderr, "%s: --%s: must not be empty\n", BENCH_PROG, options[paths[i]].name);
            return 2;
        }
    return 0;
}

/* The options for one mode: the given ones, the rest from the mode's defaults. */
static bench_opts_t for_mode(const given_t *g, bench_mode_t m)
{
    bench_opts_t o = g->o;
    const hx_opt_val_t *v = g->v;
    bool full = o.full;
    if (!v[O_PRODUCERS].given)
        o.producers = m == MODE_LATENCY || m == MODE_LATENCY_CURVE ? 2 : 4;
    if (!v[O_WINDOW].given)
        o.window = m == MODE_PIPELINE ? 200 : 64;
    if (!v[O_BATCH].given)
        o.batch = m == MODE_DELIVER ? 100 : m == MODE_RECOVERY ? 1000 : 1;
    if (!v[O_WORKERS].given)
        o.workers = m == MODE_RECOVERY ? 2 : 4;
    if (!v[O_COUNT].given) {
        if (m == MODE_PIPELINE)
            o.count = full ? 20000 : 500;
        else if ((m == MODE_SUBMIT && v[O_DURATION].given) || m == MODE_LATENCY)
            o.count = 0;                        /* by time (latency: rate x duration) */
        else
            o.count = full ? 1000000 : 20000;
    }
    if (!v[O_DURATION].given)
        o.duration_s = m == MODE_SUBMIT ? 0 : full ? 10 : 2;
    if (!v[O_RATE].given)
        o.rate = m == MODE_LATENCY ? 50000 : m == MODE_PIPELINE ? (full ? 1000 : 100) : 0;
    if (!v[O_THERAPISTS].given)
        o.therapists = o.clinics * 10 > 10000 ? 10000 : o.clinics * 10;
    return o;
}

/* Checks across flags, for the modes that will run: 0, or 2 after naming the option. */
static int check_modes(const given_t *g)
{
    for (int m = 0; m < MODE_COUNT; m++) {
        if (!g->o.modes[m])
            continue;
        bench_opts_t o = for_mode(g, (bench_mode_t)m);
        if ((m == MODE_SUBMIT || m == MODE_LATENCY || m == MODE_LATENCY_CURVE) && (uint64_t)o.size * o.batch > MAX_SIZE) {
            fprintf(stderr, "%s: --size %u x --batch %u: a SUBMIT must stay under the broker's 1 MiB frame "
                            "(at most " STR(MAX_SIZE) " payload bytes)\n", BENCH_PROG, o.size, o.batch);
            return 2;
        }
        if ((m == MODE_DELIVER || m == MODE_RECOVERY) && o.count == 0) {
            fprintf(stderr, "%s: --count: %s needs at least 1 message\n", BENCH_PROG, mode_names[m]);
            return 2;
        }
        if (m == MODE_SUBMIT && o.count == 0 && !g->v[O_DURATION].given) {
            fprintf(stderr, "%s: --count: submit needs at least 1 message (or --duration-s)\n", BENCH_PROG);
            return 2;
        }
        if (m == MODE_PIPELINE && o.therapists < o.clinics) {
            fprintf(stderr, "%s: --therapists: must be at least --clinics (%u): every clinic has a therapist "
                            "(got %u)\n", BENCH_PROG, o.clinics, o.therapists);
            return 2;
        }
    }
    return 0;
}

static void on_signal(int sig)
{
    if (bench_stop) {                           /* a second one: stop now */
        bench_kill_all();
        _exit(128 + sig);
    }
    bench_stop = 1;
}

/* Runs the chosen modes in order; 1 when one of them failed. */
static int run_modes(const given_t *g)
{
    int failed = 0;
    for (int m = 0; m < MODE_COUNT && !bench_stop; m++) {
        if (!g->o.modes[m])
            continue;
        bench_opts_t o = for_mode(g, (bench_mode_t)m);
        int rc = 0;
        switch ((bench_mode_t)m) {
        case MODE_SUBMIT: rc = bench_mode_submit(&o); break;
        case MODE_DELIVER: rc = bench_mode_deliver(&o); break;
        case MODE_PIPELINE: rc = bench_mode_pipeline(&o); break;
        case MODE_LATENCY: rc = bench_mode_latency(&o); break;
        case MODE_RECOVERY: rc = bench_mode_recovery(&o); break;
        case MODE_LATENCY_CURVE: rc = bench_mode_latency_curve(&o); break;
        case MODE_COUNT: break;
        }
        if (rc) {
            failed = 1;
            fprintf(stderr, "%s: %s: FAILED (lost, duplicated or an error; see above)\n", BENCH_PROG, mode_names[m]);
        }
    }
    return failed;
}

int main(int argc, char **argv)
{
    given_t g;
    int rc = read_options(argc, argv, &g);
    if (rc == 1)
        return 0;                               /* --help */
    if (rc || check_modes(&g))
        return 2;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atexit(bench_kill_all);

    int failed = run_modes(&g);
    bench_zctx_term();
    if (bench_stop) {
        fprintf(stderr, "%s: interrupted; every process it started was stopped\n", BENCH_PROG);
        return 1;
    }
    return failed;
}
