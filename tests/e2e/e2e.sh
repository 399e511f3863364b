#!/usr/bin/env bash
# The Docker end-to-end test: builds the image, runs deploy/docker-compose.yml, and checks
# from the host's clinic CLI that
#   1. the sample referrals are triaged, booked and handed off to the right clinics;
#   2. a broker killed in the middle of a stream of submits (docker kill, then started again;
#      and a crash its restart policy brings back) loses and duplicates nothing it accepted;
#   0. every container runs hardened as the compose file says: read-only root filesystem, no
#      capabilities, no-new-privileges, memory and process limits (one set by its variable),
#      a writable tmpfs /tmp; triage runs the file's default of 2 replicas;
#   3. with triage scaled to 3 through HANDOFF_TRIAGE_REPLICAS, work reaches more than one
#      triage container, and a later `up -d` of the whole stack keeps the 3;
#   4. the clinic portal (web) is reached over HTTPS through nginx (tls) with the network's
#      certificate: a user made with `docker-compose exec web handoff-web user add` signs in
#      (Secure, HttpOnly cookie), reads the inbox, and finds a referral sent meanwhile;
#   5. a clinic revoked with deploy/keys.sh and SIGHUP is refused at once, through the broker's
#      folder mount of keys/access, while the others keep working;
#   5b. a clinic added (keys.sh add) connects after SIGHUP; a clinic's key rotated with
#      --keep-old: both keys work, then after revoke --old only the new one;
#   6. no program's /metrics, /healthz or /readyz is published on the host: they are reached
#      on the internal compose network metrics only;
#   7. the profile monitoring: Prometheus scrapes the broker, every service replica and the
#      portal, has loaded every alert rule and found Alertmanager (whose configuration
#      amtool accepts); every query of the Grafana dashboard deploy/grafana/handoff.json returns
#      data, and every dashboard and alert expression parses and uses only metrics the scrape
#      has;
#   8. an online backup with the compose service backup (profile ops) while a referral is
#      submitted: one 0600 bundle, every program still healthy, and the bundle lists and
#      restores (the log recovers with every body opening, the audit chain verifies);
#   8b. an upgrade: the image under a new tag (HANDOFF_IMAGE), up -d recreates the broker and
#      services on it, on their volumes, triage keeps its 3 replicas; a referral resubmitted is
#      the same one and not booked again;
#   9. that bundle restored into a new project's volumes (deploy/restore-volumes.sh; refused
#      over volumes that hold data), whose stack goes on: a referral of the backup resubmitted
#      is the same referral and is not booked again, a new one goes through (booked and handed
#      off once, or on hold when the calendar the earlier steps filled has no slot);
#   9b. the data key of that stack rotated with deploy/rotate-data-key.sh: the broker's log,
#      scheduling's database and the portal's clinic stores sealed anew, the old key kept as
#      data.key.old and refused by the broker and scheduling; the stack goes on (the referral
#      resubmitted is the same one, a new one is settled);
#  10. that restored stack moved to PostgreSQL with deploy/docker-compose.postgres.yml: the
#      server (deploy/postgres) healthy, run --rm migrate copies the SQLite volumes in (the
#      portal's accounts too), intake and scheduling go on from it (the referral resubmitted
#      is the same one, not booked again, no overlapping bookings), handoff-web in the image
#      lists the user of step 4 from it, and run --rm pg-backup writes one 0600 dump;
#  11. a replicated broker (deploy/docker-compose.ha.yml, a third project): three broker nodes,
#      the leader's container killed a third of the way into a stream of submits from the
#      host's CLI given the three nodes; another node serves, and every referral acknowledged
#      is settled with exactly one handoff per booking; the nodes' Raft connections are
#      authenticated (a key derived from the CURVE secret) and none was refused; then (11b)
#      the HA stack lost and brought back from one node's copy as OPERATIONS.md says
#      (raft-backup, raft-recover, HANDOFF_JOIN, cluster add): the referrals the copy held are
#      each booked exactly once; then (11c) its data key rotated with rotate-data-key.sh --ha
#      (every node's Raft log sealed anew) with referrals held across it, each booked once;
# and that the image build refuses key material in its context (before any of it); that
# deploy/build-image.sh tags the image handoff:VERSION (the compose file's default) and
# handoff:latest with the OCI version, revision and creation labels; and that deploy/sbom.sh
# makes an SPDX 2.3 document listing every package dpkg has in the image.
# Everything is torn down on exit, also on failure. Usage: tests/e2e/e2e.sh [BUILD_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
CLI=$BUILD/services/cli/handoff
[ -x "$CLI" ] || { echo "e2e: no $CLI: build first (make build)" >&2; exit 1; }
export E2E_DIR=$BUILD/e2e
STREAM=${E2E_STREAM:-150}            # referrals submitted while the broker is killed
# the runtime image's size limit: 111 MB, and 36 MB more since the backup (handoff admin
# backup) writes its bundle with libarchive, whose Debian package brings libxml2 and ICU
MAX_IMAGE_MB=${E2E_MAX_IMAGE_MB:-160}
PROJECT=handoff-e2e-$$
VERSION=$("$ROOT/deploy/version.sh" "$ROOT")
IMAGE=handoff:$VERSION                # what deploy/build-image.sh tags, the compose file's default
MON_IMAGE=handoff-monitoring:$VERSION
SAMPLE=$ROOT/deploy/sample
started=$(date +%s)

step() { echo; echo "== e2e: $* [at $(($(date +%s) - started)) s]"; }
fail() { echo "e2e: FAILED: $*" >&2; exit 1; }
now() { date +%s; }

"$ROOT/tests/e2e/setup.sh"

rm -rf "$E2E_DIR/keys" "$E2E_DIR/home" "$E2E_DIR/work"
mkdir -p "$E2E_DIR/home" "$E2E_DIR/work"
# Free loopback ports for the broker's published port (kept across broker restarts) and the
# portal's HTTPS.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 12000))   # below the kernel's ephemeral range (32768-)
    if [ "$p" != "${port:-}" ] && [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ]; then echo "$p"; return 0; fi
  done
  return 1
}
port=$(free_port) || fail "no free port found"
wport=$(free_port) || fail "no free port found"
pport=$(free_port) || fail "no free port found"
aport=$(free_port) || fail "no free port found"

# the images of the compose file's defaults (handoff:VERSION, handoff-monitoring:VERSION), and
# the profile monitoring in every compose command, as deploy/.env would set it
unset HANDOFF_IMAGE HANDOFF_MONITORING_IMAGE
export COMPOSE_PROFILES=monitoring
export HANDOFF_KEYS=$E2E_DIR/keys HANDOFF_PUBLISH=127.0.0.1:$port
export HANDOFF_WEB_PUBLISH=127.0.0.1:$wport HANDOFF_WEB_PUBLIC_URL=https://localhost:$wport
export HANDOFF_PROMETHEUS_PUBLISH=127.0.0.1:$pport HANDOFF_ALERTMANAGER_PUBLISH=127.0.0.1:$aport
export HANDOFF_SCHEDULE_START=$(date -d tomorrow +%Y-%m-%dT08:00) HANDOFF_LOG_FORMAT=text
# the file's defaults, but for one memory limit set by its variable (checked in step 0)
unset HANDOFF_TRIAGE_REPLICAS HANDOFF_INTAKE_REPLICAS HANDOFF_BROKER_MEMORY HANDOFF_INTAKE_MEMORY \
  HANDOFF_SCHEDULING_MEMORY HANDOFF_WEB_MEMORY HANDOFF_TLS_MEMORY
export HANDOFF_TRIAGE_MEMORY=192m
compose() { docker-compose -p "$PROJECT" -f "$ROOT/deploy/docker-compose.yml" "$@"; }

