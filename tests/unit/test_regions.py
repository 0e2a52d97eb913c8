"""Viral regions on real genomes: phage lambda inserted into a Klebsiella contig at a known position.

Sequences (tests/data/prophage/, README there): phage lambda NC_001416.1 (48,502 bp) and 40 kb of a Klebsiella
pneumoniae assembly. The real preprocess cuts them; the models are replaced by a classifier whose scores we
control: a chunk is viral (P(virus) 0.9 in each frame) when most of its 16-mers occur in lambda, else 0.1. That
decision reads the chunk's sequence, not its coordinates, so the coordinates in the outputs are checked against
numbers worked out by hand from the chunking rule (ORIGINAL_SEMANTICS.md §1), below.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from virnucpro.classify.outputs import write_prediction_results
from virnucpro.cli import main
from virnucpro.io.seqio import read_sequences, wrap_fasta
from virnucpro.options import DEFAULT_REGION_GAP
from virnucpro.preprocess.run import preprocess_file
from virnucpro.report import regions
from virnucpro.report.aggregate import aggregate_sample



PROPHAGE = Path(__file__).resolve().parents[1] / "data" / "prophage"
L = 500
INSERT_AT = 10_000  # lambda goes in after 10,000 Klebsiella bases
K = 16
MIN_LENGTH = 300

# The contig: kpn[0:10000] + lambda + kpn[10000:20000] = 68,502 bp, so 138 chunks; surplus 138*500 - 68502 = 498,
# q = 498 // 138 = 3, m = 498 - 137*3 = 87: chunks 2..88 start 496 bp after the previous one, chunks 89.. 497 bp.
# 0-based starts: chunk j <= 88 at (j-1)*496, chunk j >= 88 at 43152 + (j-88)*497. Lambda occupies [10000, 58502).
# Chunks 21 ([9920, 10420)) to 118 ([58062, 58562)) are mostly lambda; of those, 21 and 22 and 117 and 118 have no
# stop-free frame (asserted below), so the region runs from chunk 23 to chunk 116:
#   start = 22*496 + 1 = 10913, end = 43152 + 28*497 + 500 = 57568 (1-based, inclusive), 94 chunks.
INSERT_REGION = dict(start=10_913, end=57_568, first_chunk=23, last_chunk=116, n_chunks=94)
# Lambda alone: 98 chunks, surplus 498, q = 5, m = 13: joins 1..13 move back by 6, the rest by 5, so chunk j <= 14
# starts at (j-1)*494 and j >= 14 at 6422 + (j-14)*495. Its scored chunks run from 3 to 84 (1, 2 and 85..98, the
# last 7 kb, have no stop-free frame at 500 bp): start = 2*494 + 1 = 989, end = 6422 + 70*495 + 500 = 41572.
LAMBDA_REGION = dict(start=989, end=41_572, first_chunk=3, last_chunk=84)
# One lambda chunk forced below the threshold (the classifier's "false negative"): bridged at the default gap of 1,
# a split into two regions at gap 0. Chunk 30 starts at 6422 + 16*495 = 14342 (0-based) and has a scored frame.
FORCED_NOT_VIRAL = "lambda_chunk_30"


def _seq(name: str) -> str:
    return next(iter(read_sequences(PROPHAGE / name)))[1]


@pytest.fixture(scope="module")
def genomes():
    return _seq("lambda_NC_001416.1.fa.gz"), _seq("klebsiella_40kb.fa.gz")


@pytest.fixture(scope="module")
def sample(genomes, tmp_path_factory):
    """Preprocessed contigs and the controlled classifier's predictions."""
    phage, kpn = genomes
    tmp = tmp_path_factory.mktemp("prophage")
    records = {
        "kpn_lambda_insert": kpn[:INSERT_AT] + phage + kpn[INSERT_AT:20_000],
        "lambda": phage,
        "kpn_fragment": kpn[20_000:40_000],
        "kpn_short": kpn[30_000:30_250],  # below MIN_LENGTH
    }
    fasta = tmp / "contigs.fa"
    fasta.write_text("".join(wrap_fasta(rid, seq) for rid, seq in records.items()))
    pre = tmp / "pre"
    preprocess_file(fasta, L, pre, min_length=MIN_LENGTH)
    predictions = tmp / "predictions.tsv"
    _controlled_predictions(pre, phage, predictions)
    return {"fasta": fasta, "pre": pre, "predictions": predictions, "records": records, "tmp": tmp}


