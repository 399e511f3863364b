/* hx_gen_text — the clinical wording of generated referrals: for each code the default
 * rules know, realistic reasons, ages, histories, diagnoses, treatments and expectations;
 * the conditions that come together; how each red flag and massage contraindication shows
 * up. A code the tables do not know is still used (hx_gen_plan.c words it from the rules'
 * label), so the generator never goes out of step with triage. */
#include "hx_gen_internal.h"

#include <stdio.h>
#include <string.h>

/* Conditions that often come together with a main one, for referrals with two codes. */
static const companion_t companions[] = {
    {"post_surgical_knee", {"muscle_tension", NULL, NULL}},
    {"post_surgical_hip", {"muscle_tension", NULL, NULL}},
    {"post_surgical", {"exercise_program", "mobility_impairment", NULL}},
    {"chronic_low_back_pain", {"muscle_tension", "stress_anxiety", NULL}},
    {"low_back_pain", {"muscle_tension", NULL, NULL}},
    {"back_pain", {"exercise_program", "neck_pain", NULL}},
    {"chronic_pain", {"exercise_program", "joint_pain", NULL}},
    {"athletic_performance", {"muscle_fatigue", NULL, NULL}},
    {"sports_injury", {"ankle_sprain", "tissue_damage", "knee_pain"}},
    {"ankle_sprain", {"sports_injury", NULL, NULL}},
    {"arthritis", {"joint_pain", "exercise_program", "knee_pain"}},
    {"neurological_mobility", {"mobility_impairment", "exercise_program", NULL}},
    {"mobility_impairment", {"exercise_program", "arthritis", NULL}},
    {"knee_pain", {"exercise_program", "arthritis", NULL}},
    {"shoulder_pain", {"neck_pain", NULL, NULL}},
    {"neck_pain", {"shoulder_pain", NULL, NULL}},
    {"joint_pain", {"arthritis", "exercise_program", NULL}},
    {"exercise_program", {"arthritis", "chronic_pain", NULL}},
    {"tissue_damage", {"sports_injury", NULL, NULL}},
    {"muscle_tension", {"stress_anxiety", "posture", "tension_headache"}},
    {"stress_anxiety", {"relaxation_sleep", "muscle_tension", NULL}},
    {"tension_headache", {"muscle_tension", "posture", NULL}},
    {"minor_strain", {"muscle_fatigue", NULL, NULL}},
    {"relaxation_sleep", {"stress_anxiety", NULL, NULL}},
    {"posture", {"muscle_tension", NULL, NULL}},
    {"circulation", {"muscle_fatigue", NULL, NULL}},
    {"muscle_fatigue", {"muscle_tension", "minor_strain", NULL}},
};

