"""The aggregate step: a sample's shard predictions in, its result files out (docs/output.md).

Writes into ``outdir``, atomically (all files appear together, or none on error):
  prediction_results.txt               the original's per-frame file (classify/outputs.py writes it)
  prediction_results_highestscore.csv  the original's per-chunk file
  <sample>.records.tsv                 one row per input record (report/rollup.py), input order
  <sample>.viral.fa                    the input records called viral, streamed from the input, input order
  <sample>.summary.json                counts, length statistics, score histograms, warnings, best regions (read
                                       by `report`)
  <sample>.chunks.tsv                  one row per chunk: coordinates, best frame scores, chunk call, region
  <sample>.viral_regions.tsv|.gff3|.bed  runs of viral chunks with coordinates (report/regions.py)
  <sample>.viral_regions.fa            the regions' sequences
Only scores are read, never the GPU or the models: re-running with another threshold is cheap and gives the same
scores (docs/usage.md, "Re-threshold without recomputing").

Records, frames, chunks and regions are columns (NumPy arrays and lists), so the roll-up, the one-chunk records'
regions (most reads) and the tables are computed for all records at once; records of several chunks go through
regions.find_regions one at a time. Memory: the frame ids and both scores of every frame as text (about 250 bytes a
frame), plus the records' ids and columns (about 250 bytes a record): about 800 MiB for 1M reads (1.36M frames).

The work is spread over the cores with forked children (io/forked.py): the input tables are read one child each,
the texts that several outputs share (or that take long to make) in ranges of rows, one child per core, and the
outputs are written by three children (viral FASTA files, region files, records and chunks tables) and the parent
(the original's two files) at once. Children share the parent's columns through the fork; what they touch is copied,
so the process tree peaks near twice the parent alone (about 1.9 GiB at 1M reads). Problems are still raised in the
order a serial run meets them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np

from virnucpro import __version__
from virnucpro.errors import InputError, OptionError, user_path
from virnucpro.io.atomic import atomic_output_dir
from virnucpro.io.blocks import row_ranges
from virnucpro.io.forked import Forked, cores, forked_calls
from virnucpro.io.frames import read_frame_ids
from virnucpro.io.seqio import FASTA_LINE_WIDTH, read_raw_batches, wrap_fasta
from virnucpro.options import CHUNK_LENGTHS, DEFAULT_MIN_LENGTH, DEFAULT_REGION_GAP, SHORT_READ_FRACTION
from virnucpro.report import regions, rollup

log = logging.getLogger(__name__)

SUMMARY_FORMAT = "virnucpro.sample_summary/1"
CALL_RULE = ("virus_score >= threshold, where virus_score is the record's best chunk score "
             "0.5 + (max P(virus) - max P(others))/2 over the chunk's frames")
REGION_RULE = ("runs of chunks with chunk score >= threshold; between two such chunks, chunks without a scored frame "
               "are bridged and so are up to {gap} scored chunk(s) below the threshold; a viral record is whole when "
               "its single region holds every scored chunk of the record, else partial")
TOP_REGIONS = 20  # regions listed in the summary (and the report), best first


def output_names(sample: str) -> dict[str, str]:
    return {
        "prediction_results": "prediction_results.txt",
        "highestscore": "prediction_results_highestscore.csv",
        "records": f"{sample}.records.tsv",
        "viral_fasta": f"{sample}.viral.fa",
        "summary": f"{sample}.summary.json",
        "chunks": f"{sample}.chunks.tsv",
        "regions": f"{sample}.viral_regions.tsv",
        "gff": f"{sample}.viral_regions.gff3",
        "bed": f"{sample}.viral_regions.bed",
        "regions_fasta": f"{sample}.viral_regions.fa",
    }


def _length_stats(lengths: np.ndarray) -> dict:
    """min, median (statistics.median's value: the middle length, or the mean of the two middle ones), mean, max,
    N50 and total of the positive lengths."""
    values = np.sort(lengths[lengths > 0])
    n = len(values)
    if not n:
        return {"min": 0, "median": 0, "mean": 0, "max": 0, "n50": 0, "total_bases": 0}
    total = int(values.sum())
    middle = n // 2
    median = int(values[middle]) if n % 2 else (int(values[middle - 1]) + int(values[middle])) / 2
    longest_first = values[::-1]
    return {
        "min": int(values[0]),
        "median": median,
        "mean": round(total / n, 1),
        "max": int(values[-1]),
        "n50": int(longest_first[np.argmax(np.cumsum(longest_first) >= total / 2)]),
        "total_bases": total,
    }


def aggregate_sample(sample: str, prediction_paths: list[Path], records_path: Path, input_path: Path,
                     threshold: float, outdir: Path, chunk_length: int | None = None,
                     shard_paths: list[Path] | None = None, min_length: int = DEFAULT_MIN_LENGTH,
                     region_gap: int = DEFAULT_REGION_GAP) -> dict:
    """Write the sample's result files into ``outdir``; return the summary (also written as JSON). Works on whole
    columns (records, chunks, frames, regions) rather than record by record, spread over the cores
    (docs/BENCHMARKS.md, "Aggregate")."""
    from virnucpro.classify import outputs

    if not 0.0 <= threshold <= 1.0:
        raise OptionError("threshold", f"must be between 0 and 1, got {threshold}")
    if min_length < 0:
        raise OptionError("min_length", f"must be 0 or a positive number of bases, got {min_length}")
    if region_gap < 0:
        raise OptionError("region_gap", f"must be 0 or a positive number of chunks, got {region_gap}")
    records_path, input_path = Path(records_path), Path(input_path)
    if not input_path.is_file():
        raise InputError(input_path, "input sequence file not found")
    prediction_paths = rollup.order_by_shard([Path(p) for p in prediction_paths])
    shard_paths = rollup.order_by_shard([Path(p) for p in shard_paths]) if shard_paths else []
    # The input tables are read side by side, one child each, and checked in the order a serial reader would
    # meet their problems.
    lap = _Laps()
    with contextlib.ExitStack() as readers:
        reading = [readers.enter_context(Forked(rollup.read_predictions_file, p)) for p in prediction_paths]
        shards = [readers.enter_context(Forked(read_frame_ids, p)) for p in shard_paths]
        records = readers.enter_context(Forked(rollup.read_records_table, records_path))
        preds = rollup.joined_predictions(prediction_paths, [r.wait() for r in reading])
        rollup.check_unique(preds)
        if shard_paths:
            rollup.check_against_shards(preds, [i for shard in shards for i in shard.wait()])
        table = records.wait()
    lap("read and check the inputs")
    candidates = _chunk_lengths(table, chunk_length, records_path)
    if chunk_length is None and len(candidates) == 1:
        chunk_length = next(iter(candidates))
    chunks_of_frames = rollup.frame_chunks(table, preds.ids)
    chunk_start, chunk_end = _check_records(table, preds, chunks_of_frames, min_length, candidates, records_path)
    roll = rollup.roll_up(table, preds.probs, chunks_of_frames, threshold)
    del chunks_of_frames
    found = regions.find_all_regions(table.ids, table.length, roll, chunk_start, chunk_end, threshold, region_gap)
    region_ids = regions.region_ids(table.ids, found)
    region_code = _region_calls(roll.call, found)
    viral = np.flatnonzero(roll.call == rollup.CALLS.index("viral"))
    names = output_names(sample)
    inputs = {"predictions": [str(p) for p in prediction_paths], "records": str(records_path),
              "input": user_path(input_path)}
    lap("roll up and find the regions")
    # Texts shared by several outputs, or long to make: in parts side by side.

    def frame_score_texts(rows):
        return outputs.score_texts(preds.probs[rows])

    def chunk_score_texts(rows):
        return (rollup.chunk_score_texts(roll, rows),)

    def fasta_headers(rows):
        return (regions.viral_headers(table.ids, roll.virus_score, found, viral[rows]),)

    def region_headers(rows):
        return (regions.region_fasta_headers(table.ids, found, region_ids, rows),)

    texts = _joined(_in_parts(frame_score_texts, len(preds.ids)))
    score_texts = _joined(_in_parts(chunk_score_texts, len(roll.chunk_frames)))[0]
    headers = _joined(_in_parts(fasta_headers, len(viral)))[0]
    headers_of_regions = _joined(_in_parts(region_headers, len(found)))[0]
    viral_bp = np.zeros(len(table), np.int64)
    np.add.at(viral_bp, found.record, found.end - found.start + 1)
    lap("score texts and FASTA headers")

    def region_files(tmp):
        with _text(tmp / names["regions"]) as tsv, _text(tmp / names["gff"]) as gff, \
                _text(tmp / names["bed"]) as bed:
            regions.write_region_files(tsv, gff, bed, table.ids, table.length, found, region_ids)

    def viral_fasta(tmp):
        _write_viral_fasta(input_path, records_path, table, viral, headers, found, headers_of_regions,
                           tmp / names["viral_fasta"], tmp / names["regions_fasta"])

    def highestscore(tmp):
        outputs.write_highestscore(tmp / names["highestscore"], preds.ids, preds.probs)

    def prediction_results(tmp):
        outputs.write_prediction_results(tmp / names["prediction_results"], preds.ids, preds.probs, texts)

    def tables(tmp):  # in one child: they read much the same texts, which each child would copy
        with _text(tmp / names["records"]) as fh:
            rollup.write_records(fh, table, roll, np.bincount(found.record, minlength=len(table)), viral_bp,
                                 region_code, texts[1], score_texts)
        with _text(tmp / names["chunks"]) as fh:
            regions.write_chunks(fh, table.ids, roll, chunk_start, chunk_end, regions.chunk_regions(roll, found),
                                 region_ids, threshold, texts, score_texts)

    with atomic_output_dir(outdir) as tmp, contextlib.ExitStack() as stack:  # a child stops before tmp goes
        # The outputs side by side: the longest ones in children (the viral FASTA, which streams the input again,
        # first), the two files of the original here, where nothing has to be copied for them.
        children = [stack.enter_context(Forked(write, tmp)) for write in (viral_fasta, region_files, tables)]
        highestscore(tmp)
        prediction_results(tmp)
        for child in children:
            child.wait()
        lap("write the outputs")
        summary = _summary(sample, threshold, chunk_length, table, roll, found, region_code, len(preds.ids), names,
                           inputs, min_length, region_gap, _top_regions(table, found, region_ids))
        with open(tmp / names["summary"], "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
        for f in tmp.iterdir():
            f.chmod(0o644)  # results are for everyone to read, like any file written with the default umask
    lap("summary")
    for warning in summary["warnings"]:
        log.warning("sample %s: %s", sample, warning)
    log.info("sample %s: %d records, %d viral (%.2f%%: %d whole, %d partial) at threshold %g, %d regions, "
             "%d too short, %d frames scored", sample, summary["records"], summary["records_viral"],
             summary["percent_viral"], summary["records_viral_whole"], summary["records_viral_partial"], threshold,
             summary["regions"], summary["records_too_short"], summary["frames"])
    return summary


class _Laps:
    """Each call logs (debug) the wall and CPU seconds of this process since the previous one: with the children's
    own times (io/forked.py), the critical path of the step."""

    def __init__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def __call__(self, step: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        log.debug("%s: %.2f s, %.2f s CPU in the parent", step, wall - self._wall, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu


def _in_parts(fn, n_rows: int) -> list:
    """``fn(rows)`` for consecutive ranges of ``n_rows`` rows, one child per range, one range per core."""
    return forked_calls((fn, rows) for rows in row_ranges(n_rows, cores()))


def _joined(parts: list[tuple[list, ...]]) -> tuple[list, ...]:
    """Tuples of lists made for consecutive ranges of rows, as one tuple of lists over all the rows."""
    return tuple([x for part in column for x in part] for column in zip(*parts))


def _text(path: Path):
    return open(path, "w", encoding="utf-8", newline="\n")


def _region_calls(call: np.ndarray, found: regions.RegionTable) -> np.ndarray:
    """Each record's region-aware call, as an index into REGION_CALLS: a viral record is whole when one of its
    regions (its only one) is, else partial; other calls stay as they are."""
    whole = np.zeros(len(call), bool)
    whole[found.record[found.whole]] = True
    other = np.array([rollup.REGION_CALLS.index(c) if c in rollup.REGION_CALLS else -1 for c in rollup.CALLS])
    return np.where(call == rollup.CALLS.index("viral"),
                    np.where(whole, rollup.REGION_CALLS.index("whole"), rollup.REGION_CALLS.index("partial")),
                    other[call])


def _top_regions(table: rollup.RecordsTable, found: regions.RegionTable, region_ids: list[str]) -> list[dict]:
    """The TOP_REGIONS best regions by max then mean chunk score (earlier in the input first on ties)."""
    best = np.lexsort((np.arange(len(found)), -found.mean_score, -found.max_score))[:TOP_REGIONS].tolist()
    top = []
    for k in best:
        r, start, end = int(found.record[k]), int(found.start[k]), int(found.end[k])
        top.append({"region_id": region_ids[k], "record_id": table.ids[r], "record_length": int(table.length[r]),
                    "start": start, "end": end, "length": end - start + 1, "n_chunks": int(found.n_chunks[k]),
                    "max_chunk_score": float(found.max_score[k]), "mean_chunk_score": float(found.mean_score[k]),
                    "whole_record": bool(found.whole[k])})
    return top


def _chunk_lengths(table: rollup.RecordsTable, chunk_length: int | None, records_path: Path) -> set[int]:
    """The chunk lengths that fit every chunked record of the table: {chunk_length} when given (an error when a
    record does not fit it), else those of CHUNK_LENGTHS that fit. The error names the record where a walk through
    the table would run out of fitting lengths."""
    chunked = np.flatnonzero(table.n_chunks > 0)
    length, n_chunks = table.length[chunked], table.n_chunks[chunked]
    first_miss = {}
    for c in ([chunk_length] if chunk_length else sorted(CHUNK_LENGTHS)):
        miss = np.flatnonzero(-(-length // c) != n_chunks)
        first_miss[c] = int(miss[0]) if len(miss) else None
    fitting = {c for c, k in first_miss.items() if k is None}
    if fitting:
        return fitting
    k = int(chunked[max(first_miss.values())])
    where = f"line {k + 2}: record {table.ids[k]!r} of {table.length[k]} bp has {table.n_chunks[k]} chunk(s)"
    if chunk_length:
        raise InputError(records_path, f"{where}, which {chunk_length} bp chunks cannot give: wrong --chunk-length "
                         "or records table")
    raise InputError(records_path, f"{where}, which no published chunk length gives: give --chunk-length")


def _first(mask: np.ndarray) -> int:
    """Index of the first True, len(mask) if none."""
    return int(np.argmax(mask)) if mask.any() else len(mask)


def _check_records(table: rollup.RecordsTable, preds: rollup.Predictions, chunks_of_frames: np.ndarray,
                   min_length: int, candidates: set[int], records_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every check of the walk through records and frames in lockstep, the first failure raised as a walk record by
    record meets it: a record's frames (enough left, each its own), then its status against --min-length, then its
    chunk coordinates; frames left after the last record last. So no frame is silently attached to the wrong
    record or dropped. Returns every chunk's (start, end), 1-based inclusive."""
    n, n_records = len(preds.ids), len(table)
    ends = np.cumsum(table.n_frames)
    bad = np.flatnonzero(chunks_of_frames == 0)
    kept = np.fromiter(map("kept".__eq__, table.status), bool, n_records)
    too_short = np.fromiter(map("too_short".__eq__, table.status), bool, n_records)
    short = (table.length > 0) & (table.length < min_length)
    k, check = min(  # (record, check): checks of one record in the order above
        (_first((table.n_frames > 0) & (ends > n)), 0),
        (int(np.searchsorted(ends, bad[0], side="right")) if len(bad) else n_records, 1),
        (_first(kept & (table.n_frames == 0)), 2),
        (_first(short != too_short), 3))
    start, end = _chunk_coordinates(table, candidates, records_path, k)
    if k < n_records:
        rid, nf, line = table.ids[k], int(table.n_frames[k]), k + 2
        if check == 0:
            raise InputError(records_path, f"line {line}: record {rid!r} has {nf} frame(s), but the predictions end "
                                           f"after {n - int(ends[k]) + nf} more")
        if check == 1:
            raise InputError(
                records_path, f"line {line}: record {rid!r} expects {nf} frame(s) of its {table.n_chunks[k]} "
                f"chunk(s), but {preds.where(int(bad[0]))} is {preds.ids[bad[0]]!r}: the predictions do not match "
                "this records table (missing, extra or reordered frames)")
        if check == 2:
            raise InputError(records_path, f"line {line}: record {rid!r} is 'kept' with 0 frames")
        raise InputError(records_path, f"line {line}: record {rid!r} of {table.length[k]} bp is {table.status[k]!r} "
                         f"but --min-length is {min_length}: the records table was written with another --min-length")
    used = int(ends[-1]) if n_records else 0
    if used != n:
        raise InputError(preds.files[0][0] if preds.files else records_path,
                         f"{n - used} predicted frame(s) belong to no record of {records_path.name}, from "
                         f"{preds.where(used)} ({preds.ids[used]!r}): predictions and records table are from "
                         "different inputs")
    return start, end


def _chunk_coordinates(table: rollup.RecordsTable, candidates: set[int], records_path: Path,
                       stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Every chunk's (start, end). A one-chunk record is the whole record, whatever the chunk length (most reads);
    longer records follow the chunking rule, which must give the same coordinates for every fitting chunk length.
    Records from ``stop`` on (one of them fails an earlier check) are not looked at."""
    n_chunks = table.n_chunks
    start = np.ones(int(n_chunks.sum()), np.int64)
    end = np.repeat(table.length, n_chunks)
    first = np.cumsum(n_chunks) - n_chunks
    for r in np.flatnonzero(n_chunks > 1).tolist():
        if r >= stop:
            break
        length, count = int(table.length[r]), int(n_chunks[r])
        bounds = {tuple(regions.chunk_bounds(length, count, c)) for c in candidates}
        if len(bounds) != 1:
            raise InputError(records_path, f"line {r + 2}: the chunk coordinates of record {table.ids[r]!r} depend "
                             f"on the chunk length ({' or '.join(map(str, sorted(candidates)))} bp): give "
                             "--chunk-length")
        start[first[r]:first[r] + count], end[first[r]:first[r] + count] = zip(*next(iter(bounds)))
    return start, end


def _write_viral_fasta(input_path: Path, records_path: Path, table: rollup.RecordsTable, viral: np.ndarray,
                       headers: list[str], found: regions.RegionTable, region_headers: list[str], out: Path,
                       regions_out: Path) -> None:
    """Stream the input once more and copy the records called viral (``headers``: score and regions) and their
    regions' sequences (every region is in a viral record, in the same order). The input must be the file that was
    preprocessed: its records' ids and lengths must be the records table's (checked once the input is read; the
    files are not kept otherwise)."""
    ids: list[str] = []
    lengths: list[int] = []
    with open(out, "w", encoding="ascii", newline="\n") as fh, \
            open(regions_out, "w", encoding="ascii", newline="\n") as regions_fh:
        for batch, seqs in read_raw_batches(input_path, unique_ids=False, allow_empty=True):
            first = len(ids)  # the index of the batch's first record
            ids += batch
            lengths += map(len, seqs)
            lo, hi = np.searchsorted(viral, (first, len(ids))).tolist()
            picked = viral[lo:hi].tolist()
            texts = [seqs[k - first].decode("ascii") for k in picked]
            bodies = [wrap_fasta("", seq, FASTA_LINE_WIDTH)[2:] for seq in texts]  # the lines after ">\n"
            fh.write("".join(map(">{}\n{}".format, headers[lo:hi], bodies)))
            of = dict(zip(picked, range(len(picked))))  # every region is in a viral record
            lo, hi = np.searchsorted(found.record, (first, len(ids))).tolist()
            regions_fh.write("".join(
                # most reads: the region is the whole record
                f">{header}\n{bodies[of[r]]}" if start == 1 and end == len(texts[of[r]]) else
                wrap_fasta(header, texts[of[r]][start - 1:end], FASTA_LINE_WIDTH)
                for r, start, end, header in zip(found.record[lo:hi].tolist(), found.start[lo:hi].tolist(),
                                                 found.end[lo:hi].tolist(), region_headers[lo:hi])))
    if ids != table.ids or lengths != table.length.tolist():
        k = next((k for k, (a, b, m, n) in enumerate(zip(ids, table.ids, lengths, table.length.tolist()))
                  if a != b or m != n), min(len(ids), len(table)))
        if k < len(ids):
            expected = "nothing more" if k >= len(table) else f"{table.ids[k]!r} ({table.length[k]} bp)"
            raise InputError(input_path, f"record {k + 1} is {ids[k]!r} ({lengths[k]} bp) but {records_path.name} "
                             f"has {expected} there: --input is not the file that was preprocessed")
        raise InputError(input_path, f"ends before record {table.ids[k]!r} of {records_path.name} (line {k + 2}): "
                         "--input is not the file that was preprocessed")


def _tally(codes: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    return dict(zip(names, np.bincount(codes, minlength=len(names)).tolist()))


def _summary(sample, threshold, chunk_length, table: rollup.RecordsTable, roll: rollup.RollUp,
             found: regions.RegionTable, region_code: np.ndarray, frames, names, inputs, min_length, region_gap,
             top) -> dict:
    n = len(table)
    call_counts, region_counts = _tally(roll.call, rollup.CALLS), _tally(region_code, rollup.REGION_CALLS)
    status_counts = Counter(table.status)
    scored = n - call_counts["no_prediction"]
    length_stats = _length_stats(table.length)
    has_score = ~np.isnan(roll.virus_score)
    warnings = []
    if chunk_length and length_stats["median"] and length_stats["median"] < SHORT_READ_FRACTION * chunk_length:
        warnings.append(
            f"median record length {length_stats['median']:g} bp is much shorter than the {chunk_length} bp chunk "
            f"length: the {chunk_length} bp model was trained on {chunk_length} bp chunks and is unreliable on "
            "records this short (about 53% accuracy was reported for 150 bp reads with the 300 bp model)")
    if chunk_length is None:
        warnings.append("chunk length unknown (give --chunk-length): short-read check skipped")
    elif chunk_length not in CHUNK_LENGTHS:
        warnings.append(f"chunk length {chunk_length} matches no published model (300 or 500)")
    if not n:
        warnings.append("the input file holds no records (empty file)")
    if n and not scored:
        warnings.append("no record has a frame to score: every record is empty or has stop codons in all frames")
    if status_counts.get("empty"):
        warnings.append(f"{status_counts['empty']} empty record(s) (header without sequence) skipped")
    if status_counts.get("too_short"):
        warnings.append(f"{status_counts['too_short']} record(s) shorter than --min-length {min_length} bp not "
                        "classified (status too_short)")
    edges = [round(k / rollup.HISTOGRAM_BINS, 4) for k in range(rollup.HISTOGRAM_BINS + 1)]
    return {
        "format": SUMMARY_FORMAT,
        "sample": sample,
        "virnucpro_version": __version__,
        "threshold": threshold,
        "call_rule": CALL_RULE,
        "region_rule": REGION_RULE.format(gap=region_gap),
        "chunk_length": chunk_length,
        "min_length": min_length,
        "region_gap": region_gap,
        "records": n,
        "record_status": dict(sorted(status_counts.items())),
        "records_viral": call_counts["viral"],
        "records_not_viral": call_counts["not_viral"],
        "records_no_prediction": call_counts["no_prediction"],
        "records_viral_whole": region_counts["whole"],
        "records_viral_partial": region_counts["partial"],
        "records_too_short": status_counts.get("too_short", 0),
        "regions": len(found),
        "percent_viral": round(100.0 * call_counts["viral"] / n, 4) if n else 0.0,
        "percent_viral_of_scored": round(100.0 * call_counts["viral"] / scored, 4) if scored else 0.0,
        "chunks": int(table.n_chunks.sum()),
        "chunks_scored": int(roll.n_chunks_scored.sum()),
        "chunks_viral": int(roll.n_chunks_viral.sum()),
        "frames": frames,
        "record_length": length_stats,
        "histograms": {
            "edges": edges,
            "virus_score": rollup.histogram(roll.virus_score[has_score]),
            "max_p_virus": rollup.histogram(roll.max_p_virus[has_score]),
        },
        "top_regions": top,
        "warnings": warnings,
        "inputs": inputs,
        "outputs": names,
    }
