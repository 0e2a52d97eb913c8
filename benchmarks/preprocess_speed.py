#!/usr/bin/env python3
"""Preprocessing speed on one core: ``preprocess_file`` against a pure-Python re-creation of the original.

Generates N synthetic reads (random bases with a small share of N and lower case, wrapped at 60 columns) of each
read length, then times, in the same process and on the same files:

  baseline   the original's algorithm written plainly (line-by-line FASTA parsing, per-chunk overlap arithmetic,
             per-codon dictionary translation, per-frame string building), the way the published scripts work
  virnucpro  ``virnucpro.preprocess.preprocess_file`` (streaming reader, NumPy batch translation)

and checks that both wrote the same chunks and frames. Prints reads per CPU-second (best of --repeats) and the
ratio.

    OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python benchmarks/preprocess_speed.py --reads 50000
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from virnucpro.io.seqio import read_sequences
from virnucpro.preprocess.run import preprocess_file

# --- baseline: the original's preprocessing, re-written plainly in our own words ---------------------------------

_BASES = "TCAG"
_CODE = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
CODONS = {a + b + c: _CODE[16 * i + 4 * j + k] for i, a in enumerate(_BASES) for j, b in enumerate(_BASES)
          for k, c in enumerate(_BASES)}
COMPLEMENT = {"A": "T", "T": "A", "C": "G", "G": "C"}


def baseline_parse(path):
    header, lines = None, []
    with open(path) as fh:
        for line in fh:
            line = line.rstrip()
            if line.startswith(">"):
                if header is not None:
                    yield header.split()[0], "".join(lines)
                header, lines = line[1:], []
            else:
                lines.append(line)
    if header is not None:
        yield header.split()[0], "".join(lines)


def baseline_chunks(seq, size):
    n = len(seq)
    k = -(-n // size)
    if k == 1:
        return [seq]
    surplus = k * size - n
    per_join = surplus // k
    extra = surplus - (k - 1) * per_join
    out, start = [], 0
    for j in range(k):
        out.append(seq[start:start + size])
        start += size - (per_join + 1 if j + 1 <= extra else per_join)
    return out


def baseline_translate(seq):
    protein = ""
    for i in range(0, len(seq) - 2, 3):
        aa = CODONS.get(seq[i:i + 3])
        if aa is not None:
            protein += aa
    return protein


def baseline_frames(chunk_name, seq):
    seq = seq.upper()
    rc = "".join(COMPLEMENT.get(b, b) for b in reversed(seq))
    out = []
    for strand, tag in ((seq, "F"), (rc, "R")):
        for offset in range(3):
            protein = baseline_translate(seq=strand[offset:])
            if "*" not in protein and protein:
                out.append((f"{chunk_name}{tag}{offset + 1}", strand[offset:offset + 3 * len(protein) + 1], protein))
    return out


def baseline_preprocess(path, size, outdir):
    outdir.mkdir(parents=True, exist_ok=True)
    with open(outdir / "chunked.fa", "w") as ch, open(outdir / "identified_nucleotide.fa", "w") as nt, \
            open(outdir / "identified_protein.faa", "w") as aa:
        for rid, seq in baseline_parse(path):
            for j, chunk in enumerate(baseline_chunks(seq, size), start=1):
                name = f"{rid}_chunk_{j}"
                ch.write(f">{name}\n" + "\n".join(chunk[i:i + 60] for i in range(0, len(chunk), 60)) + "\n")
                for fid, nuc, prot in baseline_frames(name, chunk):
                    nt.write(f">{fid}\n{nuc}\n")
                    aa.write(f">{fid}\n{prot}\n")


# --- workload and timing ------------------------------------------------------------------------------------------

def write_reads(path, n, length, rng):
    """Half the reads carry an open reading frame (no stop in frame 1), like the coding-dense genomes VirNucPro
    sees, so frames are kept and written; the rest are random. 0.5% N and 10% lower-case reads exercise the
    dropped-codon and upper-casing paths."""
    letters = "ACGT" * 50 + "N"
    sense = [c for c, aa in CODONS.items() if aa != "*"]
    with open(path, "w") as fh:
        for i in range(n):
            if i % 2:
                seq = "".join(rng.choices(letters, k=length))
            else:
                seq = "".join(rng.choices(sense, k=length // 3 + 1))[:length]
            if i % 10 == 0:
                seq = seq.lower()
            fh.write(f">read{i} synthetic\n" + "\n".join(seq[p:p + 60] for p in range(0, length, 60)) + "\n")


def timed(fn, *args):
    """CPU seconds of this process (user + system), not wall time: the figure stays meaningful when other work
    shares the machine. Everything here runs on one thread, so on an idle machine the two agree."""
    t0 = time.process_time()
    fn(*args)
    return time.process_time() - t0


def compare_readers(path, repeats):
    """Records/s of our reader and of dnaio and Biopython where installed (parsing only, best of ``repeats``)."""
    from virnucpro.io.seqio import read_raw_sequences

    with open(path, "rb") as fh:
        fmt = "fastq" if fh.read(1) == b"@" else "fasta"

    readers = {"virnucpro read_sequences (str)": lambda: read_sequences(path),
               "virnucpro read_raw_sequences (bytes)": lambda: read_raw_sequences(path)}
    try:
        import dnaio
        readers[f"dnaio {dnaio.__version__}"] = lambda: dnaio.open(path)
    except ImportError:
        pass
    try:
        import Bio
        from Bio import SeqIO
        from Bio.SeqIO.FastaIO import SimpleFastaParser
        from Bio.SeqIO.QualityIO import FastqGeneralIterator
        readers[f"Biopython {Bio.__version__} SeqIO.parse"] = lambda: SeqIO.parse(path, fmt)
        simple = SimpleFastaParser if fmt == "fasta" else FastqGeneralIterator
        readers[f"Biopython {Bio.__version__} {simple.__name__}"] = lambda: simple(open(path))
    except ImportError:
        pass
    for name, make in readers.items():
        best = min(timed(lambda make=make: sum(1 for _ in make())) for _ in range(repeats))
        n = sum(1 for _ in make())
        print(f"  {name:45s} {n / best:12,.0f} records/s ({best:.2f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=50_000)
    ap.add_argument("--read-lengths", type=int, nargs="+", default=[500, 150])
    ap.add_argument("--chunk-length", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    ap.add_argument("--fastq", action="store_true", help="also time the same reads given as FASTQ")
    ap.add_argument("--compare-readers", metavar="FASTA", help="only time FASTA parsers on this file")
    args = ap.parse_args()
    if args.compare_readers:
        compare_readers(args.compare_readers, args.repeats)
        return
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for read_length in args.read_lengths:
            path = tmp / f"reads_{read_length}.fa"
            write_reads(path, args.reads, read_length, rng)
            base = min(timed(baseline_preprocess, path, args.chunk_length, tmp / "base") for _ in range(args.repeats))
            ours = min(timed(preprocess_file, path, args.chunk_length, tmp / "ours") for _ in range(args.repeats))
            for name in ("chunked.fa", "identified_nucleotide.fa", "identified_protein.faa"):
                same = list(read_sequences(tmp / "base" / name)) == list(read_sequences(tmp / "ours" / name))
                assert same, f"{name} differs between baseline and virnucpro"
            frames = sum(1 for _ in read_sequences(tmp / "ours" / "identified_protein.faa"))
            print(f"{read_length} bp reads x {args.reads}, L={args.chunk_length}, {frames} frames kept: "
                  f"baseline {args.reads / base:,.0f} reads/s ({base:.2f} s), "
                  f"virnucpro {args.reads / ours:,.0f} reads/s ({ours:.2f} s), {base / ours:.1f}x")
            if args.fastq:  # the same reads as FASTQ (the original reads FASTA only, so no baseline)
                fastq = tmp / f"reads_{read_length}.fq"
                with open(fastq, "w") as fh:
                    for rid, seq in read_sequences(path):
                        fh.write(f"@{rid}\n{seq}\n+\n{'I' * len(seq)}\n")
                ours_fq = min(timed(preprocess_file, fastq, args.chunk_length, tmp / "fq") for _ in range(args.repeats))
                same = (tmp / "fq" / "identified_protein.faa").read_bytes() == \
                    (tmp / "ours" / "identified_protein.faa").read_bytes()
                assert same, "FASTQ input gave other frames than FASTA input"
                print(f"  same reads as FASTQ: virnucpro {args.reads / ours_fq:,.0f} reads/s ({ours_fq:.2f} s)")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
