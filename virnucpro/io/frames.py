"""Frame files: the hand-off from preprocessing to sharding and embedding.

A frame is one kept reading frame of one chunk: ``Frame(id, nucleotide, protein)``, id
``<record id>_chunk_<j>F<1..3>`` or ``...R<1..3>`` (docs/architecture.md). Preprocessing writes the frames as two
FASTA files with the same ids in the same order (``identified_nucleotide.fa``, ``identified_protein.faa``, one line
per sequence); ``read_frame_pair`` reads them back in lockstep. Shards are TSV files with the header
``frame_id\\tnucleotide\\tprotein``, one frame per line, in input order.

Pure Python and stdlib only: this module runs on the GPU machines, where dnaio is not installed.
"""

from __future__ import annotations

import itertools
import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_open

SHARD_HEADER = "frame_id\tnucleotide\tprotein"
# frame_stats.tsv, written by preprocess beside the frame files: this header, then one row of the totals.
FRAME_STATS_HEADER = "frames\ttokens\tlargest\n"


class Frame(NamedTuple):
    id: str
    nucleotide: str
    protein: str


@dataclass(frozen=True)
class FrameStats:
    """A sample's frames, their tokens (every encoder together, embed/shard.py) and the tokens of the largest."""

    frames: int = 0
    tokens: int = 0
    largest: int = 0


def write_frame_stats(path: str | os.PathLike, stats: FrameStats) -> None:
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write(f"{FRAME_STATS_HEADER}{stats.frames}\t{stats.tokens}\t{stats.largest}\n")


def read_frame_stats(path: str | os.PathLike) -> FrameStats:
    """The totals of a frame_stats.tsv; InputError unless it is one."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except UnicodeDecodeError:
        raise InputError(path, "binary content: not a frame_stats.tsv") from None
    header, _, row = text.partition("\n")
    fields = row.rstrip("\n").split("\t")
    if header + "\n" != FRAME_STATS_HEADER or len(fields) != 3 or not all(f.isdigit() for f in fields):
        raise InputError(path, f"not a frame_stats.tsv (expected the header {FRAME_STATS_HEADER.strip()!r} and one "
                         "row of 3 whole numbers)")
    return FrameStats(*map(int, fields))


class FrameBlock(NamedTuple):
    """Consecutive frames as parallel lists of ASCII bytes: what sharding works on, a block at a time."""

    ids: list[bytes]
    nucleotide: list[bytes]
    protein: list[bytes]


_BLOCK_BYTES = 1 << 22
_BLOCK_FRAMES = 1 << 14
# What str.split() and str.strip() take for white space in ASCII, the newline aside.
_SPACES = tuple(bytes([c]) for c in b"\t\x0b\x0c\r\x1c\x1d\x1e\x1f ")


def _whole_record_texts(fh) -> Iterator[bytes]:
    """The file in pieces of whole records (each but the first starts at a header line), with universal
    newlines (CRLF and lone CR read as LF, as text mode reads them)."""
    pending: list[bytes] = []  # read since the last cut
    held_cr = b""  # a CR ending a read: its LF may start the next one
    while True:
        raw = fh.read(_BLOCK_BYTES)
        data, held_cr = held_cr + raw, b""
        if raw and data.endswith(b"\r"):
            data, held_cr = data[:-1], b"\r"
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if data:
            before = pending[-1][-1:] if pending else b""
            cut = (before + data).rfind(b"\n>") + 1 - len(before)  # where the last header line starts in data
            if cut > 0 or (cut == 0 and before):
                pending.append(data[:cut])
                yield b"".join(pending)
                pending = [data[cut:]]
            else:
                pending.append(data)
        if not raw:
            if pending:
                yield b"".join(pending)
            return


def _fasta_blocks(path: Path) -> Iterator[tuple[list[bytes], list[bytes], range | list[int]]]:
    """(ids, sequences, line numbers of the headers) of a FASTA file, a block of records at a time; multi-line
    sequences are joined. The usual form (one sequence line per record, no white space, what preprocessing
    writes) is split with a few list operations per block; any other block is read line by line."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    lines_before = 0
    with fh:
        for text in _whole_record_texts(fh):
            if not text.isascii():
                raise InputError(path, "binary content: not a FASTA file")
            lines = text.split(b"\n")
            if lines[-1] == b"":
                lines.pop()  # the text's final newline
            heads = b"\n".join(lines[0::2])
            n = (len(lines) + 1) // 2
            # The usual form: every other line, and only those, start with '>' (counted in C, not per line).
            if (lines and len(lines) % 2 == 0 and heads.count(b"\n>") + heads.startswith(b">") == n
                    and text.count(b"\n>") + text.startswith(b">") == n and not any(c in text for c in _SPACES)):
                ids = heads[1:].split(b"\n>")
                yield ids, lines[1::2], range(lines_before + 1, lines_before + len(lines), 2)
            else:
                yield _fasta_lines(path, lines, lines_before)
            lines_before += len(lines)


