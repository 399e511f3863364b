/* `handoff play STORY [FROM[-TO]]`: plays a collaborative referral's story (cli_story.h)
 * against the network, as each clinic in it: the referring clinic, and whichever clinic holds
 * the physiotherapy or the massage handoff when a step comes (after a decline, the clinic it
 * was booked with again). Each step is run as its own command would run it (`accept`,
 * `decline`, `start`, `complete --summary`, `note [--ask]`, `reply`), shown with that command
 * and its answer, then what the referring clinic sees. Every wait is a condition polled with
 * a deadline: the handoff in the status the step acts on before it, the step's effect in the
 * referrer's history (and the summary on its thread) after it. */
#include "cli_cmd.h"
#include "cli_story.h"
#include "hx_curve.h"
#include "hx_inbox.h"
#include "hx_refjson.h"
#include "hx_thread_rules.h"
#include "hx_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PLAY_MAX_CLINICS 8
#define PLAY_POLL_MS 100
#define PLAY_WAIT_FACTOR 20             /* each wait: up to 20 x --timeout-ms (60 s by default) */
#define PLAY_MAX_POSTS 256

typedef struct {
    cli_t cli;                          /* the run's settings, with this clinic's store and keys */
    char clinic[HX_ID_MAX + 1];
} actor_t;

typedef struct {
    cli_t *base;
    story_t story;
    char rid[HX_REFERRAL_ID_LEN + 1];
    actor_t actors[PLAY_MAX_CLINICS];   /* [0]: the referring clinic */
    size_t n_actors;
    uint64_t wait_ms;
} play_t;

/* What a clinic's store holds of the referral: its status updates and its thread. */
typedef struct {
    Handoff__StatusUpdate *last;        /* the latest update, or NULL */
    size_t updates;
    size_t after;                       /* look for `event` on handoff `d` in updates after this many */
    Handoff__Discipline d;
    const char *event;
    bool seen;
    size_t posts, summaries;            /* posts, and summaries by `by` */
    const char *by;
    bool awaiting;
    char asked_by[HX_ID_MAX + 1];
    char ids[PLAY_MAX_POSTS][HX_THREAD_POST_ID_LEN + 1];
} view_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void view_reset(view_t *v)
{
    if (v->last)
        handoff__status_update__free_unpacked(v->last, NULL);
    v->last = NULL;
    v->updates = v->posts = v->summaries = 0;
    v->seen = v->awaiting = false;
    v->asked_by[0] = '\0';
}

static const Handoff__HandoffStatus *handoff_in(const Handoff__StatusUpdate *u, Handoff__Discipline d)
{
    for (size_t i = 0; u && i < u->n_handoffs; i++)
        if (u->handoffs[i] && u->handoffs[i]->discipline == d)
            return u->handoffs[i];
    return NULL;
}

static void on_update(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type, (void)at;
    view_t *v = ud;
    Handoff__StatusUpdate *u = handoff__status_update__unpack(NULL, len, data);
    if (!u)
        return;
    v->updates++;
    const Handoff__HandoffStatus *h = handoff_in(u, v->d);
    if (v->event && v->updates > v->after && h && strcmp(h->event, v->event) == 0)
        v->seen = true;
    if (v->last)
        handoff__status_update__free_unpacked(v->last, NULL);
    v->last = u;
}

static void on_post(void *ud, const char *type, const uint8_t *data, size_t len, uint64_t at)
{
    (void)type, (void)at;
    view_t *v = ud;
    Handoff__ThreadPost *p = handoff__thread_post__unpack(NULL, len, data);
    if (!p)
        return;
    size_t kept = v->posts < PLAY_MAX_POSTS ? v->posts : PLAY_MAX_POSTS;
    bool again = false;                 /* a post delivered twice is one */
    for (size_t i = 0; i < kept && !again; i++)
        again = strcmp(v->ids[i], p->post_id) == 0;
    if (!again) {
        if (v->posts < PLAY_MAX_POSTS)
            snprintf(v->ids[v->posts], sizeof v->ids[0], "%s", p->post_id);
        v->posts++;
        v->summaries += v->by && strcmp(p->kind, "summary") == 0 && strcmp(p->by, v->by) == 0;
        v->awaiting = p->awaiting_reply;
        snprintf(v->asked_by, sizeof v->asked_by, "%s", p->awaiting_reply ? p->asked_by : "");
    }
    handoff__thread_post__free_unpacked(p, NULL);
}

