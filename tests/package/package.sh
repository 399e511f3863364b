#!/usr/bin/env bash
# The Debian packages, installed for real: builds them (make package), installs handoff and
# handoff-cli with apt in a throwaway debian:bookworm-slim container (dependencies from the
# mirror), checks the data keys the install made (and that a reinstall keeps them), checks the
# units with systemd-analyze verify, runs every program's --help, runs the broker as its unit
# would (user handoff, its state directory, its keys handed over as credentials, bodies sealed,
# CURVE on 127.0.0.1) until it answers /readyz, then purges both packages and checks
# that nothing of them is left. The container is removed however the script ends.
#   tests/package/package.sh [BUILD]      (BUILD: the build directory, default build)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
IMAGE=debian:bookworm-slim
NAME=hx-pkgtest-$$-$RANDOM
started=$(date +%s)

die() { echo "package.sh: $*" >&2; exit 1; }
export E2E_DIR=$BUILD/package-docker    # tests/e2e/setup.sh: its logs, and dockerd's pid if it starts one
cleanup() {
  docker rm -f "$NAME" >/dev/null 2>&1 || true
  if [ -s "$E2E_DIR/dockerd.pid" ]; then   # stop the engine only if setup started it
    kill "$(cat "$E2E_DIR/dockerd.pid")" 2>/dev/null || true
    rm -f "$E2E_DIR/dockerd.pid"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make -C "$ROOT" package BUILD="$BUILD" >/dev/null || die "make package failed"
# Docker from Debian, an engine, the base image (made with debootstrap when no registry answers)
"$ROOT/tests/e2e/setup.sh" || die "no usable Docker"
shopt -s nullglob
debs=("$BUILD"/packages/handoff_*.deb)
clis=("$BUILD"/packages/handoff-cli_*.deb)
[ ${#debs[@]} = 1 ] && [ ${#clis[@]} = 1 ] || die "expected one handoff and one handoff-cli package in $BUILD/packages"

# the default bridge network: the container reaches the mirror, the host's ports stay apart
docker run -d --rm --name "$NAME" "$IMAGE" sleep 1200 >/dev/null
ct() { docker exec "$NAME" "$@"; }
docker cp "${debs[0]}" "$NAME:/tmp/" && docker cp "${clis[0]}" "$NAME:/tmp/"

echo "== apt install (dependencies from the mirror)"
ct sh -c 'apt-get update -qq && cd /tmp && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends ./handoff_*.deb ./handoff-cli_*.deb systemd curl procps >/dev/null' \
    || die "apt-get install failed"
ct getent passwd handoff >/dev/null || die "the user handoff was not made"
[ "$(ct stat -c %a:%U:%G /etc/handoff/keys)" = 750:root:handoff ] || die "/etc/handoff/keys: not 0750 root:handoff"
grep -q /etc/handoff/broker.env <<<"$(ct dpkg-query -W -f='${Conffiles}\n' handoff)" || die "broker.env is not a conffile"
# the data keys, made at install: 64 hexadecimal characters, root's alone, kept on reinstall
for k in /etc/handoff/keys/data.key /etc/handoff/keys/web/data.key; do
  [ "$(ct stat -c %a:%U "$k" 2>/dev/null)" = 600:root ] || die "$k: missing or not 0600 root"
  ct grep -Eqx '[0-9a-f]{64}' "$k" || die "$k: not one line of 64 hexadecimal characters"
done
[ "$(ct cat /etc/handoff/keys/data.key)" != "$(ct cat /etc/handoff/keys/web/data.key)" ] || die "the two data keys are the same"
before=$(ct sha256sum /etc/handoff/keys/data.key)
ct sh -c 'cd /tmp && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall ./handoff_*.deb >/dev/null' \
  || die "apt-get install --reinstall failed"
[ "$(ct sha256sum /etc/handoff/keys/data.key)" = "$before" ] || die "reinstalling replaced the data key"

echo "== systemd-analyze verify (--man=no: the slim image keeps no manuals)"
units="handoff-broker handoff-intake handoff-triage handoff-scheduling handoff-web"
for u in $units; do
  ct test -f /lib/systemd/system/$u.service || die "$u.service not installed"
  out=$(ct systemd-analyze verify --man=no /lib/systemd/system/$u.service 2>&1) || die "$u.service: $out"
  [ -z "$out" ] || die "$u.service: systemd-analyze verify says: $out"
done

echo "== --help and man pages"
for p in handoff-broker handoff-intake handoff-triage handoff-scheduling handoff-web handoff; do
  grep -q "^usage: $p" <<<"$(ct "$p" --help)" || die "$p --help: no usage line"
done
# the slim image keeps no manuals (dpkg's path-exclude), so the pages are looked for in the packages
server_files=$(dpkg-deb -c "${debs[0]}")
for p in handoff-broker handoff-intake handoff-triage handoff-scheduling handoff-web handoff-web-serve; do
  grep -q "usr/share/man/man1/$p.1.gz$" <<<"$server_files" || die "handoff: no man page for $p"
done
grep -q "usr/share/man/man1/handoff.1.gz$" <<<"$(dpkg-deb -c "${clis[0]}")" || die "handoff-cli: no man page"
grep -q HANDOFF_WEB_LISTEN <<<"$(ct handoff-web serve --help)" || die "handoff-web serve --help: no options"

echo "== the broker as its unit runs it"
# The unit's settings, read from the installed unit file itself (%d: the credentials folder,
# %S: /var/lib), so the check follows the unit.
creds=/run/credentials/handoff-broker.service
ct sh -ec "cd /etc/handoff/keys && handoff keygen broker >/dev/null && handoff keygen intake >/dev/null \
    && mkdir -p access && handoff keygen ops >/dev/null && rm -f ops.key \
    && echo \"\$(cat intake.pub) service intake\" > access/allow.txt && chmod 0644 access/allow.txt \
    && chgrp -R handoff access && chmod 0750 access \
    && install -d -o handoff -g handoff -m 0700 $creds && install -d -o handoff -g handoff -m 0750 /var/lib/handoff/broker"
# every credential the unit names (LoadCredential=NAME:PATH), where systemd would put it
while IFS=: read -r cname cpath; do
  ct install -o handoff -m 0400 "$cpath" "$creds/$cname" || die "the broker's credential $cpath is missing"
done < <(ct sed -n 's/^LoadCredential=//p' /lib/systemd/system/handoff-broker.service)
env=$(ct sed -n 's/^Environment=//p' /lib/systemd/system/handoff-broker.service \
      | sed -e "s#%d#$creds#g" -e 's#%S#/var/lib#g')
grep -q '^HANDOFF_CURVE_SECRET=' <<<"$env" || die "the broker unit sets no HANDOFF_CURVE_SECRET"
ct sh -c "cd /var/lib/handoff/broker && exec setpriv --reuid=handoff --regid=handoff --init-groups \
    env $(tr '\n' ' ' <<<"$env") handoff-broker >/tmp/broker.log 2>&1" &
ready=""
for _ in $(seq 1 100); do                  # up to 20 s for /readyz on a slow host
  if ct curl -fsS -o /dev/null http://127.0.0.1:9100/readyz 2>/dev/null; then ready=1; break; fi
  ct pgrep -x handoff-broker >/dev/null || break
  sleep 0.2
done
[ -n "$ready" ] || { ct cat /tmp/broker.log >&2 || true; die "the broker did not become ready"; }
[ "$(ct stat -c %U /var/lib/handoff/broker/audit.jsonl)" = handoff ] || die "the audit log is not the user handoff's"
ct grep -q "bodies sealed with --data-key" /tmp/broker.log || { ct cat /tmp/broker.log >&2; die "the broker's unit does not seal bodies"; }
grep -qx handoff <<<"$(ct ps -o user= -C handoff-broker)" || die "the broker does not run as handoff"
ct pkill -TERM -x handoff-broker
for _ in $(seq 1 50); do ct pgrep -x handoff-broker >/dev/null || break; sleep 0.2; done
! ct pgrep -x handoff-broker >/dev/null || die "the broker did not stop on SIGTERM"
wait || true

echo "== apt remove --purge"
ct sh -c 'DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -qq handoff handoff-cli >/dev/null' \
  || die "apt-get remove --purge failed"
left=$(ct sh -c 'ls -d /usr/bin/handoff* /lib/systemd/system/handoff* /usr/share/man/man1/handoff* \
                       /etc/handoff/*.env /etc/handoff/*.json 2>/dev/null' || true)
[ -z "$left" ] || die "left after purge: $left"
echo "package.sh: ok ($(( $(date +%s) - started )) s)"
