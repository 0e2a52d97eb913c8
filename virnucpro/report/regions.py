"""Where in a record the viral signal is: chunk coordinates, runs of viral chunks merged into regions, and the
region files (TSV, GFF3, BED) that genome browsers and bedtools read. docs/output.md describes every column.

Coordinates follow the chunking rule (preprocess/chunking.py): chunk j of a record covers [start, start + L) clipped
at the record's end. Files use 1-based inclusive coordinates (TSV, GFF3, FASTA headers) except BED (0-based,
half-open), as those formats require.

A chunk is viral when its chunk score is >= the threshold (at 0.5 exactly the original's Is_Virus). A region is a
run of viral chunks. Between two viral chunks, chunks without a scored frame (no stop-free frame: at 500 bp about
two chunks in three of phage lambda) are bridged, and so are up to ``gap`` chunks scored below the threshold. A
region starts at its first viral chunk and ends at its last one, so its ends are always chunk boundaries and never a
bridged chunk. A viral record is `whole` when it has a single region holding every scored chunk, else `partial`.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from virnucpro.io.blocks import row_blocks, texts, texts_like, tsv_text, write_blocks
from virnucpro.preprocess.chunking import chunk_starts

REGION_COLUMNS = (
    "region_id", "record_id", "start", "end", "length", "first_chunk", "last_chunk", "n_chunks", "n_chunks_viral",
    "mean_chunk_score", "max_chunk_score", "whole_record",
)
CHUNK_COLUMNS = (
    "chunk_id", "record_id", "chunk", "start", "end", "n_frames", "max_p_virus", "max_p_others", "chunk_score",
    "chunk_call", "region_id",
)
GFF_SOURCE = "virnucpro"
GFF_TYPE = "region"  # SO:0000001, the generic sequence-feature term; the attributes say what kind of region
# GFF3 seqids may hold these characters unescaped; anything else is written as %XX (GFF3 spec, column 1).
_SEQID_SAFE = re.compile(r"[^a-zA-Z0-9.:^*$@!+_?\-|]")
# GFF3 attribute values must escape these (column 9).
_ATTRIBUTE_UNSAFE = re.compile(r"[\x00-\x1f\x7f%;=&,]")


@dataclass(slots=True)  # one or more per input record
class Chunk:
    number: int  # 1-based
    start: int  # 1-based, inclusive
    end: int  # 1-based, inclusive
    n_frames: int = 0
    max_p_virus: float | None = None
    max_p_others: float | None = None

    @property
    def score(self) -> float | None:
        """The chunk score 0.5 + (max P(virus) - max P(others)) / 2; None when no frame was scored."""
        if self.max_p_virus is None:
            return None
        return 0.5 + (self.max_p_virus - self.max_p_others) / 2


@dataclass(slots=True)  # one or more per input record
class Region:
    record_id: str
    index: int  # 1-based, in order along the record
    chunks: list[Chunk]  # first and last are viral
    n_viral: int
    record_length: int
    whole: bool = False  # the record's only region, holding every scored chunk of it
    # Over the region's scored chunks (bridged ones included); computed once, the tables and the summary reuse them.
    mean_score: float = field(init=False)
    max_score: float = field(init=False)

    def __post_init__(self):
        scores = [c.score for c in self.chunks if c.max_p_virus is not None]
        self.mean_score = math.fsum(scores) / len(scores)
        self.max_score = max(scores)

    @property
    def region_id(self) -> str:
        return f"{self.record_id}_region_{self.index}"

    @property
    def start(self) -> int:
        return self.chunks[0].start

    @property
    def end(self) -> int:
        return self.chunks[-1].end

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def chunk_bounds(length: int, n_chunks: int, chunk_length: int) -> list[tuple[int, int]]:
    """1-based inclusive (start, end) of each chunk of a record of ``length`` bases."""
    starts = chunk_starts(length, chunk_length)
    if len(starts) != n_chunks:
        raise ValueError(f"{length} bp gives {len(starts)} chunks of {chunk_length} bp, not {n_chunks}")
    return [(s + 1, min(s + chunk_length, length)) for s in starts]


def find_regions(record_id: str, length: int, chunks: Sequence[Chunk], threshold: float, gap: int) -> list[Region]:
    """Runs of viral chunks (score >= threshold). Between two viral chunks, chunks without a scored frame are always
    bridged (they are no evidence either way) and up to ``gap`` scored chunks below the threshold are bridged."""
    regions: list[Region] = []
    run: list[Chunk] = []
    n_viral = 0
    pending: list[Chunk] = []  # chunks after the run's last viral chunk
    pending_not_viral = 0
    for chunk in chunks:
        score = chunk.score
        if score is not None and score >= threshold:
            if run and pending_not_viral <= gap:
                run += pending
            elif run:
                regions.append(Region(record_id, len(regions) + 1, run, n_viral, length))
                run, n_viral = [], 0
            pending, pending_not_viral = [], 0
            run.append(chunk)
            n_viral += 1
        elif run:
            pending.append(chunk)
            pending_not_viral += score is not None
    if run:
        regions.append(Region(record_id, len(regions) + 1, run, n_viral, length))
    if len(regions) == 1:
        inside = {c.number for c in regions[0].chunks}
        regions[0].whole = all(c.score is None for c in chunks if c.number not in inside)
    return regions


def gff_seqid(record_id: str) -> str:
    return _SEQID_SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), record_id)


def _attribute(value: str) -> str:
    return _ATTRIBUTE_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), value)


GFF_HEADER = "##gff-version 3\n"
_TRUE_FALSE = ("false", "true")


@dataclass
class RegionTable:
    """Every record's regions as columns: in input order, then along the record. Coordinates are 1-based
    inclusive; chunk scores as Region computes them."""

    record: np.ndarray  # index of the record in the records table
    index: np.ndarray  # 1-based along the record
    first_chunk: np.ndarray
    last_chunk: np.ndarray
    n_chunks: np.ndarray
    n_viral: np.ndarray
    start: np.ndarray
    end: np.ndarray
    mean_score: np.ndarray
    max_score: np.ndarray
    whole: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.record)


def find_all_regions(record_ids: list[str], length: np.ndarray, roll, chunk_start: np.ndarray,
                     chunk_end: np.ndarray, threshold: float, gap: int) -> RegionTable:
    """The regions of every record (``roll`` is rollup.RollUp). A one-chunk record (most reads) has one region,
    the whole record, when its chunk is viral: that is find_regions' answer, taken for all of them at once;
    longer records go through find_regions."""
    first = roll.chunk_first[:-1]
    n_chunks = np.diff(roll.chunk_first)
    single = np.flatnonzero(n_chunks == 1)
    single = single[(roll.chunk_frames[first[single]] > 0) & (roll.chunk_score[first[single]] >= threshold)]
    one = np.ones(len(single), np.int64)
    score = roll.chunk_score[first[single]]
    columns = [single, one, one, one, one, one, one, length[single], score, score, one.astype(bool)]
    multi = []
    for r in np.flatnonzero(n_chunks > 1).tolist():
        lo = first[r]
        chunks = [Chunk(j, s, e, f, pv if f else None, po if f else None) for j, s, e, f, pv, po in zip(
            range(1, n_chunks[r] + 1), *(column[lo:lo + n_chunks[r]].tolist() for column in (
                chunk_start, chunk_end, roll.chunk_frames, roll.chunk_p_virus, roll.chunk_p_others)))]
        multi += [(r, g.index, g.chunks[0].number, g.chunks[-1].number, len(g.chunks), g.n_viral, g.start, g.end,
                   g.mean_score, g.max_score, g.whole)
                  for g in find_regions(record_ids[r], int(length[r]), chunks, threshold, gap)]
    if multi:
        columns = [np.concatenate([a, np.array(b, dtype=a.dtype)]) for a, b in zip(columns, zip(*multi))]
        order = np.argsort(columns[0], kind="stable")  # each record's regions come from one of the two
        columns = [c[order] for c in columns]
    return RegionTable(*columns)


def region_ids(record_ids: list[str], regions: RegionTable) -> list[str]:
    return list(map("{}_region_{}".format, _of_regions(record_ids, regions), regions.index.tolist()))


def _of_regions(record_ids: list[str], regions: RegionTable, rows: slice = slice(None)) -> list[str]:
    return [record_ids[r] for r in regions.record[rows].tolist()]


def _true_false(flags: np.ndarray) -> list[str]:
    return [_TRUE_FALSE[f] for f in flags.tolist()]


def _scores(values: np.ndarray, spec: str = "") -> list[str]:
    """repr() of each score, or format(score, spec)."""
    return list(map(format, values.tolist(), itertools.repeat(spec))) if spec else list(map(repr, values.tolist()))


class _Rows:
    """The integer columns of a block of regions, as text."""

    def __init__(self, regions: RegionTable, rows: slice):
        start, end = regions.start[rows], regions.end[rows]
        self.start, self.end, self.length = texts(start), texts(end), texts(end - start + 1)
        self.bed_start = texts(start - 1)
        self.first, self.last = texts(regions.first_chunk[rows]), texts(regions.last_chunk[rows])
        self.n_chunks, self.n_viral = texts(regions.n_chunks[rows]), texts(regions.n_viral[rows])


def chunk_regions(roll, regions: RegionTable) -> np.ndarray:
    """Each chunk's region, by its place in ``regions``; -1 outside every region."""
    region = np.full(int(roll.chunk_first[-1]), -1, np.int64)
    base = roll.chunk_first[regions.record] + regions.first_chunk - 1
    steps = np.arange(int(regions.n_chunks.sum())) - np.repeat(np.cumsum(regions.n_chunks) - regions.n_chunks,
                                                               regions.n_chunks)
    region[np.repeat(base, regions.n_chunks) + steps] = np.repeat(np.arange(len(regions)), regions.n_chunks)
    return region


