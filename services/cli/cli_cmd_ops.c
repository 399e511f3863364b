/* The operator and other commands of `handoff`: top, dlq, health (an admin session, or the
 * clinic's session without its store), config, keygen, datakey and audit. None opens the
 * clinic's local store: a dead letter is shown by its envelope and referral id only, never by
 * the patient details in its payload. */
#include "cli_cmd.h"
#include "cli_fmt.h"
#include "cli_table.h"
#include "cli_top.h"
#include "hx_audit.h"
#include "hx_curve.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Opens a session without a store: EXIT_OK, or the exit code for why not (EXIT_UNREACHABLE,
 * EXIT_DENIED, EXIT_USAGE for a bad endpoint, EXIT_FAIL), the reason on stderr. */
static int connect_as(cli_t *c, hx_role_t role, const char *name)
{
    char err[512];
    hx_client_opts_t o = {.endpoint = c->broker, .clinic = name, .role = role, .timeout_ms = (int)c->timeout_ms};
    if (c->curve_server[0]) {
        o.curve_server_key = c->curve_server;
        o.curve_public = c->curve_public;
        o.curve_secret = c->curve_secret;
    }
    int rc = hx_client_open(&o, &c->client, err, sizeof err);
    snprintf(c->connect_err, sizeof c->connect_err, "%s", rc ? err : "");
    if (rc) {
        fprintf(stderr, "handoff: %s\n", err);
        return cli_exit_for(rc);
    }
    return EXIT_OK;
}

/* The broker's refusal or silence as a message and an exit code. */
static int broker_failure(cli_t *c, const char *what, int rc)
{
    const char *text = c->client ? hx_client_error(c->client) : "";
    fprintf(stderr, "handoff: %s: %s%s%s\n", what, hx_strerror(rc), text[0] ? ": " : "", text);
    if (rc == HX_EREFUSED && hx_client_error_code(c->client) == HANDOFF__ERROR_CODE__ERR_UNKNOWN_MESSAGE)
        return EXIT_NOTFOUND;
    return cli_exit_for(rc);
}

/* ---- top -------------------------------------------------------------------------------- */

/* One stats sample, checked; NULL after printing why. */
static json_t *top_sample(cli_t *c, int *rc)
{
    char *text = NULL;
    int src = hx_client_stats(c->client, &text);
    if (src) {
        *rc = broker_failure(c, "top", src);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    free(text);
    char err[256];
    if (!j || cli_top_check(j, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: top: the broker's stats %s%s\n", j ? "do not have the expected shape: " : "are not JSON: ",
                j ? err : jerr.text);
        json_decref(j);
        *rc = EXIT_FAIL;
        return NULL;
    }
    return j;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int cmd_top(cli_t *c, int argc, int as_admin)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: top takes no arguments (see handoff help top)\n");
        return EXIT_USAGE;
    }
    int crc;
    if (!c->client && (crc = as_admin ? connect_as(c, HX_ROLE_ADMIN, c->admin) : connect_as(c, HX_ROLE_CLINIC, c->clinic)))
        return crc;
    int rc = EXIT_OK;
    int live = !c->once && !c->json && isatty(STDOUT_FILENO);
    json_t *prev = NULL;
    uint64_t prev_mono = 0;
    cli_catch_stop_signals();
    do {
        json_t *cur = top_sample(c, &rc);
        if (!cur)
            break;
        uint64_t now_mono = mono_ms();
        if (c->json) {
            char *s = json_dumps(cur, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (s)
                puts(s);
            free(s);
        } else {
            if (live)
                fputs("\x1b[H\x1b[2J", stdout);
            cli_top_render(stdout, c->broker, cur, cli_now_ms(), prev, prev ? now_mono - prev_mono : 0);
            fflush(stdout);
        }
        json_decref(prev);
        prev = cur;
        prev_mono = now_mono;
        if (live)
            cli_nap_ms(c->interval_ms);
    } while (live && !cli_stop_requested);
    json_decref(prev);
    return rc;
}

/* ---- config ----------------------------------------------------------------------------- */

int cmd_config(cli_t *c, int argc)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: config takes no arguments (see handoff help config)\n");
        return EXIT_USAGE;
    }
    static const char *const from[] = {"default", "file", "env", "flag"};
    if (c->json) {
        json_t *s = json_object();
        for (int k = 0; k < CLI_SET_COUNT; k++) {
            const cli_value_t *v = &c->cfg.v[k];
            json_object_set_new(s, cli_set_name((cli_set_t)k),
                                json_pack("{s:o, s:s, s:s}", "value", v->value ? json_string(v->value) : json_null(),
                                          "from", from[v->from], "where", v->where));
        }
        cli_print_json(json_pack("{s:o, s:o}", "config_file", c->config_file[0] ? json_string(c->config_file) : json_null(),
                             "settings", s));
        return EXIT_OK;
    }
    printf("config file: %s\n\n", c->config_file[0] ? c->config_file : "(none)");
    static const char *const head[] = {"SETTING", "VALUE", "FROM"};
    cli_table_t *t = cli_table_new(3, head, NULL);
    for (int k = 0; t && k < CLI_SET_COUNT; k++) {
        const cli_value_t *v = &c->cfg.v[k];
        const char *row[] = {cli_set_name((cli_set_t)k), v->value ? v->value : "-",
                             v->from == CLI_FROM_DEFAULT && !v->value ? "(not set)" : v->where};
        cli_table_add(t, row);
    }
    if (t)
        cli_table_print(t, stdout);
    cli_table_destroy(&t);
    return EXIT_OK;
}

