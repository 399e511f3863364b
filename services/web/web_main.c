/* handoff-web — the clinic portal: `handoff-web serve` hosts one or many clinics' inboxes in
 * a browser; `handoff-web user add|disable|reset|list` manages who may sign in, `user notify`
 * which e-mail notices each gets; `handoff-web clinic totp` whether a clinic's users need a
 * second factor; `handoff-web client add|reset|disable|list` the FHIR API's clients (EMRs). */
#include "web.h"
#include "hx_api.h"
#include "hx_metrics.h"
#include "hx_curve.h"
#include "hx_opt.h"
#include "web_fhir.h"
#include "web_notify.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

static const char usage_top[] =
    "usage: handoff-web serve [options]\n"
    "       handoff-web user add NAME --role ROLE [--clinic ID] [--accounts FILE|URL] [--password-file FILE]\n"
    "                            [--email ADDR] [--notify new,question,status|none]\n"
    "       handoff-web user disable NAME [--accounts FILE|URL]\n"
    "       handoff-web user reset NAME [--accounts FILE|URL] [--password-file FILE]\n"
    "       handoff-web user list [--accounts FILE|URL]\n"
    "       handoff-web user notify NAME [--email ADDR|none] [--notify LIST|none] [--accounts FILE|URL]\n"
    "       handoff-web clinic totp CLINIC|network [on|off] [--accounts FILE|URL]\n"
    "       handoff-web client add NAME --clinic ID [--scopes \"SCOPES\"] [--accounts FILE|URL]\n"
    "       handoff-web client reset|disable NAME [--accounts FILE|URL]\n"
    "       handoff-web client list [--clinic ID] [--accounts FILE|URL]\n"
    "\n"
    "The clinic portal: a web inbox for therapists and front desks. It holds each hosted\n"
    "clinic's own key and opens that clinic's own broker session, as the handoff CLI does.\n"
    "Roles: clinician, front-desk, clinic-admin (these need --clinic), reviewer, network-admin.\n"
    "Passwords (12 to 1024 bytes) are read from --password-file, else from standard input (the\n"
    "first line; asked for without echo on a terminal).\n"
    "E-mail notices (when the portal runs with --smtp-url) go to a clinic user's --email for\n"
    "what --notify lists: new (a new handoff for the clinic), question (a question awaits the\n"
    "clinic's reply), status (a referral's status changed); 'user notify NAME' alone shows them.\n"
    "The FHIR API (/fhir/r4) is for clients: an EMR of one clinic, with a secret printed once.\n"
    "Run 'handoff-web serve --help', 'handoff-web user --help' or 'handoff-web client --help'\n"
    "for the options.\n";

enum { S_LISTEN, S_ACCOUNTS, S_HOME, S_BROKER, S_SERVER_KEY, S_CLINICS, S_REVIEWERS, S_SECURE, S_IDLE, S_SYNC,
       S_WAIT, S_ADDR_FAILS, S_BEHIND_PROXY, S_PUBLIC_URL, S_SMTP_URL, S_SMTP_FROM, S_SMTP_STARTTLS, S_SMTP_RETRY,
       S_DIRECTORY, S_FHIR_HTTP_HOOKS, S_FHIR_RETRY, S_FHIR_RETRY_MAX, S_DATA_KEY, S_COUNT };
