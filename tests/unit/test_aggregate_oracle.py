"""aggregate works on whole columns (frames grouped by chunk and record with array operations, one-chunk records
taken all at once, tables written a block at a time). Here its files are compared byte for byte with a plain
record-by-record oracle, on random samples that mix one-chunk reads, multi-chunk contigs, empty records, records
without a stop-free frame, chunks without a scored frame, frames shuffled within their record, ids that contain
"_chunk_" or characters GFF3 escapes, and prediction files cut at random frames."""

from __future__ import annotations

import json
import math
import random
import statistics

import numpy as np
import pytest

from virnucpro.classify.outputs import format_score, write_prediction_results
from virnucpro.errors import InputError
from virnucpro.io import blocks, seqio
from virnucpro.io.frames import Frame, write_frames_tsv
from virnucpro.io.seqio import FASTA_LINE_WIDTH, wrap_fasta
from virnucpro.report import aggregate, regions, rollup
from virnucpro.report.aggregate import TOP_REGIONS, aggregate_sample

L = 300
STRANDS = [f"{s}{k}" for s in "FR" for k in (1, 2, 3)]


def make_sample(rng: random.Random, n: int) -> tuple[list[dict], list[str], np.ndarray]:
    records, frame_ids, scores = [], [], []
    for k in range(n):
        rid = rng.choice([f"r{k}", f"c{k}_chunk_2", f"x{k};y=1,a%", f"s{k}_chunk_1F1"])
        kind = rng.choices(["read", "contig", "empty", "no_frame"], [6, 3, 1, 1])[0]
        length = {"read": rng.randint(1, L), "contig": rng.randint(L + 1, 6 * L), "empty": 0,
                  "no_frame": rng.randint(1, 3 * L)}[kind]
        n_chunks = -(-length // L)
        own = []
        if kind in ("read", "contig"):
            for j in range(1, n_chunks + 1):  # some contig chunks have no frame, every record at least one
                if kind == "read" or rng.random() < 0.7 or (j == n_chunks and not own):
                    own += [f"{rid}_chunk_{j}{s}" for s in rng.sample(STRANDS, rng.randint(1, 6))]
        rng.shuffle(own)  # the frames of a record need not come chunk by chunk
        status = {"read": "kept", "contig": "kept", "empty": "empty", "no_frame": "no_stop_free_frame"}[kind]
        records.append(dict(id=rid, length=length, n_chunks=n_chunks, n_frames=len(own), status=status))
        for _ in own:  # ties, exact 0 and 1, and ordinary softmax values
            p = rng.choice([0.5, 0.0, 1.0, rng.random(), rng.random(), rng.random()])
            scores.append(p)
        frame_ids += own
    p = np.array(scores, dtype=np.float32)
    return records, frame_ids, np.stack([np.float32(1) - p, p], axis=1)


def write_sample(tmp, rng, records, frame_ids, probs):
    seqs = {k: "".join(rng.choice("ACGT") for _ in range(r["length"])) for k, r in enumerate(records)}
    (tmp / "in.fa").write_text("".join(f">{r['id']}\n{seqs[k]}\n" for k, r in enumerate(records)))
    (tmp / "records.tsv").write_text("record_id\tlength\tn_chunks\tn_frames\tstatus\n" + "".join(
        f"{r['id']}\t{r['length']}\t{r['n_chunks']}\t{r['n_frames']}\t{r['status']}\n" for r in records))
    cuts = [0] + sorted(rng.sample(range(1, len(frame_ids)), 2)) + [len(frame_ids)]
    predictions, shards = [], []
    for s, (a, b) in enumerate(zip(cuts, cuts[1:])):
        predictions.append(tmp / f"S.shard_{s:05d}.predictions.tsv")
        write_prediction_results(predictions[-1], frame_ids[a:b], probs[a:b])
        shards.append(tmp / f"shard_{s:05d}.tsv")
        write_frames_tsv(shards[-1], [Frame(i, "ACGT", "M") for i in frame_ids[a:b]])
    return seqs, predictions, shards


def oracle(records, frame_ids, probs, seqs, threshold, gap):
    """The record-by-record way: walk records and frames in lockstep, one record's chunks and regions at a time."""
    out = {k: [] for k in ("records", "chunks", "regions", "gff", "bed", "viral", "regions_fa")}
    tops, lengths = [], []
    i = 0
    for index, r in enumerate(records):
        best = {}
        for fid, (p_others, p_virus) in zip(frame_ids[i:i + r["n_frames"]], probs[i:i + r["n_frames"]].tolist()):
            b = best.setdefault(int(rollup.FRAME_SUFFIX.search(fid).group(1)), [0.0, 0.0, 0])
            b[0], b[1], b[2] = max(b[0], p_others), max(b[1], p_virus), b[2] + 1
        i += r["n_frames"]
        bounds = [(1, r["length"])] if r["n_chunks"] == 1 else \
            regions.chunk_bounds(r["length"], r["n_chunks"], L) if r["n_chunks"] else []
        chunks = [regions.Chunk(j, s, e) for j, (s, e) in enumerate(bounds, start=1)]
        for j, (p_others, p_virus, n) in best.items():
            chunks[j - 1].max_p_others, chunks[j - 1].max_p_virus, chunks[j - 1].n_frames = p_others, p_virus, n
        found = regions.find_regions(r["id"], r["length"], chunks, threshold, gap)
        scores = [c.score for c in chunks if c.max_p_virus is not None]
        virus = max(scores) if scores else None
        call = "no_prediction" if virus is None else "viral" if virus >= threshold else "not_viral"
        region_call = call if call != "viral" else "whole" if any(g.whole for g in found) else "partial"
        n_viral = sum(c.max_p_virus >= c.max_p_others for c in chunks if c.max_p_virus is not None)
        na = lambda x, f=repr: "NA" if x is None else f(x)  # noqa: E731
        out["records"].append("\t".join(map(str, (
            r["id"], r["length"], r["status"], r["n_chunks"], r["n_frames"], len(scores), n_viral,
            na(n_viral / len(scores) if scores else None),
            na(max((c.max_p_virus for c in chunks if c.max_p_virus is not None), default=None), format_score),
            na(math.fsum(scores) / len(scores) if scores else None), na(virus), call, len(found),
            sum(g.length for g in found), region_call))))
        region_of = {c.number: g.region_id for g in found for c in g.chunks}
        for c in chunks:
            s = c.score
            cells = ("NA", "NA", "NA", "no_prediction") if s is None else (
                format_score(c.max_p_virus), format_score(c.max_p_others), repr(s),
                "viral" if s >= threshold else "not_viral")
            out["chunks"].append("\t".join(map(str, (f"{r['id']}_chunk_{c.number}", r["id"], c.number, c.start, c.end,
                                                     c.n_frames, *cells, region_of.get(c.number, "NA")))))
        for g in found:
            whole = "true" if g.whole else "false"
            out["regions"].append("\t".join(map(str, (
                g.region_id, r["id"], g.start, g.end, g.length, g.chunks[0].number, g.chunks[-1].number,
                len(g.chunks), g.n_viral, repr(g.mean_score), repr(g.max_score), whole))))
            seqid = regions.gff_seqid(r["id"])
            if g.index == 1:
                out["gff"].append(f"##sequence-region {seqid} 1 {r['length']}")
            name = regions._attribute(g.region_id)
            out["gff"].append(
                f"{seqid}\tvirnucpro\tregion\t{g.start}\t{g.end}\t{g.max_score:.4f}\t.\t.\tID={name};Name={name};"
                f"virnucpro_call=viral_region;mean_chunk_score={g.mean_score:.4f};n_chunks={len(g.chunks)};"
                f"n_chunks_viral={g.n_viral};chunks={g.chunks[0].number}-{g.chunks[-1].number};whole_record={whole}")
            out["bed"].append(f"{r['id']}\t{g.start - 1}\t{g.end}\t{g.region_id}\t{round(g.max_score * 1000)}\t.")
            out["regions_fa"].append(wrap_fasta(
                f"{g.region_id} record={r['id']} region={g.start}-{g.end} score={g.max_score:.4f} "
                f"mean_score={g.mean_score:.4f} chunks={len(g.chunks)} whole_record={whole}",
                seqs[index][g.start - 1:g.end], FASTA_LINE_WIDTH))
            tops.append(((g.max_score, g.mean_score, -len(tops)), g.region_id))
        if call == "viral":
            spans = ",".join(f"{g.start}-{g.end}" for g in found)
            out["viral"].append(wrap_fasta(f"{r['id']} score={virus:.4f} region={spans}", seqs[index],
                                           FASTA_LINE_WIDTH))
        if r["length"]:
            lengths.append(r["length"])
    top = [name for _, name in sorted(tops, reverse=True)[:TOP_REGIONS]]
    return out, top, lengths


def text_of(lines, header=""):
    return header + "".join(line + "\n" for line in lines)


# cores: texts and headers made in that many parts (of at least 3 rows here), or fewer when there are not enough
# rows; ranges cut records' chunks and regions apart.
@pytest.mark.parametrize("seed, threshold, gap, cores", [(1, 0.5, 1, 1), (2, 0.5, 0, 2), (3, 0.37, 2, 7),
                                                         (4, 0.81, 1, 500)])
def test_files_match_the_record_by_record_oracle(tmp_path, monkeypatch, seed, threshold, gap, cores):
    monkeypatch.setattr(blocks, "BLOCK_ROWS", 7)  # many blocks, and blocks that split a record's chunks
    monkeypatch.setattr(aggregate, "cores", lambda: cores)
    monkeypatch.setattr(seqio, "_BLOCK_BYTES", 97)  # the input streamed in many batches, records cut between them
    rng = random.Random(seed)
    records, frame_ids, probs = make_sample(rng, 400)
    seqs, predictions, shards = write_sample(tmp_path, rng, records, frame_ids, probs)
    out = tmp_path / "out"
    summary = aggregate_sample("S", predictions, tmp_path / "records.tsv", tmp_path / "in.fa", threshold, out,
                               chunk_length=L, shard_paths=shards, region_gap=gap, min_length=0)
    want, top, lengths = oracle(records, frame_ids, probs, seqs, threshold, gap)
    assert {r["n_chunks"] for r in records} > {0, 1}  # the sample holds reads and contigs
    assert len(want["regions"]) > 20 and any(g.split("\t")[-1] == "false" for g in want["regions"])
    tab = "\t".join
    assert (out / "S.records.tsv").read_text() == text_of(want["records"], tab(rollup.RECORD_COLUMNS) + "\n")
    assert (out / "S.chunks.tsv").read_text() == text_of(want["chunks"], tab(regions.CHUNK_COLUMNS) + "\n")
    assert (out / "S.viral_regions.tsv").read_text() == text_of(want["regions"], tab(regions.REGION_COLUMNS) + "\n")
    assert (out / "S.viral_regions.gff3").read_text() == text_of(want["gff"], regions.GFF_HEADER)
    assert (out / "S.viral_regions.bed").read_text() == text_of(want["bed"])
    assert (out / "S.viral.fa").read_text() == "".join(want["viral"])
    assert (out / "S.viral_regions.fa").read_text() == "".join(want["regions_fa"])
    assert [t["region_id"] for t in summary["top_regions"]] == top
    assert json.loads((out / "S.summary.json").read_text())["record_length"] == {
        "min": min(lengths), "median": statistics.median(lengths), "mean": round(sum(lengths) / len(lengths), 1),
        "max": max(lengths), "n50": oracle_n50(lengths), "total_bases": sum(lengths)}


def oracle_n50(lengths):
    running = 0
    for n in sorted(lengths, reverse=True):
        running += n
        if running >= sum(lengths) / 2:
            return n


def test_highestscore_rows_group_and_sort_like_the_original(tmp_path):
    rng = random.Random(5)
    records, frame_ids, probs = make_sample(rng, 300)
    order = list(range(len(frame_ids)))
    rng.shuffle(order)  # the original groups by chunk id wherever the frames are
    ids = [frame_ids[k] for k in order]
    p = probs[order]
    best = {}
    for i, (p_others, p_virus) in zip(ids, p.tolist()):
        b = best.setdefault(i[:-2], [-math.inf, -math.inf])
        b[0], b[1] = max(b[0], p_others), max(b[1], p_virus)
    from virnucpro.classify.outputs import highestscore_rows

    chunks, viral = highestscore_rows(ids, p)
    assert list(zip(chunks, viral.tolist())) == [(c, b[1] >= b[0]) for c, b in sorted(best.items())]


@pytest.fixture
def small(tmp_path):
    rng = random.Random(9)
    records, frame_ids, probs = make_sample(rng, 12)
    seqs, predictions, shards = write_sample(tmp_path, rng, records, frame_ids, probs)
    return dict(dir=tmp_path, records=records, predictions=predictions, shards=shards)


def run(s, **kw):
    return aggregate_sample("S", s["predictions"], s["dir"] / "records.tsv", s["dir"] / "in.fa", 0.5,
                            s["dir"] / "out", chunk_length=L, **kw)


def edit_lines(path, edits: dict[int, str]):
    lines = path.read_text().splitlines()
    for number, text in edits.items():
        lines[number - 1] = text
    path.write_text("".join(line + "\n" for line in lines))


@pytest.mark.parametrize("edits, message", [
    ({3: "a\tx\t1\t1\tkept", 5: "a\t1\t1"}, "line 3: length, n_chunks and n_frames must be integers"),
    ({3: "a\t1\t1", 5: "a\tx\t1\t1\tkept"}, "line 3: 3 fields, the header has 5"),
    ({4: "a\t-1\t1\t1\tkept"}, "line 4: length, n_chunks and n_frames must not be negative"),
])
@pytest.mark.parametrize("block_rows", [2, 100_000])  # the bad lines in later blocks, or all in the first
def test_the_first_bad_line_of_the_records_table_is_named(small, monkeypatch, block_rows, edits, message):
    monkeypatch.setattr(blocks, "BLOCK_ROWS", block_rows)
    edit_lines(small["dir"] / "records.tsv", edits)
    with pytest.raises(InputError, match=message):
        run(small)


@pytest.mark.parametrize("edits, message", [
    ({3: "f\tothers\tx\t0.5", 5: "f\tmaybe\t0.5\t0.5"}, "line 3: scores are not numbers"),
    ({3: "f\tmaybe\t0.5\t0.5", 5: "f\tothers\tx\t0.5"}, "line 3: expected Sequence_ID"),
    ({4: "f\tothers\t0.5"}, "line 4: expected Sequence_ID"),
])
@pytest.mark.parametrize("block_rows", [2, 100_000])
def test_the_first_bad_line_of_a_predictions_file_is_named(small, monkeypatch, block_rows, edits, message):
    monkeypatch.setattr(blocks, "BLOCK_ROWS", block_rows)
    edit_lines(small["predictions"][0], edits)
    with pytest.raises(InputError, match=message):
        run(small)


def _first_line_of(records, status):
    return next(k for k, r in enumerate(records) if r["status"] == status) + 2


def test_the_first_record_that_fails_a_check_is_named_in_walk_order(small):
    """A records-table status that another --min-length would give, and a frame that is not its record's: the
    earlier record is named, and within one record its frames come first."""
    records, path = small["records"], small["dir"] / "records.tsv"
    kept = [k for k, r in enumerate(records) if r["status"] == "kept"]
    first, later = kept[0], kept[-1]
    table = path.read_text().splitlines()
    bad_status = table[first + 1].rsplit("\t", 1)[0] + "\ttoo_short"
    renamed = table[later + 1].replace(records[later]["id"], "zz", 1)
    edit_lines(path, {first + 2: bad_status, later + 2: renamed})
    with pytest.raises(InputError, match=f"line {first + 2}: record .* is 'too_short' but --min-length"):
        run(small)
    edit_lines(path, {first + 2: bad_status.replace(records[first]["id"], "zz", 1)})
    with pytest.raises(InputError, match=f"line {first + 2}: record 'zz' expects"):
        run(small)
