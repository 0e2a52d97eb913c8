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

import math
import re
from dataclasses import dataclass, field
from typing import Sequence

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


def region_call(call: str, regions: list[Region]) -> str:
    """The region-aware call: a viral record is `whole` when its one region holds every scored chunk, else
    `partial`; other calls stay as they are."""
    if call != "viral":
        return call
    return "whole" if any(r.whole for r in regions) else "partial"


def score_text(x: float | None) -> str:
    """Scores in the region and chunk tables: as records.tsv writes them (shortest round-trip text)."""
    return "NA" if x is None else repr(float(x))


def region_row(r: Region) -> str:
    cells = (r.region_id, r.record_id, r.start, r.end, r.length, r.chunks[0].number, r.chunks[-1].number,
             len(r.chunks), r.n_viral, score_text(r.mean_score), score_text(r.max_score),
             "true" if r.whole else "false")
    return "\t".join(map(str, cells)) + "\n"


def chunk_rows(record_id: str, chunks: Sequence[Chunk], regions: list[Region], threshold: float) -> str:
    from virnucpro.classify.outputs import format_score

    region_of = {c.number: r.region_id for r in regions for c in r.chunks} if regions else {}
    rows = []
    for c in chunks:
        if c.max_p_virus is None:
            scores = "NA\tNA\tNA\tno_prediction"
        else:
            score = c.score
            scores = (f"{format_score(c.max_p_virus)}\t{format_score(c.max_p_others)}\t{score!r}\t"
                      f"{'viral' if score >= threshold else 'not_viral'}")
        rows.append(f"{record_id}_chunk_{c.number}\t{record_id}\t{c.number}\t{c.start}\t{c.end}\t{c.n_frames}\t"
                    f"{scores}\t{region_of.get(c.number, 'NA')}\n")
    return "".join(rows)


def gff_seqid(record_id: str) -> str:
    return _SEQID_SAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), record_id)


def _attribute(value: str) -> str:
    return _ATTRIBUTE_UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), value)


GFF_HEADER = "##gff-version 3\n"


def gff_lines(regions: list[Region], length: int) -> str:
    """A record's regions as GFF3: its ##sequence-region directive, then one feature line per region."""
    if not regions:
        return ""
    seqid = gff_seqid(regions[0].record_id)
    out = [f"##sequence-region {seqid} 1 {length}\n"]
    for r in regions:
        attributes = ";".join((
            f"ID={_attribute(r.region_id)}", f"Name={_attribute(r.region_id)}", "virnucpro_call=viral_region",
            f"mean_chunk_score={r.mean_score:.4f}", f"n_chunks={len(r.chunks)}", f"n_chunks_viral={r.n_viral}",
            f"chunks={r.chunks[0].number}-{r.chunks[-1].number}", f"whole_record={'true' if r.whole else 'false'}",
        ))
        out.append(f"{seqid}\t{GFF_SOURCE}\t{GFF_TYPE}\t{r.start}\t{r.end}\t{r.max_score:.4f}\t.\t.\t{attributes}\n")
    return "".join(out)


def bed_lines(regions: list[Region]) -> str:
    """BED6: 0-based start, end exclusive; score = max chunk score x 1000 (BED scores are integers 0-1000)."""
    return "".join(f"{r.record_id}\t{r.start - 1}\t{r.end}\t{r.region_id}\t{round(r.max_score * 1000)}\t.\n"
                   for r in regions)


def viral_header(record_id: str, virus_score: float, regions: list[Region]) -> str:
    """Header of a record in <sample>.viral.fa: `id score=0.9731 region=1201-8400[,9001-12000]`."""
    spans = ",".join(f"{r.start}-{r.end}" for r in regions)
    return f"{record_id} score={virus_score:.4f} region={spans}"


def region_header(r: Region) -> str:
    """Header of a region in <sample>.viral_regions.fa."""
    return (f"{r.region_id} record={r.record_id} region={r.start}-{r.end} score={r.max_score:.4f} "
            f"mean_score={r.mean_score:.4f} chunks={len(r.chunks)} whole_record={'true' if r.whole else 'false'}")