/* The conditions of the default rules (services/triage/rules.json). */
static const condition_text_t condition_texts[] = {
    {"post_surgical_knee", 55, 85,
     {"{Side} total knee arthroplasty {weeks} weeks ago. Please start post-operative rehabilitation; the surgeon clears massage for the thigh and calf.",
      "Arthroscopic {side} knee surgery {weeks} weeks ago; stiffness and quadriceps weakness. Physiotherapy program, with massage for post-surgical muscle tension."},
     "Osteoarthritis of both knees for years; otherwise well.",
     "Status post {side} knee surgery.",
     "Home exercises from the hospital, ice, acetaminophen.",
     "Range of motion above 110 degrees and walking without a cane within 12 weeks."},
    {"post_surgical_hip", 55, 88,
     {"{Side} total hip arthroplasty {weeks} weeks ago. Please start rehabilitation; massage for hip and thigh muscle tension once cleared.",
      "Hip replacement ({side}) {weeks} weeks ago, walking with a walker. Strength and gait program; massage for the guarding muscles."},
     "Hip osteoarthritis; type 2 diabetes, well controlled.",
     "Status post {side} total hip arthroplasty.",
     "Hip precautions, walker, home exercises.",
     "Independent walking without aids and back to gardening."},
    {"post_surgical", 30, 75,
     {"Shoulder surgery ({side}) {weeks} weeks ago; needs a post-operative rehabilitation program.",
      "Recovering from abdominal surgery {weeks} weeks ago; deconditioned, needs graded return to activity."},
     "Surgery uncomplicated; discharged home on day two.",
     "Post-operative recovery.",
     "Sling and pendulum exercises as instructed by the surgeon.",
     "Full range of motion and return to work within three months."},
    {"chronic_low_back_pain", 30, 70,
     {"Chronic mechanical low back pain for {months} months; exercise program under way. Adding massage for relief alongside exercise.",
      "Low back pain most days for over a year, worse after long shifts. Physiotherapy to treat the cause, massage for relief alongside it."},
     "No red flags on screening. Works in a warehouse, lifting and bending.",
     "Chronic non-specific low back pain.",
     "Core stabilisation and graded activity, weekly.",
     "Fewer flare-ups and back to full shifts."},
    {"low_back_pain", 25, 65,
     {"Low back pain for {weeks} weeks after moving furniture; no leg symptoms. Exercise therapy with massage alongside.",
      "Recurrent low back pain, {weeks} weeks into this episode. Physiotherapy and massage together, please."},
     "Two similar episodes in the last five years, both settled within a month.",
     "Acute-on-recurrent mechanical low back pain.",
     "Ibuprofen as needed; staying active.",
     "Back to normal activity within six weeks."},
    {"back_pain", 25, 65,
     {"Mid and low back pain for {weeks} weeks, desk worker; please assess and treat.",
      "Back pain after a long drive {weeks} weeks ago, not settling; assessment and exercise program."},
     "Otherwise healthy; sedentary job.",
     "Mechanical back pain.",
     "Heat and over-the-counter analgesics.",
     "Pain-free workdays and a home program."},
    {"chronic_pain", 35, 80,
     {"Widespread chronic pain for {months} months limiting walking and sleep; graded activity program please.",
      "Long-term pain condition; needs pacing strategies and a structured exercise plan."},
     "Seen by the pain clinic last year.",
     "Chronic pain, long-term condition.",
     "Duloxetine; a walking routine.",
     "Better function and pacing, walking 30 minutes a day."},
    {"athletic_performance", 16, 40,
     {"Competitive runner preparing for a marathon; strength, flexibility and technique work, with massage for recovery between sessions.",
      "Varsity soccer player wanting to improve performance and recovery; physiotherapy for strength and technique, massage for soreness."},
     "No current injury; recurrent calf tightness in heavy training blocks.",
     "No injury; performance and recovery program.",
     "Club training five days a week.",
     "A training-season plan and fewer missed sessions."},
    {"sports_injury", 16, 45,
     {"Hamstring strain ({side}) playing hockey {weeks} weeks ago; needs rehabilitation before return to sport.",
      "Shoulder injury in rugby {weeks} weeks ago; rehabilitation and return-to-play plan."},
     "First injury of this kind.",
     "Grade II {side} hamstring strain.",
     "Rest and ice; stopped sport.",
     "Return to sport within two months."},
    {"ankle_sprain", 16, 50,
     {"Inversion sprain of the {side} ankle {weeks} weeks ago; still limping on stairs. Please continue rehabilitation.",
      "{Side} ankle sprain playing basketball {weeks} weeks ago; unstable on uneven ground."},
     "Ottawa ankle rules negative at the emergency visit.",
     "Grade II lateral ligament sprain, {side} ankle.",
     "Taping, balance exercises at home.",
     "Return to sport in four to six weeks with a home program."},
    {"arthritis", 50, 85,
     {"Osteoarthritis of both knees and the {side} hip; exercise program for strength and mobility.",
      "Rheumatoid arthritis, stable on medication; hand and wrist function and general conditioning."},
     "Diagnosed {months} months ago; followed by the family physician.",
     "Osteoarthritis.",
     "Acetaminophen; topical anti-inflammatory.",
     "Walk to the shops without pain and keep gardening."},
    {"neurological_mobility", 40, 85,
     {"Stroke {months} months ago with {side} sided weakness; gait and balance rehabilitation.",
      "Parkinson's disease; freezing and falls risk, needs a balance and gait program."},
     "Followed by neurology; lives with spouse.",
     "Neurological condition affecting mobility.",
     "Walking with a cane; home exercises from the hospital.",
     "Safer walking and fewer falls."},
    {"mobility_impairment", 60, 90,
     {"Deconditioned after a hospital stay; difficulty with stairs and getting up from a chair.",
      "Reduced mobility and two falls this year; strength and balance assessment please."},
     "Lives alone; uses a walker outdoors.",
     "Mobility and functional impairment.",
     "None yet.",
     "Independent at home and safe on stairs."},
    {"knee_pain", 25, 75,
     {"{Side} knee pain for {weeks} weeks, worse on stairs and squatting; please assess and treat.",
      "Anterior knee pain ({side}) in a recreational runner; assessment and loading program."},
     "No injury recalled.",
     "Patellofemoral pain, {side} knee.",
     "Reduced running; ibuprofen as needed.",
     "Pain-free stairs and back to running."},
    {"shoulder_pain", 30, 70,
     {"{Side} shoulder pain for {weeks} weeks, painful arc, difficulty reaching overhead.",
      "Shoulder pain ({side}) after painting a ceiling; weakness lifting the arm."},
     "Right-handed; office work.",
     "Rotator cuff related shoulder pain, {side}.",
     "Ice and rest.",
     "Reach overhead and sleep on that side."},
    {"neck_pain", 25, 65,
     {"Neck pain and stiffness for {weeks} weeks after a new desk set-up; please assess and treat.",
      "Neck pain after a low-speed rear-end collision {weeks} weeks ago; imaging not indicated."},
     "No neurological symptoms.",
     "Mechanical neck pain.",
     "Heat and a short course of anti-inflammatories.",
     "Full neck movement and pain-free workdays."},
    {"joint_pain", 30, 75,
     {"Pain in the {side} wrist and hand joints for {months} months; function and exercise program.",
      "{Side} hip joint pain on walking; assessment and strengthening."},
     "No injury; works as a hairdresser.",
     "Joint pain, mechanical.",
     "Wrist brace at night.",
     "Back to full work without pain."},
    {"pelvic_floor", 25, 70,
     {"Stress urinary incontinence {months} months after childbirth; pelvic floor rehabilitation please.",
      "Pelvic floor dysfunction with pelvic pain; referral for pelvic health physiotherapy."},
     "Two vaginal deliveries; otherwise well.",
     "Pelvic floor dysfunction.",
     "Pelvic floor exercises from a leaflet.",
     "Continence during exercise and daily activity."},
    {"exercise_program", 30, 80,
     {"Needs a structured exercise program after a cardiac rehabilitation course ended.",
      "Osteopenia; wants a safe strength and balance program."},
     "Cleared for exercise by the family physician.",
     "Deconditioning.",
     "Walking daily.",
     "An independent program three times a week."},
    {"tissue_damage", 25, 65,
     {"Calf muscle tear ({side}) {weeks} weeks ago, slow to recover; rehabilitation please.",
      "Quadriceps contusion ({side}) with weakness {weeks} weeks after a fall."},
     "Ultrasound confirmed a partial tear.",
     "Partial muscle tear, {side} calf.",
     "Compression and gradual walking.",
     "Full strength and return to jogging."},
    {"muscle_tension", 22, 65,
     {"Upper back and shoulder muscle tension with knots from long hours at a computer.",
      "Tight neck and shoulder muscles for {months} months; would like massage therapy."},
     "No injury; works from home.",
     "Muscular tension.",
     "Stretching breaks.",
     "Less tension and better sleep."},
    {"stress_anxiety", 20, 60,
     {"Work-related stress and anxiety with muscle tension; relaxation massage recommended.",
      "Anxiety, seeing a counsellor; massage for relaxation as part of self-care."},
     "Counselling every two weeks.",
     "Stress and anxiety.",
     "Counselling; mindfulness app.",
     "Feeling calmer and sleeping better."},
    {"tension_headache", 20, 60,
     {"Tension-type headaches three or four times a week with neck and shoulder tightness.",
      "Recurring tension headaches linked to jaw and neck tension; massage please."},
     "Migraine excluded by the family physician.",
     "Tension-type headache.",
     "Acetaminophen as needed.",
     "Fewer headache days."},
    {"minor_strain", 18, 60,
     {"Minor {side} calf strain from a weekend game, walking normally; massage for recovery.",
      "Mild low back muscle strain from gardening, improving; massage for the sore muscles."},
     "No previous injuries.",
     "Minor muscle strain.",
     "Rest, gentle stretching.",
     "Back to normal activity within two weeks."},
    {"relaxation_sleep", 25, 70,
     {"Poor sleep and difficulty relaxing; relaxation massage, 60-minute sessions preferred.",
      "Would like regular relaxation massage to help sleep."},
     "No medical concerns.",
     "Sleep difficulty.",
     "Sleep hygiene advice.",
     "Better sleep."},
    {"posture", 20, 60,
     {"Rounded shoulders and neck tightness from posture at work; massage please.",
      "Postural muscle tightness; massage to complement an ergonomic review."},
     "Desk job; ergonomic assessment done.",
     "Postural muscle tightness.",
     "Standing desk.",
     "Less tightness by the end of the day."},
    {"circulation", 45, 80,
     {"Tired, heavy legs at the end of the day; massage to help circulation (no DVT history).",
      "Standing job with leg fatigue; massage for circulation."},
     "No varicose vein treatment; no history of clots.",
     "Leg fatigue.",
     "Compression stockings.",
     "Lighter legs at the end of the day."},
    {"muscle_fatigue", 20, 60,
     {"Overworked forearm and shoulder muscles (musician); massage for tired muscles.",
      "Tired, overworked leg muscles from a new job on her feet; massage please."},
     "No injury.",
     "Muscle fatigue.",
     "Stretching.",
     "Less fatigue and soreness."},
};

