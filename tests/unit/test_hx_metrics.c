/* Unit: hx_metrics (registry, text format 0.0.4), the router's "stats" JSON, and JSON log
 * lines from hx_log. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_log.h"
#include "hx_metrics.h"
#include "hx_router.h"
#include "hx_store.h"

static char *text_of(const hx_buf_t *b)
{
    char *s = malloc(b->len + 1);
    cr_assert_not_null(s);
    memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    return s;
}

static char *render(const hx_metrics_t *m)
{
    hx_buf_t b = {0};
    cr_assert_eq(hx_metrics_render(m, &b), 0);
    char *s = text_of(&b);
    hx_buf_free(&b);
    return s;
}

Test(hx_metrics, renders_counters_gauges_histograms)
{
    hx_metrics_t *m = hx_metrics_new();
    hx_metric_t *ok = hx_metrics_counter(m, "x_messages_total", "Messages.", "result", "ok");
    hx_metric_t *bad = hx_metrics_counter(m, "x_messages_total", "Messages.", "result", "failed");
    hx_metric_t *g = hx_metrics_gauge(m, "x_connected", "Connected.", NULL, NULL);
    static const uint64_t bounds[] = {1000, 5000};
    hx_metric_t *h = hx_metrics_histogram(m, "x_seconds", "Latency.", "service", "intake", bounds, 2, 1e4);
    cr_assert(ok && bad && g && h);
    hx_metric_add(ok, 3);
    hx_metric_add(bad, 1);
    hx_metric_set(g, 1);
    hx_metric_observe(h, 1000);                 /* on the bound: in that bucket (le is <=) */
    hx_metric_observe(h, 1001);
    hx_metric_observe(h, 9000);
    char *s = render(m);
    cr_expect_str_eq(s, "# HELP x_messages_total Messages.\n"
                        "# TYPE x_messages_total counter\n"
                        "x_messages_total{result=\"ok\"} 3\n"
                        "x_messages_total{result=\"failed\"} 1\n"
                        "# HELP x_connected Connected.\n"
                        "# TYPE x_connected gauge\n"
                        "x_connected 1\n"
                        "# HELP x_seconds Latency.\n"
                        "# TYPE x_seconds histogram\n"
                        "x_seconds_bucket{service=\"intake\",le=\"0.1\"} 1\n"
                        "x_seconds_bucket{service=\"intake\",le=\"0.5\"} 2\n"
                        "x_seconds_bucket{service=\"intake\",le=\"+Inf\"} 3\n"
                        "x_seconds_sum{service=\"intake\"} 1.1001\n"
                        "x_seconds_count{service=\"intake\"} 3\n");
    cr_expect_eq(hx_metric_value(h), 3);
    cr_expect_eq(hx_metric_value(ok), 3);
    free(s);
    hx_metrics_destroy(&m);
    cr_expect_null(m);
}

Test(hx_metrics, registration_rules)
{
    hx_metrics_t *m = hx_metrics_new();
    hx_metric_t *a = hx_metrics_counter(m, "a_total", "A.", "k", "v");
    cr_assert_not_null(a);
    cr_expect_eq(hx_metrics_counter(m, "a_total", "A.", "k", "v"), a, "the same series again");
    cr_expect_null(hx_metrics_counter(m, "a", "A.", NULL, NULL), "a counter ends in _total");
    cr_expect_null(hx_metrics_gauge(m, "g_total", "G.", NULL, NULL), "only counters end in _total");
    cr_expect_null(hx_metrics_gauge(m, "a_total", "A.", "k", "w"), "one family, one type");
    cr_expect_null(hx_metrics_counter(m, "a_total", "Other help.", "k", "w"), "one family, one help");
    cr_expect_null(hx_metrics_counter(m, "a_total", "A.", "other", "v"), "one family, one label name");
    cr_expect_null(hx_metrics_counter(m, "a_total", "A.", NULL, NULL), "labelled family, unlabelled series");
    cr_expect_null(hx_metrics_counter(m, "1bad_total", "B.", NULL, NULL));
    cr_expect_null(hx_metrics_counter(m, "b-c_total", "B.", NULL, NULL));
    cr_expect_null(hx_metrics_counter(m, "b_total", "B.", "le", "1"), "le is the histogram's");
    cr_expect_null(hx_metrics_counter(m, "b_total", "B.", "a:b", "1"), "no colon in a label name");
    cr_expect_null(hx_metrics_counter(m, "b_total", "B.", "k", NULL));
    static const uint64_t up[] = {1, 2}, down[] = {2, 1};
    cr_expect_null(hx_metrics_histogram(m, "h", "H.", NULL, NULL, down, 2, 1), "bounds ascend");
    cr_expect_null(hx_metrics_histogram(m, "h", "H.", NULL, NULL, up, 0, 1));
    cr_expect_null(hx_metrics_histogram(m, "h", "H.", NULL, NULL, up, 2, 0));
    cr_expect_not_null(hx_metrics_histogram(m, "h", "H.", NULL, NULL, up, 2, 1));
    cr_expect_null(hx_metrics_histogram(m, "h", "H.", NULL, NULL, up, 1, 1), "the same bounds");
    cr_expect(hx_metrics_name_valid("ns:sub_name", 0));
    cr_expect(!hx_metrics_name_valid("", 0));
    hx_metric_add(NULL, 1);                     /* harmless */
    hx_metric_observe(a, 1);                    /* not a histogram: ignored */
    cr_expect_eq(hx_metric_value(a), 0);
    hx_metrics_destroy(&m);
}

