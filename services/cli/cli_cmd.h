/* cli_cmd — what the `handoff` command files share: the run's state, exit codes and output
 * helpers. Clinic commands (cli_cmd_clinic.c) work through the clinic library (hx_clinic.h);
 * operator and other commands (cli_cmd_ops.c) open their own broker session and no store. */
#ifndef CLI_CMD_H
#define CLI_CMD_H
#include "cli_config.h"
#include "cli_keys.h"
#include "hx_client.h"
#include "hx_clinic.h"

#include <jansson.h>
#include <signal.h>
#include <stdint.h>

/* 65 and 77 are sysexits.h's EX_DATAERR and EX_NOPERM. EXIT_DENIED: the broker answered, and
 * will not let this key in (not in its allow-list, CURVE on one side only, the wrong broker key,
 * or a session the key may not open): not "unreachable", which sends people to the network. */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,
    EXIT_USAGE = 2,
    EXIT_UNREACHABLE = 3,
    EXIT_NOTFOUND = 4,
    EXIT_DATAERR = 65,
    EXIT_DENIED = 77,
};

typedef struct {
    cli_config_t cfg;
    char config_file[4200];             /* the config file read, "" when none */
    char flag_err[1024];                /* the first bad setting flag: reported by commands that use settings */
    const char *broker, *clinic, *home, *admin, *server_key, *key;
    const char *reason, *discipline, *dir, *format, *plan;
    const char *reviewer;
    const char *store_key, *data_key;   /* the store key's file, or the portal's data key it derives from */
    const char *new_key, *new_data_key; /* store rekey: the key the store is sealed with from now on */
    const char *summary;                /* complete --summary: posted to the care thread */
    const char *attach;                 /* note, reply --attach FILE */
    const char *out;                    /* attachment --out FILE */
    const char *to;                     /* redirect --to CLINIC[/THERAPIST] */
    char curve_server[41], curve_public[41], curve_secret[41];
    char key_dir[4200];                 /* where ID.key and broker.pub are looked for (--home, ~/.handoff) */
    const char *session_who;            /* "clinic", "reviewer", "operator": whose session, once known */
    const char *session_name;           /* its name (the clinic id, reviewer or admin name) */
    uint32_t timeout_ms, interval_ms, window;
    int json, no_validate, dry_run, once, ask, wait;
    int review;                         /* a review command: the store and session are the reviewer's */
    int quiet_connect;                  /* watch: no message per failed reconnect */
    char connect_err[512];              /* why the last connection failed */
    hx_client_t *client;                /* operator commands: a session without a store */
    hx_clinic_t *store;                 /* clinic commands: the clinic's store and session */
    hx_registration_t *registration;    /* submit, import: the registration setting's file, once read */
} cli_t;

/* Set by SIGINT/SIGTERM while watch or top runs: the one thing a signal handler may touch. */
extern volatile sig_atomic_t cli_stop_requested;
/* SIGINT and SIGTERM end watch and top cleanly (no SA_RESTART: a sleep is cut short). */
void cli_catch_stop_signals(void);
/* Sleeps ms (in slices, so a stop request is seen within 50 ms). */
void cli_nap_ms(uint32_t ms);

/* The exit code for a failed request of the client or clinic library. */
int cli_exit_for(int hx_rc);
/* Opens the clinic's store (hx_clinic_open) into c->store: EXIT_OK, or the exit code after
 * printing why. */
int cli_open_store(cli_t *c);
/* Moves the mailbox into the store (s may be NULL), naming each dropped message on stderr:
 * EXIT_OK or an exit code after printing why. */
int cli_sync_store(cli_t *c, hx_clinic_sync_t *s);
/* Prints "handoff: <what the clinic library says>" (unless quiet) and returns the exit code. */
int cli_clinic_failure(cli_t *c, int rc);

/* Pretty JSON on stdout (takes j); one compact line, flushed (watch --json). */
void cli_print_json(json_t *j);
void cli_print_json_line(json_t *j);
json_t *cli_ms_json(uint64_t ms);

/* The commands: each returns an exit code. nargs/args are the arguments after the command. */
int cmd_submit(cli_t *c, int argc, char **argv);
int cmd_import(cli_t *c, int argc, char **argv);
int cmd_inbox(cli_t *c, int argc);
int cmd_handoffs(cli_t *c, int argc);
int cmd_status(cli_t *c, int argc, char **argv);
int cmd_watch(cli_t *c, int argc);
int cmd_change(cli_t *c, const char *event, int argc, char **argv);
/* review list | show ID | decide ID --as PLAN --reason TEXT (cli_cmd_review.c) */
int cmd_review(cli_t *c, int argc, char **argv);
/* thread ID | note ID TEXT [--ask] | reply ID TEXT (cli_cmd_thread.c) */
int cmd_thread(cli_t *c, const char *cmd, int argc, char **argv);
/* complete --summary TEXT|FILE: the summary's text (a file that exists is read, "-" reads
 * standard input) into a malloc'd string, or NULL after saying why (cli_cmd_thread.c) */
char *cli_summary_text(const char *arg);

int cmd_top(cli_t *c, int argc, int as_admin);
int cmd_dlq(cli_t *c, int argc, char **argv);
int cmd_cluster(cli_t *c, int argc, char **argv);
int cmd_health(cli_t *c, int argc, int as_admin);
int cmd_config(cli_t *c, int argc);
int cmd_keygen(cli_t *c, int argc, char **argv);
int cmd_datakey(cli_t *c, int argc, char **argv);
/* store key|rekey: the clinic store's key (cli_cmd_store.c). */
int cmd_store(cli_t *c, int argc, char **argv);
int cmd_audit(cli_t *c, int argc, char **argv);
/* admin backup OUT ... | admin restore BUNDLE ...: argv[0] is "admin"; its own options, no
 * settings and no session (cli_cmd_backup.c) */
int cmd_admin(int argc, char **argv);
/* admin migrate (cli_cmd_migrate.c): argv[0] is "migrate". */
int cmd_migrate(int argc, char **argv);
/* play STORY [FROM[-TO]]: a collaborative referral's story, as each clinic in it (cli_cmd_play.c) */
int cmd_play(cli_t *c, int argc, char **argv);

#endif
