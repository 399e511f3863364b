#!/usr/bin/env bash
# deploy/restore-volumes.sh BUNDLE — a compose stack's volumes from a backup bundle (made by the
# one-shot service backup, profile ops), for a new host or after `docker-compose down -v`.
#
#   1. `handoff admin restore` in the service backup: the bundle checked (its key is the data
#      key secret, as the backup used: HANDOFF_BACKUP_KEY names another) and restored into
#      $HANDOFF_BACKUP_DIR/restored-<UTC time>/ (the log recovered, every sealed body opened,
#      every SQLite file through integrity_check);
#   2. the restored files copied into the stack's volumes (made by the first step if missing),
#      as the image's user handoff, where each program looks: broker-data (the log and the
#      broker's audit series), intake-data, scheduling-data (its database and audit series),
#      web-data (the portal's accounts and its clinics' stores).
# Then `docker-compose -f deploy/docker-compose.yml up -d` starts the stack on them.
#
# BUNDLE must be in $HANDOFF_BACKUP_DIR (default deploy/backups), where the service backup
# writes. Refuses volumes that already hold data. The project is the one docker-compose uses
# (COMPOSE_PROJECT_NAME, or the folder name: deploy), and so are the keys (HANDOFF_KEYS).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }
case ${1:-} in -h|--help) usage; exit 0 ;; "") usage >&2; exit 2 ;; esac
[ $# = 1 ] || { usage >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FILE=$ROOT/deploy/docker-compose.yml
compose() { docker-compose -f "$FILE" "$@"; }
die() { echo "restore-volumes.sh: $*" >&2; exit 1; }

backups=${HANDOFF_BACKUP_DIR:-$ROOT/deploy/backups}
name=$(basename "$1")
[ -f "$backups/$name" ] || die "$backups/$name: no such bundle (it must be in HANDOFF_BACKUP_DIR, $backups)"
restored=restored-$(date -u +%Y%m%dT%H%M%SZ)

# the volumes must be new: restoring over a running network's data would mix two histories
errs=$(mktemp)
trap 'rm -f "$errs"' EXIT
full=$(compose --profile ops run --rm --entrypoint sh backup -c \
  'for d in /var/lib/handoff/data /var/lib/handoff/intake /var/lib/handoff/scheduling /var/lib/handoff/web; do
     [ -z "$(ls -A "$d")" ] || echo "$d"
   done' 2>"$errs") || die "cannot look into the project's volumes: $(tail -5 "$errs")"
[ -z "$full" ] || die "the project's volumes already hold data ($(echo $full)): restore on a new host, or after 'docker-compose down -v'"

echo "== checking and restoring $name into $backups/$restored"
compose --profile ops run --rm backup handoff admin restore "/backup/$name" --key /run/secrets/data_key \
  --data-key /run/secrets/data_key --into "/backup/$restored" || die "handoff admin restore failed (above)"

echo "== copying the restored files into the volumes"
compose --profile ops run --rm -e R="/backup/$restored" --entrypoint sh backup -ec '
  cp -a "$R/broker/." /var/lib/handoff/data/
  cp -a "$R/audit/broker/." /var/lib/handoff/data/
  [ ! -f "$R/db/intake.db" ] || cp -a "$R/db/intake.db" /var/lib/handoff/intake/
  [ ! -f "$R/db/scheduling.db" ] || cp -a "$R/db/scheduling.db" /var/lib/handoff/scheduling/
  [ ! -d "$R/audit/scheduling" ] || cp -a "$R/audit/scheduling/." /var/lib/handoff/scheduling/
  for f in "$R"/db/*.db; do
    case ${f##*/} in intake.db|scheduling.db) ;; *) cp -a "$f" /var/lib/handoff/web/ ;; esac
  done
  ls -A /var/lib/handoff/data /var/lib/handoff/intake /var/lib/handoff/scheduling /var/lib/handoff/web' ||
  die "copying into the volumes failed (above)"
echo "restored: start the stack with 'docker-compose -f deploy/docker-compose.yml up -d'; the restored"
echo "files stay in $backups/$restored (0600) until you delete them"
