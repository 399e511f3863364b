/* hx_gen — synthetic network and referrals (see hx_gen.h).
 *
 * Randomness: splitmix64 streams. The network uses stream 0 of the seed; referral i uses
 * its own stream (seed, i + 1), so referral i does not depend on how many were made before
 * it. No floating point in any decision that shapes output, so every platform gives the
 * same bytes for the same seed.
 *
 * The clinical content: condition codes come from the rules file and are grouped by plan
 * (physiotherapy, massage_therapy, both); red flags and massage contraindications likewise.
 * The text tables below give realistic wording, ages and histories for the codes the default
 * rules know; a code added to the rules later is still used, with wording built from its
 * label, so the generator never goes out of step with triage. */
#include "hx_gen.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hx_util.h"

enum { PLAN_PHYSIO = 1, PLAN_MASSAGE = 2, PLAN_BOTH = 3 };
enum { D_PT = 1, D_RMT = 2, D_MD = 3 };     /* referrer disciplines */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define DAY_MIN(h, m) ((h) * 60 + (m))

/* ---- random numbers ------------------------------------------------------------------ */

typedef struct {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r)
{
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static rng_t rng_stream(uint64_t seed, uint64_t stream)
{
    rng_t r = {seed};
    uint64_t a = rng_next(&r);
    r.s = a ^ (stream * UINT64_C(0xD1B54A32D192ED03));
    (void)rng_next(&r);
    return r;
}

/* Uniform in [0, n); n > 0. The modulo bias is below 2^-40 for the small n used here. */
static size_t below(rng_t *r, size_t n)
{
    return n ? (size_t)(rng_next(r) % n) : 0;
}

/* Uniform in [lo, hi]. */
static unsigned between(rng_t *r, unsigned lo, unsigned hi)
{
    return lo + (unsigned)below(r, (size_t)(hi - lo) + 1);
}

/* True with probability pct/100. */
static bool chance(rng_t *r, unsigned pct)
{
    return below(r, 100) < pct;
}

/* An index drawn with the given weights (all zero: 0). */
static size_t weighted(rng_t *r, const unsigned *w, size_t n)
{
    unsigned total = 0;
    for (size_t i = 0; i < n; i++)
        total += w[i];
    if (total == 0)
        return 0;
    unsigned x = (unsigned)below(r, total);
    for (size_t i = 0; i < n; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return n - 1;
}

#define PICK(r, arr) ((arr)[below((r), COUNT(arr))])

/* ---- static data: places, people, hours ---------------------------------------------- */

typedef struct {
    const char *slug, *display, *city, *area;
    bool french;
} place_t;

static const place_t places[] = {
    {"northpoint", "Northpoint", "Toronto", "416", false},
    {"lakeside", "Lakeside", "Mississauga", "905", false},
    {"riverdale", "Riverdale", "Toronto", "416", false},
    {"eastgate", "Eastgate", "Ottawa", "613", false},
    {"harbour", "Harbour", "Hamilton", "905", false},
    {"laurier", "Laurier", "Ottawa", "613", true},
    {"bayview", "Bayview", "Toronto", "416", false},
    {"danforth", "Danforth", "Toronto", "416", false},
    {"leslieville", "Leslieville", "Toronto", "416", false},
    {"annex", "Annex", "Toronto", "416", false},
    {"junction", "Junction", "Toronto", "416", false},
    {"beaches", "Beaches", "Toronto", "416", false},
    {"parkdale", "Parkdale", "Toronto", "416", false},
    {"roncesvalles", "Roncesvalles", "Toronto", "416", false},
    {"yorkville", "Yorkville", "Toronto", "416", false},
    {"port-credit", "Port Credit", "Mississauga", "905", false},
    {"streetsville", "Streetsville", "Mississauga", "905", false},
    {"erin-mills", "Erin Mills", "Mississauga", "905", false},
    {"meadowvale", "Meadowvale", "Mississauga", "905", false},
    {"westdale", "Westdale", "Hamilton", "905", false},
    {"ancaster", "Ancaster", "Hamilton", "905", false},
    {"stoney-creek", "Stoney Creek", "Hamilton", "905", false},
    {"kanata", "Kanata", "Ottawa", "613", false},
    {"barrhaven", "Barrhaven", "Ottawa", "613", false},
    {"orleans", "Orléans", "Ottawa", "613", true},
    {"westboro", "Westboro", "Ottawa", "613", false},
    {"glebe", "Glebe", "Ottawa", "613", false},
    {"vanier", "Vanier", "Ottawa", "613", true},
    {"cote-de-sable", "Côte-de-Sable", "Ottawa", "613", true},
    {"unionville", "Unionville", "Markham", "905", false},
    {"thornhill", "Thornhill", "Vaughan", "905", false},
    {"bramalea", "Bramalea", "Brampton", "905", false},
    {"springdale", "Springdale", "Brampton", "905", false},
    {"glen-abbey", "Glen Abbey", "Oakville", "905", false},
    {"aldershot", "Aldershot", "Burlington", "905", false},
    {"old-south", "Old South", "London", "519", false},
    {"masonville", "Masonville", "London", "519", false},
    {"uptown", "Uptown", "Waterloo", "519", false},
    {"belmont", "Belmont Village", "Kitchener", "519", false},
    {"riverside", "Riverside", "Windsor", "519", false},
    {"allandale", "Allandale", "Barrie", "705", false},
    {"minnow-lake", "Minnow Lake", "Sudbury", "705", false},
    {"portsmouth", "Portsmouth", "Kingston", "613", false},
};

/* Name "cultures" and the language each brings (NULL: English only). */
enum { C_EN, C_EN2, C_FR, C_ZH, C_PA, C_ES, C_PT, C_AR, C_TL, N_CULTURES };

typedef struct {
    const char *language;
    const char *given[12];
    const char *family[12];
} culture_t;

static const culture_t cultures[N_CULTURES] = {
    [C_EN] = {NULL,
              {"Olivia", "Liam", "Emma", "Noah", "Charlotte", "James", "Amelia", "Owen", "Hannah",
               "Ethan", "Grace", "Megan"},
              {"Thompson", "MacDonald", "Wilson", "Campbell", "Stewart", "Robertson", "Clarke",
               "Bennett", "Fraser", "Whitford", "Sinclair", "Gallagher"}},
    [C_EN2] = {NULL,
               {"Adebayo", "Chidi", "Priya", "Aarav", "Fatima", "Kwame", "Anika", "Tendai",
                "Rohan", "Nkechi", "Deepa", "Kofi"},
               {"Okafor", "Adeyemi", "Raman", "Patel", "Mensah", "Siddiqui", "Nair", "Banda",
                "Iyer", "Eze", "Menon", "Boateng"}},
    [C_FR] = {"fr",
              {"Élodie", "Mathieu", "Camille", "Julien", "Chloé", "Gabriel", "Émilie", "Louis",
               "Isabelle", "Antoine", "Marie-Ève", "François"},
              {"Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie",
               "Fortin", "Pelletier", "Bélanger", "Lévesque"}},
    [C_ZH] = {"zh",
              {"Wei", "Mei Lin", "Jian", "Xiaoling", "Hao", "Yan", "Jun", "Li Na", "Chen", "Ying",
               "Zhi", "Hui"},
              {"Chen", "Wang", "Li", "Zhang", "Liu", "Huang", "Zhao", "Wu", "Zhou", "Lin", "Xu",
               "Sun"}},
    [C_PA] = {"pa",
              {"Harpreet", "Gurpreet", "Manpreet", "Jaspreet", "Amrit", "Simran", "Navdeep",
               "Rajveer", "Kiran", "Arjun", "Baljit", "Inderjit"},
              {"Singh", "Kaur", "Gill", "Sandhu", "Dhillon", "Sidhu", "Grewal", "Brar", "Sekhon",
               "Bains", "Virk", "Johal"}},
    [C_ES] = {"es",
              {"Sofía", "Mateo", "Valentina", "Diego", "Camila", "Alejandro", "Lucía", "Javier",
               "Isabel", "Carlos", "Ximena", "Andrés"},
              {"García", "Rodríguez", "Martínez", "Hernández", "López", "González", "Ruiz",
               "Álvarez", "Torres", "Ramírez", "Flores", "Vargas"}},
    [C_PT] = {"pt",
              {"João", "Beatriz", "Tiago", "Mariana", "Rafael", "Inês", "Lucas", "Ana", "Pedro",
               "Carolina", "Gonçalo", "Leonor"},
              {"Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Martins", "Mendes",
               "Carvalho", "Sousa", "Rocha", "Almeida"}},
    [C_AR] = {"ar",
              {"Amira", "Omar", "Layla", "Karim", "Nadia", "Youssef", "Rania", "Hassan", "Mariam",
               "Samir", "Nour", "Tarek"},
              {"Haddad", "Khoury", "Karam", "Mansour", "Nasser", "Saleh", "Hamdan", "Aziz",
               "Farah", "Habib", "Darwish", "Sabbagh"}},
    [C_TL] = {"tl",
              {"Maria", "Jose", "Angelica", "Mark", "Kristine", "Paolo", "Jasmine", "Carlo",
               "Rowena", "Miguel", "Lorna", "Ramon"},
              {"Santos", "Reyes", "Cruz", "Bautista", "Ocampo", "Mendoza", "Villanueva",
               "Dela Cruz", "Aquino", "Navarro", "Castillo", "Pascual"}},
};

/* Who lives in the network's cities, roughly (patients and staff). English is by far the
 * most common language; French, Chinese, Punjabi, Spanish, Portuguese, Arabic and Tagalog
 * follow. */
static const unsigned culture_weights[N_CULTURES] = {
    [C_EN] = 55, [C_EN2] = 15, [C_FR] = 8, [C_ZH] = 5, [C_PA] = 4,
    [C_ES] = 4, [C_PT] = 3, [C_AR] = 3, [C_TL] = 3,
};

static const char *const physician_given[] = {"Rajiv", "Farah", "Helen", "David", "Anita",
                                              "Marc", "Susan", "Kenji", "Lina", "Paul"};
static const char *const physician_family[] = {"Menon", "Qureshi", "Doyle", "Bernstein", "Lau",
                                               "Lefebvre", "Osei", "Tanaka", "Haddad", "Novak"};

static const char *const sides[] = {"left", "right"};

/* ---- static data: clinical wording --------------------------------------------------- */

/* Wording for a condition. Templates may use {side}, {Side}, {weeks}, {months}, {age}. */
typedef struct {
    const char *code;
    unsigned age_lo, age_hi;
    const char *reason[2];
    const char *history;
    const char *diagnosis;      /* only written when the referrer may diagnose */
    const char *treatment;
    const char *expectations;
} condition_text_t;

/* Conditions that often come together with a main one, for referrals with two codes. */
static const struct companion {
    const char *code;
    const char *with[3];
} companions[] = {
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

/* A red-flag situation: the finding, where it usually shows up, and how it was noticed. */
typedef struct {
    const char *flag;
    const char *conditions[3];  /* the complaint it comes with, most likely first */
    unsigned age_lo, age_hi;
    const char *reason;
    const char *companion;      /* a second flag often seen with it, or NULL */
} red_flag_text_t;

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

/* A massage contraindication and the plan it usually interrupts. */
typedef struct {
    const char *finding;
    const char *conditions[2];
    unsigned age_lo, age_hi;
    const char *reason;
} contra_text_t;

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

/* ---- small text helpers -------------------------------------------------------------- */

typedef struct {
    const char *side;
    unsigned weeks, months, age;
} vars_t;

/* Expands {side}, {Side}, {weeks}, {months}, {age} in tmpl into out (truncated to cap). */
static void expand(char *out, size_t cap, const char *tmpl, const vars_t *v)
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

/* The ASCII letter for a Latin-1 letter encoded in UTF-8 as C3 xx ("é" -> 'e'), or 0. */
static char unaccent(unsigned char b)
{
    /* U+00C0..U+00FF in order; '.' for signs and letters with no ASCII fold. */
    static const char map[] = "aaaaaaaceeeeiiiidnooooo.ouuuuy.s"
                              "aaaaaaaceeeeiiiidnooooo.ouuuuy.y";
    _Static_assert(sizeof map == 65, "one entry per code point U+00C0..U+00FF");
    char c = b >= 0x80 && b < 0xC0 ? map[b - 0x80] : '.';
    return c == '.' ? 0 : c;
}

/* Lower-case ASCII letters of s, accents folded ("Élodie" -> "elodie") and anything else
 * dropped, at most cap-1 characters. */
static void ascii_slug(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 1 < cap; s++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z') {
            out[o++] = (char)(c - 'A' + 'a');
        } else if (c >= 'a' && c <= 'z') {
            out[o++] = c;
        } else if ((unsigned char)c == 0xC3 && s[1]) {
            char a = unaccent((unsigned char)s[1]);
            if (a)
                out[o++] = a;
            s++;
        }
    }
    out[o] = '\0';
}

static char initial(const char *s)
{
    for (; *s; s++) {
        if (*s >= 'A' && *s <= 'Z')
            return *s;
        if (*s >= 'a' && *s <= 'z')
            return (char)(*s - 'a' + 'A');
    }
    return 'X';
}

static void format_date(int64_t days, char out[11])
{
    int64_t y;
    unsigned m, d;
    hx_civil_from_days(days, &y, &m, &d);
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, m % 100u, d % 100u);
}