Test(hx_metrics, escapes_help_and_label_values)
{
    hx_metrics_t *m = hx_metrics_new();
    hx_metric_t *c = hx_metrics_counter(m, "e_total", "Back\\slash\nnewline \"quoted\".", "name", "a\"b\\c\nd");
    cr_assert_not_null(c);
    char *s = render(m);
    cr_expect_str_eq(s, "# HELP e_total Back\\\\slash\\nnewline \"quoted\".\n"
                        "# TYPE e_total counter\n"
                        "e_total{name=\"a\\\"b\\\\c\\nd\"} 0\n");
    free(s);
    hx_metrics_destroy(&m);
}

Test(hx_metrics, scrape_time_helpers)
{
    hx_buf_t b = {0};
    cr_assert_eq(hx_metrics_write_family(&b, "q_depth", HX_METRIC_GAUGE, "Depth."), 0);
    cr_assert_eq(hx_metrics_write_u64(&b, "q_depth", "queue", "intake", 18446744073709551615ull), 0);
    cr_assert_eq(hx_metrics_write_f64(&b, "q_age", "queue", "intake", 1.5), 0);
    cr_assert_eq(hx_metrics_write_f64(&b, "q_age", NULL, NULL, 1.0 / 0.0), 0);
    cr_assert_eq(hx_metrics_write_f64(&b, "q_age", NULL, NULL, 0.0 / 0.0), 0);
    char *s = text_of(&b);
    cr_expect_str_eq(s, "# HELP q_depth Depth.\n# TYPE q_depth gauge\n"
                        "q_depth{queue=\"intake\"} 18446744073709551615\n"
                        "q_age{queue=\"intake\"} 1.5\nq_age +Inf\nq_age NaN\n");
    free(s);
    hx_buf_free(&b);
}

static hx_metric_t *shared_counter, *shared_hist;

static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        hx_metric_add(shared_counter, 1);
        hx_metric_observe(shared_hist, (uint64_t)(i % 3));
    }
    return NULL;
}

/* Updates from several threads while another renders: nothing is lost, no lock needed. */
Test(hx_metrics, concurrent_updates)
{
    hx_metrics_t *m = hx_metrics_new();
    static const uint64_t bounds[] = {0, 1};
    shared_counter = hx_metrics_counter(m, "c_total", "C.", NULL, NULL);
    shared_hist = hx_metrics_histogram(m, "c_units", "C.", NULL, NULL, bounds, 2, 1);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, adder, NULL), 0);
    for (int i = 0; i < 20; i++)
        free(render(m));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_expect_eq(hx_metric_value(shared_counter), 400000);
    cr_expect_eq(hx_metric_value(shared_hist), 400000);
    char *s = render(m);
    cr_expect(strstr(s, "c_units_sum 399996\n") != NULL, "%s", s);  /* 4 x (33333 x (0+1+2) + 0) */
    free(s);
    hx_metrics_destroy(&m);
}

/* ---- the router's "stats" JSON ------------------------------------------------------------- */

static int drop(void *arg, const uint8_t *peer, size_t peer_len, const uint8_t *frame, size_t len)
{
    (void)arg, (void)peer, (void)peer_len, (void)frame, (void)len;
    return 0;
}

static void frame(hx_router_t *r, const char *peer, Handoff__Envelope *env)
{
    hx_buf_t b = {0};
    cr_assert_eq(hx_wire_pack(env, &b), 0);
    hx_router_on_frame(r, (const uint8_t *)peer, strlen(peer), b.data, b.len, 1);
    hx_buf_free(&b);
}

