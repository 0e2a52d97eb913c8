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

import itertools
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from virnucpro.errors import InputError
from virnucpro.io.blocks import cell_blocks, texts, texts_like, tsv_text, write_blocks
from virnucpro.preprocess.run import RECORDS_COLUMNS as PREPROCESS_COLUMNS  # preprocess's records.tsv

FRAME_SUFFIX = re.compile(r"_chunk_([1-9][0-9]*)[FR][123]\Z")
SHARD_INDEX = re.compile(r"shard_([0-9]+)")
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


def read_predictions_file(path: Path) -> tuple[list[str], np.ndarray]:
    """One predictions file's frame ids and scores, checked to be probabilities."""
    from virnucpro.classify.outputs import read_predictions

    if not Path(path).is_file():
        raise InputError(path, "predictions file not found")
    ids, probs = read_predictions(path)
    bad = np.flatnonzero(~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (probs > 1).any(axis=1))
    if len(bad):
        raise InputError(path, f"line {bad[0] + 2}: scores must be probabilities in [0, 1]")
    return ids, probs


def joined_predictions(paths: list[Path], read: list[tuple[list[str], np.ndarray]]) -> Predictions:
    """One sample's predictions from its files in order (``read``: read_predictions_file of each)."""
    ids: list[str] = []
    files: list[tuple[Path, int]] = []
    for path, (file_ids, _) in zip(paths, read):
        files.append((Path(path), len(ids)))
        ids.extend(file_ids)
    probs = np.concatenate([probs for _, probs in read]) if read else np.zeros((0, 2), np.float32)
    return Predictions(ids, probs, files)


def _named(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:SHOW_IDS])
    return shown + (f" and {len(ids) - SHOW_IDS} more" if len(ids) > SHOW_IDS else "")


def check_unique(preds: Predictions) -> None:
    if len(set(preds.ids)) == len(preds.ids):
        return
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


def check_against_shards(preds: Predictions, expected: list[str]) -> None:
    """The scored frames must be exactly the shards' frames (``expected``: their ids, in shard order), in the same
    order."""
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


@dataclass
class RecordsTable:
    """preprocess's records.tsv as columns, in input order: record k is on line k + 2."""

    ids: list[str]
    length: np.ndarray  # int64, like the three counts
    n_chunks: np.ndarray
    n_frames: np.ndarray
    status: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def read_records_table(path: str | os.PathLike) -> RecordsTable:
    """Read preprocess's records.tsv into columns, a block of lines at a time; a bad line stops with its number
    (the first one, as a line-by-line reader would find it)."""
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
        ids: list[str] = []
        status: list[str] = []
        parts = []
        for line, cells, n, fields in cell_blocks(fh, width, 2):
            counts = [cells[c::width] for c in (length_col, chunks_col, frames_col)]
            try:
                parts.append([np.fromiter(map(int, column), np.int64, n) for column in counts])
            except (ValueError, OverflowError):
                bad = next(k for k in range(n) if not all(_is_count(column[k]) for column in counts))
                raise InputError(path, f"line {line + bad}: length, n_chunks and n_frames must be integers") from None
            if fields is not None:
                raise InputError(path, f"line {line + n}: {fields} fields, the header has {width}")
            ids += cells[id_col::width]
            status += map(sys.intern, cells[status_col::width])  # a few distinct values, each held once
    length, n_chunks, n_frames = (np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, np.int64)
                                  for k in range(3))
    negative = np.flatnonzero((length < 0) | (n_chunks < 0) | (n_frames < 0))
    if len(negative):
        raise InputError(path, f"line {negative[0] + 2}: length, n_chunks and n_frames must not be negative")
    return RecordsTable(ids, length, n_chunks, n_frames, status)


def _is_count(text: str) -> bool:
    try:
        np.int64(int(text))
    except (ValueError, OverflowError):
        return False
    return True


