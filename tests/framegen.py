"""Random frames for tests: the one way tests make frames that no real input gave them."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

from virnucpro.io.frames import Frame

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def frame_id(i: int) -> str:
    return f"seq{i}_chunk_1F{1 + i % 3}"


def random_frames(n: int, seed: int = 0, lengths: tuple[int, int] = (20, 170), ids: Callable[[int], str] = frame_id,
                  n_every: int = 0) -> list[Frame]:
    """`n` frames from a generator seeded with `seed`: proteins of a length drawn from `lengths` (both ends
    included), nucleotides of 3 x that + 1 bases; `ids(i)` names frame i. With `n_every` k, frames 0, k, 2k, ...
    also have N among their bases."""
    rng = random.Random(seed)
    frames = []
    for i in range(n):
        aa = rng.randint(*lengths)
        bases = "ACGTN" if n_every and i % n_every == 0 else "ACGT"
        nucleotide = "".join(rng.choice(bases) for _ in range(3 * aa + 1))
        protein = "".join(rng.choice(AMINO_ACIDS) for _ in range(aa))
        frames.append(Frame(ids(i), nucleotide, protein))
    return frames


def write_fasta_pair(frames: list[Frame], folder: Path) -> tuple[Path, Path]:
    """The frames as the nucleotide and protein FASTA files that preprocess writes; returns their paths."""
    nucleotide, protein = folder / "nt.fa", folder / "prot.faa"
    nucleotide.write_text("".join(f">{f.id}\n{f.nucleotide}\n" for f in frames))
    protein.write_text("".join(f">{f.id}\n{f.protein}\n" for f in frames))
    return nucleotide, protein
