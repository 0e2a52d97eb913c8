#!/usr/bin/env bash
# Smoke test of the one-node SLURM from start_local_slurm.sh: srun, sbatch, and GPU grants as virnucpro sees them.
#
#   tests/slurm/start_local_slurm.sh && tests/slurm/smoke_test.sh
#
# Three jobs ask for one (pseudo-)GPU each on a node with two: two run at once on different devices, the third
# waits for a free one; inside each job the lease (virnucpro.embed.lease) uses the device SLURM granted.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
state=${SLURM_TEST_STATE:-/tmp/virnucpro-slurm}
export SLURM_CONF=${SLURM_CONF:-$state/slurm.conf}
python=${VIRNUCPRO_PYTHON:-$repo/.venv/bin/python}
out=$(mktemp -d "$state/jobs/smoke.XXXXXX")

echo "== srun"
[ "$(srun -N1 -n1 hostname)" = "$(hostname)" ] || { echo "srun ran elsewhere?" >&2; exit 1; }

echo "== sbatch, 3 jobs x --gres=gpu:1 on $(sinfo -h -o %G)"
cat > "$out/probe.py" <<'PY'
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from virnucpro.embed.lease import acquire_gpu
with acquire_gpu(sys.argv[2]) as lease:
    t0 = time.time(); time.sleep(3)
    print(json.dumps({"job": os.environ["SLURM_JOB_ID"], "cvd": os.environ.get("CUDA_VISIBLE_DEVICES"),
                      "source": lease.source if lease else None, "gpu": lease.physical_id if lease else None,
                      "start": t0, "end": time.time()}))
PY
jobs=()
for i in 1 2 3; do
  jobs+=("$(sbatch --parsable --gres=gpu:1 -c1 -o "$out/job$i.json" \
            --wrap "'$python' '$out/probe.py' '$repo' '$out/leases'")")
done
for _ in $(seq 120); do
  [ -z "$(squeue -h -j "$(IFS=,; echo "${jobs[*]}")" 2>/dev/null)" ] && break
  sleep 1
done
for j in "${jobs[@]}"; do
  state_j=$(scontrol show job "$j" | grep -o 'JobState=[A-Z]*')
  [ "$state_j" = JobState=COMPLETED ] || { echo "job $j: $state_j" >&2; cat "$out"/job*.json >&2; exit 1; }
done
cat "$out"/job*.json
"$python" - "$out" <<'PY'
import json, sys
from pathlib import Path
runs = [json.loads(p.read_text().strip().splitlines()[-1]) for p in sorted(Path(sys.argv[1]).glob("job*.json"))]
assert len(runs) == 3, runs
for r in runs:
    assert r["source"] == "slurm" and r["cvd"] == r["gpu"] and r["gpu"] in ("0", "1"), r
for a in runs:
    for b in runs:
        if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
            assert a["gpu"] != b["gpu"], ("two jobs on one GPU at once", a, b)
overlapping = sum(1 for a in runs for b in runs if a is not b and a["start"] < b["end"] and b["start"] < a["end"])
assert overlapping >= 2, "the two pseudo-GPUs were never used at once"
assert not Path(sys.argv[1], "leases").exists(), "no flock lease inside SLURM jobs"
print("SLURM smoke test passed: 3 jobs, 2 at once on distinct granted GPUs, third waited")
PY
