"""Samplesheet validation against assets/schema_input.json (virnucpro/io/samplesheet.py, check-samplesheet)."""

import gzip
import json

import pytest

from virnucpro.cli import main
from virnucpro.errors import InputError
from virnucpro.io.samplesheet import SCHEMA_PATH, load_schema, read_samplesheet


@pytest.fixture
def seqs(tmp_path):
    """A folder with one FASTA, one gzipped FASTQ and a sub-folder FASTA."""
    (tmp_path / "a.fa").write_text(">r1\nACGT\n")
    with gzip.open(tmp_path / "b.fastq.gz", "wt") as fh:
        fh.write("@q1\nACGT\n+\nIIII\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.fna").write_text(">r2\nACGT\n")
    return tmp_path


def sheet(folder, text, name="samples.csv"):
    path = folder / name
    path.write_text(text)
    return path


def error_of(path):
    with pytest.raises(InputError) as info:
        read_samplesheet(path)
    return str(info.value)


def test_schema_is_valid_json_and_names_the_columns():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["items"]["properties"]) == {"sample", "fasta", "fastq", "fastq_1", "fastq_2"}
    load_schema()  # every keyword it uses is implemented


def test_good_sheet_resolves_relative_paths_against_the_sheet_folder(seqs, tmp_path, monkeypatch):
    path = sheet(seqs, "sample,fasta,fastq\nS1,a.fa,\nS2,,b.fastq.gz\nS3,sub/c.fna,\n")
    monkeypatch.chdir(tmp_path.parent)  # a working directory where the relative paths would not exist
    samples = read_samplesheet(path)
    assert [(s.sample, s.files, s.format) for s in samples] == [
        ("S1", (str(seqs / "a.fa"),), "fasta"),
        ("S2", (str(seqs / "b.fastq.gz"),), "fastq"),
        ("S3", (str(seqs / "sub" / "c.fna"),), "fasta"),
    ]


def test_crlf_bom_blank_lines_and_absolute_paths(seqs):
    path = seqs / "win.csv"
    path.write_bytes(b"\xef\xbb\xbfsample,fasta\r\n\r\nS1," + str(seqs / "a.fa").encode() + b"\r\n")
    assert [s.sample for s in read_samplesheet(path)] == ["S1"]


def test_paired_reads_metadata_columns_and_uris(seqs):
    """fastq_1 + fastq_2 are both the sample's reads; other columns are metadata; URIs are kept as written."""
    (seqs / "r2.fq").write_text("@q1\nACGT\n+\nIIII\n")
    path = sheet(seqs, "sample,fastq_1,fastq_2,fasta,batch,site\n"
                       "P1,b.fastq.gz,r2.fq,,b7,lung\n"
                       "P2,b.fastq.gz,,,,\n"
                       "R1,,,s3://bucket/reads/a.fa,b8,\n"
                       "R2,https://example.org/x_1.fastq.gz,gs://bucket/x_2.fastq.gz,,,\n")
    samples = read_samplesheet(path)
    assert [(s.sample, s.files, s.format, s.meta) for s in samples] == [
        ("P1", (str(seqs / "b.fastq.gz"), str(seqs / "r2.fq")), "fastq_1", {"batch": "b7", "site": "lung"}),
        ("P2", (str(seqs / "b.fastq.gz"),), "fastq_1", {}),
        ("R1", ("s3://bucket/reads/a.fa",), "fasta", {"batch": "b8"}),
        ("R2", ("https://example.org/x_1.fastq.gz", "gs://bucket/x_2.fastq.gz"), "fastq_1", {}),
    ]


def test_uri_is_not_resolved_against_the_sheet_folder_but_its_pattern_is_checked(seqs):
    assert read_samplesheet(sheet(seqs, "sample,fasta\nS1,s3://b/a.fa\n"))[0].files == ("s3://b/a.fa",)
    assert "fasta must be a path or URI" in error_of(sheet(seqs, "sample,fasta\nS1,s3://b/a.txt\n", "u.csv"))