/* Parses a message id written as 32 hex characters (either case). */
static int parse_id(const char *cmd, const char *text, uint8_t id[HX_ID_LEN])
{
    size_t len = strlen(text);
    int ok = len == 2 * HX_ID_LEN;
    for (size_t i = 0; ok && i < len; i++)
        ok = isxdigit((unsigned char)text[i]);
    if (!ok) {
        fprintf(stderr,
                "handoff: dlq %s: ID must be a message id of exactly %d hexadecimal characters, as "
                "`handoff dlq list` shows it; got '%s' (%zu characters)\n",
                cmd, 2 * HX_ID_LEN, text, len);
        return -1;
    }
    for (size_t i = 0; i < HX_ID_LEN; i++) {
        char byte[3] = {text[2 * i], text[2 * i + 1], '\0'};
        id[i] = (uint8_t)strtoul(byte, NULL, 16);
    }
    return 0;
}

static const char *kind_text(hx_addr_kind_t k)
{
    return k == HX_TO_SERVICE ? "service" : "mailbox";
}

/* "service:echo" / "mailbox:lakeside" */
static void queue_text(hx_addr_kind_t kind, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s:%s", kind_text(kind), name ? name : "");
}

/* The referral id a known payload type carries, or "" (with *why set) when it has none.
 * Only this id is read from the payload: a dead letter is shown to operators, never its
 * patient details. A referral not yet through intake has no id in its payload; its
 * network-wide id is derived from the message id (docs/PROTOCOL.md). */
