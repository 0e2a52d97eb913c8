"""Bad input inside a run (issue 15): what the pipeline does with an empty sample, non-ASCII descriptions and a
protein file among good samples. Each test is one `-profile test` run on a small samplesheet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nfpipeline import REPO, run_nextflow

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

GOOD = REPO / "tests" / "data" / "tiny.fa"


def sheet(folder: Path, rows: dict[str, bytes]) -> Path:
    folder.mkdir()
    for sample, content in rows.items():
        (folder / f"{sample}.fa").write_bytes(content)
    path = folder / "samples.csv"
    path.write_text("sample,fasta\n" + "".join(f"{s},{s}.fa\n" for s in rows))
    return path


def test_an_empty_sample_is_reported_and_utf8_descriptions_pass(tmp_path):
    good = GOOD.read_bytes().replace(b"\n", " strain Ñ, Köln\n".encode(), 1)  # a UTF-8 description on record 1
    samples = sheet(tmp_path / "data", {"good": good, "nothing": b""})
    outdir = tmp_path / "results"
    result = run_nextflow(["-profile", "test", "--input", str(samples), "--outdir", str(outdir)], tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert any("sample nothing" in line and "file is empty" in line for line in result.stdout.splitlines())
    empty = json.loads((outdir / "nothing" / "nothing.summary.json").read_text())
    assert empty["records"] == 0 and "the input file holds no records (empty file)" in empty["warnings"]
    summary = json.loads((outdir / "good" / "good.summary.json").read_text())
    assert summary["records"] == 20
    assert summary["inputs"]["input"] == str(tmp_path / "data" / "good.fa")  # the user's file, not input/good.fa
    assert "nothing" in (outdir / "report" / "virnucpro_summary_mqc.tsv").read_text()


def test_a_protein_sample_stops_naming_the_users_file(tmp_path):
    samples = sheet(tmp_path / "data", {"good": GOOD.read_bytes(),
                                        "prot": b">fibroin\nMKVLE" + b"GAGAGSGAGAGSGAGAGYGAGVGAGAGS" * 30 + b"\n"})
    outdir = tmp_path / "results"
    result = run_nextflow(["-profile", "test", "--input", str(samples), "--outdir", str(outdir)], tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    user_file = str(tmp_path / "data" / "prot.fa")
    assert f"virnucpro: error: {user_file}: record 1 ('fibroin') looks like a protein sequence" in output, output
    errors = [line for line in output.splitlines() if "virnucpro: error:" in line]
    assert errors and not any("input/prot.fa" in line for line in errors), errors  # not the staged link
    assert not (outdir / "prot").exists()
    assert "ClosedByInterruptException" not in output
