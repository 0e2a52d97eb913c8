"""The pipeline's launch check (`virnucpro check-input`): parameters against nextflow_schema.json, --input as a
samplesheet or one sequence file, local files sniffed, one line per problem (virnucpro/io/pipeline_params.py,
samplesheet.resolve_input, seqio.sniff_problem)."""

import bz2
import gzip
import json

import pytest

from virnucpro.cli import main
from virnucpro.io.pipeline_params import check_params, edit_distance, load_schema, snake_name
from virnucpro.io.samplesheet import resolve_input
from virnucpro.io.seqio import EMPTY_FILE, sniff_problem

SCHEMA = load_schema()


@pytest.fixture
def run_params(tmp_path):
    """The required parameters, pointing at existing files."""
    (tmp_path / "reads.fa").write_text(">r1\nACGT\n")
    (tmp_path / "esm.pt").write_bytes(b"x")
    (tmp_path / "dnabert").mkdir()
    (tmp_path / "clf.pth").write_bytes(b"x")
    return {"input": str(tmp_path / "reads.fa"), "esm_model": str(tmp_path / "esm.pt"),
            "dnabert_model": str(tmp_path / "dnabert"), "classifier": str(tmp_path / "clf.pth"),
            "outdir": "results", "chunk_length": 500, "threshold": 0.5, "save_features": False}


def test_good_parameters_pass(run_params):
    assert check_params(run_params, SCHEMA) == ([], [])


@pytest.mark.parametrize("name, value, expected", [
    ("chunk_length", 400, "--chunk_length must be one of 300, 500, got '400'"),
    ("chunk_length", "abc", "--chunk_length must be integer, got 'abc'"),
    ("precision", "fp8", "--precision must be one of fp16, fp32, got 'fp8'"),
    ("threshold", 1.5, "--threshold must be at most 1, got 1.5"),
    ("min_length", -1, "--min_length must be at least 0, got -1"),
    ("save_features", "yes", "--save_features must be boolean, got 'yes'"),
    ("checkpoint_every", True, "--checkpoint_every must be integer, got 'true'"),
    ("shard_tokens", "lots", "--shard_tokens 'lots' does not match ^(auto|[1-9][0-9]*)$: a positive number of "
                             "tokens, or auto"),
    ("max_memory", "3 GiB", "--max_memory '3 GiB' does not match"),
])
def test_wrong_values_give_one_line_each(run_params, name, value, expected):
    problems, _ = check_params({**run_params, name: value}, SCHEMA)
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_values_of_the_right_kinds_pass(run_params):
    given = {**run_params, "shard_tokens": 2000, "gpus": "0,1", "max_memory": "3 GB", "max_time": "2.h",
             "max_cpus": 4}
    assert check_params(given, SCHEMA) == ([], [])


def test_required_and_path_parameters(run_params, tmp_path):
    given = {**run_params, "esm_model": "", "classifier": str(tmp_path / "dnabert"),
             "dnabert_model": str(tmp_path / "clf.pth"), "input": str(tmp_path / "gone.fa")}
    problems, _ = check_params(given, SCHEMA)
    assert problems[0] == f"--input: {tmp_path / 'gone.fa'}: no such file or directory"
    assert problems[1].startswith("--esm_model is required: ")
    assert problems[2:] == [f"--dnabert_model: {tmp_path / 'clf.pth'}: is not a directory",
                            f"--classifier: {tmp_path / 'dnabert'}: is a directory, expected a file"]
    uri = {**run_params, "esm_model": "s3://bucket/esm2.pt"}  # left for Nextflow to stage
    assert check_params(uri, SCHEMA) == ([], [])


def test_unknown_parameters_warn_with_the_closest_name_or_fail_when_asked(run_params):
    given = {**run_params, "chunk-lenght": 300, "chunkLenght": 300, "my_site_param": 1}
    problems, warnings = check_params(given, SCHEMA, ignore=("mySiteParam",))
    assert problems == [] and len(warnings) == 1, warnings
    assert warnings[0].startswith("unknown parameter --chunk_lenght (closest known parameter: --chunk_length; see "
                                  "--help); ignored")
    problems, warnings = check_params(given, SCHEMA, ignore=("my_site_param",), fail_unknown=True)
    assert warnings == [] and problems == [
        "unknown parameter --chunk_lenght (closest known parameter: --chunk_length; see --help)"]


def test_names_and_distances():
    assert snake_name("chunk-length") == snake_name("chunkLength") == "chunk_length"
    assert edit_distance("treshold", "threshold") == 1 and edit_distance("", "abc") == 3
    assert edit_distance("kitten", "sitting") == 3


