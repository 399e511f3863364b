/* cli_help — help texts of the clinic CLI (see cli_help.h). Keep them in step with
 * README.md and docs/OPERATIONS.md ("The clinic CLI"). */
#include "cli_help.h"
#include "cli_config.h"

#include <stdio.h>

#include <string.h>

#define EXIT_CODES                                                                                  \
    "exit codes:\n"                                                                                 \
    "  0   done (health: the broker accepts messages)\n"                                            \
    "  1   refused or failed (a lifecycle step not allowed; health: the broker cannot write its log)\n" \
    "  2   usage: a bad option, argument or setting (the message names it and where it came from)\n" \
    "  3   the broker did not answer (the message names the endpoint and what to check)\n"         \
    "  4   no such referral, or no such dead letter\n"                                              \
    "  65  input data is invalid (a referral file, or some rows of an import)\n"                    \
    "  77  the broker refused this key: not in its allow-list, not for this session (--clinic,\n"   \
    "      --admin), the wrong --server-key, or CURVE on one side only (the message says which)\n"

static const char USAGE[] =
    "usage: handoff [options] COMMAND [ARGS]\n"
    "\n"
    "The clinic's command line for the Handoff referral network.\n"
    "`handoff help COMMAND` (or `handoff COMMAND --help`) shows one command in detail.\n"
    "\n"
    "clinic commands (need --clinic):\n"
    "  inbox                 every referral of this clinic by where it stands: NEW, PENDING\n"
    "                        BOOKING, BOOKED, DECLINED\n"
    "  status [ID]           referrals this clinic sent with their latest status, or one's history\n"
    "  submit FILE.json...   submit referrals (resubmitting is safe: same id, no copy)\n"
    "  import FILE           submit many referrals from CSV or NDJSON, with progress and a summary\n"
    "  watch                 follow new handoffs and status changes as they arrive (Ctrl-C stops)\n"
    "  handoffs              every handoff this clinic received, oldest first\n"
    "  accept ID             receiving clinic: take the referral on\n"
    "  decline ID --reason TEXT\n"
    "                        receiving clinic: give it back; it is booked again elsewhere\n"
    "  start ID              receiving clinic: the first session took place\n"
    "  complete ID           receiving clinic: care is finished\n"
    "  fail ID --reason TEXT receiving clinic: it could not be carried out\n"
    "  revoke ID [--reason TEXT]\n"
    "                        referring clinic: withdraw it; every receiver is told\n"
    "  redirect ID --to CLINIC[/THERAPIST] --reason TEXT\n"
    "                        receiving clinic: hand its handoff to another clinic or therapist\n"
    "  add-massage ID --reason TEXT\n"
    "                        treating physiotherapy clinic: ask for massage therapy to be added\n"
    "                        (triage checks the referral first)\n"
    "  thread ID             the referral's care thread: posts in order, and whether a question awaits\n"
    "  note ID TEXT [--ask]  post to the care thread (--ask: a question awaiting the other side's reply;\n"
    "                        --attach FILE: with a PDF, PNG or JPEG)\n"
    "  reply ID TEXT         answer the question awaiting a reply on the care thread\n"
    "  attachment POST_ID    save a post's attachment (--out FILE; default: its name, here)\n"
    "\n"
    "reviewer commands (a reviewer session, --reviewer NAME):\n"
    "  review list|show ID|decide ID --as PLAN --reason TEXT\n"
    "                        referrals triage could not place, for a clinician to decide\n"
    "\n"
    "operator commands (an admin session, --admin; no --clinic needed):\n"
    "  top                   the broker's queues, mailboxes, rates, dead letters and peers, live\n"
    "  dlq list|show ID|replay ID|purge ID\n"
    "                        dead letters: messages that failed on every attempt\n"
    "  cluster status|add NODE|remove ID|transfer ID [--wait]\n"
    "                        a replicated broker's nodes: add, remove, move the leadership\n"
    "  health                whether the broker can accept messages\n"
    "  admin backup OUT      an online backup of the broker's log, the audit logs and the SQLite\n"
    "                        files into one encrypted bundle, while everything keeps serving\n"
    "  admin restore BUNDLE --into DIR\n"
    "                        check a bundle and restore it into a new directory (--list: show it)\n"
    "  admin migrate --from sqlite:DIR --to postgresql://...\n"
    "                        intake's and scheduling's SQLite stores copied into PostgreSQL\n"
    "\n"
    "other commands:\n"
    "  config                the settings in effect and where each one comes from\n"
    "  keygen NAME           a CURVE key pair and the broker's allow-list line\n"
    "  datakey FILE          a new key for the broker's --data-key\n"
    "  store key|rekey       the key this clinic's store is sealed with; seal it with a new one\n"
    "  audit verify FILE [DATA_DIR]\n"
    "                        check the broker's hash-chained audit log (and that its tail is whole)\n"
    "  play STORY [FROM[-TO]]\n"
    "                        play a collaborative referral's story as each clinic in it (demos, tests)\n"
    "\n"
    "on a clinic host:\n"
    "  install: make build, then copy build/services/cli/handoff to /usr/local/bin\n"
    "  mkdir -m 700 ~/.handoff; put there ID.key (this clinic's secret key, mode 0600) and\n"
    "  broker.pub (the broker's public key), then:\n"
    "    handoff --broker tcp://HOST:5555 --clinic ID inbox\n"
    "  or 'broker = tcp://HOST:5555' and 'clinic = ID' in ~/.handoff/config, then: handoff inbox.\n"
    "  Keys not named by --key/--server-key are looked for in the home directory (--home,\n"
    "  ~/.handoff): ID.key (a reviewer's or operator's name for review, top, dlq, health) and\n"
    "  broker.pub. Both found: CURVE; neither: no CURVE (a broker without it, for development);\n"
    "  only one: exit 2. Exit 2 before anything is sent, naming the file or setting: one key\n"
    "  without the other, a key file missing or unreadable, a secret key readable by others\n"
    "  (chmod 600 FILE), a file that is not a CURVE key, no clinic id, a --broker that is not\n"
    "  tcp://HOST:PORT or ipc://PATH (or a comma-separated list of them, the nodes of a replicated\n"
    "  broker).\n"
    "\n"
    "settings (flag > environment > config file > default):\n";