def write_chunks(fh, record_ids: list[str], roll, chunk_start: np.ndarray, chunk_end: np.ndarray,
                 region_of_chunk: np.ndarray, ids: list[str], threshold: float,
                 frame_score_texts: tuple[list[str], list[str]], score_texts: list[str]) -> None:
    """The rows of <sample>.chunks.tsv (CHUNK_COLUMNS). ``frame_score_texts``: each frame's P(others) and P(virus)
    as prediction_results.txt writes them; ``score_texts``: each chunk's score (rollup.chunk_score_texts);
    ``ids`` are the region ids."""
    from virnucpro.report.rollup import CALLS, MISSING, call_codes, frame_texts

    n_chunks = np.diff(roll.chunk_first)
    record_of_chunk = np.repeat(np.arange(len(n_chunks)), n_chunks)
    number = np.arange(len(chunk_start)) - roll.chunk_first[record_of_chunk] + 1
    call = call_codes(np.where(roll.chunk_frames > 0, roll.chunk_score, np.nan), threshold)
    others, virus = frame_score_texts

    def block(rows: slice) -> str:
        of_chunk = [record_ids[r] for r in record_of_chunk[rows].tolist()]
        numbers = texts(number[rows])
        return tsv_text((
            list(map("{}_chunk_{}".format, of_chunk, numbers)), of_chunk, numbers, texts(chunk_start[rows]),
            texts(chunk_end[rows]), texts(roll.chunk_frames[rows]),
            frame_texts(roll.chunk_virus_frame[rows], roll.chunk_p_virus[rows], virus),
            frame_texts(roll.chunk_others_frame[rows], roll.chunk_p_others[rows], others),
            score_texts[rows], [CALLS[c] for c in call[rows].tolist()],
            [ids[k] if k >= 0 else MISSING for k in region_of_chunk[rows].tolist()]))

    fh.write("\t".join(CHUNK_COLUMNS) + "\n")
    write_blocks(fh, len(chunk_start), block)