/* Syncs clinic a's store and reads the referral's updates and thread into v: EXIT_OK or the
 * exit code after saying why. */
static int read_view(play_t *p, actor_t *a, view_t *v)
{
    view_reset(v);
    int rc = cli_sync_store(&a->cli, NULL);
    if (rc != EXIT_OK)
        return rc;
    hx_clinic_query_t qu = {.type = "handoff.StatusUpdate", .referral_id = p->rid};
    hx_clinic_query_t qp = {.type = "handoff.ThreadPost", .referral_id = p->rid};
    if (hx_clinic_each_received(a->cli.store, &qu, on_update, v) ||
        hx_clinic_each_received(a->cli.store, &qp, on_post, v))
        return cli_clinic_failure(&a->cli, HX_EIO);
    return EXIT_OK;
}

/* The session of clinic (opened on first use, with DIR/CLINIC.key under CURVE), or NULL
 * after saying why (*rc the exit code). */
static actor_t *actor_for(play_t *p, const char *clinic, int *rc)
{
    for (size_t i = 0; i < p->n_actors; i++)
        if (strcmp(p->actors[i].clinic, clinic) == 0)
            return &p->actors[i];
    if (p->n_actors == PLAY_MAX_CLINICS || !hx_is_id(clinic)) {
        fprintf(stderr, "handoff: play: cannot speak as clinic '%.40s' (%s)\n", clinic,
                hx_is_id(clinic) ? "too many clinics in one story" : "not a clinic id");
        *rc = EXIT_FAIL;
        return NULL;
    }
    actor_t *a = &p->actors[p->n_actors];
    a->cli = *p->base;
    a->cli.store = NULL;
    a->cli.client = NULL;
    snprintf(a->clinic, sizeof a->clinic, "%s", clinic);
    a->cli.clinic = a->clinic;
    if (p->base->curve_server[0]) {
        char path[4400], err[600];
        bool from_dir = p->base->dir && p->base->dir[0];
        snprintf(path, sizeof path, "%s/%s.key", from_dir ? p->base->dir : p->base->key_dir, clinic);
        if (hx_key_load(path, a->cli.curve_public, a->cli.curve_secret, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: play: clinic %s's key (%s): %s\n", clinic,
                    from_dir ? "--dir" : "the home directory; --dir DIR names another folder", err);
            *rc = EXIT_USAGE;
            return NULL;
        }
    }
    if ((*rc = cli_open_store(&a->cli)) != EXIT_OK)
        return NULL;
    p->n_actors++;
    return a;
}

static Handoff__Discipline discipline_of(story_actor_t a)
{
    return a == STORY_PHYSIOTHERAPY ? HANDOFF__DISCIPLINE__DISCIPLINE_PHYSIOTHERAPY
         : a == STORY_MASSAGE_THERAPY ? HANDOFF__DISCIPLINE__DISCIPLINE_MASSAGE_THERAPY
                                      : HANDOFF__DISCIPLINE__DISCIPLINE_UNSPECIFIED;
}

