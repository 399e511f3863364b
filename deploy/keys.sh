#!/usr/bin/env bash
# Makes what a new Handoff network needs before its first start, in one folder:
#   broker.key/.pub, intake/triage/scheduling.key/.pub   CURVE key pairs of the broker and services
#   CLINIC.key/.pub for each clinic, ADMIN.key/.pub for each operator
#   allow.txt   the broker's allow-list: each public key bound to the one session it may open
#   data.key    the key that seals message bodies in the broker's data directory
# Secret keys are 0600. The containers run as uid 10001 (user handoff), so when run as root
# the secrets the containers read are given to that uid (HANDOFF_UID to change it).
# Existing files are never overwritten: rerun with new names to add clinics or operators.
set -euo pipefail

usage() {
  cat <<USAGE
usage: deploy/keys.sh DIR [--clinics "ID ..." | --directory FILE] [--admins "NAME ..."]

  DIR               where the keys go (created; the compose stack reads it as HANDOFF_KEYS)
  --clinics IDS     clinic ids, space separated
  --directory FILE  take the clinic ids from a directory.json [deploy/sample/directory.json]
  --admins NAMES    operators allowed the dead-letter commands [ops]

The handoff CLI is taken from HANDOFF_CLI, then PATH, then build/services/cli/handoff, and
otherwise run from the image HANDOFF_IMAGE [handoff:latest].
USAGE
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { usage >&2; exit 2; }
case $1 in -h|--help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
DIR=$1; shift
clinics="" directory="$ROOT/deploy/sample/directory.json" admins="ops"
while [ $# -gt 0 ]; do
  case $1 in
    --clinics) [ $# -ge 2 ] || { echo "keys.sh: --clinics needs a value" >&2; exit 2; }; clinics=$2; shift 2 ;;
    --directory) [ $# -ge 2 ] || { echo "keys.sh: --directory needs a file" >&2; exit 2; }; directory=$2; shift 2 ;;
    --admins) [ $# -ge 2 ] || { echo "keys.sh: --admins needs a value" >&2; exit 2; }; admins=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "keys.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
if [ -z "$clinics" ]; then
  [ -r "$directory" ] || { echo "keys.sh: --directory: cannot read '$directory'" >&2; exit 2; }
  clinics=$(jq -r '.clinics[].id' "$directory") ||
    { echo "keys.sh: --directory: '$directory' has no .clinics[].id" >&2; exit 2; }
fi
for name in $clinics $admins; do
  [[ $name =~ ^[A-Za-z0-9._-]{1,64}$ ]] || { echo "keys.sh: '$name' is not a valid name ([A-Za-z0-9._-], 1-64)" >&2; exit 2; }
done

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
if [ -n "${HANDOFF_CLI:-}" ]; then cli=("$HANDOFF_CLI")
elif command -v handoff >/dev/null 2>&1; then cli=(handoff)
elif [ -x "$ROOT/build/services/cli/handoff" ]; then cli=("$ROOT/build/services/cli/handoff")
else cli=(docker run --rm --user "$(id -u):$(id -g)" -v "$DIR:/keys" "${HANDOFF_IMAGE:-handoff:latest}" handoff)
fi
in_dir() { # the path of a file in DIR as the CLI sees it
  if [ "${cli[0]}" = docker ]; then echo "/keys/$1"; else echo "$DIR/$1"; fi
}

made=0
key() { # name: a key pair unless there is one
  if [ ! -e "$DIR/$1.key" ]; then "${cli[@]}" --dir "$(in_dir "")" keygen "$1" >/dev/null; made=$((made + 1)); fi
}
for s in broker intake triage scheduling; do key "$s"; done
for c in $clinics; do key "$c"; done
for a in $admins; do key "$a"; done
[ -e "$DIR/data.key" ] || { "${cli[@]}" datakey "$(in_dir data.key)" >/dev/null; made=$((made + 1)); }

# The allow-list is rebuilt from every key pair in DIR, so added clinics appear in it; the
# broker rereads it on SIGHUP (docker-compose kill -s HUP broker).
allow=$(mktemp "$DIR/.allow.XXXXXX")
for s in intake triage scheduling; do echo "$(cat "$DIR/$s.pub") service $s"; done >>"$allow"
for c in $clinics; do echo "$(cat "$DIR/$c.pub") clinic $c"; done >>"$allow"
for a in $admins; do echo "$(cat "$DIR/$a.pub") admin $a"; done >>"$allow"
if [ -e "$DIR/allow.txt" ]; then   # keep entries made earlier for names not given this time
  grep -vxF -f "$allow" "$DIR/allow.txt" >>"$allow" || true
fi
sort -s -u -k3,3 -k2,2 "$allow" -o "$allow"
chmod 0644 "$allow"
cat "$allow" >"$DIR/allow.txt"   # in place: a running broker's bind mount keeps seeing it
rm -f "$allow"

if [ "$(id -u)" = 0 ]; then
  uid=${HANDOFF_UID:-10001}
  chown "$uid:$uid" "$DIR"/{broker,intake,triage,scheduling}.key "$DIR/data.key"
fi
echo "keys.sh: $made new key(s) in $DIR; allow-list $DIR/allow.txt has $(wc -l <"$DIR/allow.txt") entries"
