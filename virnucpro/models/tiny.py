"""Tiny random-weight models written in exactly the real file formats, for tests and dry runs.

    esm2_tiny.pt          fair-esm layout: {"model": state dict with encoder.sentence_encoder./encoder. prefixes,
                          "cfg": {"model": argparse.Namespace(...)}}
    esm2_tiny_hf/         HF EsmForMaskedLM: config.json + model.safetensors (keys prefixed "esm.")
    dnabert_s_tiny/       config.json like DNABERT-S's, pytorch_model.bin (torch.save of the state dict, as HF
                          does), tokenizer.json (BPE, [UNK]0 [CLS]1 [SEP]2 [PAD]3 [MASK]4 A5 C6 G7 T8)
    classifier_tiny.pth   the MLP pickled as a whole `__main__.MLPClassifier` module, like train.py
    TEST_MODELS.txt       marker: loaders log a WARNING for anything loaded from here

The classifier's input width is the encoders' feature widths summed, so the whole pipeline runs with these.
Weights are seeded, so every call writes the same numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from virnucpro.models import loading
from virnucpro.models.dnabert import DNABERT, DnabertConfig, hf_names
from virnucpro.models.esm2 import ESM2, VOCAB_SIZE, Esm2Config, to_external_state

TINY_ESM = Esm2Config(num_layers=3, embed_dim=32, num_heads=4, ffn_dim=128)
TINY_DNABERT_LAYERS, TINY_DNABERT_HIDDEN, TINY_DNABERT_HEADS, TINY_DNABERT_INTER = 2, 48, 12, 96
TINY_CLASSIFIER_HIDDEN = 16
SEED = 20250224


@dataclass
class TinyModels:
    esm_pt: Path
    esm_hf: Path
    dnabert: Path
    classifier: Path

    def __getitem__(self, key):  # also usable as a dict: tiny_models["esm_pt"]
        return getattr(self, key)


def write_test_models(outdir: str | Path) -> TinyModels:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    paths = TinyModels(out / "esm2_tiny.pt", out / "esm2_tiny_hf", out / "dnabert_s_tiny", out / "classifier_tiny.pth")
    esm = _randomize(ESM2(TINY_ESM), gen)
    # The real buffer was rounded to fp16 in training; mimic that so "use the stored inv_freq" is testable.
    esm.inv_freq.copy_(esm.inv_freq.half().float())
    lm_head = _lm_head(TINY_ESM.embed_dim, gen)
    _write_esm_pt(esm, lm_head, paths.esm_pt)
    _write_esm_hf(esm, lm_head, paths.esm_hf)
    vocab = _write_dnabert(paths.dnabert, gen)
    _write_classifier(paths.classifier, _features_width(paths), gen)
    (out / loading.TEST_MODEL_MARKER).write_text(
        "Models in this directory have random weights (virnucpro make-test-models).\n"
        "Their outputs mean nothing; use them only to test the software.\n"
        f"ESM-2: {TINY_ESM}\nDNABERT-S: {TINY_DNABERT_LAYERS} layers, hidden {TINY_DNABERT_HIDDEN}, "
        f"{TINY_DNABERT_HEADS} heads, vocab {vocab}\n"
    )
    return paths


def _features_width(paths: TinyModels) -> int:
    """The classifier's input width: every encoder's feature width, read back from the files just written."""
    from virnucpro.models.encoders import ENCODERS, model_paths

    files = model_paths(paths.esm_pt, paths.dnabert)
    return sum(spec.width(spec.open(files[spec.name])) for spec in ENCODERS)


@torch.no_grad()
def _randomize(model: nn.Module, gen: torch.Generator) -> nn.Module:
    """Weights far enough from init defaults that attention, LayerNorm and biases all matter in tests."""
    for name, p in model.named_parameters():
        if p.ndim == 2:
            p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]) * (4.0 if "embed" in name else 1.5))
        elif "norm" in name and name.endswith("weight"):
            p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
        else:
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _lm_head(e: int, gen) -> dict[str, torch.Tensor]:
    """The LM head the real checkpoints carry (we never use it, loaders must skip it)."""
    return {
        "dense.weight": torch.randn(e, e, generator=gen) / math.sqrt(e), "dense.bias": torch.zeros(e),
        "layer_norm.weight": torch.ones(e), "layer_norm.bias": torch.zeros(e), "bias": torch.zeros(VOCAB_SIZE),
    }


def _write_esm_pt(esm: ESM2, lm_head: dict, path: Path) -> None:
    state = {f"encoder.sentence_encoder.{k}": v for k, v in to_external_state(esm, "fairesm").items()}
    state["encoder.lm_head.weight"] = esm.embed_tokens.weight.detach().clone()  # tied to the embedding
    state.update({f"encoder.lm_head.{k}": v for k, v in lm_head.items()})
    cfg = esm.cfg
    model_args = argparse.Namespace(  # the fields fair-esm 2.0.0 reads, plus a few fairseq neighbours
        arch="esm2", encoder_layers=cfg.num_layers, encoder_embed_dim=cfg.embed_dim,
        encoder_ffn_embed_dim=cfg.ffn_dim, encoder_attention_heads=cfg.num_heads, token_dropout=True,
        max_positions=1024, dropout=0.0, attention_dropout=0.0,
    )
    torch.save({"model": state, "cfg": {"model": model_args, loading.TEST_MODEL_FLAG: True}}, path)


def _write_esm_hf(esm: ESM2, lm_head: dict, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    cfg = esm.cfg
    state = {f"esm.{k}": v.contiguous() for k, v in to_external_state(esm, "hf").items()}
    state["lm_head.decoder.weight"] = esm.embed_tokens.weight.detach().clone()
    state.update({f"lm_head.{k}": v.clone() for k, v in lm_head.items()})
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["EsmForMaskedLM"], "model_type": "esm", "vocab_size": VOCAB_SIZE,
        "hidden_size": cfg.embed_dim, "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.ffn_dim, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 1026, "layer_norm_eps": 1e-5,
        "pad_token_id": 1, "mask_token_id": 32, "position_embedding_type": "rotary", "token_dropout": True,
        "emb_layer_norm_before": False, "is_folding_model": False, "initializer_range": 0.02,
        "torch_dtype": "float32", loading.TEST_MODEL_FLAG: True,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")


_MERGES = ["A A", "T T", "G G", "C C", "AA A", "TT T", "G C", "C A", "T G", "AA AA"]


def _tokenizer_json(directory: Path) -> int:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + list("ACGT"))}
    merges = [tuple(m.split()) for m in _MERGES]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="[UNK]", fuse_unk=False))
    tok.add_special_tokens(specials)
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    # The real file stores fixed padding/truncation too; our loader must switch them off.
    tok.enable_truncation(2000)
    tok.enable_padding(length=2000, pad_id=3, pad_token="[PAD]")
    tok.save(str(directory / "tokenizer.json"))
    return len(vocab)


def _write_dnabert(directory: Path, gen) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    vocab_size = _tokenizer_json(directory)
    cfg = DnabertConfig(vocab_size, TINY_DNABERT_HIDDEN, TINY_DNABERT_LAYERS, TINY_DNABERT_HEADS, TINY_DNABERT_INTER)
    model = _randomize(DNABERT(cfg), gen)
    ours = model.state_dict()
    state = {ext: ours[name].clone() for name, ext in hf_names(cfg).items()}
    h = cfg.hidden_size
    state["pooler.dense.weight"] = torch.randn(h, h, generator=gen) / math.sqrt(h)
    state["pooler.dense.bias"] = torch.zeros(h)
    torch.save(state, directory / "pytorch_model.bin")
    config = {
        "_name_or_path": "zhihan1996/DNABERT-2-117M", "alibi_starting_size": 512, "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.0,
        "auto_map": {"AutoConfig": "configuration_bert.BertConfig", "AutoModel": "bert_layers.BertModel"},
        "classifier_dropout": None, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": h,
        "initializer_range": 0.02, "intermediate_size": cfg.intermediate_size, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": cfg.num_heads,
        "num_hidden_layers": cfg.num_layers, "pad_token_id": 0, "position_embedding_type": "absolute",
        "torch_dtype": "float32", "type_vocab_size": 2, "use_cache": True, "vocab_size": vocab_size,
        loading.TEST_MODEL_FLAG: True,
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return vocab_size


class _TrainPyMLP(nn.Module):
    """The shape of train.py's MLPClassifier; pickled under the name `__main__.MLPClassifier`."""

    def __init__(self, input_dim, hidden_dim, num_class):
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        return self.output_layer(self.dropout(torch.relu(self.bn1(self.hidden_layer(x)))))


