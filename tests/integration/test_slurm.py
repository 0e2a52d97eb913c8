"""One-node SLURM on this machine (opt-in: VIRNUCPRO_SLURM_TESTS=1, root, `tests/slurm/install.sh` done).

Starts munged + slurmctld + slurmd with two pseudo-GPUs, runs the smoke test (srun; three --gres=gpu:1 jobs,
two at once on distinct granted devices, the lease using SLURM's grant), and stops the cluster.
The pipeline run through it (`tests/slurm/run_pipeline.sh`) takes minutes and is left to the caller.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SLURM = Path(__file__).resolve().parents[1] / "slurm"  # the scripts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("VIRNUCPRO_SLURM_TESTS") != "1", reason="set VIRNUCPRO_SLURM_TESTS=1"),
    pytest.mark.skipif(shutil.which("slurmctld") is None and not Path("/usr/sbin/slurmctld").exists(),
                       reason="slurm-wlm not installed (tests/slurm/install.sh)"),
]


def test_one_node_slurm_grants_gpus_and_the_lease_follows():
    # Not pytest's tmp_path: its parents are private to root and munged runs as the munge user.
    state = Path(tempfile.mkdtemp(prefix="virnucpro-slurm-test-", dir="/tmp"))
    state.chmod(0o755)
    env = {**os.environ, "SLURM_TEST_STATE": str(state), "SLURM_CONF": str(state / "slurm.conf"),
           "SLURM_TEST_GPUS": "2"}
    # Other ports than a cluster started by hand with the defaults, so both can coexist.
    env.update(SLURM_TEST_CTLD_PORT="16817", SLURM_TEST_D_PORT="16818")
    start = subprocess.run([str(SLURM / "start_local_slurm.sh"), str(state)], env=env, capture_output=True,
                           text=True, timeout=120)
    try:
        assert start.returncode == 0, start.stdout + start.stderr
        smoke = subprocess.run([str(SLURM / "smoke_test.sh")], env=env, capture_output=True, text=True, timeout=300)
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
        assert "SLURM smoke test passed" in smoke.stdout
    finally:
        subprocess.run([str(SLURM / "stop_local_slurm.sh"), str(state)], env=env, timeout=60)
        shutil.rmtree(state, ignore_errors=True)
