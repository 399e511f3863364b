/* hx_gen_story — the story of a generated collaborative referral after it is booked (the
 * format `handoff play` reads, docs/OPERATIONS.md "Stories"): physiotherapy accepts and
 * starts; massage sometimes declines first and is booked again, then accepts; one clinic
 * asks a question on the care thread and another answers; sometimes a progress note; both
 * complete with a summary. The wording follows the referral's main condition. Story i draws
 * from its own stream, apart from the referral's, so adding stories changed no referral. */
#include "hx_gen_internal.h"

#include <stdio.h>
#include <string.h>

/* What the therapists write about one kind of collaborative case. %u: a number of sessions. */
typedef struct {
    const char *codes[4];       /* the main conditions it is for; NULL after the last */
    const char *pt_question[2], *rmt_answer[2];     /* the physiotherapist asks the RMT */
    const char *rmt_question[2], *pt_answer[2];     /* the RMT asks the physiotherapist */
    const char *progress[2];
    const char *pt_summary[2], *rmt_summary[2];
} story_text_t;

static const story_text_t texts[] = {
    {{"post_surgical_knee", "post_surgical_hip", "post_surgical", NULL},
     {"Wound healed, staples out. Please keep massage to the thigh and calf and stay clear of the scar for now. "
      "Can sessions follow physiotherapy on the same day?",
      "Range improving but the guarding muscles are tight. Is the patient cleared for deeper work around the "
      "operated joint yet, or only general relaxation?"},
     {"Yes: booked right after physiotherapy. Thigh and calf only, scar left alone; I will report any calf "
      "swelling or warmth at once.",
      "General work only for now; I will leave the operated area alone until you or the surgeon say otherwise."},
     {"Any precautions for side-lying or hip positioning during massage?",
      "Should I expect more soreness on the days after loading sessions?"},
     {"Keep the hip precautions: no crossing the legs, pillow between the knees side-lying, no deep flexion.",
      "Yes, some: keep pressure moderate the day after strength work and tell me if swelling lasts overnight."},
     {"Walking without a cane indoors now; stairs step over step with the rail.",
      "Range of motion up by 20 degrees since the first session; night pain settled."},
     {"%u sessions. Range and strength near the goal, walking without aids, home program of step-ups, bridging "
      "and cycling. Review with the surgeon as planned.",
      "%u sessions over six weeks: independent walking, stairs without the rail, a home strengthening program. "
      "Discharged to self-management."},
     {"%u sessions of thigh and calf work; post-surgical tension and night aching eased. No signs of DVT at any "
      "session. Self-massage taught.",
      "%u sessions; guarding of the thigh muscles much reduced, scar left untreated as agreed. Monthly sessions "
      "optional."}},
    {{"chronic_low_back_pain", "low_back_pain", "back_pain", NULL},
     {"We are progressing loaded exercise this week. Could massage sessions be timed after exercise days rather "
      "than before?",
      "Flare-up after a long shift this week. Please keep pressure moderate over the lumbar extensors for now."},
     {"Yes, moved to the day after exercise; I will note how the back feels at each visit.",
      "Understood: moderate pressure, more time on the hips and glutes, and I will tell you if the flare settles."},
     {"Any movements I should avoid during treatment, or positions you prefer?",
      "The patient asks whether massage can replace the exercise sessions when busy. What should I tell them?"},
     {"No restrictions; side-lying is fine if prone is uncomfortable.",
      "No: massage only alongside exercise. Please encourage the home program at every visit."},
     {"Back to full shifts this week with one short flare that settled in two days.",
      "Sitting tolerance up from 20 to 60 minutes."},
     {"%u sessions of graded activity and core work; fewer flare-ups, back to full duties. Home program three "
      "times a week.",
      "%u sessions: lifting technique and a progressive program; pain down from 7 to 3 out of 10. Discharged with "
      "a flare-up plan."},
     {"%u sessions alongside physiotherapy; muscle tension and guarding of the lower back reduced, sleep better.",
      "%u sessions; relief lasts several days now. Advised to keep exercising; massage as needed."}},
    {{"athletic_performance", "sports_injury", NULL, NULL},
     {"Competition in three weeks. Please keep deep work at least four days before any race or game.",
      "We are loading the hamstrings hard this block. Please report any tenderness you find there."},
     {"Noted: deep work early in the week, light flushing only close to competition.",
      "Will do; so far no tenderness, only general tightness after training."},
     {"How close to competition can I do deep tissue work?",
      "Anything to avoid around last season's strain?"},
     {"No deep work in the four days before; light flushing is fine after that.",
      "The old strain is fully rehabilitated; normal pressure is fine, tell me if it is tender."},
     {"Strength tests improved on both sides; technique work going well.",
      "Recovery between sessions better; no missed training this month."},
     {"%u sessions: strength and flexibility program and technique review; strength up on testing. Continues "
      "with the coach.",
      "%u sessions; single-leg control and power improved, no injury this block. Program handed over to the "
      "team."},
     {"%u recovery sessions around training blocks; soreness and tightness eased.",
      "%u sessions; recovery better between sessions. Monthly maintenance suggested through the season."}},
};

