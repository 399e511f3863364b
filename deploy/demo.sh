#!/usr/bin/env bash
# Starts a local clinic network (broker, intake, triage, scheduling) on 127.0.0.1 with its
# data in ./demo-data, submits the sample referrals from their referring clinics, shows
# what each clinic received and what each referrer sees, plays the collaborative story of one
# referral (deploy/sample/stories/, `handoff play`), signs in to the clinic portal
# (handoff-web) and shows its inbox, then stops everything. With DEMO_WEB=1 (`make demo-web`)
# the network and the portal keep running until Ctrl-C, so a person can click through it.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) BIN=$BUILD ;; *) BIN=$ROOT/$BUILD ;; esac
DATA=${HANDOFF_DEMO_DIR:-$ROOT/demo-data}   # (the test of the demo gives it a folder of its own)
SAMPLE=$ROOT/deploy/sample
rm -rf "$DATA"
mkdir -p "$DATA/logs" "$DATA/home"
export HANDOFF_HOME=$DATA/home

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

start() { # name, command...
  local name=$1; shift
  "$@" >"$DATA/logs/$name.log" 2>&1 &
  pids+=($!)
}

# Secure by default: CurveZMQ keys for the broker, every clinic and every service, made on
# first run, and an allow-list binding each key to the one session it may open.
KEYS=$DATA/keys
mkdir -p "$KEYS"
clinics=$(jq -r '.clinics[].id' "$SAMPLE/directory.json")
: >"$KEYS/allow.txt"
for name in broker $clinics intake triage scheduling review; do
  "$BIN/services/cli/handoff" --dir "$KEYS" keygen "$name" >/dev/null
done
for c in $clinics; do echo "$(cat "$KEYS/$c.pub") clinic $c" >>"$KEYS/allow.txt"; done
for s in intake triage scheduling; do echo "$(cat "$KEYS/$s.pub") service $s" >>"$KEYS/allow.txt"; done
echo "$(cat "$KEYS/review.pub") reviewer review" >>"$KEYS/allow.txt"   # decides what triage cannot place
"$BIN/services/cli/handoff" datakey "$KEYS/data.key" >/dev/null   # seals the broker's log and scheduling's db
# ... and the clinics' stores: the portal's and the CLI's (the same stores here) derive each
# clinic's store key from it (docs/OPERATIONS.md, "Encryption at rest")
export HANDOFF_DATA_KEY=$KEYS/data.key
export HANDOFF_SERVER_KEY=$KEYS/broker.pub
handoff_as() { # clinic, arguments...
  local clinic=$1
  shift
  "$BIN/services/cli/handoff" --clinic "$clinic" --key "$KEYS/$clinic.key" "$@"
}
review_as() { # arguments... (as the network's reviewer, "review")
  "$BIN/services/cli/handoff" --reviewer review --key "$KEYS/review.key" "$@"
}

echo "== starting the network (logs in demo-data/logs; CURVE keys in demo-data/keys)"
start broker "$BIN/broker/handoff-broker" --bind 'tcp://127.0.0.1:*' --data "$DATA/broker" \
  --data-key "$KEYS/data.key" --curve-secret "$KEYS/broker.key" --allow "$KEYS/allow.txt" \
  --audit "$DATA/audit.jsonl" \
  --ready-file "$DATA/broker.endpoint"
for _ in $(seq 1 100); do [ -s "$DATA/broker.endpoint" ] && break; sleep 0.05; done
[ -s "$DATA/broker.endpoint" ] || { echo "broker did not start:"; cat "$DATA/logs/broker.log"; exit 1; }
export HANDOFF_BROKER=$(cat "$DATA/broker.endpoint")
# the calendar starts on the first Monday after today: who is free first depends on the weekday,
# and the story below (massage declined, then booked again at another clinic) is one of a Monday
START=$(date -d "next monday" +%Y-%m-%dT08:00)
start intake "$BIN/services/intake/handoff-intake" --db "$DATA/intake.db" --key "$KEYS/intake.key"
start triage "$BIN/services/triage/handoff-triage" --rules "$ROOT/services/triage/rules.json" --key "$KEYS/triage.key"
start scheduling "$BIN/services/scheduling/handoff-scheduling" --directory "$SAMPLE/directory.json" --start "$START" --db "$DATA/scheduling.db" \
  --key "$KEYS/scheduling.key" --audit "$DATA/scheduling-audit.jsonl" --data-key "$KEYS/data.key"
