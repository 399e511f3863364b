#!/usr/bin/env bash
# The keys of a Handoff network, in one folder (the compose stack reads it as HANDOFF_KEYS):
#   broker.key/.pub, intake/triage/scheduling.key/.pub   CURVE key pairs of the broker and services
#   CLINIC.key/.pub for each clinic, ADMIN.key/.pub for each operator: each name's current pair
#   data.key            the key that seals message bodies in the broker's data directory
#   access/allow.txt    the broker's allow-list: each public key bound to the one session it may open
#   access/revoked.txt  every key revoked or rotated out: public key, role, name, date, why
#   tls/web.crt, tls/web.key  the clinic portal's HTTPS certificate (self-signed, for localhost,
#                       127.0.0.1 and each --web-host name) and its key, for the compose service tls
# The broker mounts only access/ (a folder, so a replaced allow.txt is seen at SIGHUP) and reads
# both files (--allow, --revoked). Secret keys are 0600; run as root, the secrets the containers
# read (the services', the data key, the clinics' and reviewers' that the portal hosts, the
# portal's TLS key) are given to uid 10001 (user handoff; HANDOFF_UID to change it).
#
# Nothing is ever overwritten, and a key in access/revoked.txt is never written to the
# allow-list again, by any command: revoked stays revoked.
set -euo pipefail

usage() {
  cat <<USAGE
usage: deploy/keys.sh DIR [--clinics "ID ..." | --directory FILE] [--admins "NAME ..."]
                       [--reviewers "NAME ..."] [--web-host "NAME ..."]
       deploy/keys.sh add NAME [--admin|--reviewer] [--dir DIR]
       deploy/keys.sh rotate NAME [--keep-old] [--dir DIR]
       deploy/keys.sh revoke NAME [--old] [--dir DIR]

  DIR                  a new network's keys, or more names for it: a key pair for the broker,
                       each service, each clinic and operator that has none, the allow-list,
                       the data key and the clinic portal's HTTPS certificate (tls/web.crt,
                       web.key; needs openssl). A name whose keys were revoked is skipped (use add).
    --clinics IDS      clinic ids, space separated
    --directory FILE   take the clinic ids from a directory.json [deploy/sample/directory.json]
    --admins NAMES     operators allowed the dead-letter commands [ops]
    --reviewers NAMES  clinicians who decide referrals triage could not place [review]
                       (handoff-scheduling --reviewers must name the same)
    --web-host NAMES   host names (or IP addresses) people reach the clinic portal at, space
                       separated: put in its TLS certificate tls/web.crt besides localhost and
                       127.0.0.1 (the first is its subject). A certificate already there is kept
                       (delete tls/web.crt and tls/web.key to make a new one)
  add NAME             a key pair for a new clinic (--admin: an operator; --reviewer: a clinician
                       of the network who decides referrals triage could not place) and its
                       allow-list line
  rotate NAME          a new key pair for NAME; its old key is revoked at once, or with
                       --keep-old stays allowed until 'revoke NAME --old' (time to move NAME over)
  revoke NAME          NAME's keys leave the allow-list for good and its key pair is deleted;
                       --old: only its keys other than the current one (after rotate --keep-old)
  --dir DIR            the keys folder of add, rotate and revoke [deploy/keys]

Then reload the broker: docker-compose -f deploy/docker-compose.yml kill -s HUP broker
The handoff CLI is taken from HANDOFF_CLI, then PATH, then build/services/cli/handoff, and
otherwise run from the image HANDOFF_IMAGE [handoff:VERSION, the project's version: deploy/version.sh].
USAGE
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVICES="intake triage scheduling"
die() { echo "keys.sh: $*" >&2; exit 2; }
valid_name() { [[ $1 =~ ^[A-Za-z0-9._-]{1,64}$ ]] || die "'$1' is not a valid name ([A-Za-z0-9._-], 1-64)"; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
cmd=init
case $1 in
  -h|--help) usage; exit 0 ;;
  add|rotate|revoke) cmd=$1; shift ;;
  -*) usage >&2; exit 2 ;;
