#!/usr/bin/env bash
# Starts a local clinic network (broker, intake, triage, scheduling) on 127.0.0.1 with its
# data in ./demo-data, submits the sample referrals from their referring clinics, shows
# what each clinic received and what each referrer sees, then stops everything.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case $BUILD in /*) BIN=$BUILD ;; *) BIN=$ROOT/$BUILD ;; esac
DATA=$ROOT/demo-data
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
"$BIN/services/cli/handoff" datakey "$KEYS/data.key" >/dev/null   # seals bodies in the broker's log
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
START=$(date -d tomorrow +%Y-%m-%dT08:00)
start intake "$BIN/services/intake/handoff-intake" --db "$DATA/intake.db" --key "$KEYS/intake.key"
start triage "$BIN/services/triage/handoff-triage" --rules "$ROOT/services/triage/rules.json" --key "$KEYS/triage.key"
start scheduling "$BIN/services/scheduling/handoff-scheduling" --directory "$SAMPLE/directory.json" --start "$START" --db "$DATA/scheduling.db" \
  --key "$KEYS/scheduling.key" --audit "$DATA/scheduling-audit.jsonl"
echo "   broker at $HANDOFF_BROKER; booking from $START"

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
collab_id=$last_id collab_referrer=$last_clinic
show_history ' rejected .*physician' "red flag"

# The receiving clinics act on the collaborative referral: the physiotherapy clinic accepts
# and starts, the massage clinic declines and massage alone is booked again elsewhere.
if [ -n "${collab_id:-}" ]; then
  echo
  echo "== the receiving clinics act on $collab_id"
  bookings=$(handoff_as "$collab_referrer" --json status "$collab_id" |
             jq -r '[.history[] | select(.status == "ready")][-1].bookings[] | "\(.discipline) \(.clinic_id)"')
  while read -r discipline clinic; do
    if [ "$discipline" = physiotherapy ]; then
      echo "\$ handoff --clinic $clinic accept $collab_id"
      handoff_as "$clinic" --discipline "$discipline" accept "$collab_id"
      echo "\$ handoff --clinic $clinic start $collab_id"
      handoff_as "$clinic" --discipline "$discipline" start "$collab_id"
    else
      echo "\$ handoff --clinic $clinic decline $collab_id --reason 'no massage therapist free that week'"
      handoff_as "$clinic" --discipline "$discipline" decline "$collab_id" \
        --reason "no massage therapist free that week"
    fi
  done <<<"$bookings"
  echo
  echo "== what $collab_referrer now sees (handoff --clinic $collab_referrer status $collab_id)"
  handoff_as "$collab_referrer" status "$collab_id"
  # Each handoff lives on its own: physiotherapy stays in progress while massage is booked again.
  echo
  echo "== each handoff of $collab_id now (the referral's status is derived from them)"
  handoff_as "$collab_referrer" --json status "$collab_id" | jq -r '.history[-1] |
    "referral: \(.status)",
    (.handoffs[] | "  \(.discipline): \(.status)" +
      (if .clinic_id then " at \(.clinic_id) with \(.therapist_name)" else "" end) +
      " (last: \(.event))")'
  pt_clinic=$(awk '$1 == "physiotherapy" {print $2; exit}' <<<"$bookings")
  if [ -n "$pt_clinic" ]; then
    echo
    echo "== what the physiotherapy clinic $pt_clinic sees of it (handoff --clinic $pt_clinic inbox: each handoff it holds)"
    handoff_as "$pt_clinic" --json inbox | jq -r --arg id "$collab_id" 'to_entries[] | .key as $g | .value[] |
      select(.referral_id == $id and .side == "received") |
      "  \($g): \(.bookings[0].discipline) \(.status)"'
  fi
fi

echo
echo "== the broker's audit log, checked against the head its durable log anchored (handoff audit verify demo-data/audit.jsonl demo-data/broker)"
"$BIN/services/cli/handoff" audit verify "$DATA/audit.jsonl" "$DATA/broker"

echo
echo "== stopping the network"