def _escaped(values: list[str], unsafe: re.Pattern, escape) -> list[str]:
    """``escape`` of each value; the values themselves when none holds a character to escape (one search)."""
    return list(map(escape, values)) if unsafe.search("".join(values)) else values


def write_region_files(tsv, gff, bed, record_ids: list[str], length: np.ndarray, regions: RegionTable,
                       ids: list[str]) -> None:
    """Write the regions as <sample>.viral_regions.tsv (REGION_COLUMNS), GFF3 (each record's ##sequence-region
    directive, then one feature line per region) and BED6 (0-based start, end exclusive; score = max chunk score x
    1000 rounded half to even like round(), as BED scores are integers 0-1000) to the open files, a block of
    regions at a time. ``ids``: region ids."""
    tsv.write("\t".join(REGION_COLUMNS) + "\n")
    gff.write(GFF_HEADER)
    for rows in row_blocks(len(regions)):
        r = _Rows(regions, rows)
        n = len(r.start)
        of_region = _of_regions(record_ids, regions, rows)
        top, top4, mean, mean4 = _region_scores(regions, rows)
        whole = _true_false(regions.whole[rows])
        tsv.write(tsv_text((ids[rows], of_region, r.start, r.end, r.length, r.first, r.last, r.n_chunks, r.n_viral,
                            mean, top, whole)))
        seqids = _escaped(of_region, _SEQID_SAFE, gff_seqid)
        names = _escaped(ids[rows], _ATTRIBUTE_UNSAFE, _attribute)
        first = [f"##sequence-region {seqid} 1 {size}\n{seqid}" if k == 1 else seqid
                 for k, seqid, size in zip(regions.index[rows].tolist(), seqids, length[regions.record[rows]].tolist())]
        attributes = map("ID={0};Name={0};virnucpro_call=viral_region;mean_chunk_score={1};n_chunks={2};"
                         "n_chunks_viral={3};chunks={4}-{5};whole_record={6}".format,
                         names, mean4, r.n_chunks, r.n_viral, r.first, r.last, whole)
        gff.write(tsv_text((first, [GFF_SOURCE] * n, [GFF_TYPE] * n, r.start, r.end, top4, ["."] * n, ["."] * n,
                            list(attributes))))
        bed.write(tsv_text((of_region, r.bed_start, r.end, ids[rows],
                            texts(np.rint(regions.max_score[rows] * 1000).astype(np.int64)), ["."] * n)))


