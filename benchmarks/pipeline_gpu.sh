#!/usr/bin/env bash
# The pipeline benchmark on a GPU machine with no Java and no internet (docs/BENCHMARKS.md, "Pipeline on one GPU").
#   benchmarks/pipeline_gpu.sh SIZE RUN...     SIZE: full | smoke     RUN: reads:N | contigs:N, optional :cold
#   e.g. benchmarks/pipeline_gpu.sh full reads:300000 contigs:1000:cold
# Needs .carry/jre.tar.xz (a jlink'd JRE) and .carry/nxf.tar.xz (the Nextflow jars), made by
# benchmarks/make_carry.sh on a machine with a JDK and the jars. Results (json + md per run) go to $OUT.
#
# Runs longer than one 10-minute device call (1M reads: ~15 min):
#   benchmarks/pipeline_gpu.sh --background full reads:1000000   starts the whole job (models, inputs, runs) in
#       its own session (setsid), results to $BENCH_DIR/bg/out, log $BENCH_DIR/bg/log; then waits for it up to
#       $WAIT_S seconds (default 540) and, if it ended, copies its results to $OUT
#   benchmarks/pipeline_gpu.sh --collect                         (the next call, within the ~30 s the machine
#       stays up) waits for that job up to $WAIT_S seconds more, then copies its results and log to $OUT
# Exit status of --background/--collect: the job's when it ended, 3 when it is still running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bench=${BENCH_DIR:-/tmp/virnucpro-bench}
bg="$bench/bg"

collect() {  # wait for the background job, then hand its results to $OUT
  local deadline=$(( $(date +%s) + ${WAIT_S:-540} ))
  [ -f "$bg/pid" ] || { echo "no background job in $bg" >&2; return 2; }
  while [ ! -f "$bg/rc" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 5; done
  mkdir -p "${OUT:-$bench/out}"
  cp "$bg/log" "${OUT:-$bench/out}/background.log" 2>/dev/null || true
  tail -n 5 "$bg/log" 2>/dev/null || true
  if [ ! -f "$bg/rc" ]; then echo "background job $(cat "$bg/pid") still running: call --collect again"; return 3; fi
  cp "$bg/out/"* "${OUT:-$bench/out}/" 2>/dev/null || true
  cat "$bg/out/"*.md 2>/dev/null || true
  return "$(cat "$bg/rc")"
}

case "${1:-}" in
  --collect) collect; exit $? ;;
  --background)
    shift
    rm -rf "$bg"; mkdir -p "$bg/out"
    # Its own session: the device call's end does not kill it; rc written when the job ends, whatever its end.
    OUT="$bg/out" setsid nohup bash -c '"$0" "$@"; echo $? > "'"$bg"'/rc"' "$0" "$@" > "$bg/log" 2>&1 < /dev/null &
    echo $! > "$bg/pid"
    echo "started background job $(cat "$bg/pid"): $*"
    collect; exit $? ;;
esac
size=$1; shift
out=${OUT:-$bench/out}
mkdir -p "$bench" "$out"
[ -x "$bench/jre/bin/java" ] || tar -xJf .carry/jre.tar.xz -C "$bench"
[ -n "$(ls tools/nextflow/lib/nextflow-*.jar 2>/dev/null)" ] || tar -xJf .carry/nxf.tar.xz -C tools/nextflow
export JAVA_HOME="$bench/jre" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
[ -f "$bench/models-$size/500_model.pth" ] ||
  python3 benchmarks/pipeline_gpu.py models --size "$size" --out "$bench/models-$size"
for spec in "$@"; do
  IFS=: read -r workload n cold <<<"$spec"
  label="$workload-$n${cold:+-cold}"
  chunk=$([ "$workload" = reads ] && echo 300 || echo 500)
  ext=$([ "$workload" = reads ] && echo fa || echo fna)
  input="$bench/$workload-$n.$ext"
  [ -f "$input" ] || python3 benchmarks/pipeline_gpu.py inputs --workload "$workload" --n "$n" --out "$input"
  rm -rf "$bench/run-$label"
  python3 benchmarks/pipeline_gpu.py run --input "$input" --chunk-length "$chunk" --models "$bench/models-$size" \
    --workdir "$bench/run-$label" --label "$label" ${cold:+--cold} --out "$out" ||
    { cp "$bench/run-$label/.nextflow.log" "$out/$label.nextflow.log" 2>/dev/null; exit 1; }
done