/* Red-flag situations, the cauda equina signs first. */
static const red_flag_text_t red_flag_texts[] = {
    {"saddle_anaesthesia", {"low_back_pain", "back_pain", "chronic_low_back_pain"}, 30, 70,
     "Known low back pain; today reports numbness in the saddle area since yesterday and difficulty starting urination.",
     "bladder_dysfunction"},
    {"bladder_dysfunction", {"low_back_pain", "back_pain", NULL}, 30, 70,
     "Low back pain with new urinary retention since this morning.", "saddle_anaesthesia"},
    {"bowel_dysfunction", {"back_pain", "low_back_pain", NULL}, 30, 70,
     "Back pain for two weeks; new loss of bowel control since yesterday.", NULL},
    {"progressive_leg_weakness", {"low_back_pain", "back_pain", NULL}, 30, 75,
     "Sciatica for a month; the {side} leg has become weaker and number over the last three days.",
     "foot_drop"},
    {"foot_drop", {"low_back_pain", "back_pain", NULL}, 30, 75,
     "{Side} foot drop noticed this week with low back pain; tripping on stairs.", NULL},
    {"major_trauma", {"neck_pain", "back_pain", "knee_pain"}, 18, 70,
     "Fell about three metres from a ladder yesterday; neck and back pain, not yet imaged.", NULL},
    {"minor_trauma_osteoporosis", {"back_pain", "joint_pain", NULL}, 70, 92,
     "Known osteoporosis; sudden mid-back pain after lifting a grocery bag.", NULL},
    {"history_of_cancer", {"back_pain", "chronic_pain", NULL}, 45, 80,
     "Breast cancer treated five years ago; new thoracic back pain for six weeks, worse at rest.",
     "night_pain"},
    {"unexplained_weight_loss", {"back_pain", "chronic_pain", NULL}, 40, 80,
     "Back pain with about 8 kg unintended weight loss over three months.", NULL},
    {"fever_chills", {"back_pain", "joint_pain", NULL}, 25, 75,
     "Low back pain for a week with fever and chills since the weekend.", NULL},
    {"recent_bacterial_infection", {"knee_pain", "joint_pain", NULL}, 25, 75,
     "{Side} knee hot and swollen two weeks after a urinary tract infection.", NULL},
    {"iv_drug_use", {"back_pain", NULL, NULL}, 20, 55,
     "Severe thoracic back pain; intravenous drug use disclosed at screening.", NULL},
    {"immunosuppression", {"back_pain", "joint_pain", NULL}, 35, 80,
     "On long-term prednisone for rheumatoid disease; new constant back pain.", NULL},
    {"night_pain", {"shoulder_pain", "back_pain", NULL}, 40, 80,
     "{Side} shoulder pain waking the patient every night, not eased by changing position.", NULL},
    {"new_pain_age_over_50", {"back_pain", NULL, NULL}, 55, 82,
     "New back pain at {age}, no injury and no previous episodes.", NULL},
    {"new_pain_age_under_20", {"back_pain", NULL, NULL}, 14, 19,
     "New, persistent back pain at {age} without injury, stopping sport.", NULL},
};

