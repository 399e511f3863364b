/* cli_top — the broker overview screen (see cli_top.h). */
#include "cli_top.h"
#include "cli_fmt.h"
#include "cli_table.h"

#include <stdbool.h>
#include <string.h>

static uint64_t u(const json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

static int need(const json_t *o, const char *where, const char *key, int array, char *err, size_t cap)
{
    json_t *v = json_object_get(o, key);
    if (array ? json_is_array(v) : (json_is_integer(v) && json_integer_value(v) >= 0))
        return 0;
    snprintf(err, cap, "stats: %s%s%s: %s", where, where[0] ? "." : "", key,
             v ? (array ? "must be an array" : "must be a whole number >= 0") : "missing");
    return -1;
}

int cli_top_check(const json_t *s, char *err, size_t cap)
{
    if (!json_is_object(s)) {
        snprintf(err, cap, "stats: not a JSON object");
        return -1;
    }
    /* "scope": "own" — a clinic's view: its own mailbox, none of the network's counters */
    bool own = json_is_string(json_object_get(s, "scope")) &&
               strcmp(json_string_value(json_object_get(s, "scope")), "own") == 0;
    if (need(s, "", "uptime_ms", 0, err, cap) || need(s, "", "queues", 1, err, cap) ||
        need(s, "", "mailboxes", 1, err, cap) || (!own && need(s, "", "dlq", 0, err, cap)))
        return -1;
    static const char *const totals[] = {"accepted", "delivered", "acked", "redelivered", "dead_lettered", "refused"};
    json_t *t = json_object_get(s, "totals");
    if (own) {
    } else if (!json_is_object(t)) {
        snprintf(err, cap, "stats: totals: %s", t ? "must be an object" : "missing");
        return -1;
    }
    for (size_t i = 0; !own && i < sizeof totals / sizeof *totals; i++)
        if (need(t, "totals", totals[i], 0, err, cap))
            return -1;
    static const char *const qk[] = {"depth", "inflight", "bytes", "oldest_age_ms", "workers"};
    size_t i;
    json_t *q;
    json_array_foreach(json_object_get(s, "queues"), i, q) {
        char where[32];
        snprintf(where, sizeof where, "queues[%zu]", i);
        if (!json_is_string(json_object_get(q, "name"))) {
            snprintf(err, cap, "stats: %s.name: must be a string", where);
            return -1;
        }
        for (size_t k = 0; k < sizeof qk / sizeof *qk; k++)
            if (need(q, where, qk[k], 0, err, cap))
                return -1;
    }
    json_array_foreach(json_object_get(s, "mailboxes"), i, q) {
        char where[32];
        snprintf(where, sizeof where, "mailboxes[%zu]", i);
        if (!json_is_string(json_object_get(q, "name"))) {
            snprintf(err, cap, "stats: %s.name: must be a string", where);
            return -1;
        }
        if (need(q, where, "depth", 0, err, cap) || need(q, where, "bytes", 0, err, cap))
            return -1;
    }
    return 0;
}

/* The per-second change of a counter between samples, or -1 when there is no earlier one. */
static double rate(const json_t *cur, const json_t *prev, const char *key, uint64_t dt_ms)
{
    if (!prev || !dt_ms)
        return -1;
    uint64_t a = u(cur, key), b = u(prev, key);
    return a >= b ? (double)(a - b) * 1000.0 / (double)dt_ms : 0;   /* a restarted broker counts from 0 */
}

static const char *rate_text(double r, char out[CLI_FMT_LEN])
{
    if (r < 0)
        return strcpy(out, "-");
    return cli_rate(r, out);
}

/* The element of array a named name, or NULL. */
static const json_t *named(const json_t *a, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        const char *n = json_string_value(json_object_get(v, "name"));
        if (n && strcmp(n, name) == 0)
            return v;
    }
    return NULL;
}