/* After the settings and the options, which are printed from their tables. */
static const char USAGE_TAIL[] =
    "\n" EXIT_CODES
    "\n"
    "examples:\n"
    "  export HANDOFF_CLINIC=northpoint\n"
    "  handoff inbox\n"
    "  handoff import referrals.csv\n"
    "  handoff status R-0A1B2C3D4E5F6G7H --json\n"
    "  handoff --clinic lakeside accept R-0A1B2C3D4E5F6G7H\n"
    "  handoff --admin ops top\n"
    "  handoff help import\n";

typedef struct {
    const char *name, *text;
} page_t;

static const page_t PAGES[] = {
    {"inbox",
     "usage: handoff [options] inbox\n"
     "\n"
     "Every referral this clinic takes part in, grouped by where it stands, each group a table\n"
     "with its count. Fetches the clinic's mailbox first, all of it (kept in --home before it is\n"
     "acked). A handoff is trusted only from service scheduling, a status update only from\n"
     "intake, triage or scheduling; anything else is dropped, never shown: each is named on\n"
     "stderr (\"dropped TYPE ID from SENDER: why\") and, without --json, a last line counts them.\n"
     "\n"
     "  NEW              handoffs this clinic received and has not accepted yet\n"
     "  PENDING BOOKING  referrals this clinic sent that wait for a slot: submitted, requested,\n"
     "                   received (also when a receiver declined: booked again), on-hold\n"
     "  BOOKED           ready (booked) referrals it sent; accepted, in-progress, completed ones\n"
     "                   either side\n"
     "  DECLINED         handoffs this clinic declined; cancelled (revoked), rejected, failed\n"
     "\n"
     "--json: {\"new\":[...],\"pending_booking\":[...],\"booked\":[...],\"declined\":[...]}; each item has\n"
     "referral_id, ref, side (received|sent), status, event, patient, other_clinic, bookings,\n"
     "since_ms, updated_ms, reason, and for received ones the whole handoff.\n"
     "\n"
     "examples:\n"
     "  handoff --clinic lakeside inbox\n"
     "  handoff --clinic lakeside inbox --json | jq -r '.new[].referral_id'\n"},
    {"status",
     "usage: handoff [options] status [ID]\n"
     "\n"
     "Without ID: each referral this clinic sent (or holds) with its latest status, when it\n"
     "changed and why. With ID: the whole history of one referral (exit 4 when there is none).\n"
     "\n"
     "--json: an array of status updates (referral_id, ref, status, reason, bookings, by, at_ms,\n"
     "at, event, decision), or {\"referral_id\":ID,\"history\":[...]}.\n"
     "\n"
     "examples:\n"
     "  handoff --clinic northpoint status\n"
     "  handoff --clinic northpoint status R-0A1B2C3D4E5F6G7H\n"},
    {"submit",
     "usage: handoff [options] submit FILE.json...\n"
     "\n"
     "Submits referral files (Referral JSON, docs/PROTOCOL.md). Each is checked here first as\n"
     "intake would (every bad field named; exit 65) unless --no-validate. Prints each referral\n"
     "id once the broker has accepted it. A referral's id comes from this clinic and its \"ref\",\n"
     "so submitting the same file again is the same referral, never a copy.\n"
     "\n"
     "options: --no-validate  send without checking locally\n"
     "--json: [{\"referral_id\":..,\"ref\":..,\"file\":..}]\n"
     "\n"
     "examples:\n"
     "  handoff --clinic northpoint submit referral.json\n"
     "  handoff --clinic northpoint submit referrals/*.json --json\n"},
    {"import",
     "usage: handoff [options] import FILE [--format csv|ndjson] [--dry-run]\n"
     "\n"
     "Submits many referrals from one file: CSV with a header row, or newline-delimited JSON\n"
     "(one Referral JSON object per line). The format comes from the extension (.csv, .ndjson,\n"
     ".jsonl) or --format. Every row is checked as `submit` checks a file; the good rows are\n"
     "sent, --window at a time in flight. On a terminal a progress bar (done/total, rate, ETA)\n"
     "is drawn on stderr; otherwise a progress line every tenth of the way.\n"
     "\n"
     "CSV columns are Referral JSON field paths; only \"ref\" is required, empty cells are left\n"
     "out; lists (conditions, findings, preferences.clinic_ids) are separated by ';';\n"
     "preferences.virtual_ok is true/false; preferences.availability is items like\n"
     "'mon 09:00-17:00; 3 13:00-18:00' (day 1-7 or mon..sun). The columns:\n"
     "  ref, patient.given_name, patient.family_name, patient.birth_date, patient.phone,\n"
     "  patient.email, patient.health_card, patient.language, referrer.name, referrer.discipline,\n"
     "  referrer.registration_body, referrer.registration_number, referrer.clinic_id,\n"
     "  referrer.phone, referrer.email, referrer.province, reason, conditions, findings,\n"
     "  history, diagnosis, current_treatment, priority, consent, referral_date, expectations,\n"
     "  preferences.clinic_ids, preferences.language, preferences.virtual_ok,\n"
     "  preferences.massage_minutes, preferences.availability\n"
     "\n"
     "Safe to run again: a referral's id comes from this clinic and its ref, rows this home\n"
     "already saw accepted are skipped (counted as \"already accepted\"), and the broker keeps one\n"
     "copy of anything sent twice. The summary lists each failed row: line, ref, field, why.\n"
     "\n"
     "options: --format csv|ndjson   --dry-run (check only)   --no-validate   --window N\n"
     "--json: {\"file\",\"format\",\"rows\",\"submitted\",\"already_accepted\",\"failed\",\"not_sent\",\n"
     "\"dry_run\",\"referrals\":[{\"line\",\"ref\",\"referral_id\",\"result\"}],\n"
     "\"errors\":[{\"line\",\"ref\",\"field\",\"reason\"}]}\n"
     "exit: 0 every row accepted; 65 some rows are invalid (the others were sent); 3 the broker\n"
     "stopped answering (run the same import again to finish); 1 the broker refused some; 77 the\n"
     "broker refused this key.\n"
     "\n"
     "examples:\n"
     "  handoff --clinic northpoint import referrals.csv\n"
     "  handoff --clinic northpoint import export.jsonl --dry-run\n"
     "  handoff --clinic northpoint import data.txt --format ndjson --json > summary.json\n"},
    {"watch",
     "usage: handoff [options] watch [--interval-ms N]\n"
     "\n"
     "Follows this clinic's mailbox: prints one line for each handoff or status change as it\n"
     "arrives (each kept in --home before it is acked, as inbox does; what inbox drops is named\n"
     "on stderr) until Ctrl-C or SIGTERM, then exits 0. Looks every --interval-ms (1000). While\n"
     "the broker does not answer it keeps trying; when the broker refuses its key (revoked) it\n"
     "says so and exits 77.\n"
     "\n"
     "--json: one object per line: {\"at_ms\",\"at\",\"kind\":\"handoff\"|\"status\",\"referral_id\",\n"
     "\"ref\",\"status\",\"group\",\"text\", and \"handoff\" or \"update\"}\n"
     "\n"
     "examples:\n"
     "  handoff --clinic lakeside watch\n"
     "  handoff --clinic lakeside watch --json | jq -c 'select(.kind == \"handoff\")'\n"},
    {"handoffs",
     "usage: handoff [options] handoffs\n"
     "\n"
     "Every handoff this clinic received, oldest first: patient, discipline, therapist, slot.\n"
     "--json: an array of handoffs (referral_id, ref, referring_clinic, referral, decision, booking).\n"
     "\n"
     "example:\n"
     "  handoff --clinic harbour handoffs\n"},
    {"accept",
     "usage: handoff [options] accept ID [--discipline D]\n"
     "\n"
     "As the receiving clinic: take the referral on (ready -> accepted). Waits for scheduling's\n"
     "answer: exit 0 done, 1 refused with the reason (its status and what is allowed).\n"
     "--discipline physiotherapy|massage_therapy when this clinic holds both bookings.\n"
     "\n"
     "example:\n"
     "  handoff --clinic lakeside accept R-0A1B2C3D4E5F6G7H\n"},
    {"decline",
     "usage: handoff [options] decline ID --reason TEXT [--discipline D]\n"
     "\n"
     "As the receiving clinic: give the referral back; it is booked again with another\n"
     "therapist (never the one who declined). The referring clinic is told the reason.\n"
     "\n"
     "example:\n"
     "  handoff --clinic lakeside decline R-0A1B2C3D4E5F6G7H --reason 'no opening that week'\n"},
    {"start",
     "usage: handoff [options] start ID [--discipline D]\n"
     "\n"
     "As the receiving clinic: the first session took place (accepted -> in-progress).\n"
     "\n"
     "example:\n"
     "  handoff --clinic lakeside start R-0A1B2C3D4E5F6G7H\n"},
    {"complete",
     "usage: handoff [options] complete ID --summary TEXT|FILE [--discipline D]\n"
     "\n"
     "As the receiving clinic: care is finished (in-progress -> completed). The completion\n"
     "summary is required (1 to 4000 bytes of UTF-8: what was done, the outcome, advice): it\n"
     "travels with the completion, and scheduling posts it to the referral's care thread, where\n"
     "the referring clinic reads it (handoff thread ID). A FILE that exists is read (use ./NAME\n"
     "to make that plain); - reads standard input.\n"
     "\n"
     "examples:\n"
     "  handoff --clinic lakeside complete R-0A1B2C3D4E5F6G7H --summary 'Full range; discharged'\n"
     "  handoff --clinic lakeside complete R-0A1B2C3D4E5F6G7H --summary ./discharge.txt\n"},
    {"fail",
     "usage: handoff [options] fail ID --reason TEXT [--discipline D]\n"
     "\n"
     "As the receiving clinic: the handoff could not be carried out (ready, accepted or\n"
     "in-progress -> failed); its slots are freed and it is not booked again. The other\n"
     "handoff of a collaborative referral goes on. The referring clinic is told the reason.\n"
     "\n"
     "example:\n"
     "  handoff --clinic lakeside fail R-0A1B2C3D4E5F6G7H --reason 'patient unreachable'\n"},
    {"redirect",
     "usage: handoff [options] redirect ID --to CLINIC[/THERAPIST_ID] --reason TEXT [--discipline D]\n"
     "\n"
     "Receiving clinic, before care starts (its handoff ready or accepted): hands its handoff to\n"
     "another clinic, or to a named therapist (of this clinic too). The target must be in the\n"
     "directory, of the handoff's discipline, speak the patient's language when one is asked for,\n"
     "and have a slot that fits the patient's availability in the window the priority allows\n"
     "(massage: within the collaborative window after the physiotherapy booking); to a clinic\n"
     "alone, its earliest fitting therapist is booked. Otherwise it is refused (exit 1) with the\n"
     "reason and the handoff stays here. Done: this clinic's handoff ends (its slot is freed),\n"
     "the new clinic gets it as a new handoff, the referring clinic is told the reason, and the\n"
     "therapist who had it is not offered it again. The other handoff is untouched.\n"
     "--json: the status update (this clinic's handoff: cancelled, event redirect).\n"
     "\n"
     "examples:\n"
     "  handoff --clinic lakeside redirect R-0A1B2C3D4E5F6G7H --to eastgate --reason 'closer to home'\n"
     "  handoff --clinic lakeside redirect R-0A1B2C3D4E5F6G7H --to eastgate/t-ben --reason 'speaks French'\n"},
    {"add-massage",
     "usage: handoff [options] add-massage ID --reason TEXT\n"
     "\n"
     "The clinic treating the patient with physiotherapy (its handoff accepted or in-progress)\n"
     "asks for a massage therapy handoff to be added to a referral that has none. Triage checks\n"
     "the referral's findings first (red flags, massage contraindications); if it may be added,\n"
     "scheduling books massage within the collaborative window after the physiotherapy booking,\n"
     "the massage clinic gets a new handoff, and the referring clinic and this clinic are told.\n"
     "Prints scheduling's answer, then waits (up to 4 x --timeout-ms) for the outcome: added\n"
     "(exit 0) or refused with the reason (exit 1), e.g. \"massage therapy: contraindicated by\n"
     "finding known_dvt (...)\". When the outcome is not in yet it says so (exit 0); `handoff\n"
     "status ID` shows it later.\n"
     "--json: the outcome's status update (or scheduling's answer, with \"outcome\": null).\n"
     "\n"
     "example:\n"
     "  handoff --clinic lakeside add-massage R-0A1B2C3D4E5F6G7H --reason 'paraspinal spasm limits exercise'\n"},
    {"revoke",
     "usage: handoff [options] revoke ID [--reason TEXT]\n"
     "\n"
     "As the referring clinic: withdraw the referral (-> cancelled); each receiver is told.\n"
     "\n"
     "example:\n"
     "  handoff --clinic northpoint revoke R-0A1B2C3D4E5F6G7H --reason 'patient moved'\n"},
    {"thread",
     "usage: handoff [options] thread ID [--json]\n"
     "\n"
     "The referral's care thread, between the referring clinic and the clinics holding its\n"
     "handoffs (only they receive it): each post in order with when, who, its kind (note,\n"
     "question, reply, summary) and id, then whether a question awaits a reply.\n"
     "A post with an attachment shows its name, type and size; save it with\n"
     "handoff attachment POST_ID.\n"
     "--json: {referral_id, posts: [{post_id, kind, by, text, at_ms, in_reply_to,\n"
     "awaiting_reply, asked_by, attachment: {name, media_type, size, sha256}}], awaiting_reply,\n"
     "asked_by} (attachment only on a post that has one).\n"
     "\n"
     "example:\n"
     "  handoff --clinic lakeside thread R-0A1B2C3D4E5F6G7H\n"},
    {"note",
     "usage: handoff [options] note ID TEXT [--ask] [--attach FILE]\n"
     "\n"
     "Posts TEXT (1 to 4000 bytes of UTF-8) to the referral's care thread; scheduling delivers\n"
     "it to the referring clinic and every clinic holding one of its handoffs. --ask makes it a\n"
     "question: the thread awaits a reply from the other side. --attach FILE adds one file: a\n"
     "PDF, PNG or JPEG (told by its content, not its name) of at most 256 KiB (262,144 bytes);\n"
     "anything else is refused before it is sent (exit 2). A clinic not on the referral is\n"
     "refused (exit 1).\n"
     "\n"
     "examples:\n"
     "  handoff --clinic northpoint note R-0A1B2C3D4E5F6G7H 'Any swelling after session 2?' --ask\n"
     "  handoff --clinic lakeside note R-0A1B2C3D4E5F6G7H 'Gait assessment' --attach gait.pdf\n"},
    {"reply",
     "usage: handoff [options] reply ID TEXT [--attach FILE]\n"
     "\n"
     "Answers the question awaiting a reply on the referral's care thread (as note does).\n"
     "\n"
     "example:\n"
     "  handoff --clinic lakeside reply R-0A1B2C3D4E5F6G7H 'None; range of motion improving'\n"},
    {"attachment",
     "usage: handoff [options] attachment POST_ID [--out FILE]\n"
     "\n"
     "Writes the attachment of a care-thread post this clinic received (its id, P- and 16 hex\n"
     "digits, is in handoff thread ID) to FILE, or to its own name in the current folder. The\n"
     "bytes are checked against the SHA-256 scheduling vouched for; an existing file is never\n"
     "overwritten (exit 1). Exit 4 when no post of that id with an attachment is here.\n"
     "\n"
     "example:\n"
     "  handoff --clinic northpoint attachment P-0a1b2c3d4e5f6a7b --out /tmp/gait.pdf\n"},
    {"review",
     "usage: handoff [options] review list\n"
     "       handoff [options] review show ID\n"
     "       handoff [options] review decide ID --as physio|massage|both|physician --reason TEXT\n"
     "\n"
     "For a reviewer of the network (a key of role reviewer; --reviewer NAME). Triage never\n"
     "lets a referral it cannot place pass quietly: a code or wording its rules do not know,\n"
     "with no red flag, is held under review and sent to every reviewer, and the referring\n"
     "clinic is told so. list: every referral sent to this reviewer, PENDING or decided, with\n"
     "what triage did not understand. show: one referral as written (reason, history,\n"
     "diagnosis, codes) and triage's notes. decide: physio, massage or both books it as a\n"
     "triaged referral; physician sends it back to see a physician first. The referring clinic\n"
     "and every reviewer are told, and the decision is in scheduling's audit log with this\n"
     "reviewer's name. A second decision is refused (exit 1), as is one by a clinic's key (77).\n"
     "--json: list: [{referral_id, referring_clinic, state, decision, received_at_ms,\n"
     "not_understood}]; show: the same with referral and triage; decide: the status update.\n"
     "\n"
     "examples:\n"
     "  handoff --reviewer dr-osei review list\n"
     "  handoff --reviewer dr-osei review decide R-0A1B2C3D4E5F6G7H --as physio --reason 'plantar fasciitis'\n"},
    {"play",
     "usage: handoff [options] play STORY [FROM[-TO]] [--dir DIR]\n"
     "\n"
     "Plays the story of a collaborative referral after it is booked (a JSON file, format in\n"
     "docs/OPERATIONS.md, \"Stories\"; deploy/sample/stories/ and handoff-gen's DIR/stories/ have\n"
     "some): each step as the clinic that takes it, the referring clinic or the clinic holding\n"
     "the physiotherapy or massage handoff when the step comes (after a decline, the clinic it\n"
     "was booked with again). Before a step it waits until that handoff is in a status the step\n"
     "acts on (massage booked again after a decline, say); then it shows the command a clinic\n"
     "would type (accept, decline, start, complete --summary, note [--ask], reply) and its\n"
     "answer; after it, it waits until the referring clinic sees the step (a completion's\n"
     "summary on its thread) and shows what that clinic sees. Each wait lasts at most 20 x\n"
     "--timeout-ms. FROM-TO plays only those steps (1-based), so a story can be told in parts.\n"
     "No --clinic: the story names the referring clinic and its ref (the referral id comes from\n"
     "them). Under CURVE (--server-key, or broker.pub in the home directory) each clinic's key is\n"
     "DIR/CLINIC.key (--dir, as keygen writes them), else CLINIC.key in the home directory\n"
     "(--home, ~/.handoff); --key is refused. The store of each clinic is in --home.\n"
     "\n"
     "--json: each step's answer as its command prints it, then one line per step: {step,\n"
     "actor, action, clinic, referral_id, status, handoffs, posts, awaiting_reply, asked_by}.\n"
     "exit: 0 every step played; 65 the story is invalid (each problem named by its path,\n"
     "e.g. steps[3].reason); 1 a step was refused or a handoff never reached a status it acts\n"
     "on (the message says which and why); 2 usage; 3 the broker did not answer.\n"
     "\n"
     "examples:\n"
     "  handoff play deploy/sample/stories/07-post-surgical-knee.json\n"
     "  handoff --server-key keys/broker.pub --dir keys play story.json 1-3\n"},
    {"top",
     "usage: handoff [options] top [--interval-ms N] [--once] [--json]\n"
     "\n"
     "The broker at a glance, redrawn every --interval-ms (1000) on a terminal until Ctrl-C:\n"
     "message rates (in = accepted, delivered, out = acked, redelivered, dead-lettered, refused,\n"
     "per second from the two latest samples), totals, peers, the store, dead letters; per\n"
     "service queue its depth, messages in flight, workers, the age of the oldest waiting\n"
     "message, bytes and how fast its depth changes (NET/s); per clinic mailbox its depth.\n"
     "When stdout is not a terminal, or with --once, prints one snapshot and exits; --json\n"
     "prints the broker's raw stats sample (docs/PROTOCOL.md, \"stats\").\n"
     "Speaks as --admin (as --clinic when only that is set).\n"
     "\n"
     "examples:\n"
     "  handoff --admin ops top\n"
     "  handoff top --once\n"
     "  handoff top --json | jq '.queues[] | {name, depth}'\n"},
    {"dlq",
     "usage: handoff [options] dlq list | show ID | replay ID | purge ID\n"
     "\n"
     "Dead letters: messages a service failed on every attempt. list: id, queue, type, attempts,\n"
     "when it died, the last error. show: one, with its payload size and referral id (never the\n"
     "patient details). replay: back to its queue with attempts reset (same id). purge: delete.\n"
     "ID is 32 hexadecimal characters as `dlq list` shows it (else exit 2); exit 4 when it is\n"
     "not a dead letter.\n"
     "\n"
     "examples:\n"
     "  handoff --admin ops dlq list\n"
     "  handoff --admin ops dlq replay 5f0c1e2d3b4a59687766554433221100\n"},
    {"cluster",
     "usage: handoff [options] cluster status | add ID=RAFTIP:PORT=tcp://HOST:PORT | remove ID |\n"
     "                         transfer ID [--wait]\n"
     "\n"
     "A replicated broker's nodes (handoff-broker --cluster; docs/OPERATIONS.md). status: each node's\n"
     "id, role (voter, standby or spare; which leads), Raft address and client endpoint, the term,\n"
     "the change in progress and how the last one ended. add: a node started with --join is added:\n"
     "its endpoints recorded (every node can then name it to clients), caught up, made a voter.\n"
     "remove: a node leaves (the leader may remove itself; it steps down). transfer: the leadership\n"
     "moves to that voter. One change at a time (exit 1 with ERR_BUSY while one runs). A change\n"
     "returns once begun; with --wait, when it is done (exit 0) or failed (exit 1, with why).\n"
     "--broker should list every node (the command finds the leader).\n"
     "\n"
     "examples:\n"
     "  handoff --admin ops --broker tcp://b1:5555,tcp://b2:5555,tcp://b3:5555 cluster status\n"
     "  handoff --admin ops cluster add 4=b4:7000=tcp://b4:5555 --wait\n"
     "  handoff --admin ops cluster remove 1 --wait\n"},
    {"health",
     "usage: handoff [options] health\n"
     "\n"
     "Exit 0 when the broker accepts messages, 1 when it cannot write its log, 3 when it does not\n"
     "answer, 77 when it refuses this key. As the clinic when --clinic is set and --admin is not,\n"
     "otherwise as the admin.\n"
     "\n"
     "example:\n"
     "  handoff health || echo 'broker not accepting'\n"},
    {"config",
     "usage: handoff [options] config\n"
     "\n"
     "The settings in effect, each with where it came from: a flag, an environment variable,\n"
     "the config file (file:line) or the default. Flag > environment > file > default.\n"
     "The file (--config, HANDOFF_CONFIG, or ~/.handoff/config when it exists) is INI:\n"
     "\n"
     "  # ~/.handoff/config\n"
     "  broker = tcp://broker.example.org:5555\n"
     "  clinic = northpoint\n"
     "  timeout-ms = 5000\n"
     "\n"
     "Its names are broker, clinic, admin, home, timeout-ms, server-key, key, interval-ms,\n"
     "window (optionally under [handoff]). An unknown name or a bad value stops every command\n"
     "with exit 2, naming the setting, file:line and why.\n"
     "--json: {\"config_file\":..,\"settings\":{NAME:{\"value\":..,\"from\":..}}}\n"
     "\n"
     "example:\n"
     "  HANDOFF_TIMEOUT_MS=500 handoff --config ./clinic.ini config\n"},
    {"keygen",
     "usage: handoff keygen NAME [--dir DIR]\n"
     "\n"
     "A CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub, in --dir (.); prints the\n"
     "allow-list line for the broker.\n"
     "\n"
     "example:\n"
     "  handoff keygen northpoint --dir keys\n"},
    {"datakey",
     "usage: handoff datakey FILE\n"
     "\n"
     "A new key for the broker's --data-key (sealed message bodies), mode 0600.\n"
     "\n"
     "example:\n"
     "  handoff datakey /etc/handoff/data.key\n"},
    {"store",
     "usage: handoff --clinic ID store key\n"
     "       handoff --clinic ID store rekey [--new-key FILE | --new-data-key FILE]\n"
     "\n"
     "What the clinic's store holds of patients (received handoffs, updates, care-thread posts\n"
     "and attachments; referrals sent, their patients' names and files) is sealed with the store\n"
     "key: --store-key FILE (HANDOFF_STORE_KEY), else one derived from --data-key (a store of\n"
     "handoff-web's --home, hosted by the portal), else ~/.handoff/ID.store.key, made (mode 0600)\n"
     "on first use. 'key' shows the key's id and where it comes from.\n"
     "\n"
     "'rekey' seals every value again with a new key in one transaction, then rewrites the file\n"
     "(VACUUM) so nothing sealed with the old key stays in it. Without --new-key the default key\n"
     "file gets a new key; with --new-key FILE the store is sealed with FILE's key (copied into\n"
     "the default file when that was the key in use); with --new-data-key the store of a clinic\n"
     "the portal hosts is sealed with the key derived from the portal's new data key (start\n"
     "handoff-web with it afterwards). Stop the programs that use the store first.\n"
     "\n"
     "examples:\n"
     "  handoff --clinic lakeside store key\n"
     "  handoff --clinic lakeside store rekey\n"
     "  handoff --clinic lakeside --home /var/lib/handoff/web --data-key old.key store rekey --new-data-key new.key\n"},
    {"audit",
     "usage: handoff audit verify FILE [DATA_DIR|ANCHOR_FILE]\n"
     "\n"
     "Checks the broker's (or scheduling's) hash-chained audit log: exit 0 when the chain holds,\n"
     "1 with the file and first broken line (edited, deleted, added or moved lines). The files\n"
     "rotated out of it (FILE.YYYYMMDDTHHMMSSZ) are checked too, oldest first, and the chain\n"
     "across each rotation; a file missing from the middle is named. When the oldest files were\n"
     "deleted (--audit-keep-days), the check starts at the oldest present, whose first line is\n"
     "then trusted, and says so. With the broker's data directory (or its audit.anchor file) it\n"
     "also checks that the series reaches the head the broker's log recorded, so a cut tail\n"
     "shows: \"the audit log ends at line N but the log anchored line M\".\n"
     "\n"
     "example:\n"
     "  handoff audit verify /var/lib/handoff/audit.jsonl /var/lib/handoff\n"},
    {"admin",
     "usage: handoff admin backup OUT [--broker-data DIR] [--audit FILE]... [--db PATH]...\n"
     "                               [--db-dir DIR]... [--pg URL] --key FILE\n"
     "       handoff admin restore BUNDLE --key FILE --into DIR [--data-key FILE]\n"
     "       handoff admin restore --list BUNDLE --key FILE\n"
     "       handoff admin migrate --from sqlite:DIR|sqlite:FILE --to postgresql://USER@HOST:PORT/DB\n"
     "                             [--component intake|scheduling] [--quiet]\n"
     "\n"
     "backup: an online backup, taken on the host (or in a container) that sees the data files\n"
     "while the broker and the services keep serving; nothing needs to stop. In this order:\n"
     "  --broker-data DIR  the broker's --data: its log, consistent at the log's durable end\n"
     "                     (what a crash at that moment would have left) [HANDOFF_BACKUP_BROKER_DATA]\n"
     "  --audit FILE       an audit log with its rotated files FILE.YYYYMMDDTHHMMSSZ, each up to\n"
     "                     its last complete line; repeatable (the broker's, scheduling's)\n"
     "                     [HANDOFF_BACKUP_AUDIT, several separated by ':']\n"
     "  --db PATH          a SQLite file (scheduling.db, intake.db, web-accounts.db, a clinic's\n"
     "                     store), by SQLite's online backup; repeatable [HANDOFF_BACKUP_DB, ':']\n"
     "  --db-dir DIR       every *.db in DIR; repeatable [HANDOFF_BACKUP_DB_DIR, ':']\n"
     "  --pg URL           the services' PostgreSQL database (postgresql://...): the schemas intake\n"
     "                     and scheduling by pg_dump (custom format; a consistent snapshot; the\n"
     "                     password from PGPASSFILE, not the URL), as pg/postgres.pgdump\n"
     "                     [HANDOFF_BACKUP_PG; the program: HANDOFF_PG_DUMP, else pg_dump]\n"
     "  --key FILE         the backup key: 64 hex characters (handoff datakey makes one; the\n"
     "                     broker's --data-key may serve) [HANDOFF_BACKUP_KEY]\n"
     "OUT is one file, mode 0600, encrypted and authenticated with the key (XChaCha20-Poly1305):\n"
     "a tar of broker/, audit/<series>/, db/, pg/ and manifest.json (each file's role, original path,\n"
     "size and SHA-256, and the log's durable end). It is written to OUT.tmp, synced, then\n"
     "renamed; an existing OUT is never overwritten. On a terminal the bytes so far show on\n"
     "stderr; at the end a summary: files, bytes, the log's durable end, seconds.\n"
     "\n"
     "restore: decrypts the bundle, checks every file against the manifest, writes DIR/broker/\n"
     "(the log), DIR/audit/<series>/, DIR/db/ and DIR/pg/ (files 0600, directories 0700), checks\n"
     "that the log recovers and that every SQLite file passes PRAGMA integrity_check, then prints\n"
     "where each file went and which option (or, for a PostgreSQL dump, which pg_restore) brings\n"
     "it back. DIR must be new or empty; the work\n"
     "happens in DIR.tmp, renamed DIR only when every check passed.\n"
     "  --into DIR         where to restore [HANDOFF_RESTORE_INTO]\n"
     "  --data-key FILE    the broker's data key: the recovery check also opens every sealed\n"
     "                     message body [HANDOFF_DATA_KEY]\n"
     "  --list             only check the bundle and print its manifest; writes nothing\n"
     "A wrong key, a truncated bundle or an altered byte: exit 1 with what is wrong and where;\n"
     "nothing is left behind.\n"
     "\n"
     "migrate: moves the services' state from SQLite to PostgreSQL (docs/OPERATIONS.md). Stop\n"
     "intake and scheduling first. --from sqlite:DIR takes DIR/intake.db and DIR/scheduling.db\n"
     "(either may be missing); sqlite:FILE one store (its component from its name, or\n"
     "--component). Each is copied table by table in one transaction into its own schema of the\n"
     "--to database, made by this version's schema steps; a store of another version is refused\n"
     "(start this version's program on it once first), and so is a target that holds rows already.\n"
     "Sealed values are copied as they are: start the services with the same --data-key. Prints\n"
     "the rows of each table; on any error nothing of that component is written.\n"
     "\n"
     "examples:\n"
     "  handoff admin backup /backup/handoff-$(date -u +%Y%m%dT%H%M%SZ).hxb \\\n"
     "    --broker-data /var/lib/handoff/data --audit /var/lib/handoff/data/audit.jsonl \\\n"
     "    --audit /var/lib/handoff/scheduling/audit.jsonl --db-dir /var/lib/handoff/scheduling \\\n"
     "    --db /var/lib/handoff/intake/intake.db --key /etc/handoff/backup.key\n"
     "  handoff admin restore --list /backup/handoff-20261128T020000Z.hxb --key /etc/handoff/backup.key\n"
     "  handoff admin restore /backup/handoff-20261128T020000Z.hxb --key /etc/handoff/backup.key \\\n"
     "    --into /var/lib/handoff-restored\n"
     "  handoff admin migrate --from sqlite:/var/lib/handoff/services \\\n"
     "    --to postgresql://handoff@db.internal:5432/handoff\n"},
};