esac

DIR="" name="" role_flag="" keep_old=0 old_only=0
clinics="" directory="$ROOT/deploy/sample/directory.json" admins="ops" reviewers="review" web_hosts=""
if [ "$cmd" = init ]; then
  DIR=$1; shift
  while [ $# -gt 0 ]; do
    case $1 in
      --clinics) [ $# -ge 2 ] || die "--clinics needs a value"; clinics=$2; shift 2 ;;
      --directory) [ $# -ge 2 ] || die "--directory needs a file"; directory=$2; shift 2 ;;
      --admins) [ $# -ge 2 ] || die "--admins needs a value"; admins=$2; shift 2 ;;
      --reviewers) [ $# -ge 2 ] || die "--reviewers needs a value"; reviewers=$2; shift 2 ;;
      --web-host) [ $# -ge 2 ] || die "--web-host needs a name"; web_hosts="$web_hosts $2"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) echo "keys.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
  done
  if [ -z "$clinics" ]; then
    [ -r "$directory" ] || die "--directory: cannot read '$directory'"
    clinics=$(jq -r '.clinics[].id' "$directory") || die "--directory: '$directory' has no .clinics[].id"
  fi
  for n in $clinics $admins $reviewers; do valid_name "$n"; done
  for h in $web_hosts; do
    [[ $h =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $h =~ ^[A-Fa-f0-9:]*:[A-Fa-f0-9:.]*$ ||
       $h =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$ ]] ||
      die "--web-host: '$h' is not a host name or IP address"
  done
else
  DIR=$ROOT/deploy/keys
  while [ $# -gt 0 ]; do
    case $1 in
      --dir) [ $# -ge 2 ] || die "--dir needs a folder"; DIR=$2; shift 2 ;;
      --admin) [ "$cmd" = add ] || die "--admin goes with add"; role_flag="admin"; shift ;;
      --reviewer) [ "$cmd" = add ] || die "--reviewer goes with add"; role_flag="reviewer"; shift ;;
      --keep-old) [ "$cmd" = rotate ] || die "--keep-old goes with rotate"; keep_old=1; shift ;;
      --old) [ "$cmd" = revoke ] || die "--old goes with revoke"; old_only=1; shift ;;
      -h|--help) usage; exit 0 ;;
      -*) echo "keys.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
      *) [ -z "$name" ] || die "$cmd takes one NAME, got '$name' and '$1'"; name=$1; shift ;;
    esac
  done
  [ -n "$name" ] || die "$cmd needs a NAME (see --help)"
  valid_name "$name"
  [ "$name" != broker ] || die "'broker' is the broker's own key: it is not in the allow-list; to replace it, make a
new network key (every peer needs the new broker.pub)"
  [ -d "$DIR" ] || die "--dir: '$DIR' is not a folder (make a network first: deploy/keys.sh DIR)"
fi

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
ACCESS=$DIR/access
ALLOW=$ACCESS/allow.txt
REVOKED=$ACCESS/revoked.txt
mkdir -p "$ACCESS"
chmod 0755 "$ACCESS"
if command -v flock >/dev/null 2>&1; then   # one keys.sh at a time on this folder (util-linux)
  exec 9>"$DIR/.keys.lock"
  flock 9 || die "cannot lock $DIR/.keys.lock"
fi

if [ -e "$DIR/allow.txt" ] && [ ! -e "$ALLOW" ]; then   # the layout before access/
  mv "$DIR/allow.txt" "$ALLOW"
  echo "keys.sh: moved $DIR/allow.txt to $ALLOW (the broker now mounts the folder $ACCESS)"