/* Whether a handoff in status s can take the step. */
static bool can_take(story_action_t a, Handoff__TaskStatus s)
{
    switch (a) {
    case STORY_ACCEPT: return s == HANDOFF__TASK_STATUS__TASK_READY;
    case STORY_DECLINE: return s == HANDOFF__TASK_STATUS__TASK_READY || s == HANDOFF__TASK_STATUS__TASK_ACCEPTED;
    case STORY_START: return s == HANDOFF__TASK_STATUS__TASK_ACCEPTED;
    case STORY_COMPLETE: return s == HANDOFF__TASK_STATUS__TASK_IN_PROGRESS;
    default:
        return s == HANDOFF__TASK_STATUS__TASK_READY || s == HANDOFF__TASK_STATUS__TASK_ACCEPTED ||
               s == HANDOFF__TASK_STATUS__TASK_IN_PROGRESS || s == HANDOFF__TASK_STATUS__TASK_COMPLETED;
    }
}

/* A status no step of a story brings a handoff out of: a final one, and on-hold (no slot
 * fits; only a slot freed elsewhere or a directory reload books it, nothing a story does). */
static bool is_stuck(Handoff__TaskStatus s)
{
    return s == HANDOFF__TASK_STATUS__TASK_CANCELLED || s == HANDOFF__TASK_STATUS__TASK_FAILED ||
           s == HANDOFF__TASK_STATUS__TASK_REJECTED || s == HANDOFF__TASK_STATUS__TASK_ENTERED_IN_ERROR ||
           s == HANDOFF__TASK_STATUS__TASK_ON_HOLD;
}

/* Waits until the referrer sees the step's handoff in a status the step acts on; its clinic
 * into clinic. EXIT_OK, or the exit code after saying why (at once when the handoff is stuck,
 * or completed and the step a change). */
static int wait_holder(play_t *p, size_t i, view_t *v, char clinic[HX_ID_MAX + 1])
{
    const story_step_t *st = &p->story.steps[i];
    const Handoff__Discipline d = discipline_of(st->actor);
    const uint64_t deadline = now_ms() + p->wait_ms;
    bool told = false;
    for (;;) {
        int rc = read_view(p, &p->actors[0], v);
        if (rc != EXIT_OK)
            return rc;
        const Handoff__HandoffStatus *h = handoff_in(v->last, d);
        if (h && h->clinic_id[0] && can_take(st->action, h->status)) {
            snprintf(clinic, HX_ID_MAX + 1, "%s", h->clinic_id);
            if (told && !p->base->json)
                printf("   %s is %s at %s with %s\n", hx_discipline_text(d), hx_status_text(h->status), h->clinic_id,
                       h->therapist_name);
            return EXIT_OK;
        }
        const char *now = h ? hx_status_text(h->status) : v->last ? "not one of its handoffs" : "not booked yet";
        bool final = (h && is_stuck(h->status)) ||
                     (h && h->status == HANDOFF__TASK_STATUS__TASK_COMPLETED && cli_story_is_change(st->action)) ||
                     (v->last && v->last->n_handoffs && !h) ||
                     (v->last && !v->last->n_handoffs && is_stuck(v->last->status));
        if (final || now_ms() >= deadline || cli_stop_requested) {
            fprintf(stderr, "handoff: play: step %zu (%s %s): the %s handoff of %s is %s%s%s, so it cannot be %s\n",
                    i + 1, cli_story_actor_text(st->actor), cli_story_action_text(st->action),
                    hx_discipline_text(d), p->rid, now, v->last ? ": " : "", v->last ? v->last->reason : "",
                    final ? "played" : "played in time (raise --timeout-ms?)");
            return EXIT_FAIL;
        }
        if (!told && !p->base->json)
            printf("   waiting until %s can %s (now %s)\n", hx_discipline_text(d),
                   cli_story_action_text(st->action), now);
        told = true;
        cli_nap_ms(PLAY_POLL_MS);
    }
}

/* Waits until clinic a sees a question awaiting its reply; a question this clinic asked
 * itself cannot be answered by it (both actors are this one clinic here). */