def _controlled_predictions(pre, phage, out):
    lambda_kmers = {phage[i:i + K] for i in range(len(phage) - K + 1)}
    chunk_seq = dict(read_sequences(pre / "chunked.fa"))
    ids = [fid for fid, _ in read_sequences(pre / "identified_nucleotide.fa")]
    p_virus = []
    for fid in ids:
        chunk = fid[:-2]
        seq = chunk_seq[chunk].upper()
        kmers = [seq[i:i + K] for i in range(len(seq) - K + 1)]
        in_phage = sum(k in lambda_kmers for k in kmers) / len(kmers)
        p_virus.append(0.9 if in_phage > 0.5 and chunk != FORCED_NOT_VIRAL else 0.1)
    p = np.array(p_virus, dtype=np.float32)
    write_prediction_results(out, ids, np.stack([1 - p, p], axis=1))


def _aggregate(sample, out, gap=DEFAULT_REGION_GAP):
    return aggregate_sample("S", [sample["predictions"]], sample["pre"] / "records.tsv", sample["fasta"], 0.5, out,
                            chunk_length=L, min_length=MIN_LENGTH, region_gap=gap)


def _tsv(path):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


@pytest.fixture(scope="module")
def result(sample):
    out = sample["tmp"] / "out"
    return out, _aggregate(sample, out)


def test_preconditions_of_the_hand_worked_coordinates(result):
    out, _ = result
    chunks = {row["chunk_id"]: row for row in _tsv(out / "S.chunks.tsv")}
    for j in (21, 22, 117, 118):
        assert chunks[f"kpn_lambda_insert_chunk_{j}"]["n_frames"] == "0", j
    for j in (1, 2, *range(85, 99)):
        assert chunks[f"lambda_chunk_{j}"]["n_frames"] == "0", j
    for j in (23, 116):
        assert chunks[f"kpn_lambda_insert_chunk_{j}"]["chunk_call"] == "viral", j
    # Chunk coordinates in the per-chunk table follow the rule (0-based starts as worked out above).
    assert chunks["kpn_lambda_insert_chunk_88"]["start"] == str(43152 + 1)
    assert chunks["kpn_lambda_insert_chunk_89"]["start"] == str(43152 + 497 + 1)
    assert chunks["kpn_lambda_insert_chunk_138"]["end"] == "68502"
    assert chunks["lambda_chunk_14"]["start"] == str(6422 + 1) and chunks["lambda_chunk_15"]["start"] == str(6917 + 1)
    assert chunks["kpn_lambda_insert_chunk_138"]["start"] == str(43152 + 50 * 497 + 1)
    assert chunks[FORCED_NOT_VIRAL]["start"] == str(14342 + 1) and chunks[FORCED_NOT_VIRAL]["n_frames"] != "0"


def test_inserted_phage_is_found_at_the_chunk_aligned_coordinates_in_the_tsv(result):
    out, _ = result
    rows = _tsv(out / "S.viral_regions.tsv")
    assert [r["record_id"] for r in rows] == ["kpn_lambda_insert", "lambda"]
    insert, whole = rows
    assert {k: int(insert[k]) for k in INSERT_REGION} == INSERT_REGION
    assert insert["region_id"] == "kpn_lambda_insert_region_1" and insert["whole_record"] == "false"
    assert int(insert["length"]) == INSERT_REGION["end"] - INSERT_REGION["start"] + 1
    assert float(insert["max_chunk_score"]) == pytest.approx(0.9) and float(insert["mean_chunk_score"]) <= 0.9
    assert {k: int(whole[k]) for k in LAMBDA_REGION} == LAMBDA_REGION
    assert whole["whole_record"] == "true"  # every scored chunk of lambda is in its one region
    assert int(whole["n_chunks_viral"]) < int(whole["n_chunks"])  # the forced chunk and unscored ones, bridged