static void payload_referral_id(const hx_msg_t *m, char *out, size_t cap, const char **why)
{
    out[0] = '\0';
    *why = NULL;
    const char *t = m->type ? m->type : "";
    if (strcmp(t, "handoff.Referral") == 0) {
        Handoff__Referral *r = handoff__referral__unpack(NULL, m->payload_len, m->payload);
        if (!r) {
            *why = "payload does not decode as handoff.Referral";
            return;
        }
        if (r->referral_id[0]) {
            snprintf(out, cap, "%s", r->referral_id);
        } else {
            char rid[HX_REFERRAL_ID_LEN + 1];
            hx_referral_id(m->id, rid);
            snprintf(out, cap, "%s", rid);
        }
        handoff__referral__free_unpacked(r, NULL);
    } else if (strcmp(t, "handoff.Case") == 0) {
        Handoff__Case *k = handoff__case__unpack(NULL, m->payload_len, m->payload);
        if (!k) {
            *why = "payload does not decode as handoff.Case";
            return;
        }
        if (k->referral)
            snprintf(out, cap, "%s", k->referral->referral_id);
        handoff__case__free_unpacked(k, NULL);
    } else if (strcmp(t, "handoff.Handoff") == 0) {
        Handoff__Handoff *h = handoff__handoff__unpack(NULL, m->payload_len, m->payload);
        if (!h) {
            *why = "payload does not decode as handoff.Handoff";
            return;
        }
        snprintf(out, cap, "%s", h->referral_id);
        handoff__handoff__free_unpacked(h, NULL);
    } else if (strcmp(t, "handoff.StatusUpdate") == 0) {
        Handoff__StatusUpdate *u = handoff__status_update__unpack(NULL, m->payload_len, m->payload);
        if (!u) {
            *why = "payload does not decode as handoff.StatusUpdate";
            return;
        }
        snprintf(out, cap, "%s", u->referral_id);
        handoff__status_update__free_unpacked(u, NULL);
    } else {
        *why = "not a clinical type";
    }
    if (!*why && !out[0])
        *why = "the payload carries none";
}

static json_t *dead_to_json(const hx_dead_t *d, int with_payload)
{
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(d->msg.id, hex);
    json_t *o = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s}, s:s, s:i, s:I, s:I, s:s}", "id", hex, "to", "kind",
                          kind_text(d->msg.to_kind), "name", d->msg.to ? d->msg.to : "", "from", "kind",
                          kind_text(d->msg.from_kind), "name", d->msg.from ? d->msg.from : "", "type",
                          d->msg.type ? d->msg.type : "", "attempts", (json_int_t)d->attempts, "accepted_at_ms",
                          (json_int_t)d->msg.accepted_at_ms, "dead_at_ms", (json_int_t)d->dead_at_ms, "reason",
                          d->reason ? d->reason : "");
    if (o && with_payload) {
        char rid[128];
        const char *why;
        payload_referral_id(&d->msg, rid, sizeof rid, &why);
        json_object_set_new(o, "payload_bytes", json_integer((json_int_t)d->msg.payload_len));
        json_object_set_new(o, "referral_id", why ? json_null() : json_string(rid));
    }
    return o;
}

static int admin_connect(cli_t *c)
{
    return c->client ? EXIT_OK : connect_as(c, HX_ROLE_ADMIN, c->admin);
}

static int dlq_list(cli_t *c)
{
    hx_dead_list_t *l = NULL;
    int rc = hx_client_dlq_list(c->client, &l);
    if (rc)
        return broker_failure(c, "dlq list", rc);
    if (c->json) {
        json_t *all = json_array();
        for (size_t i = 0; i < l->count; i++)
            json_array_append_new(all, dead_to_json(&l->items[i], 0));
        cli_print_json(all);
    } else {
        static const char *const head[] = {"ID", "QUEUE", "TYPE", "ATTEMPTS", "DEAD AT", "REASON"};
        cli_table_t *t = cli_table_new(6, head, "lllrll");
        for (size_t i = 0; t && i < l->count; i++) {
            const hx_dead_t *d = &l->items[i];
            char hex[2 * HX_ID_LEN + 1], queue[HX_NAME_MAX + 16], attempts[16], when[CLI_FMT_LEN];
            hx_id_hex(d->msg.id, hex);
            queue_text(d->msg.to_kind, d->msg.to, queue, sizeof queue);
            snprintf(attempts, sizeof attempts, "%u", d->attempts);
            const char *row[] = {hex, queue, d->msg.type, attempts, cli_time_abs(d->dead_at_ms, when), d->reason};
            cli_table_add(t, row);
        }
        if (t && l->count)
            cli_table_print(t, stdout);
        cli_table_destroy(&t);
        printf("%zu dead letter(s)\n", l->count);
    }
    hx_dead_list_destroy(&l);
    return EXIT_OK;
}

