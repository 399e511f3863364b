#!/usr/bin/env bash
# Builds the Handoff image from deploy/Dockerfile, tagged handoff:VERSION (VERSION: project()
# in CMakeLists.txt, deploy/version.sh; the default image of deploy/docker-compose.yml) and
# handoff:latest, and labelled with the OCI annotations
#   org.opencontainers.image.version   VERSION
#   org.opencontainers.image.revision  the commit (git rev-parse HEAD; "unknown" outside git)
#   org.opencontainers.image.created   the build's time, UTC (RFC 3339)
# With --monitoring it builds handoff-monitoring:VERSION (and :latest) too, from
# deploy/monitoring/Dockerfile (Prometheus and Alertmanager from Debian; the compose profile
# monitoring), with the same labels; with --postgres handoff-postgres:VERSION from
# deploy/postgres/Dockerfile (PostgreSQL from Debian; deploy/docker-compose.postgres.yml). Needs
# the base image debian:bookworm-slim (pulled, or made by deploy/bootstrap-docker.sh where no
# registry answers).
# Usage: deploy/build-image.sh [--monitoring] [--postgres] [--tag NAME]...
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '2,14s/^# \{0,1\}//p' "$0"; }
die() { echo "build-image.sh: $*" >&2; exit 2; }

monitoring=0 postgres=0 extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --monitoring) monitoring=1; shift ;;
    --postgres) postgres=1; shift ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a NAME[:TAG]"; extra+=(-t "$2"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
command -v docker >/dev/null || die "no docker here (deploy/bootstrap-docker.sh installs it from Debian)"

version=$("$ROOT/deploy/version.sh" "$ROOT")
revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null) || revision=unknown
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
labels=(--label "org.opencontainers.image.version=$version"
        --label "org.opencontainers.image.revision=$revision"
        --label "org.opencontainers.image.created=$created")

echo "build-image.sh: handoff:$version (revision $revision)"
docker build -f "$ROOT/deploy/Dockerfile" -t "handoff:$version" -t handoff:latest "${extra[@]}" \
  "${labels[@]}" --label "org.opencontainers.image.title=handoff" "$ROOT"
if [ "$monitoring" = 1 ]; then
  echo "build-image.sh: handoff-monitoring:$version"
  docker build -f "$ROOT/deploy/monitoring/Dockerfile" -t "handoff-monitoring:$version" \
    -t handoff-monitoring:latest "${labels[@]}" --label "org.opencontainers.image.title=handoff-monitoring" \
    "$ROOT/deploy/monitoring"
fi
if [ "$postgres" = 1 ]; then
  echo "build-image.sh: handoff-postgres:$version"
  docker build -f "$ROOT/deploy/postgres/Dockerfile" -t "handoff-postgres:$version" \
    -t handoff-postgres:latest "${labels[@]}" --label "org.opencontainers.image.title=handoff-postgres" \
    "$ROOT/deploy/postgres"
fi
echo "build-image.sh: done (version $version, revision $revision, created $created)"
