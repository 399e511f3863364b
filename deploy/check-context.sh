#!/bin/sh
# deploy/check-context.sh DIR — refuses key material in a Docker build context. deploy/Dockerfile
# runs it on the context it copied, before anything is built, so a build whose context holds a
# key fails (exit 1) naming each file, instead of baking the key into the build stage's layers.
# .dockerignore keeps deploy/keys (what deploy/keys.sh writes) out of the context; this check
# is what stops a key that got in anyway (another folder, another name, no .dockerignore).
#
# Key material is, by name: *.key (deploy/keys.sh and `handoff keygen`/`datakey` write
# NAME.key, data.key), *.key.*, secret files (*_secret, *-secret, *.secret, secret, secret.*,
# secrets.*, and those with an extension), SSH private keys (id_rsa, id_dsa, id_ecdsa,
# id_ed25519), PKCS#12 (*.p12, *.pfx) and Java key stores (*.jks, *.keystore); and, by content
# whatever the name, a file that is one CURVE key (40 Z85 characters: a secret key, or a .pub
# kept next to one), a file that is one data key (64 hexadecimal characters), and a PEM
# private key in any file.
# POSIX sh, find and grep only (the build stage is a bare debian:bookworm-slim).
set -eu
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  echo "usage: check-context.sh DIR (a folder)" >&2
  exit 2
fi
dir=$1
found=$(mktemp)
trap 'rm -f "$found"' EXIT
cd "$dir"

# by name
find . \( -type f -o -type l \) \( -name '*.key' -o -name '*.key.*' -o -name '*_secret' -o -name '*_secret.*' \
  -o -name '*-secret' -o -name '*-secret.*' -o -name '*.secret' -o -name secret -o -name 'secret.*' \
  -o -name 'secrets.*' -o -name 'id_rsa' -o -name 'id_dsa' -o -name 'id_ecdsa' -o -name 'id_ed25519' \
  -o -name '*.p12' -o -name '*.pfx' -o -name '*.jks' -o -name '*.keystore' \) \
  -exec printf '%s\tits name is a key file name\n' {} \; >>"$found"
# by content: one key and nothing else (then LF, CR LF or nothing)
cr=$(printf '\r')
z85='[]0-9a-zA-Z.:+=^!/*?&<>(){@%$#}[-]'   # no "{}" in it: find -exec would put a path there
find . -type f \( -size 40c -o -size 41c -o -size 42c \) -exec grep -lxE "${z85}{40}${cr}?" {} + 2>/dev/null |
  sed 's/$/\tit holds a CURVE key (40 Z85 characters)/' >>"$found" || true
find . -type f \( -size 64c -o -size 65c -o -size 66c \) -exec grep -lxE "[0-9a-fA-F]{64}${cr}?" {} + 2>/dev/null |
  sed 's/$/\tit holds a data key (64 hexadecimal characters)/' >>"$found" || true
find . -type f -exec grep -lE '^-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----' {} + 2>/dev/null |
  sed 's/$/\tit holds a PEM private key/' >>"$found" || true

if [ -s "$found" ]; then
  {
    echo "check-context: refusing to build: key material in the build context ($dir):"
    sort -u "$found" | sed 's|^\./|  |; s|\t|: |'
    echo "Keys must never enter an image, not even the layers of a build stage. Keep them out of the"
    echo "context: deploy/keys (deploy/keys.sh's folder) and *.key are in .dockerignore; keep other key"
    echo "folders outside the repository (HANDOFF_KEYS=/path/to/keys) or add them to .dockerignore."
    echo "This failed build may have kept the context in the builder's cache: remove it with"
    echo "'docker builder prune -f' (BuildKit), or with the classic builder 'docker container prune -f'"
    echo "then 'docker image prune -f' (or build with --force-rm, then only the second)."
  } >&2
  exit 1
fi
echo "check-context: no key material in the build context"
