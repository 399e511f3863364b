#!/usr/bin/env bash
# deploy/rotate-data-key.sh — a new data key for the compose stack: every store the data key
# seals is sealed anew with it, then the key file is replaced.
#
#   1. the stack stopped (docker-compose stop): the broker, scheduling and the portal hold
#      stores sealed with the data key ($HANDOFF_KEYS/data.key, the secret data_key);
#   2. $HANDOFF_KEYS/data.key.new made (32 random bytes in hexadecimal, 0600, with the owner of
#      data.key when run as root: the image's user reads it);
#   3. each store sealed anew, in its own service's container with the new key mounted beside
#      the old one: the broker's log (handoff-broker --rekey, broker-data; with --ha, each node's
#      Raft log: broker-data, broker2-data, broker3-data), scheduling's database
#      (handoff-scheduling --rekey, scheduling-data), and the store of every clinic the portal
#      hosts (handoff store rekey --new-data-key, each CLINIC.db in web-data, in the one-shot
#      service backup of the profile ops, which mounts it);
#   4. data.key kept as data.key.old (bundles made before are restored with it, and their
#      broker log opens only with it: keep it as long as them), data.key.new put in its place.
# Then `docker-compose -f deploy/docker-compose.yml up -d` starts the stack with the new key.
#
#   --ha   the stack with the replicated broker (deploy/docker-compose.ha.yml given after
#          docker-compose.yml): every node stopped and rekeyed, then all start with the new key
#
# Cut short or failed: run it again. It goes on with the same data.key.new; what is sealed with
# it already is said and left as it is ($HANDOFF_KEYS/data.key.rotated lists the stores done).
# Scheduling's database on PostgreSQL keeps its key (docs/OPERATIONS.md): refused here. The
# project is the one docker-compose uses (COMPOSE_PROJECT_NAME, or the folder name: deploy),
# and so are the keys (HANDOFF_KEYS, relative to deploy/, default deploy/keys).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }
HA=0
case ${1:-} in -h|--help) usage; exit 0 ;; --ha) HA=1 ;; "") ;; *) usage >&2; exit 2 ;; esac
[ $# -le 1 ] || { usage >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FILES=(-f "$ROOT/deploy/docker-compose.yml")
NODES=broker
if [ $HA = 1 ]; then
  FILES+=(-f "$ROOT/deploy/docker-compose.ha.yml")
  NODES="broker broker2 broker3"
fi
compose() { docker-compose "${FILES[@]}" "$@"; }
die() { echo "rotate-data-key.sh: $*" >&2; exit 1; }

KEYS=${HANDOFF_KEYS:-./keys}
case $KEYS in /*) ;; *) KEYS=$ROOT/deploy/$KEYS ;; esac
old=$KEYS/data.key new=$KEYS/data.key.new done_list=$KEYS/data.key.rotated
[ -f "$old" ] || die "$old: no data key there (HANDOFF_KEYS names the keys folder)"
has_done() { [ -f "$done_list" ] && grep -qx "$1" "$done_list"; }
mark_done() { echo "$1" >>"$done_list"; }

# run SERVICE COMMAND...: COMMAND in a one-off container of SERVICE (its volumes, secrets and
# environment), the new key (once made) at /run/new_data_key
run() {
  local service=$1
  shift
  local mount=()
  [ ! -f "$new" ] || mount=(-v "$new:/run/new_data_key:ro")
  compose --profile ops run --rm --no-deps -T "${mount[@]}" --entrypoint "$1" "$service" "${@:2}"
}

# scheduling on PostgreSQL keeps the key it was sealed with: after the swap it would not start
if ! has_done scheduling && ! run scheduling sh -c 'case "$HANDOFF_SCHEDULING_DB" in postgres*) exit 3 ;; esac'; then
  die "scheduling's database is on PostgreSQL, which keeps the key it was sealed with (docs/OPERATIONS.md, Service state on PostgreSQL): not rotated"
fi

echo "== stopping the stack"
compose stop >/dev/null 2>&1 || die "docker-compose stop failed"

if [ -f "$new" ]; then
  echo "== going on with $new (a rotation begun earlier)"
else
  echo "== making $new"
  rm -f "$done_list"
  (umask 077 && od -An -v -tx1 -N32 /dev/urandom | tr -d ' \n' >"$new.tmp" && echo >>"$new.tmp")
  [ "$(wc -c <"$new.tmp")" = 65 ] || { rm -f "$new.tmp"; die "could not make $new"; }
  mv "$new.tmp" "$new"
fi
[ "$(id -u)" != 0 ] || chown --reference="$old" "$new"

for node in $NODES; do
  if has_done "$node"; then
    echo "== $node's log: sealed with the new key already"
  else
    echo "== $node's log (handoff-broker --rekey)"
    run "$node" handoff-broker --rekey --new-data-key /run/new_data_key || die "$node's log: handoff-broker --rekey failed (above)"
    mark_done "$node"
  fi
done

if has_done scheduling; then
  echo "== scheduling's database: sealed with the new key already"
else
  echo "== scheduling's database (handoff-scheduling --rekey)"
  # a database that does not exist yet (scheduling never started) has nothing to seal
  if run scheduling sh -c 'test -e "$HANDOFF_SCHEDULING_DB"'; then
    run scheduling handoff-scheduling --rekey /run/new_data_key || die "scheduling's database: handoff-scheduling --rekey failed (above)"
  else
    echo "no database yet: nothing to seal"
  fi
  mark_done scheduling
fi

echo "== the portal's clinic stores (handoff store rekey)"
# in the one-shot service backup (profile ops), which mounts web-data and the data key: the
# portal's own container needs every hosted clinic's key secret, and a revoked one is gone
web=/var/lib/handoff/web
stores=$(run backup sh -c "cd $web && for f in *.db; do [ \"\$f\" = web-accounts.db ] || [ ! -f \"\$f\" ] || echo \"\${f%.db}\"; done") ||
  die "cannot list the portal's stores in web-data"
for clinic in $stores; do
  if has_done "web:$clinic"; then
    echo "$clinic: sealed with the new key already"
    continue
  fi
  run backup handoff --home "$web" --data-key /run/secrets/data_key --clinic "$clinic" store rekey \
    --new-data-key /run/new_data_key || die "the store of $clinic: handoff store rekey failed (above)"
  mark_done "web:$clinic"
done

echo "== the new key in place (the old one kept as data.key.old)"
[ ! -e "$KEYS/data.key.old" ] || mv "$KEYS/data.key.old" "$KEYS/data.key.old.$(date -u +%Y%m%dT%H%M%SZ)"
mv "$old" "$KEYS/data.key.old"
mv "$new" "$old"
rm -f "$done_list"
if [ $HA = 1 ]; then
  echo "rotated: start the stack with 'docker-compose -f deploy/docker-compose.yml -f deploy/docker-compose.ha.yml up -d'; keep"
else
  echo "rotated: start the stack with 'docker-compose -f deploy/docker-compose.yml up -d'; keep"
fi
echo "$KEYS/data.key.old as long as the backups made with it"
