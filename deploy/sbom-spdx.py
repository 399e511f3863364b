#!/usr/bin/python3
"""Writes the SPDX 2.3 JSON document of deploy/sbom.sh: one package per line of dpkg-query
(name, version, architecture, source package, a purl pkg:deb/debian/NAME@VERSION?arch=ARCH, and
the licence declared by its /usr/share/doc/NAME/copyright when that file is machine-readable,
else NOASSERTION) plus the project's own programs as the package handoff.

Usage: sbom-spdx.py DPKG_LIST DOC_DIR IMAGE IMAGE_ID VERSION REVISION
  DPKG_LIST  lines Package<TAB>Version<TAB>Architecture<TAB>source:Package<TAB>source:Version
  DOC_DIR    a copy of the image's /usr/share/doc
The copyright files are read with python3-debian (debian.copyright, Debian's DEP-5 parser)."""
import datetime
import json
import logging
import os
import re
import sys
import urllib.parse
import uuid

from debian import copyright as dep5

logging.getLogger("debian.copyright").setLevel(logging.ERROR)   # not "Fixing Format URL" for each file

# Debian's short licence names (copyright-format 1.0, "License specification") as SPDX ids;
# a name not here, nor an SPDX id already, becomes LicenseRef-NAME.
DEBIAN_TO_SPDX = {
    "gpl-1": "GPL-1.0-only", "gpl-1+": "GPL-1.0-or-later", "gpl-2": "GPL-2.0-only",
    "gpl-2+": "GPL-2.0-or-later", "gpl-3": "GPL-3.0-only", "gpl-3+": "GPL-3.0-or-later",
    "gpl-2.0": "GPL-2.0-only", "gpl-2.0+": "GPL-2.0-or-later", "gpl-3.0": "GPL-3.0-only",
    "gpl-3.0+": "GPL-3.0-or-later", "lgpl-3.0": "LGPL-3.0-only", "lgpl-3.0+": "LGPL-3.0-or-later",
    "bsd-0-clause": "0BSD", "mpl-2": "MPL-2.0", "apache-2.0+": "Apache-2.0", "apache-1.1": "Apache-1.1",
    "bsd-1-clause": "BSD-1-Clause", "afl-2.0": "AFL-2.0", "afl-2.1": "AFL-2.1", "boost-1.0": "BSL-1.0",
    "lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later", "lgpl-2.0": "LGPL-2.0-only",
    "lgpl-2.0+": "LGPL-2.0-or-later", "lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later",
    "lgpl-3": "LGPL-3.0-only", "lgpl-3+": "LGPL-3.0-or-later", "agpl-3": "AGPL-3.0-only",
    "agpl-3+": "AGPL-3.0-or-later", "gfdl-1.2": "GFDL-1.2-only", "gfdl-1.2+": "GFDL-1.2-or-later",
    "gfdl-1.3": "GFDL-1.3-only", "gfdl-1.3+": "GFDL-1.3-or-later", "apache-2.0": "Apache-2.0",
    "apache-2": "Apache-2.0", "artistic": "Artistic-1.0-Perl", "artistic-1": "Artistic-1.0",
    "artistic-2.0": "Artistic-2.0", "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause",
    "bsd-4-clause": "BSD-4-Clause", "expat": "MIT", "mit": "MIT", "isc": "ISC", "zlib": "Zlib",
    "mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0", "cc0-1.0": "CC0-1.0", "cc0": "CC0-1.0",
    "curl": "curl", "openssl": "OpenSSL", "ssleay": "SSLeay-standalone", "x11": "X11",
    "fsfap": "FSFAP", "fsful": "FSFUL", "fsfullr": "FSFULLR", "psf-2": "PSF-2.0",
    "python-2.0": "Python-2.0", "unicode-dfs-2016": "Unicode-DFS-2016", "bsl-1.0": "BSL-1.0",
    "bsl": "BSL-1.0", "beerware": "Beerware", "wtfpl": "WTFPL", "0bsd": "0BSD",
    "bsd-2-clause-freebsd": "BSD-2-Clause-FreeBSD", "hpnd": "HPND", "libtool": "Libtool",
    "ofl-1.1": "OFL-1.1", "perl": "Artistic-1.0-Perl OR GPL-1.0-or-later", "tcl": "TCL",
    "zpl-2.1": "ZPL-2.1", "cc-by-3.0": "CC-BY-3.0", "cc-by-4.0": "CC-BY-4.0",
    "cc-by-sa-3.0": "CC-BY-SA-3.0", "cc-by-sa-4.0": "CC-BY-SA-4.0", "mpl-1.0": "MPL-1.0",
}
EXCEPTIONS = {
    "gcc-runtime-3.1": "GCC-exception-3.1", "openssl": "openvpn-openssl-exception",
    "autoconf": "Autoconf-exception-3.0", "bison": "Bison-exception-2.2",
    "libtool": "Libtool-exception", "font": "Font-exception-2.0",
}

extracted = {}   # LicenseRef-id -> text