static int dlq_show(cli_t *c, const char *text, const uint8_t id[HX_ID_LEN])
{
    hx_dead_list_t *l = NULL;
    int rc = hx_client_dlq_show(c->client, id, &l);
    if (rc)
        return broker_failure(c, "dlq show", rc);
    const hx_dead_t *d = NULL;
    for (size_t i = 0; i < l->count && !d; i++)
        if (memcmp(l->items[i].msg.id, id, HX_ID_LEN) == 0)
            d = &l->items[i];
    if (!d) {
        hx_dead_list_destroy(&l);
        fprintf(stderr, "handoff: dlq show: %s is not in the dead-letter queue\n", text);
        return EXIT_NOTFOUND;
    }
    if (c->json) {
        cli_print_json(dead_to_json(d, 1));
    } else {
        char hex[2 * HX_ID_LEN + 1], to[HX_NAME_MAX + 16], from[HX_NAME_MAX + 16], accepted[CLI_FMT_LEN],
            dead[CLI_FMT_LEN], rid[128];
        const char *why;
        hx_id_hex(d->msg.id, hex);
        queue_text(d->msg.to_kind, d->msg.to, to, sizeof to);
        queue_text(d->msg.from_kind, d->msg.from, from, sizeof from);
        cli_time_abs(d->msg.accepted_at_ms, accepted);
        cli_time_abs(d->dead_at_ms, dead);
        payload_referral_id(&d->msg, rid, sizeof rid, &why);
        printf("id           %s\n", hex);
        printf("queue        %s\n", to);
        printf("from         %s\n", from);
        printf("type         %s\n", d->msg.type ? d->msg.type : "");
        printf("attempts     %u\n", d->attempts);
        printf("accepted at  %s\n", accepted);
        printf("dead at      %s\n", dead);
        printf("reason       %s\n", d->reason ? d->reason : "");
        printf("payload      %zu bytes\n", d->msg.payload_len);
        printf("referral id  %s%s%s%s\n", why ? "" : rid, why ? "(" : "", why ? why : "", why ? ")" : "");
    }
    hx_dead_list_destroy(&l);
    return EXIT_OK;
}

int cmd_dlq(cli_t *c, int argc, char **argv)
{
    const char *sub = argc ? argv[0] : NULL;
    int list = sub && strcmp(sub, "list") == 0;
    int show = sub && strcmp(sub, "show") == 0;
    int replay = sub && strcmp(sub, "replay") == 0;
    int purge = sub && strcmp(sub, "purge") == 0;
    if (!list && !show && !replay && !purge) {
        fprintf(stderr, "handoff: dlq needs one of list, show ID, replay ID, purge ID%s%s%s (see handoff help dlq)\n",
                sub ? "; got '" : "", sub ? sub : "", sub ? "'" : "");
        return EXIT_USAGE;
    }
    if (list && argc != 1) {
        fprintf(stderr, "handoff: dlq list takes no arguments\n");
        return EXIT_USAGE;
    }
    uint8_t id[HX_ID_LEN];
    if (!list) {
        if (argc != 2) {
            fprintf(stderr, "handoff: dlq %s takes exactly one ID (32 hexadecimal characters)\n", sub);
            return EXIT_USAGE;
        }
        if (parse_id(sub, argv[1], id))
            return EXIT_USAGE;
    }
    int rc = admin_connect(c);
    if (rc != EXIT_OK)
        return rc;
    if (list)
        return dlq_list(c);
    if (show)
        return dlq_show(c, argv[1], id);
    char hex[2 * HX_ID_LEN + 1];
    hx_id_hex(id, hex);
    int src = replay ? hx_client_dlq_replay(c->client, id) : hx_client_dlq_purge(c->client, id);
    if (src) {
        char what[64];
        snprintf(what, sizeof what, "dlq %s %s", sub, hex);
        return broker_failure(c, what, src);
    }
    if (c->json)
        cli_print_json(json_pack("{s:s, s:s}", "id", hex, "done", replay ? "replayed" : "purged"));
    else if (replay)
        printf("%s  replayed: back in its queue with its attempts reset\n", hex);
    else
        printf("%s  purged\n", hex);
    return EXIT_OK;
}

