#!/bin/sh
# Prints the project's version, the VERSION of project() in CMakeLists.txt (e.g. 0.1.0): the
# tag of the image (handoff:VERSION), the default of deploy/docker-compose.yml's HANDOFF_IMAGE
# and the version in the SBOM. Usage: deploy/version.sh [REPOSITORY_ROOT]
set -eu
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
v=$(sed -n 's/^[[:space:]]*project([^)]*VERSION[[:space:]]\{1,\}\([0-9][0-9.]*\).*/\1/p' "$root/CMakeLists.txt" | head -n 1)
[ -n "$v" ] || { echo "version.sh: no 'project(... VERSION x.y.z ...)' in $root/CMakeLists.txt" >&2; exit 1; }
echo "$v"