def license_ref(name):
    ident = "LicenseRef-" + (re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-") or "unnamed")
    extracted.setdefault(ident, 'The licence Debian names "%s" in machine-readable copyright files; '
                                "its terms are in /usr/share/doc/PACKAGE/copyright of the packages "
                                "that declare it." % name)
    return ident


def one_licence(name):
    """A Debian short name (perhaps 'X with Y exception') as an SPDX expression."""
    m = re.fullmatch(r"(.+?)\s+with\s+(.+?)\s+exception", name.strip(), re.I)
    if m:
        base, exc = DEBIAN_TO_SPDX.get(m.group(1).lower()), EXCEPTIONS.get(m.group(2).lower())
        if base and exc and " " not in base:
            return "%s WITH %s" % (base, exc)
        return license_ref(name.strip())
    return DEBIAN_TO_SPDX.get(name.strip().lower()) or license_ref(name.strip())


def _choice(group):
    """'A or B and C' (and binds tighter than or) as conjunction terms."""
    alternatives = []
    for alt in re.split(r"\s+or\s+", group, flags=re.I):
        conj = [one_licence(c) for c in re.split(r"\s+and\s+", alt, flags=re.I) if c.strip()]
        if conj:
            alternatives.append([("(%s)" % c if " OR " in c else c) for c in conj])
    if len(alternatives) == 1:
        return alternatives[0]
    return ["(%s)" % " OR ".join(_joined(a) for a in alternatives)]


def _joined(conj):
    return conj[0] if len(conj) == 1 else "(%s)" % " AND ".join(conj)


def terms(synopsis):
    """A License synopsis ('GPL-2+ or Artistic', 'BSD-3-clause and Expat', 'GPL-2+ or Artistic,
    and Expat': a comma binds less tightly than and/or) as the terms of an SPDX conjunction, each
    a licence or a parenthesised choice."""
    parts = re.split(r"\s*,\s*(and|or)\s+", synopsis.replace("\n", " "), flags=re.I)
    acc = []
    for i in range(0, len(parts), 2):
        group = [t for g in re.split(r"\s*,\s*", parts[i]) if g.strip() for t in _choice(g)]
        if i == 0 or parts[i - 1].lower() == "and":
            acc += group
        else:
            acc = ["(%s OR %s)" % (_joined(acc), _joined(group))]
    return acc


def copyright_file(doc_dir, package):
    """The package's copyright file in the copy of /usr/share/doc, following a symbolic link
    of its folder to another package's (absolute links point into the image, not here)."""
    path = os.path.join(doc_dir, package)
    for _ in range(8):
        if not os.path.islink(path):
            break
        target = os.readlink(path)
        path = os.path.join(doc_dir, os.path.basename(target.rstrip("/"))) if target.startswith("/") \
            else os.path.normpath(os.path.join(os.path.dirname(path), target))
    f = os.path.join(path, "copyright")
    return f if os.path.isfile(f) and not os.path.islink(f) else None


def declared(doc_dir, package):
    f = copyright_file(doc_dir, package)
    if not f:
        return "NOASSERTION"
    try:
        with open(f, encoding="utf-8", errors="replace") as fh:
            c = dep5.Copyright(fh, strict=False)
    except (dep5.NotMachineReadableError, dep5.MachineReadableFormatError, ValueError):
        return "NOASSERTION"
    seen = []
    for p in c.all_files_paragraphs():
        if p.license and p.license.synopsis:
            seen += [t for t in terms(p.license.synopsis) if t not in seen]
    if not seen:
        return "NOASSERTION"
    if len(seen) == 1 and seen[0].startswith("("):
        return seen[0][1:-1]
    return " AND ".join(seen)


def spdx_id(kind, *parts, used=set()):
    base = "SPDXRef-Package-%s-%s" % (kind, re.sub(r"[^A-Za-z0-9.-]+", "-", "-".join(parts)))
    ident, n = base, 1
    while ident in used:
        n += 1
        ident = "%s-%d" % (base, n)
    used.add(ident)
    return ident


def main():
    dpkg_list, doc_dir, image, image_id, version, revision = sys.argv[1:7]
    packages, rels = [], []
    own = spdx_id("handoff", "programs")
    packages.append({
        "SPDXID": own, "name": "handoff", "versionInfo": version,
        "supplier": "NOASSERTION", "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
        "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
        "sourceInfo": "built from the Handoff repository at revision %s" % revision,
        "summary": "The Handoff programs in /usr/local/bin: handoff-broker, handoff-intake, handoff-triage, "
                   "handoff-scheduling, handoff, handoff-gen, handoff-web",
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": "pkg:generic/handoff@%s" % urllib.parse.quote(version, safe="")}],
    })
    with open(dpkg_list, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            name, ver, arch, src, src_ver = (line.rstrip("\n").split("\t") + [""] * 5)[:5]
            src, src_ver = src or name, src_ver or ver
            purl = "pkg:deb/debian/%s@%s?arch=%s" % (urllib.parse.quote(name, safe=""),
                                                     urllib.parse.quote(ver, safe=""), urllib.parse.quote(arch, safe=""))
            packages.append({
                "SPDXID": spdx_id("deb", name, arch), "name": name, "versionInfo": ver,
                "supplier": "Organization: Debian", "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION", "licenseDeclared": declared(doc_dir, name),
                "copyrightText": "NOASSERTION",
                "sourceInfo": "built package from the Debian source package %s %s" % (src, src_ver),
                "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                  "referenceLocator": purl}],
            })
    for p in packages:
        rels.append({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                     "relatedSpdxElement": p["SPDXID"]})
    doc = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": "%s (%s)" % (image, image_id),
        "documentNamespace": "https://spdx.org/spdxdocs/handoff-%s-%s" % (version, uuid.uuid4()),
        "comment": "The Debian packages installed in the image %s (%s), as dpkg-query -W lists them, and "
                   "the Handoff programs it adds (deploy/sbom.sh)." % (image, image_id),
        "creationInfo": {"created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "creators": ["Tool: handoff-sbom.sh-%s" % version]},
        "packages": packages, "relationships": rels,
    }
    if extracted:
        doc["hasExtractedLicensingInfos"] = [{"licenseId": k, "extractedText": v, "name": k[len("LicenseRef-"):]}
                                             for k, v in sorted(extracted.items())]
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