teardown() {
  local rc=$?
  set +e
  if [ "$rc" != 0 ]; then
    echo "e2e: failed (exit $rc); the last container logs:" >&2
    compose logs --no-color --tail=40 >&2 2>&1
  fi
  compose logs --no-color >"$E2E_DIR/compose.log" 2>&1
  compose down -v --remove-orphans >/dev/null 2>&1
  if [ -n "${PROJECT2:-}" ]; then
    compose2 logs --no-color >"$E2E_DIR/compose-restored.log" 2>&1
    compose2 down -v --remove-orphans >/dev/null 2>&1
  fi
  if [ -n "${PROJECT3:-}" ]; then
    compose3 logs --no-color >"$E2E_DIR/compose-ha.log" 2>&1
    compose3 down -v --remove-orphans >/dev/null 2>&1
  fi
  [ -z "${NEXT_IMAGE:-}" ] || docker rmi "$NEXT_IMAGE" >/dev/null 2>&1
  if [ -s "$E2E_DIR/dockerd.pid" ]; then   # stop the engine only if setup started it
    kill "$(cat "$E2E_DIR/dockerd.pid")" 2>/dev/null
    rm -f "$E2E_DIR/dockerd.pid"
  fi
  exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

step "building the images (deploy/build-image.sh --monitoring: $IMAGE, $MON_IMAGE)"
t0=$(now)
"$ROOT/deploy/build-image.sh" --monitoring >"$E2E_DIR/build.log" 2>&1 ||
  { tail -30 "$E2E_DIR/build.log" >&2; fail "deploy/build-image.sh"; }
echo "built in $(($(now) - t0)) s"
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "runtime image $IMAGE: $((size / 1000000)) MB (limit $MAX_IMAGE_MB MB)"
[ "$size" -le $((MAX_IMAGE_MB * 1000000)) ] ||
  fail "image is larger than $MAX_IMAGE_MB MB (E2E_MAX_IMAGE_MB); its largest packages (KB): $(docker run --rm --network none \
        --entrypoint "" "$IMAGE" dpkg-query -W -f='${Installed-Size} ${Package}\n' | sort -rn | head -5 | xargs)"
[ "$(docker image inspect -f '{{.Config.User}}' "$IMAGE")" = handoff ] || fail "the image does not run as user handoff"
[ -n "$(docker image inspect -f '{{.Config.Healthcheck}}' "$IMAGE")" ] || fail "the image has no HEALTHCHECK"
# the tags and the OCI labels; the compose file runs this tag unless HANDOFF_IMAGE says otherwise
revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) || revision=unknown
label() { docker image inspect -f "{{index .Config.Labels \"org.opencontainers.image.$2\"}}" "$1"; }
for img in "$IMAGE" "$MON_IMAGE"; do
  [ "$(label "$img" version)" = "$VERSION" ] || fail "$img: label org.opencontainers.image.version is '$(label "$img" version)', not $VERSION"
  [ "$(label "$img" revision)" = "$revision" ] || fail "$img: label org.opencontainers.image.revision is '$(label "$img" revision)', not $revision"
  created=$(label "$img" created)
  [[ $created =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] && c=$(date -d "$created" +%s) &&
    [ "$c" -ge "$((t0 - 5))" ] && [ "$c" -le "$(now)" ] || fail "$img: label org.opencontainers.image.created is '$created', not this build's time"
done
[ "$(docker image inspect -f '{{.Id}}' handoff:latest)" = "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ] ||
  fail "handoff:latest is not $IMAGE"
images=$(compose config | awk '$1 == "image:" { print $2 }' | LC_ALL=C sort -u | xargs)
[ "$images" = "$MON_IMAGE $IMAGE" ] || fail "the compose file's default images are '$images', not $IMAGE and $MON_IMAGE"
echo "$IMAGE (= handoff:latest) and $MON_IMAGE: version $VERSION, revision $revision, created $created; the compose file's defaults"

step "the SBOM of $IMAGE (deploy/sbom.sh, SPDX 2.3)"
sbom=$E2E_DIR/sbom.spdx.json
"$ROOT/deploy/sbom.sh" "$IMAGE" -o "$sbom" 2>"$E2E_DIR/sbom.log" || { cat "$E2E_DIR/sbom.log" >&2; fail "deploy/sbom.sh"; }
n_dpkg=$(docker run --rm --network none --entrypoint "" "$IMAGE" dpkg-query -W -f='${Package}\n' | wc -l)
jq -e '.spdxVersion == "SPDX-2.3" and .dataLicense == "CC0-1.0" and .SPDXID == "SPDXRef-DOCUMENT"
       and (.documentNamespace | startswith("https://")) and (.creationInfo.created | length > 0)' "$sbom" >/dev/null ||
  fail "$sbom is not an SPDX 2.3 document"
bad=$(jq -c '[.packages[] | select((.SPDXID // "" | test("^SPDXRef-[A-Za-z0-9.-]+$") | not) or (.name // "") == ""
       or (.versionInfo // "") == "" or ([.externalRefs[]? | select(.referenceType == "purl")] | length) != 1)] | map(.name)' "$sbom")
[ "$bad" = "[]" ] || fail "SBOM packages without an SPDXID, name, versionInfo or purl: $bad"
[ "$(jq '[.packages[].SPDXID] | length == (unique | length)' "$sbom")" = true ] || fail "the SBOM's SPDXIDs are not unique"
n_deb=$(jq '[.packages[].externalRefs[] | select(.referenceType == "purl" and
            (.referenceLocator | test("^pkg:deb/debian/[^@]+@[^?]+\\?arch=[a-z0-9]+$")))] | length' "$sbom")
[ "$n_deb" = "$n_dpkg" ] || fail "the SBOM has $n_deb Debian packages, dpkg in $IMAGE lists $n_dpkg"
jq -e --arg v "$VERSION" '[.packages[] | select(.name == "handoff" and .versionInfo == $v)] | length == 1' "$sbom" >/dev/null ||
  fail "the SBOM has no package handoff $VERSION (the project's programs)"
jq -e '[.packages[] | select(.name == "nginx") | .externalRefs[0].referenceLocator | startswith("pkg:deb/debian/nginx@")] == [true]' \
  "$sbom" >/dev/null || fail "the SBOM has no purl for nginx"
# every LicenseRef a package declares is defined in the document
undefined=$(jq -r '([.hasExtractedLicensingInfos[]?.licenseId]) as $defined | [.packages[].licenseDeclared | scan("LicenseRef-[A-Za-z0-9.-]+")]
            | unique - $defined | join(" ")' "$sbom")
[ -z "$undefined" ] || fail "the SBOM uses licences it does not define: $undefined"
n_lic=$(jq '[.packages[] | select(.licenseDeclared != "NOASSERTION")] | length' "$sbom")
[ "$n_lic" -gt 0 ] || fail "no package of the SBOM has a licence from a machine-readable copyright file"
echo "SPDX 2.3: $(jq '.packages | length' "$sbom") packages ($n_dpkg from dpkg, all with a purl, and handoff $VERSION); $n_lic with a declared licence"

step "the build refuses key material in its context"
"$ROOT/tests/keys/build_context_refuses_keys.sh" "$ROOT" "$BUILD" >"$E2E_DIR/context.log" 2>&1 ||
  { cat "$E2E_DIR/context.log" >&2; fail "the build context check"; }
grep -q "docker build: refused with a key in the context, passed without" "$E2E_DIR/context.log" ||
  { cat "$E2E_DIR/context.log" >&2; fail "the context check did not run docker build"; }
echo "docker build: refused with a key in the context, passed without"

HANDOFF_CLI=$CLI "$ROOT/deploy/keys.sh" "$E2E_DIR/keys"
K=$E2E_DIR/keys
as() { # clinic, arguments...: the host CLI as that clinic, over CURVE
  local c=$1; shift
  "$CLI" --broker "tcp://127.0.0.1:$port" --server-key "$K/broker.pub" --key "$K/$c.key" \
    --home "$E2E_DIR/home" --clinic "$c" "$@"
}
as_reviewer() { # arguments...: the host CLI as the network's reviewer (keys.sh makes "review")
  "$CLI" --broker "tcp://127.0.0.1:$port" --server-key "$K/broker.pub" --key "$K/review.key" \
    --home "$E2E_DIR/home" --reviewer review "$@"
}

health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null; }
wait_healthy() { # timeout seconds, containers...
  local deadline=$(($(now) + $1)); shift
  for c in "$@"; do
    until [ "$(health "$c")" = healthy ]; do
      [ "$(now)" -lt "$deadline" ] || fail "$c not healthy in time (state: $(health "$c"))"
      sleep 0.5
    done
  done
}
cid() { compose ps -q "$1"; }

step "starting the stack (project $PROJECT, broker on 127.0.0.1:$port, portal on https://localhost:$wport)"
compose up -d >"$E2E_DIR/up.log" 2>&1 || { cat "$E2E_DIR/up.log" >&2; fail "docker-compose up"; }
wait_healthy 120 $(cid broker) $(cid intake) $(cid triage) $(cid scheduling) $(cid web) $(cid tls) \
  $(cid prometheus) $(cid alertmanager)
echo "broker, intake, triage, scheduling, web and tls are healthy; prometheus and alertmanager (profile monitoring) too"

step "0. every container hardened (deploy/docker-compose.yml)"
hardened() { # container, service, memory limit in bytes, a folder of the image its user owns
  local c=$1 s=$2 mem=$3 own=$4 hc st
  hc=$(docker inspect -f '{{json .HostConfig}}' "$c")
  jq -e '.ReadonlyRootfs == true' <<<"$hc" >/dev/null || fail "$s: the root filesystem is not read-only"
  jq -e '.CapDrop // [] | index("ALL") != null' <<<"$hc" >/dev/null || fail "$s: capabilities not dropped: $(jq -c .CapDrop <<<"$hc")"
  jq -e '.SecurityOpt // [] | index("no-new-privileges:true") != null' <<<"$hc" >/dev/null ||
    fail "$s: no no-new-privileges: $(jq -c .SecurityOpt <<<"$hc")"
  [ "$(jq -r .Memory <<<"$hc")" = "$mem" ] || fail "$s: memory limit $(jq -r .Memory <<<"$hc"), not $mem"
  jq -e '(.PidsLimit // 0) > 0' <<<"$hc" >/dev/null || fail "$s: no pids limit"
  jq -e '.Tmpfs // {} | has("/tmp")' <<<"$hc" >/dev/null || fail "$s: no tmpfs /tmp"
  # in force inside: the image's own writable folder refuses a write, /tmp takes one, and the
  # process has no capability in its bounding set and cannot gain privileges
  # (one docker exec per container: the checks' findings, then /proc/1/status; the writes in
  # subshells, since a failed redirection of `:` ends the shell it runs in)
  st=$(docker exec "$c" sh -c 'test -d "$1" || echo "e2e: no folder"
    if ( : >"$1/.e2e-probe" ) 2>/dev/null; then echo "e2e: wrote"; fi
    ( : >/tmp/.e2e-probe && rm /tmp/.e2e-probe ) 2>/dev/null || echo "e2e: no tmp"
    cat /proc/1/status' sh "$own") || fail "$s: cannot run its checks or read /proc/1/status"
  ! grep -q '^e2e: no folder$' <<<"$st" || fail "$s: no folder $own in its image"
  ! grep -q '^e2e: wrote$' <<<"$st" || fail "$s: wrote to its root filesystem ($own)"
  ! grep -q '^e2e: no tmp$' <<<"$st" || fail "$s: cannot write to /tmp"
  grep -q '^CapBnd:[[:space:]]*0*$' <<<"$st" || fail "$s: capabilities left: $(grep ^CapBnd <<<"$st")"
  grep -q '^NoNewPrivs:[[:space:]]*1$' <<<"$st" || fail "$s: NoNewPrivs is not set"
}
MiB=$((1024 * 1024))
n=0
for s in broker intake triage scheduling web tls prometheus alertmanager; do
  case $s in broker|web|prometheus) mem=$((512 * MiB)) ;; triage) mem=$((192 * MiB)) ;; tls|alertmanager) mem=$((128 * MiB)) ;; *) mem=$((256 * MiB)) ;; esac
  case $s in prometheus|alertmanager) own=/var/lib/prometheus ;; *) own=/var/lib/handoff ;; esac
  for c in $(cid "$s"); do hardened "$c" "$s" "$mem" "$own"; n=$((n + 1)); done
done
[ "$(cid triage | wc -l)" = 2 ] || fail "triage runs $(cid triage | wc -l) containers, not the file's 2"
echo "read-only, no capabilities, no-new-privileges, memory and pids limits, tmpfs /tmp: all $n containers; triage x2"
# The portal fetches the mailboxes of the clinics it hosts, which are the clinics the host CLI
# plays below: it waits, stopped, for its own step (4), so that 1-3 count what each clinic
# received from the host CLI's stores. Nothing was sent yet, so it fetched nothing.
compose stop tls web >/dev/null 2>&1 || fail "docker-compose stop tls web"

# Every referral in the list reaches a final status at its referring clinic: booked (ready),
# rejected or on hold (or, while UNDER_REVIEW_SETTLES=1, under review: triage could not place
# it and a reviewer decides). Prints the referring clinic's status --json of those referrals.
UNDER_REVIEW_SETTLES=0
settled_json() { # clinic: latest status of every referral it sent
  as "$1" --json status | jq -c 'if type == "array" then . else [.[]] | flatten end'
}
wait_settled() { # clinic, file with one referral id per line, timeout seconds
  local clinic=$1 ids=$2 deadline=$(($(now) + $3)) want got
  want=$(sort -u "$ids" | wc -l)
  while :; do
    got=$(settled_json "$clinic" | jq -r --argjson r "$UNDER_REVIEW_SETTLES" '.[] | select(.status == "ready" or .status == "rejected" or .status == "on-hold" or ($r == 1 and .status == "received" and .event == "review")) | .referral_id' |
          sort -u | comm -12 - <(sort -u "$ids") | wc -l)
    [ "$got" -ge "$want" ] && return 0
    [ "$(now)" -lt "$deadline" ] || fail "$clinic: only $got of $want referrals settled in time"
    sleep 0.5
  done
}
all_handoffs() { # every handoff received by every clinic, one JSON object per line (a clinic
  # revoked in step 5 has no key any more, and no handoff after it)
  for c in $(jq -r '.clinics[].id' "$SAMPLE/directory.json"); do
    [ -f "$K/$c.key" ] || continue
    as "$c" --json handoffs | jq -c --arg c "$c" 'if type == "array" then . else [.[]] | flatten end | .[] | . + {received_by: $c}'
  done
}