/* Exit 0 when the broker can accept messages, 1 when it says it cannot (its log), 3 when
 * it does not answer, 77 when it refuses this key. */
int cmd_health(cli_t *c, int argc, int as_admin)
{
    if (argc > 0) {
        fprintf(stderr, "handoff: health takes no arguments\n");
        return EXIT_USAGE;
    }
    int crc;
    if (!c->client && (crc = as_admin ? connect_as(c, HX_ROLE_ADMIN, c->admin) : connect_as(c, HX_ROLE_CLINIC, c->clinic))) {
        if (c->json)
            cli_print_json(json_pack("{s:s, s:b, s:b, s:s}", "broker", c->broker, "reachable", crc == EXIT_DENIED,
                                 "healthy", 0, "reason",
                                 crc == EXIT_UNREACHABLE ? "did not answer" : c->connect_err));
        return crc;
    }
    int rc = hx_client_health(c->client);
    const char *text = hx_client_error(c->client);
    if (rc == HX_ETIMEDOUT) {
        fprintf(stderr, "handoff: health: %s\n", text[0] ? text : hx_strerror(rc));
        if (c->json)
            cli_print_json(json_pack("{s:s, s:b, s:b, s:s}", "broker", c->broker, "reachable", 0, "healthy", 0,
                                 "reason", text));
        return EXIT_UNREACHABLE;
    }
    if (rc && (rc != HX_EREFUSED || hx_client_error_code(c->client) != HANDOFF__ERROR_CODE__ERR_UNAVAILABLE))
        return broker_failure(c, "health", rc);     /* not an answer about its health */
    if (c->json)
        cli_print_json(json_pack("{s:s, s:b, s:b, s:s}", "broker", c->broker, "reachable", 1, "healthy", rc == 0,
                             "reason", rc ? text : ""));
    else if (rc == 0)
        printf("healthy: the broker at %s accepts messages\n", c->broker);
    else
        printf("unhealthy: the broker at %s does not accept messages: %s\n", c->broker, text);
    return rc == 0 ? EXIT_OK : EXIT_FAIL;
}

