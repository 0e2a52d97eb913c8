"""The encoders, one entry each: everything the embed step, the feature files and the classifier need to know
about a model, so that none of them names a model.

An encoder reads one frame field (`field`), fills one feature column (`name`, also its name in the telemetry and
the embed summary), and brings its loader
(open: names and shapes checked, tensors unread; build: the tensors onto a device in a dtype), its tokenizer (a
picklable callable, run in the loader workers), its pooling rule, its feature width and, optionally, a compiled
packed forward. `ENCODERS` lists them in the classifier's input order: the feature columns are concatenated in
this order (DNABERT-S then ESM-2, as VirNucPro's training script does).

This module imports neither torch nor tokenizers at import time: the shard step and the loader workers use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

# Pooling rules, as VirNucPro applies them (reference/MODELS.md §1.5 and §2.7); embed/packing.py implements them.
POOL_ALL = "all"  # DNABERT-S: mean over every token, [CLS] and [SEP] included
POOL_RESIDUES = "residues"  # ESM-2: mean over residues 1..min(1024, n), <cls>/<eos> excluded
ESM_POOL_MAX_RESIDUES = 1024


@dataclass(frozen=True)
class EncoderSpec:
    name: str  # feature column and telemetry name
    field: str  # the Frame attribute it embeds
    label: str  # for people: log lines and errors
    key: str  # its name in the checkpoint key (model checksums)
    role: str  # its entry in the run's model-check record (`virnucpro provenance`)
    pooling: str  # POOL_ALL or POOL_RESIDUES
    pooling_key: str  # the pooling rule as the checkpoint key spells it
    open: Callable[[Any], Any]  # path → opened checkpoint (names and shapes checked, no tensor read)
    build: Callable[[Any, Any, Any], Any]  # (opened, device, dtype) → model with forward_packed
    tokenizer: Callable[[Any], Callable[[Sequence[str]], list[np.ndarray]]]  # path → picklable tokenize
    width: Callable[[Any], int]  # opened checkpoint → feature width
    tokens_of_length: Callable[[np.ndarray | int], np.ndarray | int]  # sequence length → tokens (for sharding)
    tokens_estimated: bool  # tokens_of_length is an estimate, not the tokenizer's count
    facts: Callable[[Any], dict] = lambda ckpt: {}  # opened checkpoint → sizes for the provenance record
    # (path, opened checkpoint or None) → problems beyond the checkpoint's own (raises ModelFormatError)
    check: Callable[[Any, Any], list[str]] | None = None
    compiled: Callable[[Any], Callable] | None = None  # model → a torch.compile'd forward_packed


# ---------------------------------------------------------------------------------------------- ESM-2
class EsmTokenize:
    """Proteins → `<cls>` + residue ids + `<eos>` (picklable: runs in the loader workers).

    The alphabet is taken from models/esm2 when this is built (in the main process) and travels with the object,
    so a worker encodes without importing models/esm2, which imports torch (embed/workers.py); a sequence the
    table cannot encode goes to `encode_protein` itself, for its error."""

    def __init__(self):
        from virnucpro.models.esm2 import CLS, EOS, TOKEN_ID

        self.table, self.cls, self.eos = dict(TOKEN_ID), CLS, EOS

    def __call__(self, seqs):
        from virnucpro.embed.packing import SequenceError

        out = []
        for seq in seqs:
            try:
                out.append(np.asarray([self.cls, *map(self.table.__getitem__, seq), self.eos], dtype=np.int32))
            except KeyError:
                from virnucpro.models.esm2 import encode_protein

                try:
                    encode_protein(seq)
                except ValueError as exc:
                    raise SequenceError(f"protein {seq[:30]!r}: {exc}") from None
                raise
        return out


def _open_esm2(path):
    from virnucpro.models.esm2 import open_esm2

    return open_esm2(path)


def _build_esm2(ckpt, device, dtype):
    from virnucpro.models.esm2 import build_esm2

    return build_esm2(ckpt, device, dtype)


def esm_tokens_of_length(residues):
    return residues + 2  # <cls> residues <eos>; VirNucPro's proteins are never truncated


ESM2_SPEC = EncoderSpec(
    name="protein", field="protein", label="ESM-2", key="esm2", role="esm",
    pooling=POOL_RESIDUES, pooling_key=f"esm:{POOL_RESIDUES}<={ESM_POOL_MAX_RESIDUES}",
    open=_open_esm2, build=_build_esm2, tokenizer=lambda path: EsmTokenize(), width=lambda c: c.cfg.embed_dim,
    tokens_of_length=esm_tokens_of_length, tokens_estimated=False,
    facts=lambda c: {"esm_embed_dim": c.cfg.embed_dim, "esm_layers": c.cfg.num_layers},
    compiled=lambda model: model.compiled_forward(compile=True),
)


# ---------------------------------------------------------------------------------------------- DNABERT-S
class DnabertTokenize:
    """Nucleotides → DNABERT-S BPE ids with [CLS]/[SEP], exactly the tokenizer's own output."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, seqs):
        return [np.asarray(e.ids, dtype=np.int32) for e in self.tokenizer.encode_batch(list(seqs))]


