/* handoff-bench — measures a real handoff-broker (and, in pipeline mode, the real services)
 * on 127.0.0.1: durable submit throughput and ack latency, delivery, latency at a fixed
 * offered rate, end-to-end referrals, and restart recovery. Thin: flags and dispatch here. */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
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
    "\n"
    "options (defaults per mode: quick | with --full):\n"
    "  --mode LIST          submit, deliver, pipeline, latency, recovery or all [all]\n"
    "  --producers N        submit/latency: producer threads, 1..256 [submit 4, latency 2]\n"
    "  --window N           submit: SUBMITs outstanding per producer; pipeline: referrals in\n"
    "                       flight; 1..100000 [submit 64, pipeline 200]\n"
    "  --size BYTES         message payload, 0..900000 [1024]\n"
    "  --batch N            messages per SUBMIT (submit, latency) or per FETCH/ACK (deliver,\n"
    "                       recovery), 1..1000 [1 | deliver 100, recovery 1000]\n"
    "  --count N            messages (submit, deliver, recovery) or referrals (pipeline's\n"
    "                       windowed run; 0 skips it), 0..100000000\n"
    "                       [submit/deliver/recovery 20000 | 1000000; pipeline 500 | 20000]\n"
    "  --duration-s S       submit: send for S seconds instead of --count; latency and\n"
    "                       pipeline's fixed-rate run: how long, 0.1..3600 [2 | 10]\n"
    "  --rate R             latency: offered messages/s [50000]; pipeline: offered\n"
    "                       referrals/s [100 | 1000]; 1..10000000\n"
    "  --workers N          deliver/recovery: fetching sessions, 1..64 [deliver 4, recovery 2]\n"
    "  --clinics N          pipeline: clinics in the generated network, 1..1000 [40]\n"
    "  --therapists N       pipeline: therapists, clinics..10000 [10 x clinics]\n"
    "  --seed N             pipeline: generator seed [1]\n"
    "  --curve              CURVE on: keys made with the project's key code, the broker\n"
    "                       started with --curve-secret and --allow\n"
    "  --full               the big runs (also BENCH_FULL=1): 1M messages for submit,\n"
    "                       deliver and recovery, 20000 referrals, 10 s latency runs\n"
    "  --json-only          only the JSON lines on stdout (no table, no progress)\n"
    "  --build-dir DIR      the CMake build directory holding broker/handoff-broker and\n"
    "                       services/ [the parent of this program's directory]\n"
    "  --source-dir DIR     the source tree (triage rules) [" HX_BENCH_SOURCE_DIR "]\n"
    "  --tmp DIR            where the temporary directory goes [$TMPDIR or /tmp]\n"
    "  --keep               keep the temporary directory (logs, data) and say where\n"
    "  --broker-prefix CMD  profiling: run the broker under CMD (split on spaces), e.g.\n"
    "                       \"valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out\"\n"
    "  --attach CMD         profiling: run CMD during the measured phase of submit, deliver\n"
    "                       and pipeline (its windowed run), then SIGINT it; {pid} is the\n"
    "                       broker's pid, {pids} every started process's, comma-separated,\n"
    "                       e.g. \"strace -c -f -o /tmp/sc.txt -p {pid}\"\n"
    "  -h, --help           this text\n"
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

static const char *const mode_names[MODE_COUNT] = {"submit", "deliver", "pipeline", "latency", "recovery"};

static int bad(const char *flag, const char *why, const char *value)
{
    fprintf(stderr, "%s: %s: %s (got \"%.60s\"; see --help)\n", BENCH_PROG, flag, why, value);
    return -1;
}

static int parse_u64(const char *flag, const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    char why[96];
    snprintf(why, sizeof why, "must be an integer from %llu to %llu", (unsigned long long)min,
             (unsigned long long)max);
    if (!*v || strspn(v, "0123456789") != strlen(v))
        return bad(flag, why, v);
    errno = 0;
    unsigned long long x = strtoull(v, NULL, 10);
    if (errno || x < min || x > max)
        return bad(flag, why, v);
    *out = x;
    return 0;
}

static int parse_u32(const char *flag, const char *v, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t x;
    if (parse_u64(flag, v, min, max, &x))
        return -1;
    *out = (uint32_t)x;
    return 0;
}

static int parse_num(const char *flag, const char *v, double min, double max, double *out)
{
    char why[96];
    snprintf(why, sizeof why, "must be a number from %g to %g", min, max);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x) || x < min || x > max)
        return bad(flag, why, v);
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
                modes[m] = true;
            n++;
            continue;
        }
        int m;
        for (m = 0; m < MODE_COUNT && strcmp(t, mode_names[m]) != 0; m++)
            ;
        if (m == MODE_COUNT)
            return bad("--mode", "must be submit, deliver, pipeline, latency, recovery or all (comma-separated)", t);
        modes[m] = true;
        n++;
    }
    if (n == 0)
        return bad("--mode", "must name at least one mode", v);
    return 0;
}

