"""The Nextflow pipeline end to end, driven through `nextflow run` (nf-test is not obtainable offline).

One run of `-profile test` (bundled data in assets/test/, tiny models in tests/models/ from `make test-models`) is
shared by the tests of its outputs; the failure-mode tests each start Nextflow with a bad parameter and check
that it stops before running anything, with one line naming the file, and leaves --outdir untouched.
Needs the toolchain: `make install test-models` (`make test` does both).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "main.nf"
TEST_DATA = REPO / "assets" / "test"
GOLDEN_300 = Path(__file__).resolve().parents[1] / "data" / "golden" / "expected_300"
PREPROCESS_FILES = ("chunked.fa", "identified_nucleotide.fa", "identified_protein.faa", "records.tsv")
RUN_TIMEOUT = 1200


def nextflow_command() -> list[str]:
    """$NEXTFLOW (e.g. a `nextflow` on PATH), else the launcher `make install` sets up."""
    exe = os.environ.get("NEXTFLOW") or str(REPO / "tools" / "nextflow" / "nextflow")
    if not (REPO / "tools" / "nextflow" / "lib").is_dir() and "NEXTFLOW" not in os.environ:
        pytest.fail("Nextflow is not installed: run `make install` (or set NEXTFLOW=/path/to/nextflow)")
    return [exe]


def run_nextflow(args: list[str], cwd: Path, timeout: int = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    cmd = nextflow_command() + ["run", str(MAIN), "-ansi-log", "false", "-work-dir", str(cwd / "work"), *args]
    env = dict(os.environ, NXF_ANSI_LOG="false")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


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


# --------------------------------------------------------------------------------------------------------------
# The test profile, run once


@pytest.fixture(scope="module")
def test_run(tmp_path_factory):
    if not (REPO / "tests" / "models" / "TEST_MODELS.txt").is_file():
        pytest.fail("tiny test models missing: run `make test-models`")
    cwd = tmp_path_factory.mktemp("pipeline")
    outdir = cwd / "results"
    result = run_nextflow(["-profile", "test", "--outdir", str(outdir)], cwd)
    return cwd, outdir, result


def test_test_profile_succeeds(test_run):
    cwd, outdir, result = test_run
    assert result.returncode == 0, f"nextflow failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("sample,reads", samplesheet_rows())
def test_published_preprocess_matches_the_python_command(test_run, tmp_path, sample, reads):
    """The pipeline publishes exactly what `virnucpro preprocess` writes for the same input and chunk length."""
    _, outdir, result = test_run
    assert result.returncode == 0
    direct = tmp_path / "direct"
    subprocess.run(
        [str(REPO / "bin" / "virnucpro"), "preprocess", "--input", str(reads), "--chunk-length", "300",
         "--outdir", str(direct), "--sample", sample],
        check=True, capture_output=True, text=True,
    )
    for name in PREPROCESS_FILES:
        published = outdir / sample / "preprocess" / name
        assert published.read_bytes() == (direct / name).read_bytes(), f"{sample}/preprocess/{name} differs"


@pytest.mark.parametrize("sample,reads", samplesheet_rows())
def test_published_frames_match_the_original_for_unmodified_records(test_run, sample, reads):
    """Test records copied verbatim from the golden input give the original's frames, in the original's order."""
    _, outdir, result = test_run
    assert result.returncode == 0
    golden_ids = {rid for rid, _ in read_fasta(GOLDEN_300.parent / "input.fa")}
    verbatim = [rid for rid in input_record_ids(reads) if rid in golden_ids]
    assert verbatim, "the test data should reuse records of the golden input"

    def of_records(path: Path, ids: set[str]) -> list[tuple[str, str]]:
        return [(fid, seq) for fid, seq in read_fasta(path) if re.sub(r"_chunk_\d+([FR]\d)?$", "", fid) in ids]

    for name in ("chunked.fa", "identified_nucleotide.fa", "identified_protein.faa"):
        expected = of_records(GOLDEN_300 / name, set(verbatim))
        published = of_records(outdir / sample / "preprocess" / name, set(verbatim))
        assert published == expected, f"{sample}/preprocess/{name} differs from the original"


@pytest.mark.parametrize("sample,reads", samplesheet_rows())
def test_predictions_cover_every_frame_in_input_order(test_run, sample, reads):
    """Shards come back in shard order: prediction rows follow identified_protein.faa exactly."""
    _, outdir, result = test_run
    assert result.returncode == 0
    frames = [fid for fid, _ in read_fasta(outdir / sample / "preprocess" / "identified_protein.faa")]
    with open(outdir / sample / "prediction_results.txt") as handle:
        rows = [line.rstrip("\n").split("\t") for line in handle]
    assert rows[0] == ["Sequence_ID", "Prediction", "score1", "score2"]
    assert [row[0] for row in rows[1:]] == frames
    assert {row[1] for row in rows[1:]} <= {"virus", "others"}
    chunks = list(dict.fromkeys(fid[:-2] for fid in frames))
    with open(outdir / sample / "prediction_results_highestscore.csv") as handle:
        calls = [line.rstrip("\n").split("\t") for line in handle]
    assert calls[0] == ["Modified_ID", "Is_Virus"]
    # One row per chunk with frames (the original groups with pandas, which orders the groups by id).
    assert sorted(row[0] for row in calls[1:]) == sorted(chunks)


def test_the_larger_sample_was_embedded_in_several_shards(test_run):
    """Otherwise the shard-order test above could not fail."""
    _, outdir, result = test_run
    assert result.returncode == 0
    sample = samplesheet_rows()[0][0]
    summaries = sorted((outdir / sample / "embed").glob("*.embed.json"))
    assert len(summaries) >= 2, summaries


@pytest.mark.parametrize("sample,reads", samplesheet_rows())
def test_every_input_record_is_accounted_for(test_run, sample, reads):
    _, outdir, result = test_run
    assert result.returncode == 0
    ids = input_record_ids(reads)
    for table in (outdir / sample / "preprocess" / "records.tsv", outdir / sample / f"{sample}.records.tsv"):
        with open(table) as handle:
            listed = [line.split("\t")[0] for line in handle.read().splitlines()[1:]]
        assert listed == ids, f"{table} does not list every input record once, in input order"
    assert (outdir / sample / f"{sample}.viral.fa").is_file()
    summary = json.loads((outdir / sample / f"{sample}.summary.json").read_text())
    assert summary, "empty sample summary"


def test_report_and_pipeline_info(test_run):
    _, outdir, result = test_run
    assert result.returncode == 0
    assert (outdir / "report" / "virnucpro_report.html").stat().st_size > 0
    assert list((outdir / "report").glob("*_mqc.tsv")), "no MultiQC custom content"
    info = outdir / "pipeline_info"
    for pattern in ("execution_trace_*.txt", "execution_report_*.html", "execution_timeline_*.html",
                    "pipeline_dag_*.html"):
        assert len(list(info.glob(pattern))) == 1, pattern
    trace = next(info.glob("execution_trace_*.txt")).read_text().splitlines()
    processes = {line.split("\t")[3].split(" (")[0].split(":")[-1] for line in trace[1:]}
    assert processes == {"PREPROCESS", "SHARD", "EMBED", "CLASSIFY", "AGGREGATE", "REPORT"}
    params = json.loads((info / "params.json").read_text())
    assert params["chunk_length"] == 300 and params["input"].endswith("samplesheet.csv")
    versions = (info / "software_versions.yml").read_text()
    for expected in ("PREPROCESS:", "EMBED:", "torch:", "Nextflow:", "virnucpro:"):
        assert expected in versions, versions


def test_resume_reuses_every_task(test_run):
    cwd, outdir, result = test_run
    assert result.returncode == 0
    again = run_nextflow(["-profile", "test", "--outdir", str(outdir), "-resume"], cwd)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "Submitted process" not in again.stdout, again.stdout
    assert "Cached process" in again.stdout


def test_single_file_input_is_named_after_the_file(tmp_path):
    """--input one.fastq.gz (no samplesheet): sample 'test' from test.fastq.gz; stub run, so only the wiring counts."""
    outdir = tmp_path / "results"
    result = run_nextflow(["-profile", "test", "-stub", "--outdir", str(outdir),
                           "--input", str(TEST_DATA / "test.fastq.gz")], tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    assert sorted(p.name for p in outdir.iterdir()) == ["pipeline_info", "report", "test"]
    assert (outdir / "test" / "preprocess" / "chunked.fa").is_file()


def test_scripts_pass_the_strict_parser(tmp_path):
    """The .nf files parse and run (stub) under NXF_SYNTAX_PARSER=v2, the default parser from Nextflow 26.04.

    25.04's preview strict config parser rejects `meta` in conf/modules.config's publishDir closures, so this run
    uses nextflow.config without conf/modules.config (-C replaces the config files).
    """
    config = (REPO / "nextflow.config").read_text()
    config = config.replace("includeConfig 'conf/modules.config'", "")
    config = config.replace("includeConfig 'conf/", f"includeConfig '{REPO}/conf/")
    (tmp_path / "strict.config").write_text(config)
    outdir = tmp_path / "results"
    cmd = nextflow_command() + ["-C", str(tmp_path / "strict.config"), "run", str(MAIN), "-ansi-log", "false",
                                "-profile", "test", "-stub", "--outdir", str(outdir)]
    env = dict(os.environ, NXF_SYNTAX_PARSER="v2", NXF_ANSI_LOG="false")
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Submitted process > VIRNUCPRO:REPORT" in result.stdout


# --------------------------------------------------------------------------------------------------------------
# Rejected runs: one line naming the file, non-zero exit, nothing in --outdir


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp / "empty.fa"
    empty.write_text("")
    not_fasta = tmp / "table.fa"
    not_fasta.write_text("id,sequence\nr1,ACGT\n")
    empty_gz = tmp / "empty.fa.gz"
    with gzip.open(empty_gz, "wb"):
        pass
    missing = tmp / "missing.fa"
    missing_model = tmp / "no_such_model.pt"
    sheet = tmp / "sheet" / "samples.csv"
    sheet.parent.mkdir()
    sheet.write_text("sample,fasta\nok,ok.fa\nlost,lost.fa\n")
    (sheet.parent / "ok.fa").write_text(">r1\nACGTACGTAC\n")
    return {
        "samplesheet row with a missing file": (["--input", str(sheet)], str(sheet.parent / "lost.fa")),
        "missing input": (["--input", str(missing)], str(missing)),
        "empty input": (["--input", str(empty)], str(empty)),
        "empty gzip input": (["--input", str(empty_gz)], str(empty_gz)),
        "not FASTA": (["--input", str(not_fasta)], str(not_fasta)),
        "missing model": (["--esm_model", str(missing_model)], str(missing_model)),
    }


@pytest.mark.parametrize("case", ["missing input", "empty input", "empty gzip input", "not FASTA", "missing model",
                                  "samplesheet row with a missing file"])
def test_bad_input_stops_before_anything_runs(tmp_path, case):
    args, named = bad_inputs(tmp_path)[case]
    outdir = tmp_path / "results"
    result = run_nextflow(["-profile", "test", "--outdir", str(outdir), *args], tmp_path, timeout=300)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    messages = [line for line in output.splitlines() if line.startswith("virnucpro:")]
    assert len(messages) == 1 and named in messages[0], output
    assert "Submitted process" not in output
    assert not outdir.exists(), sorted(p.relative_to(outdir) for p in outdir.rglob("*"))


def test_wrong_values_are_listed_one_line_each(tmp_path):
    outdir = tmp_path / "results"
    result = run_nextflow(["-profile", "test", "--outdir", str(outdir), "--chunk_length", "400",
                           "--precision", "fp8", "--chunk-lenght", "300"], tmp_path, timeout=300)
    assert result.returncode != 0
    messages = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("virnucpro:")]
    assert any("--chunk_length" in m and "300, 500" in m for m in messages), messages
    assert any("--precision" in m and "fp8" in m for m in messages), messages
    assert any("unknown parameter --chunk_lenght" in m for m in messages), messages
    assert len(messages) == 3, messages
    assert not outdir.exists()


def test_help_lists_every_schema_parameter(tmp_path):
    result = run_nextflow(["--help"], tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    names = [name for group in schema["$defs"].values() for name in group["properties"]]
    for name in names:
        assert f"--{name} " in result.stdout, name
    assert not (tmp_path / "results").exists()


def test_schema_documents_every_config_parameter(tmp_path):
    """nextflow_schema.json and nextflow.config's params block list the same parameters."""
    result = subprocess.run(nextflow_command() + ["config", str(REPO), "-flat"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    configured = {m.group(1) for m in re.finditer(r"^params\.(\w+)\s*=", result.stdout, re.M)}
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    documented = {name for group in schema["$defs"].values() for name in group["properties"]}
    assert configured == documented


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