static int wait_question(play_t *p, size_t i, actor_t *a, view_t *v)
{
    const uint64_t deadline = now_ms() + p->wait_ms;
    for (;;) {
        int rc = read_view(p, a, v);
        if (rc != EXIT_OK)
            return rc;
        if (v->awaiting && strcmp(v->asked_by, a->clinic) != 0)
            return EXIT_OK;
        if (v->awaiting || now_ms() >= deadline || cli_stop_requested) {
            fprintf(stderr, "handoff: play: step %zu (%s reply): %s\n", i + 1,
                    cli_story_actor_text(p->story.steps[i].actor),
                    v->awaiting ? "the question awaiting a reply was asked by this same clinic, which cannot answer "
                                  "it (both actors are one clinic here)"
                                : "no question awaits a reply on the thread");
            return EXIT_FAIL;
        }
        cli_nap_ms(PLAY_POLL_MS);
    }
}

/* text as one shell word in single quotes ('\'' for a quote), truncated to cap. */
static const char *shell_word(const char *text, char *out, size_t cap)
{
    size_t n = 0;
    out[n++] = '\'';
    for (const char *s = text; *s && n + 6 < cap; s++) {
        if (*s == '\'') {
            memcpy(out + n, "'\\''", 4);
            n += 4;
        } else {
            out[n++] = *s;
        }
    }
    out[n++] = '\'';
    out[n] = '\0';
    return out;
}

/* The step as the command a clinic would type. */
static void show_command(const play_t *p, const story_step_t *st, const char *clinic)
{
    static const char *const cmd[STORY_ACTION_COUNT] = {"accept", "decline", "start", "complete", "note", "note",
                                                        "reply"};
    static const char *const flag[STORY_ACTION_COUNT] = {"", " --reason ", "", " --summary ", " ", " ", " "};
    char word[8200] = "", disc[64] = "";
    if (st->text)
        shell_word(st->text, word, sizeof word);
    if (cli_story_is_change(st->action))
        snprintf(disc, sizeof disc, " --discipline %s", cli_story_actor_text(st->actor));
    printf("$ handoff --clinic %s %s %s%s%s%s%s\n", clinic, cmd[st->action], p->rid, disc, flag[st->action], word,
           st->action == STORY_QUESTION ? " --ask" : "");
    fflush(stdout);
}

/* Runs the step as its command, as clinic a. */
static int run_step(play_t *p, const story_step_t *st, actor_t *a)
{
    cli_t *c = &a->cli;
    c->reason = st->action == STORY_DECLINE ? st->text : NULL;
    c->summary = st->action == STORY_COMPLETE ? st->text : NULL;
    c->ask = st->action == STORY_QUESTION;
    c->discipline = cli_story_is_change(st->action) ? cli_story_actor_text(st->actor) : NULL;
    char *id = p->rid;
    char *args[2] = {id, (char *)st->text};
    int rc;
    switch (st->action) {
    case STORY_NOTE:
    case STORY_QUESTION: rc = cmd_thread(c, "note", 2, args); break;
    case STORY_REPLY: rc = cmd_thread(c, "reply", 2, args); break;
    default: rc = cmd_change(c, cli_story_action_text(st->action), 1, args); break;
    }
    fflush(stdout);
    return rc;
}

/* Waits until the referrer sees the step done: a change as its handoff's event in an update
 * after `before` (and a completion's summary on its thread), a post on its thread. */