def region_fasta_headers(record_ids: list[str], regions: RegionTable, ids: list[str],
                         rows: slice = slice(None)) -> list[str]:
    """The headers of ``rows`` of the regions in <sample>.viral_regions.fa, with the coordinates and scores of the
    region files. ``ids``: region ids."""
    first, stop, _ = rows.indices(len(regions))
    headers: list[str] = []
    for block in row_blocks(stop - first):
        rows = slice(first + block.start, min(first + block.stop, stop))
        r = _Rows(regions, rows)
        _, top4, _, mean4 = _region_scores(regions, rows)
        headers.extend(map("{} record={} region={}-{} score={} mean_score={} chunks={} whole_record={}".format,
                           ids[rows], _of_regions(record_ids, regions, rows), r.start, r.end, top4, mean4,
                           r.n_chunks, _true_false(regions.whole[rows])))
    return headers


def _region_scores(regions: RegionTable, rows: slice) -> tuple[list[str], list[str], list[str], list[str]]:
    """The max and mean chunk scores of a block of regions as text: repr() and 4 decimals of each."""
    mean, top = regions.mean_score[rows], regions.max_score[rows]
    top_texts, top4 = _scores(top), _scores(top, ".4f")
    return top_texts, top4, texts_like(mean, top, top_texts), texts_like(mean, top, top4, "{:.4f}".format)


def viral_headers(record_ids: list[str], virus_score: np.ndarray, regions: RegionTable,
                  records: np.ndarray) -> list[str]:
    """Headers of ``records`` (viral ones) in <sample>.viral.fa: `id score=0.9731 region=1201-8400[,9001-12000]`."""
    spans = list(map("{}-{}".format, regions.start.tolist(), regions.end.tolist()))
    lo = np.searchsorted(regions.record, records).tolist()
    hi = np.searchsorted(regions.record, records, side="right").tolist()
    return list(map("{} score={} region={}".format, [record_ids[r] for r in records.tolist()],
                    _scores(virus_score[records], ".4f"),
                    [spans[a] if b == a + 1 else ",".join(spans[a:b]) for a, b in zip(lo, hi)]))