step "1. the sample referrals, end to end"
declare -A sent_by=()
: >"$E2E_DIR/work/submitted.jsonl"
for f in "$SAMPLE"/referrals/*.json; do
  c=$(jq -r .referrer.clinic_id "$f")
  as "$c" --json submit "$f" | jq -c --arg f "$(basename "$f")" --arg c "$c" '.[] | {referral_id, file: $f, clinic: $c}' \
    >>"$E2E_DIR/work/submitted.jsonl"
  sent_by[$c]=1
done
UNDER_REVIEW_SETTLES=1
for c in "${!sent_by[@]}"; do
  jq -r --arg c "$c" 'select(.clinic == $c) | .referral_id' "$E2E_DIR/work/submitted.jsonl" >"$E2E_DIR/work/ids.$c"
  wait_settled "$c" "$E2E_DIR/work/ids.$c" 120
done
# What triage could not place (16-needs-review-jaw.json) waits for the network's reviewer,
# over CURVE with a key of role reviewer: it decides physiotherapy, and the referral is booked.
r=$(jq -r 'select(.file == "16-needs-review-jaw.json") | .referral_id' "$E2E_DIR/work/submitted.jsonl")
deadline=$(($(now) + 60))
until as_reviewer --json review list | jq -e --arg r "$r" '.[] | select(.referral_id == $r and .state == "pending")' >/dev/null; do
  [ "$(now)" -lt "$deadline" ] || fail "$r did not reach the reviewer"
  sleep 0.5
done
as_reviewer --json review decide "$r" --as physio --reason "e2e: jaw dysfunction, physiotherapy" >/dev/null ||
  fail "the reviewer's decision on $r"
echo "the reviewer decided $r (under review: triage could not place it)"
UNDER_REVIEW_SETTLES=0
for c in "${!sent_by[@]}"; do wait_settled "$c" "$E2E_DIR/work/ids.$c" 120; done
n_samples=$(ls "$SAMPLE"/referrals/*.json | wc -l)
total=$(jq -r .referral_id "$E2E_DIR/work/submitted.jsonl" | sort -u | wc -l)
[ "$total" = "$n_samples" ] || fail "$total of $n_samples sample referrals accepted"
for c in "${!sent_by[@]}"; do settled_json "$c"; done | jq -c '.[]' >"$E2E_DIR/work/statuses.jsonl"
all_handoffs >"$E2E_DIR/work/handoffs.jsonl"
booked=$(jq -s '[.[] | select(.status == "ready") | .bookings | length] | add // 0' "$E2E_DIR/work/statuses.jsonl")
received=$(wc -l <"$E2E_DIR/work/handoffs.jsonl")
echo "$n_samples referrals settled: $(jq -r .status "$E2E_DIR/work/statuses.jsonl" | sort | uniq -c | xargs); $booked booking(s), $received handoff(s) received"
[ "$booked" -gt 0 ] || fail "no referral was booked"
[ "$received" = "$booked" ] || fail "$booked bookings but $received handoffs received"
# Each booking's handoff is in the inbox of the clinic it was booked at, exactly once.
expected=$(jq -r 'select(.status == "ready") | .referral_id as $r | .bookings[] | "\($r) \(.clinic_id) \(.discipline)"' \
           "$E2E_DIR/work/statuses.jsonl" | sort)
got=$(jq -r '"\(.referral_id) \(.received_by) \(.booking.discipline // .discipline)"' "$E2E_DIR/work/handoffs.jsonl" | sort)
[ "$expected" = "$got" ] || { diff <(echo "$expected") <(echo "$got") >&2; fail "handoffs differ from bookings"; }
# Red flags go to a physician, never to a therapist.
for f in 10-cauda-equina.json 11-cancer-night-pain.json; do
  r=$(jq -r --arg f "$f" 'select(.file == $f) | .referral_id' "$E2E_DIR/work/submitted.jsonl")
  st=$(jq -r --arg r "$r" 'select(.referral_id == $r) | .status' "$E2E_DIR/work/statuses.jsonl")
  [ "$st" = rejected ] || fail "red-flag referral $f is '$st', not rejected"
  if grep -qF "$r" "$E2E_DIR/work/handoffs.jsonl"; then fail "red-flag referral $f reached a clinic"; fi
done
echo "red-flag referrals rejected and handed to no clinic"
# A fever after surgery rules out massage, not physiotherapy (DOMAIN.md).
r=$(jq -r 'select(.file == "12-post-surgical-fever.json") | .referral_id' "$E2E_DIR/work/submitted.jsonl")
ok=$(jq -r --arg r "$r" 'select(.referral_id == $r) | .status == "ready" and ([.bookings[].discipline] | index("massage_therapy") == null)' \
  "$E2E_DIR/work/statuses.jsonl")
[ "$ok" = true ] || fail "12-post-surgical-fever.json: not booked for physiotherapy alone"

step "2. killing the broker in the middle of $STREAM submits"
stream_dir=$E2E_DIR/work/stream
mkdir -p "$stream_dir"
template=$SAMPLE/referrals/01-ankle-sprain.json
for i in $(seq -w 1 "$STREAM"); do jq --arg r "E2E-KILL-$i" '.ref = $r' "$template" >"$stream_dir/$i.json"; done
src=$(jq -r .referrer.clinic_id "$template")
accepted=$E2E_DIR/work/stream.accepted
: >"$accepted"
submitter() { # submits every file in order, retrying each until the broker accepts it
  local deadline=$(($(now) + 300)) out r
  for f in "$stream_dir"/*.json; do
    until out=$(as "$src" --timeout-ms 1000 --json submit "$f" 2>>"$E2E_DIR/work/stream.err") &&
          r=$(jq -r '.[0].referral_id // empty' <<<"$out") && [ -n "$r" ]; do
      [ "$(now)" -lt "$deadline" ] || { echo "submitter: gave up on $f" >&2; return 1; }
      sleep 0.2
    done
    echo "$r" >>"$accepted"
  done
}
submitter &
sub_pid=$!
wait_lines() { # file, count, timeout
  local deadline=$(($(now) + $3))
  until [ "$(wc -l <"$1")" -ge "$2" ]; do
    kill -0 "$sub_pid" 2>/dev/null || break
    [ "$(now)" -lt "$deadline" ] || fail "only $(wc -l <"$1") of $2 submits accepted in time"
    sleep 0.1
  done
}
broker=$(cid broker)
wait_lines "$accepted" $((STREAM / 3)) 120
docker kill "$broker" >/dev/null
echo "docker kill after $(wc -l <"$accepted") accepted"
until [ "$(docker inspect -f '{{.State.Running}}' "$broker")" = false ]; do sleep 0.1; done
compose start broker >/dev/null 2>&1
wait_healthy 60 "$broker"
wait_lines "$accepted" $((2 * STREAM / 3)) 120
restarts=$(docker inspect -f '{{.RestartCount}}' "$broker")
kill -9 "$(docker inspect -f '{{.State.Pid}}' "$broker")"   # a crash: the restart policy answers
echo "crashed (SIGKILL of its process) after $(wc -l <"$accepted") accepted"
deadline=$(($(now) + 60))
until [ "$(docker inspect -f '{{.RestartCount}}' "$broker")" -gt "$restarts" ]; do
  [ "$(now)" -lt "$deadline" ] || fail "the restart policy did not restart the broker"
  sleep 0.2
done
wait_healthy 60 "$broker"
wait "$sub_pid" || fail "the submitter did not finish"
sort "$accepted" | uniq -d | grep -q . && fail "a referral id was reported accepted twice"
n_acc=$(sort -u "$accepted" | wc -l)
[ "$n_acc" = "$STREAM" ] || fail "$n_acc of $STREAM stream referrals accepted"
# Exactly once: every accepted referral settled, and it has as many handoffs as bookings (none
# when it is on hold), with no booking handed off twice. Sets ready, missing and dups.
exactly_once() { # tag (the work files' suffix)
  wait_settled "$src" "$accepted" 240
  all_handoffs >"$E2E_DIR/work/handoffs$1.jsonl"
  settled_json "$src" | jq -c '.[]' >"$E2E_DIR/work/statuses$1.jsonl"
  dups=$(jq -r '"\(.referral_id) \(.booking.discipline // .discipline)"' "$E2E_DIR/work/handoffs$1.jsonl" | sort | uniq -d | wc -l)
  missing=0 ready=0
  local r b h keyed
  # a booking at a clinic revoked in step 5 is handed to a mailbox nobody may read: not counted
  keyed=$(for c in $(jq -r '.clinics[].id' "$SAMPLE/directory.json"); do [ ! -f "$K/$c.key" ] || echo "$c"; done |
          jq -Rsc 'split("\n") | map(select(length > 0))')
  while read -r r; do
    b=$(jq -r --arg r "$r" --argjson k "$keyed" 'select(.referral_id == $r) | if .status == "ready" then
          (.bookings | map(select(.clinic_id as $c | $k | index($c))) | length) else 0 end' \
        "$E2E_DIR/work/statuses$1.jsonl")
    h=$(grep -cF "\"$r\"" "$E2E_DIR/work/handoffs$1.jsonl" || true)
    [ -n "$b" ] && [ "$h" = "$b" ] || missing=$((missing + 1))
    # (an if, not `&&`: a last referral not booked would make the loop, and so this function,
    # return 1, and set -e end the test without a word)
    if [ -n "$b" ] && [ "$b" -gt 0 ]; then ready=$((ready + 1)); fi
  done < <(sort -u "$accepted")
}
exactly_once 2
echo "$STREAM accepted across two broker deaths: $ready booked, $missing without exactly one handoff per booking, $dups duplicate handoff(s)"
[ "$missing" = 0 ] && [ "$dups" = 0 ] || fail "accepted referrals were lost or duplicated"
[ "$ready" -gt 0 ] || fail "none of the stream was booked"

step "3. triage scaled to 3 (HANDOFF_TRIAGE_REPLICAS=3, up -d)"
export HANDOFF_TRIAGE_REPLICAS=3
compose up -d triage >"$E2E_DIR/scale.log" 2>&1 || { cat "$E2E_DIR/scale.log" >&2; fail "scale"; }
triages=$(compose ps -q triage | sort)
[ "$(echo "$triages" | wc -l)" = 3 ] || fail "expected 3 triage containers, got: $triages"
wait_healthy 90 $triages
scale_dir=$E2E_DIR/work/scale
mkdir -p "$scale_dir"
for i in $(seq -w 1 60); do jq --arg r "E2E-SCALE-$i" '.ref = $r' "$template" >"$scale_dir/$i.json"; done
as "$src" --json submit "$scale_dir"/*.json | jq -r '.[].referral_id' >"$E2E_DIR/work/scale.ids"
wait_settled "$src" "$E2E_DIR/work/scale.ids" 120
busy=0
for t in $triages; do
  n=$(docker logs "$t" 2>&1 | grep -cFf "$E2E_DIR/work/scale.ids" || true)
  echo "triage container ${t:0:12}: $n of 60 referrals"
  if [ "$n" -gt 0 ]; then busy=$((busy + 1)); fi
done
[ "$busy" -ge 2 ] || fail "work reached only $busy triage container(s)"

step "4. the clinic portal over HTTPS (nginx in front of handoff-web, the network's certificate)"
# with `up -d` of the whole stack, as an upgrade does: it starts web and tls, and keeps the 3
# triage containers of the file's HANDOFF_TRIAGE_REPLICAS as they are
compose up -d >"$E2E_DIR/up2.log" 2>&1 || { cat "$E2E_DIR/up2.log" >&2; fail "docker-compose up -d (again)"; }
[ "$(compose ps -q triage | sort)" = "$triages" ] || fail "up -d changed the triage containers: $(compose ps -q triage | xargs)"
echo "up -d of the whole stack kept the 3 triage containers"
wait_healthy 90 $(cid web) $(cid tls)
W=https://localhost:$wport
CA=$K/tls/web.crt
[ -s "$CA" ] || fail "keys.sh made no portal certificate ($CA)"
hx() { curl -sS --max-time 20 --cacert "$CA" "$@"; }      # never -k: the certificate is checked
# the first user, made in the running stack as docs/OPERATIONS.md says (HANDOFF_WEB_ACCOUNTS of
# the service: no --accounts); the password on standard input
pw=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24)
printf '%s\n' "$pw" | compose exec -T web handoff-web user add e2e.desk --role front-desk --clinic "$src" \
  >"$E2E_DIR/work/useradd.log" 2>&1 || { cat "$E2E_DIR/work/useradd.log" >&2; fail "handoff-web user add in the web container"; }
users=$(compose exec -T web handoff-web user list 2>&1) || { echo "$users" >&2; fail "handoff-web user list"; }
grep -q "^e2e.desk .*front-desk .*active" <<<"$users" || fail "handoff-web user list in the web container does not show e2e.desk"
[ "$(hx "$W/healthz")" = ok ] || fail "GET $W/healthz through tls is not 'ok'"
hx "https://127.0.0.1:$wport/healthz" >/dev/null || fail "the certificate does not hold for 127.0.0.1"
[ "$(health "$(cid web)")" = healthy ] || fail "web is not healthy"
# TLS 1.2 at least, HSTS on every answer; plain HTTP on the port goes to HTTPS; /metrics and
# /readyz are for the compose network only (Prometheus scrapes web:8080, as from tls here)
hx --tlsv1.2 --tls-max 1.2 -o /dev/null "$W/healthz" || fail "the portal does not answer TLS 1.2"
# (the client allows TLS 1.1 at security level 0: only the server can refuse it)
if openssl s_client -connect "127.0.0.1:$wport" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' </dev/null >/dev/null 2>&1; then
  fail "the portal answers TLS 1.1"
fi
headers=$(hx -D - -o /dev/null "$W/login") || fail "GET $W/login"
grep -qi '^strict-transport-security: max-age=[1-9]' <<<"$headers" || fail "no HSTS header"
[ "$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$wport/")" = 301 ] ||
  fail "plain HTTP on the portal's port is not sent to HTTPS"
[ "$(hx -o /dev/null -w '%{http_code}' "$W/metrics")" = 404 ] || fail "/metrics is reachable from outside"
metrics=$(compose exec -T tls curl -fsS http://web:8080/metrics 2>&1) || { echo "$metrics" >&2; fail "GET web:8080/metrics"; }
grep -q "^handoff_web_mailbox_up{clinic=\"$src\"}" <<<"$metrics" ||
  fail "web:8080/metrics (Prometheus' target) has no mailbox of $src"
jar=$E2E_DIR/work/cookies.txt
rm -f "$jar"
[ "$(hx -o /dev/null -w '%{http_code}' --data-urlencode user=e2e.desk --data-urlencode password=wrong-password-0 "$W/login")" = 401 ] ||
  fail "a wrong password is not refused"
code=$(hx -c "$jar" -D "$E2E_DIR/work/login.headers" -o /dev/null -w '%{http_code}' \
       --data-urlencode user=e2e.desk --data-urlencode password="$pw" "$W/login")
[ "$code" = 303 ] || fail "POST /login answered $code, not 303"
cookie=$(grep -i '^set-cookie: hx_session=' "$E2E_DIR/work/login.headers" | tr -d '\r')
[ -n "$cookie" ] || fail "no hx_session cookie at sign-in"
for attr in Secure HttpOnly SameSite=Strict; do
  grep -qiE "; *$attr(;|\$)" <<<"$cookie" || fail "the session cookie is not $attr: $cookie"
done
page=$E2E_DIR/work/inbox.html
code=$(hx -b "$jar" -o "$page" -w '%{http_code}' "$W/")
[ "$code" = 200 ] || fail "GET / after sign-in answered $code"
grep -qE '<h1>(New|Needs reply|Pending booking|Booked|In care|Declined|Completed)</h1>' "$page" ||
  fail "GET / is not the inbox (no folder title)"
echo "signed in over HTTPS as e2e.desk ($src, front-desk); the inbox came back ($(grep -oE '<h1>[^<]*</h1>' "$page" | head -1))"
# a referral sent now reaches the portal: its referrer finds it (search is a form post with
# the session's CSRF token)
jq --arg r "E2E-PORTAL-1" '.ref = $r' "$template" >"$E2E_DIR/work/portal.json"
r=$(as "$src" --json submit "$E2E_DIR/work/portal.json" | jq -r '.[0].referral_id')
[ -n "$r" ] && [ "$r" != null ] || fail "the portal's referral was not accepted"
deadline=$(($(now) + 60))
while :; do
  hx -b "$jar" -o "$page" "$W/" || true
  csrf=$(grep -oE 'name="csrf" value="[^"]+"' "$page" | head -1 | sed -E 's/.*value="([^"]+)"/\1/' || true)
  [ -n "$csrf" ] || fail "the inbox has no CSRF token"
  hx -b "$jar" -o "$page" --data-urlencode csrf="$csrf" --data-urlencode q="$r" "$W/" || true
  grep -qF "href=\"/referral?id=$r\"" "$page" && break      # a row of the results, not the query
  [ "$(now)" -lt "$deadline" ] || fail "$r did not reach $src's inbox in the portal"
  sleep 1
done
echo "$r, sent by $src from the CLI, is in $src's inbox in the portal"
# the FHIR API through the same nginx: a client made in the running stack (docs/FHIR.md), a
# token over HTTPS, and the referral just sent as a ServiceRequest of its referrer
secret=$(compose exec -T web handoff-web client add e2e-emr --clinic "$src" 2>"$E2E_DIR/work/client.log" | tail -n 1 | tr -d '\r')
[ "${#secret}" = 43 ] || { cat "$E2E_DIR/work/client.log" >&2; fail "handoff-web client add in the web container printed no secret"; }
token=$(hx -u "e2e-emr:$secret" -d grant_type=client_credentials "$W/fhir/r4/token" | jq -r .access_token)
[ "${#token}" = 43 ] || fail "POST $W/fhir/r4/token gave no access token"
[ "$(hx -o /dev/null -w '%{http_code}' "$W/fhir/r4/Task")" = 401 ] || fail "the FHIR API answers without a token"
[ "$(hx "$W/fhir/r4/metadata" | jq -r .fhirVersion)" = 4.0.1 ] || fail "GET $W/fhir/r4/metadata is not an R4 CapabilityStatement"
sr=$(hx -H "Authorization: Bearer $token" "$W/fhir/r4/ServiceRequest/$r") || fail "GET ServiceRequest/$r"
[ "$(jq -r '.resourceType + " " + .id' <<<"$sr")" = "ServiceRequest $r" ] ||
  fail "ServiceRequest/$r through the FHIR API: $(head -c 300 <<<"$sr")"
fullurl=$(hx -G -H "Authorization: Bearer $token" --data-urlencode "identifier=urn:handoff:ref|E2E-PORTAL-1" "$W/fhir/r4/ServiceRequest" |
  jq -r '.entry[0].fullUrl')
[ "$fullurl" = "$W/fhir/r4/ServiceRequest/$r" ] || fail "the FHIR search by ref gave $fullurl, not $W/fhir/r4/ServiceRequest/$r"
echo "the FHIR API over HTTPS: a token for e2e-emr ($src), $r as ServiceRequest, found by its ref at its public URL"

step "5. revoking a clinic: deploy/keys.sh revoke, then SIGHUP (docs/OPERATIONS.md)"
gone=laurier
[ "$gone" != "$src" ] || fail "the clinic to revoke is the stream's clinic"
as "$gone" inbox >/dev/null || fail "$gone cannot connect before it is revoked"
cp "$K/$gone.key" "$E2E_DIR/work/$gone.key"            # the clinic keeps its copy of the key
"$ROOT/deploy/keys.sh" revoke "$gone" --dir "$K" >"$E2E_DIR/revoke.log" 2>&1 ||
  { cat "$E2E_DIR/revoke.log" >&2; fail "keys.sh revoke"; }
compose kill -s HUP broker >/dev/null 2>&1 || fail "docker-compose kill -s HUP broker"
deadline=$(($(now) + 30))
until compose logs --no-color broker 2>&1 | grep -q "allow-list reloaded: .*removed clinic:$gone"; do
  [ "$(now)" -lt "$deadline" ] || { compose logs --no-color --tail=20 broker >&2; fail "the broker did not reload"; }
  sleep 0.2
done
if "$CLI" --broker "tcp://127.0.0.1:$port" --server-key "$K/broker.pub" --key "$E2E_DIR/work/$gone.key" \
   --home "$E2E_DIR/home" --clinic "$gone" --timeout-ms 700 inbox >/dev/null 2>&1; then
  fail "the revoked clinic $gone still connects"
fi
as "$src" inbox >/dev/null || fail "$src no longer connects after another clinic was revoked"
echo "$gone revoked: the broker's log names it, its key is refused, $src still works"

step "5b. a clinic added, a clinic's key rotated (deploy/keys.sh add, rotate --keep-old, revoke --old; SIGHUP)"
reload_broker() { # what the reload's log line must say
  local before
  before=$(compose logs --no-color broker 2>&1 | grep -c "allow-list reloaded" || true)
  compose kill -s HUP broker >/dev/null 2>&1 || fail "docker-compose kill -s HUP broker"
  deadline=$(($(now) + 30))
  until [ "$(compose logs --no-color broker 2>&1 | grep -c "allow-list reloaded")" -gt "$before" ]; do
    [ "$(now)" -lt "$deadline" ] || fail "the broker did not reload its allow-list"
    sleep 0.2
  done
  compose logs --no-color broker 2>&1 | grep "allow-list reloaded" | tail -1 | grep -q "$1" ||
    fail "the reload did not say '$1': $(compose logs --no-color broker 2>&1 | grep "allow-list reloaded" | tail -1)"
}
newc=e2e-new
"$ROOT/deploy/keys.sh" add "$newc" --dir "$K" >"$E2E_DIR/add.log" 2>&1 || { cat "$E2E_DIR/add.log" >&2; fail "keys.sh add"; }
reload_broker "added clinic:$newc"
as "$newc" inbox >/dev/null || fail "the added clinic $newc cannot connect"
rot=kitsilano
cp "$K/$rot.key" "$E2E_DIR/work/$rot.old.key"
"$ROOT/deploy/keys.sh" rotate "$rot" --keep-old --dir "$K" >"$E2E_DIR/rotate.log" 2>&1 ||
  { cat "$E2E_DIR/rotate.log" >&2; fail "keys.sh rotate --keep-old"; }
cmp -s "$K/$rot.key" "$E2E_DIR/work/$rot.old.key" && fail "keys.sh rotate left $rot's key as it was"
reload_broker "added clinic:$rot"
as "$rot" inbox >/dev/null || fail "$rot's new key is refused"
old_as() { "$CLI" --broker "tcp://127.0.0.1:$port" --server-key "$K/broker.pub" --key "$E2E_DIR/work/$rot.old.key" \
             --home "$E2E_DIR/home" --clinic "$rot" --timeout-ms 700 inbox >/dev/null 2>&1; }
old_as || fail "$rot's old key is refused while --keep-old keeps it"
"$ROOT/deploy/keys.sh" revoke "$rot" --old --dir "$K" >>"$E2E_DIR/rotate.log" 2>&1 ||
  { cat "$E2E_DIR/rotate.log" >&2; fail "keys.sh revoke --old"; }
reload_broker "removed clinic:$rot"
if old_as; then fail "$rot's old key still connects after revoke --old"; fi
as "$rot" inbox >/dev/null || fail "$rot's new key is refused after its old one was revoked"
echo "$newc added and connects; $rot rotated: both keys worked while --keep-old, then only the new one"

step "6. /metrics, /healthz and /readyz on the internal network metrics only"
t_mon=$(now)
[ "$(docker network inspect -f '{{.Internal}}' "${PROJECT}_metrics")" = true ] || fail "the network ${PROJECT}_metrics is not internal"
on_net() { docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$1"; }
published() { # a container's published ports, "PORT/tcp=HOSTIP:HOSTPORT" each
  docker inspect -f '{{json .NetworkSettings.Ports}}' "$1" |
    jq -r 'to_entries[] | select(.value != null) | .key as $p | .value[] | "\($p)=\(.HostIp):\(.HostPort)"' | sort -u | xargs
}
for s in broker intake triage scheduling web tls prometheus alertmanager; do
  case $s in
    broker) want="5555/tcp=127.0.0.1:$port" ;;
    tls) want="8443/tcp=127.0.0.1:$wport" ;;
    prometheus) want="9090/tcp=127.0.0.1:$pport" ;;
    alertmanager) want="9093/tcp=127.0.0.1:$aport" ;;
    *) want="" ;;
  esac
  for c in $(cid "$s"); do
    got=$(published "$c")
    [ "$got" = "$want" ] || fail "$s publishes '$got' on the host, not '${want:-nothing}'"
    case $s in
      tls) ;;
      prometheus|alertmanager) on_net "$c" | grep -qw "${PROJECT}_metrics" || fail "$s is not on the network metrics"
         if on_net "$c" | grep -qw "${PROJECT}_default"; then fail "$s is on the default network: it would scrape around metrics"; fi ;;
      *) on_net "$c" | grep -qw "${PROJECT}_metrics" || fail "$s is not on the network metrics" ;;
    esac
  done
done
# no container of the project publishes a program's metrics port, whatever its service
for c in $(compose ps -q); do
  if published "$c" | grep -qE '(^| )(9100|8080)/tcp='; then fail "$(docker inspect -f '{{.Name}}' "$c") publishes a metrics port: $(published "$c")"; fi
done
# and from the host, the published ports serve no /metrics: the broker's is ZeroMQ, the
# portal's HTTPS answers 404 (step 4); from the network metrics, the programs answer
compose exec -T prometheus curl -fsS -o /dev/null http://broker:9100/metrics || fail "broker:9100/metrics not reachable on the network metrics"
compose exec -T prometheus curl -fsS -o /dev/null http://web:8080/healthz || fail "web:8080/healthz not reachable on the network metrics"
echo "published: broker 5555, tls 8443, prometheus 9090 and alertmanager 9093, all on 127.0.0.1; no 9100 or 8080; metrics is internal"

step "7. the profile monitoring: Prometheus, its alert rules, Alertmanager, the Grafana dashboard"
P=http://127.0.0.1:$pport
papi() { curl -fsS --max-time 10 "$P/api/v1/$1"; }
pquery() { curl -fsS --max-time 10 -G --data-urlencode "query=$1" "$P/api/v1/query" 2>/dev/null; }
# every target up: the broker, the portal, and each replica of the services (found by DNS)
n_triage=$(cid triage | wc -l) n_intake=$(cid intake | wc -l)
want_targets="handoff-broker:1 handoff-intake:$n_intake handoff-scheduling:1 handoff-triage:$n_triage handoff-web:1"
deadline=$(($(now) + 90))
while :; do
  got_targets=$(papi targets | jq -r '[.data.activeTargets[] | select(.health == "up") | .labels.program] | group_by(.) |
                map("\(.[0]):\(length)") | join(" ")' || true)
  [ "$got_targets" = "$want_targets" ] && break
  [ "$(now)" -lt "$deadline" ] || fail "Prometheus' targets up: '$got_targets', not '$want_targets'"
  sleep 1
done
echo "targets up: $got_targets"
# every rule of alerts.yml loaded and evaluated without error
n_rules=$(grep -c '^ *- alert: ' "$ROOT/deploy/prometheus/alerts.yml")
deadline=$(($(now) + 60))
until [ "$(papi rules | jq '[.data.groups[].rules[] | select(.type == "alerting" and .health == "ok")] | length')" = "$n_rules" ]; do
  [ "$(now)" -lt "$deadline" ] || fail "not all $n_rules alert rules evaluated: $(papi rules | jq -c '[.data.groups[].rules[] | {name, health, lastError}]')"
  sleep 1
done
deadline=$(($(now) + 60))
until papi alertmanagers | jq -e '.data.activeAlertmanagers | map(.url) | any(test("alertmanager:9093"))' >/dev/null; do
  [ "$(now)" -lt "$deadline" ] || fail "Prometheus did not find alertmanager:9093"
  sleep 1
done
compose exec -T alertmanager amtool check-config /etc/handoff/alertmanager/alertmanager.yml >"$E2E_DIR/amtool.log" 2>&1 ||
  { cat "$E2E_DIR/amtool.log" >&2; fail "amtool check-config refused deploy/alertmanager/alertmanager.yml"; }
curl -fsS --max-time 10 "http://127.0.0.1:$aport/api/v2/status" | jq -e '.config.original | contains("operator-webhook")' >/dev/null ||
  fail "Alertmanager does not run deploy/alertmanager/alertmanager.yml"
echo "$n_rules alert rules loaded and evaluated; Alertmanager found by Prometheus, its configuration valid"
# the metric names of the scrape, and each expression's: handoff_* and Prometheus' own up
papi 'label/__name__/values' | jq -r '.data[]' >"$E2E_DIR/work/metric-names.txt"
names_in() { grep -oE '\b(handoff_[a-z0-9_]+|up)\b' <<<"$1" | sort -u; }
check_names() { # where, expression
  local n
  for n in $(names_in "$2"); do
    case $n in handoff_broker_raft_*) continue ;; esac   # a cluster node's only: checked in step 11
    grep -qx "$n" "$E2E_DIR/work/metric-names.txt" || fail "$1: '$n' is not a metric of the scrape: $2"
  done
}
parses() { pquery "$1" | jq -e '.status == "success"' >/dev/null; }
# every alert expression (as alerts.yml has it: Prometheus' rules API) parses as a query
papi rules | jq -r '.data.groups[].rules[] | select(.type == "alerting") | "\(.name)\t\(.query)"' >"$E2E_DIR/work/alert-exprs.tsv"
[ "$(wc -l <"$E2E_DIR/work/alert-exprs.tsv")" = "$n_rules" ] || fail "the rules API lists $(wc -l <"$E2E_DIR/work/alert-exprs.tsv") alerts, alerts.yml $n_rules"
while IFS=$'\t' read -r name expr; do
  parses "$expr" || fail "alert $name: the query does not parse: $expr"
  check_names "alert $name" "$expr"
done <"$E2E_DIR/work/alert-exprs.tsv"
# every query of every panel of the dashboard returns data ($__rate_interval as Grafana would
# make it of a 15 s scrape interval: 1m)
dash=$ROOT/deploy/grafana/handoff.json
jq -r '.panels[] | select(.type != "row") | .title as $t | .targets[] | "\($t)\t\(.expr)"' "$dash" >"$E2E_DIR/work/panel-exprs.tsv"
n_exprs=$(wc -l <"$E2E_DIR/work/panel-exprs.tsv")
[ "$n_exprs" -ge 20 ] || fail "the dashboard has $n_exprs queries"
[ "$(jq '[.panels[] | select(.type != "row") | select(.datasource.uid != "${datasource}")] | length' "$dash")" = 0 ] ||
  fail "a panel of the dashboard does not use the datasource variable"
deadline=$(($(now) + 90))
while IFS=$'\t' read -r title expr; do
  q=${expr//\$__rate_interval/1m}
  check_names "panel '$title'" "$q"
  until pquery "$q" | jq -e '.status == "success" and (.data.result | length > 0)' >/dev/null; do
    parses "$q" || fail "panel '$title': the query does not parse: $q"
    [ "$(now)" -lt "$deadline" ] || fail "panel '$title': no data for $q"
    sleep 1
  done
done <"$E2E_DIR/work/panel-exprs.tsv"
echo "the dashboard's $n_exprs queries ($(jq '[.panels[] | select(.type != "row")] | length' "$dash") panels) all return data; its and the $n_rules alerts' metric names all in the scrape"
echo "(steps 6 and 7: $(($(now) - t_mon)) s)"

step "8. an online backup while the stack serves (profile ops: docker-compose run --rm backup), checked and restored"
export HANDOFF_BACKUP_DIR=$E2E_DIR/backups
rm -rf "$HANDOFF_BACKUP_DIR"
install -d -m 0700 -o 10001 -g 10001 "$HANDOFF_BACKUP_DIR"   # the image's user handoff writes there
src=$(jq -r .referrer.clinic_id "$SAMPLE/referrals/01-ankle-sprain.json")
jq '.ref = "E2E-DURING-BACKUP"' "$SAMPLE/referrals/01-ankle-sprain.json" >"$E2E_DIR/work/during-backup.json"
as "$src" --json submit "$E2E_DIR/work/during-backup.json" >"$E2E_DIR/work/during-backup.out" 2>&1 &
during=$!
compose --profile ops run --rm backup >"$E2E_DIR/backup.log" 2>&1 || { cat "$E2E_DIR/backup.log" >&2; fail "the backup service"; }
wait "$during" || { cat "$E2E_DIR/work/during-backup.out" >&2; fail "a submit while the backup ran"; }
mapfile -t bundles < <(ls "$HANDOFF_BACKUP_DIR"/handoff-*.hxb 2>/dev/null)
[ "${#bundles[@]}" = 1 ] || fail "the backup wrote ${#bundles[@]} bundles in $HANDOFF_BACKUP_DIR, not 1"
bundle=${bundles[0]}
[ "$(stat -c %a "$bundle")" = 600 ] || fail "$bundle is mode $(stat -c %a "$bundle"), not 0600"
for c in broker scheduling web; do                       # every program kept serving meanwhile
  [ "$(health "$(cid "$c")")" = healthy ] || fail "$c is not healthy after the backup"
done
"$CLI" admin restore --list "$bundle" --key "$K/data.key" >"$E2E_DIR/work/bundle.txt" ||
  fail "handoff admin restore --list $bundle"
for role in broker-log audit sqlite; do
  grep -q "^$role " "$E2E_DIR/work/bundle.txt" || { cat "$E2E_DIR/work/bundle.txt" >&2; fail "the bundle has no $role file"; }
done
for f in audit.jsonl scheduling.db intake.db web-accounts.db; do
  grep -q "/$f" "$E2E_DIR/work/bundle.txt" || { cat "$E2E_DIR/work/bundle.txt" >&2; fail "the bundle has no $f"; }
done
restored=$E2E_DIR/work/restored
rm -rf "$restored"
"$CLI" admin restore "$bundle" --key "$K/data.key" --data-key "$K/data.key" --into "$restored" \
  >"$E2E_DIR/work/restore.txt" || fail "handoff admin restore $bundle"
grep -q "every body opens with --data-key" "$E2E_DIR/work/restore.txt" ||
  { cat "$E2E_DIR/work/restore.txt" >&2; fail "the restored log was not checked with the data key"; }
# what the backup took is what had been accepted: each sample referral, in the restored
# scheduling database's referrals (ids in clear; the referral itself sealed)
sched_db=$(find "$restored" -name scheduling.db | head -1)
[ -n "$sched_db" ] || fail "no scheduling.db in the restored bundle"
n_ref=$(sqlite3 "file:$sched_db?mode=ro" 'SELECT count(*) FROM referrals')
[ "$n_ref" -ge "$n_samples" ] || fail "the restored scheduling.db holds $n_ref referrals, fewer than the $n_samples samples"
n_audit=0
while read -r f; do
  "$CLI" audit verify "$f" >/dev/null || fail "the restored audit log $f does not verify"
  n_audit=$((n_audit + 1))
done < <(find "$restored" -name audit.jsonl)
[ "$n_audit" = 2 ] || fail "$n_audit audit logs restored, not the broker's and scheduling's"
echo "bundle $(basename "$bundle") ($(stat -c %s "$bundle") bytes, 0600) taken while serving: $(grep -c '^[a-z-]* ' "$E2E_DIR/work/bundle.txt") files; restored, its log recovers with every body opening, $n_ref referrals in scheduling.db, both audit chains verify"

step "8b. an upgrade: a new image tag, the broker and the services recreated on it and their volumes (up -d)"
flat='if type == "array" then . else [.[]] | flatten end'
f01=$SAMPLE/referrals/01-ankle-sprain.json
c01=$(jq -r .referrer.clinic_id "$f01")
r01=$(jq -r 'select(.file == "01-ankle-sprain.json") | .referral_id' "$E2E_DIR/work/submitted.jsonl")
b01=$(jq -r --arg r "$r01" 'select(.referral_id == $r) | .bookings[0].clinic_id' "$E2E_DIR/work/statuses.jsonl")
handoffs_of() { as "$1" --json handoffs | jq --arg r "$2" "$flat"' | map(select(.referral_id == $r)) | length'; }
n_before=$(handoffs_of "$b01" "$r01")
[ "$n_before" -ge 1 ] || fail "$r01 had not reached $b01 before the upgrade"
old_ids=$(for s in broker intake triage scheduling; do cid "$s"; done | sort | xargs)
# a new release: the image under a new tag (as deploy/build-image.sh tags each version), named
# with HANDOFF_IMAGE as deploy/.env would, then up -d as OPERATIONS.md says: compose recreates
# what runs another image
NEXT_IMAGE=handoff:$VERSION-e2e-next
docker tag "$IMAGE" "$NEXT_IMAGE" || fail "docker tag $NEXT_IMAGE"
HANDOFF_IMAGE=$NEXT_IMAGE compose up -d --no-deps broker intake triage scheduling >"$E2E_DIR/upgrade.log" 2>&1 ||
  { cat "$E2E_DIR/upgrade.log" >&2; fail "docker-compose up -d with the new image"; }
new_ids=$(for s in broker intake triage scheduling; do cid "$s"; done | sort | xargs)
[ -n "$(comm -12 <(tr ' ' '\n' <<<"$old_ids") <(tr ' ' '\n' <<<"$new_ids"))" ] && fail "containers were not recreated"
for c in $new_ids; do
  [ "$(docker inspect -f '{{.Config.Image}}' "$c")" = "$NEXT_IMAGE" ] || fail "container $c does not run $NEXT_IMAGE"
done
[ "$(compose ps -q triage | wc -l)" = 3 ] || fail "the upgrade did not keep triage's 3 replicas"
wait_healthy 120 $(cid broker) $(cid intake) $(cid scheduling) $(cid triage)
again=$(as "$c01" --json submit "$f01" | jq -r '.[0].referral_id') || fail "resubmitting $f01 after the upgrade"
[ "$again" = "$r01" ] || fail "$f01 resubmitted after the upgrade is $again, not $r01"
jq '.ref = "E2E-AFTER-UPGRADE"' "$f01" >"$E2E_DIR/work/after-upgrade.json"
ru=$(as "$c01" --json submit "$E2E_DIR/work/after-upgrade.json" | jq -r '.[0].referral_id') ||
  fail "a new referral after the upgrade"
# settled: booked, or on hold when the calendar the earlier steps filled has no slot left
settled_status() { # as-function clinic referral: "ready", "on-hold" or ""
  "$1" "$2" --json status | jq -r --arg r "$3" "$flat"' | map(select(.referral_id == $r and
    (.status == "ready" or .status == "on-hold")) | .status) | first // ""'
}
# The portal (step 4) fetches $c01's mailbox too, so each status lands in the CLI's store or in
# the portal's, never both (docs/OPERATIONS.md): the portal's is read as $c01's EMR would, the
# referral's parent Task through the FHIR API.
emr_secret=$(compose exec -T web handoff-web client add e2e-emr-upgrade --clinic "$c01" 2>"$E2E_DIR/work/client-upgrade.log" |
  tail -n 1 | tr -d '\r')
[ "${#emr_secret}" = 43 ] || { cat "$E2E_DIR/work/client-upgrade.log" >&2; fail "handoff-web client add for $c01"; }
emr_token=$(hx -u "e2e-emr-upgrade:$emr_secret" -d grant_type=client_credentials "$W/fhir/r4/token" | jq -r .access_token)
[ "${#emr_token}" = 43 ] || fail "no FHIR access token for $c01"
portal_settled() { # referral: "ready (in the portal)", "on-hold (in the portal)" or ""
  hx -H "Authorization: Bearer $emr_token" "$W/fhir/r4/Task/$1" 2>/dev/null |
    jq -r 'select(.status == "ready" or .status == "on-hold") | .status + " (in the portal)"' 2>/dev/null || true
}
deadline=$(($(now) + 120))
until st_u=$(settled_status as "$c01" "$ru") && [ -n "$st_u" ] || { st_u=$(portal_settled "$ru") && [ -n "$st_u" ]; }; do
  [ "$(now)" -lt "$deadline" ] || fail "$ru was not settled (booked or on hold) after the upgrade"
  sleep 0.5
done
n_after=$(handoffs_of "$b01" "$r01")
[ "$n_after" = "$n_before" ] || fail "$r01 reached $b01 $n_after times after the upgrade, $n_before before"
echo "recreated on their volumes: $r01 resubmitted is the same referral and not booked again; $ru went through ($st_u)"

step "9. the bundle restored into a new stack's volumes (deploy/restore-volumes.sh), which goes on exactly once"
# As on a new host: the first stack stopped, a project of its own with fresh volumes and ports.
compose stop >/dev/null 2>&1 || fail "docker-compose stop"
PROJECT2=$PROJECT-restored
port2=$(free_port) || fail "no free port found"
compose2() { COMPOSE_PROFILES= HANDOFF_PUBLISH=127.0.0.1:$port2 \
             docker-compose -p "$PROJECT2" -f "$ROOT/deploy/docker-compose.yml" "$@"; }
COMPOSE_PROJECT_NAME=$PROJECT2 COMPOSE_PROFILES= "$ROOT/deploy/restore-volumes.sh" "$bundle" \
  >"$E2E_DIR/restore-volumes.log" 2>&1 || { cat "$E2E_DIR/restore-volumes.log" >&2; fail "deploy/restore-volumes.sh"; }
COMPOSE_PROJECT_NAME=$PROJECT2 COMPOSE_PROFILES= "$ROOT/deploy/restore-volumes.sh" "$bundle" \
  >"$E2E_DIR/restore-again.log" 2>&1 && fail "deploy/restore-volumes.sh restored over volumes that hold data"
grep -q "already hold data" "$E2E_DIR/restore-again.log" ||
  { cat "$E2E_DIR/restore-again.log" >&2; fail "a second restore over the same volumes was not refused by name"; }
compose2 up -d broker intake triage scheduling >"$E2E_DIR/up-restored.log" 2>&1 ||
  { cat "$E2E_DIR/up-restored.log" >&2; fail "docker-compose up of the restored stack"; }
cid2() { compose2 ps -q "$1"; }
wait_healthy 120 $(cid2 broker) $(cid2 intake) $(cid2 scheduling) $(cid2 triage)
home2=$E2E_DIR/home2
rm -rf "$home2" && mkdir -p "$home2"
as2() { local c=$1; shift; "$CLI" --broker "tcp://127.0.0.1:$port2" --server-key "$K/broker.pub" --key "$K/$c.key" \
          --home "$home2" --clinic "$c" "$@"; }
# a referral accepted before the backup, submitted again by its clinic: the same referral
again=$(as2 "$c01" --json submit "$f01" | jq -r '.[0].referral_id') || fail "resubmitting $f01 to the restored stack"
[ "$again" = "$r01" ] || fail "$f01 resubmitted is $again, not $r01"
# a new one flows through the restored pipeline to its clinic, once
jq '.ref = "E2E-AFTER-RESTORE"' "$f01" >"$E2E_DIR/work/after-restore.json"
rn=$(as2 "$c01" --json submit "$E2E_DIR/work/after-restore.json" | jq -r '.[0].referral_id') ||
  fail "a new referral to the restored stack"
echo "$rn" >"$E2E_DIR/work/ids.after-restore"
deadline=$(($(now) + 120))
until st_n=$(settled_status as2 "$c01" "$rn") && [ -n "$st_n" ]; do
  [ "$(now)" -lt "$deadline" ] || fail "$rn was not settled (booked or on hold) by the restored stack"
  sleep 0.5
done
went="$st_n"
if [ "$st_n" = ready ]; then              # booked: its handoff reaches its clinic, once
  to=$(as2 "$c01" --json status | jq -r --arg r "$rn" "$flat"' | map(select(.referral_id == $r) | .bookings[]?.clinic_id) | first')
  [ -n "$to" ] && [ "$to" != null ] || fail "$rn: no booking's clinic in its status"
  n_to=0
  deadline=$(($(now) + 60))
  until [ "$n_to" -ge 1 ]; do
    n_to=$(as2 "$to" --json handoffs | jq --arg r "$rn" "$flat"' | map(select(.referral_id == $r)) | length')
    [ "$(now)" -lt "$deadline" ] || fail "$rn did not reach $to"
    [ "$n_to" -ge 1 ] || sleep 0.5
  done
  [ "$n_to" = 1 ] || fail "$rn reached $to $n_to times"
  went="booked and handed to $to once"
fi
# and the referral resubmitted was not booked again: at most the one handoff the backup held
for b in $(jq -r --arg r "$r01" 'select(.referral_id == $r) | .bookings[].clinic_id' "$E2E_DIR/work/statuses.jsonl" | sort -u); do
  n=$(as2 "$b" --json handoffs | jq --arg r "$r01" "$flat"' | map(select(.referral_id == $r)) | length')
  [ "$n" -le 1 ] || fail "$r01 reached $b $n times after the restore"
done
echo "restored into $PROJECT2: $r01 resubmitted is the same referral, not booked again; $rn went through ($went)"

step "9b. the data key rotated on the restored stack (deploy/rotate-data-key.sh): sealed anew, the old key opens nothing"
old_sum=$(sha256sum <"$K/data.key")
rotate() { COMPOSE_PROJECT_NAME=$PROJECT2 COMPOSE_PROFILES= HANDOFF_PUBLISH=127.0.0.1:$port2 \
             "$ROOT/deploy/rotate-data-key.sh" "$@"; }
rotate >"$E2E_DIR/rotate.log" 2>&1 || { cat "$E2E_DIR/rotate.log" >&2; fail "deploy/rotate-data-key.sh"; }
grep -Eq "Sealed [0-9]+ message\(s\) of the log" "$E2E_DIR/rotate.log" &&
  grep -Eq "[0-9]+ value\(s\) sealed again with the key of id" "$E2E_DIR/rotate.log" &&
  grep -q "$c01: [0-9]* value(s) sealed again" "$E2E_DIR/rotate.log" ||
  { cat "$E2E_DIR/rotate.log" >&2; fail "the rotation did not seal the broker's log, scheduling's database and $c01's portal store"; }
[ "$(sha256sum <"$K/data.key.old")" = "$old_sum" ] || fail "data.key.old is not the key the stack ran with"
[ "$(sha256sum <"$K/data.key")" != "$old_sum" ] || fail "data.key was not replaced"
[ ! -e "$K/data.key.new" ] && [ ! -e "$K/data.key.rotated" ] || fail "the rotation left data.key.new or data.key.rotated"
[ "$(stat -c '%a %u' "$K/data.key")" = "$(stat -c '%a %u' "$K/data.key.old")" ] ||
  fail "the new data.key's mode or owner differs from the old one's"
# the old key opens nothing: the broker refuses its log with it, scheduling its database (each
# bounded: one that started anyway would serve until stopped)
timeout 120 env COMPOSE_PROFILES= HANDOFF_PUBLISH=127.0.0.1:$port2 \
  docker-compose -p "$PROJECT2" -f "$ROOT/deploy/docker-compose.yml" run --rm --no-deps -T -v "$K/data.key.old:/run/old_data_key:ro" -e HANDOFF_DATA_KEY=/run/old_data_key \
  --entrypoint handoff-broker broker >"$E2E_DIR/old-key.log" 2>&1 && fail "the broker started with the old data key"
grep -q "does not open with this data key" "$E2E_DIR/old-key.log" ||
  { cat "$E2E_DIR/old-key.log" >&2; fail "the broker's refusal of the old key does not say why"; }
timeout 120 env COMPOSE_PROFILES= HANDOFF_PUBLISH=127.0.0.1:$port2 \
  docker-compose -p "$PROJECT2" -f "$ROOT/deploy/docker-compose.yml" run --rm --no-deps -T -v "$K/data.key.old:/run/old_data_key:ro" -e HANDOFF_DATA_KEY=/run/old_data_key \
  --entrypoint handoff-scheduling scheduling >"$E2E_DIR/old-key-sched.log" 2>&1 && fail "scheduling started with the old data key"
grep -q "is sealed with the data key of id" "$E2E_DIR/old-key-sched.log" ||
  { cat "$E2E_DIR/old-key-sched.log" >&2; fail "scheduling's refusal of the old key does not say why"; }
compose2 up -d broker intake triage scheduling >"$E2E_DIR/up-rotated.log" 2>&1 ||
  { cat "$E2E_DIR/up-rotated.log" >&2; fail "docker-compose up after the rotation"; }
wait_healthy 120 $(cid2 broker) $(cid2 intake) $(cid2 scheduling) $(cid2 triage)
again=$(as2 "$c01" --json submit "$f01" | jq -r '.[0].referral_id') || fail "resubmitting $f01 after the rotation"
[ "$again" = "$r01" ] || fail "$f01 resubmitted after the rotation is $again, not $r01"
jq '.ref = "E2E-AFTER-ROTATION"' "$f01" >"$E2E_DIR/work/after-rotation.json"
rr=$(as2 "$c01" --json submit "$E2E_DIR/work/after-rotation.json" | jq -r '.[0].referral_id') ||
  fail "a new referral after the rotation"
deadline=$(($(now) + 120))
until st_r=$(settled_status as2 "$c01" "$rr") && [ -n "$st_r" ]; do
  [ "$(now)" -lt "$deadline" ] || fail "$rr was not settled (booked or on hold) after the rotation"
  sleep 0.5
done
for b in $(jq -r --arg r "$r01" 'select(.referral_id == $r) | .bookings[].clinic_id' "$E2E_DIR/work/statuses.jsonl" | sort -u); do
  n=$(as2 "$b" --json handoffs | jq --arg r "$r01" "$flat"' | map(select(.referral_id == $r)) | length')
  [ "$n" -le 1 ] || fail "$r01 reached $b $n times after the rotation"
done
echo "rotated: the old key opens neither the broker's log nor scheduling's database; $r01 is the same referral; $rr went through ($st_r)"

step "10. the restored stack moved to PostgreSQL (deploy/docker-compose.postgres.yml: migrate, then on; pg-backup)"
# As docs/OPERATIONS.md says: the services stopped, the server started, the SQLite files of the
# volumes copied in (run --rm migrate), the services started on it. From here the restored
# project is run (and torn down) with both files.
PG_IMAGE=handoff-postgres:$VERSION
docker build -f "$ROOT/deploy/postgres/Dockerfile" -t "$PG_IMAGE" "$ROOT/deploy/postgres" >"$E2E_DIR/build-pg.log" 2>&1 ||
  { tail -20 "$E2E_DIR/build-pg.log" >&2; fail "the PostgreSQL image (deploy/postgres/Dockerfile)"; }
head -c 32 /dev/urandom | base64 >"$K/pg_password" && chmod 0644 "$K/pg_password"
compose2() { COMPOSE_PROFILES= HANDOFF_PUBLISH=127.0.0.1:$port2 HANDOFF_POSTGRES_IMAGE=$PG_IMAGE \
             docker-compose -p "$PROJECT2" -f "$ROOT/deploy/docker-compose.yml" \
             -f "$ROOT/deploy/docker-compose.postgres.yml" "$@"; }
compose2 stop intake scheduling >/dev/null 2>&1 || fail "stopping intake and scheduling"
compose2 up -d postgres >"$E2E_DIR/up-pg.log" 2>&1 || { cat "$E2E_DIR/up-pg.log" >&2; fail "docker-compose up postgres"; }
wait_healthy 90 $(cid2 postgres)
compose2 --profile ops run --rm migrate >"$E2E_DIR/migrate.log" 2>&1 ||
  { cat "$E2E_DIR/migrate.log" >&2; fail "docker-compose run --rm migrate"; }
grep -Eq "scheduling: [0-9]+ row\(s\)" "$E2E_DIR/migrate.log" && grep -q "scheduling.bookings" "$E2E_DIR/migrate.log" ||
  { cat "$E2E_DIR/migrate.log" >&2; fail "migrate did not copy scheduling"; }
grep -q "accounts.users" "$E2E_DIR/migrate.log" ||
  { cat "$E2E_DIR/migrate.log" >&2; fail "migrate did not copy the portal's accounts (web-accounts.db of web-data)"; }
psql_pg() { docker exec "$(cid2 postgres)" psql -h /tmp -U postgres -d handoff -Atc "$1"; }
moved=$(psql_pg "select count(*) from scheduling.referrals")
[ "$moved" -ge 1 ] || fail "no referral in PostgreSQL after migrate"
[ "$(psql_pg "select count(*) from accounts.users where name = 'e2e.desk'")" = 1 ] ||
  fail "the portal user of step 4 is not in accounts.users after migrate"
compose2 up -d intake scheduling >"$E2E_DIR/up-pg2.log" 2>&1 ||
  { cat "$E2E_DIR/up-pg2.log" >&2; fail "docker-compose up intake scheduling on PostgreSQL"; }
wait_healthy 120 $(cid2 intake) $(cid2 scheduling)
# the referral of the backup once more: the same one, and not booked again
again_pg=$(as2 "$c01" --json submit "$f01" | jq -r '.[0].referral_id') || fail "resubmitting $f01 on PostgreSQL"
[ "$again_pg" = "$r01" ] || fail "$f01 resubmitted on PostgreSQL is $again_pg, not $r01"
deadline=$(($(now) + 60))
until [ "$(psql_pg "select count(*) from intake.referrals where referral_id = '$r01'")" = 1 ]; do
  [ "$(now)" -lt "$deadline" ] || fail "$r01 is not in intake's record on PostgreSQL"
  sleep 0.5
done
[ "$(psql_pg "select count(*) from scheduling.referrals")" = "$moved" ] || fail "the resubmitted referral made a new one"
[ "$(psql_pg "select count(*) from scheduling.bookings b join scheduling.bookings c on b.therapist_id = c.therapist_id
  and b.referral_id < c.referral_id and b.status != 7 and c.status != 7 and b.start < c.start + c.minutes
  and c.start < b.start + b.minutes")" = 0 ] || fail "overlapping bookings on PostgreSQL"
# the portal's accounts on the same database, as `handoff-web user list` in the image reads them
# with the compose file's settings (the password from the secret's file). The portal itself is
# not started here: its service names the key of the clinic step 5 revoked, which an operator
# takes out of the compose file (tests/web/test_shared_accounts.py runs portals on PostgreSQL).
docker run --rm --network "${PROJECT2}_default" --user 10001:10001 --read-only --cap-drop ALL \
  -e PGHOST=postgres -e PGUSER=handoff -e PGDATABASE=handoff -e HANDOFF_DB_PASSWORD_FILE=/run/secrets/pg_password \
  -v "$K/pg_password:/run/secrets/pg_password:ro" --entrypoint "" "$IMAGE" \
  handoff-web user list --accounts postgresql:///handoff >"$E2E_DIR/work/users-pg.txt" 2>&1 ||
  { cat "$E2E_DIR/work/users-pg.txt" >&2; fail "handoff-web user list on PostgreSQL (the image, the password file)"; }
grep -q "e2e.desk" "$E2E_DIR/work/users-pg.txt" || { cat "$E2E_DIR/work/users-pg.txt" >&2; fail "e2e.desk not listed from PostgreSQL"; }
export HANDOFF_BACKUP_DIR=$E2E_DIR/pgbackups
rm -rf "$HANDOFF_BACKUP_DIR"
install -d -m 0700 -o 10001 -g 10001 "$HANDOFF_BACKUP_DIR"
compose2 --profile ops run --rm pg-backup >"$E2E_DIR/pg-backup.log" 2>&1 ||
  { cat "$E2E_DIR/pg-backup.log" >&2; fail "docker-compose run --rm pg-backup"; }
mapfile -t dumps < <(ls "$HANDOFF_BACKUP_DIR"/handoff-*.pgdump 2>/dev/null)
[ "${#dumps[@]}" = 1 ] || fail "pg-backup wrote ${#dumps[@]} dumps, not 1"
[ "$(stat -c %a "${dumps[0]}")" = 600 ] || fail "${dumps[0]} is mode $(stat -c %a "${dumps[0]}"), not 0600"
# the listing to a file first: grep -q ending a pipe early would kill pg_restore (pipefail)
docker run --rm --network none -v "$HANDOFF_BACKUP_DIR:/b:ro" --user 10001:10001 --entrypoint "" "$PG_IMAGE" \
  /usr/lib/postgresql/15/bin/pg_restore --list "/b/$(basename "${dumps[0]}")" >"$E2E_DIR/work/pg-dump-list.txt" ||
  fail "pg_restore --list of ${dumps[0]}"
grep -q "TABLE DATA scheduling bookings" "$E2E_DIR/work/pg-dump-list.txt" || fail "the dump lists no scheduling.bookings"
grep -q "TABLE DATA accounts users" "$E2E_DIR/work/pg-dump-list.txt" || fail "the dump lists no accounts.users"
echo "moved to PostgreSQL: $moved referral(s) and the portal's accounts (migrate), $r01 resubmitted is the same one, not booked again; handoff-web lists e2e.desk from it; pg-backup: one 0600 dump"

step "11. a replicated broker (deploy/docker-compose.ha.yml): the leader's container killed mid-stream"
# A third project on fresh volumes, the others stopped: three broker nodes, the services given
# the three, the host's CLI given the three published ports. The leader (read from each node's
# /metrics inside its container) is killed a third of the way into a stream of submits; another
# node must serve, and every referral acknowledged must be settled with one handoff per booking.
compose2 stop >/dev/null 2>&1 || true
STREAM_HA=${E2E_STREAM_HA:-60}
PROJECT3=$PROJECT-ha
hp1=$(free_port) && hp2=$(free_port) && hp3=$(free_port) || fail "no free port found"
until [ "$hp1" != "$hp2" ] && [ "$hp2" != "$hp3" ] && [ "$hp1" != "$hp3" ]; do hp3=$(free_port); hp2=$(free_port); done
compose3() { COMPOSE_PROFILES= HANDOFF_PUBLISH=127.0.0.1:$hp1 HANDOFF_PUBLISH2=127.0.0.1:$hp2 HANDOFF_PUBLISH3=127.0.0.1:$hp3 \
             docker-compose -p "$PROJECT3" -f "$ROOT/deploy/docker-compose.yml" -f "$ROOT/deploy/docker-compose.ha.yml" "$@"; }
cid3() { compose3 ps -q "$1"; }
compose3 up -d broker broker2 broker3 intake triage scheduling >"$E2E_DIR/up-ha.log" 2>&1 ||
  { cat "$E2E_DIR/up-ha.log" >&2; fail "docker-compose up of the HA stack"; }
wait_healthy 120 $(cid3 broker) $(cid3 broker2) $(cid3 broker3) $(cid3 intake) $(cid3 scheduling) $(cid3 triage)
serving_node() { # the compose service of the node that serves now
  local n m
  for n in broker broker2 broker3; do
    # (read whole first: grep -q in the pipe stops reading at the line, and under pipefail the
    # writer's SIGPIPE made a serving node look as if it did not)
    m=$(docker exec "$(cid3 "$n")" curl -fsS http://127.0.0.1:9100/metrics 2>/dev/null) || continue
    grep -qx 'handoff_broker_raft_serving 1' <<<"$m" && { echo "$n"; return 0; }
  done
  return 1
}
deadline=$(($(now) + 60))
until lead=$(serving_node); do
  [ "$(now)" -lt "$deadline" ] || fail "no broker node of the HA stack serves"
  sleep 0.5
done
HA_LIST=tcp://127.0.0.1:$hp1,tcp://127.0.0.1:$hp2,tcp://127.0.0.1:$hp3
mkdir -p "$E2E_DIR/home3"
as() { # from here on: the host CLI as that clinic, given the three nodes
  local c=$1; shift
  "$CLI" --broker "$HA_LIST" --server-key "$K/broker.pub" --key "$K/$c.key" --home "$E2E_DIR/home3" --clinic "$c" "$@"
}
stream_dir=$E2E_DIR/work/stream-ha
mkdir -p "$stream_dir"
for i in $(seq -w 1 "$STREAM_HA"); do jq --arg r "E2E-HA-$i" '.ref = $r' "$template" >"$stream_dir/$i.json"; done
accepted=$E2E_DIR/work/stream-ha.accepted
: >"$accepted"
submitter &
sub_pid=$!
wait_lines "$accepted" $((STREAM_HA / 3)) 180
docker kill "$(cid3 "$lead")" >/dev/null
killed_at=$(now)
echo "docker kill of the leader ($lead) after $(wc -l <"$accepted") accepted"
deadline=$(($(now) + 30))
until next=$(serving_node) && [ "$next" != "$lead" ]; do
  [ "$(now)" -lt "$deadline" ] || fail "no other node served within 30 s of the leader's death"
  sleep 0.2
done
echo "$next serves $(($(now) - killed_at)) s after"
compose3 start "$lead" >/dev/null 2>&1 || fail "starting $lead again"
wait_healthy 60 "$(cid3 "$lead")"
wait "$sub_pid" || fail "the submitter did not finish"
sort "$accepted" | uniq -d | grep -q . && fail "a referral id was reported accepted twice"
n_acc=$(sort -u "$accepted" | wc -l)
[ "$n_acc" = "$STREAM_HA" ] || fail "$n_acc of $STREAM_HA referrals accepted"
exactly_once -ha
echo "$STREAM_HA accepted across the leader's death: $ready booked, $missing without exactly one handoff per booking, $dups duplicate handoff(s)"
[ "$missing" = 0 ] && [ "$dups" = 0 ] || fail "accepted referrals were lost or duplicated"
[ "$ready" -gt 0 ] || fail "none of the stream was booked"
# the nodes proved the key derived from the broker's CURVE secret to each other, and none
# was refused (handoff_broker_raft_peers_refused_total 0 on each)
for n in broker broker2 broker3; do
  # (into a file first: grep -q stops reading at the line, near the top of a long log, and
  # under pipefail the writer's SIGPIPE would fail the check)
  compose3 logs --no-color "$n" >"$E2E_DIR/work/$n-ha.log" 2>/dev/null || true
  grep -q "prove a key derived from --curve-secret" "$E2E_DIR/work/$n-ha.log" ||
    fail "$n does not say its Raft connections are authenticated"
  refused=$(docker exec "$(cid3 "$n")" curl -fsS http://127.0.0.1:9100/metrics |
            awk '$1 == "handoff_broker_raft_peers_refused_total" { print $2 }')
  [ "$refused" = 0 ] || fail "$n refused ${refused:-?} Raft connection(s) of its own cluster"
done
echo "the three nodes authenticated each other's Raft connections (none refused)"
# the replication alerts' metrics (skipped in step 7: a single broker has none) on a node
docker exec "$(cid3 broker)" curl -fsS http://127.0.0.1:9100/metrics >"$E2E_DIR/work/node-metrics.txt" ||
  fail "broker's /metrics"
for n in $(grep -E '^\s+expr:' "$ROOT/deploy/prometheus/alerts.yml" | grep -oE 'handoff_broker_raft_[a-z0-9_]+' | sort -u); do
  grep -q "^# TYPE $n " "$E2E_DIR/work/node-metrics.txt" || fail "alerts.yml uses $n, which a cluster node does not export"
done
echo "every handoff_broker_raft_* metric of the alert rules is exported by the nodes"

step "11b. the HA stack lost and brought back from one node's copy (profile ops: raft-backup, raft-recover)"
# As docs/OPERATIONS.md says, in Docker: referrals accepted and held (intake stopped), a
# caught-up follower stopped, copied (raft-backup) and started again; then every broker node
# and its volume lost; the copy made node 1's log (raft-recover), node 1 started and leading
# alone, broker2 and broker3 started on new volumes with HANDOFF_JOIN=1 and added by the
# operator (handoff cluster add --wait). The held referrals must each be booked exactly once.
export HANDOFF_BACKUP_DIR=$E2E_DIR/raftbackups
rm -rf "$HANDOFF_BACKUP_DIR"
install -d -m 0700 -o 10001 -g 10001 "$HANDOFF_BACKUP_DIR"   # the image's user handoff writes there
compose3 stop intake >/dev/null 2>&1 || fail "stopping intake"
held_dir=$E2E_DIR/work/held-ha
mkdir -p "$held_dir"
for i in 1 2 3 4 5; do jq --arg r "E2E-HELD-$i" '.ref = $r' "$template" >"$held_dir/$i.json"; done
accepted=$E2E_DIR/work/held-ha.accepted
as "$src" --json submit "$held_dir"/*.json | jq -r '.[].referral_id' >"$accepted" || fail "submitting the held referrals"
[ "$(sort -u "$accepted" | grep -c .)" = 5 ] || fail "$(grep -c . "$accepted") of 5 held referrals accepted"
# (a leader may stop serving for a moment when its lease is not renewed in time on a busy
# machine: it serves again at its next commit)
deadline=$(($(now) + 30))
until lead=$(serving_node); do
  [ "$(now)" -lt "$deadline" ] || fail "no node serves before the backup"
  sleep 0.5
done
case $lead in broker) copied=broker2 n=2 ;; *) copied=broker n=1 ;; esac
metric_of() { docker exec "$(cid3 "$1")" curl -fsS http://127.0.0.1:9100/metrics | awk -v m="$2" '$1 == m { print $2 }'; }
commit=$(metric_of "$lead" handoff_broker_raft_commit_index)
deadline=$(($(now) + 30))
until applied=$(metric_of "$copied" handoff_broker_raft_applied_index) && [ "${applied:-0}" -ge "$commit" ]; do
  [ "$(now)" -lt "$deadline" ] || fail "$copied did not catch up (applied ${applied:-?} of $commit)"
  sleep 0.2
done
compose3 stop "$copied" >/dev/null 2>&1 || fail "stopping $copied"
HANDOFF_RAFT_NODE=$n compose3 --profile ops run --rm -T raft-backup >"$E2E_DIR/raft-backup.log" 2>&1 ||
  { cat "$E2E_DIR/raft-backup.log" >&2; fail "raft-backup of node $n"; }
copy=$(sed -n 's/.* copied to \(raft-node[0-9]-[0-9TZ]*\) .*/\1/p' "$E2E_DIR/raft-backup.log")
[ -n "$copy" ] && [ -d "$HANDOFF_BACKUP_DIR/$copy" ] || { cat "$E2E_DIR/raft-backup.log" >&2; fail "raft-backup wrote no copy"; }
cat "$E2E_DIR/raft-backup.log"
compose3 start "$copied" >/dev/null 2>&1 || fail "starting $copied again"
# a node that runs is not copied (its LOCK): raft-backup refuses it
HANDOFF_RAFT_NODE=3 compose3 --profile ops run --rm -T raft-backup >"$E2E_DIR/raft-backup-live.log" 2>&1 &&
  fail "raft-backup copied node 3 while it ran"
