"""Six-frame identification of many chunks at once, with the original's rules (ORIGINAL_SEMANTICS §2).

For each upper-cased chunk s: frames 1..3 read s from offset 0, 1, 2 and frames 4..6 read its reverse complement
(only A, C, G, T are complemented) from offset 0, 1, 2. Codons are taken at offset, offset+3, ... while a whole
codon fits; a codon holding anything but A/C/G/T is dropped without shifting the frame; stops give '*'. A frame
is kept when its protein has no '*' and is not empty (the original drops empty proteins after identification; we
drop them here so every frame handed on can be embedded). The kept frame's nucleotide sequence is the strand
from the frame offset, 3*len(protein) + 1 bases long (one base more than the codons: the original's quirk, which
the trained models have seen), clipped at the end of the chunk.

Why NumPy: a per-codon Python loop costs ~1,000 dict lookups per 500 bp chunk. Here the chunks of a batch are the
rows of a (chunks x width) array of base codes (A,C,G,T -> 0..3, anything else -> 4, rows padded with 4), one
array per strand. The codon starting at column c gets the key 16a + 4b + c, plus 64 when any of its bases is not
ACGT, so keys >= 64 are dropped codons; padding makes codons that run past a chunk's end dropped the same way,
which is what "while a whole codon fits" means. Viewing the key row as (codons x 3) puts the three frames of a
strand side by side, so stop and length checks are plain reductions. Letter-to-code and complement mappings use
``bytes.translate`` (several times faster than NumPy fancy indexing for 256-entry tables).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FRAME_SUFFIXES = ("F1", "F2", "F3", "R1", "R2", "R3")

_BASES = "TCAG"
_STANDARD_CODE = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
STANDARD_CODON_TABLE = {
    a + b + c: _STANDARD_CODE[16 * i + 4 * j + k]
    for i, a in enumerate(_BASES)
    for j, b in enumerate(_BASES)
    for k, c in enumerate(_BASES)
}


def _byte_table(mapping: dict[str, int], default: int | None) -> bytes:
    """A 256-byte table for bytes.translate: letters in ``mapping`` map to their value, others to ``default``
    (or to themselves when ``default`` is None)."""
    table = bytearray(range(256)) if default is None else bytearray([default] * 256)
    for letter, value in mapping.items():
        table[ord(letter)] = value
    return bytes(table)


# Letter -> base code; either case, since the original upper-cases each chunk first. The reverse-strand table
# maps each letter to its complement's code.
_CODE = _byte_table({b: i % 4 for i, b in enumerate("ACGTacgt")}, 4)
_COMPLEMENT_CODE = _byte_table({b: 3 - i % 4 for i, b in enumerate("ACGTacgt")}, 4)
# Letters written to identified_nucleotide.fa: the upper-cased strand; the complement only touches A, C, G, T.
_UPPER = _byte_table({chr(c): c - 32 for c in range(ord("a"), ord("z") + 1)}, None)
_UPPER_COMPLEMENT = _byte_table(
    {chr(c): c - 32 for c in range(ord("a"), ord("z") + 1)}
    | {x: ord(y) for x, y in zip("ACGTacgt", "TGCATGCA")},
    None,
)

# Codon key -> amino acid letter (keys >= 64 are dropped codons and never looked up).
_AMINO = np.zeros(128, dtype=np.uint8)
for _codon, _aa in STANDARD_CODON_TABLE.items():
    _AMINO[sum(4 ** (2 - i) * "ACGT".index(x) for i, x in enumerate(_codon))] = ord(_aa)
_STOP_KEYS = [np.uint8(k) for k in np.flatnonzero(_AMINO == ord("*"))]  # TAA, TAG, TGA
_DROPPED = np.uint8(64)


class SixFrames(NamedTuple):
    """Result for B chunks. ``kept[b, f]`` says whether frame f (0..5 = F1..R3) of chunk b is kept; the kept
    frames, in chunk-then-frame order, have proteins ``proteins`` (concatenated bytes, lengths
    ``protein_lengths``) and nucleotide slices ``nucleotides`` (lengths ``nucleotide_lengths``)."""

    kept: np.ndarray
    proteins: bytes
    protein_lengths: np.ndarray
    nucleotides: bytes
    nucleotide_lengths: np.ndarray


def _rows(values: bytes, starts: np.ndarray, lengths: np.ndarray, width: int, fill: int) -> np.ndarray:
    """(len(starts), width) array: row b is values[starts[b] : starts[b] + lengths[b]] padded with ``fill``."""
    padded = np.frombuffer(values + bytes([fill]) * width, dtype=np.uint8)
    rows = sliding_window_view(padded, width)[starts]  # a gather of whole rows, no per-element index arrays
    short = np.flatnonzero(lengths < width)  # usually only the last chunks of records and short reads
    if len(short):
        rows[short] = np.where(np.arange(width) < lengths[short, None], rows[short], np.uint8(fill))
    return rows


def _strand_keys(codes: np.ndarray, n_codons: int, out: np.ndarray) -> None:
    """Codon keys of a (B, >= 3*n_codons + 2) code array into ``out`` (B, 3, n_codons): [b, o, m] is codon m of
    frame offset o."""
    value = codes & np.uint8(3)
    not_acgt = codes & np.uint8(4)
    end = 3 * n_codons
    key = (value[:, :end] << 4) | (value[:, 1 : end + 1] << 2) | value[:, 2 : end + 2]
    key |= (not_acgt[:, :end] | not_acgt[:, 1 : end + 1] | not_acgt[:, 2 : end + 2]) << 4
    # Column 3m + o is codon m of frame o: a (codons x 3) view, transposed so each frame is contiguous for the
    # reductions below (NumPy reduces slowly over a middle axis).
    out[:] = key.reshape(len(codes), n_codons, 3).transpose(0, 2, 1)


def identify_frames(seq: bytes, starts: np.ndarray, lengths: np.ndarray) -> SixFrames:
    """Six-frame identification of the chunks ``seq[starts[b] : starts[b] + lengths[b]]`` (all lengths > 0)."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_chunks = len(starts)
    if n_chunks == 0:
        none = np.zeros(0, dtype=np.int64)
        return SixFrames(np.zeros((0, 6), dtype=bool), b"", none, b"", none)
    span_start = int(starts.min())  # work on the part of `seq` these chunks cover
    seq = seq[span_start : int((starts + lengths).max())]
    starts = starts - span_start
    rc_starts = len(seq) - starts - lengths  # where each chunk's reverse complement starts in rc(seq)
    width = int(lengths.max())
    n_codons = width // 3  # codons of frame 1 of the longest chunk; shorter frames end in dropped codons

    keys = np.empty((n_chunks, 6, n_codons), dtype=np.uint8)  # frames F1 F2 F3 R1 R2 R3
    row_width = 3 * n_codons + 2
    _strand_keys(_rows(seq.translate(_CODE), starts, lengths, row_width, 4), n_codons, keys[:, :3])
    _strand_keys(_rows(seq.translate(_COMPLEMENT_CODE)[::-1], rc_starts, lengths, row_width, 4), n_codons, keys[:, 3:])
    is_stop = keys == _STOP_KEYS[0]
    for stop in _STOP_KEYS[1:]:
        is_stop |= keys == stop
    protein_len = np.count_nonzero(keys < _DROPPED, axis=2)
    kept = ~is_stop.any(axis=2) & (protein_len > 0)

    kept_keys = keys[kept]  # kept frames in chunk-then-frame order, the original's output order
    chunk_of, frame_of = np.nonzero(kept)
    is_reverse = frame_of >= 3
    proteins = _AMINO[kept_keys[kept_keys < _DROPPED]].tobytes()
    protein_lengths = protein_len[kept]

    # Nucleotide slices: rows of the upper-cased forward letters followed by the upper-cased reverse complement.
    offset = frame_of % 3
    nt_len = np.minimum(3 * protein_lengths + 1, lengths[chunk_of] - offset)
    letters = seq.translate(_UPPER) + seq.translate(_UPPER_COMPLEMENT)[::-1]
    row_start = np.where(is_reverse, len(seq) + rc_starts[chunk_of], starts[chunk_of]) + offset
    padded = np.frombuffer(letters + bytes(width + 1), dtype=np.uint8)
    rows = sliding_window_view(padded, width + 1)[row_start]
    nucleotides = rows[np.arange(width + 1) < nt_len[:, None]].tobytes()
    return SixFrames(kept, proteins, protein_lengths, nucleotides, nt_len)