fi
[ -e "$ALLOW" ] || : >"$ALLOW"
if [ ! -e "$REVOKED" ]; then
  printf '%s\n' "# Keys revoked or rotated out by deploy/keys.sh: never allowed again (handoff-broker --revoked)." \
    "# <public key> <role> <name> <date, UTC> <revoked|rotated>" >"$REVOKED"
fi
chmod 0644 "$ALLOW" "$REVOKED"

if [ -n "${HANDOFF_CLI:-}" ]; then cli=("$HANDOFF_CLI")
elif command -v handoff >/dev/null 2>&1; then cli=(handoff)
elif [ -x "$ROOT/build/services/cli/handoff" ]; then cli=("$ROOT/build/services/cli/handoff")
else cli=(docker run --rm --user "$(id -u):$(id -g)" -v "$DIR:/keys"
          "${HANDOFF_IMAGE:-handoff:$("$ROOT/deploy/version.sh" "$ROOT" 2>/dev/null || echo latest)}" handoff)
fi
in_dir() { # the path of a file in DIR as the CLI sees it
  if [ "${cli[0]}" = docker ]; then echo "/keys/$1"; else echo "$DIR/$1"; fi
}

pub_of() { head -n1 "$DIR/$1.pub"; }
is_revoked() { awk -v k="$1" '$1 == k { found = 1 } END { exit !found }' "$REVOKED"; }
# the allow-list's lines (key role name) for NAME, one per line
lines_of() { awk -v n="$1" '$0 !~ /^[ \t]*#/ && NF == 3 && $3 == n' "$ALLOW"; }
listed() { awk -v k="$1" '$0 !~ /^[ \t]*#/ && $1 == k { found = 1 } END { exit !found }' "$ALLOW"; }
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# Rewrites the allow-list: without the keys in the file $1 (one per line), without any key of
# the revoked record, plus the lines in the file $2; atomically (a new file renamed over the
# old), which the broker sees through its folder mount.
write_allow() {
  local drop=$1 add=$2 tmp
  tmp=$(mktemp "$ACCESS/.allow.XXXXXX")
  awk 'FILENAME == ARGV[1] { if ($1 !~ /^#/ && NF) gone[$1] = 1; next }
       FILENAME == ARGV[2] { gone[$1] = 1; next }
       $0 ~ /^[ \t]*#/ || NF == 0 || !($1 in gone) { print }' "$REVOKED" "$drop" "$ALLOW" >"$tmp"
  cat "$add" >>"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$ALLOW"
}

# Records a key in the revoked record: key role name why.
record_revoked() {
  is_revoked "$1" || printf '%s %s %s %s %s\n' "$1" "$2" "$3" "$(now)" "$4" >>"$REVOKED"
}

keygen() { "${cli[@]}" --dir "$(in_dir "")" keygen "$1" >/dev/null; }

give_to_containers() {
  if [ "$(id -u)" = 0 ]; then
    local uid=${HANDOFF_UID:-10001} f
    # the portal (compose service web) hosts the clinics and reviewers with their own keys
    for f in broker intake triage scheduling data tls/web \
             $(awk '$0 !~ /^[ \t]*#/ && NF == 3 && ($2 == "clinic" || $2 == "reviewer") { print $3 }' "$ALLOW" | sort -u); do
      [ -e "$DIR/$f.key" ] && chown "$uid:$uid" "$DIR/$f.key"
    done
  fi
  return 0
}

