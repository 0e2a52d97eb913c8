"""The Nextflow pipeline end to end, driven through `nextflow run` (nf-test is not obtainable offline).

One run of `-profile test` (bundled data and tiny models in assets/test/, models from `make-test-models`) is
shared by the tests of its outputs; the failure-mode tests each start Nextflow with a bad parameter and check
that it stops before running anything, with one line naming the file, and leaves --outdir untouched.
Needs the toolchain: `make install test-models` (`make test` does both).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from nfpipeline import (MAIN, MIN_LENGTH, REPO, TEST_DATA, TEST_PROFILE_ARGS, input_record_ids, nextflow_command,
                        nextflow_env, read_fasta, run_nextflow, samplesheet_rows)

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

GOLDEN_300 = Path(__file__).resolve().parents[1] / "data" / "golden" / "expected_300"
PREPROCESS_FILES = ("chunked.fa", "identified_nucleotide.fa", "identified_protein.faa", "records.tsv")
REPORT_FILES = ("virnucpro_report.html", "virnucpro_summary_mqc.tsv", "virnucpro_calls_mqc.tsv",
                "virnucpro_score_histogram_mqc.json", "output.md")
REGION_FILES = ("chunks.tsv", "viral_regions.tsv", "viral_regions.gff3", "viral_regions.bed", "viral_regions.fa")
VERSIONS_FILE = "virnucpro_software_mqc_versions.yml"  # *_mqc_versions.yml: MultiQC's software versions


# --------------------------------------------------------------------------------------------------------------
# The test profile, run once (the `test_run` fixture of conftest.py)


def test_test_profile_succeeds(test_run):
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0, f"nextflow failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("sample,reads", samplesheet_rows())
def test_published_preprocess_matches_the_python_command(test_run, tmp_path, sample, reads):
    """The pipeline publishes exactly what `virnucpro preprocess` writes for the same input and chunk length."""
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0
    direct = tmp_path / "direct"
    subprocess.run(
        [str(REPO / "bin" / "virnucpro"), "preprocess", "--input", str(reads), "--chunk-length", "300",
         "--min-length", str(MIN_LENGTH), "--outdir", str(direct), "--sample", sample],
        check=True, capture_output=True, text=True,
    )
    for name in PREPROCESS_FILES:
        published = outdir / sample / "preprocess" / name
        assert published.read_bytes() == (direct / name).read_bytes(), f"{sample}/preprocess/{name} differs"


@pytest.mark.parametrize("sample,reads", samplesheet_rows())
def test_published_frames_match_the_original_for_unmodified_records(test_run, sample, reads):
    """Test records copied verbatim from the golden input give the original's frames, in the original's order."""
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0
    golden_ids = {rid for rid, seq in read_fasta(GOLDEN_300.parent / "input.fa") if len(seq) >= MIN_LENGTH}
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
    outdir, result = test_run.outdir, test_run.result
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
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0
    sample = samplesheet_rows()[0][0]
    summaries = sorted((outdir / sample / "embed").glob("*.embed.json"))
    assert len(summaries) >= 2, summaries


@pytest.mark.parametrize("sample,reads", samplesheet_rows())
def test_every_input_record_is_accounted_for(test_run, sample, reads):
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0
    ids = input_record_ids(reads)
    for table in (outdir / sample / "preprocess" / "records.tsv", outdir / sample / f"{sample}.records.tsv"):
        with open(table) as handle:
            listed = [line.split("\t")[0] for line in handle.read().splitlines()[1:]]
        assert listed == ids, f"{table} does not list every input record once, in input order"
    assert (outdir / sample / f"{sample}.viral.fa").is_file()
    summary = json.loads((outdir / sample / f"{sample}.summary.json").read_text())
    assert summary, "empty sample summary"


def test_short_records_are_listed_counted_and_never_embedded(test_run):
    """seq49 (133 bp) is below --min_length 150: too_short in both records tables, no chunk, no frame in any shard's
    predictions, counted in the summary and the report."""
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0
    sample = samplesheet_rows()[0][0]
    rows = {line.split("\t")[0]: line.split("\t") for line in
            (outdir / sample / f"{sample}.records.tsv").read_text().splitlines()}
    header = rows.pop("record_id")
    short = dict(zip(header, rows["seq49"]))
    assert (short["length"], short["status"], short["n_chunks"], short["call"]) == ("133", "too_short", "0",
                                                                                    "no_prediction")
    assert not [line for line in (outdir / sample / "prediction_results.txt").read_text().splitlines()
                if line.startswith("seq49_")]
    embedded = sum(json.loads(p.read_text())["frames"] for p in (outdir / sample / "embed").glob("*.embed.json"))
    assert embedded == len((outdir / sample / "prediction_results.txt").read_text().splitlines()) - 1
    summary = json.loads((outdir / sample / f"{sample}.summary.json").read_text())
    assert summary["records_too_short"] == 1 and summary["min_length"] == MIN_LENGTH
    html = (outdir / "report" / "virnucpro_report.html").read_text()
    assert "too short" in html


def test_region_files_are_published_and_the_report_links_only_to_existing_files(test_run):
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0
    for sample, _ in samplesheet_rows():
        for suffix in REGION_FILES:
            assert (outdir / sample / f"{sample}.{suffix}").is_file(), suffix
        gff = (outdir / sample / f"{sample}.viral_regions.gff3").read_text()
        assert gff.startswith("##gff-version 3\n")
        regions = (outdir / sample / f"{sample}.viral_regions.tsv").read_text().splitlines()
        summary = json.loads((outdir / sample / f"{sample}.summary.json").read_text())
        assert len(regions) - 1 == summary["regions"]
    html = (outdir / "report" / "virnucpro_report.html").read_text()
    links = re.findall(r'href="([^"]+)"', html)
    assert links and "output.md" in links
    for link in links:
        assert (outdir / "report" / unquote(link)).resolve().is_file(), link
    assert (outdir / "report" / "output.md").read_text() == (REPO / "docs" / "output.md").read_text()


def test_report_and_pipeline_info(test_run):
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0
    assert (outdir / "report" / "virnucpro_report.html").stat().st_size > 0
    assert list((outdir / "report").glob("*_mqc.tsv")), "no MultiQC custom content"
    info = outdir / "pipeline_info"
    for pattern in ("execution_trace_*.txt", "execution_report_*.html", "execution_timeline_*.html",
                    "pipeline_dag_*.html"):
        assert len(list(info.glob(pattern))) == 1, pattern
    trace = next(info.glob("execution_trace_*.txt")).read_text().splitlines()
    processes = {line.split("\t")[3].split(" (")[0].split(":")[-1] for line in trace[1:]}
    assert processes == {"PREPROCESS", "SHARD", "EMBED", "AGGREGATE", "REPORT", "PROVENANCE", "MULTIQC"}
    params = json.loads((info / "params.json").read_text())
    assert params["chunk_length"] == 300 and params["input"].endswith("samplesheet.csv")
    versions = (info / VERSIONS_FILE).read_text()
    for expected in ("PREPROCESS:", "EMBED:", "Nextflow:", "virnucpro:"):
        assert expected in versions, versions
    # EMBED's `virnucpro --versions` lines, split into one entry per tool, from the task's own environment.
    import numpy
    import torch
    embed = _section(versions, "EMBED")
    assert embed["torch"] == torch.__version__ and embed["numpy"] == numpy.__version__, embed
    assert embed["python"] == ".".join(map(str, sys.version_info[:3])) and "transformers" in embed, embed


def test_multiqc_report_has_our_sections_general_statistics_and_versions(test_run):
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0
    data = outdir / "multiqc" / "multiqc_data"
    assert (outdir / "multiqc" / "multiqc_report.html").stat().st_size > 0
    for section in ("virnucpro_summary_table", "virnucpro_calls_plot", "virnucpro_score_histogram_plot"):
        assert (data / f"multiqc_{section}.txt").is_file(), section
    with open(data / "multiqc_general_stats.txt") as handle:
        rows = {row["Sample"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert set(rows) == {sample for sample, _ in samplesheet_rows()}
    for sample, row in rows.items():
        summary = json.loads((outdir / sample / f"{sample}.summary.json").read_text())
        assert int(row["custom_content_virnucpro_general_stats-records"]) == summary["records"], row
        assert int(row["custom_content_virnucpro_general_stats-viral"]) == summary["records_viral"], row
    with open(data / "multiqc_software_versions.txt") as handle:
        versions = {row["Sample"]: row for row in csv.DictReader(handle, delimiter="\t")}
    import torch
    assert versions["EMBED"]["torch"] == torch.__version__ and versions["Workflow"]["virnucpro"] == "0.1.0"


def _section(yaml_text: str, process: str) -> dict[str, str]:
    """`tool: 'version'` entries under `process:` in the versions file."""
    lines = yaml_text.splitlines()
    start = lines.index(f"{process}:") + 1
    entries = {}
    for line in lines[start:]:
        if not line.startswith("  "):
            break
        tool, version = line.strip().split(": ", 1)
        entries[tool] = version.strip("'")
    return entries


def test_threshold_and_chunk_length_reach_aggregate(test_run):
    """--threshold 0.55 (not the default 0.5) and the test profile's chunk length 300 are in every summary."""
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0
    for sample, _ in samplesheet_rows():
        summary = json.loads((outdir / sample / f"{sample}.summary.json").read_text())
        assert summary["threshold"] == 0.55 and summary["chunk_length"] == 300, summary
    scripts = [p.read_text() for p in (test_run.cwd / "work").glob("*/*/.command.sh")]
    aggregate = [s for s in scripts if "virnucpro aggregate" in s]
    assert len(aggregate) == len(samplesheet_rows())
    for script in aggregate:
        # The shard TSVs, in shard order, so that aggregate checks the predicted ids against them.
        shards = re.search(r"--shards ((?:shards/shard_\d+\.tsv ?)+)", script)
        assert shards, script
        names = shards.group(1).split()
        assert names == sorted(names, key=lambda n: (len(n), n)), names
        assert "--chunk-length 300" in script and "--threshold 0.55" in script, script
        assert f"--min-length {MIN_LENGTH}" in script and "--region-gap 1" in script, script


