/* `handoff thread ID`, `handoff note ID TEXT [--ask]`, `handoff reply ID TEXT`: a referral's
 * care thread, between the referring clinic and the clinics holding its handoffs (only they
 * receive it). Posts go to scheduling, which checks who posts (from the broker-set sender),
 * stores them and delivers them to every participant; the clinic keeps the posts it received
 * (its own included: scheduling sends the sender its copy) in its store like other messages. */
#include "cli_cmd.h"
#include "cli_fmt.h"
#include "hx_refjson.h"
#include "hx_thread_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Handoff__ThreadPost **posts;
    size_t n, cap;
} thread_t;

static void on_post(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type, (void)at;
    thread_t *t = ud;
    Handoff__ThreadPost *p = handoff__thread_post__unpack(NULL, len, data);
    if (!p)
        return;
    for (size_t i = 0; i < t->n; i++)           /* a post delivered twice is one */
        if (strcmp(t->posts[i]->post_id, p->post_id) == 0) {
            handoff__thread_post__free_unpacked(p, NULL);
            return;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        Handoff__ThreadPost **grown = realloc(t->posts, cap * sizeof *grown);
        if (!grown) {
            handoff__thread_post__free_unpacked(p, NULL);
            return;
        }
        t->posts = grown;
        t->cap = cap;
    }
    t->posts[t->n++] = p;
}

static void thread_free(thread_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        handoff__thread_post__free_unpacked(t->posts[i], NULL);
    free(t->posts);
    memset(t, 0, sizeof *t);
}

static json_t *post_json(const Handoff__ThreadPost *p)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:b, s:s}", "post_id", p->post_id, "kind", p->kind, "by", p->by,
                     "text", p->text, "at_ms", (json_int_t)p->at_ms, "in_reply_to", p->in_reply_to, "awaiting_reply",
                     p->awaiting_reply, "asked_by", p->asked_by);
}

/* "awaiting a reply from ..." for the thread's latest post, or "" when nothing awaits. */
static void awaiting_text(cli_t *c, const thread_t *t, char *out, size_t cap)
{
    out[0] = '\0';
    const Handoff__ThreadPost *last = t->n ? t->posts[t->n - 1] : NULL;
    if (!last || !last->awaiting_reply)
        return;
    if (strcmp(last->asked_by, c->clinic) == 0)
        snprintf(out, cap, "awaiting a reply to this clinic's question");
    else
        snprintf(out, cap, "awaiting this clinic's reply to a question from %s", last->asked_by);
}

static int thread_show(cli_t *c, const char *id)
{
    if (!hx_referral_id_valid(id)) {
        fprintf(stderr, "handoff: thread: '%s' is not a referral id (R- and 16 characters of 0-9 A-Z without I L O U)\n",
                id);
        return EXIT_USAGE;
    }
    int rc = cli_sync_store(c, NULL);
    if (rc != EXIT_OK)
        return rc;
    thread_t t = {0};
    hx_clinic_query_t q = {.type = "handoff.ThreadPost", .referral_id = id};
    if (hx_clinic_each_received(c->store, &q, on_post, &t)) {
        thread_free(&t);
        return cli_clinic_failure(c, HX_EIO);
    }
    char wait[200];
    awaiting_text(c, &t, wait, sizeof wait);
    if (c->json) {
        json_t *posts = json_array();
        for (size_t i = 0; i < t.n; i++)
            json_array_append_new(posts, post_json(t.posts[i]));
        cli_print_json(json_pack("{s:s, s:o, s:b, s:s}", "referral_id", id, "posts", posts, "awaiting_reply",
                                 wait[0] != '\0', "asked_by", wait[0] ? t.posts[t.n - 1]->asked_by : ""));
    } else {
        for (size_t i = 0; i < t.n; i++) {
            char when[CLI_FMT_LEN];
            const Handoff__ThreadPost *p = t.posts[i];
            printf("%s  %s  %-8s %s%s%s\n", cli_time_abs(p->at_ms, when), p->by, p->kind, p->post_id,
                   p->in_reply_to[0] ? " re " : "", p->in_reply_to);
            printf("    %s\n", p->text);
        }
        printf("%s: %zu post(s)%s%s\n", id, t.n, wait[0] ? "; " : "", wait);
    }
    thread_free(&t);
    return EXIT_OK;
}