static const hx_opt_t serve_opts[S_COUNT] = {
    [S_LISTEN] = {"listen", HX_OPT_TEXT, "HANDOFF_WEB_LISTEN", "127.0.0.1:8080", 0, 0, "HOST:PORT",
                  "where the portal listens (port 0: any free port, printed at start)"},
    [S_ACCOUNTS] = {"accounts", HX_OPT_TEXT, "HANDOFF_WEB_ACCOUNTS", NULL, 0, 0, "FILE|URL",
                    "the users, sessions and audit store: a SQLite file, or postgresql://USER@HOST/DB\n"
                    "(several portals may share one) [HOME/web-accounts.db]"},
    [S_HOME] = {"home", HX_OPT_TEXT, "HANDOFF_HOME", NULL, 0, 0, "DIR",
                "where each hosted clinic's local store is kept [~/.handoff]"},
    [S_BROKER] = {"broker", HX_OPT_TEXT, "HANDOFF_BROKER", "tcp://127.0.0.1:5555", 0, 0, "ENDPOINT", "the broker"},
    [S_SERVER_KEY] = {"server-key", HX_OPT_TEXT, "HANDOFF_SERVER_KEY", NULL, 0, 0, "FILE",
                      "CURVE: the broker's public key (then every clinic needs its key file)"},
    [S_CLINICS] = {"clinics", HX_OPT_TEXT, "HANDOFF_WEB_CLINICS", NULL, 0, 0, "\"ID=KEY ...\"",
                   "the hosted clinics, each with its secret key file (space separated)"},
    [S_REVIEWERS] = {"reviewers", HX_OPT_TEXT, "HANDOFF_WEB_REVIEWERS", NULL, 0, 0, "\"NAME=KEY\"",
                     "a reviewer mailbox of the network (the needs-review queue), with its key"},
    [S_SECURE] = {"secure-cookies", HX_OPT_FLAG, "HANDOFF_WEB_SECURE_COOKIES", NULL, 0, 0, NULL,
                  "mark cookies Secure (behind TLS, as in the compose stack)"},
    [S_IDLE] = {"idle-seconds", HX_OPT_U32, "HANDOFF_WEB_IDLE_SECONDS", "900", 5, 43200, "N",
                "a session unused this long ends: 15 minutes by default (5-43200)"},
    [S_SYNC] = {"sync-ms", HX_OPT_U32, "HANDOFF_WEB_SYNC_MS", "1000", 100, 60000, "N",
                "how often each hosted mailbox is fetched (100-60000)"},
    [S_WAIT] = {"wait-ms", HX_OPT_U32, "HANDOFF_WEB_WAIT_MS", "8000", 500, 60000, "N",
                "how long an action waits for scheduling's answer before saying 'sent' (500-60000)"},
    [S_ADDR_FAILS] = {"address-failures", HX_OPT_U32, "HANDOFF_WEB_ADDRESS_FAILURES", "20", 3, 10000, "N",
                      "failed sign-ins from one address in 15 minutes before it is held (3-10000)"},
    [S_BEHIND_PROXY] = {"behind-proxy", HX_OPT_FLAG, "HANDOFF_WEB_BEHIND_PROXY", NULL, 0, 0, NULL,
                        "reached only through a proxy (the compose stack's nginx): the client's address is\n"
                        "the last of X-Forwarded-For, for the per-address hold and the audit"},
    [S_PUBLIC_URL] = {"public-url", HX_OPT_TEXT, "HANDOFF_WEB_PUBLIC_URL", NULL, 0, 0, "URL",
                      "the address people reach the portal at (printed at start; the links in e-mail\n"
                      "notices) [http://127.0.0.1:PORT]"},
    [S_SMTP_URL] = {"smtp-url", HX_OPT_TEXT, "HANDOFF_WEB_SMTP_URL", "none", 0, 0, "URL",
                    "e-mail notices through this SMTP server: smtp://HOST:PORT, or smtps://HOST:PORT for\n"
                    "TLS; user:password@ in it (best from the environment) logs in; none: no notices"},
    [S_SMTP_FROM] = {"smtp-from", HX_OPT_TEXT, "HANDOFF_WEB_SMTP_FROM", NULL, 0, 0, "ADDR",
                     "the notices' sender address (required with --smtp-url)"},
    [S_SMTP_STARTTLS] = {"smtp-starttls", HX_OPT_FLAG, "HANDOFF_WEB_SMTP_STARTTLS", NULL, 0, 0, NULL,
                         "smtp://: require STARTTLS (the certificate checked), as smtps:// does TLS"},
    [S_SMTP_RETRY] = {"smtp-retry-ms", HX_OPT_U32, "HANDOFF_WEB_SMTP_RETRY_MS", "30000", 100, 3600000, "N",
                      "a notice the server did not take is tried again after this, doubling up to an\n"
                      "hour; given up after 24 hours (100-3600000)"},
    [S_DIRECTORY] = {"directory", HX_OPT_TEXT, "HANDOFF_DIRECTORY", NULL, 0, 0, "FILE",
                     "the network's directory (scheduling's --directory): the FHIR API's Organization,\n"
                     "Location, Practitioner and PractitionerRole resources; without it, only the ids\n"
                     "that messages name"},
    [S_FHIR_HTTP_HOOKS] = {"fhir-http-hooks", HX_OPT_FLAG, "HANDOFF_WEB_FHIR_HTTP_HOOKS", NULL, 0, 0, NULL,
                           "FHIR subscriptions may deliver to plain http:// endpoints (a host's own\n"
                           "loopback, tests); without it, https:// only"},
    [S_FHIR_RETRY] = {"fhir-retry-ms", HX_OPT_U32, "HANDOFF_WEB_FHIR_RETRY_MS", "1000", 100, 3600000, "N",
                      "a subscription notification the endpoint did not take is tried again after\n"
                      "this, doubling (100-3600000)"},
    [S_FHIR_RETRY_MAX] = {"fhir-retry-max-ms", HX_OPT_U32, "HANDOFF_WEB_FHIR_RETRY_MAX_MS", "300000", 100, 86400000,
                          "N", "... up to this between tries (100-86400000)"},
    [S_DATA_KEY] = {"data-key", HX_OPT_TEXT, "HANDOFF_DATA_KEY", NULL, 0, 0, "FILE",
                    "seal each hosted clinic's store with its own key derived from this one (64 hex\n"
                    "characters; handoff datakey FILE makes one); without it, each store's key is\n"
                    "HOME/ID.store.key, made when missing"},
};