grep -q "is running" "$E2E_DIR/raft-backup-live.log" ||
  { cat "$E2E_DIR/raft-backup-live.log" >&2; fail "raft-backup of a running node did not say why it refused"; }
echo "raft-backup refused node 3 while it ran: $(grep "is running" "$E2E_DIR/raft-backup-live.log")"
# every broker machine lost
compose3 rm -sf broker broker2 broker3 >/dev/null 2>&1 || fail "removing the broker containers"
docker volume rm "${PROJECT3}_broker-data" "${PROJECT3}_broker2-data" "${PROJECT3}_broker3-data" >/dev/null ||
  fail "removing the broker volumes"
# a copy that is no Raft log (an empty folder) is refused, and leaves broker-data as it was: the
# real recovery below would be refused if it did not ("holds a Raft log already")
install -d -m 0700 -o 10001 -g 10001 "$HANDOFF_BACKUP_DIR/raft-empty"
HANDOFF_RAFT_COPY=raft-empty compose3 --profile ops run --rm -T raft-recover >"$E2E_DIR/raft-recover-empty.log" 2>&1 &&
  fail "raft-recover took an empty copy"
grep -q "broker-data is as it was" "$E2E_DIR/raft-recover-empty.log" ||
  { cat "$E2E_DIR/raft-recover-empty.log" >&2; fail "raft-recover of an empty copy did not say it undid its copy"; }