/* Massage contraindications, each with the plans it interrupts. */
static const contra_text_t contra_texts[] = {
    {"suspected_dvt", {"post_surgical_knee", "post_surgical_hip"}, 55, 85,
     "Joint replacement ({side}) {weeks} weeks ago; the calf is now swollen, warm and tender, DVT being ruled out."},
    {"recent_surgery_at_site", {"post_surgical_knee", "post_surgical_hip"}, 50, 85,
     "Surgery ({side}) {weeks} weeks ago; the surgeon has not yet cleared massage of the operated area."},
    {"fever", {"post_surgical_hip", "muscle_fatigue"}, 30, 80,
     "Low-grade fever since the weekend, being investigated."},
    {"acute_infection", {"muscle_tension", "tension_headache"}, 20, 65,
     "Cellulitis of the {side} forearm on antibiotics; neck and shoulder tension."},
    {"recent_fracture_at_site", {"muscle_tension", "minor_strain"}, 20, 70,
     "{Side} wrist fracture, cast removed ten days ago; the forearm is tight and sore."},
};

/* ---- lookups and templates ----------------------------------------------------------- */

const condition_text_t *gen_condition_text(const char *code)
{
    for (size_t i = 0; i < GEN_COUNT(condition_texts); i++)
        if (!strcmp(condition_texts[i].code, code))
            return &condition_texts[i];
    return NULL;
}