def _fasta_lines(path: Path, lines: list[bytes], lines_before: int) -> tuple[list[bytes], list[bytes], list[int]]:
    """``_fasta_blocks`` for the lines of whole records, one line at a time."""
    ids: list[bytes] = []
    seqs: list[bytes] = []
    header_lines: list[int] = []
    parts: list[str] | None = None
    for line_number, line in enumerate((line.decode("ascii") for line in lines), start=lines_before + 1):
        if line.startswith(">"):
            if parts is not None:
                seqs.append("".join(parts).encode("ascii"))
            fields = line[1:].split(None, 1)
            ids.append((fields[0] if fields else "").encode("ascii"))
            header_lines.append(line_number)
            parts = []
        elif parts is None:
            if line.strip():
                raise InputError(path, f"line {line_number}: text before the first '>' header")
        else:
            parts.append(line.strip())
    if parts is not None:
        seqs.append("".join(parts).encode("ascii"))
    return ids, seqs, header_lines


def read_frame_blocks(nt_fasta: str | os.PathLike, prot_faa: str | os.PathLike) -> Iterator[FrameBlock]:
    """The frames of a nucleotide FASTA and its protein FASTA, read in lockstep, in blocks.

    The two files must hold the same ids in the same order, and each nucleotide sequence must be 3*len(protein)
    + 1 bases long (the original's codons-plus-one slice), or 3*len(protein) where the chunk ended first; dropped
    non-ACGT codons do not change this, since the slice length is computed from the protein length. Anything else
    raises InputError naming the file and the frame.
    """
    paths = Path(nt_fasta), Path(prot_faa)
    readers = _fasta_blocks(paths[0]), _fasta_blocks(paths[1])
    ahead: list = [([], [], []), ([], [], [])]  # per file: records read and not yet handed on
    count = 0
    while True:
        for side in (0, 1):
            while not ahead[side][0]:
                ahead[side] = next(readers[side], None)
                if ahead[side] is None:
                    ahead[side] = ([], [], [])
                    break
        n = min(len(ahead[0][0]), len(ahead[1][0]))
        if n == 0:
            for short, other in ((0, 1), (1, 0)):
                if ahead[other][0]:
                    raise InputError(paths[short], f"ends after {count} records, but {paths[other].name} has more "
                                     f"({ahead[other][0][0].decode()!r})")
            return
        (nt_ids, nts, _), (aa_ids, aas, aa_lines) = [[part[:n] for part in side] for side in ahead]
        ahead = [tuple(part[n:] for part in side) for side in ahead]
        bad_id = n if nt_ids == aa_ids else next(i for i, (a, b) in enumerate(zip(nt_ids, aa_ids)) if a != b)
        surplus = set(map(operator.sub, map(len, nts), map((3).__mul__, map(len, aas))))
        bad_length = n if surplus <= {0, 1} else next(
            i for i, (nt, aa) in enumerate(zip(nts, aas)) if len(nt) - 3 * len(aa) not in (0, 1))
        if bad_id < n and bad_id <= bad_length:  # the checks in file order, the id first
            i = bad_id
            raise InputError(paths[1], f"record {count + i + 1} is {aa_ids[i].decode()!r} (line {aa_lines[i]}) but "
                             f"{paths[0].name} has {nt_ids[i].decode()!r} there")
        if bad_length < n:
            i = bad_length
            raise InputError(
                paths[0],
                f"frame {nt_ids[i].decode()!r}: nucleotide length {len(nts[i])} does not match its protein of "
                f"{len(aas[i])} aa (expected {3 * len(aas[i]) + 1}, or {3 * len(aas[i])} at a chunk end)",
            )
        count += n
        yield FrameBlock(nt_ids, nts, aas)


def read_frame_pair(nt_fasta: str | os.PathLike, prot_faa: str | os.PathLike) -> Iterator[Frame]:
    """``read_frame_blocks`` one frame at a time."""
    for block in read_frame_blocks(nt_fasta, prot_faa):
        for fields in zip(*block):
            yield Frame(*(field.decode("ascii") for field in fields))


def frame_blocks(frames: Iterable[Frame], size: int = _BLOCK_FRAMES) -> Iterator[FrameBlock]:
    """Frames in blocks of ``size``."""
    frames = iter(frames)
    while True:
        block = [[field.encode("ascii") for field in frame] for frame in itertools.islice(frames, size)]
        if not block:
            return
        yield FrameBlock(*map(list, zip(*block)))


def shard_rows(block: FrameBlock) -> bytes:
    """The shard TSV lines of a block of frames."""
    if not block.ids:
        return b""
    text = b"\n".join(map(b"\t".join, zip(*block))) + b"\n"
    if text.count(b"\t") != 2 * len(block.ids) or text.count(b"\n") != len(block.ids):
        bad = next(fields[0] for fields in zip(*block) if any(b"\t" in f or b"\n" in f for f in fields))
        raise ValueError(f"frame {bad.decode()!r} holds a tab or newline")
    return text


def write_frames_tsv(path: str | os.PathLike, frames: Iterable[Frame]) -> int:
    """Write frames to a shard TSV atomically (temp file in the same directory, fsync, rename). Returns the count."""
    n = 0
    with atomic_open(path, "wb") as fh:
        fh.write(SHARD_HEADER.encode() + b"\n")
        for block in frame_blocks(frames):
            fh.write(shard_rows(block))
            n += len(block.ids)
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
