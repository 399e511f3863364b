#!/usr/bin/env bash
# Makes Docker usable for Handoff on a Debian bookworm host, also one with no image registry
# in reach (only a Debian package mirror):
#  1. installs docker.io, docker-compose, debootstrap, iptables and openssl (deploy/keys.sh
#     makes the portal's certificate with it) from Debian when missing;
#  2. starts the Docker engine when none answers: with systemd (systemctl start docker) where
#     systemd runs, otherwise dockerd by hand (its log DIR/dockerd.log, its pid DIR/dockerd.pid,
#     so that whoever started it can stop it: kill "$(cat DIR/dockerd.pid)");
#  3. makes the base image debian:bookworm-slim when it is not there and cannot be pulled:
#     debootstrap --variant=minbase bookworm from the mirror, trimmed like the official slim
#     image (no package lists, caches, manuals or translations; copyright files kept), then
#     `docker import`, so that deploy/Dockerfile stays the ordinary one.
# Any step that fails stops with a message saying which and why. Runs as root or with sudo.
# Usage: deploy/bootstrap-docker.sh [--state-dir DIR]
#   DIR: its logs and dockerd.pid [$HANDOFF_BOOTSTRAP_DIR, else /var/tmp/handoff-bootstrap]
#   HANDOFF_DEBIAN_MIRROR: the Debian mirror [http://deb.debian.org/debian]
set -euo pipefail
STATE=${HANDOFF_BOOTSTRAP_DIR:-/var/tmp/handoff-bootstrap}
while [ $# -gt 0 ]; do
  case $1 in
    --state-dir) [ $# -ge 2 ] || { echo "bootstrap-docker.sh: --state-dir needs a folder" >&2; exit 2; }; STATE=$2; shift 2 ;;
    -h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "bootstrap-docker.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
MIRROR=${HANDOFF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=debian:bookworm-slim
mkdir -p "$STATE"
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
say() { echo "bootstrap-docker: $*"; }
die() { echo "bootstrap-docker: FAILED: $*" >&2; exit 1; }

missing=()
for p in docker.io docker-compose debootstrap iptables openssl; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >"$STATE/apt.log" 2>&1 || { tail -20 "$STATE/apt.log" >&2; die "could not install ${missing[*]}"; }
fi

engine_up() { docker info >/dev/null 2>&1; }
if ! engine_up && [ -d /run/systemd/system ]; then
  say "starting docker (systemctl start docker)"
  $SUDO systemctl start docker || say "systemctl start docker failed; starting dockerd by hand"
  for _ in $(seq 1 60); do engine_up && break; sleep 0.5; done
fi
if ! engine_up; then
  say "starting dockerd (log $STATE/dockerd.log)"
  $SUDO sh -c "nohup dockerd >'$STATE/dockerd.log' 2>&1 & echo \$! >'$STATE/dockerd.pid'"
  for _ in $(seq 1 120); do
    engine_up && break
    kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null || { tail -20 "$STATE/dockerd.log" >&2; die "dockerd exited"; }
    sleep 0.5
  done
  engine_up || { tail -20 "$STATE/dockerd.log" >&2; die "dockerd did not answer within 60 s"; }
fi
say "docker engine $(docker version --format '{{.Server.Version}}')"

if docker image inspect "$BASE" >/dev/null 2>&1; then
  say "$BASE present"
  exit 0
fi
if timeout 30 docker pull -q "$BASE" >/dev/null 2>&1; then
  say "pulled $BASE"
  exit 0
fi
say "no registry reachable: making $BASE with debootstrap from $MIRROR"
root=$STATE/rootfs
$SUDO rm -rf "$root"
$SUDO debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$STATE/debootstrap.log" 2>&1 ||
  { tail -20 "$STATE/debootstrap.log" >&2; die "debootstrap failed (its log: $STATE/debootstrap.log)"; }
# What the official slim image does: no package lists, caches, manuals or translations, and
# dpkg told not to install them again (each package's copyright file stays); the Debian and
# security suites as apt sources.
$SUDO sh -c "
  rm -rf '$root'/var/lib/apt/lists/* '$root'/var/cache/apt/*.bin '$root'/var/cache/apt/archives/*.deb \
         '$root'/usr/share/man/* '$root'/usr/share/info/* '$root'/var/log/*.log
  find '$root'/usr/share/doc -mindepth 1 -type f ! -name copyright -delete
  find '$root'/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  cat >'$root'/etc/dpkg/dpkg.cfg.d/docker <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
  cat >'$root'/etc/apt/apt.conf.d/docker-clean <<'CFG'
DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };
Dir::Cache::pkgcache \"\";
Dir::Cache::srcpkgcache \"\";
CFG
  rm -f '$root'/etc/apt/sources.list
  cat >'$root'/etc/apt/sources.list.d/debian.sources <<'CFG'
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
CFG
"
$SUDO tar -C "$root" -c . | docker import -c 'CMD ["bash"]' - "$BASE" >/dev/null ||
  die "docker import of the debootstrapped root failed"
$SUDO rm -rf "$root"
say "made $BASE ($(docker image inspect -f '{{.Size}}' "$BASE" | awk '{printf "%.0f MB", $1/1e6}'))"