/* keygen NAME: a CURVE key pair, NAME.key (secret, mode 0600) and NAME.pub, in --dir. */
int cmd_keygen(cli_t *c, int argc, char **argv)
{
    if (argc != 1 || !hx_name_valid(argv[0])) {
        fprintf(stderr, "handoff: keygen takes one NAME of [A-Za-z0-9._-] (see handoff help keygen)\n");
        return EXIT_USAGE;
    }
    char pub[HX_KEY_Z85 + 1], sec[HX_KEY_Z85 + 1];
    if (hx_key_generate(pub, sec) != 0) {
        fprintf(stderr, "handoff: keygen: no CURVE support in this libzmq\n");
        return EXIT_FAIL;
    }
    const char *dir = c->dir ? c->dir : ".";
    char path[4200];
    const char *files[2][2] = {{"key", sec}, {"pub", pub}};
    for (int i = 0; i < 2; i++) {
        char err[4400];
        snprintf(path, sizeof path, "%s/%s.%s", dir, argv[0], files[i][0]);
        if (hx_key_file_write(path, files[i][1], i == 0 ? 0600 : 0644, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: keygen: %s\n", err);
            return EXIT_FAIL;
        }
    }
    if (c->json)
        cli_print_json(json_pack("{s:s, s:s}", "name", argv[0], "public_key", pub));
    else
        printf("%s/%s.key (secret, mode 0600) and %s/%s.pub written\n"
               "allow-list line: %s <clinic|service|admin> %s\n", dir, argv[0], dir, argv[0], pub, argv[0]);
    return EXIT_OK;
}


/* datakey FILE: a new key for the broker's --data-key. */
int cmd_datakey(cli_t *c, int argc, char **argv)
{
    (void)c;
    if (argc != 1) {
        fprintf(stderr, "handoff: usage: handoff datakey FILE\n");
        return EXIT_USAGE;
    }
    char hex[65], err[4400];
    hx_data_key_generate(hex);
    if (hx_key_file_write(argv[0], hex, 0600, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: datakey: %s\n", err);
        return EXIT_FAIL;
    }
    printf("%s written (mode 0600): keep it apart from the data directory's backups\n", argv[0]);
    return EXIT_OK;
}

/* What the check of a rotated series started from, when the oldest file continues one that
 * is gone (retention deleted it): said, since that file's first line is then taken on trust. */
static void audit_print_start(const hx_audit_report_t *r)
{
    if (r->trusted[0])
        printf("note: the series starts at %s, which continues %s (no longer present): its first line, with "
               "that file's last hash and the %llu line(s) before, is the trusted start\n", r->oldest, r->trusted,
               (unsigned long long)r->start);
    if (r->log_empty)
        printf("note: the log itself is empty or missing (a rotation stopped before its first line): the series "
               "ends with the newest rotated file, and the broker continues it\n");
}

/* audit verify FILE [DATA_DIR|ANCHOR_FILE]: the broker's hash-chained audit log, with the
 * files rotated out of it. */
int cmd_audit(cli_t *c, int argc, char **argv)
{
    if ((argc != 2 && argc != 3) || strcmp(argv[0], "verify") != 0) {
        fprintf(stderr, "handoff: usage: handoff audit verify FILE [DATA_DIR|ANCHOR_FILE]\n");
        return EXIT_USAGE;
    }
    char why[1024];
    hx_audit_report_t r;
    long bad = hx_audit_verify_series(argv[1], argc == 3 ? argv[2] : NULL, &r, why, sizeof why);
    if (c->json) {
        cli_print_json(json_pack("{s:s, s:b, s:I, s:I, s:I, s:s, s:s, s:s, s:I}", "file", argv[1], "intact",
                                 bad == 0, "files", (json_int_t)r.files, "lines", (json_int_t)r.lines, "start",
                                 (json_int_t)r.start, "trusted_start", r.trusted, "reason", bad ? why : "",
                                 "bad_file", bad ? r.bad_file : "", "anchored", (json_int_t)r.anchored));
        return bad == 0 ? EXIT_OK : EXIT_FAIL;
    }
    if (bad != 0) {
        printf("broken: %s\n", why);
        return EXIT_FAIL;
    }
    audit_print_start(&r);
    char files[64] = "", series[96] = "";
    if (r.files > 1)
        snprintf(files, sizeof files, "%zu file(s), ", r.files);
    if (r.start > 0)
        snprintf(series, sizeof series, " (lines %llu to %llu of the series)", (unsigned long long)r.start + 1,
                 (unsigned long long)(r.start + r.lines));
    if (argc == 3)
        printf("ok: %s%llu line(s)%s, the chain holds and reaches the anchored line %llu\n", files,
               (unsigned long long)r.lines, series, (unsigned long long)r.anchored);
    else
        printf("ok: %s%llu line(s)%s, the chain holds\n", files, (unsigned long long)r.lines, series);
    return EXIT_OK;
}

/* ---- cluster: a replicated broker's membership (admin) ------------------------------------ */

/* The cluster's status JSON, checked for the fields printed; NULL after printing why. */
static json_t *cluster_status(cli_t *c, const char *op, const char *arg, int *rc)
{
    char *text = NULL;
    int src = hx_client_admin_text(c->client, op, arg, &text);
    if (src) {
        char what[300];
        snprintf(what, sizeof what, "cluster %s%s%s", op + 8, arg[0] ? " " : "", arg);
        *rc = broker_failure(c, what, src);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    free(text);
    if (!j || !json_is_array(json_object_get(j, "nodes")) || !json_is_string(json_object_get(j, "change")) ||
        !json_is_string(json_object_get(j, "last_change"))) {
        fprintf(stderr, "handoff: cluster %s: the broker's answer is not the cluster status (%s)\n", op + 8,
                j ? "fields missing" : jerr.text);
        json_decref(j);
        *rc = EXIT_FAIL;
        return NULL;
    }
    return j;
}

static void cluster_print(json_t *j)
{
    static const char *const head[] = {"ID", "ROLE", "RAFT", "CLIENT ENDPOINT"};
    cli_table_t *t = cli_table_new(4, head, "rlll");
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(j, "nodes"), i, n) {
        char id[24], role[32];
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(n, "id")));
        snprintf(role, sizeof role, "%s%s", json_string_value(json_object_get(n, "role")),
                 json_is_true(json_object_get(n, "leader")) ? ", leader" : "");
        const char *raft = json_string_value(json_object_get(n, "raft")),
                   *client = json_string_value(json_object_get(n, "client"));
        const char *row[] = {id, role, raft ? raft : "", client && client[0] ? client : "(not known)"};
        if (t)
            cli_table_add(t, row);
    }
    if (t)
        cli_table_print(t, stdout);
    cli_table_destroy(&t);
    const char *change = json_string_value(json_object_get(j, "change")),
               *last = json_string_value(json_object_get(j, "last_change"));
    printf("term %lld, %lld voter(s); change in progress: %s%s%s\n",
           (long long)json_integer_value(json_object_get(j, "term")),
           (long long)json_integer_value(json_object_get(j, "voters")), change,
           last[0] ? "; the last: " : "", last);
}

