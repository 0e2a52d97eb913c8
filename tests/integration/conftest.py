"""The `-profile test` run shared by test_pipeline.py (its outputs) and test_resume_pipeline.py (the reference)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nfpipeline import TEST_PROFILE_ARGS, require_test_models, run_nextflow


@dataclass
class PipelineRun:
    cwd: Path
    outdir: Path
    result: subprocess.CompletedProcess
    seconds: float


@pytest.fixture(scope="session")
def test_run(tmp_path_factory) -> PipelineRun:
    require_test_models()
    cwd = tmp_path_factory.mktemp("pipeline")
    outdir = cwd / "results"
    start = time.monotonic()
    result = run_nextflow([*TEST_PROFILE_ARGS, "--outdir", str(outdir)], cwd)
    return PipelineRun(cwd, outdir, result, time.monotonic() - start)
