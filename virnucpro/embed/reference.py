"""Reference features: plain fp32, one sequence per forward, the original's pooling (ORIGINAL_SEMANTICS §3-4).

This is what the fast packed engine is checked against; it favours obviousness over speed.
  nucleotide: DNABERT-S last hidden state, mean over ALL tokens, [CLS] and [SEP] included
  protein:    ESM-2 final representation, mean over residues 1..min(1024, len) (BOS/EOS excluded)
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from virnucpro.io.features import Features
from virnucpro.models.dnabert import tokenize
from virnucpro.models.esm2 import encode_protein

ESM_POOL_MAX_RESIDUES = 1024  # units.extract_esm: truncate_len = min(1024, len(seq)); the model sees it all


@torch.no_grad()
def reference_features(frames: Iterable, esm, dnabert, tokenizer, device: str = "cpu") -> Features:
    """frames: objects with .id, .nucleotide, .protein (virnucpro.io.frames.Frame)."""
    esm = esm.to(device).float().eval()
    dnabert = dnabert.to(device).float().eval()
    ids, nucleotide, protein = [], [], []
    for frame in frames:
        if not frame.protein:
            raise ValueError(f"frame {frame.id}: empty protein (the original drops these before embedding)")
        ids.append(frame.id)
        dna_ids = torch.tensor([tokenize(tokenizer, frame.nucleotide)], device=device)
        nucleotide.append(dnabert.forward_padded(dna_ids)[0].mean(0).cpu().numpy())
        try:
            tokens = torch.tensor([encode_protein(frame.protein)], device=device)
        except ValueError as exc:
            raise ValueError(f"frame {frame.id}: {exc}") from None
        rep = esm.forward_padded(tokens)[0]
        n = min(ESM_POOL_MAX_RESIDUES, len(frame.protein))
        protein.append(rep[1 : n + 1].mean(0).cpu().numpy())
    if not ids:
        return Features.empty({"nucleotide": dnabert.hidden_size, "protein": esm.embed_dim})
    return Features(ids, {"nucleotide": np.stack(nucleotide).astype(np.float32),
                          "protein": np.stack(protein).astype(np.float32)})