/* Posts text of kind to the thread of id and prints the outcome (quiet: only a refusal or
 * failure, on stderr). */
static int thread_send(cli_t *c, const char *cmd, const char *id, const char *kind, const char *text, bool quiet)
{
    if (!hx_referral_id_valid(id)) {
        fprintf(stderr, "handoff: %s: '%s' is not a referral id (R- and 16 characters of 0-9 A-Z without I L O U)\n",
                cmd, id);
        return EXIT_USAGE;
    }
    char why[256];
    if (hx_thread_post_check(kind, text, "", why, sizeof why) != 0) {
        fprintf(stderr, "handoff: %s: %s\n", cmd, why);
        return EXIT_USAGE;
    }
    Handoff__ThreadPost p = HANDOFF__THREAD_POST__INIT;
    p.referral_id = (char *)id;
    p.kind = (char *)kind;
    p.text = (char *)text;
    Handoff__ThreadPost *posted = NULL;
    Handoff__StatusUpdate *refused = NULL;
    int rc = hx_clinic_thread_post(c->store, &p, 4 * c->timeout_ms, &posted, &refused);
    if (rc)
        return cli_clinic_failure(c, rc);
    if (refused) {
        if (quiet)
            fprintf(stderr, "handoff: %s %s: the %s was refused: %s\n", cmd, id, kind, refused->reason);
        else if (c->json)
            cli_print_json(hx_status_to_json(refused));
        else
            printf("%s %s refused: %s\n", cmd, id, refused->reason);
        handoff__status_update__free_unpacked(refused, NULL);
        return EXIT_FAIL;
    }
    if (!posted && quiet) {
        fprintf(stderr, "handoff: %s %s: the %s was sent; no answer yet\n", cmd, id, kind);
        return EXIT_OK;
    }
    if (!posted) {
        printf("%s %s: sent; no answer yet (see 'handoff thread %s' later)\n", cmd, id, id);
        return EXIT_OK;
    }
    if (quiet)
        ;
    else if (c->json)
        cli_print_json(post_json(posted));
    else
        printf("%s: %s %s posted%s\n", id, posted->kind, posted->post_id,
               posted->awaiting_reply ? "; the thread awaits a reply" : "");
    handoff__thread_post__free_unpacked(posted, NULL);
    return EXIT_OK;
}

int cmd_thread(cli_t *c, const char *cmd, int argc, char **argv)
{
    if (strcmp(cmd, "thread") == 0 && argc == 1)
        return thread_show(c, argv[0]);
    if (strcmp(cmd, "note") == 0 && argc == 2)
        return thread_send(c, cmd, argv[0], c->ask ? "question" : "note", argv[1], false);
    if (strcmp(cmd, "reply") == 0 && argc == 2)
        return thread_send(c, cmd, argv[0], "reply", argv[1], false);
    fprintf(stderr, "handoff: %s needs %s (see handoff help %s)\n", cmd,
            strcmp(cmd, "thread") == 0 ? "ID" : strcmp(cmd, "note") == 0 ? "ID TEXT [--ask]" : "ID TEXT", cmd);
    return EXIT_USAGE;
}

int cmd_complete_summary(cli_t *c, int argc, char **argv)
{
    char why[256];
    if (hx_thread_post_check("summary", c->summary, "", why, sizeof why) != 0) {
        fprintf(stderr, "handoff: complete: --summary: %s\n", why);
        return EXIT_USAGE;
    }
    int rc = cmd_change(c, "complete", argc, argv);
    if (rc != EXIT_OK)
        return rc;
    rc = thread_send(c, "complete", argv[0], "summary", c->summary, true);
    if (rc == EXIT_OK && !c->json)
        printf("%s: the completion summary is on the care thread\n", argv[0]);
    return rc;
}
