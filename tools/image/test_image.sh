#!/usr/bin/env bash
# `make test-image`: the container route end to end, as a new user would take it, against the venv route.
#   1. -profile test in this checkout (its .venv)                       -> $out/venv
#   2. a bare `git clone` of this checkout's HEAD (no .venv, no models
#      made, no `make install`), -profile test,podman                   -> $out/podman
#   3. every published result file must be byte-identical between the two, except the ones that record when and
#      where the run happened (listed below).
# Needs the image (`make image`), podman and this checkout's Nextflow (`make install`). Prints the timings.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
nextflow=${NEXTFLOW:-$repo/tools/nextflow/nextflow}
out=${1:-$(mktemp -d "${TMPDIR:-/var/tmp}/virnucpro-test-image.XXXXXX")}
mkdir -p "$out"
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/virnucpro/__init__.py")
podman image exists "virnucpro:$version" || { echo "test_image.sh: no image virnucpro:$version: run make image" >&2; exit 1; }

git clone --quiet "$repo" "$out/clone"
run() {  # run NAME DIR ARGS...: one pipeline run in its own folder, timed
  local name=$1 dir=$2; shift 2
  mkdir -p "$out/$name.run"
  local start=$(date +%s)
  (cd "$out/$name.run" && "$nextflow" run "$dir" -ansi-log false --outdir "$out/$name" "$@" > "$out/$name.log" 2>&1) \
    || { tail -40 "$out/$name.log" >&2; echo "test_image.sh: the $name run failed (log: $out/$name.log)" >&2; exit 1; }
  echo "test_image.sh: $name run: $(( $(date +%s) - start )) s"
}
# VENV_OUTDIR: the --outdir of an earlier `-profile test` venv run of the same commit, instead of a new one.
if [ -n "${VENV_OUTDIR:-}" ]; then ln -sfn "$(cd "$VENV_OUTDIR" && pwd)" "$out/venv"; else run venv "$repo" -profile test; fi
# No venv anywhere on the way: the clone has none, and the launcher would not look outside it.
run podman "$out/clone" -profile test,podman -c "$repo/tools/image/podman-runc.config"

# Files that hold run times, dates or absolute paths, which differ between any two runs.
volatile='^(pipeline_info/|report/virnucpro_report\.html$|multiqc/|[^/]+/embed/)'
compared=0
while IFS= read -r rel; do
  if ! cmp -s "$out/venv/$rel" "$out/podman/$rel"; then
    echo "test_image.sh: $rel differs between the venv and the podman run" >&2; exit 1
  fi
  compared=$((compared + 1))
done < <(cd "$out/venv" && find . -type f | sed 's|^\./||' | grep -Ev "$volatile" | sort)
if [ "$(cd "$out/venv" && find . -type f | sed 's|^\./||' | grep -Ev "$volatile" | sort)" != \
     "$(cd "$out/podman" && find . -type f | sed 's|^\./||' | grep -Ev "$volatile" | sort)" ]; then
  echo "test_image.sh: the two runs published different sets of files" >&2; exit 1
fi
grep -q "virnucpro:$version" "$out/podman.run/.nextflow.log" || { echo "test_image.sh: the podman run did not use the image" >&2; exit 1; }
echo "test_image.sh: $compared result files identical between the venv run and the podman run from a bare clone"