def test_model_provenance_is_published_and_shown_in_the_report(test_run):
    outdir, result = test_run.outdir, test_run.result
    assert result.returncode == 0
    record = json.loads((outdir / "pipeline_info" / "model_provenance.json").read_text())
    assert record["precision_requested"] == "fp32" and record["chunk_length"] == 300
    models = record["models"]
    esm = models["esm"]
    assert esm["path"] == str((TEST_DATA / "models" / "esm2_tiny.pt").resolve())
    assert esm["sha256"] == hashlib.sha256(Path(esm["path"]).read_bytes()).hexdigest()
    dnabert = models["dnabert"]
    assert {f["name"] for f in dnabert["files"]} >= {"config.json", "pytorch_model.bin"}
    assert all(m["test_model"] for m in models.values())
    html = (outdir / "report" / "virnucpro_report.html").read_text()
    assert "model_provenance.json" in html and esm["sha256"] in html
    # the test profile asks for fp32 on the CPU; what the EMBED tasks computed in is shown beside it
    assert re.search(r"precision_used</td><td[^>]*>fp32<", html)


def test_resume_reuses_every_task(test_run):
    cwd, outdir, result = test_run.cwd, test_run.outdir, test_run.result
    assert result.returncode == 0
    again = run_nextflow([*TEST_PROFILE_ARGS, "--outdir", str(outdir), "-resume"], cwd)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "Submitted process" not in again.stdout, again.stdout
    assert "Cached process" in again.stdout


