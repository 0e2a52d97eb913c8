"""Sequence files in and out: a streaming FASTA/FASTQ reader and a FASTA writer.

The reader takes FASTA or FASTQ, plain or compressed (gzip, bzip2, xz: told apart by their magic bytes, never by
the file name), with Unix or Windows line endings, and yields ``(id, sequence)`` one record at a time, where ``id``
is the header up to its first whitespace (what Biopython, and so the original VirNucPro, calls ``record.id``).
Only the record being read is held in memory.

Header descriptions (the text after the id) may hold any non-ASCII text, UTF-8, Latin-1 or other: the reader never
decodes them. Ids must be ASCII (they name chunks, frames and result rows), and sequence and quality lines must be
ASCII text.

Bad input raises ``InputError(path, problem)`` with one problem: missing file, empty file, binary content,
truncated or corrupt compressed stream, FASTQ record cut short or with sequence/quality lengths that differ,
text that is neither FASTA nor FASTQ, and a record id seen twice. The original crashes on duplicate ids (fair-esm
asserts unique labels), and two records sharing an id would share chunk and frame ids and be merged downstream, so
we refuse them up front and name both record numbers. A header with no sequence lines is a valid, empty record:
the reader yields it with an empty sequence and the caller decides (preprocessing skips and counts it).

Pure Python + stdlib, reading blocks of whole lines (a few C-level operations per record; FASTA records of one
sequence line, and FASTQ, a few per block). ``read_raw_batches`` hands on the records of a block together, which
is how preprocessing reads; ``read_raw_sequences`` and ``read_sequences`` one at a time. Measured against dnaio
and Biopython (docs/BENCHMARKS.md, "Preprocessing"); it needs no compiled dependency and runs where dnaio is not
installed.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import itertools
import lzma
import os
import re
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from virnucpro.errors import InputError

FASTA_LINE_WIDTH = 60  # Biopython's SeqIO.write wrapping, as in the original's chunked.fa

_UTF8_BOM = b"\xef\xbb\xbf"
_SNIFF_BYTES = 1 << 16
_BLOCK_BYTES = 1 << 18
_COMPRESSED = (
    (b"\x1f\x8b", "gzip", lambda raw: gzip.GzipFile(fileobj=raw)),
    (b"BZh", "bzip2", bz2.BZ2File),
    (b"\xfd7zXZ\x00", "xz", lzma.LZMAFile),
)
# Bytes that never occur in a text sequence file: NUL and other C0 controls except tab, LF, CR, FF.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0c") + b"\x7f"
_NOT_TEXT = re.compile(rb"[^\t\n\r\x0c\x20-\x7e]")  # the same, plus every non-ASCII byte
_CONTROL = re.compile(b"[" + re.escape(_CONTROL_BYTES) + b"]")
_HEADER_SPACES = (b" ", b"\t", b"\r", b"\x0b", b"\x0c")  # what ends an id (bytes.split's white space)
_SEQUENCE_SPACES = (b"\r", b" ", b"\t")  # what `_clean` removes


def _open_binary(path: Path) -> tuple[BinaryIO, str]:
    """Open ``path`` for reading bytes, decompressing when its magic bytes say so. Returns (stream, kind)."""
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not a sequence file")
    try:
        raw = open(path, "rb")
    except OSError as exc:
        raise InputError(path, f"cannot open: {exc.strerror}") from None
    magic = raw.read(6)
    for prefix, kind, opener in _COMPRESSED:
        if magic.startswith(prefix):
            raw.seek(0)
            return io.BufferedReader(opener(raw), buffer_size=1 << 20), kind
    raw.seek(3 if magic.startswith(_UTF8_BOM) else 0)  # editors on Windows may start the file with a BOM
    return io.BufferedReader(raw, buffer_size=1 << 20), "plain"


@contextlib.contextmanager
def _decompression_errors(path: Path, kind: str):
    """Turn the stdlib's decompression failures into one InputError line."""
    try:
        yield
    except EOFError:
        raise InputError(path, f"truncated {kind} file (the compressed stream ends early)") from None
    except (gzip.BadGzipFile, zlib.error, lzma.LZMAError) as exc:
        raise InputError(path, f"corrupt {kind} file ({exc})") from None
    except OSError as exc:
        if kind == "bzip2" and "Invalid data stream" in str(exc):
            raise InputError(path, f"corrupt {kind} file ({exc})") from None
        raise


EMPTY_FILE = "file is empty"