/* What was given on the command line; 0/false = the mode's default. */
typedef struct {
    bench_opts_t o;
    bool producers, window, size, count, duration, rate, workers, batch, clinics, therapists;
} given_t;

/* The options for one mode: the given ones, the rest from the mode's defaults. */
static bench_opts_t for_mode(const given_t *g, bench_mode_t m)
{
    bench_opts_t o = g->o;
    bool full = o.full;
    if (!g->producers)
        o.producers = m == MODE_LATENCY ? 2 : 4;
    if (!g->window)
        o.window = m == MODE_PIPELINE ? 200 : 64;
    if (!g->size)
        o.size = 1024;
    if (!g->batch)
        o.batch = m == MODE_DELIVER ? 100 : m == MODE_RECOVERY ? 1000 : 1;
    if (!g->workers)
        o.workers = m == MODE_RECOVERY ? 2 : 4;
    if (!g->count) {
        if (m == MODE_PIPELINE)
            o.count = full ? 20000 : 500;
        else if ((m == MODE_SUBMIT && g->duration) || m == MODE_LATENCY)
            o.count = 0;                        /* by time (latency: rate x duration) */
        else
            o.count = full ? 1000000 : 20000;
    }
    if (!g->duration)
        o.duration_s = m == MODE_SUBMIT ? 0 : full ? 10 : 2;
    if (!g->rate)
        o.rate = m == MODE_LATENCY ? 50000 : m == MODE_PIPELINE ? (full ? 1000 : 100) : 0;
    if (!g->clinics)
        o.clinics = 40;
    if (!g->therapists)
        o.therapists = o.clinics * 10 > 10000 ? 10000 : o.clinics * 10;
    return o;
}

static void on_signal(int sig)
{
    if (bench_stop) {                           /* a second one: stop now */
        bench_kill_all();
        _exit(128 + sig);
    }
    bench_stop = 1;
}