@pytest.fixture(scope="module")
def stub_run(tmp_path_factory):
    """One `-profile test -stub` run, with an institutional profile (INSTITUTIONAL_CONFIG, below): the stub files
    and the profile's caps are checked on the same run."""
    cwd = tmp_path_factory.mktemp("stub")
    config = cwd / "example_hpc.config"
    config.write_text(INSTITUTIONAL_CONFIG)
    outdir = cwd / "results"
    result = run_nextflow(["-c", str(config), "-profile", "test", "-stub", "--outdir", str(outdir)], cwd,
                          timeout=600)
    return outdir, result


def test_stub_run_writes_every_file_under_its_real_name(stub_run):
    """-stub: the whole DAG runs with placeholder files named and headed like the real ones."""
    outdir, result = stub_run
    assert result.returncode == 0, result.stdout[-4000:]
    assert sorted(p.name for p in (outdir / "report").iterdir()) == sorted(REPORT_FILES)
    assert (outdir / "pipeline_info" / "model_provenance.json").is_file()
    assert (outdir / "multiqc" / "multiqc_report.html").is_file()
    for sample, _ in samplesheet_rows():
        records = (outdir / sample / "preprocess" / "records.tsv").read_text().splitlines()
        assert records[0] == "record_id\tlength\tn_chunks\tn_frames\tstatus", records
        for name in (f"{sample}.records.tsv", f"{sample}.viral.fa", f"{sample}.summary.json",
                     "prediction_results.txt", "prediction_results_highestscore.csv",
                     *(f"{sample}.{suffix}" for suffix in REGION_FILES)):
            assert (outdir / sample / name).is_file(), name
        header = (outdir / sample / "prediction_results.txt").read_text().splitlines()[0]
        assert header == "Sequence_ID\tPrediction\tscore1\tscore2"