static int wait_effect(play_t *p, size_t i, const char *clinic, const view_t *before, view_t *v)
{
    const story_step_t *st = &p->story.steps[i];
    const uint64_t deadline = now_ms() + p->wait_ms;
    for (;;) {
        v->after = before->updates;
        v->d = discipline_of(st->actor);
        v->event = cli_story_is_change(st->action) ? cli_story_action_text(st->action) : NULL;
        v->by = clinic;
        int rc = read_view(p, &p->actors[0], v);
        if (rc != EXIT_OK)
            return rc;
        bool done = cli_story_is_change(st->action) ? v->seen : v->posts > before->posts;
        if (st->action == STORY_COMPLETE)
            done = done && v->summaries > before->summaries;
        if (done)
            return EXIT_OK;
        if (now_ms() >= deadline || cli_stop_requested) {
            fprintf(stderr, "handoff: play: step %zu (%s %s): %s does not see it done in time%s\n", i + 1,
                    cli_story_actor_text(st->actor), cli_story_action_text(st->action), p->actors[0].clinic,
                    st->action == STORY_COMPLETE && v->seen ? " (no summary by this clinic on its thread)" : "");
            return EXIT_FAIL;
        }
        cli_nap_ms(PLAY_POLL_MS);
    }
}

/* What the referrer sees after step i: a line, or with --json one object. */
static void show_view(const play_t *p, size_t i, const char *clinic, const view_t *v)
{
    const story_step_t *st = &p->story.steps[i];
    char handoffs[600] = "";
    if (v->last)
        hx_handoffs_text(v->last, handoffs, sizeof handoffs);
    if (p->base->json) {
        json_t *hs = json_array();
        for (size_t k = 0; v->last && k < v->last->n_handoffs; k++)
            json_array_append_new(hs, hx_handoff_status_to_json(v->last->handoffs[k]));
        cli_print_json_line(json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:b, s:s}", "step", (json_int_t)i + 1,
                                      "actor", cli_story_actor_text(st->actor), "action",
                                      cli_story_action_text(st->action), "clinic", clinic, "referral_id", p->rid,
                                      "status", v->last ? hx_status_text(v->last->status) : "", "handoffs", hs, "posts",
                                      (json_int_t)v->posts, "awaiting_reply", v->awaiting, "asked_by", v->asked_by));
        return;
    }
    printf("   %s sees: %s — %s\n", p->actors[0].clinic, v->last ? hx_status_text(v->last->status) : "?", handoffs);
    if (!cli_story_is_change(st->action) || st->action == STORY_COMPLETE)
        printf("   %s's thread: %zu post(s)%s%s%s\n", p->actors[0].clinic, v->posts,
               v->awaiting ? "; a question from " : "; nothing awaits a reply", v->awaiting ? v->asked_by : "",
               v->awaiting ? " awaits a reply" : "");
}

static const char *verb(story_action_t a)
{
    static const char *const v[STORY_ACTION_COUNT] = {"accepts", "declines", "starts", "completes with a summary",
                                                      "posts a note", "asks a question", "replies"};
    return v[a];
}

/* Step i: wait for its handoff, run it, wait until the referrer sees it, show that. */
static int play_step(play_t *p, size_t i, view_t *v)
{
    const story_step_t *st = &p->story.steps[i];
    char clinic[HX_ID_MAX + 1];
    snprintf(clinic, sizeof clinic, "%s", p->actors[0].clinic);
    if (!p->base->json)
        printf("\n-- step %zu of %zu: %s %s\n", i + 1, p->story.n, cli_story_actor_text(st->actor), verb(st->action));
    int rc = st->actor == STORY_REFERRER ? EXIT_OK : wait_holder(p, i, v, clinic);
    actor_t *a = rc == EXIT_OK ? actor_for(p, clinic, &rc) : NULL;
    if (!a)
        return rc;
    if (st->action == STORY_REPLY && (rc = wait_question(p, i, a, v)) != EXIT_OK)
        return rc;
    view_t *before = calloc(1, sizeof *before);
    if (!before || (rc = read_view(p, &p->actors[0], before)) != EXIT_OK) {
        if (before)
            view_reset(before);
        free(before);
        return before ? rc : EXIT_FAIL;
    }
    if (!p->base->json)
        show_command(p, st, clinic);
    rc = run_step(p, st, a);
    if (rc == EXIT_OK)
        rc = wait_effect(p, i, clinic, before, v);
    else
        fprintf(stderr, "handoff: play: step %zu (%s %s at %s) failed; the story stops here\n", i + 1,
                cli_story_actor_text(st->actor), cli_story_action_text(st->action), clinic);
    if (rc == EXIT_OK)
        show_view(p, i, clinic, v);
    view_reset(before);
    free(before);
    return rc;
}