enum { U_ACCOUNTS, U_HOME, U_CLINIC, U_ROLE, U_PASSWORD_FILE, U_EMAIL, U_NOTIFY, U_COUNT };
static const hx_opt_t user_opts[U_COUNT] = {
    [U_ACCOUNTS] = {"accounts", HX_OPT_TEXT, "HANDOFF_WEB_ACCOUNTS", NULL, 0, 0, "FILE|URL",
                    "the users, sessions and audit store: a SQLite file, or postgresql://USER@HOST/DB\n"
                    "(several portals may share one) [HOME/web-accounts.db]"},
    [U_HOME] = {"home", HX_OPT_TEXT, "HANDOFF_HOME", NULL, 0, 0, "DIR", "[~/.handoff]"},
    [U_CLINIC] = {"clinic", HX_OPT_TEXT, NULL, NULL, 0, 0, "ID", "add: the user's clinic (clinic roles)"},
    [U_ROLE] = {"role", HX_OPT_TEXT, NULL, NULL, 0, 0, "ROLE",
                "add: clinician, front-desk, clinic-admin, reviewer or network-admin"},
    [U_PASSWORD_FILE] = {"password-file", HX_OPT_TEXT, NULL, NULL, 0, 0, "FILE",
                         "add, reset: the password's file (its first line); else standard input"},
    [U_EMAIL] = {"email", HX_OPT_TEXT, NULL, NULL, 0, 0, "ADDR",
                 "add, notify: the user's e-mail address for notices (none: no address)"},
    [U_NOTIFY] = {"notify", HX_OPT_TEXT, NULL, NULL, 0, 0, "LIST",
                  "add, notify: the notices the user gets: new, question, status (comma separated),\n"
                  "all or none"},
};

