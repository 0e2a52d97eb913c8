"""A full --outdir: no sample folder is left partly there, the error says so, and -resume then completes the run.

--outdir is a small tmpfs (mounting one needs root; skipped otherwise) with room for run information and about one
sample: the first sample folder that does not fit fails to publish. Afterwards every folder in --outdir must be
complete (the reference run's files, byte for byte) or absent, the report absent (it is published last), and the
first error line must say "No space left on device" and where. Then the tmpfs is enlarged ("space freed") and the
run resumed: it must finish with every result equal to the uninterrupted reference run (the shared `test_run`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nfpipeline import TEST_PROFILE_ARGS, run_nextflow, samplesheet_rows

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

# Run information (~16 KiB in 4 KiB pages) and the smaller test sample (~52 KiB) fit; the larger (~108 KiB) does not.
TMPFS_SIZE = "112k"
# Files whose bytes do not depend on timing (embed summaries hold wall times; summaries hold paths of this run).
STABLE = ("prediction_results.txt", "prediction_results_highestscore.csv", "{sample}.records.tsv",
          "{sample}.viral.fa", "preprocess/records.tsv", "preprocess/chunked.fa",
          "preprocess/identified_nucleotide.fa", "preprocess/identified_protein.faa")


def file_set(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def small_outdir(tmpfs):
    return tmpfs("results", TMPFS_SIZE)


def test_full_outdir_leaves_no_partial_sample_and_resume_completes(test_run, tmp_path, small_outdir):
    assert test_run.result.returncode == 0, "the reference run failed"
    reference = test_run.outdir
    outdir = small_outdir

    full = run_nextflow([*TEST_PROFILE_ARGS, "--outdir", str(outdir)], tmp_path)
    output = full.stdout + full.stderr
    assert full.returncode != 0, output[-4000:]
    errors = [line for line in output.splitlines() if line.startswith(("virnucpro:", "ERROR"))]
    assert errors and "No space left on device" in errors[0] and str(outdir) in errors[0], output[-4000:]

    hidden = [p.name for p in outdir.iterdir() if p.name.startswith(".")]
    assert not hidden, hidden
    samples = [sample for sample, _ in samplesheet_rows()]
    present = [s for s in samples if (outdir / s).exists()]
    assert len(present) < len(samples), "expected a sample that did not fit"
    for sample in present:  # complete, or not there at all
        assert file_set(outdir / sample) == file_set(reference / sample), sample
        for pattern in STABLE:
            name = pattern.format(sample=sample)
            assert (outdir / sample / name).read_bytes() == (reference / sample / name).read_bytes(), name
    assert not (outdir / "report").exists(), "the report is published only after every sample"

    subprocess.run(["mount", "-o", "remount,size=64m", str(outdir)], check=True)  # space freed
    resumed = run_nextflow([*TEST_PROFILE_ARGS, "--outdir", str(outdir), "-resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-6000:]
    for sample in samples:
        assert file_set(outdir / sample) == file_set(reference / sample), sample
        for pattern in STABLE:
            name = pattern.format(sample=sample)
            assert (outdir / sample / name).read_bytes() == (reference / sample / name).read_bytes(), name
    assert file_set(outdir / "report") == file_set(reference / "report")