const cli_flag_t CLI_FLAGS[CLI_OPT_COUNT] = {
    [CLI_OPT_CONFIG] = {"config", "FILE", "the config file [HANDOFF_CONFIG, ~/.handoff/config if it exists]:\n"
                                          "INI lines 'name = value' with the settings' names (broker, clinic, ...)"},
    [CLI_OPT_JSON] = {"json", NULL, "machine-readable output (field names are stable; see docs/OPERATIONS.md)"},
    [CLI_OPT_NO_VALIDATE] = {"no-validate", NULL, "submit, import: send without checking locally"},
    [CLI_OPT_REASON] = {"reason", "TEXT", "decline, fail, redirect, add-massage (required), revoke: why, told\n"
                                          "to the other clinic"},
    [CLI_OPT_DISCIPLINE] = {"discipline", "D", "accept ... fail, redirect: physiotherapy or massage_therapy, when\n"
                                               "this clinic holds both bookings of a referral"},
    [CLI_OPT_DIR] = {"dir", "DIR", "keygen: where the key files are written [.]; play: where each\n"
                                   "clinic's CLINIC.key is (with --server-key) [the home directory]"},
    [CLI_OPT_FORMAT] = {"format", "F", "import: csv or ndjson, when the file's extension does not say"},
    [CLI_OPT_DRY_RUN] = {"dry-run", NULL, "import: check every row, send nothing"},
    [CLI_OPT_ONCE] = {"once", NULL, "top: one sample, then exit"},
    [CLI_OPT_WAIT] = {"wait", NULL, "cluster add, remove, transfer: until the change is done or failed"},
    [CLI_OPT_AS] = {"as", "PLAN", "review decide: physio, massage, both or physician"},
    [CLI_OPT_ASK] = {"ask", NULL, "note: a question; the thread awaits the other side's reply"},
    [CLI_OPT_SUMMARY] = {"summary", "TEXT|FILE", "complete (required): the completion summary, for the referring\n"
                                                 "clinic on the care thread; a FILE that exists is read, - reads stdin"},
    [CLI_OPT_ATTACH] = {"attach", "FILE", "note, reply: attach a PDF, PNG or JPEG of at most 256 KiB"},
    [CLI_OPT_OUT] = {"out", "FILE", "attachment: write it to FILE (never over an existing file)"},
    [CLI_OPT_TO] = {"to", "CLINIC[/T]", "redirect (required): the clinic the handoff goes to, and optionally\n"
                                        "one of its therapists by id (else the earliest that fits)"},
    [CLI_OPT_NEW_KEY] = {"new-key", "FILE", "store rekey: the store key from now on (handoff datakey makes one)"},
    [CLI_OPT_NEW_DATA_KEY] = {"new-data-key", "FILE", "store rekey: a store of handoff-web's --home: the portal's new\n"
                                                     "--data-key"},
    [CLI_OPT_HELP] = {"help", NULL, "help (with a command: that command's help); also -h"},
};

