"""Tests that start other processes: Nextflow runs, kills, daemons, mounts. Each is marked `integration`, so
`pytest -m "not integration"` (`make test-fast`) leaves them out.

Also the `-profile test` run shared by test_pipeline.py (its outputs) and the tests that compare against it.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from nfpipeline import TEST_PROFILE_ARGS, require_test_models, run_nextflow


HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    # Called with every collected item, not only this folder's: mark those below it.
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


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