static void format_hhmm(unsigned minutes, char out[6])
{
    snprintf(out, 6, "%02u:%02u", (minutes / 60) % 100u, minutes % 60);
}

/* ---- the generator ------------------------------------------------------------------- */

typedef struct {
    const char *code, *label;   /* point into g->rules */
    const char *priority;       /* NULL: none */
    unsigned plan;
} cond_t;

typedef struct {
    const char *code, *reason;
    bool emergency;
} flag_t;

typedef struct {
    char id[32];
    char city[48];
    char area[4];
    unsigned disciplines;       /* bit D_PT, bit D_RMT */
} g_clinic_t;

typedef struct {
    char name[64];
    char email_local[40];
    int discipline;             /* D_PT or D_RMT */
    char number[8];             /* registration digits */
    size_t clinic;
} g_therapist_t;

struct hx_gen {
    json_t *rules;              /* own copy; the strings below point into it */
    cond_t *conds;
    size_t n_conds;
    size_t *pool[4];            /* indices into conds by plan: [PLAN_PHYSIO], [PLAN_MASSAGE], [PLAN_BOTH] */
    size_t n_pool[4];
    flag_t *flags;              /* red flags */
    size_t n_flags;
    flag_t *contras;            /* massage contraindications */
    size_t n_contras;
    const char *rmt_finding;    /* the "needs diagnosis" finding, or NULL */
    bool rmt_rule;              /* triage sends an RMT's physiotherapy conditions to a PT */
    unsigned kind_weights[HX_GEN_KIND_COUNT];
    uint64_t seed;
    int64_t last_day;

    json_t *directory;
    g_clinic_t *clinics;
    size_t n_clinics;
    g_therapist_t *therapists;
    size_t n_therapists;
    size_t *by_discipline[3];   /* therapist indices, [D_PT], [D_RMT] */
    size_t n_by_discipline[3];
};