/* "  --name ARG            help" with continuation lines indented under the help. */
static void flag_line(FILE *f, const cli_flag_t *o)
{
    char flag[64];
    snprintf(flag, sizeof flag, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    fprintf(f, "  %-20s  ", flag);
    for (const char *h = o->help; *h; h++) {
        fputc(*h, f);
        if (*h == '\n')
            fprintf(f, "%24s", "");
    }
    fputc('\n', f);
}

void cli_usage(FILE *f)
{
    fputs(USAGE, f);
    cli_config_help(f);
    flag_line(f, &CLI_FLAGS[CLI_OPT_CONFIG]);
    fputs("\noptions:\n", f);
    for (int k = 0; k < CLI_OPT_COUNT; k++)
        if (k != CLI_OPT_CONFIG)
            flag_line(f, &CLI_FLAGS[k]);
    fputs(USAGE_TAIL, f);
}

const char *cli_command_help(const char *cmd)
{
    for (size_t i = 0; cmd && i < sizeof PAGES / sizeof *PAGES; i++)
        if (strcmp(PAGES[i].name, cmd) == 0)
            return PAGES[i].text;
    return NULL;
}

const char *cli_command_list(void)
{
    return "inbox, status, submit, import, watch, handoffs, accept, decline, start, complete, fail, revoke, redirect, "
           "add-massage, thread, note, "
           "reply, review, "
           "top, dlq, cluster, "
           "health, config, keygen, datakey, store, audit, admin, play";
}
