#!/usr/bin/env bash
# ctest keys/build_context_refuses_keys: no key may reach an image layer. .dockerignore keeps
# deploy/keys (where deploy/keys.sh writes) and *.key out of the build context, and
# deploy/check-context.sh — the first step of deploy/Dockerfile, before anything is built —
# fails the build on any key material that gets into the context anyway, naming each file.
# Checked on a copy of the sources: clean, it passes; with keys.sh's folder, a key under
# another name, a data key or a PEM private key, it fails and names them. When a Docker engine
# and the debian:bookworm-slim image are here, the Dockerfile's check stage is built too
# (docker build --target context: seconds, no packages installed); otherwise that part is
# skipped, saying so (tests/e2e/e2e.sh runs it on the real build).
# Usage: build_context_refuses_keys.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=${1:?usage: $0 SOURCE_DIR BUILD_DIR}
BUILD=${2:?usage: $0 SOURCE_DIR BUILD_DIR}
CHECK=$SRC/deploy/check-context.sh
T=$(mktemp -d /tmp/handoff-context-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "context test: FAILED: $*" >&2; exit 1; }
step() { echo "== $*"; }
[ -r "$CHECK" ] || fail "no $CHECK"

# The sources as a build context: the files git tracks (or the tree without build folders).
fresh() {
  rm -rf "$T/ctx"
  mkdir "$T/ctx"
  if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$SRC" ls-files -z | (cd "$SRC" && tar --null -T - -cf - 2>/dev/null) | tar -xf - -C "$T/ctx"
  else
    (cd "$SRC" && tar --exclude=./build --exclude='./build-*' --exclude=./.git -cf - .) | tar -xf - -C "$T/ctx"
  fi
  [ -f "$T/ctx/deploy/Dockerfile" ] || fail "could not copy the sources"
}
refused() { # what: the check must fail and name every file given after it
  local what=$1; shift
  if sh "$CHECK" "$T/ctx" >"$T/out" 2>&1; then cat "$T/out" >&2; fail "$what: the check passed"; fi
  grep -q "refusing to build" "$T/out" || fail "$what: no clear message: $(cat "$T/out")"
  for f in "$@"; do grep -qF "  $f: " "$T/out" || { cat "$T/out" >&2; fail "$what: $f is not named"; }; done
}

step "the sources alone pass"
fresh
sh "$CHECK" "$T/ctx" >"$T/out" 2>&1 || { cat "$T/out" >&2; fail "the project's own files were taken for keys"; }

step "deploy/keys as keys.sh writes it is refused, every secret named"
HANDOFF_CLI=$BUILD/services/cli/handoff "$SRC/deploy/keys.sh" "$T/ctx/deploy/keys" --clinics "northpoint" \
  --admins ops >/dev/null
refused "deploy/keys" deploy/keys/broker.key deploy/keys/data.key deploy/keys/northpoint.key \
  deploy/keys/intake.key deploy/keys/ops.key

step "a key under another name, a data key, a PEM private key, a *_secret file"
fresh
"$BUILD/services/cli/handoff" --dir "$T" keygen x >/dev/null || fail "handoff keygen failed"
key=$(head -n1 "$T/x.key")
mkdir -p "$T/ctx/notes"
printf '%s\n' "$key" >"$T/ctx/notes/clinic.txt"
printf '%s\r\n' "$key" >"$T/ctx/notes/windows.txt"
printf '%064x\n' 7 >"$T/ctx/notes/sealing"
printf -- '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n' >"$T/ctx/notes/tls.pem"
echo hunter2 >"$T/ctx/notes/db_secret"
refused "keys under other names" notes/clinic.txt notes/windows.txt notes/sealing notes/tls.pem notes/db_secret

step ".dockerignore keeps keys.sh's folder and key files out; the Dockerfile checks before building"
grep -qx 'deploy/keys' "$SRC/.dockerignore" || fail ".dockerignore does not exclude deploy/keys"
grep -qxF '**/*.key' "$SRC/.dockerignore" || fail ".dockerignore does not exclude *.key"
grep -q '^RUN sh /src/deploy/check-context.sh /src$' "$SRC/deploy/Dockerfile" || fail "the Dockerfile does not run the check"
[ "$(grep -c '^COPY \. ' "$SRC/deploy/Dockerfile")" = 1 ] || fail "the Dockerfile copies the context more than once"
if grep -E '^COPY ' "$SRC/deploy/Dockerfile" | grep -v -e '^COPY \. /src$' -e '--from='; then
  fail "a COPY takes files from the context without the check"
fi

step "docker build of the check stage"
if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "no Docker engine here: skipped (tests/e2e/e2e.sh builds it)"
elif ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  echo "no debian:bookworm-slim image here: skipped (tests/e2e/setup.sh makes it)"
else
  fresh
  cp "$SRC/.dockerignore" "$T/ctx/"
  tag=handoff-context-check:$$
  docker build -q --target context -t "$tag" -f "$T/ctx/deploy/Dockerfile" "$T/ctx" >"$T/build.log" 2>&1 ||
    { cat "$T/build.log" >&2; fail "docker build of clean sources failed"; }
  docker image rm -f "$tag" >/dev/null 2>&1 || true
  printf '%s\n' "$key" >"$T/ctx/notes.txt"
  mkdir -p "$T/ctx/deploy/keys" && cp "$T/x.key" "$T/ctx/deploy/keys/x.key"   # .dockerignore drops this one
  # --force-rm: the classic builder would keep the failed step's container, holding the test key
  if docker build --force-rm --target context -t "$tag" -f "$T/ctx/deploy/Dockerfile" "$T/ctx" >"$T/build.log" 2>&1; then
    docker image rm -f "$tag" >/dev/null 2>&1 || true
    fail "docker build passed with a key in the context"
  fi
  grep -q "notes.txt: it holds a CURVE key" "$T/build.log" || { cat "$T/build.log" >&2; fail "docker build did not say why"; }
  if grep -q "deploy/keys/x.key" "$T/build.log"; then fail ".dockerignore let deploy/keys into the context"; fi
  docker image prune -f >/dev/null 2>&1 || true          # the failed build's layer held the test key
  docker builder prune -f >/dev/null 2>&1 || true
  echo "docker build: refused with a key in the context, passed without"
fi
echo "context test: passed"