const char *hx_gen_kind_text(hx_gen_kind_t k)
{
    switch (k) {
    case HX_GEN_PHYSIO: return "physiotherapy";
    case HX_GEN_MASSAGE: return "massage_therapy";
    case HX_GEN_BOTH: return "both";
    case HX_GEN_RED_FLAG: return "red_flag";
    case HX_GEN_CONTRAINDICATED: return "contraindicated";
    default: return "unknown";
    }
}

void hx_gen_destroy(hx_gen_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hx_gen_t *g = *self_p;
    json_decref(g->rules);
    json_decref(g->directory);
    free(g->conds);
    for (size_t i = 0; i < COUNT(g->pool); i++)
        free(g->pool[i]);
    free(g->flags);
    free(g->contras);
    free(g->clinics);
    free(g->therapists);
    for (size_t i = 0; i < COUNT(g->by_discipline); i++)
        free(g->by_discipline[i]);
    free(g);
    *self_p = NULL;
}

/* JSON building: any failed allocation sets *oom; the finished object is then dropped. */
static void put(json_t *o, const char *key, json_t *v, bool *oom)
{
    if (!v || json_object_set_new(o, key, v) != 0)
        *oom = true;
}

static void push(json_t *a, json_t *v, bool *oom)
{
    if (!v || json_array_append_new(a, v) != 0)
        *oom = true;
}

/* ---- reading the rules --------------------------------------------------------------- */

static bool fragment_match(const json_t *never_alone, const char *code)
{
    const char *frag;
    json_t *v;
    json_object_foreach((json_t *)never_alone, frag, v) {
        (void)v;
        if (strstr(code, frag))
            return true;
    }
    return false;
}

static void read_flags(const json_t *table, const char *base, flag_t **out, size_t *n,
                       hx_errors_t *e)
{
    if (!table)
        return;
    if (!json_is_object(table)) {
        hx_errors_add(e, base, "must be an object");
        return;
    }
    *out = calloc(json_object_size(table) + 1, sizeof **out);
    if (!*out) {
        hx_errors_add(e, base, "out of memory");
        return;
    }
    const char *code;
    json_t *v;
    json_object_foreach((json_t *)table, code, v) {
        char path[96];
        hx_path_key(path, sizeof path, base, code);
        if (!hx_is_code(code)) {
            hx_errors_add(e, path, "must be a code (a-z, 0-9, _)");
            continue;
        }
        const json_t *reason = json_object_get(v, "reason");
        flag_t *f = &(*out)[(*n)++];
        f->code = code;
        f->reason = json_is_string(reason) ? json_string_value(reason) : code;
        f->emergency = json_is_true(json_object_get(v, "emergency"));
    }
}

static void read_rules(hx_gen_t *g, hx_errors_t *e)
{
    const json_t *root = g->rules;
    if (!json_is_object(root)) {
        hx_errors_add(e, "rules", "must be a JSON object (a triage rules file)");
        return;
    }
    const json_t *conditions = json_object_get(root, "conditions");
    if (!json_is_object(conditions) || json_object_size(conditions) == 0) {
        hx_errors_add(e, "rules.conditions", "required: an object with at least one condition");
        return;
    }
    size_t n = json_object_size(conditions);
    g->conds = calloc(n, sizeof *g->conds);
    for (int p = PLAN_PHYSIO; p <= PLAN_BOTH; p++)
        g->pool[p] = calloc(n, sizeof *g->pool[p]);
    if (!g->conds || !g->pool[PLAN_PHYSIO] || !g->pool[PLAN_MASSAGE] || !g->pool[PLAN_BOTH]) {
        hx_errors_add(e, "rules", "out of memory");
        return;
    }
    const json_t *never_alone = json_object_get(root, "massage_never_alone");
    const char *code;
    json_t *v;
    json_object_foreach((json_t *)conditions, code, v) {
        char path[96], ppath[96];
        hx_path_key(path, sizeof path, "rules.conditions", code);
        hx_path_key(ppath, sizeof ppath, path, "plan");
        if (!hx_is_code(code)) {
            hx_errors_add(e, path, "must be a code (a-z, 0-9, _)");
            continue;
        }
        const char *plan = json_string_value(json_object_get(v, "plan"));
        unsigned bits = !plan                             ? 0
                        : !strcmp(plan, "physiotherapy")   ? PLAN_PHYSIO
                        : !strcmp(plan, "massage_therapy") ? PLAN_MASSAGE
                        : !strcmp(plan, "both")            ? PLAN_BOTH
                                                           : 0;
        if (!bits) {
            hx_errors_add(e, ppath, "must be \"physiotherapy\", \"massage_therapy\" or \"both\"");
            continue;
        }
        const char *label = json_string_value(json_object_get(v, "label"));
        cond_t *c = &g->conds[g->n_conds];
        c->code = code;
        c->label = label && *label ? label : code;
        c->priority = json_string_value(json_object_get(v, "priority"));
        c->plan = bits;
        /* A massage-only code that triage would pair with physiotherapy is not "massage
         * only"; it is left out of that pool (it stays usable for the collaborative mix). */
        if (bits == PLAN_MASSAGE && json_is_object(never_alone) && fragment_match(never_alone, code))
            bits = PLAN_BOTH;
        g->pool[bits][g->n_pool[bits]++] = g->n_conds;
        g->n_conds++;
    }
    read_flags(json_object_get(root, "red_flags"), "rules.red_flags", &g->flags, &g->n_flags, e);
    read_flags(json_object_get(root, "massage_contraindications"), "rules.massage_contraindications",
               &g->contras, &g->n_contras, e);
    const json_t *rmt_section = json_object_get(root, "rmt_needs_diagnosis");
    g->rmt_rule = json_is_string(json_object_get(rmt_section, "reason"));
    const json_t *rmt = g->rmt_rule ? json_object_get(rmt_section, "findings") : NULL;
    if (json_is_array(rmt) && json_array_size(rmt) > 0 && json_is_string(json_array_get(rmt, 0)))
        g->rmt_finding = json_string_value(json_array_get(rmt, 0));

    g->kind_weights[HX_GEN_PHYSIO] = g->n_pool[PLAN_PHYSIO] ? 45 : 0;
    g->kind_weights[HX_GEN_MASSAGE] = g->n_pool[PLAN_MASSAGE] ? 25 : 0;
    g->kind_weights[HX_GEN_BOTH] = g->n_pool[PLAN_BOTH] ? 20 : 0;
    g->kind_weights[HX_GEN_RED_FLAG] = g->n_flags ? 5 : 0;
    g->kind_weights[HX_GEN_CONTRAINDICATED] =
        g->n_contras && (g->n_pool[PLAN_MASSAGE] || g->n_pool[PLAN_BOTH]) ? 5 : 0;
    if (g->n_conds == 0)
        hx_errors_add(e, "rules.conditions", "no usable condition");
}

static const cond_t *find_cond(const hx_gen_t *g, const char *code, unsigned need_plan_bits)
{
    if (!code)
        return NULL;
    for (size_t i = 0; i < g->n_conds; i++)
        if (!strcmp(g->conds[i].code, code) && (g->conds[i].plan & need_plan_bits))
            return &g->conds[i];
    return NULL;
}

static const flag_t *find_flag(const flag_t *flags, size_t n, const char *code)
{
    for (size_t i = 0; code && i < n; i++)
        if (!strcmp(flags[i].code, code))
            return &flags[i];
    return NULL;
}

/* ---- the network --------------------------------------------------------------------- */

typedef struct {
    unsigned day, from, to;     /* minutes after midnight */
} win_t;

