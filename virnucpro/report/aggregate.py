"""The aggregate step: a sample's shard predictions in, its result files out (docs/output.md).

Writes into ``outdir``, atomically (all files appear together, or none on error):
  prediction_results.txt               the original's per-frame file (classify/outputs.py writes it)
  prediction_results_highestscore.csv  the original's per-chunk file
  <sample>.records.tsv                 one row per input record (report/rollup.py), input order
  <sample>.viral.fa                    the input records called viral, streamed from the input, input order
  <sample>.summary.json                counts, length statistics, score histograms, warnings (read by `report`)
Only scores are read, never the GPU or the models: re-running with another threshold is cheap and gives the same
scores (docs/usage.md, "Re-threshold without recomputing").

Memory: the sample's frame ids and scores (about 300 bytes a frame with Python's overhead), plus 9 bytes a record.
"""

from __future__ import annotations

import json
import logging
import statistics
from array import array
from pathlib import Path

from virnucpro import __version__
from virnucpro.errors import InputError, user_path
from virnucpro.io.atomic import atomic_output_dir
from virnucpro.io.seqio import FASTA_LINE_WIDTH, read_sequences, wrap_fasta
from virnucpro.report import rollup

log = logging.getLogger(__name__)

CHUNK_LENGTHS = (300, 500)  # the published models' chunk lengths
SHORT_READ_FRACTION = 0.75  # warn when the median record is shorter than this fraction of the chunk length
SUMMARY_FORMAT = "virnucpro.sample_summary/1"
CALL_RULE = ("virus_score >= threshold, where virus_score is the record's best chunk score "
             "0.5 + (max P(virus) - max P(others))/2 over the chunk's frames")


