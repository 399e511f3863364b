#!/usr/bin/env bash
# Makes Docker usable for the end-to-end test on a Debian bookworm machine:
#  1. installs docker.io, docker-compose, debootstrap and openssl (deploy/keys.sh makes the
#     portal's certificate with it) from Debian when missing;
#  2. starts dockerd when no engine answers (its log: $E2E_DIR/dockerd.log; its pid in
#     $E2E_DIR/dockerd.pid so the test can stop what it started);
#  3. makes the base image debian:bookworm-slim when it cannot be pulled (no registry is
#     reachable here): debootstrap --variant=minbase bookworm, trimmed like the official
#     slim image, then `docker import` — so deploy/Dockerfile stays the ordinary one.
# Any step that fails stops with a message saying which and why: Docker is never skipped.
set -euo pipefail
E2E_DIR=${E2E_DIR:-$(pwd)/build/e2e}
MIRROR=${HANDOFF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=debian:bookworm-slim
mkdir -p "$E2E_DIR"
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
say() { echo "e2e setup: $*"; }
die() { echo "e2e setup: FAILED: $*" >&2; exit 1; }

missing=()
for p in docker.io docker-compose debootstrap iptables openssl; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    >"$E2E_DIR/apt.log" 2>&1 || { tail -20 "$E2E_DIR/apt.log" >&2; die "could not install ${missing[*]}"; }
fi

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd"
  $SUDO sh -c "nohup dockerd >'$E2E_DIR/dockerd.log' 2>&1 & echo \$! >'$E2E_DIR/dockerd.pid'"
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$(cat "$E2E_DIR/dockerd.pid")" 2>/dev/null || { tail -20 "$E2E_DIR/dockerd.log" >&2; die "dockerd exited"; }
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { tail -20 "$E2E_DIR/dockerd.log" >&2; die "dockerd did not answer within 60 s"; }
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
root=$E2E_DIR/rootfs
$SUDO rm -rf "$root"
$SUDO debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$E2E_DIR/debootstrap.log" 2>&1 ||
  { tail -20 "$E2E_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
# What the official slim image does: no package lists, caches, manuals or translations, and
# dpkg told not to install them again; the Debian and security suites as apt sources.
$SUDO sh -c "
  rm -rf '$root'/var/lib/apt/lists/* '$root'/var/cache/apt/*.bin '$root'/var/cache/apt/archives/*.deb \
         '$root'/usr/share/doc/* '$root'/usr/share/man/* '$root'/usr/share/info/* '$root'/var/log/*.log
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