# The clinic portal's HTTPS certificate, unless there is one: self-signed (ECDSA P-256, 825
# days, a server certificate, not a CA) for localhost, 127.0.0.1 and the --web-host names.
# The key is 0600 and never overwritten; a real certificate may be put in place of both.
tls_cert() {
  local crt=$DIR/tls/web.crt key=$DIR/tls/web.key names="" san="DNS:localhost,IP:127.0.0.1" cn h
  if [ -e "$crt" ] || [ -e "$key" ]; then
    [ -e "$crt" ] && [ -e "$key" ] || echo "keys.sh: only one of $crt and $key is there: the portal's HTTPS needs both" >&2
    [ -z "$web_hosts" ] || echo "keys.sh: --web-host: kept the portal's certificate already in $crt (delete $crt and $key for one with the new names)" >&2
    return 0
  fi
  if ! command -v openssl >/dev/null 2>&1; then
    echo "keys.sh: no openssl here: the portal's HTTPS certificate $crt was not made (install openssl, e.g. apt-get install openssl, and run keys.sh $DIR again)" >&2
    return 0
  fi
  for h in $web_hosts; do
    case " $names " in *" $h "*) continue ;; esac
    names="$names $h"
    if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then
      [ "$h" = 127.0.0.1 ] || san="$san,IP:$h"
    else
      [ "$h" = localhost ] || san="$san,DNS:$h"
    fi
  done
  cn=$(echo $names localhost | awk '{ print $1 }')
  mkdir -p "$DIR/tls"
  chmod 0755 "$DIR/tls"
  if ! (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
        -subj "/CN=$cn" -addext "subjectAltName=$san" -addext "basicConstraints=critical,CA:FALSE" \
        -addext "keyUsage=critical,digitalSignature" -addext "extendedKeyUsage=serverAuth" \
        -keyout "$work/web.key" -out "$work/web.crt") >"$work/openssl.log" 2>&1; then
    cat "$work/openssl.log" >&2
    die "openssl could not make the portal's certificate"
  fi
  chmod 0600 "$work/web.key"
  chmod 0644 "$work/web.crt"
  mv "$work/web.key" "$key"
  mv "$work/web.crt" "$crt"
  echo "keys.sh: made the portal's HTTPS certificate $crt (self-signed for $cn; ${san//,/, }) and its key $key"
  echo "  people's browsers trust it once it is imported (or put a real certificate and key in their place)"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$work/drop"
: >"$work/add"
reload_hint="reload the broker to apply it: docker-compose -f deploy/docker-compose.yml kill -s HUP broker"

case $cmd in
init)
  made=0 skipped=""
  want() { # name role: a key pair and its allow-list line, unless it has them or was revoked
    local n=$1 role=$2 key
    if [ ! -e "$DIR/$n.key" ]; then
      if [ "$role" != broker ] && awk -v n="$n" '$1 !~ /^#/ && $3 == n { f = 1 } END { exit !f }' "$REVOKED"; then
        skipped="$skipped $n"
        return 0
      fi
      keygen "$n"
      made=$((made + 1))
    fi
    [ "$role" = broker ] && return 0
    key=$(pub_of "$n")
    if is_revoked "$key"; then
      echo "keys.sh: $DIR/$n.pub is a revoked key: not allowed (remove $n.key and $n.pub, then: keys.sh add $n)" >&2
    elif ! listed "$key"; then
      printf '%s %s %s\n' "$key" "$role" "$n" >>"$work/add"
    fi
  }
  want broker broker
  for s in $SERVICES; do want "$s" service; done
  for c in $clinics; do want "$c" clinic; done
  for a in $admins; do want "$a" admin; done
  for a in $reviewers; do want "$a" reviewer; done
  [ -e "$DIR/data.key" ] || { "${cli[@]}" datakey "$(in_dir data.key)" >/dev/null; made=$((made + 1)); }
  before=$(grep -c -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$ALLOW" || true)
  write_allow "$work/drop" "$work/add"
  after=$(grep -c -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$ALLOW" || true)
  dropped=$((before + $(wc -l <"$work/add") - after))
  [ "$dropped" -le 0 ] || echo "keys.sh: left $dropped revoked key(s) out of the allow-list"
  for n in $skipped; do
    echo "keys.sh: $n: its keys were revoked; not given a new one (deploy/keys.sh add $n --dir $DIR does that)"
  done
  tls_cert
  give_to_containers
  echo "keys.sh: $made new key(s) in $DIR; allow-list $ALLOW has $after entries"
  ;;
add)
  [ ! -e "$DIR/$name.key" ] || { echo "keys.sh: $name already has a key pair in $DIR (rotate it instead)" >&2; exit 1; }
  role=clinic
  [ -z "$role_flag" ] || role=$role_flag
  case " $SERVICES " in *" $name "*) role=service ;; esac
  keygen "$name"
  key=$(pub_of "$name")
  printf '%s %s %s\n' "$key" "$role" "$name" >"$work/add"
  write_allow "$work/drop" "$work/add"
  give_to_containers
  echo "keys.sh: added $role $name: give it $DIR/$name.key and $DIR/broker.pub; $reload_hint"
  ;;
