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

Memory: the sample's frame ids and scores (about 300 bytes a frame with Python's overhead), plus 9 bytes a record,
plus the FASTA header and region spans of each viral record.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import statistics
from array import array
from pathlib import Path

from virnucpro import __version__
from virnucpro.errors import InputError, OptionError, user_path
from virnucpro.io.atomic import atomic_output_dir
from virnucpro.io.seqio import FASTA_LINE_WIDTH, read_sequences, wrap_fasta
from virnucpro.options import CHUNK_LENGTHS, DEFAULT_MIN_LENGTH, DEFAULT_REGION_GAP
from virnucpro.report import regions, rollup

log = logging.getLogger(__name__)

SHORT_READ_FRACTION = 0.75  # warn when the median record is shorter than this fraction of the chunk length
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


def _n50(lengths: list[int]) -> int:
    half = sum(lengths) / 2
    running = 0
    for length in sorted(lengths, reverse=True):
        running += length
        if running >= half:
            return length
    return 0


def _length_stats(lengths: array) -> dict:
    values = [v for v in lengths if v > 0]
    if not values:
        return {"min": 0, "median": 0, "mean": 0, "max": 0, "n50": 0, "total_bases": 0}
    return {
        "min": min(values),
        "median": statistics.median(values),
        "mean": round(sum(values) / len(values), 1),
        "max": max(values),
        "n50": _n50(values),
        "total_bases": sum(values),
    }


