"""DNABERT-S (DNABERT-2 / MosaicBERT architecture), written from MODELS.md §2; never trust_remote_code.

  forward_padded(ids[B, L], mask[B, L])          -> hidden[B, L, H]  reference, eager fp32 like the original
  forward_packed(ids[T], cu_seqlens, max_seqlen) -> hidden[T, H]     ALiBi distances inside each sequence only
Embeddings: LN(word[ids] + token_type[0]) (no positions). Layers: fused Wqkv, symmetric ALiBi, post-LN,
gated-GELU MLP (gated_layers has no bias). The pooler is not needed and not loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from virnucpro.errors import ModelFormatError
from virnucpro.models import loading
from virnucpro.models.attention import alibi_slopes

# MosaicBERT's additive bias for masked keys (exp underflows to exactly 0 in fp32).
MASKED_KEY_BIAS = -10000.0


@dataclass(frozen=True)
class DnabertConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


def alibi_bias(slopes: torch.Tensor, length: int) -> torch.Tensor:
    """[H, L, L] with bias[h, i, j] = -slope_h * |j - i| (symmetric, fp32)."""
    pos = torch.arange(length, device=slopes.device)
    return -slopes[:, None, None] * (pos[None, :] - pos[:, None]).abs()[None].float()


class DnabertLayer(nn.Module):
    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        h = cfg.hidden_size
        self.num_heads, self.head_dim, self.inter = cfg.num_heads, cfg.head_dim, cfg.intermediate_size
        self.Wqkv = nn.Linear(h, 3 * h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.gated = nn.Linear(h, 2 * cfg.intermediate_size, bias=False)
        self.wo = nn.Linear(cfg.intermediate_size, h)
        self.mlp_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)

    def forward(self, x, attend):
        """x [..., H]; attend(q, k, v) maps [..., heads, D] triples to [..., heads, D]."""
        q, k, v = self.Wqkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).unbind(-3)
        x = self.attn_norm(self.attn_out(attend(q, k, v).flatten(-2)) + x)
        g = self.gated(x)
        y = F.gelu(g[..., : self.inter]) * g[..., self.inter :]
        return self.mlp_norm(self.wo(y) + x)


class DNABERT(nn.Module):
    def __init__(self, cfg: DnabertConfig):
        super().__init__()
        self.cfg = cfg
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.emb_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(DnabertLayer(cfg) for _ in range(cfg.num_layers))
        self.register_buffer("slopes", torch.tensor(alibi_slopes(cfg.num_heads)), persistent=False)
        self.is_test_model = False

    @property
    def hidden_size(self) -> int:
        return self.cfg.hidden_size

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        # Token type 0 for every token (the original passes no token_type_ids).
        return self.emb_norm(self.word_embeddings(ids) + self.token_type_embeddings.weight[0])

    def forward_padded(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = torch.ones_like(ids) if mask is None else mask
        bias = alibi_bias(self.slopes, ids.shape[1])[None] + (1.0 - mask.float())[:, None, None, :] * MASKED_KEY_BIAS
        scale = self.cfg.head_dim**-0.5

        def attend(q, k, v):  # [B, L, heads, D]
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) * scale + bias
            return torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v)

        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, attend)
        return x

    def forward_packed(self, ids: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        # Linear layers run on the packed tokens; attention re-pads each sequence around the kernel (MosaicBERT's
        # own layout), so ALiBi distances and softmax never cross a sequence boundary. The padded layout and the
        # ALiBi + padding bias are built once per batch and shared by all layers (virnucpro.models.attention).
        from virnucpro.models.attention import alibi_attention

        def attend(q, k, v):  # [T, heads, D]
            return alibi_attention(q, k, v, cu_seqlens, max_seqlen, self.slopes)

        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, attend)
        return x


# ---------------------------------------------------------------------------------------------- loading
_LAYER_NAMES = {  # ours → HF (BertModel.save_pretrained) suffix under encoder.layer.<i>.
    "Wqkv": "attention.self.Wqkv",
    "attn_out": "attention.output.dense",
    "attn_norm": "attention.output.LayerNorm",
    "gated": "mlp.gated_layers",
    "wo": "mlp.wo",
    "mlp_norm": "mlp.layernorm",
}
_TOP_NAMES = {
    "word_embeddings.weight": "embeddings.word_embeddings.weight",
    "token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
    "emb_norm.weight": "embeddings.LayerNorm.weight",
    "emb_norm.bias": "embeddings.LayerNorm.bias",
}


def hf_names(cfg: DnabertConfig) -> dict[str, str]:
    names = dict(_TOP_NAMES)
    for i in range(cfg.num_layers):
        for ours, ext in _LAYER_NAMES.items():
            for p in ("weight",) if ours == "gated" else ("weight", "bias"):
                names[f"layers.{i}.{ours}.{p}"] = f"encoder.layer.{i}.{ext}.{p}"
    return names


def config_from_json(path: Path) -> tuple[DnabertConfig, dict]:
    conf = loading.read_json(path)
    try:
        cfg = DnabertConfig(
            vocab_size=int(conf["vocab_size"]), hidden_size=int(conf["hidden_size"]),
            num_layers=int(conf["num_hidden_layers"]), num_heads=int(conf["num_attention_heads"]),
            intermediate_size=int(conf["intermediate_size"]),
            layer_norm_eps=float(conf.get("layer_norm_eps", 1e-12)),
            type_vocab_size=int(conf.get("type_vocab_size", 2)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(path, f"missing or bad BERT config field ({exc})") from exc
    loading.require(cfg.hidden_size % cfg.num_heads == 0, path, "hidden_size not divisible by the heads")
    return cfg, conf


@dataclass
class DnabertCheckpoint:
    """An opened, shape-checked DNABERT-S directory whose tensors are not read yet."""

    path: Path
    cfg: DnabertConfig
    weights: loading.Weights
    sources: dict[str, str]  # our parameter → HF tensor name
    flagged: bool


def open_dnabert(directory: str | Path) -> DnabertCheckpoint:
    """config.json + the weights' names and shapes, checked against the config; no tensor data is read."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFormatError(directory, "expected a DNABERT-S model directory (config.json + weights)")
    cfg, conf = config_from_json(directory / "config.json")
    state = loading.strip_prefix(loading.load_hf_state_dict(directory), "bert.")
    sources = hf_names(cfg)
    for name, ext in sources.items():
        loading.require(ext in state, directory, f"missing parameter {ext!r}: not a DNABERT-S (MosaicBERT) checkpoint")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in DNABERT(cfg).named_parameters()}
    for name, shape in expected.items():
        got = state.shape(sources[name])
        loading.require(got == shape, directory, f"parameter {name} has shape {got}, expected {shape}")
    return DnabertCheckpoint(directory, cfg, state, sources, bool(conf.get(loading.TEST_MODEL_FLAG)))


