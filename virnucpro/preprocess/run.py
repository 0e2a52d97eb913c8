"""The preprocess step: one sequence file in, chunks and their stop-free frames out, every record accounted for.

Outputs, written atomically into ``outdir`` (a failure leaves none of them behind):

- ``chunked.fa``: the chunks, ids ``<record id>_chunk_<j>``, sequence in the input's case, 60 letters per line
  (what the original's Biopython writer produced; the original only upper-cases chunks when identifying frames).
- ``identified_nucleotide.fa`` and ``identified_protein.faa``: the kept frames, one line per sequence, in input
  order then frame order F1 F2 F3 R1 R2 R3, ids ``<chunk id>F<1..3>`` / ``R<1..3>``; the same records, in the same
  order, in both files.
- ``records.tsv``: see ``RECORDS_HEADER``.
- ``frame_stats.tsv``: the kept frames' count and tokens (io/frames.py), which size the shards without a first
  pass over the frame files (`virnucpro shard --frame-stats`).

Memory stays flat in the input size: records are read a block at a time and processed in batches of about
``BATCH_BASES`` bases (a longer record is a batch of its own, identified in passes of about ``PASS_BASES``
bases). The only state that grows with the input is the id set for the duplicate check and one integer per
record for the median length.

Speed: about 10x the original per core (docs/BENCHMARKS.md, "Preprocessing"); the frame work is vectorized in
``sixframe.py``, the FASTA text is built by NumPy per pass and joined at C level, and the checks and counts run
per block of records. With ``workers`` > 1, worker processes chunk and identify the batches while this process
reads the input and writes their texts in input order.
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import itertools
import logging
import os
import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from virnucpro import options
from virnucpro.errors import InputError
from virnucpro.embed.shard import length_tokens
from virnucpro.io.atomic import atomic_output_dir
from virnucpro.io.frames import FrameStats, write_frame_stats
from virnucpro.io.seqio import FASTA_LINE_WIDTH, read_raw_batches
from virnucpro.preprocess.chunking import chunk_starts
from virnucpro.preprocess.sixframe import FRAME_SUFFIXES, identify_frames

log = logging.getLogger(__name__)

BATCH_BASES = 1 << 21  # bases per batch of records
BATCH_RECORDS = 1 << 16  # records per batch at most (bounds batches of empty or tiny records)
MAX_EMPTY_WARNINGS = 10
POOL_MAX_BASES = 4 * BATCH_BASES  # a batch of more (a long record) is done in the reading process, in passes
PASS_BASES = 1 << 19  # chunk bases identified per NumPy pass: bounds the pass's arrays (~10 bytes per base)

# Letters that are no nucleotide code (IUPAC: A C G T U R Y S W K M B D H V N) but are amino acids, and the stop
# '*': a record holding one is protein, and scoring its "frames" would give a meaningless call.
_PROTEIN_ONLY_LETTERS = b"EFIJLOPQZefijlopqz*"
_PROTEIN_ONLY = re.compile(b"[" + re.escape(_PROTEIN_ONLY_LETTERS) + b"]")

OUTPUT_FILES = ("chunked.fa", "identified_nucleotide.fa", "identified_protein.faa", "records.tsv",
                "frame_stats.tsv")

# records.tsv: one row per input record, in input order, tab separated, with this header.
#   record_id  the header up to its first whitespace
#   length     bases in the record
#   n_chunks   chunks written to chunked.fa (0 for an empty record)
#   n_frames   frames written to identified_*.fa for this record (summed over its chunks)
#   status     kept               at least one frame written
#              empty              no sequence (header only); skipped, as the original would crash on it
#              too_short          shorter than --min-length: not chunked, so it never reaches EMBED
#              no_stop_free_frame every frame of every chunk has a stop codon (or no complete ACGT codon), so the
#                                 record gets no prediction; the original drops such records silently
RECORDS_COLUMNS = ("record_id", "length", "n_chunks", "n_frames", "status")  # read by report/rollup.py
RECORDS_HEADER = "\t".join(RECORDS_COLUMNS) + "\n"


@dataclass
class PreprocessStats:
    """Counts of one preprocess run. ``records`` counts every input record (``empty_records`` and
    ``records_without_frames`` among them); ``median_length`` is over the non-empty records; ``outputs`` maps each
    output file name to its final path."""

    sample: str | None = None
    chunk_length: int = 0
    records: int = 0
    empty_records: int = 0
    too_short_records: int = 0
    min_length: int = 0
    records_without_frames: int = 0
    chunks: int = 0
    frames: int = 0
    frame_tokens: int = 0  # the kept frames' tokens, every encoder together (embed/shard.py), for shard sizing
    largest_frame_tokens: int = 0
    median_length: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)


class _Writers:
    """The four output files, written as bytes (records.tsv as text), one batch at a time."""

    def __init__(self, chunked, nucleotide, protein, records):
        self.chunked, self.nucleotide, self.protein, self.records = chunked, nucleotide, protein, records

    @classmethod
    def open_in(cls, tmpdir: Path) -> "_Writers":
        out = cls(*(open(tmpdir / name, "wb") for name in OUTPUT_FILES[:3]),
                  open(tmpdir / "records.tsv", "w", encoding="utf-8", newline="\n"))
        out.records.write(RECORDS_HEADER)
        return out

    @classmethod
    def in_memory(cls) -> "_Writers":
        return cls(io.BytesIO(), io.BytesIO(), io.BytesIO(), io.StringIO())

    @property
    def files(self):
        return self.chunked, self.nucleotide, self.protein, self.records

    def close(self):
        for fh in self.files:
            fh.close()


def _wrapped_chunks(seq: bytes, starts: np.ndarray, lengths: np.ndarray, width: int = FASTA_LINE_WIDTH):
    """The chunks seq[start : start + length] as FASTA sequence lines of ``width`` letters, each chunk's lines
    ending in a newline; returns (all chunks' text, text length of each chunk). One NumPy pass for all chunks:
    lay each chunk out as rows of ``width`` letters plus a newline column, then keep the letters inside the chunk
    and the newlines of non-empty lines."""
    n_lines = -(-int(lengths.max()) // width)
    padded = np.frombuffer(seq + bytes(n_lines * width), dtype=np.uint8)
    grid = np.empty((len(starts), n_lines, width + 1), dtype=np.uint8)
    grid[:, :, :width] = sliding_window_view(padded, n_lines * width)[starts].reshape(len(starts), n_lines, width)
    grid[:, :, width] = ord("\n")
    position = np.arange(n_lines)[:, None] * width + np.arange(width + 1)  # letter index; the newline column
    position[:, width] = np.arange(n_lines) * width  # keeps its line when the line has any letter
    keep = position[None] < lengths[:, None, None]
    return grid[keep].tobytes(), lengths + -(-lengths // width)


class _Batch:
    """Whole records (empty and too short ones included, as empty sequences, to keep records.tsv in input order)
    waiting to be processed together; ``lengths`` holds the true lengths of the records."""

    def __init__(self):
        self.ids: list[str] = []
        self.seqs: list[bytes] = []
        self.lengths: list[int] = []
        self.bases = 0

    def extend(self, ids: list[str], seqs: list[bytes], lengths: list[int], min_length: int) -> None:
        """Add records; those shorter than ``min_length`` go in as empty sequences (listed, never chunked)."""
        self.ids += ids
        if min_length and min(lengths, default=min_length) < min_length:
            seqs = [seq if len(seq) >= min_length else b"" for seq in seqs]
        self.seqs += seqs
        self.lengths += lengths
        self.bases += sum(map(len, seqs))


class _Layout(NamedTuple):
    """Where a batch's chunks lie in the batch's joined sequence."""

    record_length: np.ndarray  # per record
    chunks_of_record: np.ndarray  # per record; 0 for an empty record
    chunk_record: np.ndarray  # per chunk: index of its record
    starts: np.ndarray  # per chunk
    lengths: np.ndarray  # per chunk
    chunk_headers: list[bytes]  # per chunk: '>' and the chunk id


def _layout(batch: _Batch, chunk_length: int) -> _Layout:
    n_records = len(batch.ids)
    record_length = np.fromiter(map(len, batch.seqs), dtype=np.int64, count=n_records)
    record_start = np.cumsum(record_length) - record_length
    chunks_of_record = -(-record_length // chunk_length)  # ceil
    first_chunk = np.cumsum(chunks_of_record) - chunks_of_record
    n_chunks = int(chunks_of_record.sum())
    chunk_record = np.repeat(np.arange(n_records), chunks_of_record)
    offset_in_record = np.zeros(n_chunks, dtype=np.int64)
    for r in np.flatnonzero(chunks_of_record > 1).tolist():  # only records longer than a chunk need the rule
        offset_in_record[first_chunk[r] : first_chunk[r] + chunks_of_record[r]] = chunk_starts(
            int(record_length[r]), chunk_length
        )
    chunk_number = np.arange(n_chunks) - first_chunk[chunk_record] + 1
    record_headers = (">" + "\n>".join(batch.ids)).encode("ascii").split(b"\n")  # ids hold no newline
    return _Layout(
        record_length,
        chunks_of_record,
        chunk_record,
        record_start[chunk_record] + offset_in_record,
        np.minimum(chunk_length, record_length[chunk_record] - offset_in_record),
        list(map(bytes.__add__, map(record_headers.__getitem__, chunk_record.tolist()),
                 map(_chunk_suffixes(int(chunk_number.max(initial=0))).__getitem__, chunk_number.tolist()))),
    )


def _fasta_text(headers: Iterable[bytes], text: bytes, lengths: list[int], tail: bytes) -> bytes:
    """Records of ``headers[i]``, then the i-th piece of ``text`` (pieces of ``lengths`` bytes, in order), then
    ``tail``, joined (C-level iteration: this runs once per chunk and per frame)."""
    ends = list(itertools.accumulate(lengths))
    pieces = map(text.__getitem__, map(slice, [0] + ends[:-1], ends))
    return b"".join(itertools.chain.from_iterable(zip(headers, pieces, itertools.repeat(tail))))


def _write_pass(seq: bytes, starts: np.ndarray, lengths: np.ndarray, chunk_headers: list[bytes], out: _Writers):
    """Write chunked.fa and the kept frames of some chunks; returns the kept-frame mask (chunks x 6) and the kept
    frames' tokens."""
    text, text_len = _wrapped_chunks(seq, starts, lengths)
    out.chunked.write(_fasta_text(map(bytes.__add__, chunk_headers, itertools.repeat(b"\n")), text,
                                  text_len.tolist(), b""))
    del text

    frames = identify_frames(seq, starts, lengths)
    chunk_of, frame_of = np.nonzero(frames.kept)
    headers = list(map(bytes.__add__, map(chunk_headers.__getitem__, chunk_of.tolist()),
                       map(_SUFFIX_LINES.__getitem__, frame_of.tolist())))
    out.nucleotide.write(_fasta_text(headers, frames.nucleotides, frames.nucleotide_lengths.tolist(), b"\n"))
    out.protein.write(_fasta_text(headers, frames.proteins, frames.protein_lengths.tolist(), b"\n"))
    return frames.kept, length_tokens(frames.nucleotide_lengths, frames.protein_lengths)


def _flush(batch: _Batch, chunk_length: int, out: _Writers, stats: PreprocessStats) -> None:
    """Chunk, identify and write one batch, then its records.tsv rows; add its counts to ``stats``."""
    if not batch.ids:
        return
    joined = b"".join(batch.seqs)
    lay = _layout(batch, chunk_length)
    n_chunks = len(lay.starts)
    frames_per_record = np.zeros(len(batch.ids), dtype=np.int64)
    per_pass = max(1, PASS_BASES // chunk_length)
    for first in range(0, n_chunks, per_pass):  # passes bound memory for records of any length
        part = slice(first, min(first + per_pass, n_chunks))
        kept, tokens = _write_pass(joined, lay.starts[part], lay.lengths[part], lay.chunk_headers[part], out)
        frames_per_record += np.bincount(lay.chunk_record[part], weights=kept.sum(axis=1),
                                         minlength=len(batch.ids)).astype(np.int64)
        if len(tokens):
            stats.frame_tokens += int(tokens.sum())
            stats.largest_frame_tokens = max(stats.largest_frame_tokens, int(tokens.max()))

    true_length = np.asarray(batch.lengths, dtype=np.int64)
    status = np.where(frames_per_record > 0, 0, np.where(true_length == 0, 1, np.where(lay.record_length == 0, 2, 3)))
    out.records.write("".join(map("{}\t{}\t{}\t{}\t{}\n".format, batch.ids, batch.lengths,
                                  lay.chunks_of_record.tolist(), frames_per_record.tolist(),
                                  map(_STATUSES.__getitem__, status.tolist()))))
    stats.records_without_frames += int(np.count_nonzero((frames_per_record == 0) & (lay.record_length > 0)))
    stats.too_short_records += int(np.count_nonzero((lay.record_length == 0) & (true_length > 0)))
    stats.frames += int(frames_per_record.sum())
    stats.chunks += n_chunks


# records.tsv status by code: 0 some frame kept; 1 no sequence; 2 added with an empty sequence as shorter than
# --min-length, so nothing of it is chunked or embedded; 3 chunked, but no frame is stop-free
_STATUSES = ("kept", "empty", "too_short", "no_stop_free_frame")
_FLUSH_COUNTS = ("records_without_frames", "too_short_records", "frames", "chunks", "frame_tokens")  # `_flush` adds


def _flush_apart(batch: _Batch, chunk_length: int) -> tuple[list, PreprocessStats]:
    """``_flush`` in a worker process: the batch's text for each output file, and its counts."""
    out, stats = _Writers.in_memory(), PreprocessStats()
    _flush(batch, chunk_length, out, stats)
    return [fh.getvalue() for fh in out.files], stats


class _Flusher:
    """Chunks, identifies and writes batches in input order: in this process, or with ``workers`` > 1 in that many
    worker processes, up to two batches each ahead, their texts written here in input order as they come back.
    A batch of a long record is done here (streamed in passes) once the batches before it are written."""

    def __init__(self, chunk_length: int, out: _Writers, stats: PreprocessStats, workers: int):
        self.chunk_length, self.out, self.stats = chunk_length, out, stats
        self.pool = concurrent.futures.ProcessPoolExecutor(workers) if workers > 1 else None
        self.ahead = 2 * workers
        self.pending: collections.deque = collections.deque()

    def submit(self, batch: _Batch) -> None:
        if not batch.ids:
            return
        if self.pool is None or batch.bases > POOL_MAX_BASES:
            self._write_done(0)
            _flush(batch, self.chunk_length, self.out, self.stats)
        else:
            self.pending.append(self.pool.submit(_flush_apart, batch, self.chunk_length))
            self._write_done(self.ahead)

    def _write_done(self, keep: int) -> None:
        """Write the oldest batches' texts until ``keep`` are in flight."""
        while len(self.pending) > keep:
            texts, counts = self.pending.popleft().result()
            for fh, text in zip(self.out.files, texts):
                fh.write(text)
            for name in _FLUSH_COUNTS:
                setattr(self.stats, name, getattr(self.stats, name) + getattr(counts, name))
            self.stats.largest_frame_tokens = max(self.stats.largest_frame_tokens, counts.largest_frame_tokens)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        try:
            if exc_type is None:
                self._write_done(0)
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)


_CHUNK_SUFFIXES: list[bytes] = []


def _chunk_suffixes(most: int) -> list[bytes]:
    """Chunk id suffixes ``_chunk_<j>`` by j, for j up to ``most`` at least."""
    while len(_CHUNK_SUFFIXES) <= most:
        _CHUNK_SUFFIXES.append(b"_chunk_%d" % len(_CHUNK_SUFFIXES))
    return _CHUNK_SUFFIXES


_SUFFIX_LINES = [s.encode("ascii") + b"\n" for s in FRAME_SUFFIXES]


def _protein_record(seqs: list[bytes]) -> int | None:
    """Index of the first sequence holding a letter that only a protein has, or None (one C-level scan of all)."""
    joined = b"".join(seqs)
    if len(joined.translate(None, _PROTEIN_ONLY_LETTERS)) == len(joined):
        return None
    return next(i for i, seq in enumerate(seqs) if _PROTEIN_ONLY.search(seq))


def _protein_problem(input_path, record_number: int, record_id: str, seq: bytes) -> InputError:
    """Refuse a record holding a letter that only a protein has: it would be scored as if it were DNA."""
    found = _PROTEIN_ONLY.search(seq)
    letters = sorted({c.decode() for c in _PROTEIN_ONLY.findall(seq[:100_000].upper())})
    return InputError(input_path, f"record {record_number} ({record_id!r}) looks like a protein sequence, not "
                      f"DNA/RNA: {found.group().decode()!r} at position {found.start() + 1} (letters that are "
                      f"no nucleotide code: {' '.join(letters)}); nucleotides are A C G T U and the IUPAC codes "
                      "R Y S W K M B D H V N")


def _count_empty(ids: list[str], lengths: list[int], input_path, name: str, stats: PreprocessStats) -> None:
    """Count (and warn about the first few of) the records without sequence among the next ``len(ids)`` records."""
    for i in (i for i, n in enumerate(lengths) if n == 0):
        stats.empty_records += 1
        if stats.empty_records <= MAX_EMPTY_WARNINGS:
            log.warning("%srecord %d (%r) in %s has no sequence; skipped%s", name, stats.records + i + 1, ids[i],
                        input_path, " (further empty records are only counted)"
                        if stats.empty_records == MAX_EMPTY_WARNINGS else "")


def preprocess_file(
    input_path: str | os.PathLike, chunk_length: int, outdir: str | os.PathLike, sample: str | None = None,
    min_length: int = 0,
    allow_empty: bool = False, workers: int = 1,
) -> PreprocessStats:
    """Chunk every record of ``input_path`` (FASTA/FASTQ, plain or compressed) to ``chunk_length`` and keep the
    stop-free frames, writing ``OUTPUT_FILES`` into ``outdir`` atomically. Records shorter than ``min_length``
    bases are listed in records.tsv as too_short and not chunked. Returns the counts (also logged).
    A record with a protein-only letter stops the run (InputError). With ``allow_empty`` a file without records
    (0 bytes) gives empty outputs and a warning instead of an error. With ``workers`` > 1 that many processes
    chunk and identify, this one reads and writes; the outputs are the same."""
    if chunk_length <= 0:
        raise InputError(input_path, f"chunk length must be a positive number of bases, got {chunk_length}")
    if min_length < 0:
        raise InputError(input_path, f"minimum length must be 0 or a positive number of bases, got {min_length}")
    name = f"sample {sample}: " if sample else ""
    stats = PreprocessStats(sample=sample, chunk_length=chunk_length, min_length=min_length)
    lengths = array("q")
    with atomic_output_dir(outdir) as tmpdir:
        out = _Writers.open_in(tmpdir)
        try:
            with _Flusher(chunk_length, out, stats, workers) as flusher:
                batch = _Batch()
                for ids, seqs in read_raw_batches(input_path, allow_empty=allow_empty):
                    lengths_here = list(map(len, seqs))
                    bad = _protein_record(seqs)
                    if bad is not None:  # the empty records before it are reported first, as they come first
                        _count_empty(ids[:bad], lengths_here[:bad], input_path, name, stats)
                        raise _protein_problem(input_path, stats.records + bad + 1, ids[bad], seqs[bad])
                    if 0 in lengths_here:
                        _count_empty(ids, lengths_here, input_path, name, stats)
                    stats.records += len(ids)
                    lengths.extend(filter(None, lengths_here))
                    batch.extend(ids, seqs, lengths_here, min_length)
                    if batch.bases >= BATCH_BASES or len(batch.ids) >= BATCH_RECORDS:
                        flusher.submit(batch)
                        batch = _Batch()
                flusher.submit(batch)
        finally:
            out.close()
        write_frame_stats(tmpdir / "frame_stats.tsv",
                          FrameStats(stats.frames, stats.frame_tokens, stats.largest_frame_tokens))
    if stats.records == 0:
        log.warning("%s%s holds no records (empty file): the sample is reported with 0 records", name, input_path)
    stats.median_length = float(np.median(np.frombuffer(lengths, dtype=np.int64))) if len(lengths) else 0.0
    stats.outputs = {f: str(Path(outdir) / f) for f in OUTPUT_FILES}
    log.info(
        "%s%d records read (%d empty, %d shorter than %d bp, %d without a stop-free frame), %d chunks of <= %d bp, "
        "%d frames kept", name, stats.records, stats.empty_records, stats.too_short_records, min_length,
        stats.records_without_frames, stats.chunks, chunk_length, stats.frames,
    )
    if lengths and stats.median_length < options.SHORT_READ_FRACTION * chunk_length:
        log.warning(
            "%smedian record length %.0f bp is much shorter than the %d bp chunk length: the %d bp model was "
            "trained on %d bp chunks and its calls on reads this short are unreliable (about 53%% accuracy was "
            "reported for 150 bp reads on the 300 bp model)",
            name, stats.median_length, chunk_length, chunk_length, chunk_length,
        )
    return stats