@pytest.mark.parametrize("text, expected", [
    ("sample,fasta\nS1,missing.fa\n", "line 2 (sample 'S1'): fasta file not found"),
    ("sample,fastq_1,fastq_2\nS1,,b.fastq.gz\n", "line 2 (sample 'S1'): fastq_2 is given, so fastq_1 is needed too"),
    ("sample,fastq_1,fastq_2\nS1,b.fastq.gz,gone.fq\n", "fastq_2 file not found"),
    ("sample,fastq,fastq_1\nS1,b.fastq.gz,b.fastq.gz\n", "exactly one of"),
    ("sample,fastq_1,fastq2\nS1,b.fastq.gz,b.fastq.gz\n", "line 1: unknown column 'fastq2': did you mean 'fastq_2'?"),
    ("sample,fasta,my group\nS1,a.fa,x\n", "line 1: column 'my group': column names must start with a letter"),
    ("sample,fasta,id\nS1,a.fa,x\n", "'id', 'shard' and 'n_shards' are reserved"),
    ("sample,fasta\nS1,a.fa\nS1,sub/c.fna\n", "line 3 (sample 'S1'): duplicate sample 'S1' (first on line 2)"),
    ("sample,fasta\nmy sample,a.fa\n", "line 2 (sample 'my sample'): sample name must start with a letter"),
    ("sample,fasta\nreport,a.fa\n", "'report' and 'multiqc' are reserved"),
    ("", "empty samplesheet"),
    ("sample,fasta\n", "no samples"),
    ("fasta\na.fa\n", "line 1: missing column 'sample'"),
    ("sample\nS1\n", "needs a fasta, fastq or fastq_1 column"),
    ("sample,fasta\nS1,a.fa,extra\n", "line 2: 3 fields, but the header has 2"),
    ("sample,fasta,fastq\nS1,a.fa,b.fastq.gz\n", "exactly one of"),
    ("sample,fasta,fastq\nS1,,\n", "exactly one of"),
    ("sample,fasta\nS1,b.fastq.gz\n", "looks like a fastq file: give it in a 'fastq' column"),
    ("sample,fasta\nS1,a.txt\n", "fasta must be a path or URI without spaces ending in .fa"),
    ("sample,fasta\n,a.fa\n", "line 2: sample is empty"),
])
def test_bad_sheets_give_one_line_naming_sheet_line_and_problem(seqs, text, expected):
    (seqs / "a.txt").write_text(">r\nA\n")
    path = sheet(seqs, text)
    message = error_of(path)
    assert message.startswith(str(path) + ": ")
    assert expected in message
    assert "\n" not in message


def test_missing_sheet_and_binary_sheet(tmp_path):
    assert "samplesheet not found" in error_of(tmp_path / "nope.csv")
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    assert "not a text CSV" in error_of(path)


def test_check_samplesheet_command_writes_absolute_valid_sheet(seqs, tmp_path, capsys):
    path = sheet(seqs, "sample,fasta,fastq,fastq_1,fastq_2,batch\nS1,a.fa,,,,b1\nS2,,b.fastq.gz,,,\n"
                       "S3,,,b.fastq.gz,https://h/r2.fq,\n")
    out = tmp_path / "out" / "samplesheet.valid.json"
    assert main(["check-samplesheet", "--input", str(path), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == [
        {"sample": "S1", "files": [str(seqs / "a.fa")], "format": "fasta", "meta": {"batch": "b1"}},
        {"sample": "S2", "files": [str(seqs / "b.fastq.gz")], "format": "fastq", "meta": {}},
        {"sample": "S3", "files": [str(seqs / "b.fastq.gz"), "https://h/r2.fq"], "format": "fastq_1", "meta": {}},
    ]


def test_check_samplesheet_command_bad_sheet_exits_2_without_output(seqs, tmp_path, capsys):
    path = sheet(seqs, "sample,fasta\nS1,missing.fa\n")
    out = tmp_path / "samplesheet.valid.json"
    assert main(["check-samplesheet", "--input", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("virnucpro: error: ") and "missing.fa" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_rules_come_from_the_schema_file(seqs, tmp_path):
    """Changing the schema changes the check: the pattern is read, not hard-coded."""
    schema = load_schema()
    schema["items"]["properties"]["sample"]["pattern"] = "^S[0-9]+$"
    del schema["items"]["properties"]["sample"]["errorMessage"]
    path = sheet(seqs, "sample,fasta\nX1,a.fa\n")
    with pytest.raises(InputError, match=r"sample 'X1' does not match \^S\[0-9\]\+\$"):
        read_samplesheet(path, schema)
    assert read_samplesheet(sheet(seqs, "sample,fasta\nS7,a.fa\n", "ok.csv"), schema)[0].sample == "S7"


def test_unknown_schema_keyword_is_refused(tmp_path):
    schema = json.loads(SCHEMA_PATH.read_text())
    schema["items"]["properties"]["sample"]["maxLength"] = 5
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    with pytest.raises(NotImplementedError, match="maxLength"):
        load_schema(path)