def _open_dnabert(path):
    from virnucpro.models.dnabert import open_dnabert

    return open_dnabert(path)


def _build_dnabert(ckpt, device, dtype):
    from virnucpro.models.dnabert import build_dnabert

    return build_dnabert(ckpt, device, dtype)


def _dnabert_tokenizer(path):
    from virnucpro.models.dnabert import load_tokenizer

    return DnabertTokenize(load_tokenizer(path))


def _check_dnabert_tokenizer(path, ckpt) -> list[str]:
    from pathlib import Path

    from virnucpro.models.dnabert import load_tokenizer

    tokenizer = load_tokenizer(path)
    if ckpt is not None and tokenizer.get_vocab_size() > ckpt.cfg.vocab_size:
        return [f"{Path(path) / 'tokenizer.json'}: {tokenizer.get_vocab_size()} tokens, "
                f"but the model's vocabulary has {ckpt.cfg.vocab_size} (config.json vocab_size)"]
    return []


def dnabert_tokens_of_length(bases):
    # DNABERT-S's BPE averages ~4 bases per token on genomic DNA, plus [CLS] and [SEP]. An estimate is enough
    # to balance shards and keeps torch/tokenizers out of the shard step.
    return bases // 4 + 2


DNABERT_SPEC = EncoderSpec(
    name="nucleotide", field="nucleotide", label="DNABERT-S", key="dnabert_s", role="dnabert",
    pooling=POOL_ALL, pooling_key=f"dnabert:{POOL_ALL}",
    open=_open_dnabert, build=_build_dnabert, tokenizer=_dnabert_tokenizer, width=lambda c: c.cfg.hidden_size,
    tokens_of_length=dnabert_tokens_of_length, tokens_estimated=True,
    facts=lambda c: {"dnabert_hidden_size": c.cfg.hidden_size, "dnabert_layers": c.cfg.num_layers},
    check=_check_dnabert_tokenizer,
)


# ---------------------------------------------------------------------------------------------- the registry
ENCODERS: tuple[EncoderSpec, ...] = (DNABERT_SPEC, ESM2_SPEC)  # the classifier's input order
COLUMNS = tuple(spec.name for spec in ENCODERS)
BY_NAME = {spec.name: spec for spec in ENCODERS}
# The order in which the encoders are opened, checked and listed in the checkpoint key and the model-check record:
# last first, the order these had before the registry, so their outputs (and valid checkpoints) stay the same.
LISTED = tuple(reversed(ENCODERS))


def model_paths(esm_model, dnabert_model) -> dict:
    """The model files by encoder name: the one place the CLI options (--esm-model, --dnabert-model) meet the
    registry."""
    return {ESM2_SPEC.name: esm_model, DNABERT_SPEC.name: dnabert_model}


def checkpoint_pooling() -> str:
    """The pooling rules as the checkpoint key records them."""
    return ",".join(spec.pooling_key for spec in LISTED)
