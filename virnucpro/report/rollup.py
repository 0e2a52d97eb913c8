"""Per-record roll-up: from per-frame scores to one row, and one call, per input record.

Definitions (docs/output.md repeats them for users):
  chunk viral     the original's rule for prediction_results_highestscore.csv: over the chunk's frames,
                  max P(virus) >= max P(others) (a tie counts as viral)
  chunk score     0.5 + (max P(virus) - max P(others)) / 2 over the chunk's frames: the original's comparison as a
                  number in [0, 1]. It is >= 0.5 exactly when the chunk is viral by the original's rule, and it is
                  the frame's P(virus) when the chunk has a single frame. (Broad's contig roll-up of VirNucPro uses
                  the same per-chunk margin, max P(virus) - max P(others).)
  virus_score     the record's best chunk score
  call            viral when virus_score >= threshold, not_viral below it, no_prediction when the record has no
                  frame to score (empty, or every frame has a stop codon)
So at the default threshold 0.5 a record is called viral exactly when at least one of its chunks is True in
prediction_results_highestscore.csv; raising the threshold asks for a larger margin in some chunk.
``max_p_virus`` (the best single frame) and the fraction of chunks called viral are reported beside the call so
that other rules (e.g. a majority of chunks, for contigs) can be applied by filtering the table.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from virnucpro.errors import InputError

FRAME_SUFFIX = re.compile(r"_chunk_([1-9][0-9]*)[FR][123]\Z")
SHARD_INDEX = re.compile(r"shard_([0-9]+)")
PREPROCESS_COLUMNS = ("record_id", "length", "n_chunks", "n_frames", "status")
RECORD_COLUMNS = (
    "record_id", "length", "status", "n_chunks", "n_frames", "n_chunks_scored", "n_chunks_viral",
    "fraction_chunks_viral", "max_p_virus", "mean_chunk_score", "virus_score", "call", "n_regions", "viral_bp",
    "region_call",
)
CALLS = ("viral", "not_viral", "no_prediction")
REGION_CALLS = ("whole", "partial", "not_viral", "no_prediction")
HISTOGRAM_BINS = 20
MISSING = "NA"
SHOW_IDS = 5  # ids named in an error message before "... and N more"


@dataclass(slots=True)  # a million of them are made per pass over a read sample's table
class PreprocessRecord:
    line: int
    record_id: str
    length: int
    n_chunks: int
    n_frames: int
    status: str


@dataclass(slots=True)
class RecordResult:
    record: PreprocessRecord
    n_chunks_scored: int = 0
    n_chunks_viral: int = 0
    max_p_virus: float | None = None
    mean_chunk_score: float | None = None
    virus_score: float | None = None
    call: str = "no_prediction"
    # chunk number -> [max P(others), max P(virus), frames] over the chunk's scored frames
    chunk_best: dict[int, list] = field(default_factory=dict)
    n_regions: int = 0
    viral_bp: int = 0
    region_call: str = ""  # set by the caller from the regions; the call itself until then

    def row(self) -> str:
        r = self.record
        fraction = self.n_chunks_viral / self.n_chunks_scored if self.n_chunks_scored else None
        cells = (
            r.record_id, r.length, r.status, r.n_chunks, r.n_frames, self.n_chunks_scored, self.n_chunks_viral,
            _number(fraction), _probability(self.max_p_virus), _number(self.mean_chunk_score),
            _number(self.virus_score), self.call, self.n_regions, self.viral_bp, self.region_call or self.call,
        )
        return "\t".join(map(str, cells)) + "\n"


def _number(x: float | None) -> str:
    """Scores as the shortest text that reads back to the same float64 (so filtering the table on a score gives
    the same answer as the call column), NA when there is none."""
    return MISSING if x is None else repr(float(x))


def _probability(p: float | None) -> str:
    """A frame's probability as prediction_results.txt writes it (float32 text), NA when there is none."""
    from virnucpro.classify.outputs import format_score

    return MISSING if p is None else format_score(p)