echo "   broker at $HANDOFF_BROKER; booking from $START"

# The clinic portal hosts every clinic and the reviewer, each with its own key, on the same
# local stores as the CLI (one store per clinic, whichever program fetches). Demo users:
# CLINIC.clinician, CLINIC.desk and CLINIC.admin for each clinic, review.reviewer and
# network.admin, all with the password below (a demo's, printed: never use it for real).
DEMO_PASSWORD=demo-password-2026
WEB_ACCOUNTS=$DATA/web-accounts.db
web_user() { # name, role, clinic
  printf '%s\n' "$DEMO_PASSWORD" |
    "$BIN/services/web/handoff-web" user add "$1" --role "$2" ${3:+--clinic "$3"} --accounts "$WEB_ACCOUNTS" >/dev/null
}
web_clinics=""
for c in $clinics; do
  web_clinics+="$c=$KEYS/$c.key "
  web_user "$c.clinician" clinician "$c"
  web_user "$c.desk" front-desk "$c"
  web_user "$c.admin" clinic-admin "$c"
done
web_user review.reviewer reviewer
web_user network.admin network-admin
WEB_LISTEN=${HANDOFF_WEB_LISTEN:-127.0.0.1:8080}
web_start() {
  start web "$BIN/services/web/handoff-web" serve --listen "$1" --accounts "$WEB_ACCOUNTS" --home "$HANDOFF_HOME" \
    --data-key "$KEYS/data.key" \
    --clinics "$web_clinics" --reviewers "review=$KEYS/review.key" --directory "$SAMPLE/directory.json"
  for _ in $(seq 1 100); do grep -q '^listening ' "$DATA/logs/web.log" 2>/dev/null && return 0; sleep 0.05; done
  return 1
}
# 8080 taken by something else: any free port
web_start "$WEB_LISTEN" || web_start 127.0.0.1:0 || { echo "handoff-web did not start:"; cat "$DATA/logs/web.log"; exit 1; }
WEB_URL="http://127.0.0.1:$(awk '/^listening /{print $2; exit}' "$DATA/logs/web.log")"
echo "   clinic portal at $WEB_URL"