def frame_chunks(table: RecordsTable, ids: list[str]) -> np.ndarray:
    """Each frame's chunk number in the record the lockstep walk gives it (record by record, each takes the next
    n_frames frames), for the frames the records account for; 0 where the frame is not the record's own, i.e. its
    id is not ``<record id>_chunk_<j>F|R<1..3>`` with j <= n_chunks. Most ids share a few suffixes (1F1 ... 1R3
    for reads), so each distinct suffix is parsed once."""
    m = min(len(ids), int(table.n_frames.sum()))
    prefixes = list(itertools.islice(itertools.chain.from_iterable(
        map(itertools.repeat, map(str.__add__, table.ids, itertools.repeat("_chunk_")), table.n_frames.tolist())), m))
    own = np.fromiter(map(str.startswith, ids, prefixes), bool, m)
    suffixes = list(map(str.removeprefix, ids, prefixes))
    del prefixes
    number = {s: _chunk_number(s) for s in set(suffixes)}
    chunk = np.fromiter(map(number.__getitem__, suffixes), np.int64, m)
    record = np.repeat(np.arange(len(table)), table.n_frames)[:m]
    chunk[~own | (chunk > table.n_chunks[record])] = 0
    return chunk


def _chunk_number(suffix: str) -> int:
    m = FRAME_SUFFIX.fullmatch("_chunk_" + suffix)
    return int(m.group(1)) if m else 0


@dataclass
class RollUp:
    """Per chunk (every record's chunks in order; record r's are chunk_first[r]:chunk_first[r + 1]) and per record:
    the best frame scores, chunk scores and calls. ``*_frame`` is a frame holding that maximum, -1 if none."""

    chunk_first: np.ndarray
    chunk_frames: np.ndarray
    chunk_p_virus: np.ndarray  # float64 holding float32 values; 0 when the chunk has no frame
    chunk_p_others: np.ndarray
    chunk_virus_frame: np.ndarray
    chunk_others_frame: np.ndarray
    chunk_score: np.ndarray  # meaningful where chunk_frames > 0
    n_chunks_scored: np.ndarray
    n_chunks_viral: np.ndarray
    max_p_virus: np.ndarray  # per record; NaN when nothing was scored, like the two below
    max_virus_frame: np.ndarray
    mean_chunk_score: np.ndarray
    virus_score: np.ndarray
    best_chunk: np.ndarray  # a chunk whose score is virus_score, -1 if none
    call: np.ndarray  # index into CALLS


def roll_up(table: RecordsTable, probs: np.ndarray, chunks_of_frames: np.ndarray, threshold: float) -> RollUp:
    """Scores of frames that frame_chunks accepted (every one), grouped by chunk and record with array operations;
    the maxima start at 0 like the original's comparisons."""
    n_records = len(table)
    chunk_first = np.zeros(n_records + 1, np.int64)
    np.cumsum(table.n_chunks, out=chunk_first[1:])
    m = len(chunks_of_frames)
    group = chunk_first[:-1][np.repeat(np.arange(n_records), table.n_frames)[:m]] + chunks_of_frames - 1
    n_chunks = int(chunk_first[-1])
    frames = np.bincount(group, minlength=n_chunks)
    best, where = [], []
    for column in (1, 0):
        p = probs[:m, column].astype(np.float64)
        top = np.zeros(n_chunks)
        np.maximum.at(top, group, p)
        frame = np.full(n_chunks, -1, np.int64)
        hit = p == top[group]
        frame[group[hit]] = np.flatnonzero(hit)  # any frame holding the maximum: they all print the same
        best.append(top)
        where.append(frame)
    p_virus, p_others = best
    score = 0.5 + (p_virus - p_others) / 2
    scored = frames > 0
    record_of_chunk = np.repeat(np.arange(n_records), table.n_chunks)
    n_scored = np.bincount(record_of_chunk, weights=scored, minlength=n_records).astype(np.int64)
    n_viral = np.bincount(record_of_chunk, weights=scored & (p_virus >= p_others), minlength=n_records).astype(np.int64)
    virus_score, max_p = np.full(n_records, np.nan), np.full(n_records, np.nan)
    of_scored = record_of_chunk[scored]
    for out, values in ((virus_score, score), (max_p, p_virus)):
        out[np.unique(of_scored)] = -np.inf
        np.maximum.at(out, of_scored, values[scored])
    max_frame, best_chunk = np.full(n_records, -1, np.int64), np.full(n_records, -1, np.int64)
    hit = scored & (p_virus == max_p[record_of_chunk])
    max_frame[record_of_chunk[hit]] = where[0][hit]
    hit = scored & (score == virus_score[record_of_chunk])
    best_chunk[record_of_chunk[hit]] = np.flatnonzero(hit)
    mean = virus_score.copy()  # a record's only scored chunk is its mean
    for r in np.flatnonzero(n_scored > 1).tolist():
        lo, hi = chunk_first[r], chunk_first[r + 1]
        scores = score[lo:hi][scored[lo:hi]].tolist()
        mean[r] = math.fsum(scores) / len(scores)
    return RollUp(chunk_first, frames, p_virus, p_others, where[0], where[1], score, n_scored, n_viral, max_p,
                  max_frame, mean, virus_score, best_chunk, call_codes(virus_score, threshold))


