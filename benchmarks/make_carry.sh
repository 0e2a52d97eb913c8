#!/usr/bin/env bash
# Packs what benchmarks/pipeline_gpu.sh needs on a GPU machine that has no Java and no internet, into .carry/
# (git-ignored through .git/info/exclude; name it in the device tool's carry list):
#   .carry/jre.tar.xz   a JRE cut down with jlink to the modules Nextflow uses (~77 MB unpacked, ~18 MB)
#   .carry/nxf.tar.xz   tools/nextflow/lib re-stored without zip compression, then xz'd (~31 MB of jars -> ~14 MB)
# Needs a JDK 17+ (jlink) and `make install` (the jars). Takes ~4 minutes, mostly xz.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jlink=${JLINK:-$(dirname "$(readlink -f "$(command -v javac)")")/jlink}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p .carry "$tmp/nxf/lib"
"$jlink" --add-modules java.base,java.compiler,java.desktop,java.logging,java.management,java.prefs,java.net.http,\
java.naming,java.xml,java.scripting,java.sql,jdk.management,jdk.unsupported,jdk.zipfs,jdk.crypto.ec \
  --strip-debug --no-man-pages --no-header-files --output "$tmp/jre"
tar -cJf .carry/jre.tar.xz -C "$tmp" jre
# Stored (uncompressed) jars compress far better as one xz stream than deflated ones do.
python3 - "$tmp/nxf/lib" <<'PY'
import pathlib, sys, zipfile
out = pathlib.Path(sys.argv[1])
for jar in sorted(pathlib.Path("tools/nextflow/lib").glob("*.jar")):
    with zipfile.ZipFile(jar) as zin, zipfile.ZipFile(out / jar.name, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            info.compress_type = zipfile.ZIP_STORED
            zout.writestr(info, data)
PY
tar -cJf .carry/nxf.tar.xz -C "$tmp/nxf" lib
ls -l .carry