/* Any collaborative case the tables above do not name. */
static const story_text_t general = {
    {NULL, NULL, NULL, NULL},
    {"Could massage focus on the muscles we are strengthening, and follow physiotherapy on the same day?",
     "Please keep pressure moderate for the first sessions while we see how the patient responds."},
    {"Yes: same day, right after physiotherapy, on those muscles.", "Moderate pressure it is; I will report how it goes."},
    {"Any restrictions I should know about before starting?", "Should massage wait until the exercise program is under way?"},
    {"No restrictions; moderate pressure to start.", "No, the two can start together; massage alongside exercise helps."},
    {"Good progress with the home program.", "Pain and stiffness easing week by week."},
    {"%u sessions; goals met and a home program in place. Discharged.",
     "%u sessions: function back to what the patient needs. Home program given."},
    {"%u sessions alongside physiotherapy; tension eased.", "%u sessions; the patient reports less pain and better sleep."},
};

static const char *const decline_reasons[] = {
    "No massage therapist with an opening in the next two weeks.",
    "The booked therapist is away on leave; no one free to cover.",
    "The patient's available times do not fit our massage schedule.",
    "No RMT with post-surgical training available at this clinic.",
    "Fully booked for the season; please book elsewhere.",
};

static const char *const referrer_notes[] = {
    "Please copy me on the discharge summaries; the patient sees me again after care.",
    "The patient called: happy with both clinics so far.",
    "Imaging report from the last visit is in the chart; nothing new.",
};

static const story_text_t *text_for(const char *code)
{
    for (size_t i = 0; code && i < GEN_COUNT(texts); i++)
        for (size_t k = 0; k < GEN_COUNT(texts[i].codes) && texts[i].codes[k]; k++)
            if (strcmp(texts[i].codes[k], code) == 0)
                return &texts[i];
    return &general;
}

static void step(json_t *steps, const char *actor, const char *action, const char *key, const char *text, bool *oom)
{
    json_t *o = json_pack("{s:s, s:s}", "actor", actor, "action", action);
    if (o && key)
        gen_put(o, key, json_string(text), oom);
    gen_push(steps, o, oom);
}

static void summary(json_t *steps, rng_t *r, const char *actor, const char *tmpl, bool *oom)
{
    char text[400];
    snprintf(text, sizeof text, tmpl, between(r, 4, 12));
    step(steps, actor, "complete", "summary", text, oom);
}

/* The steps: physiotherapy accepts and starts; massage maybe declines, then accepts and
 * starts; a question and its answer; maybe a note; both complete, in either order. */
static json_t *story_steps(rng_t *r, const story_text_t *t, bool *oom)
{
    static const char *const PT = "physiotherapy", *RMT = "massage_therapy";
    json_t *s = json_array();
    if (!s)
        return NULL;
    step(s, PT, "accept", NULL, NULL, oom);
    step(s, PT, "start", NULL, NULL, oom);
    if (chance(r, 40))
        step(s, RMT, "decline", "reason", PICK(r, decline_reasons), oom);
    step(s, RMT, "accept", NULL, NULL, oom);
    const bool early = chance(r, 50);
    if (early)
        step(s, RMT, "start", NULL, NULL, oom);
    size_t k = below(r, 2);
    if (chance(r, 60)) {
        step(s, PT, "question", "text", t->pt_question[k], oom);
        step(s, RMT, "reply", "text", t->rmt_answer[k], oom);
    } else {
        step(s, RMT, "question", "text", t->rmt_question[k], oom);
        step(s, PT, "reply", "text", t->pt_answer[k], oom);
    }
    if (!early)
        step(s, RMT, "start", NULL, NULL, oom);
    if (chance(r, 50))
        step(s, PT, "note", "text", PICK(r, t->progress), oom);
    else if (chance(r, 40))
        step(s, "referrer", "note", "text", PICK(r, referrer_notes), oom);
    const bool pt_first = chance(r, 60);
    summary(s, r, pt_first ? PT : RMT, pt_first ? PICK(r, t->pt_summary) : PICK(r, t->rmt_summary), oom);
    summary(s, r, pt_first ? RMT : PT, pt_first ? PICK(r, t->rmt_summary) : PICK(r, t->pt_summary), oom);
    return s;
}

int hx_gen_story(const hx_gen_t *g, uint64_t index, json_t **out)
{
    *out = NULL;
    hx_gen_kind_t kind;
    json_t *ref = g ? hx_gen_referral(g, index, &kind) : NULL;
    if (!ref)
        return -1;
    if (kind != HX_GEN_BOTH) {
        json_decref(ref);
        return 0;
    }
    rng_t r = rng_stream(g->seed, (UINT64_C(1) << 63) | index);
    const char *code = json_string_value(json_array_get(json_object_get(ref, "conditions"), 0));
    const char *id = json_string_value(json_object_get(ref, "ref"));
    const char *clinic = json_string_value(json_object_get(json_object_get(ref, "referrer"), "clinic_id"));
    char about[200];
    snprintf(about, sizeof about, "Generated by handoff-gen (fictional): the care of %s after it is booked.", id);
    bool oom = false;
    json_t *s = json_object();
    if (s) {
        gen_put(s, "story", json_integer(1), &oom);
        gen_put(s, "about", json_string(about), &oom);
        gen_put(s, "referral", json_pack("{s:s, s:s}", "clinic", clinic, "ref", id), &oom);
        gen_put(s, "steps", story_steps(&r, text_for(code), &oom), &oom);
    }
    json_decref(ref);
    if (!s || oom) {
        json_decref(s);
        return -1;
    }
    *out = s;
    return 0;
}