/* handoff cluster status | add NODE | remove ID | transfer ID [--wait]: with --wait, the
 * status is read again every 200 ms until the change is done (exit 0) or failed (exit 1). */
int cmd_cluster(cli_t *c, int argc, char **argv)
{
    const char *sub = argc ? argv[0] : NULL;
    bool wait = c->wait;
    bool status = sub && !strcmp(sub, "status") && argc == 1;
    bool change = sub && (!strcmp(sub, "add") || !strcmp(sub, "remove") || !strcmp(sub, "transfer")) && argc == 2;
    if (!status && !change) {
        fprintf(stderr, "handoff: cluster needs status, add ID=RAFTIP:PORT=tcp://HOST:PORT, remove ID or transfer "
                        "ID [--wait]%s%s%s (see handoff help cluster)\n",
                sub ? "; got '" : "", sub ? sub : "", sub ? "'" : "");
        return EXIT_USAGE;
    }
    int rc = admin_connect(c);
    if (rc != EXIT_OK)
        return rc;
    char op[32];
    snprintf(op, sizeof op, "cluster.%s", sub);
    json_t *j = cluster_status(c, op, change ? argv[1] : "", &rc);
    if (!j)
        return rc;
    if (change && !c->json)
        printf("cluster %s %s: begun\n", sub, argv[1]);
    const uint64_t deadline = mono_ms() + 10 * 60 * 1000;       /* a catch-up of a large state */
    while (change && wait && strcmp(json_string_value(json_object_get(j, "change")), "none") != 0) {
        if (mono_ms() > deadline) {
            fprintf(stderr, "handoff: cluster %s %s: still %s after 10 minutes; see handoff cluster status\n", sub,
                    argv[1], json_string_value(json_object_get(j, "change")));
            json_decref(j);
            return EXIT_FAIL;
        }
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        json_decref(j);
        if (!(j = cluster_status(c, "cluster.status", "", &rc)))
            return rc;
    }
    if (c->json)
        cli_print_json(json_incref(j));
    else
        cluster_print(j);
    const char *last = json_string_value(json_object_get(j, "last_change"));
    rc = change && wait && strstr(last, " failed: ") ? EXIT_FAIL : EXIT_OK;
    if (rc != EXIT_OK)
        fprintf(stderr, "handoff: cluster %s %s: %s\n", sub, argv[1], last);
    json_decref(j);
    return rc;
}
