"""The pipeline through a one-node SLURM (tests/slurm/): every task a SLURM job, results equal the local run's.

Opt-in like test_slurm.py: VIRNUCPRO_SLURM_TESTS=1, root, slurm-wlm + munge installed
(`make test-slurm` does all three; `.ci/run` runs it in CI). Compares the published result files byte for byte
with the shared local `-profile test` run (same parameters), and checks that the EMBED jobs asked SLURM for a GPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from nfpipeline import REPO, TEST_PROFILE_ARGS, nextflow_env, samplesheet_rows

SLURM = REPO / "tests" / "slurm"

pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("VIRNUCPRO_SLURM_TESTS") != "1", reason="set VIRNUCPRO_SLURM_TESTS=1"),
    pytest.mark.skipif(shutil.which("slurmctld") is None and not Path("/usr/sbin/slurmctld").exists(),
                       reason="slurm-wlm not installed (tests/slurm/install.sh)"),
]

RESULT_FILES = ("prediction_results.txt", "prediction_results_highestscore.csv", "{sample}.records.tsv",
                "{sample}.viral.fa", "preprocess/identified_protein.faa")


def test_pipeline_through_slurm_equals_the_local_run(test_run):
    assert test_run.result.returncode == 0, "the reference run failed"
    # Not pytest's tmp_path: its parents are private to root and munged runs as the munge user.
    state = Path(tempfile.mkdtemp(prefix="virnucpro-slurm-pipeline-", dir="/tmp"))
    state.chmod(0o755)
    env = {**nextflow_env(), "SLURM_TEST_STATE": str(state), "SLURM_CONF": str(state / "slurm.conf"),
           "SLURM_TEST_GPUS": "2"}
    # Ports of their own, so a cluster started by hand (defaults) or by test_slurm.py (16817) can coexist.
    env.update(SLURM_TEST_CTLD_PORT="16827", SLURM_TEST_D_PORT="16828")
    outdir = state / "results"
    try:
        start = subprocess.run([str(SLURM / "start_local_slurm.sh"), str(state)], env=env, capture_output=True,
                               text=True, timeout=120)
        assert start.returncode == 0, start.stdout + start.stderr
        run = subprocess.run([str(SLURM / "run_pipeline.sh"), str(outdir), *TEST_PROFILE_ARGS[2:]], env=env,
                             capture_output=True, text=True, timeout=1200)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]

        for sample, _ in samplesheet_rows():
            for pattern in RESULT_FILES:
                name = f"{sample}/{pattern.format(sample=sample)}"
                assert (outdir / name).read_bytes() == (test_run.outdir / name).read_bytes(), name

        trace = next((outdir / "pipeline_info").glob("execution_trace_*.txt")).read_text().splitlines()
        embeds = [line.split("\t") for line in trace[1:] if "VIRNUCPRO:EMBED" in line]
        assert embeds and all(row[4] == "COMPLETED" for row in embeds), trace
        # native_id is the SLURM job id; scontrol still knows finished jobs for MinJobAge (300 s by default).
        for row in embeds:
            job = subprocess.run(["scontrol", "show", "job", row[2]], env=env, capture_output=True, text=True)
            assert job.returncode == 0, job.stderr
            assert "gpu:1" in job.stdout, job.stdout
    finally:
        subprocess.run([str(SLURM / "stop_local_slurm.sh"), str(state)], env=env, timeout=60)
        shutil.rmtree(state, ignore_errors=True)
