#!/usr/bin/env bash
# The software bill of materials of the Handoff image, as SPDX 2.3 JSON: every Debian package
# installed in it (dpkg-query -W run inside the image: name, version, architecture, source
# package, purl pkg:deb/debian/NAME@VERSION?arch=ARCH, the licence its
# /usr/share/doc/NAME/copyright declares when machine-readable, else NOASSERTION) and the
# project's own programs as the package handoff (purl pkg:generic/handoff@VERSION).
# Needs docker, jq and python3-debian (make deps). Usage:
#   deploy/sbom.sh [IMAGE] [-o FILE]     IMAGE [handoff:VERSION]; FILE [standard output]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "sbom.sh: $*" >&2; exit 2; }
image="" out=""
while [ $# -gt 0 ]; do
  case $1 in
    -o) [ $# -ge 2 ] || die "-o needs a FILE"; out=$2; shift 2 ;;
    -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown option '$1'" ;;
    *) [ -z "$image" ] || die "one IMAGE, got '$image' and '$1'"; image=$1; shift ;;
  esac
done
version=$("$ROOT/deploy/version.sh" "$ROOT")
image=${image:-handoff:$version}
/usr/bin/python3 -c 'import debian.copyright' 2>/dev/null || die "python3-debian is missing (apt-get install python3-debian)"
image_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null) ||
  die "no image $image (deploy/build-image.sh builds it)"
revision=$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$image")
[ -n "$revision" ] && [ "$revision" != "<no value>" ] || revision=unknown

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { docker run --rm --network none --entrypoint "" "$image" "$@"; }
run dpkg-query -W -f='${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n' \
  >"$work/dpkg.tsv" || die "dpkg-query in $image failed"
mkdir "$work/doc"
run tar -C /usr/share/doc -cf - . | tar -C "$work/doc" -xf - --no-same-owner --no-same-permissions ||
  die "could not copy /usr/share/doc out of $image"
if [ -n "$out" ]; then
  /usr/bin/python3 "$ROOT/deploy/sbom-spdx.py" "$work/dpkg.tsv" "$work/doc" "$image" "$image_id" "$version" "$revision" >"$out.tmp"
  jq -e '.spdxVersion == "SPDX-2.3"' "$out.tmp" >/dev/null || die "the document made is not SPDX 2.3 JSON"
  mv "$out.tmp" "$out"
  echo "sbom.sh: $out: $(jq '.packages | length' "$out") packages ($(wc -l <"$work/dpkg.tsv") from dpkg, and handoff) of $image" >&2
else
  /usr/bin/python3 "$ROOT/deploy/sbom-spdx.py" "$work/dpkg.tsv" "$work/doc" "$image" "$image_id" "$version" "$revision"
fi