static size_t add_win(win_t *w, size_t n, unsigned day, unsigned from, unsigned to)
{
    w[n] = (win_t){day, from, to};
    return n + 1;
}

/* A therapist's weekly hours, from the shapes clinics actually staff: day shifts, split
 * days, late shifts with a Saturday morning, evenings, part-time, weekends, four long days.
 * Windows come out by day, then by time, never overlapping. */
static size_t make_hours(rng_t *r, win_t out[21])
{
    static const unsigned shape_weights[] = {26, 12, 16, 10, 14, 8, 14};
    size_t n = 0;
    switch (weighted(r, shape_weights, COUNT(shape_weights))) {
    case 0: {   /* day shift, sometimes a weekday off */
        static const unsigned starts[] = {DAY_MIN(7, 30), DAY_MIN(8, 0), DAY_MIN(8, 30), DAY_MIN(9, 0)};
        unsigned from = PICK(r, starts);
        unsigned off = chance(r, 30) ? between(r, 1, 5) : 0;
        for (unsigned d = 1; d <= 5; d++)
            if (d != off)
                n = add_win(out, n, d, from, from + 8 * 60);
        break;
    }
    case 1:     /* split day with a lunch break */
        for (unsigned d = 1; d <= 5; d++) {
            n = add_win(out, n, d, DAY_MIN(9, 0), DAY_MIN(12, 0));
            n = add_win(out, n, d, DAY_MIN(13, 0), DAY_MIN(17, 0));
        }
        break;
    case 2: {   /* alternating late and early shifts, Saturday morning */
        bool late_first = chance(r, 50);
        for (unsigned d = 1; d <= 4; d++) {
            bool late = (d % 2 == 1) == late_first;
            n = late ? add_win(out, n, d, DAY_MIN(12, 0), DAY_MIN(20, 0))
                     : add_win(out, n, d, DAY_MIN(8, 0), DAY_MIN(16, 0));
        }
        if (chance(r, 60))
            n = add_win(out, n, 6, DAY_MIN(9, 0), DAY_MIN(13, 0));
        break;
    }
    case 3:     /* evenings and Saturday morning */
        for (unsigned d = 1; d <= 5; d++)
            n = add_win(out, n, d, DAY_MIN(16, 0), DAY_MIN(21, 0));
        n = add_win(out, n, 6, DAY_MIN(8, 0), DAY_MIN(12, 0));
        break;
    case 4: {   /* part-time: three weekdays and Saturday */
        unsigned skip1 = between(r, 1, 5), skip2 = between(r, 1, 5);
        while (skip2 == skip1)
            skip2 = between(r, 1, 5);
        for (unsigned d = 1; d <= 5; d++)
            if (d != skip1 && d != skip2)
                n = add_win(out, n, d, DAY_MIN(10, 0), DAY_MIN(18, 0));
        n = add_win(out, n, 6, DAY_MIN(9, 0), DAY_MIN(15, 0));
        break;
    }
    case 5: {   /* weekend-heavy: Thursday or Wednesday to Sunday */
        unsigned first = chance(r, 50) ? 3 : 4;
        for (unsigned d = first; d <= 6; d++)
            n = add_win(out, n, d, DAY_MIN(9, 0), DAY_MIN(17, 0));
        n = add_win(out, n, 7, DAY_MIN(10, 0), DAY_MIN(16, 0));
        break;
    }
    default:    /* four long days and Saturday */
        for (unsigned d = 2; d <= 6; d++)
            n = add_win(out, n, d, DAY_MIN(10, 0), DAY_MIN(18, 0));
        break;
    }
    return n;
}

/* Languages a therapist of culture c speaks, most used first (1..4 entries). */
static size_t therapist_languages(rng_t *r, int c, const char *out[4])
{
    size_t n = 0;
    const char *native = cultures[c].language;
    if (!native) {
        out[n++] = "en";
        if (chance(r, 10))
            out[n++] = "fr";
    } else if (c == C_FR) {
        unsigned x = (unsigned)below(r, 100);
        if (x < 75) {
            out[n++] = "fr";
            out[n++] = "en";
        } else if (x < 90) {
            out[n++] = "en";
            out[n++] = "fr";
        } else {
            out[n++] = "fr";
        }
    } else {
        unsigned x = (unsigned)below(r, 100);
        if (x < 80) {
            out[n++] = "en";
            out[n++] = native;
        } else if (x < 92) {
            out[n++] = native;
            out[n++] = "en";
        } else {
            out[n++] = "en";
        }
    }
    if (n < 4 && chance(r, 4)) {
        const char *extra = chance(r, 50) ? "es" : "fr";
        bool have = false;
        for (size_t i = 0; i < n; i++)
            have |= !strcmp(out[i], extra);
        if (!have)
            out[n++] = extra;
    }
    return n;
}

/* A unique registration number for the k-th therapist of a discipline: an affine
 * permutation of the number range, so numbers look random but never repeat.
 * Physiotherapists "CPO nnnnn"; massage therapists "CMTO nnnn" (5 digits past 9,000). */
static void registration_number(int discipline, size_t k, uint64_t offset, char out[8])
{
    const uint64_t a = 7919;    /* prime, coprime with 9,000 and 90,000 */
    if (discipline == D_RMT && k < 9000)
        snprintf(out, 8, "%u", (unsigned)(1000 + (a * k + offset) % 9000));
    else
        snprintf(out, 8, "%u", (unsigned)(10000 + (a * (discipline == D_RMT ? k - 9000 : k) + offset) % 90000));
}

static json_t *hours_json(const win_t *w, size_t n, bool *oom)
{
    json_t *a = json_array();
    if (!a) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        char from[6], to[6];
        format_hhmm(w[i].from, from);
        format_hhmm(w[i].to, to);
        json_t *o = json_object();
        if (o) {
            put(o, "day", json_integer(w[i].day), oom);
            put(o, "from", json_string(from), oom);
            put(o, "to", json_string(to), oom);
        }
        push(a, o, oom);
    }
    return a;
}

static const char *clinic_kind_name(rng_t *r, unsigned disciplines, bool french)
{
    static const char *const mixed[] = {"%s Physiotherapy & Massage", "%s Physio and Massage Therapy",
                                        "%s Rehab and Wellness", "%s Health Collective",
                                        "%s Sports Medicine & Massage", "%s Integrated Health"};
    static const char *const pt[] = {"%s Physiotherapy", "%s Physio Clinic", "%s Rehabilitation Centre"};
    static const char *const rmt[] = {"%s Massage Therapy", "%s Therapeutic Massage", "%s Massage Studio"};
    if (french)
        return disciplines == (1u << D_PT)    ? "Physiothérapie %s"
               : disciplines == (1u << D_RMT) ? "Massothérapie %s"
                                              : "Clinique %s";
    return disciplines == (1u << D_PT)    ? PICK(r, pt)
           : disciplines == (1u << D_RMT) ? PICK(r, rmt)
                                          : PICK(r, mixed);
}

