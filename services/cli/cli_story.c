/* cli_story — reading and checking a collaborative referral's story (see cli_story.h). */
#include "cli_story.h"
#include "hx_thread_rules.h"
#include "hx_util.h"

#include <stdio.h>
#include <string.h>

static const char *const ACTORS[STORY_ACTOR_COUNT] = {"referrer", "physiotherapy", "massage_therapy"};
static const char *const ACTIONS[STORY_ACTION_COUNT] = {"accept", "decline", "start", "complete",
                                                         "note", "question", "reply"};
/* The field each action takes besides actor and action (NULL: none). */
static const char *const TEXT_FIELD[STORY_ACTION_COUNT] = {NULL, "reason", NULL, "summary", "text", "text", "text"};

const char *cli_story_actor_text(story_actor_t a)
{
    return (unsigned)a < STORY_ACTOR_COUNT ? ACTORS[a] : "?";
}

const char *cli_story_action_text(story_action_t a)
{
    return (unsigned)a < STORY_ACTION_COUNT ? ACTIONS[a] : "?";
}

int cli_story_is_change(story_action_t a)
{
    return a == STORY_ACCEPT || a == STORY_DECLINE || a == STORY_START || a == STORY_COMPLETE;
}

static int lookup(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* A string field: its value, or NULL after naming what is wrong (required or not a string). */
static const char *string_field(json_t *o, const char *base, const char *key, int required, hx_errors_t *e)
{
    char path[96];
    hx_path_key(path, sizeof path, base, key);
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            hx_errors_add(e, path, "required");
        return NULL;
    }
    if (!json_is_string(v)) {
        hx_errors_add(e, path, "must be a string");
        return NULL;
    }
    return json_string_value(v);
}

/* Keys of o that are not among allowed (NULL-terminated) are named. */
static void unknown_keys(json_t *o, const char *base, const char *const *allowed, const char *list, hx_errors_t *e)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        int known = 0;
        for (size_t i = 0; allowed[i]; i++)
            known |= strcmp(key, allowed[i]) == 0;
        if (!known) {
            char path[96];
            hx_path_key(path, sizeof path, base, key);
            hx_errors_add(e, path, "not a field of %s (%s)", base[0] ? base : "a story", list);
        }
    }
}

/* The decline reason: 1 to CLI_STORY_REASON_MAX bytes of UTF-8 without control characters
 * (what the thread's text rules say, with the smaller limit). */
static void check_reason(const char *path, const char *text, hx_errors_t *e)
{
    char why[256];
    if (strlen(text) > CLI_STORY_REASON_MAX)
        hx_errors_add(e, path, "%zu bytes, at most %d", strlen(text), CLI_STORY_REASON_MAX);
    else if (hx_thread_post_check("note", text, "", why, sizeof why) != 0)
        hx_errors_add(e, path, "%s", strncmp(why, "text: ", 6) == 0 ? why + 6 : why);
}

/* One step at steps[i]: actor, action and the one text field its action takes. */
static void read_step(json_t *o, size_t i, story_step_t *st, hx_errors_t *e)
{
    char base[32], path[96];
    hx_path_index(base, sizeof base, "steps", i);
    if (!json_is_object(o)) {
        hx_errors_add(e, base, "must be an object {\"actor\", \"action\", ...}");
        return;
    }
    static const char *const allowed[] = {"actor", "action", "reason", "summary", "text", NULL};
    unknown_keys(o, base, allowed, "actor, action, reason, summary, text", e);
    const char *actor = string_field(o, base, "actor", 1, e), *action = string_field(o, base, "action", 1, e);
    int a = lookup(actor, ACTORS, STORY_ACTOR_COUNT), k = lookup(action, ACTIONS, STORY_ACTION_COUNT);
    if (actor && a < 0) {
        hx_path_key(path, sizeof path, base, "actor");
        hx_errors_add(e, path, "'%.40s' is not referrer, physiotherapy or massage_therapy", actor);
    }
    if (action && k < 0) {
        hx_path_key(path, sizeof path, base, "action");
        hx_errors_add(e, path, "'%.40s' is not accept, decline, start, complete, note, question or reply", action);
    }
    if (a < 0 || k < 0)
        return;
    st->actor = (story_actor_t)a;
    st->action = (story_action_t)k;
    hx_path_key(path, sizeof path, base, "action");
    if (a == STORY_REFERRER && cli_story_is_change(st->action))
        hx_errors_add(e, path, "the referrer cannot %s: only the clinic holding a handoff accepts, declines, starts "
                               "or completes it", action);
    for (size_t f = 0; f < 3; f++) {           /* a text field the action does not take */
        static const char *const texts[] = {"reason", "summary", "text"};
        if (json_object_get(o, texts[f]) && (!TEXT_FIELD[k] || strcmp(TEXT_FIELD[k], texts[f]) != 0)) {
            hx_path_key(path, sizeof path, base, texts[f]);
            hx_errors_add(e, path, "%s takes %s%s", action, TEXT_FIELD[k] ? "only " : "no text",
                          TEXT_FIELD[k] ? TEXT_FIELD[k] : "");
        }
    }
    if (!TEXT_FIELD[k])
        return;
    st->text = string_field(o, base, TEXT_FIELD[k], 1, e);
    hx_path_key(path, sizeof path, base, TEXT_FIELD[k]);
    char why[256];
    const char *kind = st->action == STORY_COMPLETE ? "summary" : action;
    if (st->text && st->action == STORY_DECLINE)
        check_reason(path, st->text, e);
    else if (st->text && hx_thread_post_check(kind, st->text, "", why, sizeof why) != 0)
        hx_errors_add(e, path, "%s", strncmp(why, "text: ", 6) == 0 ? why + 6 : why);
}