def test_single_file_input_is_named_after_the_file(tmp_path):
    """--input one.fastq.gz (no samplesheet): sample 'test' from test.fastq.gz; stub run, so only the wiring counts."""
    outdir = tmp_path / "results"
    result = run_nextflow(["-profile", "test", "-stub", "--outdir", str(outdir),
                           "--input", str(TEST_DATA / "test.fastq.gz")], tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    assert sorted(p.name for p in outdir.iterdir()) == ["multiqc", "pipeline_info", "report", "test"]
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
    env = dict(nextflow_env(), NXF_SYNTAX_PARSER="v2")
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Submitted process > VIRNUCPRO:REPORT" in result.stdout


@pytest.fixture
def http_folder(tmp_path):
    """A folder served over HTTP on 127.0.0.1 (a stand-in for https://, s3:// etc.: a URI Nextflow must stage)."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_paired_reads_metadata_and_a_uri_from_a_samplesheet(tmp_path, http_folder):
    """fastq_1 + fastq_2 are one sample holding both mates (ids r/1, r/2); a URI row is staged by Nextflow."""
    served, base = http_folder
    reads = [line for line in gzip.open(TEST_DATA / "test.fastq.gz", "rt").read().splitlines()]
    first = [reads[i:i + 4] for i in range(0, 8, 4)]   # two reads, as both mates of two pairs
    for name, mate in (("pair_R1.fastq", "1"), ("pair_R2.fastq", "2")):
        (tmp_path / name).write_text("".join(f"{r[0].split()[0]} {mate}:N:0:1\n{r[1]}\n+\n{r[3]}\n" for r in first))
    (served / "remote.fa").write_text(">remote_1 from a URI\n" + read_fasta(TEST_DATA / "test.fa")[0][1] + "\n")
    sheet = tmp_path / "samples.csv"
    sheet.write_text("sample,fastq_1,fastq_2,fasta,batch\n"
                     f"paired,pair_R1.fastq,pair_R2.fastq,,b1\n"
                     f"remote,,,{base}/remote.fa,b2\n")
    outdir = tmp_path / "results"
    result = run_nextflow(["-profile", "test", "--input", str(sheet), "--outdir", str(outdir)], tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    ids = [r[0].split()[0][1:] for r in first]
    with open(outdir / "paired" / "paired.records.tsv") as handle:
        listed = [line.split("\t")[0] for line in handle.read().splitlines()[1:]]
    assert listed == [f"{i}/{mate}" for i in ids for mate in ("1", "2")]
    with open(outdir / "remote" / "remote.records.tsv") as handle:
        assert [line.split("\t")[0] for line in handle.read().splitlines()[1:]] == ["remote_1"]
    scripts = [p.read_text() for p in (tmp_path / "work").glob("*/*/.command.sh")]
    assert sum("virnucpro pool-mates" in s for s in scripts) == 1


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
    """Wrong values stop the run, one line each; an unknown parameter only warns, naming the closest known one."""
    outdir = tmp_path / "results"
    result = run_nextflow(["-profile", "test", "--outdir", str(outdir), "--chunk_length", "400",
                           "--precision", "fp8", "--chunk-lenght", "300"], tmp_path, timeout=300)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    messages = [line for line in output.splitlines() if line.startswith("virnucpro:")]
    assert any("--chunk_length" in m and "300, 500" in m for m in messages), messages
    assert any("--precision" in m and "fp8" in m for m in messages), messages
    assert len(messages) == 2, messages
    warnings = [line for line in output.splitlines() if "unknown parameter --chunk_lenght" in line]
    assert len(warnings) == 1 and "closest known parameter: --chunk_length" in warnings[0], output
    assert not outdir.exists()


def test_unknown_parameter_is_an_error_when_the_config_asks(tmp_path):
    config = tmp_path / "strict.config"
    config.write_text("validation.failUnrecognisedParams = true\n")
    outdir = tmp_path / "results"
    result = run_nextflow(["-c", str(config), "-profile", "test", "--outdir", str(outdir), "--treshold", "0.7"],
                          tmp_path, timeout=300)
    assert result.returncode != 0
    messages = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("virnucpro:")]
    assert messages == ["virnucpro: unknown parameter --treshold (closest known parameter: --threshold; see --help)"]
    assert "Submitted process" not in result.stdout
    assert not outdir.exists()


# An institutional profile written the way nf-core/configs writes them (conf/<site>.config): description, contact
# and URL, the older max_* caps (a memory and a duration value, not strings), a genomics-only parameter.
INSTITUTIONAL_CONFIG = """
params {
    config_profile_description = 'Example University HPC profile provided by nf-core/configs.'
    config_profile_contact     = 'Research Computing (@example-rc)'
    config_profile_url         = 'https://hpc.example.org/nextflow'
    config_profile_name        = 'example_hpc'
    max_memory                 = 3.GB
    max_cpus                   = 1
    max_time                   = '2.h'
    igenomes_base              = '/shared/reference/igenomes'
}
process {
    executor      = 'local'
    maxRetries    = 1
}
trace.fields = 'name,cpus,memory,time'
"""


def test_an_nf_core_configs_style_profile_runs_and_its_caps_apply(stub_run):
    outdir, result = stub_run
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "unknown parameter" not in output and "WARN" not in output, output[-4000:]
    trace = next((outdir / "pipeline_info").glob("execution_trace_*.txt")).read_text().splitlines()
    header = trace[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in trace[1:]]
    assert {row["name"].split(" (")[0].split(":")[-1] for row in rows} >= {"EMBED", "MULTIQC"}
    # max_cpus 1 (below the test profile's 2), max_memory 3 GB (below 6 GB) and max_time 2 h (above 1 h).
    assert {row["cpus"] for row in rows} == {"1"}, rows
    assert {row["memory"] for row in rows} == {"3 GB"}, rows
    assert {row["time"] for row in rows} == {"1h"}, rows


def test_help_lists_every_schema_parameter(tmp_path):
    result = run_nextflow(["--help"], tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    names = [name for group in schema["$defs"].values() for name in group["properties"]]
    for name in names:
        assert f"--{name} " in result.stdout, name
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("engine, gpu_option", [("docker", "--gpus all"), ("podman", "--device nvidia.com/gpu=all"),
                                               ("singularity", "--nv"), ("apptainer", "--nv")])
def test_container_profiles_compose_with_test_and_gpu(tmp_path, engine, gpu_option):
    result = subprocess.run(nextflow_command() + ["config", str(REPO), "-flat", "-profile", f"test,gpu,{engine}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    flat = result.stdout
    assert f"{engine}.enabled = true" in flat
    assert "process.container = 'virnucpro:0.1.0'" in flat
    assert "params.device = 'cuda'" in flat and "params.chunk_length = 300" in flat  # gpu over test, test kept
    assert gpu_option in flat and "withLabel:process_gpu" in flat
    others = {"docker", "podman", "singularity", "apptainer"} - {engine}
    assert not any(f"{other}.enabled = true" in flat for other in others)


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


# The test profile runs one task at a time (6 GB each); with these, two share its 2 CPUs, so EMBED tasks may start
# while PROVENANCE still checks the models, as on a real machine.
OVERLAPPING_TASKS_CONFIG = """
process {
    withLabel: 'process_single' { memory = '1.GB' }
    withLabel: 'process_gpu'    { memory = '1.GB'; cpus = 1 }
}
"""


def test_a_classifier_that_does_not_fit_stops_the_run_before_any_embed_work(tmp_path):
    """EMBED does not wait for PROVENANCE: one of them finds the problem first (one line per problem, naming the
    file), the run stops, an EMBED task that had started fails its own model checks (exit 2) before any GPU work or
    is stopped with the run, and nothing is published."""
    from virnucpro.models.tiny import _TrainPyMLP, save_as_main_class

    wrong = tmp_path / "classifier_wide.pth"
    save_as_main_class(_TrainPyMLP(99, 16, 2).eval(), "MLPClassifier", wrong)
    config = tmp_path / "overlap.config"
    config.write_text(OVERLAPPING_TASKS_CONFIG)
    outdir = tmp_path / "results"
    result = run_nextflow(["-profile", "test", "-c", str(config), "--outdir", str(outdir), "--classifier", str(wrong)],
                          tmp_path, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    problems = [line for line in output.splitlines() if line.strip().startswith("virnucpro: error:")]
    # PROVENANCE's check and EMBED's say it in their own words
    assert problems and all("classifier_wide.pth" in p and re.search(r"input width 99|takes 99 features", p)
                            for p in problems), output[-4000:]
    trace = next((outdir / "pipeline_info").glob("execution_trace_*.txt")).read_text().splitlines()
    header = trace[0].split("\t")
    rows = [dict(zip(header, line.split("\t"))) for line in trace[1:]]
    # an EMBED task failed its checks, or was still starting when the run stopped
    assert all((row["status"], row["exit"]) in (("FAILED", "2"), ("ABORTED", "-"))
               for row in rows if ":EMBED " in row["name"]), trace
    assert not list(outdir.rglob("prediction_results.txt"))