@dataclass
class Predictions:
    """Every frame's scores of one sample, in shard order, and where each row came from (for error messages)."""

    ids: list[str]
    probs: np.ndarray  # float32 [N, 2]: P(others), P(virus)
    files: list[tuple[Path, int]] = field(default_factory=list)  # (file, index of its first row)

    def where(self, index: int) -> str:
        for path, start in reversed(self.files):
            if index >= start:
                return f"{path.name} line {index - start + 2}"
        return f"row {index + 1}"


def order_by_shard(paths: list[Path]) -> list[Path]:
    """Shard order. The caller passes files in shard order; when every name carries a shard index (shard_00012)
    they are also sorted by it, so that a shell glob of unpadded names (shard_10 before shard_9) cannot reorder
    frames. Names without an index keep the order given."""
    indices = [SHARD_INDEX.findall(p.name) for p in paths]
    if paths and all(indices):
        return [p for _, p in sorted(zip((int(i[-1]) for i in indices), paths), key=lambda t: t[0])]
    return list(paths)


def read_all_predictions(paths: list[Path]) -> Predictions:
    from virnucpro.classify.outputs import read_predictions

    ids: list[str] = []
    parts: list[np.ndarray] = []
    files: list[tuple[Path, int]] = []
    for path in paths:
        if not Path(path).is_file():
            raise InputError(path, "predictions file not found")
        file_ids, probs = read_predictions(path)
        bad = np.flatnonzero(~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (probs > 1).any(axis=1))
        if len(bad):
            raise InputError(path, f"line {bad[0] + 2}: scores must be probabilities in [0, 1]")
        files.append((Path(path), len(ids)))
        ids.extend(file_ids)
        parts.append(probs)
    probs = np.concatenate(parts) if parts else np.zeros((0, 2), np.float32)
    return Predictions(ids, probs, files)


def _named(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:SHOW_IDS])
    return shown + (f" and {len(ids) - SHOW_IDS} more" if len(ids) > SHOW_IDS else "")


def check_unique(preds: Predictions) -> None:
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for i in preds.ids:
        if i in seen:
            repeated[i] = None
        seen.add(i)
    if repeated:
        first = preds.files[0][0] if preds.files else "predictions"
        raise InputError(first, f"{len(repeated)} frame id(s) scored more than once across the prediction files: "
                                f"{_named(list(repeated))}")


def check_against_shards(preds: Predictions, shard_paths: list[Path]) -> None:
    """The scored frames must be exactly the shards' frames, in the same order."""
    from virnucpro.io.frames import read_frames_tsv

    expected = [f.id for path in shard_paths for f in read_frames_tsv(path)]
    if expected == preds.ids:
        return
    got = set(preds.ids)
    want = set(expected)
    missing = [i for i in expected if i not in got]
    unexpected = [i for i in preds.ids if i not in want]
    where = preds.files[0][0] if preds.files else "predictions"
    if missing:
        raise InputError(where, f"{len(missing)} frame(s) of the shards have no prediction: {_named(missing)}")
    if unexpected:
        raise InputError(where, f"{len(unexpected)} predicted frame(s) are in no shard: {_named(unexpected)}")
    check_unique(preds)
    at = next(k for k, (a, b) in enumerate(zip(expected, preds.ids)) if a != b)
    raise InputError(where, f"predictions are out of shard order: {preds.where(at)} is {preds.ids[at]!r}, the "
                            f"shards have {expected[at]!r} there (pass the prediction files in shard order)")