/* Where each handoff stands as the steps are played, and who asked the question awaiting. */
enum { H_READY, H_ACCEPTED, H_IN_PROGRESS, H_COMPLETED };
static const char *const H_TEXT[] = {"ready", "accepted", "in-progress", "completed"};

/* The steps in order: each handoff's lifecycle and the thread's question and reply. */
static void check_sequence(const story_t *s, hx_errors_t *e)
{
    int h[STORY_ACTOR_COUNT] = {H_READY, H_READY, H_READY};
    int asker = -1;                     /* the actor whose question awaits a reply */
    for (size_t i = 0; i < s->n; i++) {
        const story_step_t *st = &s->steps[i];
        char path[32];
        hx_path_index(path, sizeof path, "steps", i);
        const char *who = cli_story_actor_text(st->actor), *from = H_TEXT[h[st->actor]];
        int *hs = &h[st->actor];
        switch (st->action) {
        case STORY_ACCEPT:
        case STORY_START:
        case STORY_COMPLETE: {
            int need = st->action == STORY_ACCEPT ? H_READY : st->action == STORY_START ? H_ACCEPTED : H_IN_PROGRESS;
            if (*hs != need)
                hx_errors_add(e, path, "%s cannot %s its handoff: it is %s by then (%s takes it from %s)", who,
                              cli_story_action_text(st->action), from, cli_story_action_text(st->action),
                              H_TEXT[need]);
            else
                (*hs)++;
            break;
        }
        case STORY_DECLINE:
            if (*hs != H_READY && *hs != H_ACCEPTED)
                hx_errors_add(e, path, "%s cannot decline its handoff: it is %s by then (decline takes it from "
                                       "ready or accepted)", who, from);
            *hs = H_READY;              /* booked again, with another therapist */
            break;
        case STORY_QUESTION:
            asker = (int)st->actor;
            break;
        case STORY_REPLY:
            if (asker < 0)
                hx_errors_add(e, path, "a reply by %s, but no question awaits one", who);
            else if (asker == (int)st->actor)
                hx_errors_add(e, path, "%s replies to its own question: a reply comes from another actor", who);
            else
                asker = -1;
            break;
        default:
            break;
        }
    }
}

/* "referral": {"clinic": ID, "ref": REF}. */
static void read_referral(json_t *j, story_t *s, hx_errors_t *e)
{
    json_t *r = json_object_get(j, "referral");
    if (!r || !json_is_object(r)) {
        hx_errors_add(e, "referral", r ? "must be an object {\"clinic\", \"ref\"}" : "required");
        return;
    }
    static const char *const allowed[] = {"clinic", "ref", NULL};
    unknown_keys(r, "referral", allowed, "clinic, ref", e);
    s->clinic = string_field(r, "referral", "clinic", 1, e);
    s->ref = string_field(r, "referral", "ref", 1, e);
    if (s->clinic && !hx_is_id(s->clinic))
        hx_errors_add(e, "referral.clinic", "must be a clinic id (a-z, 0-9, -; at most %d characters)", HX_ID_MAX);
    if (s->ref && (!s->ref[0] || strlen(s->ref) > HX_CODE_MAX))
        hx_errors_add(e, "referral.ref", "must be the referral's ref, 1 to %d characters", HX_CODE_MAX);
}

int cli_story_parse(json_t *j, story_t *s, hx_errors_t *errs)
{
    memset(s, 0, sizeof *s);
    const size_t before = errs->count + errs->dropped;
    if (!json_is_object(j)) {
        hx_errors_add(errs, "", "a story is a JSON object {\"story\": 1, \"referral\", \"steps\"}");
        return -1;
    }
    static const char *const allowed[] = {"story", "about", "referral", "steps", NULL};
    unknown_keys(j, "", allowed, "story, about, referral, steps", errs);
    json_t *v = json_object_get(j, "story");
    if (!v)
        hx_errors_add(errs, "story", "required: the format's version, %d", CLI_STORY_VERSION);
    else if (!json_is_integer(v) || json_integer_value(v) != CLI_STORY_VERSION)
        hx_errors_add(errs, "story", "must be %d (the format's version this program reads)", CLI_STORY_VERSION);
    s->about = string_field(j, "", "about", 0, errs);
    if (!s->about)
        s->about = "";
    read_referral(j, s, errs);
    json_t *steps = json_object_get(j, "steps");
    if (!json_is_array(steps) || json_array_size(steps) == 0 || json_array_size(steps) > CLI_STORY_MAX_STEPS) {
        hx_errors_add(errs, "steps", "%s: an array of 1 to %d steps", steps ? "must be" : "required",
                      CLI_STORY_MAX_STEPS);
    } else {
        size_t i;
        json_array_foreach(steps, i, v) read_step(v, i, &s->steps[i], errs);
        s->n = json_array_size(steps);
    }
    if (errs->count + errs->dropped == before)
        check_sequence(s, errs);
    if (errs->count + errs->dropped > before) {
        memset(s, 0, sizeof *s);
        return -1;
    }
    s->json = json_incref(j);
    return 0;
}

int cli_story_load(const char *path, story_t *s, hx_errors_t *errs)
{
    memset(s, 0, sizeof *s);
    json_t *j = hx_json_read(path, NULL, "story", errs);
    if (!j)
        return -1;
    int rc = cli_story_parse(j, s, errs);
    json_decref(j);
    return rc;
}

void cli_story_free(story_t *s)
{
    json_decref(s->json);
    memset(s, 0, sizeof *s);
}