const companion_t *gen_companions(const char *code)
{
    for (size_t i = 0; i < GEN_COUNT(companions); i++)
        if (!strcmp(companions[i].code, code))
            return &companions[i];
    return NULL;
}

const red_flag_text_t *gen_red_flag_text(const char *code)
{
    for (size_t i = 0; i < GEN_COUNT(red_flag_texts); i++)
        if (!strcmp(red_flag_texts[i].flag, code))
            return &red_flag_texts[i];
    return NULL;
}

const contra_text_t *gen_contra_text(const char *code)
{
    for (size_t i = 0; i < GEN_COUNT(contra_texts); i++)
        if (!strcmp(contra_texts[i].finding, code))
            return &contra_texts[i];
    return NULL;
}

void gen_expand(char *out, size_t cap, const char *tmpl, const vars_t *v)
{
    size_t o = 0;
    if (cap == 0)
        return;
    for (const char *p = tmpl; *p && o + 1 < cap;) {
        char num[16];
        const char *rep = NULL;
        size_t skip = 0;
        if (!strncmp(p, "{side}", 6)) {
            rep = v->side, skip = 6;
        } else if (!strncmp(p, "{Side}", 6)) {
            rep = !strcmp(v->side, "left") ? "Left" : "Right", skip = 6;
        } else if (!strncmp(p, "{weeks}", 7)) {
            snprintf(num, sizeof num, "%u", v->weeks), rep = num, skip = 7;
        } else if (!strncmp(p, "{months}", 8)) {
            snprintf(num, sizeof num, "%u", v->months), rep = num, skip = 8;
        } else if (!strncmp(p, "{age}", 5)) {
            snprintf(num, sizeof num, "%u", v->age), rep = num, skip = 5;
        }
        if (rep) {
            for (const char *q = rep; *q && o + 1 < cap; q++)
                out[o++] = *q;
            p += skip;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}