echo "raft-recover refused an empty copy: $(grep -m1 "holds no Raft log" "$E2E_DIR/raft-recover-empty.log" | sed 's/.*--recover-cluster: //')"
HANDOFF_RAFT_COPY=$copy compose3 --profile ops run --rm -T raft-recover >"$E2E_DIR/raft-recover.log" 2>&1 ||
  { cat "$E2E_DIR/raft-recover.log" >&2; fail "raft-recover of $copy"; }
grep -q "alone" "$E2E_DIR/raft-recover.log" || { cat "$E2E_DIR/raft-recover.log" >&2; fail "raft-recover said nothing of node 1 alone"; }
compose3 up -d --no-deps broker >"$E2E_DIR/up-recovered.log" 2>&1 || { cat "$E2E_DIR/up-recovered.log" >&2; fail "starting node 1"; }
deadline=$(($(now) + 60))
until [ "$(serving_node)" = broker ]; do
  [ "$(now)" -lt "$deadline" ] || fail "the recovered node 1 does not serve alone"
  sleep 0.5
done
HANDOFF_JOIN=1 compose3 up -d --no-deps broker2 broker3 >>"$E2E_DIR/up-recovered.log" 2>&1 ||
  { cat "$E2E_DIR/up-recovered.log" >&2; fail "starting broker2 and broker3 with HANDOFF_JOIN=1"; }