def read_preprocess_records(path: str | os.PathLike) -> Iterator[PreprocessRecord]:
    """Rows of preprocess's records.tsv, in input order."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "records table not found")
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
        missing = [c for c in PREPROCESS_COLUMNS if c not in header]
        if missing:
            raise InputError(path, f"not a preprocess records.tsv: no {missing[0]!r} column")
        id_col, length_col, chunks_col, frames_col, status_col = (header.index(c) for c in PREPROCESS_COLUMNS)
        width = len(header)
        for line, text in enumerate(fh, start=2):
            cells = text.rstrip("\r\n").split("\t")
            if len(cells) != width:
                raise InputError(path, f"line {line}: {len(cells)} fields, the header has {width}")
            try:
                yield PreprocessRecord(line, cells[id_col], int(cells[length_col]), int(cells[chunks_col]),
                                       int(cells[frames_col]), cells[status_col])
            except ValueError:
                raise InputError(path, f"line {line}: length, n_chunks and n_frames must be integers") from None


def roll_up(records: Iterator[PreprocessRecord], preds: Predictions, threshold: float,
            records_path: Path) -> Iterator[RecordResult]:
    """Walk the records and the frames in lockstep: each record takes the next n_frames frames, which must be its
    own (id ``<record id>_chunk_<j>F|R<1..3>`` with j <= n_chunks). Any disagreement stops with an error naming
    the record and the frame, so no frame is silently attached to the wrong record or dropped."""
    ids, probs = preds.ids, preds.probs
    n = len(ids)
    i = 0
    for rec in records:
        result = RecordResult(rec)
        if rec.n_frames:
            if i + rec.n_frames > n:
                raise InputError(records_path, f"line {rec.line}: record {rec.record_id!r} has {rec.n_frames} "
                                               f"frame(s), but the predictions end after {n - i} more")
            chunks = result.chunk_best
            prefix = rec.record_id + "_chunk_"
            scores_of_frames = probs[i:i + rec.n_frames].tolist()  # one NumPy call per record, not per frame
            for k, (p_others, p_virus) in zip(range(i, i + rec.n_frames), scores_of_frames):
                frame = ids[k]
                m = FRAME_SUFFIX.search(frame)
                if not frame.startswith(prefix) or m is None or m.start() != len(rec.record_id) \
                        or int(m.group(1)) > rec.n_chunks:
                    raise InputError(
                        records_path, f"line {rec.line}: record {rec.record_id!r} expects {rec.n_frames} frame(s) "
                        f"of its {rec.n_chunks} chunk(s), but {preds.where(k)} is {frame!r}: the predictions do "
                        "not match this records table (missing, extra or reordered frames)")
                best = chunks.setdefault(int(m.group(1)), [0.0, 0.0, 0])
                best[2] += 1
                if p_others > best[0]:
                    best[0] = p_others
                if p_virus > best[1]:
                    best[1] = p_virus
            i += rec.n_frames
            scores = [0.5 + (p_virus - p_others) / 2 for p_others, p_virus, _ in chunks.values()]
            result.n_chunks_scored = len(chunks)
            result.n_chunks_viral = sum(p_virus >= p_others for p_others, p_virus, _ in chunks.values())
            result.max_p_virus = max(p_virus for _, p_virus, _ in chunks.values())
            result.mean_chunk_score = math.fsum(scores) / len(scores)
            result.virus_score = max(scores)
            result.call = "viral" if result.virus_score >= threshold else "not_viral"
        elif rec.status == "kept":
            raise InputError(records_path, f"line {rec.line}: record {rec.record_id!r} is 'kept' with 0 frames")
        yield result
    if i != n:
        raise InputError(preds.files[0][0] if preds.files else records_path,
                         f"{n - i} predicted frame(s) belong to no record of {records_path.name}, from "
                         f"{preds.where(i)} ({ids[i]!r}): predictions and records table are from different inputs")


def histogram(values: list[float], bins: int = HISTOGRAM_BINS) -> list[int]:
    """Counts in ``bins`` equal bins over [0, 1]; 1.0 falls in the last bin."""
    counts = [0] * bins
    for v in values:
        counts[min(int(v * bins), bins - 1)] += 1
    return counts


def infer_chunk_length(length: int, n_chunks: int, candidates: set[int]) -> set[int]:
    """The chunk lengths among ``candidates`` that give ``n_chunks`` chunks for a record of ``length`` bases."""
    return {c for c in candidates if -(-length // c) == n_chunks}