Test(hx_metrics, router_stats_json)
{
    hx_store_t *s = hx_store_memory_new();
    hx_router_config_t cfg = {.send = drop, .store = s};
    hx_router_t *r = hx_router_new(&cfg);
    cr_assert_not_null(r);
    Handoff__Envelope hello;
    handoff__envelope__init(&hello);
    hello.version = HX_PROTOCOL_VERSION;
    hello.kind = HANDOFF__KIND__KIND_HELLO;
    hello.role = HANDOFF__ROLE__ROLE_CLINIC;
    hello.name = "clinic-a";
    frame(r, "p1", &hello);
    Handoff__Address to = HANDOFF__ADDRESS__INIT;
    to.kind = HANDOFF__ADDRESS_KIND__ADDRESS_SERVICE;
    to.name = "intake";
    uint8_t id[HX_ID_LEN], req[HX_ID_LEN];
    hx_id_random(id);
    hx_id_random(req);
    Handoff__Message msg = HANDOFF__MESSAGE__INIT, *mp = &msg;
    msg.id = (ProtobufCBinaryData){HX_ID_LEN, id};
    msg.to = &to;
    msg.type = "handoff.Referral";
    Handoff__Envelope sub;
    handoff__envelope__init(&sub);
    sub.version = HX_PROTOCOL_VERSION;
    sub.kind = HANDOFF__KIND__KIND_SUBMIT;
    sub.id = (ProtobufCBinaryData){HX_ID_LEN, req};
    sub.n_messages = 1;
    sub.messages = &mp;
    frame(r, "p1", &sub);
    hx_buf_t b = {0};
    cr_assert_eq(hx_router_stats_json(r, &b), 0);
    cr_assert_eq(b.data[b.len], '\0', "NUL-terminated");
    json_error_t e;
    json_t *j = json_loads((const char *)b.data, 0, &e);
    cr_assert_not_null(j, "%s: %s", e.text, (const char *)b.data);
    json_int_t depth, inflight, bytes, workers, clinic, accepted, dlq;
    const char *qname;
    cr_assert_eq(json_unpack_ex(j, &e, 0, "{s:[{s:s, s:I, s:I, s:I, s:I}], s:I, s:{s:I}, s:{s:I}}", "queues",
                                "name", &qname, "depth", &depth, "inflight", &inflight, "bytes", &bytes, "workers",
                                &workers, "dlq", &dlq, "totals", "accepted", &accepted, "peers", "clinic", &clinic),
                 0, "%s: %s", e.text, (const char *)b.data);
    cr_expect_str_eq(qname, "intake");
    cr_expect_eq(depth, 1);
    cr_expect_eq(inflight, 0);
    cr_expect_gt(bytes, 0);
    cr_expect_eq(workers, 0);
    cr_expect_eq(dlq, 0);
    cr_expect_eq(accepted, 1);
    cr_expect_eq(clinic, 1);
    json_t *mb = json_object_get(j, "mailboxes");
    cr_expect_eq(json_array_size(mb), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(mb, 0), "name")), "clinic-a");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(j, "store"), "fsyncs")), 0, "memory: no syncs");
    json_decref(j);
    hx_buf_free(&b);
    hx_router_destroy(&r);
    hx_store_destroy(&s);
}

/* ---- JSON log lines ------------------------------------------------------------------------ */

Test(hx_metrics, json_log_lines_parse, .init = cr_redirect_stderr)
{
    hx_log_format_t f;
    cr_assert_eq(hx_log_format_parse("json", &f), 0);
    cr_expect_eq(hx_log_format_parse("JSON", &f), -1);
    cr_expect_eq(hx_log_format_parse(NULL, &f), -1);
    hx_log_init("unit", HX_LOG_INFO);
    hx_log_set_format(HX_LOG_JSON, "handoff-unit");
    hx_info("quote \" backslash \\ tab \t bell \a and bad utf-8 \xff\xc3 then é");
    hx_debug("below the level: not written");
    hx_log_set_format(HX_LOG_TEXT, NULL);
    fflush(stderr);
    FILE *f_err = cr_get_redirected_stderr();
    char line[4096];
    cr_assert_not_null(fgets(line, sizeof line, f_err));
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    cr_assert_not_null(j, "%s: %s", e.text, line);
    const char *ts, *level, *prog, *msg;
    cr_assert_eq(json_unpack_ex(j, &e, JSON_STRICT, "{s:s, s:s, s:s, s:s}", "ts", &ts, "level", &level, "program",
                                &prog, "msg", &msg),
                 0, "%s", e.text);
    cr_expect_str_eq(level, "info");
    cr_expect_str_eq(prog, "handoff-unit");
    cr_expect_str_eq(msg, "quote \" backslash \\ tab \t bell \a and bad utf-8 \xEF\xBF\xBD\xEF\xBF\xBD then é");
    json_decref(j);
    cr_expect_null(fgets(line, sizeof line, f_err), "one line only");
}
