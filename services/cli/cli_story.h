/* cli_story — the story of a collaborative referral after it is booked: the steps its
 * referring clinic and the clinics holding its handoffs take, in order (accept, decline with a
 * reason, start, note, question, reply, complete with a summary). The format is in
 * docs/OPERATIONS.md ("Stories"); deploy/sample/stories/ has the sample network's, and
 * handoff-gen writes one per collaborative referral it makes. Pure: read and checked here,
 * played by `handoff play` (cli_cmd_play.c). */
#ifndef CLI_STORY_H
#define CLI_STORY_H
#include "hx_errors.h"

#include <jansson.h>
#include <stddef.h>

#define CLI_STORY_VERSION 1
#define CLI_STORY_MAX_STEPS 64
#define CLI_STORY_REASON_MAX 800        /* bytes, as `handoff decline --reason` takes */

/* Who takes a step: the referring clinic, or the clinic holding that discipline's handoff
 * when the step is played (after a decline, the clinic it was booked with again). */
typedef enum { STORY_REFERRER = 0, STORY_PHYSIOTHERAPY, STORY_MASSAGE_THERAPY, STORY_ACTOR_COUNT } story_actor_t;

typedef enum {
    STORY_ACCEPT = 0,
    STORY_DECLINE,
    STORY_START,
    STORY_COMPLETE,
    STORY_NOTE,
    STORY_QUESTION,
    STORY_REPLY,
    STORY_ACTION_COUNT
} story_action_t;

typedef struct {
    story_actor_t actor;
    story_action_t action;
    const char *text;           /* decline: the reason; complete: the summary; note, question,
                                   reply: the post; NULL for accept and start. Points into json */
} story_step_t;

typedef struct {
    json_t *json;               /* the story as read (owned) */
    const char *clinic, *ref;   /* the referral: its referring clinic and that clinic's ref */
    const char *about;          /* what the story tells ("" when not given) */
    story_step_t steps[CLI_STORY_MAX_STEPS];
    size_t n;
} story_t;

/* Reads a story from j (borrowed; s keeps a reference) and checks it: the fields, each step's
 * actor, action and text, and that the steps follow each handoff's lifecycle (accept from
 * ready, start from accepted, complete from in-progress, decline from ready or accepted, then
 * booked again) and the thread (a reply answers a question of another actor). 0, or -1 with
 * every problem in errs, each named by its path ("steps[3].reason"). */
int cli_story_parse(json_t *j, story_t *s, hx_errors_t *errs);
/* cli_story_parse on a file; a file that is not JSON is named with its line and column. */
int cli_story_load(const char *path, story_t *s, hx_errors_t *errs);
void cli_story_free(story_t *s);

/* "referrer", "physiotherapy", "massage_therapy". */
const char *cli_story_actor_text(story_actor_t a);
/* "accept", "decline", "start", "complete", "note", "question", "reply". */
const char *cli_story_action_text(story_action_t a);
/* A lifecycle change (accept, decline, start, complete), not a post. */
int cli_story_is_change(story_action_t a);

#endif