/* The accounts file: the option, else HOME/web-accounts.db (HOME: the option, else ~/.handoff). */
static int accounts_path(const char *accounts, const char *home, char *out, size_t cap)
{
    if (accounts) {
        snprintf(out, cap, "%s", accounts);
        return 0;
    }
    char dir[1024];
    if (home)
        snprintf(dir, sizeof dir, "%s", home);
    else if (getenv("HOME"))
        snprintf(dir, sizeof dir, "%s/.handoff", getenv("HOME"));
    else {
        fprintf(stderr, "handoff-web: --accounts: not given, and neither --home nor $HOME is set\n");
        return -1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "handoff-web: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(out, cap, "%s/web-accounts.db", dir);
    return 0;
}

static int accounts_open(const char *path, uint32_t idle_s, hx_accounts_t **a)
{
    char err[512];
    hx_accounts_config_t cfg = {.idle_s = idle_s};
    if (hx_accounts_open(path, &cfg, a, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-web: accounts: %s\n", err);
        return -1;
    }
    return 0;
}

/* A password: the file's first line, or standard input's (without echo on a terminal). */
static int password_read(const char *file, char *out, size_t cap)
{
    FILE *f = file ? fopen(file, "r") : stdin;
    if (!f) {
        fprintf(stderr, "handoff-web: --password-file: %s: %s\n", file, strerror(errno));
        return -1;
    }
    struct termios old, quiet;
    bool tty = !file && isatty(fileno(stdin)) && tcgetattr(fileno(stdin), &old) == 0;
    if (tty) {
        fprintf(stderr, "password (12 characters at least): ");
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(stdin), TCSAFLUSH, &quiet);
    }
    bool got = fgets(out, (int)cap, f) != NULL;
    if (tty) {
        tcsetattr(fileno(stdin), TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (file)
        fclose(f);
    if (!got) {
        fprintf(stderr, "handoff-web: no password given (%s is empty)\n", file ? file : "standard input");
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static void user_print(void *ud, const hx_user_t *u)
{
    (void)ud;
    printf("%-24s %-14s %-14s %s\n", u->name, u->clinic[0] ? u->clinic : "(network)", hx_user_role_text(u->role),
           u->disabled ? "disabled" : "active");
}

static int cmd_user(int argc, char **argv)
{
    static const char head[] = "usage: handoff-web user add|disable|reset|list|notify [NAME] [options]\n\noptions:\n";
    if (argc < 2) {
        fputs(usage_top, stderr);
        return 2;
    }
    const char *sub = argv[1];
    bool list = !strcmp(sub, "list");
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        fputs(head, stdout);
        hx_opt_help(stdout, user_opts, U_COUNT);
        return 0;
    }
    if (strcmp(sub, "add") && strcmp(sub, "disable") && strcmp(sub, "reset") && strcmp(sub, "notify") && !list) {
        fprintf(stderr, "handoff-web: user: '%s' is not add, disable, reset, list or notify\n", sub);
        return 2;
    }
    /* NAME comes right after the subcommand; the options follow it */
    const char *name = !list && argc >= 3 && argv[2][0] != '-' ? argv[2] : NULL;
    hx_opt_val_t v[U_COUNT];
    int rc = name ? hx_opt_parse("handoff-web user", user_opts, U_COUNT, argc - 2, argv + 2, head, NULL, v)
                  : hx_opt_parse("handoff-web user", user_opts, U_COUNT, argc - 1, argv + 1, head, NULL, v);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!list && !name) {
        fprintf(stderr, "handoff-web: user %s needs a NAME\n", sub);
        return 2;
    }
    /* the e-mail address ("none": no address) and the notices, checked before anything changes */
    const char *email = v[U_EMAIL].text && !strcmp(v[U_EMAIL].text, "none") ? "" : v[U_EMAIL].text;
    unsigned bits = 0;
    if (email && *email && !hx_email_valid(email)) {
        fprintf(stderr, "handoff-web: user %s: --email: not an address notices can go to (one '@' and a domain, "
                        "ASCII, no spaces, at most %d bytes)\n", sub, HX_EMAIL_MAX);
        return 2;
    }
    if (v[U_NOTIFY].text && hx_notify_parse(v[U_NOTIFY].text, &bits) != 0) {
        fprintf(stderr, "handoff-web: user %s: --notify: new, question, status (comma separated), all or none\n",
                sub);
        return 2;
    }
    int notify = v[U_NOTIFY].text ? (int)bits : -1;
    bool shown = false;
    char path[1100], why[256], password[HX_PASSWORD_MAX + 2];
    hx_accounts_t *a = NULL;
    if (accounts_path(v[U_ACCOUNTS].text, v[U_HOME].text, path, sizeof path) || accounts_open(path, 0, &a))
        return 1;
    rc = 0;
    if (list) {
        hx_user_each(a, NULL, user_print, NULL);
    } else if (!strcmp(sub, "disable")) {
        rc = hx_user_disable(a, name, why, sizeof why);
    } else if (!strcmp(sub, "notify") && !email && notify < 0) {
        char addr[HX_EMAIL_MAX + 1], text[64];
        unsigned now = 0;
        if ((rc = hx_user_notify(a, name, addr, &now)) == 0) {
            hx_notify_text(now, text, sizeof text);
            printf("%s: email %s, notices %s\n", name, addr[0] ? addr : "(none)", text);
            shown = true;
        } else {
            snprintf(why, sizeof why, "name: no such user");
        }
    } else if (!strcmp(sub, "notify")) {
        rc = hx_user_set_notify(a, name, email, notify, why, sizeof why);
    } else {
        hx_user_role_t role = 0;
        if (!strcmp(sub, "add") && !(role = hx_user_role_from_text(v[U_ROLE].text))) {
            fprintf(stderr, "handoff-web: user add: --role must be clinician, front-desk, clinic-admin, reviewer or "
                            "network-admin%s%s%s\n",
                    v[U_ROLE].text ? " (got '" : "", v[U_ROLE].text ? v[U_ROLE].text : "", v[U_ROLE].text ? "')" : "");
            hx_accounts_close(&a);
            return 2;
        }
        if (password_read(v[U_PASSWORD_FILE].text, password, sizeof password) != 0) {
            hx_accounts_close(&a);
            return 2;
        }
        rc = !strcmp(sub, "add") ? hx_user_add(a, name, v[U_CLINIC].text ? v[U_CLINIC].text : "", role, password,
                                               why, sizeof why)
                                 : hx_user_reset(a, name, password, why, sizeof why);
        sodium_memzero(password, sizeof password);
        if (rc == 0 && !strcmp(sub, "add") && (email || notify >= 0))
            rc = hx_user_set_notify(a, name, email, notify, why, sizeof why);
    }
    hx_accounts_close(&a);
    if (rc != 0) {
        fprintf(stderr, "handoff-web: user %s %s: %s\n", sub, name, why);
        return 1;
    }
    if (!list && !shown)
        printf("user %s: %s done\n", name, sub);
    return 0;
}

enum { C_ACCOUNTS, C_HOME, C_COUNT };
static const hx_opt_t clinic_opts[C_COUNT] = {
    [C_ACCOUNTS] = {"accounts", HX_OPT_TEXT, "HANDOFF_WEB_ACCOUNTS", NULL, 0, 0, "FILE|URL",
                    "the users, sessions and audit store: a SQLite file, or postgresql://USER@HOST/DB\n"
                    "(several portals may share one) [HOME/web-accounts.db]"},
    [C_HOME] = {"home", HX_OPT_TEXT, "HANDOFF_HOME", NULL, 0, 0, "DIR", "[~/.handoff]"},
};

static void user_count(void *ud, const hx_user_t *u)
{
    (void)u;
    (*(size_t *)ud)++;
}

/* `handoff-web clinic totp CLINIC|network [on|off]`: whether a clinic's users (or the network's
 * reviewers and admins) must give a TOTP code after the password; without on|off, says which. */
static int cmd_clinic(int argc, char **argv)
{
    static const char head[] =
        "usage: handoff-web clinic totp CLINIC|network [on|off] [options]\n\n"
        "Two-step sign-in: when on, every user of CLINIC ('network': the reviewers and network\n"
        "admins) enrols an authenticator app at the next sign-in and gives its 6-digit code after\n"
        "the password from then on. Turning it on ends those users' sessions. Without on|off,\n"
        "prints whether it is on.\n\noptions:\n";
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        fputs(head, stdout);
        hx_opt_help(stdout, clinic_opts, C_COUNT);
        return 0;
    }
    if (argc < 3 || strcmp(argv[1], "totp") || argv[2][0] == '-') {
        fputs(head, stderr);
        hx_opt_help(stderr, clinic_opts, C_COUNT);
        return 2;
    }
    const char *clinic = !strcmp(argv[2], "network") ? "" : argv[2];
    const char *what = argc >= 4 && argv[3][0] != '-' ? argv[3] : NULL;
    if (what && strcmp(what, "on") && strcmp(what, "off")) {
        fprintf(stderr, "handoff-web: clinic totp %s: '%s' is not on or off\n", argv[2], what);
        return 2;
    }
    int skip = what ? 3 : 2;
    hx_opt_val_t v[C_COUNT];
    int rc = hx_opt_parse("handoff-web clinic totp", clinic_opts, C_COUNT, argc - skip, argv + skip, head, NULL, v);
    if (rc)
        return rc == 1 ? 0 : 2;
    char path[1100], why[256];
    hx_accounts_t *a = NULL;
    if (accounts_path(v[C_ACCOUNTS].text, v[C_HOME].text, path, sizeof path) || accounts_open(path, 0, &a))
        return 1;
    const char *label = clinic[0] ? clinic : "network (reviewers and network admins)";
    rc = 0;
    if (what) {
        rc = hx_totp_policy_set(a, clinic, !strcmp(what, "on"), why, sizeof why);
        if (rc != 0)
            fprintf(stderr, "handoff-web: clinic totp %s: %s\n", argv[2], why);
    }
    int on = rc == 0 ? hx_totp_policy(a, clinic) : -1;
    size_t users = 0;
    if (on >= 0 && clinic[0])
        hx_user_each(a, clinic, user_count, &users);
    if (on < 0) {
        if (rc == 0)
            fprintf(stderr, "handoff-web: clinic totp %s: the accounts store failed\n", argv[2]);
        rc = 1;
    } else if (clinic[0] && users == 0) {
        printf("clinic %s: two-step sign-in %s (no user of this clinic yet)\n", label, on ? "on" : "off");
    } else {
        printf("clinic %s: two-step sign-in %s\n", label, on ? "on" : "off");
    }
    hx_accounts_close(&a);
    return rc;
}

enum { K_ACCOUNTS, K_HOME, K_CLINIC, K_SCOPES, K_COUNT };
static const hx_opt_t client_opts[K_COUNT] = {
    [K_ACCOUNTS] = {"accounts", HX_OPT_TEXT, "HANDOFF_WEB_ACCOUNTS", NULL, 0, 0, "FILE|URL",
                    "the users, sessions and audit store (a SQLite file, or postgresql://USER@HOST/DB);\n"
                    "the API's clients are kept there too [HOME/web-accounts.db]"},
    [K_HOME] = {"home", HX_OPT_TEXT, "HANDOFF_HOME", NULL, 0, 0, "DIR", "[~/.handoff]"},
    [K_CLINIC] = {"clinic", HX_OPT_TEXT, NULL, NULL, 0, 0, "ID",
                  "add: the client's clinic (required); list: only that clinic's clients"},
    [K_SCOPES] = {"scopes", HX_OPT_TEXT, NULL, NULL, 0, 0, "\"SCOPES\"",
                  "add: the scopes it may be granted, space separated [the API's own, below]"},
};

/* What an EMR needs of the API: submit and follow referrals, update its Tasks, post to the care
 * threads, subscribe, and read what those name. */
static const char client_scopes_default[] =
    "system/ServiceRequest.crs system/Task.rus system/Communication.crs system/Subscription.cruds "
    "system/Patient.rs system/Practitioner.rs system/PractitionerRole.rs system/Organization.rs "
    "system/Location.rs system/Appointment.rs system/DocumentReference.rs system/Binary.r";

static void client_print(void *ud, const hx_api_client_t *c)
{
    (void)ud;
    printf("%-24s %-14s %-9s %s\n", c->id, c->clinic, c->disabled ? "disabled" : "active", c->scopes);
}

/* The help's last lines: the default scopes, wrapped. */
static void scopes_wrapped(char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "\n--scopes by default:\n "), line = 0;
    for (const char *p = client_scopes_default; *p && n < cap;) {
        size_t len = strcspn(p, " ");
        if (line && line + 1 + len > 88) {
            n += (size_t)snprintf(out + n, cap - n, "\n ");
            line = 0;
        }
        if (n < cap)
            n += (size_t)snprintf(out + n, cap - n, " %.*s", (int)len, p);
        line += len + 1;
        p += len + strspn(p + len, " ");
    }
    if (n < cap)
        snprintf(out + n, cap - n, "\n");
}

/* `handoff-web client add|reset|disable|list`: the FHIR API's clients. A secret is printed once,
 * on standard output, on a line of its own after a line saying what it is for. */
static int cmd_client(int argc, char **argv)
{
    static const char head[] =
        "usage: handoff-web client add NAME --clinic ID [--scopes \"SCOPES\"] [options]\n"
        "       handoff-web client reset NAME [options]\n"
        "       handoff-web client disable NAME [options]\n"
        "       handoff-web client list [--clinic ID] [options]\n\n"
        "The FHIR API's clients: each an EMR of one clinic, which asks POST /fhir/r4/token for\n"
        "access tokens (OAuth 2.0 client credentials: client_id NAME and its secret); a token\n"
        "lasts 5 minutes and reads and changes only that clinic's referrals. 'add' and 'reset'\n"
        "print a new secret once (only a hash of it is kept): 'reset' replaces a lost one, ends\n"
        "the client's tokens and enables it again; 'disable' ends its tokens and turns its\n"
        "subscriptions off. 5 wrong secrets in a row hold a client back for 5 minutes.\n"
        "NAME: 1 to 64 of a-z, 0-9, '.', '_', '-'. CLINIC: 1 to 31 of A-Z, a-z, 0-9, '.', '_', '-'.\n"
        "A scope is system/TYPE.PERMISSIONS: TYPE a resource type (ServiceRequest, Task, ...) or\n"
        "*, PERMISSIONS letters of cruds in that order (create, read, update, delete, search) or\n"
        "read, write, *.\n\noptions:\n";
    char tail[sizeof client_scopes_default + 64];
    scopes_wrapped(tail, sizeof tail);
    bool help = argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
    if (argc < 2 || help) {
        FILE *f = help ? stdout : stderr;
        fputs(head, f);
        hx_opt_help(f, client_opts, K_COUNT);
        fputs(tail, f);
        return help ? 0 : 2;
    }
    const char *sub = argv[1];
    bool list = !strcmp(sub, "list"), add = !strcmp(sub, "add");
    if (!add && !list && strcmp(sub, "reset") && strcmp(sub, "disable")) {
        fprintf(stderr, "handoff-web: client: '%s' is not add, reset, disable or list\n", sub);
        return 2;
    }
    /* NAME comes right after the subcommand; the options follow it */
    const char *name = !list && argc >= 3 && argv[2][0] != '-' ? argv[2] : NULL;
    hx_opt_val_t v[K_COUNT];
    int rc = name ? hx_opt_parse("handoff-web client", client_opts, K_COUNT, argc - 2, argv + 2, head, tail, v)
                  : hx_opt_parse("handoff-web client", client_opts, K_COUNT, argc - 1, argv + 1, head, tail, v);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!list && !name) {
        fprintf(stderr, "handoff-web: client %s needs a NAME\n", sub);
        return 2;
    }
    if (add && !v[K_CLINIC].text) {
        fprintf(stderr, "handoff-web: client add %s: --clinic ID is required (the clinic whose referrals it "
                        "reads and sends)\n", name);
        return 2;
    }
    if ((!add && !list && v[K_CLINIC].text) || (!add && v[K_SCOPES].text)) {
        fprintf(stderr, "handoff-web: client %s: %s is for %s only\n", sub, v[K_SCOPES].text ? "--scopes" : "--clinic",
                v[K_SCOPES].text ? "add" : "add and list");
        return 2;
    }
    char path[1100], why[300], secret[HX_TOKEN_LEN + 1] = "";
    hx_accounts_t *a = NULL;
    if (accounts_path(v[K_ACCOUNTS].text, v[K_HOME].text, path, sizeof path) || accounts_open(path, 0, &a))
        return 1;
    rc = 0;
    if (list) {
        if ((rc = hx_api_client_each(a, v[K_CLINIC].text, client_print, NULL)) != 0)
            snprintf(why, sizeof why, "the accounts store failed");
    } else if (add) {
        rc = hx_api_client_add(a, name, v[K_CLINIC].text, v[K_SCOPES].text ? v[K_SCOPES].text : client_scopes_default,
                               secret, why, sizeof why);
    } else if (!strcmp(sub, "reset")) {
        rc = hx_api_client_reset(a, name, secret, why, sizeof why);
    } else {
        rc = hx_api_client_disable(a, name, why, sizeof why);
    }
    hx_accounts_close(&a);
    if (rc != 0) {
        fprintf(stderr, "handoff-web: client %s%s%s: %s\n", sub, name ? " " : "", name ? name : "", why);
        return 1;
    }
    if (secret[0]) {
        printf("client %s %s; its %ssecret follows, shown only this once: give it to the EMR as client_secret "
               "for POST /fhir/r4/token, and keep it as a password\n%s\n",
               name, add ? "added" : "reset", add ? "" : "new ", secret);
        sodium_memzero(secret, sizeof secret);
    } else if (!list) {
        printf("client %s: disabled (its tokens ended, its subscriptions off)\n", name);
    }
    return 0;
}