def _write_classifier(path: Path, input_dim: int, gen) -> None:
    model = _randomize(_TrainPyMLP(input_dim, TINY_CLASSIFIER_HIDDEN, 2), gen)
    with torch.no_grad():
        model.bn1.running_mean.copy_(0.5 * torch.randn(TINY_CLASSIFIER_HIDDEN, generator=gen))
        model.bn1.running_var.copy_(0.5 + torch.rand(TINY_CLASSIFIER_HIDDEN, generator=gen))
        model.bn1.num_batches_tracked.fill_(1000)
    setattr(model, loading.TEST_MODEL_FLAG, True)
    save_as_main_class(model, "MLPClassifier", path)


def save_as_main_class(module: nn.Module, class_name: str, path: Path) -> None:
    """torch.save(module) with its class recorded as `__main__.<class_name>`, like a script's own class.

    pickle checks that the recorded name resolves to the same class, so bind it in __main__ for the save only.
    """
    cls = type(class_name, (type(module),), {"__module__": "__main__"})
    main = sys.modules["__main__"]
    had, old = hasattr(main, class_name), getattr(main, class_name, None)
    setattr(main, class_name, cls)
    try:
        module.__class__ = cls
        torch.save(module, path)
    finally:
        module.__class__ = cls.__mro__[1]
        if had:
            setattr(main, class_name, old)
        else:
            delattr(main, class_name)