/* "+3.5" / "-1.0" / "0": how fast depth grows (queues carry no in/out counters of their own). */
static const char *net_text(const json_t *q, const json_t *prev_arr, uint64_t dt_ms, char out[CLI_FMT_LEN])
{
    const json_t *p = prev_arr && dt_ms ? named(prev_arr, json_string_value(json_object_get(q, "name"))) : NULL;
    if (!p)
        return strcpy(out, "-");
    double d = ((double)u(q, "depth") - (double)u(p, "depth")) * 1000.0 / (double)dt_ms;
    char r[CLI_FMT_LEN - 2];
    if (d > -0.05 && d < 0.05)
        return strcpy(out, "0");
    char full[CLI_FMT_LEN];
    snprintf(r, sizeof r, "%s", cli_rate(d < 0 ? -d : d, full));
    snprintf(out, CLI_FMT_LEN, "%c%s", d < 0 ? '-' : '+', r);
    return out;
}

/* Messages per second into or out of one queue: its counter (key "in" or "out") against the
 * same queue in the previous sample; "-" with no previous sample. */
static const char *flow_text(const json_t *q, const json_t *prev_arr, const char *key, uint64_t dt_ms,
                             char out[CLI_FMT_LEN])
{
    const json_t *p = prev_arr && dt_ms ? named(prev_arr, json_string_value(json_object_get(q, "name"))) : NULL;
    return rate_text(p ? rate(q, p, key, dt_ms) : -1, out);
}

