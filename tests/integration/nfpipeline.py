"""Helpers shared by the pipeline tests: start Nextflow, read its outputs."""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "main.nf"
TEST_DATA = REPO / "assets" / "test"
RUN_TIMEOUT = 1200
# The shared test-profile run: a threshold other than the default shows that --threshold reaches AGGREGATE,
# in-task checkpoint parts of 16 frames give the resume tests partial EMBED progress to reuse, and --min_length
# 150 makes the 133 bp record seq49 too short (it must never reach EMBED).
MIN_LENGTH = 150
TEST_PROFILE_ARGS = ["-profile", "test", "--threshold", "0.55", "--checkpoint_every", "16",
                     "--min_length", str(MIN_LENGTH)]


def nextflow_command() -> list[str]:
    """$NEXTFLOW (e.g. a `nextflow` on PATH), else the launcher `make install` sets up."""
    exe = os.environ.get("NEXTFLOW") or str(REPO / "tools" / "nextflow" / "nextflow")
    if not (REPO / "tools" / "nextflow" / "lib").is_dir() and "NEXTFLOW" not in os.environ:
        pytest.fail("Nextflow is not installed: run `make install` (or set NEXTFLOW=/path/to/nextflow)")
    return [exe]


def nextflow_run_command(args: list[str], cwd: Path) -> list[str]:
    return nextflow_command() + ["run", str(MAIN), "-ansi-log", "false", "-work-dir", str(cwd / "work"), *args]


def nextflow_env() -> dict[str, str]:
    env = dict(os.environ, NXF_ANSI_LOG="false")
    # Test runs are short: with the JVM's C1 compiler alone a -stub run took 42 CPU-seconds here instead of 59
    # (tools/nextflow/nextflow does this for every command; the official launcher, as $NEXTFLOW, not for `run`).
    # A caller's NXF_OPTS is used as given.
    env.setdefault("NXF_OPTS", "-XX:TieredStopAtLevel=1")
    return env


def run_nextflow(args: list[str], cwd: Path, timeout: int = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(nextflow_run_command(args, cwd), cwd=cwd, env=nextflow_env(), capture_output=True,
                          text=True, timeout=timeout)


def require_test_models() -> None:
    if not (REPO / "tests" / "models" / "TEST_MODELS.txt").is_file():
        pytest.fail("tiny test models missing: run `make test-models`")


def read_fasta(path: Path) -> list[tuple[str, str]]:
    records: list[tuple[str, str]] = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        for line in handle:
            line = line.rstrip("\r\n")
            if line.startswith(">"):
                records.append((line[1:], ""))
            elif records:
                records[-1] = (records[-1][0], records[-1][1] + line)
    return records


def input_record_ids(path: Path) -> list[str]:
    """Record ids (header up to the first whitespace) of a FASTA or FASTQ file, plain or gzip."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        lines = [line.rstrip("\r\n") for line in handle]
    if lines and lines[0].startswith("@"):
        headers = lines[0::4]
    else:
        headers = [line for line in lines if line.startswith(">")]
    return [h[1:].split()[0] if len(h) > 1 else "" for h in headers]


def samplesheet_rows() -> list[tuple[str, Path]]:
    """(sample, file) of the test samplesheet; each row fills either its fasta or its fastq cell."""
    with open(TEST_DATA / "samplesheet.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(row["sample"], TEST_DATA / (row.get("fasta") or row.get("fastq"))) for row in rows]