def sniff_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a FASTA or FASTQ file, judged from its first 64 KiB, or None.

    The cheap look the pipeline takes at every local input before a run starts, so that the common mistakes (a
    missing, empty or non-sequence file) stop it then; reading the whole file is preprocessing's job. The problem
    is ``EMPTY_FILE`` when the file holds no record at all (0 bytes, blank lines, an empty .gz).
    """
    path = Path(path)
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "is a directory, expected a FASTA or FASTQ file"
    try:
        stream, kind = _open_binary(path)
        with stream:
            head = stream.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]
    except (OSError, EOFError, zlib.error, lzma.LZMAError, InputError) as exc:
        return f"cannot be read as FASTA/FASTQ ({exc})"
    first = head.lstrip()[:1]
    if not first:
        return EMPTY_FILE
    if first not in (b">", b"@"):
        shown = f"'{first.decode()}'" if 32 <= first[0] < 127 else f"byte 0x{first[0]:02x}"
        return f"not a FASTA or FASTQ file (starts with {shown}, expected '>' or '@')"
    return None


def _binary_problem(path: Path, record_number: int):
    return InputError(path, f"binary content in record {record_number}: not a text FASTA/FASTQ file")


def read_sequences(path: str | os.PathLike, unique_ids: bool = True, allow_empty: bool = False
                   ) -> Iterator[tuple[str, str]]:
    """Yield ``(id, sequence)`` for each record of a FASTA or FASTQ file, in file order.

    Sequences keep their case and letters; line breaks, CRs, tabs and spaces inside sequence lines are removed
    (Biopython removes spaces and CRs). With ``unique_ids`` (the default) a repeated id raises InputError naming
    both record numbers; this keeps one dict entry per record, the only state that grows with the file. With
    ``allow_empty`` a file without any record (0 bytes, blank lines only) yields nothing instead of raising.
    """
    for rid, seq in read_raw_sequences(path, unique_ids, allow_empty):
        yield rid, seq.decode("ascii")


def read_raw_sequences(path: str | os.PathLike, unique_ids: bool = True, allow_empty: bool = False
                       ) -> Iterator[tuple[str, bytes]]:
    """``read_sequences`` with the sequence as ASCII bytes (what preprocessing works on; saves a decode)."""
    for ids, seqs in read_raw_batches(path, unique_ids, allow_empty):
        yield from zip(ids, seqs)


def read_raw_batches(path: str | os.PathLike, unique_ids: bool = True, allow_empty: bool = False
                     ) -> Iterator[tuple[list[str], list[bytes]]]:
    """``read_raw_sequences`` a block of records at a time: (ids, sequences), in file order. A problem found in a
    block is raised after the records before it are handed on, as a record-at-a-time reader would."""
    path = Path(path)
    stream, kind = _open_binary(path)
    seen: dict[str, int] | None = {} if unique_ids else None
    n = 0
    with stream, _decompression_errors(path, kind):
        head = stream.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]
        first = head.lstrip()[:1]
        if not head.strip():
            if allow_empty:
                return
            raise InputError(path, "empty file: no sequence records")
        if first == b">":
            batches = _fasta_batches(path, stream)  # both check every block for binary content
        elif first == b"@":
            batches = _fastq_batches(path, stream)
        elif _NOT_TEXT.search(head):
            raise InputError(path, "binary content: not a text FASTA/FASTQ file")
        else:
            raise InputError(path, "neither FASTA (first line starts with '>') nor FASTQ (starts with '@')")
        for ids, seqs in batches:
            if seen is not None:
                numbers = dict(zip(ids, range(n + 1, n + 1 + len(ids))))
                if len(numbers) != len(ids) or not seen.keys().isdisjoint(numbers):
                    i, earlier = _first_duplicate(seen, ids, n)
                    yield ids[:i], seqs[:i]
                    raise InputError(path, f"duplicate record id {ids[i]!r} (records {earlier} and {n + 1 + i})")
                seen.update(numbers)
            n += len(ids)
            yield ids, seqs
    if n == 0:
        raise InputError(path, "empty file: no sequence records")


def _first_duplicate(seen: dict[str, int], ids: list[str], n: int) -> tuple[int, int]:
    """(index in ``ids`` of the first id seen before, the record number it was first seen at)."""
    here: dict[str, int] = {}
    for i, rid in enumerate(ids):
        earlier = seen.get(rid) or here.setdefault(rid, n + 1 + i)
        if earlier != n + 1 + i:
            return i, earlier
    raise AssertionError("no duplicate id")


def _record_ids(path: Path, headers: list[bytes], first_number: int) -> tuple[list[str], InputError | None]:
    """The ids of headers (marker byte removed) of records numbered from ``first_number``, and the problem that
    stopped them (a non-ASCII id), if any: then only the ids before it are given."""
    joined = b"\n".join(headers)
    if headers and joined.isascii() and not any(c in joined for c in _HEADER_SPACES):
        return joined.decode("ascii").split("\n"), None  # ids without descriptions: nothing to split off
    ids = []
    for number, header in enumerate(headers, start=first_number):
        try:
            ids.append(_record_id(path, header, number))
        except InputError as exc:
            return ids, exc
    return ids, None


def _record_id(path: Path, header: bytes, record_number: int) -> str:
    parts = header.split(None, 1)
    try:
        return parts[0].decode("ascii") if parts else ""
    except UnicodeDecodeError:
        shown = parts[0].decode("utf-8", "backslashreplace")
        raise InputError(path, f"record {record_number}: id '{shown}' is not ASCII; record ids must be ASCII "
                         "(they name chunks, frames and result rows), while the description after the id may "
                         "hold any text") from None


def _check_text(path: Path, text: bytes, records_before: int) -> bool:
    """Refuse NUL and other control characters, which no text sequence file holds; returns whether ``text`` is all
    ASCII (if not, the caller checks that its non-ASCII bytes stand in header lines only). ``text`` is a run of
    whole lines read after ``records_before`` FASTA records had started."""
    if len(text.translate(None, _CONTROL_BYTES)) != len(text):
        bad = _CONTROL.search(text).start()
        starts_before = text.count(b"\n>", 0, bad) + (text[:1] == b">")
        raise _binary_problem(path, max(records_before + starts_before, 1))
    return text.isascii()


def _clean(text: bytes) -> bytes:
    """Sequence letters of raw sequence lines: line breaks, CRs, tabs and spaces removed."""
    text = text.replace(b"\n", b"")
    if b"\r" in text or b" " in text or b"\t" in text:
        text = text.replace(b"\r", b"").replace(b" ", b"").replace(b"\t", b"")
    return text


def _line_blocks(stream: BinaryIO) -> Iterator[bytes]:
    """The stream in blocks of whole lines (the last block may lack its final newline)."""
    partial_line: list[bytes] = []  # an unfinished last line, kept in pieces so a huge one costs no re-copying
    while True:
        block = stream.read(_BLOCK_BYTES)
        if not block:
            rest = b"".join(partial_line)
            if rest:
                yield rest
            return
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            partial_line.append(block)
            continue
        text = b"".join(partial_line) + block[:cut] if partial_line else block[:cut]
        partial_line = [block[cut:]] if cut < len(block) else []
        yield text


def _fasta_batches(path: Path, stream: BinaryIO) -> Iterator[tuple[list[str], list[bytes]]]:
    """FASTA records, read a block of whole lines at a time and split at line-initial '>': the records that end
    in a block are handed on together. Records of one sequence line (reads, mostly) are split by a few C-level
    operations per block; others take a few per record."""
    header: bytes | None = None  # of the record being read, whose sequence may go on in the next block
    parts: list[bytes] = []  # cleaned sequence text of the record being read
    n = 0  # records started
    for text in _line_blocks(stream):
        ascii_text = _check_text(path, text, n)
        pieces = text.split(b"\n>")
        if text[:1] == b">":
            pieces[0] = pieces[0][1:]
        else:
            first = pieces.pop(0)
            if header is not None:
                if not (ascii_text or first.isascii()):  # non-ASCII is allowed in header lines only
                    raise _binary_problem(path, n)
                parts.append(_clean(first))
            elif first.strip():
                raise InputError(path, "neither FASTA nor FASTQ: text before the first '>' header")
        if not pieces:
            continue
        headers, seqs = ([header], [b"".join(parts)]) if header is not None else ([], [])
        first_number = n if header is not None else n + 1
        header, parts = None, []  # drop the pieces before handing the record over
        problem = _split_records(path, pieces[:-1], ascii_text, n + 1, headers, seqs)
        if problem is None:
            n += len(pieces)
            header, _, body = pieces[-1].partition(b"\n")
            if not (ascii_text or body.isascii()):
                problem = _binary_problem(path, n)
            parts = [_clean(body)]
        ids, id_problem = _record_ids(path, headers, first_number)
        yield ids, seqs[:len(ids)]
        if id_problem or problem:
            raise id_problem or problem
    if header is not None:
        ids, problem = _record_ids(path, [header], n)
        yield ids, [b"".join(parts)][:len(ids)]
        if problem:
            raise problem


def _split_records(path: Path, pieces: list[bytes], ascii_text: bool, first_number: int, headers: list[bytes],
                   seqs: list[bytes]) -> InputError | None:
    """Add the header and sequence of whole FASTA records (text after their '>') to ``headers`` and ``seqs``;
    returns the problem that stopped them (binary content), if any."""
    if pieces and ascii_text and set(map(bytes.count, pieces, itertools.repeat(b"\n"))) == {1}:
        lines = b"\n".join(pieces).split(b"\n")  # one sequence line each: header and sequence alternate
        body = lines[1::2]
        if any(c in b"".join(body) for c in _SEQUENCE_SPACES):
            body = list(map(_clean, body))
        headers += lines[0::2]
        seqs += body
        return None
    for number, piece in enumerate(pieces, start=first_number):
        head, _, body = piece.partition(b"\n")
        if not (ascii_text or body.isascii()):
            return _binary_problem(path, number)
        headers.append(head)
        seqs.append(_clean(body))
    return None


def _fastq_batches(path: Path, stream: BinaryIO) -> Iterator[tuple[list[str], list[bytes]]]:
    """Four-line FASTQ records (the form every sequencer and converter writes); blank lines between records are
    skipped. Works on blocks of lines: the four line kinds are list slices, checked with C-level map/compare."""
    n = 0
    pending: list[bytes] = []  # lines of a record cut by the block boundary
    for text in _line_blocks(stream):
        ascii_block = text.isascii() and all(map(bytes.isascii, pending))
        if len(text.translate(None, _CONTROL_BYTES)) != len(text):
            bad = _CONTROL.search(text).start()
            raise _binary_problem(path, n + 1 + (len(pending) + text.count(b"\n", 0, bad)) // 4)
        lines = text.split(b"\n")
        if text[-1:] == b"\n":
            lines.pop()
        if b"\r" in text:
            lines = [line.rstrip(b"\r") for line in lines]
        if pending:
            lines = pending + lines
        if b"" in lines:
            lines = _drop_blank_lines_between_records(lines)
        whole = len(lines) - len(lines) % 4
        pending = lines[whole:]
        heads, seqs, pluses, quals = lines[0:whole:4], lines[1:whole:4], lines[2:whole:4], lines[3:whole:4]
        if not ascii_block:  # non-ASCII is allowed in the header and '+' lines only
            for i, (seq, qual) in enumerate(zip(seqs, quals)):
                if not (seq.isascii() and qual.isascii()):
                    raise _binary_problem(path, n + i + 1)
        firsts = b"".join([h[:1] for h in heads])
        if firsts != b"@" * len(heads):
            i = next(i for i, h in enumerate(heads) if h[:1] != b"@")
            raise InputError(path, f"FASTQ record {n + i + 1}: header line does not start with '@'")
        if b"".join([p[:1] for p in pluses]) != b"+" * len(pluses):
            i = next(i for i, p in enumerate(pluses) if p[:1] != b"+")
            raise InputError(path, f"FASTQ record {n + i + 1}: third line does not start with '+'")
        seq_lengths = list(map(len, seqs))
        if seq_lengths != list(map(len, quals)):
            i = next(i for i, (q, s) in enumerate(zip(quals, seq_lengths)) if len(q) != s)
            raise InputError(
                path, f"FASTQ record {n + i + 1}: sequence length {seq_lengths[i]} differs from quality length "
                f"{len(quals[i])}"
            )
        if b" " in text or b"\t" in text:
            seqs = [_clean(seq) for seq in seqs]
        ids, problem = _record_ids(path, [head[1:] for head in heads], n + 1)
        yield ids, seqs[:len(ids)]
        if problem:
            raise problem
        n += len(heads)
    if pending:
        raise InputError(path, f"FASTQ record {n + 1} is cut short (fewer than 4 lines)")


def _drop_blank_lines_between_records(lines: list[bytes]) -> list[bytes]:
    """Remove blank lines where a header is due; blank lines inside a record are a zero-length read."""
    kept, i = [], 0
    while i < len(lines):
        if lines[i]:
            kept += lines[i : i + 4]
            i += 4
        else:
            i += 1
    return kept


def wrap_fasta(seq_id: str, seq: str, width: int | None = FASTA_LINE_WIDTH) -> str:
    """One FASTA record as text: header line, then the sequence in lines of ``width`` (None: one line)."""
    if width is None or len(seq) <= width:
        return f">{seq_id}\n{seq}\n"
    lines = [seq[i : i + width] for i in range(0, len(seq), width)]
    return f">{seq_id}\n" + "\n".join(lines) + "\n"


def write_fasta(handle, records: Iterable[tuple[str, str]], width: int | None = FASTA_LINE_WIDTH) -> int:
    """Write ``(id, sequence)`` records to an open text handle; returns how many were written."""
    n = 0
    for seq_id, seq in records:
        handle.write(wrap_fasta(seq_id, seq, width))
        n += 1
    return n