ops() { "$CLI" --broker "$HA_LIST" --server-key "$K/broker.pub" --key "$K/ops.key" --home "$E2E_DIR/home3" --admin ops "$@"; }
prefix=${HANDOFF_RAFT_PREFIX:-10.250.7}
ops cluster add "2=$prefix.12:7001=tcp://broker2:5555" --wait || fail "cluster add 2"
ops cluster add "3=$prefix.13:7001=tcp://broker3:5555" --wait || fail "cluster add 3"
wait_healthy 120 "$(cid3 broker2)" "$(cid3 broker3)"    # (a node waiting to be added is not ready)
ops --json cluster status >"$E2E_DIR/work/cluster-status.json" || fail "cluster status"
voters=$(jq "[.nodes[] | select(.role == \"voter\")] | length" "$E2E_DIR/work/cluster-status.json")
[ "$voters" = 3 ] || { cat "$E2E_DIR/work/cluster-status.json" >&2; fail "$voters voters after the two were added, not 3"; }
compose3 start intake >/dev/null 2>&1 || fail "starting intake again"
exactly_once -held
echo "5 referrals held in the copy: $ready booked, $missing without exactly one handoff per booking, $dups duplicate handoff(s)"
[ "$missing" = 0 ] && [ "$dups" = 0 ] && [ "$ready" = 5 ] || fail "held referrals lost, duplicated or not booked after the recovery"