/* "ID=KEY ID=KEY" into the hosted list. */
static int hosted_list(web_t *w, const char *list, bool reviewer)
{
    if (!list)
        return 0;
    char *copy = strdup(list), *save = NULL, err[512];
    int rc = copy ? 0 : -1;
    for (char *t = copy ? strtok_r(copy, " ,\t\n", &save) : NULL; t && rc == 0; t = strtok_r(NULL, " ,\t\n", &save))
        if ((rc = web_hosted_add(w, t, reviewer, err, sizeof err)) != 0)
            fprintf(stderr, "handoff-web: %s\n", err);
    free(copy);
    return rc;
}

static int cmd_serve(int argc, char **argv)
{
    static const char head[] =
        "usage: handoff-web serve [options]\n\n"
        "Serves the clinic portal for the hosted clinics. Each clinic's mailbox is fetched into its\n"
        "local store (the same store and library as the handoff CLI) every --sync-ms.\n\n"
        "options (each also from the environment variable shown, then its default):\n";
    static web_t w;             /* large; one per process */
    hx_opt_val_t v[S_COUNT];
    int rc = hx_opt_parse("handoff-web serve", serve_opts, S_COUNT, argc, argv, head, NULL, v);
    if (rc)
        return rc == 1 ? 0 : 2;
    char path[1100], err[5000];
    static uint8_t data_key[32];
    if (v[S_DATA_KEY].text && hx_data_key_load(v[S_DATA_KEY].text, data_key, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-web: --data-key: %s\n", err);
        return 2;
    }
    w.cfg = (web_config_t){.listen = v[S_LISTEN].text, .home = v[S_HOME].text, .broker = v[S_BROKER].text,
                           .server_key = v[S_SERVER_KEY].text, .secure_cookies = v[S_SECURE].on,
                           .idle_s = v[S_IDLE].u32, .sync_ms = v[S_SYNC].u32, .wait_ms = v[S_WAIT].u32,
                           .login_per_address = (int)v[S_ADDR_FAILS].u32, .behind_proxy = v[S_BEHIND_PROXY].on, .public_url = v[S_PUBLIC_URL].text,
                           .smtp_url = v[S_SMTP_URL].text, .smtp_from = v[S_SMTP_FROM].text,
                           .smtp_starttls = v[S_SMTP_STARTTLS].on, .smtp_retry_ms = v[S_SMTP_RETRY].u32,
                           .directory = v[S_DIRECTORY].text, .fhir_http_hooks = v[S_FHIR_HTTP_HOOKS].on,
                           .fhir_retry_ms = v[S_FHIR_RETRY].u32, .fhir_retry_max_ms = v[S_FHIR_RETRY_MAX].u32,
                           .data_key = v[S_DATA_KEY].text, .data_key_bytes = v[S_DATA_KEY].text ? data_key : NULL};
    if (w.cfg.fhir_retry_max_ms < w.cfg.fhir_retry_ms)
        w.cfg.fhir_retry_max_ms = w.cfg.fhir_retry_ms;
    if (w.cfg.directory && !(w.dir = hx_fhir_directory_load(w.cfg.directory, err, sizeof err))) {
        fprintf(stderr, "handoff-web: --directory %s: %s\n", w.cfg.directory, err);
        return 2;
    }
    if (hosted_list(&w, v[S_CLINICS].text, false) || hosted_list(&w, v[S_REVIEWERS].text, true))
        return 2;
    if (!w.n_hosted) {
        fprintf(stderr, "handoff-web: --clinics: no clinic to host (give \"ID=KEYFILE ...\")\n");
        return 2;
    }
    if (web_notify_check(&w.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-web: %s\n", err);
        return 2;
    }
    if (accounts_path(v[S_ACCOUNTS].text, v[S_HOME].text, path, sizeof path) ||
        accounts_open(path, w.cfg.idle_s, &w.accounts))
        return 1;
    w.cfg.accounts = path;
    if (!(w.store_metrics = hx_metrics_new()) || hx_accounts_metrics(w.accounts, w.store_metrics) != 0) {
        fprintf(stderr, "handoff-web: out of memory\n");
        hx_accounts_close(&w.accounts);
        hx_metrics_destroy(&w.store_metrics);
        return 1;
    }
    pthread_mutex_init(&w.lock, NULL);
    pthread_mutex_init(&w.addr_lock, NULL);
    if (web_hosted_open(&w, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-web: %s\n", err);
        web_hosted_close(&w);
        hx_accounts_close(&w.accounts);
        hx_metrics_destroy(&w.store_metrics);
        return 1;
    }
    /* SIGINT and SIGTERM are taken by this thread alone (sigwait below): every thread started
     * from here on has them blocked */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (web_start(&w, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-web: %s\n", err);
        web_hosted_close(&w);
        hx_accounts_close(&w.accounts);
        hx_metrics_destroy(&w.store_metrics);
        return 1;
    }
    /* the notices' sender before the mailbox thread that queues for it (after web_start: the
     * links' default names the port) */
    if (web_notify_start(&w, err, sizeof err) != 0) {
        fprintf(stderr, "handoff-web: %s\n", err);
        web_stop(&w);
        web_hosted_close(&w);
        hx_accounts_close(&w.accounts);
        hx_metrics_destroy(&w.store_metrics);
        return 1;
    }
    /* the subscriptions' thread before the mailbox thread, which kicks it */
    if (web_fhir_notify_start(&w) != 0) {
        fprintf(stderr, "handoff-web: cannot start the FHIR subscriptions' thread\n");
        web_stop(&w);
        web_notify_stop(&w);
        web_hosted_close(&w);
        hx_accounts_close(&w.accounts);
        hx_metrics_destroy(&w.store_metrics);
        return 1;
    }
    if (web_sync_start(&w) != 0) {
        fprintf(stderr, "handoff-web: cannot start the mailbox thread\n");
        web_stop(&w);
        web_fhir_notify_stop(&w);
        web_notify_stop(&w);
        web_hosted_close(&w);
        hx_accounts_close(&w.accounts);
        hx_metrics_destroy(&w.store_metrics);
        return 1;
    }
    fprintf(stderr, "handoff-web: serving %zu mailbox(es) on port %d%s%s\n", w.n_hosted, w.port,
            w.cfg.public_url ? " as " : "", w.cfg.public_url ? w.cfg.public_url : "");
    printf("listening %d\n", w.port);
    fflush(stdout);
    int sig = 0;
    sigwait(&stop_set, &sig);
    fprintf(stderr, "handoff-web: stopping\n");
    web_stop(&w);
    web_sync_stop(&w);
    web_fhir_notify_stop(&w);       /* after the mailbox thread, which kicks it */
    web_notify_stop(&w);            /* after the mailbox thread, which queues for it */
    web_import_stop(&w);
    web_hosted_close(&w);
    hx_fhir_directory_free(&w.dir);
    hx_accounts_close(&w.accounts);
    hx_metrics_destroy(&w.store_metrics);   /* after the store, which counts into it */
    pthread_mutex_destroy(&w.lock);
    pthread_mutex_destroy(&w.addr_lock);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "handoff-web: libsodium could not start\n");
        return 1;
    }
    if (argc >= 2 && !strcmp(argv[1], "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "user"))
        return cmd_user(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "clinic"))
        return cmd_clinic(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "client"))
        return cmd_client(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))) {
        fputs(usage_top, stdout);
        return 0;
    }
    fputs(usage_top, stderr);
    return 2;
}