static int build_network(hx_gen_t *g, size_t n_clinics, size_t n_therapists)
{
    rng_t r = rng_stream(g->seed, 0);
    bool oom = false;
    g->clinics = calloc(n_clinics, sizeof *g->clinics);
    g->therapists = calloc(n_therapists, sizeof *g->therapists);
    size_t *sizes = calloc(n_clinics, sizeof *sizes);
    unsigned *cum = calloc(n_clinics, sizeof *cum);
    unsigned *place_uses = calloc(COUNT(places), sizeof *place_uses);
    g->by_discipline[D_PT] = calloc(n_therapists, sizeof(size_t));
    g->by_discipline[D_RMT] = calloc(n_therapists, sizeof(size_t));
    json_t *clinics = json_array(), *therapists = json_array();
    g->directory = json_object();
    if (!g->clinics || !g->therapists || !sizes || !cum || !place_uses || !g->by_discipline[D_PT] ||
        !g->by_discipline[D_RMT] || !clinics || !therapists || !g->directory)
        goto fail;
    put(g->directory, "version", json_integer(1), &oom);
    put(g->directory, "clinics", json_incref(clinics), &oom);
    put(g->directory, "therapists", json_incref(therapists), &oom);

    /* Clinic sizes: one therapist each, the rest spread with uneven weights (1..4). */
    unsigned total = 0;
    for (size_t i = 0; i < n_clinics; i++) {
        sizes[i] = 1;
        total += (unsigned)between(&r, 1, 4);
        cum[i] = total;
    }
    for (size_t k = n_clinics; k < n_therapists; k++) {
        unsigned x = (unsigned)below(&r, total);
        size_t lo = 0, hi = n_clinics - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cum[mid] > x)
                hi = mid;
            else
                lo = mid + 1;
        }
        sizes[lo]++;
    }

    const uint64_t offset_pt = rng_next(&r) % 90000, offset_rmt = rng_next(&r) % 9000;
    size_t t_index = 0;
    for (size_t i = 0; i < n_clinics; i++) {
        g_clinic_t *c = &g->clinics[i];
        size_t pi = below(&r, COUNT(places));
        const place_t *pl = &places[pi];
        unsigned use = ++place_uses[pi];
        if (use == 1)
            snprintf(c->id, sizeof c->id, "%s", pl->slug);
        else
            snprintf(c->id, sizeof c->id, "%s-%u", pl->slug, use);
        snprintf(c->city, sizeof c->city, "%s", pl->city);
        snprintf(c->area, sizeof c->area, "%s", pl->area);

        /* Most clinics offer both disciplines; some are physiotherapy-only or massage-only. */
        static const unsigned clinic_kinds[] = {85, 10, 5};     /* mixed, PT only, RMT only */
        size_t ck = weighted(&r, clinic_kinds, COUNT(clinic_kinds));
        for (size_t k = 0; k < sizes[i]; k++, t_index++) {
            g_therapist_t *t = &g->therapists[t_index];
            int d;
            if (ck == 1)
                d = D_PT;
            else if (ck == 2)
                d = D_RMT;
            else if (sizes[i] == 1)
                d = chance(&r, 65) ? D_PT : D_RMT;
            else
                d = k == 0 ? D_PT : k == 1 ? D_RMT : chance(&r, 60) ? D_PT : D_RMT;
            c->disciplines |= 1u << d;
            t->discipline = d;
            t->clinic = i;
            size_t nth = g->n_by_discipline[d];
            g->by_discipline[d][g->n_by_discipline[d]++] = t_index;
            registration_number(d, nth, d == D_PT ? offset_pt : offset_rmt, t->number);

            int cu = pl->french && chance(&r, 55) ? C_FR : (int)weighted(&r, culture_weights, N_CULTURES);
            const char *given = PICK(&r, cultures[cu].given);
            const char *family = PICK(&r, cultures[cu].family);
            snprintf(t->name, sizeof t->name, "%s %s (generated)", given, family);
            char gslug[16], fslug[24], id[32];
            ascii_slug(gslug, sizeof gslug, given);
            ascii_slug(fslug, sizeof fslug, family);
            snprintf(t->email_local, sizeof t->email_local, "%c%s", gslug[0] ? gslug[0] : 't', fslug);
            snprintf(id, sizeof id, "t-%s-%zu", gslug[0] ? gslug : "x", t_index + 1);

            const char *langs[4];
            size_t n_langs = therapist_languages(&r, cu, langs);
            win_t hours[21];
            size_t n_hours = make_hours(&r, hours);
            bool virtual_ok = chance(&r, d == D_PT ? 55 : 15);

            json_t *o = json_object(), *la = json_array();
            if (!o || !la) {
                json_decref(o);
                json_decref(la);
                goto fail;
            }
            for (size_t l = 0; l < n_langs; l++)
                push(la, json_string(langs[l]), &oom);
            char registration[16];
            snprintf(registration, sizeof registration, "%s %s", d == D_PT ? "CPO" : "CMTO", t->number);
            put(o, "id", json_string(id), &oom);
            put(o, "name", json_string(t->name), &oom);
            put(o, "discipline", json_string(d == D_PT ? "physiotherapy" : "massage_therapy"), &oom);
            put(o, "registration", json_string(registration), &oom);
            put(o, "clinic_id", json_string(c->id), &oom);
            put(o, "languages", la, &oom);
            put(o, "virtual", json_boolean(virtual_ok), &oom);
            put(o, "hours", hours_json(hours, n_hours, &oom), &oom);
            push(therapists, o, &oom);
        }

        char display[48], name[64];
        if (use == 1)
            snprintf(display, sizeof display, "%s", pl->display);
        else
            snprintf(display, sizeof display, "%s %u", pl->display, use);
        const char *fmt = clinic_kind_name(&r, c->disciplines, pl->french);
        const char *hole = strstr(fmt, "%s");
        snprintf(name, sizeof name, "%.*s%s%s (generated)", (int)(hole - fmt), fmt, display, hole + 2);
        json_t *o = json_object();
        if (o) {
            put(o, "id", json_string(c->id), &oom);
            put(o, "name", json_string(name), &oom);
            put(o, "city", json_string(c->city), &oom);
        }
        push(clinics, o, &oom);
    }
    g->n_clinics = n_clinics;
    g->n_therapists = n_therapists;
    if (oom)
        goto fail;
    json_decref(clinics);
    json_decref(therapists);
    free(sizes);
    free(cum);
    free(place_uses);
    return 0;

fail:
    json_decref(clinics);
    json_decref(therapists);
    free(sizes);
    free(cum);
    free(place_uses);
    return -1;
}

/* ---- referrals ----------------------------------------------------------------------- */

static const condition_text_t *condition_text(const char *code)
{
    for (size_t i = 0; i < COUNT(condition_texts); i++)
        if (!strcmp(condition_texts[i].code, code))
            return &condition_texts[i];
    return NULL;
}

static const red_flag_text_t *red_flag_text(const char *code)
{
    for (size_t i = 0; i < COUNT(red_flag_texts); i++)
        if (!strcmp(red_flag_texts[i].flag, code))
            return &red_flag_texts[i];
    return NULL;
}

static const contra_text_t *contra_text(const char *code)
{
    for (size_t i = 0; i < COUNT(contra_texts); i++)
        if (!strcmp(contra_texts[i].finding, code))
            return &contra_texts[i];
    return NULL;
}

#define MAX_CODES 4

typedef struct {
    const cond_t *conds[MAX_CODES];
    size_t n_conds;
    const cond_t *primary;      /* the condition the wording is about */
    const char *findings[MAX_CODES];
    size_t n_findings;
    int referrer;               /* D_PT, D_RMT, D_MD */
    unsigned age_lo, age_hi;
    char reason[1024];
    const char *priority;       /* NULL: pick a usual one */
    bool massage;               /* the plan includes massage */
} plan_t;

static bool has_cond(const plan_t *p, const cond_t *c)
{
    for (size_t i = 0; i < p->n_conds; i++)
        if (p->conds[i] == c)
            return true;
    return false;
}

static void add_cond(plan_t *p, const cond_t *c)
{
    if (c && p->n_conds < MAX_CODES && !has_cond(p, c))
        p->conds[p->n_conds++] = c;
}