int main(int argc, char **argv)
{
    enum { O_MODE = 1000, O_PRODUCERS, O_WINDOW, O_SIZE, O_COUNT, O_DURATION, O_RATE, O_WORKERS, O_BATCH, O_CURVE,
           O_JSON, O_FULL, O_BUILD, O_SOURCE, O_TMP, O_KEEP, O_CLINICS, O_THERAPISTS, O_SEED, O_PREFIX,
           O_ATTACH };
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, O_MODE},         {"producers", required_argument, NULL, O_PRODUCERS},
        {"window", required_argument, NULL, O_WINDOW},     {"size", required_argument, NULL, O_SIZE},
        {"count", required_argument, NULL, O_COUNT},       {"duration-s", required_argument, NULL, O_DURATION},
        {"rate", required_argument, NULL, O_RATE},         {"workers", required_argument, NULL, O_WORKERS},
        {"batch", required_argument, NULL, O_BATCH},       {"curve", no_argument, NULL, O_CURVE},
        {"json-only", no_argument, NULL, O_JSON},          {"full", no_argument, NULL, O_FULL},
        {"build-dir", required_argument, NULL, O_BUILD},   {"source-dir", required_argument, NULL, O_SOURCE},
        {"tmp", required_argument, NULL, O_TMP},           {"keep", no_argument, NULL, O_KEEP},
        {"clinics", required_argument, NULL, O_CLINICS},   {"therapists", required_argument, NULL, O_THERAPISTS},
        {"seed", required_argument, NULL, O_SEED},         {"help", no_argument, NULL, 'h'},
        {"broker-prefix", required_argument, NULL, O_PREFIX}, {"attach", required_argument, NULL, O_ATTACH},
        {NULL, 0, NULL, 0}};
    given_t g;
    memset(&g, 0, sizeof g);
    for (int m = 0; m < MODE_COUNT; m++)
        g.o.modes[m] = true;
    g.o.seed = 1;
    const char *full_env = getenv("BENCH_FULL");
    g.o.full = full_env && *full_env && strcmp(full_env, "0") != 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'h': fputs(usage, stdout); return 0;
        case O_MODE: rc = parse_modes(optarg, g.o.modes); break;
        case O_PRODUCERS: rc = parse_u32("--producers", optarg, 1, 256, &g.o.producers), g.producers = true; break;
        case O_WINDOW: rc = parse_u32("--window", optarg, 1, 100000, &g.o.window), g.window = true; break;
        case O_SIZE: rc = parse_u32("--size", optarg, 0, 900000, &g.o.size), g.size = true; break;
        case O_BATCH: rc = parse_u32("--batch", optarg, 1, HX_MAX_BATCH, &g.o.batch), g.batch = true; break;
        case O_COUNT: rc = parse_u64("--count", optarg, 0, 100000000, &g.o.count), g.count = true; break;
        case O_DURATION: rc = parse_num("--duration-s", optarg, 0.1, 3600, &g.o.duration_s), g.duration = true; break;
        case O_RATE: rc = parse_num("--rate", optarg, 1, 1e7, &g.o.rate), g.rate = true; break;
        case O_WORKERS: rc = parse_u32("--workers", optarg, 1, 64, &g.o.workers), g.workers = true; break;
        case O_CLINICS: rc = parse_u32("--clinics", optarg, 1, 1000, &g.o.clinics), g.clinics = true; break;
        case O_THERAPISTS:
            rc = parse_u32("--therapists", optarg, 1, 10000, &g.o.therapists), g.therapists = true;
            break;
        case O_SEED: rc = parse_u64("--seed", optarg, 0, UINT64_MAX, &g.o.seed); break;
        case O_CURVE: g.o.curve = true; break;
        case O_JSON: g.o.json_only = true; break;
        case O_FULL: g.o.full = true; break;
        case O_KEEP: g.o.keep = true; break;
        case O_BUILD:
        case O_SOURCE:
        case O_TMP:
        case O_PREFIX:
        case O_ATTACH:
            if (!*optarg) {
                fprintf(stderr, "%s: %s: must not be empty\n", BENCH_PROG, argv[optind - 1]);
                return 2;
            }
            *(c == O_BUILD    ? &g.o.build_dir
              : c == O_SOURCE ? &g.o.source_dir
              : c == O_TMP    ? &g.o.tmp_base
              : c == O_PREFIX ? &g.o.broker_prefix
                              : &g.o.attach) = optarg;
            break;
        case ':':
            fprintf(stderr, "%s: %s needs a value (see --help)\n", BENCH_PROG, argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "%s: unknown option %s (see --help)\n", BENCH_PROG, argv[optind - 1]);
            return 2;
        }
        if (rc)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%.60s\" (options only; see --help)\n", BENCH_PROG, argv[optind]);
        return 2;
    }
    /* checks across flags, for the modes that will run */
    for (int m = 0; m < MODE_COUNT; m++) {
        if (!g.o.modes[m])
            continue;
        bench_opts_t o = for_mode(&g, (bench_mode_t)m);
        if ((m == MODE_SUBMIT || m == MODE_LATENCY) && (uint64_t)o.size * o.batch > 900000) {
            fprintf(stderr, "%s: --size %u x --batch %u: a SUBMIT must stay under the broker's 1 MiB frame "
                            "(at most 900000 payload bytes)\n", BENCH_PROG, o.size, o.batch);
            return 2;
        }
        if ((m == MODE_DELIVER || m == MODE_RECOVERY) && o.count == 0) {
            fprintf(stderr, "%s: --count: %s needs at least 1 message\n", BENCH_PROG, mode_names[m]);
            return 2;
        }
        if (m == MODE_SUBMIT && o.count == 0 && !g.duration) {
            fprintf(stderr, "%s: --count: submit needs at least 1 message (or --duration-s)\n", BENCH_PROG);
            return 2;
        }
        if (m == MODE_PIPELINE && o.therapists < o.clinics) {
            fprintf(stderr, "%s: --therapists: must be at least --clinics (%u): every clinic has a therapist "
                            "(got %u)\n", BENCH_PROG, o.clinics, o.therapists);
            return 2;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atexit(bench_kill_all);

    int failed = 0;
    for (int m = 0; m < MODE_COUNT && !bench_stop; m++) {
        if (!g.o.modes[m])
            continue;
        bench_opts_t o = for_mode(&g, (bench_mode_t)m);
        int rc = 0;
        switch ((bench_mode_t)m) {
        case MODE_SUBMIT: rc = bench_mode_submit(&o); break;
        case MODE_DELIVER: rc = bench_mode_deliver(&o); break;
        case MODE_PIPELINE: rc = bench_mode_pipeline(&o); break;
        case MODE_LATENCY: rc = bench_mode_latency(&o); break;
        case MODE_RECOVERY: rc = bench_mode_recovery(&o); break;
        case MODE_COUNT: break;
        }
        if (rc) {
            failed = 1;
            fprintf(stderr, "%s: %s: FAILED (lost, duplicated or an error; see above)\n", BENCH_PROG, mode_names[m]);
        }
    }
    bench_zctx_term();
    if (bench_stop) {
        fprintf(stderr, "%s: interrupted; every process it started was stopped\n", BENCH_PROG);
        return 1;
    }
    return failed;
}