void cli_top_render(FILE *out, const char *broker, const json_t *cur, uint64_t cur_ms, const json_t *prev,
                    uint64_t dt_ms)
{
    char a[CLI_FMT_LEN], b[CLI_FMT_LEN], c[CLI_FMT_LEN], d[CLI_FMT_LEN], e[CLI_FMT_LEN], f[CLI_FMT_LEN];
    const json_t *t = json_object_get(cur, "totals"), *pt = prev ? json_object_get(prev, "totals") : NULL;
    const json_t *peers = json_object_get(cur, "peers"), *store = json_object_get(cur, "store");
    const json_t *pstore = prev ? json_object_get(prev, "store") : NULL;
    char every[CLI_FMT_LEN + 16] = "";
    if (prev && dt_ms)
        snprintf(every, sizeof every, ", rates over %s", cli_duration(dt_ms, f));
    fprintf(out, "handoff top  broker %s  up %s  %s%s\n", broker, cli_duration(u(cur, "uptime_ms"), a),
            cli_time_abs(cur_ms, b), every);
    fprintf(out, "\n");
    if (!t) {                                   /* a clinic's own view */
        fprintf(out, "(this session's own mailbox only: the network's counters need an admin session, --admin)\n");
        goto tables;
    }
    fprintf(out, "rates/s   in %s  delivered %s  out (acked) %s  redelivered %s  dead-lettered %s  refused %s\n",
            rate_text(rate(t, pt, "accepted", dt_ms), a), rate_text(rate(t, pt, "delivered", dt_ms), b),
            rate_text(rate(t, pt, "acked", dt_ms), c), rate_text(rate(t, pt, "redelivered", dt_ms), d),
            rate_text(rate(t, pt, "dead_lettered", dt_ms), e), rate_text(rate(t, pt, "refused", dt_ms), f));
    fprintf(out, "totals    accepted %llu  delivered %llu  acked %llu  redelivered %llu  dead-lettered %llu  "
                 "refused %llu\n",
            (unsigned long long)u(t, "accepted"), (unsigned long long)u(t, "delivered"),
            (unsigned long long)u(t, "acked"), (unsigned long long)u(t, "redelivered"),
            (unsigned long long)u(t, "dead_lettered"), (unsigned long long)u(t, "refused"));
    fprintf(out, "peers     clinics %llu  workers %llu  admins %llu\n", (unsigned long long)u(peers, "clinic"),
            (unsigned long long)u(peers, "worker"), (unsigned long long)u(peers, "admin"));
    if (store)
        fprintf(out, "store     %s on disk  fsyncs %llu (%s/s)\n", cli_bytes(u(store, "bytes_on_disk"), a),
                (unsigned long long)u(store, "fsyncs"), rate_text(rate(store, pstore, "fsyncs", dt_ms), b));
    fprintf(out, "dlq       %llu dead letter(s)%s\n", (unsigned long long)u(cur, "dlq"),
            u(cur, "dlq") ? "  (handoff dlq list)" : "");

tables:;
    const json_t *qs = json_object_get(cur, "queues"), *ms = json_object_get(cur, "mailboxes");
    const json_t *pq = prev ? json_object_get(prev, "queues") : NULL, *pm = prev ? json_object_get(prev, "mailboxes") : NULL;
    uint64_t depth = 0, inflight = 0, bytes = 0, workers = 0;
    static const char *const qh[] = {"QUEUE", "DEPTH", "IN FLIGHT", "WORKERS", "OLDEST", "BYTES", "IN/s", "OUT/s",
                                     "NET/s"};
    cli_table_t *tq = cli_table_new(9, qh, "lrrrrrrrr");
    size_t i;
    json_t *q;
    json_array_foreach(qs, i, q) {
        char dep[24], inf[24], wk[24];
        snprintf(dep, sizeof dep, "%llu", (unsigned long long)u(q, "depth"));
        snprintf(inf, sizeof inf, "%llu", (unsigned long long)u(q, "inflight"));
        snprintf(wk, sizeof wk, "%llu", (unsigned long long)u(q, "workers"));
        depth += u(q, "depth");
        inflight += u(q, "inflight");
        bytes += u(q, "bytes");
        workers += u(q, "workers");
        const char *row[] = {json_string_value(json_object_get(q, "name")), dep, inf, wk,
                             u(q, "depth") ? cli_duration(u(q, "oldest_age_ms"), a) : "-", cli_bytes(u(q, "bytes"), b),
                             flow_text(q, pq, "in", dt_ms, d), flow_text(q, pq, "out", dt_ms, e),
                             net_text(q, pq, dt_ms, c)};
        if (tq)
            cli_table_add(tq, row);
    }
    if (tq) {
        char dep[24], inf[24], wk[24];
        snprintf(dep, sizeof dep, "%llu", (unsigned long long)depth);
        snprintf(inf, sizeof inf, "%llu", (unsigned long long)inflight);
        snprintf(wk, sizeof wk, "%llu", (unsigned long long)workers);
        const char *row[] = {"(all queues)", dep, inf, wk, "", cli_bytes(bytes, b), "", "", ""};
        cli_table_add(tq, row);
        fputc('\n', out);
        cli_table_print(tq, out);
        cli_table_destroy(&tq);
    }
    static const char *const mh[] = {"MAILBOX", "DEPTH", "BYTES", "IN/s", "OUT/s", "NET/s"};
    cli_table_t *tm = cli_table_new(6, mh, "lrrrrr");
    size_t waiting = 0;
    json_array_foreach(ms, i, q) {
        char dep[24];
        snprintf(dep, sizeof dep, "%llu", (unsigned long long)u(q, "depth"));
        waiting += u(q, "depth");
        const char *row[] = {json_string_value(json_object_get(q, "name")), dep, cli_bytes(u(q, "bytes"), b),
                             flow_text(q, pm, "in", dt_ms, d), flow_text(q, pm, "out", dt_ms, e),
                             net_text(q, pm, dt_ms, c)};
        if (tm)
            cli_table_add(tm, row);
    }
    if (tm) {
        fputc('\n', out);
        if (cli_table_rows(tm))
            cli_table_print(tm, out);
        fprintf(out, "%zu mailbox(es), %zu message(s) waiting for their clinic\n", json_array_size(ms), waiting);
        cli_table_destroy(&tm);
    }
}
