"""Paired reads as one sample: both mates of every pair, in one FASTA, each under its own id.

A samplesheet row with ``fastq_1`` and ``fastq_2`` is one sample whose reads are the reads of both files; each mate
is classified on its own. Mates usually share an id (Illumina: ``@r7 1:N:0`` and ``@r7 2:N:0``), and ids must be
unique within a sample, so a mate's id gets ``/1`` or ``/2`` unless it already ends with it (``@r7/1``). Pairs are
written side by side (r7/1, r7/2, r8/1, ...) so that the pooled file follows the input order. The two files must
hold the same number of reads: anything else means a truncated or mismatched file, which is an input error.
"""

from __future__ import annotations

import itertools
import os

from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_open
from virnucpro.io.seqio import read_sequences, write_fasta


def mate_id(record_id: str, mate: int) -> str:
    suffix = f"/{mate}"
    return record_id if record_id.endswith(suffix) else record_id + suffix


def _pairs(fastq_1: str | os.PathLike, fastq_2: str | os.PathLike):
    missing = object()
    reads = itertools.zip_longest(read_sequences(fastq_1), read_sequences(fastq_2), fillvalue=missing)
    for n, (first, second) in enumerate(reads, start=1):
        if second is missing:
            raise InputError(fastq_2, f"has fewer reads than {fastq_1} (no mate for read {n}, {first[0]!r})")
        if first is missing:
            raise InputError(fastq_1, f"has fewer reads than {fastq_2} (no mate for read {n}, {second[0]!r})")
        yield (mate_id(first[0], 1), first[1])
        yield (mate_id(second[0], 2), second[1])


def pool_mates(fastq_1: str | os.PathLike, fastq_2: str | os.PathLike, out: str | os.PathLike) -> int:
    """Write both mates of every pair to ``out`` (FASTA, atomically); returns the number of records written.

    Ids are checked for uniqueness after the /1, /2 suffixes: two pairs with one id are refused, naming the files.
    """
    seen: dict[str, int] = {}

    def unique(pairs):
        for n, (rid, seq) in enumerate(pairs, start=1):
            if seen.setdefault(rid, n) != n:
                raise InputError(fastq_1, f"read id {rid!r} occurs twice among the mates of {fastq_1} and {fastq_2}")
            yield rid, seq

    with atomic_open(out, "w") as fh:
        return write_fasta(fh, unique(_pairs(fastq_1, fastq_2)))