step "11c. the HA stack's data key rotated (deploy/rotate-data-key.sh --ha): every node's Raft log sealed anew"
# Referrals held by the cluster (intake stopped) across the rotation: every node stopped, its
# Raft log sealed with the new key in a one-off container of its own service, all started with
# the new key; the held referrals must then each be booked exactly once.
compose3 stop intake >/dev/null 2>&1 || fail "stopping intake"
for i in 1 2 3; do jq --arg r "E2E-ROTATED-HA-$i" '.ref = $r' "$template" >"$held_dir/rot-$i.json"; done
accepted=$E2E_DIR/work/rotated-ha.accepted
as "$src" --json submit "$held_dir"/rot-*.json | jq -r '.[].referral_id' >"$accepted" || fail "submitting before the rotation"
[ "$(sort -u "$accepted" | grep -c .)" = 3 ] || fail "$(grep -c . "$accepted") of 3 referrals accepted before the rotation"
COMPOSE_PROJECT_NAME=$PROJECT3 COMPOSE_PROFILES= HANDOFF_PUBLISH=127.0.0.1:$hp1 HANDOFF_PUBLISH2=127.0.0.1:$hp2 \
  HANDOFF_PUBLISH3=127.0.0.1:$hp3 "$ROOT/deploy/rotate-data-key.sh" --ha >"$E2E_DIR/rotate-ha.log" 2>&1 ||
  { cat "$E2E_DIR/rotate-ha.log" >&2; fail "deploy/rotate-data-key.sh --ha"; }
[ "$(grep -c "Sealed the Raft log in" "$E2E_DIR/rotate-ha.log")" = 3 ] ||
  { cat "$E2E_DIR/rotate-ha.log" >&2; fail "the rotation did not seal the three nodes' Raft logs"; }
compose3 up -d broker broker2 broker3 intake triage scheduling >"$E2E_DIR/up-rotated-ha.log" 2>&1 ||
  { cat "$E2E_DIR/up-rotated-ha.log" >&2; fail "docker-compose up of the HA stack after the rotation"; }
wait_healthy 120 $(cid3 broker) $(cid3 broker2) $(cid3 broker3) $(cid3 intake) $(cid3 scheduling) $(cid3 triage)
exactly_once -rotated-ha
echo "3 referrals held across the rotation: $ready booked, $missing without exactly one handoff per booking, $dups duplicate handoff(s)"
[ "$missing" = 0 ] && [ "$dups" = 0 ] && [ "$ready" = 3 ] || fail "held referrals lost, duplicated or not booked after the rotation"

step "passed in $(($(now) - started)) s"
