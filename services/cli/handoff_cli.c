/* handoff — the clinic command line: submit and import referrals, the clinic's inbox grouped
 * by where each referral stands, the status of referrals it sent, a live feed of what
 * arrives (watch); for operators the broker's overview (top), dead letters and health.
 *
 * This file reads the options and settings and runs one command. The clinic commands are in
 * cli_cmd_clinic.c, on the clinic library (hx_clinic.h: the local store, the mailbox sync and
 * the requests, shared with every clinic program); the operator and other commands in
 * cli_cmd_ops.c. Settings come from flags, HANDOFF_* variables and an INI file
 * (cli_config.h); tables, times and help texts from cli_table, cli_fmt and cli_help. */
#include "cli_cmd.h"
#include "cli_help.h"
#include "hx_curve.h"

#include <getopt.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t cli_stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    cli_stop_requested = 1;
}

void cli_catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli_nap_ms(uint32_t ms)
{
    while (ms && !cli_stop_requested) {
        uint32_t slice = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)slice * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

int cli_exit_for(int hx_rc)
{
    switch (hx_rc) {
    case HX_ETIMEDOUT: return EXIT_UNREACHABLE;
    case HX_EDENIED: return EXIT_DENIED;
    case HX_EINVAL: return EXIT_USAGE;      /* a bad endpoint or argument */
    default: return EXIT_FAIL;
    }
}

int cli_clinic_failure(cli_t *c, int rc)
{
    if (!c->quiet_connect)
        fprintf(stderr, "handoff: %s\n", hx_clinic_error(c->store));
    return cli_exit_for(rc);
}

int cli_open_store(cli_t *c)
{
    char err[4400];
    hx_clinic_opts_t o = {.broker = c->broker, .clinic = c->review ? c->reviewer : c->clinic, .home = c->home,
                          .role = c->review ? HX_ROLE_REVIEWER : HX_ROLE_CLINIC,
                          .timeout_ms = (int)c->timeout_ms, .stop = &cli_stop_requested};
    if (c->curve_server[0]) {
        o.curve_server = c->curve_server;
        o.curve_public = c->curve_public;
        o.curve_secret = c->curve_secret;
    }
    /* the store key: --store-key, else derived from --data-key (a store of handoff-web's
     * --home), else the home's ID.store.key (the clinic library's default) */
    uint8_t data_key[32], sub[32];
    char from[4400];
    if (c->store_key) {
        o.store_key_file = c->store_key;
    } else if (c->data_key) {
        if (hx_data_key_load(c->data_key, data_key, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: --data-key (%s): %s\n", c->cfg.v[CLI_SET_DATA_KEY].where, err);
            return EXIT_USAGE;
        }
        hx_clinic_store_subkey(data_key, o.clinic, sub);
        sodium_memzero(data_key, sizeof data_key);
        snprintf(from, sizeof from, "the data key %s (%s)", c->data_key, c->cfg.v[CLI_SET_DATA_KEY].where);
        o.store_key = sub;
        o.store_key_from = from;
    }
    int rc = hx_clinic_open(&o, &c->store, err, sizeof err);
    sodium_memzero(sub, sizeof sub);
    if (rc) {
        fprintf(stderr, "handoff: %s\n", err);
        return rc == HX_EINVAL ? EXIT_USAGE : EXIT_FAIL;
    }
    if (hx_clinic_sealed_in_place(c->store))
        fprintf(stderr, "handoff: %s's store held %zu value(s) in clear: sealed in place with the store key "
                        "(id %s, from %s)\n", o.clinic, hx_clinic_sealed_in_place(c->store),
                hx_clinic_store_key_id(c->store), hx_clinic_store_key_from(c->store));
    return EXIT_OK;
}

void cli_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(j);
}

void cli_print_json_line(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(j);
    fflush(stdout);
}

json_t *cli_ms_json(uint64_t ms)
{
    return json_integer((json_int_t)(ms > INT64_MAX ? INT64_MAX : ms));
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

/* Reads the config file (--config, HANDOFF_CONFIG, or ~/.handoff/config when it exists) and
 * the environment under the flags already in c->cfg, and sets the fields from them. */
static int resolve_settings(cli_t *c, const char *config_flag)
{
    char err[2048];
    if (c->flag_err[0]) {
        fprintf(stderr, "handoff: %s\n", c->flag_err);
        return -1;
    }
    if (cli_config_env(&c->cfg, env_get, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: %s\n", err);
        return -1;
    }
    const char *file = config_flag;
    const char *env = getenv("HANDOFF_CONFIG");
    if (!file && env && *env)
        file = env;
    if (file) {
        snprintf(c->config_file, sizeof c->config_file, "%s", file);
    } else {
        const char *h = getenv("HOME");
        char path[4200];
        snprintf(path, sizeof path, "%s/.handoff/config", h && *h ? h : ".");
        if (access(path, F_OK) == 0)
            snprintf(c->config_file, sizeof c->config_file, "%s", path);
    }
    if (c->config_file[0] && cli_config_file(&c->cfg, c->config_file, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: %s%s\n", err,
                config_flag ? " (--config)" : env && *env ? " (HANDOFF_CONFIG)" : "");
        return -1;
    }
    c->broker = cli_config_get(&c->cfg, CLI_SET_BROKER);
    c->clinic = cli_config_get(&c->cfg, CLI_SET_CLINIC);
    c->admin = cli_config_get(&c->cfg, CLI_SET_ADMIN);
    c->home = cli_config_get(&c->cfg, CLI_SET_HOME);
    c->server_key = cli_config_get(&c->cfg, CLI_SET_SERVER_KEY);
    c->key = cli_config_get(&c->cfg, CLI_SET_KEY);
    c->timeout_ms = cli_config_u32(&c->cfg, CLI_SET_TIMEOUT_MS);
    c->interval_ms = cli_config_u32(&c->cfg, CLI_SET_INTERVAL_MS);
    c->window = cli_config_u32(&c->cfg, CLI_SET_WINDOW);
    c->reviewer = cli_config_get(&c->cfg, CLI_SET_REVIEWER);
    c->store_key = cli_config_get(&c->cfg, CLI_SET_STORE_KEY);
    c->data_key = cli_config_get(&c->cfg, CLI_SET_DATA_KEY);
    return 0;
}

static int help_for(const char *cmd, FILE *out)
{
    const char *page = cli_command_help(cmd);
    if (!page) {
        fprintf(stderr, "handoff: no command '%s' (commands: %s)\n", cmd, cli_command_list());
        return EXIT_USAGE;
    }
    fputs(page, out);
    return EXIT_OK;
}

/* Loads the CURVE keys named by the settings or found in the home directory: 0, or -1 after
 * saying what is wrong. */
static int load_keys(cli_t *c)
{
    char err[9000];
    cli_keys_t k;
    if (cli_keys_load(&c->cfg, c->key_dir, c->session_who, c->session_name, &k, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: %s\n", err);
        return -1;
    }
    if (k.curve) {
        memcpy(c->curve_server, k.server, sizeof c->curve_server);
        memcpy(c->curve_public, k.pub, sizeof c->curve_public);
        memcpy(c->curve_secret, k.sec, sizeof c->curve_secret);
    }
    memset(&k, 0, sizeof k);
    return 0;
}

/* top and health speak as the admin when asked (or no clinic is named), dlq and cluster always. */
static int admin_session(const cli_t *c, const char *cmd)
{
    return strcmp(cmd, "dlq") == 0 || strcmp(cmd, "cluster") == 0 || c->cfg.v[CLI_SET_ADMIN].from != CLI_FROM_DEFAULT || !c->clinic;
}

/* The session a command opens (whose, and its name), and the key defaults for it. */
static int find_session(cli_t *c, const char *cmd, int admin_cmd)
{
    if (c->review) {
        c->session_who = "reviewer";
        c->session_name = c->reviewer;
    } else if (admin_cmd && admin_session(c, cmd)) {
        c->session_who = "operator";
        c->session_name = c->admin;
    } else {
        c->session_who = "clinic";
        c->session_name = c->clinic;
    }
    cli_keys_dir(c->home, c->key_dir, sizeof c->key_dir);
    if (cli_keys_defaults(&c->cfg, c->key_dir, c->session_name) != 0) {
        fprintf(stderr, "handoff: out of memory\n");
        return -1;
    }
    c->server_key = cli_config_get(&c->cfg, CLI_SET_SERVER_KEY);
    c->key = cli_config_get(&c->cfg, CLI_SET_KEY);
    return 0;
}

/* The session's name is set (a clinic command needs the clinic id, review the reviewer's
 * name): 0, or -1 after saying where it was looked for. */
static int check_session_name(const cli_t *c, const char *cmd)
{
    if (c->session_name)
        return 0;
    char file[4400];
    const char *h = getenv("HOME");
    if (c->config_file[0])
        snprintf(file, sizeof file, "config file: %s", c->config_file);
    else
        snprintf(file, sizeof file, "no config file: no --config, HANDOFF_CONFIG, or %s/.handoff/config",
                 h && *h ? h : ".");
    if (c->review)
        fprintf(stderr, "handoff: review needs this reviewer's name: --reviewer NAME, HANDOFF_REVIEWER, or "
                        "'reviewer = NAME' in the config file (none is set; %s)\n", file);
    else
        fprintf(stderr, "handoff: %s needs this clinic's id: --clinic ID, HANDOFF_CLINIC, or 'clinic = ID' in the "
                        "config file (none is set; %s)\n", cmd, file);
    return -1;
}

/* After exit 3 or 77: what to check, with the endpoint and the keys this run used. */
static void explain_failure(const cli_t *c, int rc)
{
    if (!c->session_who || (rc != EXIT_UNREACHABLE && rc != EXIT_DENIED))
        return;
    const cli_value_t *b = &c->cfg.v[CLI_SET_BROKER], *k = &c->cfg.v[CLI_SET_KEY], *s = &c->cfg.v[CLI_SET_SERVER_KEY];
    const char *role = strcmp(c->session_who, "operator") == 0 ? "admin" : c->session_who;
    char keys[9600];
    if (c->curve_server[0])
        snprintf(keys, sizeof keys, "this %s's key %s (%s%s) has the public key %s: the broker's allow-list needs "
                 "the line '%s %s %s', and server-key %s (%s%s) must be the broker's own public key",
                 c->session_who, k->value, k->from == CLI_FROM_DEFAULT ? "" : "from ", k->where, c->curve_public,
                 c->curve_public, role, c->session_name, s->value, s->from == CLI_FROM_DEFAULT ? "" : "from ",
                 s->where);
    else
        snprintf(keys, sizeof keys, "no CURVE keys were used (no setting names them, and neither %s/%s.key nor "
                 "%s/" CLI_BROKER_PUB " exists): if the broker runs with CURVE, put both there",
                 c->key_dir, c->session_name ? c->session_name : "ID", c->key_dir);
    if (rc == EXIT_UNREACHABLE)
        fprintf(stderr, "handoff: nothing answered at %s (broker, %s%s) within --timeout-ms %u per attempt. Check "
                        "that this is the broker's address and port, that no firewall between here and the "
                        "broker blocks that port, and that handoff-broker runs there; %s.\n",
                c->broker, b->from == CLI_FROM_DEFAULT ? "the " : "from ", b->where, (unsigned)c->timeout_ms, keys);
    else
        fprintf(stderr, "handoff: %s.\n", keys);
}

/* top, dlq, health: dlq always speaks as the admin; health and top as the clinic when one is
 * named (and no admin was asked for), so a clinic can look at the broker without operator
 * rights. */
static int run_admin(cli_t *c, const char *cmd, int nargs, char **args)
{
    int as_admin = admin_session(c, cmd);
    if (strcmp(cmd, "dlq") == 0)
        return cmd_dlq(c, nargs, args);
    if (strcmp(cmd, "cluster") == 0)
        return cmd_cluster(c, nargs, args);
    if (strcmp(cmd, "top") == 0)
        return cmd_top(c, nargs, as_admin);
    return cmd_health(c, nargs, as_admin);
}

/* A clinic command, or review: on the store of this clinic (or reviewer). */
static int run_store(cli_t *c, const char *cmd, const char *change, int nargs, char **args)
{
    int rc = cli_open_store(c);
    if (rc != EXIT_OK)
        return rc;
    if (c->review)
        return cmd_review(c, nargs, args);
    if (strcmp(cmd, "submit") == 0)
        return cmd_submit(c, nargs, args);
    if (strcmp(cmd, "import") == 0)
        return cmd_import(c, nargs, args);
    if (strcmp(cmd, "inbox") == 0)
        return cmd_inbox(c, nargs);
    if (strcmp(cmd, "handoffs") == 0)
        return cmd_handoffs(c, nargs);
    if (strcmp(cmd, "watch") == 0)
        return cmd_watch(c, nargs);
    if (strcmp(cmd, "store") == 0)
        return cmd_store(c, nargs, args);
    if (!strcmp(cmd, "thread") || !strcmp(cmd, "note") || !strcmp(cmd, "reply") || !strcmp(cmd, "attachment"))
        return cmd_thread(c, cmd, nargs, args);
    if (change)
        return cmd_change(c, change, nargs, args);
    return cmd_status(c, nargs, args);
}

static int run(cli_t *c, int argc, char **argv, const char *config_flag)
{
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(c, nargs, args);
    if (strcmp(cmd, "datakey") == 0)
        return cmd_datakey(c, nargs, args);
    if (strcmp(cmd, "audit") == 0)
        return cmd_audit(c, nargs, args);
    static const char *const changes[] = {"accept", "decline", "start",    "complete",
                                          "fail",   "revoke",  "redirect", "add-massage"};
    const char *change = NULL;
    for (size_t i = 0; i < sizeof changes / sizeof *changes; i++)
        if (strcmp(cmd, changes[i]) == 0)
            change = changes[i];
    static const char *const clinic_cmds[] = {"submit", "import", "inbox", "status", "watch", "handoffs",
                                              "thread", "note", "reply", "attachment", "store"};
    int clinic_cmd = change != NULL;
    for (size_t i = 0; i < sizeof clinic_cmds / sizeof *clinic_cmds; i++)
        clinic_cmd |= strcmp(cmd, clinic_cmds[i]) == 0;
    int admin_cmd = !strcmp(cmd, "dlq") || !strcmp(cmd, "cluster") || !strcmp(cmd, "health") || !strcmp(cmd, "top");
    c->review = strcmp(cmd, "review") == 0;
    if (!clinic_cmd && !admin_cmd && !c->review && strcmp(cmd, "config") != 0 && strcmp(cmd, "play") != 0) {
        fprintf(stderr, "handoff: unknown command '%s' (commands: %s; see handoff --help)\n", cmd,
                cli_command_list());
        return EXIT_USAGE;
    }
    if (resolve_settings(c, config_flag) != 0)
        return EXIT_USAGE;
    if (strcmp(cmd, "play") == 0) {     /* several clinics: their keys from --dir or the home, not --key */
        cli_keys_dir(c->home, c->key_dir, sizeof c->key_dir);
        if (cli_keys_defaults(&c->cfg, c->key_dir, NULL) != 0) {
            fprintf(stderr, "handoff: out of memory\n");
            return EXIT_FAIL;
        }
        c->server_key = cli_config_get(&c->cfg, CLI_SET_SERVER_KEY);
        return cmd_play(c, nargs, args);
    }
    if (find_session(c, cmd, admin_cmd) != 0)
        return EXIT_FAIL;
    if (strcmp(cmd, "config") == 0)
        return cmd_config(c, nargs);
    if (check_session_name(c, cmd) != 0 || load_keys(c) != 0)
        return EXIT_USAGE;
    return admin_cmd ? run_admin(c, cmd, nargs, args) : run_store(c, cmd, change, nargs, args);
}

/* Flags from the two tables: each setting (cli_config.h) is OPT_SETTING + its index, each
 * other option (cli_help.h) OPT_FLAG + its index. */
enum { OPT_SETTING = 256, OPT_FLAG = 512 };

static void build_options(struct option *opts)
{
    size_t n = 0;
    for (int k = 0; k < CLI_SET_COUNT; k++)
        opts[n++] = (struct option){cli_set_name((cli_set_t)k), required_argument, NULL, OPT_SETTING + k};
    for (int k = 0; k < CLI_OPT_COUNT; k++)
        opts[n++] = (struct option){CLI_FLAGS[k].name, CLI_FLAGS[k].arg ? required_argument : no_argument, NULL,
                                    OPT_FLAG + k};
    opts[n] = (struct option){NULL, 0, NULL, 0};
}

/* Where the command word is: past the options before it (and their values), or argc. */
static int command_index(int argc, char **argv)
{
    struct option opts[CLI_SET_COUNT + CLI_OPT_COUNT + 1];
    build_options(opts);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            return i + 1;
        if (a[0] != '-' || a[1] == '\0')
            return i;
        if (a[1] != '-' || strchr(a, '='))
            continue;
        for (const struct option *o = opts; o->name; o++)
            if (strcmp(o->name, a + 2) == 0 && o->has_arg == required_argument)
                i++;
    }
    return argc;
}

/* Reads the options into c; returns 0, or -1 after saying the flag is unknown. */
static int parse_options(cli_t *c, int argc, char **argv, const char **config_flag, int *help)
{
    struct option opts[CLI_SET_COUNT + CLI_OPT_COUNT + 1];
    build_options(opts);
    char err[1024];
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o >= OPT_SETTING && o < OPT_SETTING + CLI_SET_COUNT) {
            if (cli_config_flag(&c->cfg, (cli_set_t)(o - OPT_SETTING), optarg, err, sizeof err) != 0 &&
                !c->flag_err[0])
                snprintf(c->flag_err, sizeof c->flag_err, "%s", err);
            continue;
        }
        switch (o == 'h' ? OPT_FLAG + CLI_OPT_HELP : o) {
        case OPT_FLAG + CLI_OPT_CONFIG: *config_flag = optarg; break;
        case OPT_FLAG + CLI_OPT_JSON: c->json = 1; break;
        case OPT_FLAG + CLI_OPT_NO_VALIDATE: c->no_validate = 1; break;
        case OPT_FLAG + CLI_OPT_REASON: c->reason = optarg; break;
        case OPT_FLAG + CLI_OPT_DISCIPLINE: c->discipline = optarg; break;
        case OPT_FLAG + CLI_OPT_DIR: c->dir = optarg; break;
        case OPT_FLAG + CLI_OPT_FORMAT: c->format = optarg; break;
        case OPT_FLAG + CLI_OPT_DRY_RUN: c->dry_run = 1; break;
        case OPT_FLAG + CLI_OPT_ONCE: c->once = 1; break;
        case OPT_FLAG + CLI_OPT_WAIT: c->wait = 1; break;
        case OPT_FLAG + CLI_OPT_AS: c->plan = optarg; break;
        case OPT_FLAG + CLI_OPT_ASK: c->ask = 1; break;
        case OPT_FLAG + CLI_OPT_SUMMARY: c->summary = optarg; break;
        case OPT_FLAG + CLI_OPT_ATTACH: c->attach = optarg; break;
        case OPT_FLAG + CLI_OPT_OUT: c->out = optarg; break;
        case OPT_FLAG + CLI_OPT_TO: c->to = optarg; break;
        case OPT_FLAG + CLI_OPT_NEW_KEY: c->new_key = optarg; break;
        case OPT_FLAG + CLI_OPT_NEW_DATA_KEY: c->new_data_key = optarg; break;
        case OPT_FLAG + CLI_OPT_HELP: *help = 1; break;
        default: fputs("handoff: see handoff --help\n", stderr); return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    cli_t c = {0};
    cli_config_init(&c.cfg);
    const char *config_flag = NULL;
    int help = 0, rc = EXIT_USAGE;
    int ci = command_index(argc, argv);
    bool help_first = false;                             /* handoff --help admin: its page, below */
    for (int i = 1; i < ci; i++)
        help_first |= strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    if (ci < argc && strcmp(argv[ci], "admin") == 0 && !help_first) {   /* its own options (--key: the backup key) */
        rc = cmd_admin(argc - ci, argv + ci);            /* the settings before it do not apply */
        goto out;
    }
    if (parse_options(&c, argc, argv, &config_flag, &help) != 0)
        goto out;
    if (optind >= argc) {
        cli_usage(help ? stdout : stderr);
        rc = help ? EXIT_OK : EXIT_USAGE;
    } else if (strcmp(argv[optind], "help") == 0) {
        if (argc - optind > 2) {
            fprintf(stderr, "handoff: usage: handoff help [COMMAND]\n");
        } else if (argc - optind == 2) {
            rc = help_for(argv[optind + 1], stdout);
        } else {
            cli_usage(stdout);
            rc = EXIT_OK;
        }
    } else if (help) {
        rc = help_for(argv[optind], stdout);
    } else {
        rc = run(&c, argc, argv, config_flag);
        explain_failure(&c, rc);
    }
out:
    hx_client_destroy(&c.client);
    hx_clinic_destroy(&c.store);
    hx_registration_destroy(&c.registration);
    cli_config_free(&c.cfg);
    return rc;
}