echo
echo "== submitting the sample referrals"
declare -A referrers=()
for f in "$SAMPLE"/referrals/*.json; do
  clinic=$(jq -r .referrer.clinic_id "$f")
  referrers[$clinic]=1
  printf '%-12s ' "$clinic"
  handoff_as "$clinic" submit "$f" | sed "s|$SAMPLE/||"
done

echo
total=$(ls "$SAMPLE"/referrals/*.json | wc -l)
# Waits until every referral is booked, held, rejected or (with $1 = review) under review.
wait_settled() {
  local pattern='  (ready|rejected|on-hold)  '
  [ "${1:-}" = review ] && pattern='  (ready|rejected|on-hold)  |under review'
  for _ in $(seq 1 150); do
    done_count=0
    for clinic in "${!referrers[@]}"; do
      n=$(handoff_as "$clinic" status | grep -cE "$pattern" || true)
      done_count=$((done_count + n))
    done
    [ "$done_count" -ge "$total" ] && break
    sleep 0.2
  done
}
echo "== waiting for every referral to be triaged: booked, held, rejected or under review"
wait_settled review
echo "   $done_count of $total referrals triaged"

# Triage never lets what it cannot place pass quietly: a clinician of the network decides.
echo
echo "== what triage could not place, as the network's reviewer sees it (handoff --reviewer review review list)"
review_as review list
for id in $(review_as --json review list | jq -r '.[] | select(.state == "pending") | .referral_id'); do
  echo
  echo "\$ handoff --reviewer review review show $id"
  review_as review show "$id"
  echo "\$ handoff --reviewer review review decide $id --as physio --reason 'jaw (TMJ) dysfunction: physiotherapy assessment'"
  review_as review decide "$id" --as physio --reason "jaw (TMJ) dysfunction: physiotherapy assessment"
done

echo
echo "== waiting for every referral to be booked, held or rejected"
wait_settled
echo "   $done_count of $total referrals settled"

echo
echo "== what each receiving clinic got (handoff inbox)"
for clinic in $(printf '%s\n' $clinics "${!referrers[@]}" | sort -u); do
  echo
  echo "-- $clinic"
  handoff_as "$clinic" inbox
done

echo
echo "== what each referring clinic sees (handoff status)"
for clinic in $(printf '%s\n' "${!referrers[@]}" | sort); do
  echo
  echo "-- $clinic"
  handoff_as "$clinic" status
done

# Full histories: physiotherapy only, massage only, collaborative care, a red flag.
show_history() { # pattern in the status line, title
  for clinic in $(printf '%s\n' "${!referrers[@]}" | sort); do
    id=$(handoff_as "$clinic" status | { grep -E "$1" || true; } | awk 'NR==1 {print $1}')
    if [ -n "$id" ]; then
      echo
      echo "== history of $id: $2 (handoff --clinic $clinic status $id)"
      handoff_as "$clinic" status "$id"
      last_id=$id last_clinic=$clinic
      return
    fi
  done
}
show_history ' ready .*booked: physiotherapy with [^;]*$' "physiotherapy only"
show_history ' ready .*booked: massage_therapy with [^;]*$' "massage therapy only"
show_history ' ready .*physiotherapy.*; massage' "collaborative care"
show_history ' rejected .*physician' "red flag"

# The collaborative story (deploy/sample/stories/, played by `handoff play`): physiotherapy
# accepts and starts; the massage clinic declines and massage alone is booked again; the
# physiotherapist asks the new massage therapist a question on the care thread, which it
# answers; both complete with summaries. Each step waits for a condition (the handoff in the
# status it acts on, the referrer seeing it), never for a fixed time.
STORY=$SAMPLE/stories/07-post-surgical-knee.json
story_clinic=$(jq -r .referral.clinic "$STORY")
story_ref=$(jq -r .referral.ref "$STORY")
story_id=$(handoff_as "$story_clinic" --json status |
           jq -r --arg ref "$story_ref" '.[] | select(.ref == $ref) | .referral_id')
play() { # steps
  echo
  echo "\$ handoff play deploy/sample/stories/$(basename "$STORY") $1"
  "$BIN/services/cli/handoff" --dir "$KEYS" play "$STORY" "$1"
}
referrer_sees() { # what the referring clinic sees: the history, or with "thread" the care thread
  echo
  if [ "${1:-}" = thread ]; then
    echo "== what $story_clinic reads on the care thread (handoff --clinic $story_clinic thread $story_id)"
    handoff_as "$story_clinic" thread "$story_id"
  else
    echo "== what $story_clinic sees (handoff --clinic $story_clinic status $story_id)"
    handoff_as "$story_clinic" status "$story_id"
  fi
}
handoff_clinic() { # discipline: the clinic holding that handoff now, as the referrer sees it
  handoff_as "$story_clinic" --json status "$story_id" |
    jq -r --arg d "$1" '.history[-1].handoffs[] | select(.discipline == $d) | .clinic_id'
}
if [ -n "$story_id" ]; then
  echo
  echo "== the collaborative story of $story_id ($story_ref of $story_clinic)"
  jq -r .about "$STORY" | fold -s -w 96 | sed 's/^/   /'
  play 1-3          # physiotherapy accepts and starts; massage declines
  referrer_sees
  play 4            # massage booked again (the player waits for it), the new clinic accepts
  play 5            # the physiotherapist's question
  rmt=$(handoff_clinic massage_therapy)
  echo
  echo "== the massage clinic $rmt sees the question awaiting its reply (handoff --clinic $rmt thread $story_id)"
  handoff_as "$rmt" thread "$story_id"
  play 6            # its reply
  play 7-10         # massage starts; a progress note; both complete with summaries
  referrer_sees thread
  referrer_sees
  # Each handoff lived its own life: the decline of massage never touched physiotherapy.
  echo
  echo "== each handoff of $story_id at the end (the referral's status is derived from them)"
  handoff_as "$story_clinic" --json status "$story_id" | jq -r '.history[-1] |
    "referral: \(.status)",
    (.handoffs[] | "  \(.discipline): \(.status)" +
      (if .clinic_id then " at \(.clinic_id) with \(.therapist_name)" else "" end) +
      " (last: \(.event))")'
else
  echo
  echo "== $story_ref of $story_clinic was not booked: no collaborative story to play"
fi

echo
# Near the patient, in the clinic's own time: the same referral again, from a patient who
# gives a postal code in east Toronto (M4C); the nearest clinic with a slot within the
# priority's bound wins, and the booking shows its wall clock, offset and distance.
near="$DATA/near-patient.json"
jq '.ref = "HB-2026-NEAR" | .patient.postal_code = "M4C 1A1" | .patient.language = "en" | del(.preferences)' \
  "$SAMPLE/referrals/01-ankle-sprain.json" >"$near"
echo
echo "== near the patient: $(jq -r .ref "$near") from a patient in M4C (east Toronto)"
near_id=$(handoff_as harbour --json submit "$near" | jq -r '.[0].referral_id')
for _ in $(seq 1 100); do
  handoff_as harbour status "$near_id" | grep -q ' ready ' && break
  sleep 0.1
done
handoff_as harbour --json status "$near_id" |
  jq -r '[.history[] | select(.event == "book")][-1].bookings[] |
    "  \(.discipline) with \(.therapist_name) at \(.clinic_id): \(.start) \(.utc_offset) (\(.time_zone)), " +
    "\(.start_utc) in UTC, " + (if .distance_km then "\(.distance_km) km from the patient" else "distance unknown" end)'

echo
echo "== the broker's audit log, checked against the head its durable log anchored (handoff audit verify demo-data/audit.jsonl demo-data/broker)"
"$BIN/services/cli/handoff" audit verify "$DATA/audit.jsonl" "$DATA/broker"

echo
echo "== the clinic portal: signing in as lakeside.clinician and reading the inbox's folders ($WEB_URL)"
jar=$DATA/web-cookies.txt
curl -sf -c "$jar" -o /dev/null -d "user=lakeside.clinician&password=$DEMO_PASSWORD" "$WEB_URL/login"
curl -sf -b "$jar" "$WEB_URL/" | grep -o 'folder=[a-z_]*"[^>]*>[^<]* <span class="count">[0-9]*' |
  sed -E 's/.*>([^<]*) <span class="count">([0-9]*)/   \1: \2/'
rm -f "$jar"

echo
echo "== the FHIR R4 API ($WEB_URL/fhir/r4): lakeside's EMR, a client of the API, reads its handoffs as Tasks"
emr_secret=$("$BIN/services/web/handoff-web" client add lakeside-emr --clinic lakeside --accounts "$WEB_ACCOUNTS" | tail -n 1)
emr_token=$(curl -sf -u "lakeside-emr:$emr_secret" -d grant_type=client_credentials "$WEB_URL/fhir/r4/token" |
  jq -r .access_token)
echo "   POST /fhir/r4/token (client credentials) -> a bearer token for 5 minutes"
echo "   GET /fhir/r4/Task?owner=Organization/lakeside&_include=Task:based-on"
curl -sf -H "Authorization: Bearer $emr_token" \
  "$WEB_URL/fhir/r4/Task?owner=Organization/lakeside&_include=Task:based-on&_count=200" | jq -r '
  ([.entry[]? | select(.search.mode == "include") | .resource | {key: .id, value: .priority}] | from_entries) as $prio |
  "   \(.total) Task(s) owned by lakeside:",
  (.entry[]? | select(.search.mode == "match") | .resource |
   "   Task/\(.id): \(.status), \(.businessStatus.coding[0].code // "-"), priority \($prio[.basedOn[0].reference | sub("ServiceRequest/"; "")] // "-")")'
unset emr_secret emr_token
echo "   (docs/FHIR.md: submitting referrals as transaction Bundles, acting on Tasks, subscriptions)"

echo
echo "   Open $WEB_URL and sign in as CLINIC.clinician, CLINIC.desk or CLINIC.admin (CLINIC: $(echo $clinics | tr ' ' ',')),"
echo "   review.reviewer or network.admin; the demo password is $DEMO_PASSWORD"
if [ "${DEMO_WEB:-0}" = 1 ]; then
  echo
  echo "== the network and the portal keep running: $WEB_URL (Ctrl-C stops them)"
  wait "${pids[0]}" || true
else
  echo "   'make demo-web' runs this demo and keeps the network and the portal running to click through"
fi

echo
echo "== stopping the network"