def test_per_record_table_tells_whole_from_partial_beside_the_original_call(result):
    out, summary = result
    rows = {r["record_id"]: r for r in _tsv(out / "S.records.tsv")}
    assert rows["kpn_lambda_insert"]["call"] == "viral" and rows["kpn_lambda_insert"]["region_call"] == "partial"
    assert rows["lambda"]["call"] == "viral" and rows["lambda"]["region_call"] == "whole"
    assert rows["kpn_fragment"]["call"] == "not_viral" and rows["kpn_fragment"]["region_call"] == "not_viral"
    assert rows["kpn_lambda_insert"]["viral_bp"] == str(57_568 - 10_913 + 1)
    short = rows["kpn_short"]
    assert (short["status"], short["n_chunks"], short["call"]) == ("too_short", "0", "no_prediction")
    assert (summary["records_viral"], summary["records_viral_whole"], summary["records_viral_partial"]) == (2, 1, 1)
    assert summary["records_too_short"] == 1 and summary["min_length"] == MIN_LENGTH and summary["regions"] == 2
    assert [r["record_id"] for r in summary["top_regions"]] == ["kpn_lambda_insert", "lambda"]


def test_gff3_is_valid_and_holds_the_same_coordinates(result, sample):
    from gff3 import Gff3

    out, _ = result
    path = out / "S.viral_regions.gff3"
    logger = logging.getLogger("gff3-check")
    gff = Gff3(str(path), logger=logger)
    gff.check_reference(sequence_region=True)
    errors = [(line["line_index"] + 1, e["message"]) for line in gff.lines for e in line.get("line_errors", [])]
    assert errors == []
    features = [line for line in gff.lines if line["line_type"] == "feature"]
    got = [(f["seqid"], f["start"], f["end"], f["attributes"]["ID"]) for f in features]
    assert got == [("kpn_lambda_insert", 10_913, 57_568, "kpn_lambda_insert_region_1"),
                   ("lambda", 989, 41_572, "lambda_region_1")]
    regions_of = {line["seqid"]: (line["start"], line["end"]) for line in gff.lines
                  if line["line_type"] == "directive" and line["directive"] == "##sequence-region"}
    assert regions_of == {"kpn_lambda_insert": (1, 68_502), "lambda": (1, 48_502)}


def test_bed_is_zero_based_half_open(result):
    out, _ = result
    lines = [line.split("\t") for line in (out / "S.viral_regions.bed").read_text().splitlines()]
    assert lines == [["kpn_lambda_insert", "10912", "57568", "kpn_lambda_insert_region_1", "900", "."],
                     ["lambda", "988", "41572", "lambda_region_1", "900", "."]]


def test_fasta_headers_carry_score_and_region_and_regions_fasta_holds_the_slices(result, sample):
    out, _ = result
    with open(out / "S.viral.fa") as fh:
        headers = [line.strip() for line in fh if line.startswith(">")]
    assert headers == [">kpn_lambda_insert score=0.9000 region=10913-57568", ">lambda score=0.9000 region=989-41572"]
    got = list(read_sequences(out / "S.viral_regions.fa"))
    insert = sample["records"]["kpn_lambda_insert"]
    assert got == [("kpn_lambda_insert_region_1", insert[10_912:57_568]),
                   ("lambda_region_1", sample["records"]["lambda"][988:41_572])]
    # The region holds the phage except the flanks whose chunks could not be scored, and no bacterial base.
    phage = sample["records"]["lambda"]
    assert got[0][1] in phage


