"""Frame files: the hand-off from preprocessing to sharding and embedding.

A frame is one kept reading frame of one chunk: ``Frame(id, nucleotide, protein)``, id
``<record id>_chunk_<j>F<1..3>`` or ``...R<1..3>`` (docs/architecture.md). Preprocessing writes the frames as two
FASTA files with the same ids in the same order (``identified_nucleotide.fa``, ``identified_protein.faa``, one line
per sequence); ``read_frame_pair`` reads them back in lockstep. Shards are TSV files with the header
``frame_id\\tnucleotide\\tprotein``, one frame per line, in input order.

Pure Python and stdlib only: this module runs on the GPU machines, where dnaio is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_open

SHARD_HEADER = "frame_id\tnucleotide\tprotein"


class Frame(NamedTuple):
    id: str
    nucleotide: str
    protein: str


def _fasta(path: Path) -> Iterator[tuple[str, str, int]]:
    """(id, sequence, line number of the header) for a FASTA file; multi-line sequences are joined."""
    header: str | None = None
    header_line = 0
    parts: list[str] = []
    try:
        fh = open(path, encoding="ascii", newline=None)  # universal newlines: CRLF is fine
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    with fh:
        try:
            for line_number, line in enumerate(fh, start=1):
                if line.startswith(">"):
                    if header is not None:
                        yield header, "".join(parts), header_line
                    fields = line[1:].split(None, 1)
                    header, header_line, parts = (fields[0] if fields else ""), line_number, []
                elif header is None:
                    if line.strip():
                        raise InputError(path, f"line {line_number}: text before the first '>' header")
                else:
                    parts.append(line.strip())
        except UnicodeDecodeError:
            raise InputError(path, "binary content: not a FASTA file") from None
    if header is not None:
        yield header, "".join(parts), header_line


def read_frame_pair(nt_fasta: str | os.PathLike, prot_faa: str | os.PathLike) -> Iterator[Frame]:
    """Yield the frames of a nucleotide FASTA and its protein FASTA, read in lockstep.

    The two files must hold the same ids in the same order, and each nucleotide sequence must be 3*len(protein)
    + 1 bases long (the original's codons-plus-one slice), or 3*len(protein) where the chunk ended first; dropped
    non-ACGT codons do not change this, since the slice length is computed from the protein length. Anything else
    raises InputError naming the file and the frame.
    """
    nt_path, aa_path = Path(nt_fasta), Path(prot_faa)
    nt_records, aa_records = _fasta(nt_path), _fasta(aa_path)
    count = 0
    while True:
        nt = next(nt_records, None)
        aa = next(aa_records, None)
        if nt is None and aa is None:
            return
        count += 1
        if nt is None:
            raise InputError(nt_path, f"ends after {count - 1} records, but {aa_path.name} has more ({aa[0]!r})")
        if aa is None:
            raise InputError(aa_path, f"ends after {count - 1} records, but {nt_path.name} has more ({nt[0]!r})")
        if nt[0] != aa[0]:
            raise InputError(
                aa_path, f"record {count} is {aa[0]!r} (line {aa[2]}) but {nt_path.name} has {nt[0]!r} there"
            )
        if len(nt[1]) - 3 * len(aa[1]) not in (0, 1):
            raise InputError(
                nt_path,
                f"frame {nt[0]!r}: nucleotide length {len(nt[1])} does not match its protein of {len(aa[1])} aa "
                f"(expected {3 * len(aa[1]) + 1}, or {3 * len(aa[1])} at a chunk end)",
            )
        yield Frame(nt[0], nt[1], aa[1])


def write_frames_tsv(path: str | os.PathLike, frames: Iterable[Frame]) -> int:
    """Write frames to a shard TSV atomically (temp file in the same directory, fsync, rename). Returns the count."""
    n = 0
    with atomic_open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write(SHARD_HEADER + "\n")
        for frame in frames:
            for field in frame:
                if "\t" in field or "\n" in field:
                    raise ValueError(f"frame {frame.id!r} holds a tab or newline")
            fh.write(f"{frame.id}\t{frame.nucleotide}\t{frame.protein}\n")
            n += 1
    return n


def read_frames_tsv(path: str | os.PathLike) -> Iterator[Frame]:
    """Yield the frames of a shard TSV, checking its header and that every line has three fields."""
    path = Path(path)
    try:
        fh = open(path, encoding="ascii", newline=None)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    with fh:
        try:
            header = fh.readline().rstrip("\n")
            if header != SHARD_HEADER:
                raise InputError(path, f"not a shard file: header is {header[:60]!r}, expected {SHARD_HEADER!r}")
            for line_number, line in enumerate(fh, start=2):
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 3:
                    raise InputError(path, f"line {line_number}: expected 3 tab-separated fields, found {len(fields)}")
                yield Frame(*fields)
        except UnicodeDecodeError:
            raise InputError(path, "binary content: not a shard file") from None


def read_frame_ids(path: str | os.PathLike) -> list[str]:
    """The frame ids of a shard TSV, with read_frames_tsv's checks, read a block of lines at a time."""
    from virnucpro.io.blocks import cell_blocks

    path = Path(path)
    ids: list[str] = []
    try:
        with open(path, encoding="ascii", newline=None) as fh:
            header = fh.readline().rstrip("\n")
            if header != SHARD_HEADER:
                raise InputError(path, f"not a shard file: header is {header[:60]!r}, expected {SHARD_HEADER!r}")
            for line, cells, n, fields in cell_blocks(fh, 3, 2):
                if fields is not None:
                    raise InputError(path, f"line {line + n}: expected 3 tab-separated fields, found {fields}")
                ids += cells[0::3]
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except UnicodeDecodeError:
        raise InputError(path, "binary content: not a shard file") from None
    return ids