def call_codes(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The call of each score as an index into CALLS: viral at or above the threshold, no_prediction for NaN."""
    return np.where(np.isnan(scores), CALLS.index("no_prediction"),
                    np.where(scores >= threshold, CALLS.index("viral"), CALLS.index("not_viral")))


def number_texts(values: np.ndarray) -> list[str]:
    """Scores as the shortest text that reads back to the same float64 (so filtering a table on a score gives the
    same answer as its call column), NA for NaN (none). Each distinct value is written once (a fraction of chunks
    takes a few values); a -0.0 beside 0.0 (never made here: scores add 0.5) keeps its sign."""
    zeros = values[values == 0]
    if np.signbit(zeros).any() and not np.signbit(zeros).all():
        distinct, index = values, np.arange(len(values))
    else:
        distinct, index = np.unique(values, return_inverse=True)
    texts = [MISSING if x != x else repr(x) for x in distinct.tolist()]
    return list(map(texts.__getitem__, index.tolist()))


def chunk_score_texts(roll: RollUp, rows: slice = slice(None)) -> list[str]:
    """Each chunk's score as number_texts writes it (NA without a frame), for a range of chunks; the records table
    reuses them for its virus_score (the best chunk's) and, through texts_like, its mean_chunk_score (NaN exactly
    where virus_score is, so only real numbers are converted there)."""
    return number_texts(np.where(roll.chunk_frames[rows] > 0, roll.chunk_score[rows], np.nan))


def frame_texts(frame: np.ndarray, values: np.ndarray, per_frame: list[str]) -> list[str]:
    """A best frame's score as prediction_results.txt writes it (``per_frame``: every frame's text), NA where there
    is no frame and 0.0 where the best is zero (the maximum starts at 0.0, which a frame's -0.0 does not beat)."""
    out = [per_frame[k] if k >= 0 else MISSING for k in frame.tolist()]
    for k in np.flatnonzero((frame >= 0) & (values == 0)).tolist():
        out[k] = "0.0"
    return out


def write_records(fh, table: RecordsTable, roll: RollUp, n_regions: np.ndarray, viral_bp: np.ndarray,
                  region_call: np.ndarray, virus_texts: list[str], score_texts: list[str]) -> None:
    """The rows of <sample>.records.tsv (RECORD_COLUMNS); ``region_call`` indexes REGION_CALLS, ``virus_texts``
    are each frame's P(virus) as prediction_results.txt writes it, ``score_texts`` each chunk's score as
    chunk_score_texts gives it."""
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = roll.n_chunks_viral / roll.n_chunks_scored

    def block(rows: slice) -> str:
        virus = [score_texts[k] if k >= 0 else MISSING for k in roll.best_chunk[rows].tolist()]
        return tsv_text((
            table.ids[rows], texts(table.length[rows]), table.status[rows], texts(table.n_chunks[rows]),
            texts(table.n_frames[rows]), texts(roll.n_chunks_scored[rows]), texts(roll.n_chunks_viral[rows]),
            number_texts(fraction[rows]), frame_texts(roll.max_virus_frame[rows], roll.max_p_virus[rows], virus_texts),
            texts_like(roll.mean_chunk_score[rows], roll.virus_score[rows], virus), virus,
            [CALLS[c] for c in roll.call[rows].tolist()], texts(n_regions[rows]), texts(viral_bp[rows]),
            [REGION_CALLS[c] for c in region_call[rows].tolist()]))

    fh.write("\t".join(RECORD_COLUMNS) + "\n")
    write_blocks(fh, len(table), block)


def histogram(values: np.ndarray, bins: int = HISTOGRAM_BINS) -> list[int]:
    """Counts in ``bins`` equal bins over [0, 1]; 1.0 falls in the last bin."""
    index = np.minimum((np.asarray(values, np.float64) * bins).astype(np.int64), bins - 1)
    return np.bincount(index, minlength=bins).tolist()