def test_gap_zero_splits_at_the_forced_false_negative(sample, tmp_path):
    out = tmp_path / "gap0"
    summary = _aggregate(sample, out, gap=0)
    rows = [r for r in _tsv(out / "S.viral_regions.tsv") if r["record_id"] == "lambda"]
    assert len(rows) == 2
    first, second = rows
    chunks = {r["chunk_id"]: r for r in _tsv(out / "S.chunks.tsv")}
    assert chunks[FORCED_NOT_VIRAL]["chunk_call"] == "not_viral" and chunks[FORCED_NOT_VIRAL]["region_id"] == "NA"
    assert int(first["last_chunk"]) < 30 < int(second["first_chunk"])
    assert first["start"] == "989" and second["end"] == "41572"
    records = {r["record_id"]: r for r in _tsv(out / "S.records.tsv")}
    assert records["lambda"]["region_call"] == "partial" and records["lambda"]["n_regions"] == "2"
    assert summary["region_gap"] == 0


def test_original_files_do_not_change_with_the_region_options(sample, result, tmp_path):
    out, _ = result
    other = tmp_path / "gap5"
    _aggregate(sample, other, gap=5)
    for name in ("prediction_results.txt", "prediction_results_highestscore.csv"):
        assert (other / name).read_bytes() == (out / name).read_bytes()


def test_cli_takes_the_region_gap_and_min_length(sample, result, tmp_path):
    out, _ = result
    again = tmp_path / "cli"
    rc = main(["aggregate", "--sample", "S", "--predictions", str(sample["predictions"]),
               "--records", str(sample["pre"] / "records.tsv"), "--input", str(sample["fasta"]),
               "--chunk-length", str(L), "--min-length", str(MIN_LENGTH), "--region-gap", "1",
               "--outdir", str(again)])
    assert rc == 0
    for name in ("S.viral_regions.tsv", "S.viral_regions.gff3", "S.viral_regions.bed", "S.chunks.tsv",
                 "S.records.tsv", "S.viral.fa", "S.viral_regions.fa"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    summary = json.loads((again / "S.summary.json").read_text())
    assert summary["region_gap"] == 1


def test_a_records_table_from_another_min_length_is_refused(sample, tmp_path, capsys):
    rc = main(["aggregate", "--sample", "S", "--predictions", str(sample["predictions"]),
               "--records", str(sample["pre"] / "records.tsv"), "--input", str(sample["fasta"]),
               "--chunk-length", str(L), "--outdir", str(tmp_path / "x")])
    assert rc != 0
    err = capsys.readouterr().err
    assert "records.tsv" in err and "kpn_short" in err and "--min-length" in err
    assert not (tmp_path / "x").exists()


def test_find_regions_rules():
    def chunks(scores):
        return [regions.Chunk(j, j * 10 - 9, j * 10, 1 if s is not None else 0, s, None if s is None else 1 - s)
                for j, s in enumerate(scores, start=1)]

    def spans(scores, gap):
        return [(r.chunks[0].number, r.chunks[-1].number) for r in regions.find_regions("r", 100, chunks(scores),
                                                                                        0.5, gap)]

    v, n, u = 1.0, 0.0, None  # viral, not viral, unscored
    assert spans([n, v, v, n, n, v, u, u, u, v, n], 1) == [(2, 3), (6, 10)]
    assert spans([n, v, n, v, n], 1) == [(2, 4)]
    assert spans([n, v, n, v, n], 0) == [(2, 2), (4, 4)]
    assert spans([v, n, u, n, v], 1) == [(1, 1), (5, 5)]  # two not-viral chunks: more than the gap
    assert spans([v, n, u, n, v], 2) == [(1, 5)]
    assert spans([u, v, u], 0) == [(2, 2)]  # regions never start or end on an unscored chunk
    assert spans([n, n, u], 3) == []
    found = regions.find_regions("r", 30, chunks([u, v, u]), 0.5, 0)
    assert found[0].whole
    assert not regions.find_regions("r", 30, chunks([n, v, u]), 0.5, 0)[0].whole


def test_gff_escapes_ids():
    assert regions.gff_seqid("a b;c=d") == "a%20b%3Bc%3Dd"
    assert regions.gff_seqid("NC_001416.1|x") == "NC_001416.1|x"