rotate)
  if [ ! -e "$DIR/$name.key" ] || [ ! -e "$DIR/$name.pub" ]; then
    echo "keys.sh: $name has no key pair in $DIR (add it instead)" >&2
    exit 1
  fi
  old=$(pub_of "$name")
  role=$(lines_of "$name" | awk -v k="$old" '$1 == k { print $2; exit }')
  [ -n "$role" ] || { echo "keys.sh: $name's current key is not in $ALLOW: nothing to rotate" >&2; exit 1; }
  mkdir "$work/old"
  mv "$DIR/$name.key" "$DIR/$name.pub" "$work/old/"
  if ! keygen "$name"; then
    mv "$work/old/$name.key" "$work/old/$name.pub" "$DIR/"
    echo "keys.sh: could not make a new key pair for $name; nothing changed" >&2
    exit 1
  fi
  printf '%s %s %s\n' "$(pub_of "$name")" "$role" "$name" >"$work/add"
  if [ "$keep_old" = 0 ]; then
    printf '%s\n' "$old" >"$work/drop"
    record_revoked "$old" "$role" "$name" rotated
  fi
  write_allow "$work/drop" "$work/add"
  give_to_containers
  if [ "$keep_old" = 0 ]; then
    echo "keys.sh: rotated $name: its old key is revoked; give it $DIR/$name.key; $reload_hint"
  else
    echo "keys.sh: rotated $name: old and new key both allowed; give it $DIR/$name.key, reload the broker, and once"
    echo "  $name uses the new key: deploy/keys.sh revoke $name --old --dir $DIR, and reload the broker again"
  fi
  ;;
revoke)
  current=""
  [ -e "$DIR/$name.pub" ] && current=$(pub_of "$name")
  lines_of "$name" >"$work/lines"
  if [ "$old_only" = 1 ]; then
    awk -v k="$current" '$1 != k' "$work/lines" >"$work/gone"
  else
    cp "$work/lines" "$work/gone"
    if [ -n "$current" ] && ! awk -v k="$current" '$1 == k { f = 1 } END { exit !f }' "$work/gone"; then
      role=clinic
      [ -z "$(lines_of "$name" | head -n1)" ] || role=$(lines_of "$name" | awk '{ print $2; exit }')
      printf '%s %s %s\n' "$current" "$role" "$name" >>"$work/gone"
    fi
  fi
  if [ ! -s "$work/gone" ]; then
    if [ "$old_only" = 1 ]; then echo "keys.sh: $name has no allowed key other than its current one" >&2
    else echo "keys.sh: $name has no key in $DIR or $ALLOW to revoke" >&2; fi
    exit 1
  fi
  why=revoked
  [ "$old_only" = 0 ] || why=rotated
  while read -r k r n; do
    record_revoked "$k" "$r" "$n" "$why"
    printf '%s\n' "$k" >>"$work/drop"
  done <"$work/gone"
  write_allow "$work/drop" "$work/add"
  [ "$old_only" = 1 ] || rm -f "$DIR/$name.key" "$DIR/$name.pub"
  echo "keys.sh: revoked $(wc -l <"$work/gone") key(s) of $name (recorded in $REVOKED); $reload_hint"
  ;;
esac
