#!/usr/bin/env bash
# The pipeline benchmark on a GPU machine with no Java and no internet (docs/BENCHMARKS.md, "Pipeline on one GPU").
#   benchmarks/pipeline_gpu.sh SIZE RUN...     SIZE: full | smoke     RUN: reads:N | contigs:N, optional :cold
#   e.g. benchmarks/pipeline_gpu.sh full reads:300000 contigs:1000:cold
# Needs .carry/jre.tar.xz (a jlink'd JRE) and .carry/nxf.tar.xz (the Nextflow jars), made by
# benchmarks/make_carry.sh on a machine with a JDK and the jars. Results (json + md per run) go to $OUT.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
size=$1; shift
bench=${BENCH_DIR:-/tmp/virnucpro-bench}
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