/* FROM or FROM-TO (1-based, inclusive) into [*from, *to); 0, or -1 when it is not a range
 * of the story's steps. */
static int parse_range(const char *s, size_t n, size_t *from, size_t *to)
{
    char *end;
    unsigned long a = strtoul(s, &end, 10), b = a;
    if (end == s)
        return -1;
    if (*end == '-') {
        const char *t = end + 1;
        b = strtoul(t, &end, 10);
        if (end == t)
            return -1;
    }
    if (*end || a < 1 || b < a || b > n)
        return -1;
    *from = a - 1;
    *to = b;
    return 0;
}

/* Settings play needs: CURVE keys from --dir, else the home directory (one per clinic), no
 * --key. */
static int check_keys(cli_t *c)
{
    char err[600];
    if (c->key) {
        fprintf(stderr, "handoff: play speaks as several clinics: their keys come from --dir DIR (DIR/CLINIC.key) or "
                        "the home directory, not --key (set by %s)\n", c->cfg.v[CLI_SET_KEY].where);
        return EXIT_USAGE;
    }
    if (!c->server_key)
        return EXIT_OK;
    if (hx_key_load_public(c->server_key, c->curve_server, err, sizeof err) != 0) {
        fprintf(stderr, "handoff: %s\n", err);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int cmd_play(cli_t *c, int argc, char **argv)
{
    if (argc < 1 || argc > 2) {
        fprintf(stderr, "handoff: play needs STORY [FROM[-TO]] (see handoff help play)\n");
        return EXIT_USAGE;
    }
    play_t *p = calloc(1, sizeof *p);
    view_t *v = calloc(1, sizeof *v);
    hx_errors_t *errs = calloc(1, sizeof *errs);
    int rc = p && v && errs ? check_keys(c) : EXIT_FAIL;
    size_t from = 0, to = 0;
    if (rc == EXIT_OK && cli_story_load(argv[0], &p->story, errs) != 0) {
        for (size_t i = 0; i < errs->count; i++)
            fprintf(stderr, "handoff: %s: %s%s%s\n", argv[0], errs->items[i].path, errs->items[i].path[0] ? ": " : "",
                    errs->items[i].why);
        rc = EXIT_DATAERR;
    } else if (rc == EXIT_OK && argc < 2) {
        to = p->story.n;
    } else if (rc == EXIT_OK && parse_range(argv[1], p->story.n, &from, &to) != 0) {
        fprintf(stderr, "handoff: play: '%s' is not FROM or FROM-TO among the story's steps 1 to %zu\n", argv[1],
                p->story.n);
        rc = EXIT_USAGE;
    }
    if (rc == EXIT_OK) {
        p->base = c;
        p->wait_ms = (uint64_t)PLAY_WAIT_FACTOR * c->timeout_ms;
        actor_t *r = actor_for(p, p->story.clinic, &rc);
        if (r)
            hx_clinic_referral_id(r->cli.store, p->story.ref, p->rid);
        if (r && !c->json)
            printf("%s: %s (%s of %s), steps %zu to %zu of %zu\n", argv[0], p->rid, p->story.ref, p->story.clinic,
                   from + 1, to, p->story.n);
        for (size_t i = from; rc == EXIT_OK && i < to; i++)
            rc = play_step(p, i, v);
    }
    if (v)
        view_reset(v);
    for (size_t i = 0; p && i < p->n_actors; i++)
        hx_clinic_destroy(&p->actors[i].cli.store);
    if (p)
        cli_story_free(&p->story);
    free(errs);
    free(v);
    free(p);
    return rc;
}