static void add_finding(plan_t *p, const char *f)
{
    if (!f || p->n_findings >= MAX_CODES)
        return;
    for (size_t i = 0; i < p->n_findings; i++)
        if (!strcmp(p->findings[i], f))
            return;
    p->findings[p->n_findings++] = f;
}

/* A companion of primary (see companions[]) present in the rules with exactly plan `plan` (in
 * pool terms), or NULL. */
static const cond_t *companion_of(const hx_gen_t *g, rng_t *r, const cond_t *primary, unsigned plan)
{
    for (size_t i = 0; primary && i < COUNT(companions); i++) {
        if (strcmp(companions[i].code, primary->code) != 0)
            continue;
        const cond_t *found[3];
        size_t n = 0;
        for (size_t k = 0; k < COUNT(companions[i].with) && companions[i].with[k]; k++)
            for (size_t j = 0; j < g->n_pool[plan]; j++) {
                const cond_t *c = &g->conds[g->pool[plan][j]];
                if (!strcmp(c->code, companions[i].with[k]))
                    found[n++] = c;
            }
        return n ? found[below(r, n)] : NULL;
    }
    return NULL;
}

static const cond_t *from_pool(const hx_gen_t *g, rng_t *r, unsigned plan)
{
    if (!g->n_pool[plan])
        return NULL;
    return &g->conds[g->pool[plan][below(r, g->n_pool[plan])]];
}

static int pick_referrer(rng_t *r, unsigned pt, unsigned rmt, unsigned md)
{
    const unsigned w[] = {pt, rmt, md};
    static const int d[] = {D_PT, D_RMT, D_MD};
    return d[weighted(r, w, 3)];
}

/* The reason for a condition: the text table's wording, or the rules' label. */
static void condition_reason(const cond_t *c, rng_t *r, const vars_t *v, char *out, size_t cap)
{
    const condition_text_t *t = condition_text(c->code);
    if (t)
        expand(out, cap, t->reason[below(r, 2)], v);
    else
        snprintf(out, cap, "%s: referred for assessment and treatment.", c->label);
}

static void plan_kind(const hx_gen_t *g, rng_t *r, hx_gen_kind_t kind, const vars_t *v, plan_t *p)
{
    char text[600];
    p->age_lo = 25;
    p->age_hi = 70;
    switch (kind) {
    case HX_GEN_PHYSIO: {
        const cond_t *c = from_pool(g, r, PLAN_PHYSIO);
        p->referrer = pick_referrer(r, 55, 10, 35);
        /* An RMT who suspects something that needs a diagnosis refers to a PT, often
         * alongside the tension they were treating (only when triage has that rule: without
         * it the tension would add massage to the plan). */
        if (p->referrer == D_RMT && g->rmt_rule && chance(r, 50)) {
            const cond_t *tension = find_cond(g, "muscle_tension", PLAN_MASSAGE);
            add_cond(p, tension && tension->plan == PLAN_MASSAGE ? tension : from_pool(g, r, PLAN_MASSAGE));
        }
        add_cond(p, c);
        p->primary = c;
        if (chance(r, 25))
            add_cond(p, companion_of(g, r, c, PLAN_PHYSIO));
        condition_reason(c, r, v, text, sizeof text);
        if (p->referrer == D_RMT) {
            add_finding(p, g->rmt_finding);
            snprintf(p->reason, sizeof p->reason, "%s Beyond ordinary muscle tension: needs a physiotherapy assessment and diagnosis.", text);
        } else {
            snprintf(p->reason, sizeof p->reason, "%s", text);
        }
        break;
    }
    case HX_GEN_MASSAGE: {
        const cond_t *c = from_pool(g, r, PLAN_MASSAGE);
        p->referrer = pick_referrer(r, 30, 30, 40);
        add_cond(p, c);
        p->primary = c;
        if (chance(r, 30))
            add_cond(p, companion_of(g, r, c, PLAN_MASSAGE));
        condition_reason(c, r, v, p->reason, sizeof p->reason);
        p->massage = true;
        break;
    }
    case HX_GEN_BOTH: {
        const cond_t *c = from_pool(g, r, PLAN_BOTH);
        p->referrer = pick_referrer(r, 50, 0, 50);
        add_cond(p, c);
        p->primary = c;
        if (chance(r, 20))
            add_cond(p, companion_of(g, r, c, PLAN_MASSAGE));
        condition_reason(c, r, v, p->reason, sizeof p->reason);
        p->massage = true;
        break;
    }
    case HX_GEN_RED_FLAG: {
        /* About 40% cauda equina (the emergency flags), the rest tumour, infection or
         * fracture signs. */
        size_t n_em = 0;
        for (size_t i = 0; i < g->n_flags; i++)
            n_em += g->flags[i].emergency;
        bool emergency = n_em == g->n_flags ? true : n_em == 0 ? false : chance(r, 40);
        size_t k = below(r, emergency ? n_em : g->n_flags - n_em);
        const flag_t *f = NULL;
        for (size_t i = 0; i < g->n_flags; i++)
            if (g->flags[i].emergency == emergency && k-- == 0) {
                f = &g->flags[i];
                break;
            }
        p->referrer = pick_referrer(r, 65, 15, 20);
        const red_flag_text_t *t = red_flag_text(f->code);
        const cond_t *c = NULL;
        for (size_t i = 0; t && !c && i < COUNT(t->conditions); i++)
            c = find_cond(g, t->conditions[i], PLAN_BOTH);
        if (!c)
            c = g->n_pool[PLAN_PHYSIO] ? from_pool(g, r, PLAN_PHYSIO) : &g->conds[below(r, g->n_conds)];
        add_cond(p, c);
        p->primary = c;
        add_finding(p, f->code);
        if (t && t->companion && find_flag(g->flags, g->n_flags, t->companion) && chance(r, 50))
            add_finding(p, t->companion);
        if (t) {
            p->age_lo = t->age_lo;
            p->age_hi = t->age_hi;
            expand(p->reason, sizeof p->reason, t->reason, v);
        } else {
            snprintf(p->reason, sizeof p->reason, "%s; at screening: %s.", c->label, f->reason);
        }
        static const unsigned em_pri[] = {0, 0, 0, 60, 40}, pri[] = {0, 25, 60, 15, 0};
        static const char *const names[] = {"", "routine", "urgent", "asap", "stat"};
        p->priority = names[weighted(r, emergency ? em_pri : pri, 5)];
        return;     /* ages set */
    }
    case HX_GEN_CONTRAINDICATED: {
        const flag_t *f = &g->contras[below(r, g->n_contras)];
        const contra_text_t *t = contra_text(f->code);
        const cond_t *cands[2];
        size_t n = 0;
        for (size_t i = 0; t && i < COUNT(t->conditions); i++) {
            const cond_t *c = find_cond(g, t->conditions[i], PLAN_MASSAGE);
            if (c)
                cands[n++] = c;
        }
        const cond_t *c = n ? cands[below(r, n)] : NULL;
        if (!c) {
            size_t nm = g->n_pool[PLAN_MASSAGE], nb = g->n_pool[PLAN_BOTH];
            size_t x = below(r, nm + nb);
            c = x < nm ? &g->conds[g->pool[PLAN_MASSAGE][x]] : &g->conds[g->pool[PLAN_BOTH][x - nm]];
        }
        p->referrer = pick_referrer(r, 45, 0, 55);
        add_cond(p, c);
        p->primary = c;
        add_finding(p, f->code);
        if (t) {
            p->age_lo = t->age_lo;
            p->age_hi = t->age_hi;
            expand(text, sizeof text, t->reason, v);
        } else {
            snprintf(text, sizeof text, "Massage may be contraindicated: %s.", f->reason);
        }
        snprintf(p->reason, sizeof p->reason, "%s Referral: %s.", text, c->label);
        p->massage = true;
        return;
    }
    default:
        break;
    }
    const condition_text_t *t = condition_text(p->primary->code);
    if (t) {
        p->age_lo = t->age_lo;
        p->age_hi = t->age_hi;
    }
}