def test_sniff(tmp_path):
    cases = {"empty.fa": b"", "blank.fa": b"\n \n", "table.fa": b"id,seq\nr1,ACGT\n", "bin.fa": b"\x00\x01",
             "ok.fa": b"\n>r1\nACGT\n", "ok.fq": b"@r1\nACGT\n+\nIIII\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    with gzip.open(tmp_path / "empty.fa.gz", "wb"):
        pass
    (tmp_path / "bad.fa.bz2").write_bytes(bz2.compress(b"hello\n"))
    (tmp_path / "cut.fa.gz").write_bytes(gzip.compress(b">r1\n" + b"ACGT" * 50000)[:100])
    assert sniff_problem(tmp_path / "empty.fa") == sniff_problem(tmp_path / "blank.fa") == EMPTY_FILE
    assert sniff_problem(tmp_path / "empty.fa.gz") == EMPTY_FILE
    assert sniff_problem(tmp_path / "table.fa") == "not a FASTA or FASTQ file (starts with 'i', expected '>' or '@')"
    assert sniff_problem(tmp_path / "bin.fa") == "not a FASTA or FASTQ file (starts with byte 0x00, expected '>' or '@')"
    assert sniff_problem(tmp_path / "bad.fa.bz2").startswith("not a FASTA or FASTQ file (starts with 'h'")
    assert sniff_problem(tmp_path / "ok.fa") is None and sniff_problem(tmp_path / "ok.fq") is None
    assert sniff_problem(tmp_path / "cut.fa.gz").startswith("cannot be read as FASTA/FASTQ (Compressed file ended")
    assert sniff_problem(tmp_path / "gone.fa") == "no such file"
    assert sniff_problem(tmp_path) == "is a directory, expected a FASTA or FASTQ file"


def test_a_lone_file_is_named_after_the_file(tmp_path, monkeypatch):
    (tmp_path / "run-1.fastq.gz").write_bytes(gzip.compress(b"@r1\nACGT\n+\nIIII\n"))
    (tmp_path / "report.fa").write_text(">r1\nACGT\n")
    (tmp_path / "empty.fa").write_text("")
    monkeypatch.chdir(tmp_path)  # relative to the launch folder
    samples, problems, warnings = resolve_input("run-1.fastq.gz")
    assert [(s.sample, s.files) for s in samples] == [("run-1", (str(tmp_path / "run-1.fastq.gz"),))]
    assert problems == warnings == []
    _, problems, _ = resolve_input("report.fa")
    assert problems == [f"{tmp_path / 'report.fa'}: 'report' (from the file name) cannot be a sample name: use "
                        "letters, digits, '.', '_', '-' and not pipeline_info or report or multiqc; rename the file "
                        "or use a samplesheet"]
    assert resolve_input("empty.fa")[1] == [f"{tmp_path / 'empty.fa'}: file is empty"]  # alone: an error
    samples, problems, _ = resolve_input("https://example.org/data/x.fa.gz")
    assert problems == [] and samples[0].sample == "x" and samples[0].files == ("https://example.org/data/x.fa.gz",)


def test_a_samplesheet_warns_about_an_empty_sample_and_stops_at_a_bad_one(tmp_path):
    (tmp_path / "good.fa").write_text(">r1\nACGT\n")
    (tmp_path / "nothing.fa").write_text("")
    (tmp_path / "table.fa").write_text("id,seq\n")
    sheet = tmp_path / "s.csv"
    sheet.write_text("sample,fasta\ngood,good.fa\nnothing,nothing.fa\nremote,https://example.org/r.fa\n")
    samples, problems, warnings = resolve_input(str(sheet))
    assert [s.sample for s in samples] == ["good", "nothing", "remote"] and problems == []
    assert warnings == [f"sample nothing: {tmp_path / 'nothing.fa'}: file is empty; it runs as a sample with 0 records"]
    sheet.write_text("sample,fasta\ngood,good.fa\nbad,table.fa\nlost,lost.fa\n")
    assert resolve_input(str(sheet))[1] == [f"{sheet}: line 4 (sample 'lost'): fasta file not found: "
                                            f"{tmp_path / 'lost.fa'}"]
    sheet.write_text("sample,fasta\ngood,good.fa\nbad,table.fa\n")
    assert resolve_input(str(sheet))[1][0].startswith(f"{tmp_path / 'table.fa'}: not a FASTA or FASTQ file")


def test_command_prints_one_line_per_problem_and_writes_samples_only_when_all_is_well(run_params, tmp_path, capsys):
    params, out = tmp_path / "params.json", tmp_path / "samples.json"
    params.write_text(json.dumps({**run_params, "chunk_length": 400, "precision": "fp8", "treshold": 1}))
    assert main(["check-input", "--params", str(params), "--out", str(out)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1] for line in lines] == ["warning", "error", "error"], lines
    assert not out.exists()
    params.write_text(json.dumps({**run_params, "treshold": 1}))
    assert main(["check-input", "--params", str(params), "--out", str(out), "--fail-unrecognised-params"]) == 2
    assert capsys.readouterr().err.startswith("virnucpro: error: unknown parameter --treshold (closest known "
                                              "parameter: --threshold")
    assert main(["check-input", "--params", str(params), "--out", str(out), "--ignore-params", "treshold"]) == 0
    assert capsys.readouterr().err == ""
    assert json.loads(out.read_text()) == [{"sample": "reads", "files": [run_params["input"]], "format": "",
                                            "meta": {}}]


def test_help_lists_every_parameter_by_section(capsys):
    assert main(["check-input", "--print-help"]) == 0
    text = capsys.readouterr().out
    assert "\nPreprocessing options:\n  --chunk_length       [integer] " in text
    assert "      choices: 300, 500\n      default: 500\n" in text
    assert "  --input              [string, required] " in text and "  --max_cpus           [integer, hidden] " in text
    for name in (n for group in SCHEMA["$defs"].values() for n in group["properties"]):
        assert f"\n  --{name} " in text, name