def aggregate_sample(sample: str, prediction_paths: list[Path], records_path: Path, input_path: Path,
                     threshold: float, outdir: Path, chunk_length: int | None = None,
                     shard_paths: list[Path] | None = None, min_length: int = DEFAULT_MIN_LENGTH,
                     region_gap: int = DEFAULT_REGION_GAP) -> dict:
    """Write the sample's result files into ``outdir``; return the summary (also written as JSON)."""
    from virnucpro.classify.outputs import write_highestscore, write_prediction_results

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
    preds = rollup.read_all_predictions(prediction_paths)
    rollup.check_unique(preds)
    if shard_paths:
        rollup.check_against_shards(preds, rollup.order_by_shard([Path(p) for p in shard_paths]))
    candidates = _chunk_lengths(records_path, chunk_length)
    if chunk_length is None and len(candidates) == 1:
        chunk_length = next(iter(candidates))
    names = output_names(sample)
    counts = _Counts()
    viral: dict[int, tuple[str, list[tuple[int, int, str]]]] = {}  # record index -> FASTA header, region spans
    top: list[tuple] = []  # heap of the best regions
    region_order = itertools.count()

    with atomic_output_dir(outdir) as tmp:
        write_prediction_results(tmp / names["prediction_results"], preds.ids, preds.probs)
        write_highestscore(tmp / names["highestscore"], preds.ids, preds.probs)
        with _Tables(tmp, names) as out:
            records = rollup.read_preprocess_records(records_path)
            for index, result in enumerate(rollup.roll_up(records, preds, threshold, records_path)):
                rec = result.record
                _check_min_length(rec, min_length, records_path)
                chunks = _chunks(rec, result, candidates, records_path)
                found = regions.find_regions(rec.record_id, rec.length, chunks, threshold, region_gap)
                result.n_regions = len(found)
                result.viral_bp = sum(r.length for r in found)
                result.region_call = regions.region_call(result.call, found)
                out.write(result, chunks, found, threshold)
                counts.add(result, len(found))
                if result.call == "viral":
                    viral[index] = (regions.viral_header(rec.record_id, result.virus_score, found),
                                    [(r.start, r.end, regions.region_header(r)) for r in found])
                for r in found:
                    _keep_top(top, r, next(region_order))
        n_viral_written = _write_viral_fasta(input_path, records_path, viral, tmp / names["viral_fasta"],
                                             tmp / names["regions_fasta"])
        summary = _summary(sample, threshold, chunk_length, counts, len(preds.ids), names,
                           {"predictions": [str(p) for p in prediction_paths], "records": str(records_path),
                            "input": user_path(input_path)}, min_length, region_gap, top)
        assert n_viral_written == counts.calls["viral"]
        with open(tmp / names["summary"], "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
        for f in tmp.iterdir():
            f.chmod(0o644)  # results are for everyone to read, like any file written with the default umask
    for warning in summary["warnings"]:
        log.warning("sample %s: %s", sample, warning)
    log.info("sample %s: %d records, %d viral (%.2f%%: %d whole, %d partial) at threshold %g, %d regions, "
             "%d too short, %d frames scored", sample, summary["records"], summary["records_viral"],
             summary["percent_viral"], summary["records_viral_whole"], summary["records_viral_partial"], threshold,
             summary["regions"], summary["records_too_short"], summary["frames"])
    return summary


class _Counts:
    """What the summary counts, gathered record by record."""

    def __init__(self):
        self.status: dict[str, int] = {}
        self.calls = dict.fromkeys(rollup.CALLS, 0)
        self.region_calls = dict.fromkeys(rollup.REGION_CALLS, 0)
        self.lengths = array("q")
        self.scores: list[float] = []
        self.max_p: list[float] = []
        self.chunks = self.chunks_scored = self.chunks_viral = self.regions = 0

    def add(self, result: rollup.RecordResult, n_regions: int) -> None:
        rec = result.record
        self.status[rec.status] = self.status.get(rec.status, 0) + 1
        self.calls[result.call] += 1
        self.region_calls[result.region_call] += 1
        self.lengths.append(rec.length)
        self.chunks += rec.n_chunks
        self.chunks_scored += result.n_chunks_scored
        self.chunks_viral += result.n_chunks_viral
        self.regions += n_regions
        if result.virus_score is not None:
            self.scores.append(result.virus_score)
            self.max_p.append(result.max_p_virus)


class _Tables:
    """The per-record, per-chunk and per-region files, written one record at a time."""

    def __init__(self, tmp: Path, names: dict[str, str]):
        self._files = {key: open(tmp / names[key], "w", encoding="utf-8", newline="\n")
                       for key in ("records", "chunks", "regions", "gff", "bed")}

    def __enter__(self):
        f = self._files
        f["records"].write("\t".join(rollup.RECORD_COLUMNS) + "\n")
        f["chunks"].write("\t".join(regions.CHUNK_COLUMNS) + "\n")
        f["regions"].write("\t".join(regions.REGION_COLUMNS) + "\n")
        f["gff"].write(regions.GFF_HEADER)
        return self

    def write(self, result: rollup.RecordResult, chunks: list[regions.Chunk], found: list[regions.Region],
              threshold: float) -> None:
        f = self._files
        f["records"].write(result.row())
        f["chunks"].write(regions.chunk_rows(result.record.record_id, chunks, found, threshold))
        if found:
            f["regions"].write("".join(regions.region_row(r) for r in found))
            f["gff"].write(regions.gff_lines(found, result.record.length))
            f["bed"].write(regions.bed_lines(found))

    def __exit__(self, *exc):
        for fh in self._files.values():
            fh.close()


def _keep_top(top: list[tuple], r: regions.Region, order: int) -> None:
    """Keep the TOP_REGIONS best regions by max then mean chunk score (earlier in the input first on ties)."""
    if len(top) >= TOP_REGIONS and (r.max_score, r.mean_score, -order) <= top[0][:3]:
        return
    item = (r.max_score, r.mean_score, -order, {
        "region_id": r.region_id, "record_id": r.record_id, "record_length": r.record_length, "start": r.start,
        "end": r.end, "length": r.length, "n_chunks": len(r.chunks), "max_chunk_score": r.max_score,
        "mean_chunk_score": r.mean_score, "whole_record": r.whole})
    if len(top) < TOP_REGIONS:
        heapq.heappush(top, item)
    elif item[:3] > top[0][:3]:
        heapq.heapreplace(top, item)


def _chunk_lengths(records_path: Path, chunk_length: int | None) -> set[int]:
    """The chunk lengths that fit every chunked record of the table (one pass over it): {chunk_length} when given
    (an error when a record does not fit it), else those of CHUNK_LENGTHS that fit."""
    candidates = {chunk_length} if chunk_length else set(CHUNK_LENGTHS)
    for rec in rollup.read_preprocess_records(records_path):
        if not rec.n_chunks:
            continue
        fitting = rollup.infer_chunk_length(rec.length, rec.n_chunks, candidates)
        if chunk_length and not fitting:
            raise InputError(records_path, f"line {rec.line}: record {rec.record_id!r} of {rec.length} bp has "
                             f"{rec.n_chunks} chunk(s), which {chunk_length} bp chunks cannot give: wrong "
                             "--chunk-length or records table")
        if not fitting:
            raise InputError(records_path, f"line {rec.line}: record {rec.record_id!r} of {rec.length} bp has "
                             f"{rec.n_chunks} chunk(s), which no published chunk length gives: give --chunk-length")
        candidates = fitting
    return candidates


def _chunks(rec: rollup.PreprocessRecord, result: rollup.RecordResult, candidates: set[int],
            records_path: Path) -> list[regions.Chunk]:
    """The record's chunks with their coordinates and best frame scores."""
    if not rec.n_chunks:
        return []
    if rec.n_chunks == 1:  # the whole record, whatever the chunk length (most reads)
        chunks = [regions.Chunk(1, 1, rec.length)]
    else:
        bounds = {tuple(regions.chunk_bounds(rec.length, rec.n_chunks, c)) for c in candidates}
        if len(bounds) != 1:
            raise InputError(records_path, f"line {rec.line}: the chunk coordinates of record {rec.record_id!r} "
                             f"depend on the chunk length ({' or '.join(map(str, sorted(candidates)))} bp): give "
                             "--chunk-length")
        chunks = [regions.Chunk(j, start, end) for j, (start, end) in enumerate(next(iter(bounds)), start=1)]
    for number, (p_others, p_virus, n_frames) in result.chunk_best.items():
        c = chunks[number - 1]
        c.max_p_others, c.max_p_virus, c.n_frames = p_others, p_virus, n_frames
    return chunks


def _check_min_length(rec: rollup.PreprocessRecord, min_length: int, records_path: Path) -> None:
    """The records table must come from a preprocess run with the same --min-length."""
    short = 0 < rec.length < min_length
    if short != (rec.status == "too_short"):
        raise InputError(records_path, f"line {rec.line}: record {rec.record_id!r} of {rec.length} bp is "
                         f"{rec.status!r} but --min-length is {min_length}: the records table was written with "
                         "another --min-length")


def _write_viral_fasta(input_path: Path, records_path: Path, viral: dict, out: Path, regions_out: Path) -> int:
    """Stream the input once more and copy the records called viral (header: score and regions) and their regions'
    sequences. The input must be the file that was preprocessed: its records are checked, in lockstep, against the
    records table (id and length)."""
    records = rollup.read_preprocess_records(records_path)
    written = 0
    with open(out, "w", encoding="ascii", newline="\n") as fh, \
            open(regions_out, "w", encoding="ascii", newline="\n") as regions_fh:
        reader = read_sequences(input_path, unique_ids=False, allow_empty=True)
        for index, (record_id, seq) in enumerate(reader):
            rec = next(records, None)
            if rec is None or rec.record_id != record_id or rec.length != len(seq):
                expected = "nothing more" if rec is None else f"{rec.record_id!r} ({rec.length} bp)"
                raise InputError(input_path, f"record {index + 1} is {record_id!r} ({len(seq)} bp) but "
                                 f"{records_path.name} has {expected} there: --input is not the file that was "
                                 "preprocessed")
            if index in viral:
                header, spans = viral[index]
                fh.write(wrap_fasta(header, seq, FASTA_LINE_WIDTH))
                for start, end, region_header in spans:
                    regions_fh.write(wrap_fasta(region_header, seq[start - 1:end], FASTA_LINE_WIDTH))
                written += 1
        rest = next(records, None)
        if rest is not None:
            raise InputError(input_path, f"ends before record {rest.record_id!r} of {records_path.name} "
                             f"(line {rest.line}): --input is not the file that was preprocessed")
    return written


def _summary(sample, threshold, chunk_length, counts: _Counts, frames, names, inputs, min_length, region_gap,
             top) -> dict:
    n = len(counts.lengths)
    call_counts, status_counts = counts.calls, counts.status
    scored = n - call_counts["no_prediction"]
    length_stats = _length_stats(counts.lengths)
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
        "records_viral_whole": counts.region_calls["whole"],
        "records_viral_partial": counts.region_calls["partial"],
        "records_too_short": status_counts.get("too_short", 0),
        "regions": counts.regions,
        "percent_viral": round(100.0 * call_counts["viral"] / n, 4) if n else 0.0,
        "percent_viral_of_scored": round(100.0 * call_counts["viral"] / scored, 4) if scored else 0.0,
        "chunks": counts.chunks,
        "chunks_scored": counts.chunks_scored,
        "chunks_viral": counts.chunks_viral,
        "frames": frames,
        "record_length": length_stats,
        "histograms": {
            "edges": edges,
            "virus_score": rollup.histogram(counts.scores),
            "max_p_virus": rollup.histogram(counts.max_p),
        },
        "top_regions": [entry for *_, entry in sorted(top, key=lambda t: t[:3], reverse=True)],
        "warnings": warnings,
        "inputs": inputs,
        "outputs": names,
    }