def load_dnabert(directory: str | Path, device="cpu", dtype: torch.dtype | None = torch.float32) -> DNABERT:
    """Load DNABERT-S from an HF directory (config.json + pytorch_model.bin or model.safetensors) onto `device`,
    parameters in `dtype` (default: the fp32 CPU reference)."""
    return build_dnabert(open_dnabert(directory), device, dtype)


def build_dnabert(ckpt: DnabertCheckpoint, device="cpu", dtype: torch.dtype | None = torch.float32) -> DNABERT:
    """Parameters from the opened checkpoint to `device` in `dtype`, tensor by tensor; ALiBi slopes stay fp32."""
    device = torch.device(device)
    with torch.device("meta"):
        model = DNABERT(ckpt.cfg)
    ours = {name: loading.place(ckpt.weights[ext], device, dtype) for name, ext in ckpt.sources.items()}
    model.load_state_dict(ours, strict=True, assign=True)
    # a non-persistent buffer: rebuilt off the meta device
    model.slopes = torch.tensor(alibi_slopes(ckpt.cfg.num_heads)).to(device)
    model.is_test_model = loading.warn_if_test_model(ckpt.path, "DNABERT-S", ckpt.flagged)
    return model.eval()


def load_tokenizer(directory: str | Path):
    """The model's BPE tokenizer via the `tokenizers` library, with stored padding/truncation switched off."""
    from tokenizers import Tokenizer

    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise ModelFormatError(path, "no such file (DNABERT-S needs its tokenizer.json)")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception subclasses
        raise ModelFormatError(path, f"not a readable tokenizer.json ({exc})") from exc
    tok.no_padding()
    tok.no_truncation()
    # The special-token layout every DNABERT-S feature was computed with.
    for token, want in (("[UNK]", 0), ("[CLS]", 1), ("[SEP]", 2)):
        loading.require(tok.token_to_id(token) == want, path, f"{token} is not id {want}: not the DNABERT-S tokenizer")
    return tok


def tokenize(tokenizer, seq: str) -> list[int]:
    """[CLS] + BPE tokens + [SEP]; non-ACGT characters become [UNK] (the vocabulary has no normaliser)."""
    return tokenizer.encode(seq).ids
