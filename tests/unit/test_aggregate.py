"""virnucpro aggregate: shard predictions -> the original's two files, per-record table, viral FASTA, summary."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

from virnucpro.classify.outputs import write_prediction_results
from virnucpro.cli import main
from virnucpro.errors import InputError
from virnucpro.io.frames import Frame, write_frames_tsv
from virnucpro.io.seqio import read_sequences
from virnucpro.report.aggregate import aggregate_sample

# Hand-made sample at chunk length 500. "c_chunk_7" is a record id that itself contains "_chunk_".
LENGTHS = {"r1": 400, "r2": 0, "r3": 600, "r4": 200, "c_chunk_7": 100}
RECORDS = [  # record_id, n_chunks, n_frames, status
    ("r1", 1, 2, "kept"),
    ("r2", 0, 0, "empty"),
    ("r3", 2, 3, "kept"),
    ("r4", 1, 0, "no_stop_free_frame"),
    ("c_chunk_7", 1, 1, "kept"),
]
# Frame id -> P(virus); P(others) = 1 - P(virus).
FRAMES = [
    ("r1_chunk_1F1", 0.6),   # r1: max P(virus) 0.6 but max P(others) 0.9 -> chunk not viral (original rule)
    ("r1_chunk_1R2", 0.1),
    ("r3_chunk_1F1", 0.3),   # r3 chunk 1: score 0.3
    ("r3_chunk_2F2", 0.95),  # r3 chunk 2: max P(virus) .95, max P(others) .1 -> score 0.925, viral
    ("r3_chunk_2R1", 0.9),
    ("c_chunk_7_chunk_1F3", 0.7),
]
SPLIT = 4  # shard 0 ends inside r3's second chunk: chunks may straddle shards


def probs_of(frames):
    p = np.array([v for _, v in frames], dtype=np.float32)
    return np.stack([1 - p, p], axis=1)


@pytest.fixture
def sample(tmp_path):
    rng = random.Random(7)
    seqs = {rid: "".join(rng.choice("ACGTacgt") for _ in range(n)) for rid, n in LENGTHS.items()}
    fasta = tmp_path / "in.fa"
    with open(fasta, "w", newline="") as fh:
        for rid, _, _, _ in RECORDS:
            fh.write(f">{rid} some description\r\n{seqs[rid][:250]}\r\n{seqs[rid][250:]}\r\n")
    records = tmp_path / "records.tsv"
    records.write_text("record_id\tlength\tn_chunks\tn_frames\tstatus\n" + "".join(
        f"{rid}\t{LENGTHS[rid]}\t{nc}\t{nf}\t{st}\n" for rid, nc, nf, st in RECORDS))
    ids = [f for f, _ in FRAMES]
    probs = probs_of(FRAMES)
    p0, p1 = tmp_path / "S.shard_00000.predictions.tsv", tmp_path / "S.shard_00001.predictions.tsv"
    write_prediction_results(p0, ids[:SPLIT], probs[:SPLIT])
    write_prediction_results(p1, ids[SPLIT:], probs[SPLIT:])
    shards = [tmp_path / "shard_00000.tsv", tmp_path / "shard_00001.tsv"]
    frames = [Frame(i, "ACGT", "M") for i in ids]
    write_frames_tsv(shards[0], frames[:SPLIT])
    write_frames_tsv(shards[1], frames[SPLIT:])
    return {"dir": tmp_path, "fasta": fasta, "records": records, "predictions": [p0, p1], "shards": shards,
            "seqs": seqs, "ids": ids, "probs": probs}


def run_aggregate(s, outdir, threshold=0.5, predictions=None, **kw):
    return aggregate_sample("S", predictions or s["predictions"], s["records"], s["fasta"], threshold, outdir, **kw)


def table(path):
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def test_every_record_accounted_for_in_input_order(sample, tmp_path):
    out = tmp_path / "out"
    run_aggregate(sample, out, chunk_length=500, shard_paths=sample["shards"])
    rows = table(out / "S.records.tsv")
    assert [r["record_id"] for r in rows] == [r[0] for r in RECORDS]
    by_id = {r["record_id"]: r for r in rows}
    assert {k: by_id[k]["call"] for k in by_id} == {
        "r1": "not_viral", "r2": "no_prediction", "r3": "viral", "r4": "no_prediction", "c_chunk_7": "viral"}
    assert by_id["r2"]["status"] == "empty" and by_id["r4"]["status"] == "no_stop_free_frame"
    assert by_id["r2"]["virus_score"] == "NA" and by_id["r4"]["max_p_virus"] == "NA"
    r3 = by_id["r3"]
    assert (r3["n_chunks"], r3["n_frames"], r3["n_chunks_scored"], r3["n_chunks_viral"]) == ("2", "3", "2", "1")
    assert float(r3["fraction_chunks_viral"]) == 0.5
    assert r3["max_p_virus"] == "0.95"  # the frame's score as prediction_results.txt writes it
    assert float(r3["virus_score"]) == pytest.approx(0.925, abs=1e-6)
    assert float(r3["mean_chunk_score"]) == pytest.approx((0.3 + 0.925) / 2, abs=1e-6)
    r1 = by_id["r1"]
    assert r1["max_p_virus"] == "0.6" and float(r1["virus_score"]) == pytest.approx(0.35, abs=1e-6)
    assert r1["n_chunks_viral"] == "0"


def test_call_at_default_threshold_agrees_with_highestscore_file(sample, tmp_path):
    out = tmp_path / "out"
    run_aggregate(sample, out)
    chunks = dict(line.split("\t") for line in (out / "prediction_results_highestscore.csv").read_text().split("\n")[1:]
                  if line)
    for row in table(out / "S.records.tsv"):
        mine = [v == "True" for c, v in chunks.items() if c.rsplit("_chunk_", 1)[0] == row["record_id"]]
        assert (row["call"] == "viral") == any(mine)
        assert int(row["n_chunks_viral"]) == sum(mine)


def test_original_files_are_the_classify_writers_output_in_shard_order(sample, tmp_path):
    out = tmp_path / "out"
    # Shard files given in the wrong order: names carry the shard index, so they are put back in order.
    run_aggregate(sample, out, predictions=list(reversed(sample["predictions"])))
    expected = tmp_path / "expected.txt"
    write_prediction_results(expected, sample["ids"], sample["probs"])
    assert (out / "prediction_results.txt").read_bytes() == expected.read_bytes()
    lines = (out / "prediction_results_highestscore.csv").read_text().splitlines()
    assert lines[0] == "Modified_ID\tIs_Virus"
    assert sorted(lines[1:]) == lines[1:]  # the original's groupby order
    assert dict(line.split("\t") for line in lines[1:]) == {
        "c_chunk_7_chunk_1": "True", "r1_chunk_1": "False", "r3_chunk_1": "False", "r3_chunk_2": "True"}


def test_unindexed_names_keep_the_given_order_and_a_wrong_order_is_caught(sample, tmp_path):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_bytes(sample["predictions"][1].read_bytes())
    b.write_bytes(sample["predictions"][0].read_bytes())
    with pytest.raises(InputError, match="do not match this records table"):
        run_aggregate(sample, tmp_path / "out", predictions=[a, b])
    assert not (tmp_path / "out").exists()
    run_aggregate(sample, tmp_path / "out", predictions=[b, a])
    assert (tmp_path / "out" / "S.records.tsv").exists()


def test_duplicate_frame_ids_stop_the_run_naming_them(sample, tmp_path):
    dup = tmp_path / "S.shard_00002.predictions.tsv"
    write_prediction_results(dup, sample["ids"][:2], sample["probs"][:2])
    with pytest.raises(InputError, match=r"2 frame id\(s\) scored more than once.*'r1_chunk_1F1', 'r1_chunk_1R2'"):
        run_aggregate(sample, tmp_path / "out", predictions=sample["predictions"] + [dup])
    assert not (tmp_path / "out").exists()


def test_missing_frame_against_shards_is_named(sample, tmp_path):
    p1 = sample["predictions"][1]
    write_prediction_results(p1, sample["ids"][SPLIT:-1], sample["probs"][SPLIT:-1])
    with pytest.raises(InputError, match=r"1 frame\(s\) of the shards have no prediction: 'c_chunk_7_chunk_1F3'"):
        run_aggregate(sample, tmp_path / "out", shard_paths=sample["shards"])


def test_missing_frame_without_shards_is_caught_by_the_records_table(sample, tmp_path):
    p0 = sample["predictions"][0]
    ids, probs = sample["ids"][:SPLIT], sample["probs"][:SPLIT]
    write_prediction_results(p0, ids[:1] + ids[2:], np.concatenate([probs[:1], probs[2:]]))
    with pytest.raises(InputError, match=r"records.tsv: line 2: record 'r1' expects 2 frame\(s\)"):
        run_aggregate(sample, tmp_path / "out")


def test_extra_frames_are_caught(sample, tmp_path):
    extra = tmp_path / "S.shard_00002.predictions.tsv"
    write_prediction_results(extra, ["zz_chunk_1F1"], probs_of([("zz_chunk_1F1", 0.5)]))
    with pytest.raises(InputError, match=r"1 predicted frame\(s\) belong to no record.*'zz_chunk_1F1'"):
        run_aggregate(sample, tmp_path / "out", predictions=sample["predictions"] + [extra])


def test_viral_fasta_holds_the_viral_input_records_in_input_order(sample, tmp_path):
    out = tmp_path / "out"
    run_aggregate(sample, out)
    got = list(read_sequences(out / "S.viral.fa"))
    assert got == [("r3", sample["seqs"]["r3"]), ("c_chunk_7", sample["seqs"]["c_chunk_7"])]


def test_rethreshold_changes_calls_not_scores(sample, tmp_path):
    low, high = tmp_path / "t05", tmp_path / "t08"
    run_aggregate(sample, low, threshold=0.5)
    run_aggregate(sample, high, threshold=0.8)
    rows_low, rows_high = table(low / "S.records.tsv"), table(high / "S.records.tsv")
    # The calls and the regions depend on the threshold; the scores do not.
    score_columns = [c for c in rows_low[0] if c not in ("call", "n_regions", "viral_bp", "region_call")]
    assert [[r[c] for c in score_columns] for r in rows_low] == [[r[c] for c in score_columns] for r in rows_high]
    assert [r["call"] for r in rows_low] != [r["call"] for r in rows_high]
    assert {r["record_id"] for r in rows_high if r["call"] == "viral"} == {"r3"}
    for name in ("prediction_results.txt", "prediction_results_highestscore.csv"):
        assert (low / name).read_bytes() == (high / name).read_bytes()
    assert [rid for rid, _ in read_sequences(high / "S.viral.fa")] == ["r3"]
    summary = json.loads((high / "S.summary.json").read_text())
    assert summary["threshold"] == 0.8 and summary["records_viral"] == 1


def test_rethreshold_from_published_prediction_results_via_cli(sample, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    run_aggregate(sample, first, threshold=0.5)
    rc = main(["aggregate", "--sample", "S", "--predictions", str(first / "prediction_results.txt"),
               "--records", str(sample["records"]), "--input", str(sample["fasta"]), "--threshold", "0.5",
               "--outdir", str(again)])
    assert rc == 0
    for name in ("prediction_results.txt", "prediction_results_highestscore.csv", "S.records.tsv", "S.viral.fa"):
        assert (again / name).read_bytes() == (first / name).read_bytes()


def test_summary_counts_histogram_and_short_read_warning(sample, tmp_path):
    out = tmp_path / "out"
    summary = run_aggregate(sample, out)
    assert json.loads((out / "S.summary.json").read_text()) == summary
    assert summary["records"] == 5 and summary["records_viral"] == 2 and summary["records_no_prediction"] == 2
    assert summary["record_status"] == {"empty": 1, "kept": 3, "no_stop_free_frame": 1}
    assert summary["percent_viral"] == pytest.approx(40.0)
    assert summary["frames"] == len(FRAMES) and summary["chunks"] == 5 and summary["chunks_viral"] == 2
    assert summary["chunk_length"] == 500  # inferred: 600 bp in 2 chunks fits 500, not 300
    assert summary["record_length"]["median"] == 300 and summary["record_length"]["max"] == 600
    h = summary["histograms"]
    assert len(h["edges"]) == 21 and sum(h["virus_score"]) == 3 and sum(h["max_p_virus"]) == 3
    assert h["virus_score"][18] == 1  # r3's 0.925
    assert any("much shorter than the 500 bp chunk length" in w for w in summary["warnings"])


def test_wrong_chunk_length_is_refused(sample, tmp_path):
    with pytest.raises(InputError, match="300 bp chunks cannot give"):
        run_aggregate(sample, tmp_path / "out", chunk_length=300)


def test_wrong_input_file_is_refused_and_nothing_is_written(sample, tmp_path):
    other = tmp_path / "other.fa"
    other.write_text(">r1\nACGT\n")
    with pytest.raises(InputError, match="not the file that was preprocessed"):
        aggregate_sample("S", sample["predictions"], sample["records"], other, 0.5, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_empty_sample_gives_header_only_files(tmp_path):
    fasta = tmp_path / "in.fa"
    fasta.write_text(">e\n>s\nTAATAATAA\n")
    records = tmp_path / "records.tsv"
    records.write_text("record_id\tlength\tn_chunks\tn_frames\tstatus\n"
                       "e\t0\t0\t0\tempty\ns\t9\t1\t0\tno_stop_free_frame\n")
    pred = tmp_path / "E.shard_00000.predictions.tsv"
    write_prediction_results(pred, [], np.zeros((0, 2), np.float32))
    out = tmp_path / "out"
    assert main(["aggregate", "--sample", "E", "--predictions", str(pred), "--records", str(records),
                 "--input", str(fasta), "--outdir", str(out)]) == 0
    assert (out / "prediction_results.txt").read_text() == "Sequence_ID\tPrediction\tscore1\tscore2\n"
    assert (out / "prediction_results_highestscore.csv").read_text() == "Modified_ID\tIs_Virus\n"
    assert (out / "E.viral.fa").read_text() == "" and (out / "E.viral_regions.fa").read_text() == ""
    assert (out / "E.viral_regions.bed").read_text() == ""
    assert (out / "E.viral_regions.gff3").read_text() == "##gff-version 3\n"
    assert (out / "E.viral_regions.tsv").read_text().startswith("region_id\trecord_id\tstart\tend\t")
    assert [(r["chunk_id"], r["start"], r["end"], r["n_frames"], r["chunk_call"])
            for r in table(out / "E.chunks.tsv")] == [("s_chunk_1", "1", "9", "0", "no_prediction")]
    assert [(r["record_id"], r["status"], r["call"]) for r in table(out / "E.records.tsv")] == [
        ("e", "empty", "no_prediction"), ("s", "no_stop_free_frame", "no_prediction")]
    summary = json.loads((out / "E.summary.json").read_text())
    assert summary["records_viral"] == 0 and summary["percent_viral"] == 0.0 and summary["frames"] == 0
    assert any("no record has a frame to score" in w for w in summary["warnings"])


def test_bad_threshold_and_bad_predictions_file(sample, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["aggregate", "--sample", "S", "--predictions", "x", "--records", "y", "--input", "z",
              "--threshold", "1.5", "--outdir", str(tmp_path / "o")])
    assert "must be between 0 and 1" in capsys.readouterr().err
    bad = tmp_path / "S.shard_00000.predictions.tsv"
    bad.write_text("Sequence_ID\tPrediction\tscore1\tscore2\nr1_chunk_1F1\tvirus\tnan\t0.5\n")
    with pytest.raises(InputError, match="line 2: scores must be probabilities"):
        run_aggregate(sample, tmp_path / "out", predictions=[bad])


def test_summary_feeds_the_report(sample, tmp_path):
    from virnucpro.report.html import REPORT_NAME, write_report

    run_aggregate(sample, tmp_path / "out")
    write_report([tmp_path / "out" / "S.summary.json"], [], tmp_path / "report")
    html = (tmp_path / "report" / REPORT_NAME).read_text()
    assert ">S</td>" in html and "40.0%" in html  # the sample's row, with its % viral


def test_chunk_coordinates_and_the_region_of_a_two_chunk_record(sample, tmp_path):
    """r3 (600 bp at L=500): surplus 400, q = 200, m = 200 >= k-1, so chunk 2 moves back 201: [299, 600) 0-based.
    Only chunk 2 is viral, so r3 is viral and partial, its region 300-600."""
    out = tmp_path / "out"
    run_aggregate(sample, out)
    chunks = {r["chunk_id"]: r for r in table(out / "S.chunks.tsv")}
    assert [(c["start"], c["end"]) for k, c in chunks.items() if k.startswith("r3_")] == [("1", "500"), ("300", "600")]
    assert chunks["r3_chunk_2"]["chunk_call"] == "viral" and chunks["r3_chunk_2"]["region_id"] == "r3_region_1"
    assert chunks["r3_chunk_1"]["chunk_call"] == "not_viral" and chunks["r4_chunk_1"]["chunk_call"] == "no_prediction"
    assert float(chunks["r3_chunk_2"]["chunk_score"]) == pytest.approx(0.925)
    assert chunks["r3_chunk_2"]["max_p_virus"] == "0.95"
    regions = table(out / "S.viral_regions.tsv")
    assert [(r["region_id"], r["start"], r["end"], r["whole_record"]) for r in regions] == [
        ("r3_region_1", "300", "600", "false"), ("c_chunk_7_region_1", "1", "100", "true")]
    records = {r["record_id"]: r for r in table(out / "S.records.tsv")}
    assert records["r3"]["region_call"] == "partial" and records["c_chunk_7"]["region_call"] == "whole"
    assert records["r1"]["region_call"] == "not_viral" and records["r2"]["region_call"] == "no_prediction"
    # The highest-score file's per-chunk decisions are the per-chunk table's at the default threshold.
    highest = dict(line.split("\t") for line in (out / "prediction_results_highestscore.csv").read_text().splitlines()[1:])
    assert {k: v == "True" for k, v in highest.items()} == {
        k: c["chunk_call"] == "viral" for k, c in chunks.items() if c["chunk_call"] != "no_prediction"}


def test_a_zero_byte_input_is_an_empty_sample_with_a_warning(tmp_path):
    fasta = tmp_path / "in.fa"
    fasta.write_bytes(b"")
    records = tmp_path / "records.tsv"
    records.write_text("record_id\tlength\tn_chunks\tn_frames\tstatus\n")
    pred = tmp_path / "Z.shard_00000.predictions.tsv"
    write_prediction_results(pred, [], np.zeros((0, 2), np.float32))
    summary = aggregate_sample("Z", [pred], records, fasta, 0.5, tmp_path / "out")
    assert summary["records"] == 0 and summary["percent_viral"] == 0.0
    assert "the input file holds no records (empty file)" in summary["warnings"]
    assert (tmp_path / "out" / "Z.viral.fa").read_text() == ""


def test_summary_names_the_users_input_not_the_staged_link(sample, tmp_path, monkeypatch):
    task = tmp_path / "task"
    (task / "input").mkdir(parents=True)
    (task / "input" / "in.fa").symlink_to(sample["fasta"])  # how Nextflow stages --input
    monkeypatch.chdir(task)
    monkeypatch.setenv("VIRNUCPRO_STAGED_INPUTS", "1")
    summary = aggregate_sample("S", sample["predictions"], sample["records"], Path("input/in.fa"), 0.5,
                               tmp_path / "out")
    assert summary["inputs"]["input"] == str(sample["fasta"])
