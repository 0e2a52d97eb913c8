#!/usr/bin/env bash
# Run the Nextflow pipeline through the one-node test SLURM: every task becomes a SLURM job.
#
#   tests/slurm/run_pipeline.sh [OUTDIR] [extra nextflow args…]     (default OUTDIR /tmp/virnucpro-slurm/results)
#
# Starts the cluster if needed (tests/slurm/start_local_slurm.sh), then
#   nextflow run main.nf -profile test,slurm -c <poll fast> --outdir OUTDIR
# The test profile's tiny models must exist (`make test-models`). EMBED jobs ask for --gres=gpu:1 and get one of
# the pseudo-GPUs; they run on the CPU (test profile: --device cpu) but the grant is real SLURM accounting.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
state=${SLURM_TEST_STATE:-/tmp/virnucpro-slurm}
outdir=${1:-$state/results}; shift || true
export SLURM_CONF=$state/slurm.conf
if ! sinfo -h >/dev/null 2>&1; then
  "$repo/tests/slurm/start_local_slurm.sh" "$state"
fi
nextflow=${NEXTFLOW:-$repo/tools/nextflow/nextflow}

# The slurm profile polls every 30 s, fine on a real cluster, slow for a test.
cat > "$state/fast_poll.config" <<'CONF'
executor {
    $slurm {
        pollInterval      = '2 sec'
        queueStatInterval = '2 sec'
        submitRateLimit   = '50 sec'
    }
}
CONF

cd "$state"
"$nextflow" run "$repo/main.nf" -profile test,slurm -c "$state/fast_poll.config" \
  --outdir "$outdir" -work-dir "$state/work" "$@"
echo "== SLURM jobs of this run"
squeue -h -t all -o '%i %j %T %b' | sort -n | tail -n 40 || true