/* The weekly windows a patient can attend (none: any time). */
static json_t *availability_json(rng_t *r, bool *oom)
{
    static const unsigned w[] = {35, 12, 8, 15, 5, 7, 12, 6};
    win_t win[8];
    size_t n = 0;
    switch (weighted(r, w, COUNT(w))) {
    case 0:
        return NULL;
    case 1: {   /* weekday mornings */
        unsigned from = chance(r, 50) ? DAY_MIN(7, 30) : DAY_MIN(8, 0);
        for (unsigned d = 1; d <= 5; d++)
            n = add_win(win, n, d, from, DAY_MIN(12, 0));
        break;
    }
    case 2:     /* weekday afternoons */
        for (unsigned d = 1; d <= 5; d++)
            n = add_win(win, n, d, DAY_MIN(12, 0), DAY_MIN(17, 0));
        break;
    case 3: {   /* evenings and Saturday */
        unsigned from = chance(r, 50) ? DAY_MIN(16, 0) : DAY_MIN(17, 0);
        for (unsigned d = 1; d <= 5; d++)
            n = add_win(win, n, d, from, DAY_MIN(21, 0));
        n = add_win(win, n, 6, DAY_MIN(8, 0), DAY_MIN(15, 0));
        break;
    }
    case 4:     /* lunch hours */
        for (unsigned d = 1; d <= 5; d++)
            n = add_win(win, n, d, DAY_MIN(11, 30), DAY_MIN(14, 0));
        break;
    case 5:     /* weekends only */
        n = add_win(win, n, 6, DAY_MIN(9, 0), DAY_MIN(17, 0));
        n = add_win(win, n, 7, DAY_MIN(10, 0), DAY_MIN(16, 0));
        break;
    case 6: {   /* two or three particular days */
        unsigned days = 0;
        size_t want = between(r, 2, 3);
        while (n < want) {
            unsigned d = between(r, 1, 6);
            if (days & (1u << d))
                continue;
            days |= 1u << d;
            n++;
        }
        n = 0;
        for (unsigned d = 1; d <= 6; d++)
            if (days & (1u << d))
                n = add_win(win, n, d, DAY_MIN(9, 0), DAY_MIN(18, 0));
        break;
    }
    default:    /* Tuesday and Thursday after work */
        n = add_win(win, n, 2, DAY_MIN(15, 0), DAY_MIN(20, 0));
        n = add_win(win, n, 4, DAY_MIN(15, 0), DAY_MIN(20, 0));
        break;
    }
    return hours_json(win, n, oom);
}

/* A clinic offering discipline d (any clinic when none does), other than `not`. */
static size_t clinic_with(const hx_gen_t *g, rng_t *r, int d, size_t not)
{
    for (int tries = 0; tries < 32; tries++) {
        size_t c = below(r, g->n_clinics);
        if (c != not && (g->clinics[c].disciplines & (1u << d)))
            return c;
    }
    return below(r, g->n_clinics);
}

