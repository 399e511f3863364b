#!/usr/bin/env bash
# Makes Docker usable for the end-to-end test (and tests/package/package.sh):
# deploy/bootstrap-docker.sh, with its logs and the pid of a dockerd it starts in $E2E_DIR,
# so that the test stops only an engine it started (docs/OPERATIONS.md, "Docker on a host
# without a registry").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
E2E_DIR=${E2E_DIR:-$ROOT/build/e2e}
exec "$ROOT/deploy/bootstrap-docker.sh" --state-dir "$E2E_DIR"