def output_names(sample: str) -> dict[str, str]:
    return {
        "prediction_results": "prediction_results.txt",
        "highestscore": "prediction_results_highestscore.csv",
        "records": f"{sample}.records.tsv",
        "viral_fasta": f"{sample}.viral.fa",
        "summary": f"{sample}.summary.json",
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
                     shard_paths: list[Path] | None = None) -> dict:
    """Write the sample's result files into ``outdir``; return the summary (also written as JSON)."""
    from virnucpro.classify.outputs import write_highestscore, write_prediction_results

    if not 0.0 <= threshold <= 1.0:
        raise InputError("--threshold", f"must be between 0 and 1, got {threshold}")
    records_path, input_path = Path(records_path), Path(input_path)
    if not input_path.is_file():
        raise InputError(input_path, "input sequence file not found")
    prediction_paths = rollup.order_by_shard([Path(p) for p in prediction_paths])
    preds = rollup.read_all_predictions(prediction_paths)
    rollup.check_unique(preds)
    if shard_paths:
        rollup.check_against_shards(preds, rollup.order_by_shard([Path(p) for p in shard_paths]))
    names = output_names(sample)

    status_counts: dict[str, int] = {}
    call_counts = dict.fromkeys(rollup.CALLS, 0)
    lengths = array("q")
    viral = bytearray()
    scores: list[float] = []
    max_p: list[float] = []
    chunks = chunks_scored = chunks_viral = 0
    candidates = {chunk_length} if chunk_length else set(CHUNK_LENGTHS)

    with atomic_output_dir(outdir) as tmp:
        write_prediction_results(tmp / names["prediction_results"], preds.ids, preds.probs)
        write_highestscore(tmp / names["highestscore"], preds.ids, preds.probs)
        with open(tmp / names["records"], "w", encoding="utf-8", newline="\n") as table:
            table.write("\t".join(rollup.RECORD_COLUMNS) + "\n")
            records = rollup.read_preprocess_records(records_path)
            for result in rollup.roll_up(records, preds, threshold, records_path):
                rec = result.record
                table.write(result.row())
                status_counts[rec.status] = status_counts.get(rec.status, 0) + 1
                call_counts[result.call] += 1
                lengths.append(rec.length)
                viral.append(result.call == "viral")
                chunks += rec.n_chunks
                chunks_scored += result.n_chunks_scored
                chunks_viral += result.n_chunks_viral
                if result.virus_score is not None:
                    scores.append(result.virus_score)
                    max_p.append(result.max_p_virus)
                if rec.length and candidates:
                    fitting = rollup.infer_chunk_length(rec.length, rec.n_chunks, candidates)
                    if chunk_length and not fitting:
                        raise InputError(records_path, f"line {rec.line}: record {rec.record_id!r} of {rec.length} "
                                         f"bp has {rec.n_chunks} chunk(s), which {chunk_length} bp chunks cannot "
                                         "give: wrong --chunk-length or records table")
                    candidates = fitting
        n_viral_written = _write_viral_fasta(input_path, records_path, viral, tmp / names["viral_fasta"])
        if chunk_length is None and len(candidates) == 1:
            chunk_length = next(iter(candidates))
        summary = _summary(sample, threshold, chunk_length, status_counts, call_counts, lengths, chunks,
                           chunks_scored, chunks_viral, len(preds.ids), scores, max_p, names,
                           {"predictions": [str(p) for p in prediction_paths], "records": str(records_path),
                            "input": user_path(input_path)})
        assert n_viral_written == call_counts["viral"]
        with open(tmp / names["summary"], "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
            fh.write("\n")
        for f in tmp.iterdir():
            f.chmod(0o644)  # results are for everyone to read, like any file written with the default umask
    for warning in summary["warnings"]:
        log.warning("sample %s: %s", sample, warning)
    log.info("sample %s: %d records, %d viral (%.2f%%) at threshold %g, %d frames scored", sample,
             summary["records"], summary["records_viral"], summary["percent_viral"], threshold, summary["frames"])
    return summary


def _write_viral_fasta(input_path: Path, records_path: Path, viral: bytearray, out: Path) -> int:
    """Stream the input once more and copy the records called viral. The input must be the file that was
    preprocessed: its records are checked, in lockstep, against the records table (id and length)."""
    records = rollup.read_preprocess_records(records_path)
    written = 0
    with open(out, "w", encoding="ascii", newline="\n") as fh:
        reader = read_sequences(input_path, unique_ids=False, allow_empty=True)
        for index, (record_id, seq) in enumerate(reader):
            rec = next(records, None)
            if rec is None or rec.record_id != record_id or rec.length != len(seq):
                expected = "nothing more" if rec is None else f"{rec.record_id!r} ({rec.length} bp)"
                raise InputError(input_path, f"record {index + 1} is {record_id!r} ({len(seq)} bp) but "
                                 f"{records_path.name} has {expected} there: --input is not the file that was "
                                 "preprocessed")
            if viral[index]:
                fh.write(wrap_fasta(record_id, seq, FASTA_LINE_WIDTH))
                written += 1
        rest = next(records, None)
        if rest is not None:
            raise InputError(input_path, f"ends before record {rest.record_id!r} of {records_path.name} "
                             f"(line {rest.line}): --input is not the file that was preprocessed")
    return written


def _summary(sample, threshold, chunk_length, status_counts, call_counts, lengths, chunks, chunks_scored,
             chunks_viral, frames, scores, max_p, names, inputs) -> dict:
    n = len(lengths)
    scored = n - call_counts["no_prediction"]
    length_stats = _length_stats(lengths)
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
    edges = [round(k / rollup.HISTOGRAM_BINS, 4) for k in range(rollup.HISTOGRAM_BINS + 1)]
    return {
        "format": SUMMARY_FORMAT,
        "sample": sample,
        "virnucpro_version": __version__,
        "threshold": threshold,
        "call_rule": CALL_RULE,
        "chunk_length": chunk_length,
        "records": n,
        "record_status": dict(sorted(status_counts.items())),
        "records_viral": call_counts["viral"],
        "records_not_viral": call_counts["not_viral"],
        "records_no_prediction": call_counts["no_prediction"],
        "percent_viral": round(100.0 * call_counts["viral"] / n, 4) if n else 0.0,
        "percent_viral_of_scored": round(100.0 * call_counts["viral"] / scored, 4) if scored else 0.0,
        "chunks": chunks,
        "chunks_scored": chunks_scored,
        "chunks_viral": chunks_viral,
        "frames": frames,
        "record_length": length_stats,
        "histograms": {
            "edges": edges,
            "virus_score": rollup.histogram(scores),
            "max_p_virus": rollup.histogram(max_p),
        },
        "warnings": warnings,
        "inputs": inputs,
        "outputs": names,
    }