json_t *hx_gen_referral(const hx_gen_t *g, uint64_t index, hx_gen_kind_t *kind_out)
{
    if (!g)
        return NULL;
    rng_t r = rng_stream(g->seed, index + 1);
    bool oom = false;
    hx_gen_kind_t kind = (hx_gen_kind_t)weighted(&r, g->kind_weights, HX_GEN_KIND_COUNT);

    vars_t v = {.side = PICK(&r, sides), .weeks = between(&r, 2, 10), .months = between(&r, 3, 24)};
    plan_t p = {0};
    plan_kind(g, &r, kind, &v, &p);
    v.age = between(&r, p.age_lo, p.age_hi);
    /* Red-flag wording may mention the age: expand it again now that it is known. */
    if (kind == HX_GEN_RED_FLAG) {
        const red_flag_text_t *t = red_flag_text(p.findings[0]);
        if (t)
            expand(p.reason, sizeof p.reason, t->reason, &v);
    }

    /* The referrer, at a clinic of the network. */
    if (p.referrer != D_MD && g->n_by_discipline[p.referrer] == 0)
        p.referrer = D_MD;
    const g_therapist_t *rt = NULL;
    size_t clinic;
    if (p.referrer == D_MD) {
        clinic = below(&r, g->n_clinics);
    } else {
        rt = &g->therapists[g->by_discipline[p.referrer][below(&r, g->n_by_discipline[p.referrer])]];
        clinic = rt->clinic;
    }
    const g_clinic_t *rc = &g->clinics[clinic];

    /* Dates. */
    int64_t ref_day = g->last_day - (int64_t)below(&r, 28);
    int64_t birth = ref_day - (int64_t)v.age * 365 - v.age / 4 - (int64_t)below(&r, 365);
    char ref_date[11], birth_date[11];
    format_date(ref_day, ref_date);
    format_date(birth, birth_date);

    /* The patient. */
    int cu = (int)weighted(&r, culture_weights, N_CULTURES);
    const char *given = PICK(&r, cultures[cu].given), *family = PICK(&r, cultures[cu].family);
    const char *language = cultures[cu].language && chance(&r, 65) ? cultures[cu].language : "en";
    char family_name[64], gslug[16], fslug[24], phone[24], email[64], card[24];
    snprintf(family_name, sizeof family_name, "%s (generated)", family);
    ascii_slug(gslug, sizeof gslug, given);
    ascii_slug(fslug, sizeof fslug, family);
    snprintf(phone, sizeof phone, "%s-555-01%02u", rc->area, between(&r, 0, 99));
    snprintf(email, sizeof email, "%s.%s@example.org", gslug[0] ? gslug : "patient", fslug[0] ? fslug : "generated");
    snprintf(card, sizeof card, "5555-%03u-%03u-%c%c", between(&r, 0, 999), between(&r, 0, 999),
             initial(gslug), initial(fslug));
    bool with_phone = chance(&r, 85), with_email = chance(&r, 65);
    if (!with_phone && !with_email)
        with_phone = true;

    json_t *root = json_object(), *patient = json_object(), *referrer = json_object();
    json_t *conditions = json_array(), *findings = json_array(), *prefs = json_object();
    if (!root || !patient || !referrer || !conditions || !findings || !prefs) {
        json_decref(root);
        json_decref(patient);
        json_decref(referrer);
        json_decref(conditions);
        json_decref(findings);
        json_decref(prefs);
        return NULL;
    }
    char ref[32];
    snprintf(ref, sizeof ref, "GEN-%06llu", (unsigned long long)(index + 1));
    put(root, "ref", json_string(ref), &oom);

    put(patient, "given_name", json_string(given), &oom);
    put(patient, "family_name", json_string(family_name), &oom);
    put(patient, "birth_date", json_string(birth_date), &oom);
    if (with_phone)
        put(patient, "phone", json_string(phone), &oom);
    if (with_email)
        put(patient, "email", json_string(email), &oom);
    put(patient, "health_card", json_string(card), &oom);
    put(patient, "language", json_string(language), &oom);
    put(root, "patient", patient, &oom);

    char rname[64], rnumber[8], remail[96], rphone[24];
    if (rt) {
        snprintf(rname, sizeof rname, "%s", rt->name);
        snprintf(rnumber, sizeof rnumber, "%s", rt->number);
        snprintf(remail, sizeof remail, "%s@%s.example.org", rt->email_local, rc->id);
    } else {
        const char *pg = PICK(&r, physician_given), *pf = PICK(&r, physician_family);
        char pslug[24];
        ascii_slug(pslug, sizeof pslug, pf);
        snprintf(rname, sizeof rname, "Dr. %s %s (generated)", pg, pf);
        snprintf(rnumber, sizeof rnumber, "%u", between(&r, 10000, 99999));
        snprintf(remail, sizeof remail, "%c%s@%s.example.org", (char)(pg[0] - 'A' + 'a'), pslug, rc->id);
    }
    snprintf(rphone, sizeof rphone, "%s-555-01%02u", rc->area, between(&r, 0, 99));
    put(referrer, "name", json_string(rname), &oom);
    put(referrer, "discipline", json_string(p.referrer == D_PT    ? "physiotherapy"
                                            : p.referrer == D_RMT ? "massage_therapy"
                                                                  : "physician"), &oom);
    put(referrer, "registration_body", json_string(p.referrer == D_PT    ? "CPO"
                                                   : p.referrer == D_RMT ? "CMTO"
                                                                         : "CPSO"), &oom);
    put(referrer, "registration_number", json_string(rnumber), &oom);
    put(referrer, "clinic_id", json_string(rc->id), &oom);
    put(referrer, "phone", json_string(rphone), &oom);
    put(referrer, "email", json_string(remail), &oom);
    put(root, "referrer", referrer, &oom);

    put(root, "reason", json_string(p.reason), &oom);
    for (size_t i = 0; i < p.n_conds; i++)
        push(conditions, json_string(p.conds[i]->code), &oom);
    put(root, "conditions", conditions, &oom);
    for (size_t i = 0; i < p.n_findings; i++)
        push(findings, json_string(p.findings[i]), &oom);
    put(root, "findings", findings, &oom);

    /* History, diagnosis (never from an RMT, never for an undiagnosed red flag), treatment
     * and expectations from the main condition's wording. */
    const cond_t *main_cond = p.primary;
    const condition_text_t *ct = condition_text(main_cond->code);
    char text[600];
    if (chance(&r, 80)) {
        if (ct && kind != HX_GEN_RED_FLAG)
            expand(text, sizeof text, ct->history, &v);
        else
            snprintf(text, sizeof text, "%s", kind == HX_GEN_RED_FLAG ? "Screened at the first visit." : "No relevant history.");
        put(root, "history", json_string(text), &oom);
    }
    if (ct && p.referrer != D_RMT && kind != HX_GEN_RED_FLAG && chance(&r, 70)) {
        expand(text, sizeof text, ct->diagnosis, &v);
        put(root, "diagnosis", json_string(text), &oom);
    }
    if (ct && chance(&r, 65)) {
        expand(text, sizeof text, ct->treatment, &v);
        put(root, "current_treatment", json_string(text), &oom);
    }

    const char *priority = p.priority;
    if (!priority) {
        static const unsigned pw[] = {84, 11, 4, 1};
        static const char *const names[] = {"routine", "urgent", "asap", "stat"};
        priority = main_cond->priority ? main_cond->priority : names[weighted(&r, pw, 4)];
    }
    put(root, "priority", json_string(priority), &oom);
    put(root, "consent", json_string("given"), &oom);
    put(root, "referral_date", json_string(ref_date), &oom);
    if (kind == HX_GEN_RED_FLAG) {
        put(root, "expectations", json_string("Medical assessment before any therapy."), &oom);
    } else if (ct && chance(&r, 75)) {
        expand(text, sizeof text, ct->expectations, &v);
        put(root, "expectations", json_string(text), &oom);
    }

    /* Preferences: clinics offering the first discipline asked for, language, virtual,
     * the weekly windows, and a massage length when massage is part of the plan. */
    int need = kind == HX_GEN_MASSAGE ? D_RMT : D_PT;
    static const unsigned n_pref_w[] = {40, 45, 15};
    size_t n_pref = weighted(&r, n_pref_w, 3);
    if (n_pref) {
        json_t *ids = json_array();
        size_t first = (rc->disciplines & (1u << need)) && chance(&r, 50) ? clinic
                                                                          : clinic_with(g, &r, need, g->n_clinics);
        push(ids, json_string(g->clinics[first].id), &oom);
        if (n_pref == 2 && g->n_clinics > 1)
            push(ids, json_string(g->clinics[clinic_with(g, &r, need, first)].id), &oom);
        if (ids && json_array_size(ids) == 2 &&
            !strcmp(json_string_value(json_array_get(ids, 0)), json_string_value(json_array_get(ids, 1))))
            json_array_remove(ids, 1);
        put(prefs, "clinic_ids", ids, &oom);
    }
    if (strcmp(language, "en") != 0 ? chance(&r, 60) : chance(&r, 50))
        put(prefs, "language", json_string(language), &oom);
    put(prefs, "virtual_ok", json_boolean(chance(&r, 25)), &oom);
    json_t *avail = availability_json(&r, &oom);
    if (avail)
        put(prefs, "availability", avail, &oom);
    if (p.massage) {
        static const unsigned mw[] = {10, 10, 15, 50, 15};
        static const int minutes[] = {0, 30, 45, 60, 90};
        int m = minutes[weighted(&r, mw, 5)];
        if (m)
            put(prefs, "massage_minutes", json_integer(m), &oom);
    }
    put(root, "preferences", prefs, &oom);

    if (oom) {
        json_decref(root);
        return NULL;
    }
    if (kind_out)
        *kind_out = kind;
    return root;
}

/* ---- construction -------------------------------------------------------------------- */

hx_gen_t *hx_gen_new(const json_t *rules, const hx_gen_options_t *opt, hx_errors_t *errs)
{
    hx_errors_t local;
    if (!errs) {
        hx_errors_clear(&local);
        errs = &local;
    }
    const size_t before = errs->count + errs->dropped;
    if (!opt) {
        hx_errors_add(errs, "options", "required");
        return NULL;
    }
    if (opt->clinics < 1 || opt->clinics > HX_GEN_MAX_CLINICS)
        hx_errors_add(errs, "clinics", "must be 1 to %d (got %zu)", HX_GEN_MAX_CLINICS, opt->clinics);
    if (opt->therapists > HX_GEN_MAX_THERAPISTS || opt->therapists < opt->clinics || opt->therapists < 1)
        hx_errors_add(errs, "therapists", "must be from the number of clinics (%zu: each clinic has at least one) to %d (got %zu)",
                      opt->clinics, HX_GEN_MAX_THERAPISTS, opt->therapists);
    int64_t last_day = 0;
    const char *date = opt->last_date ? opt->last_date : HX_GEN_DEFAULT_DATE;
    if (hx_date_parse(date, &last_day) != 0 || last_day < hx_days_from_civil(2000, 1, 1))
        hx_errors_add(errs, "last_date", "must be a date YYYY-MM-DD from 2000-01-01 to 9999-12-31");
    if (!rules)
        hx_errors_add(errs, "rules", "required");
    if (errs->count + errs->dropped > before)
        return NULL;

    hx_gen_t *g = calloc(1, sizeof *g);
    if (!g || !(g->rules = json_deep_copy(rules))) {
        free(g);
        hx_errors_add(errs, "", "out of memory");
        return NULL;
    }
    g->seed = opt->seed;
    g->last_day = last_day;
    read_rules(g, errs);
    if (errs->count + errs->dropped > before) {
        hx_gen_destroy(&g);
        return NULL;
    }
    if (build_network(g, opt->clinics, opt->therapists) != 0) {
        hx_gen_destroy(&g);
        hx_errors_add(errs, "", "out of memory");
        return NULL;
    }
    return g;
}

json_t *hx_gen_directory(const hx_gen_t *g)
{
    return g ? json_deep_copy(g->directory) : NULL;
}
