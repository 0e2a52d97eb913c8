"""ESM-2 encoder (fair-esm semantics) with a padded reference forward and a packed forward.

Sizes come from the checkpoint. Weights load from a fair-esm `.pt` or an HF `EsmForMaskedLM`/`EsmModel`
directory (MODELS.md §1.6); only the encoder is kept (no LM or contact head).

  forward_padded(tokens[B, L])                      -> hidden[B, L, E]  fp32 reference, fair-esm step by step
  forward_packed(tokens[T], cu_seqlens, max_seqlen) -> hidden[T, E]     sequences laid end to end, no padding
Both return the final representation after `emb_layer_norm_after` (fair-esm `representations[num_layers]`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from virnucpro.errors import ModelFormatError
from virnucpro.models import loading

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- alphabet
# fair-esm's ESM-1b alphabet (MODELS.md §1.2): specials, then the residue letters from id 4.
CLS, PAD, EOS, UNK, MASK = 0, 1, 2, 3, 32
RESIDUES = "LAGVSERTIDPKQNFYMHWCXBUZO.-"
TOKEN_ID = {c: i + 4 for i, c in enumerate(RESIDUES)}
VOCAB_SIZE = 33
TOKEN_DROPOUT_SCALE = 1 - 0.15 * 0.8  # fair-esm's train-time mask ratio; applied in eval too (0.88)


def encode_protein(seq: str) -> list[int]:
    """`<cls>` + residues + `<eos>`; a character outside the alphabet is an error, never `<unk>`."""
    try:
        return [CLS] + [TOKEN_ID[c] for c in seq] + [EOS]
    except KeyError:
        pos = next(i for i, c in enumerate(seq) if c not in TOKEN_ID)
        raise ValueError(
            f"character {seq[pos]!r} at position {pos + 1} is not in the ESM-2 alphabet "
            f"(allowed: {RESIDUES})"
        ) from None


def encode_proteins(seqs: list[str]) -> list[list[int]]:
    out = []
    for n, seq in enumerate(seqs):
        try:
            out.append(encode_protein(seq))
        except ValueError as exc:
            raise ValueError(f"protein {n + 1}: {exc}") from None
    return out


def pad_tokens(encoded: list[list[int]]) -> torch.Tensor:
    """Right-pad encoded proteins with `<pad>` into [B, L] (fair-esm's batch layout)."""
    width = max(len(e) for e in encoded)
    return torch.tensor([e + [PAD] * (width - len(e)) for e in encoded], dtype=torch.long)


def pack_tokens(encoded: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Lay encoded proteins end to end: tokens[T], cu_seqlens[B+1] int32, max_seqlen."""
    lengths = [len(e) for e in encoded]
    cu = torch.zeros(len(encoded) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.int32), 0)
    tokens = torch.tensor([t for e in encoded for t in e], dtype=torch.long)
    return tokens, cu, max(lengths)


# ---------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class Esm2Config:
    num_layers: int
    embed_dim: int
    num_heads: int
    ffn_dim: int
    layer_norm_eps: float = 1e-5
    token_dropout: bool = True

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate in fp32 whatever the model dtype (fp16 rotary worsens agreement, MODELS.md §1.4)."""
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


def rotary_tables(positions: torch.Tensor, inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [..., 1, head_dim] (fp32) for integer positions, broadcast over heads."""
    freqs = positions.float()[..., None] * inv_freq.float()
    emb = torch.cat((freqs, freqs), dim=-1)[..., None, :]
    return emb.cos(), emb.sin()


def gelu_erf(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


class EsmLayer(nn.Module):
    """Pre-LN block: x + out_proj(attn(LN(x))), then x + fc2(gelu(fc1(LN(x))))."""

    def __init__(self, cfg: Esm2Config):
        super().__init__()
        e = cfg.embed_dim
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.attn_norm = nn.LayerNorm(e, eps=cfg.layer_norm_eps)
        self.qkv = nn.Linear(e, 3 * e)  # q, k, v stacked along the output features
        self.out_proj = nn.Linear(e, e)
        self.ffn_norm = nn.LayerNorm(e, eps=cfg.layer_norm_eps)
        self.fc1 = nn.Linear(e, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, e)

    def forward(self, x, cos, sin, attend):
        """x [..., E]; attend(q, k, v) maps [..., H, D] triples to [..., H, D]."""
        return attention_output_ffn(self, x, attend(*attention_inputs(self, x, cos, sin)))


# A layer's two dense halves, with the attention kernel between them. Plain functions taking the layer, so that
# torch.compile can fuse each half into one graph shared by every layer (the parameters are graph inputs);
# compiling whole layers works badly (the attention closure, and 36 layers unrolled into one huge graph).


def attention_inputs(layer: EsmLayer, x, cos, sin):
    """LN → fused q/k/v → rotary: the inputs of the layer's attention, [..., H, D] each."""
    q, k, v = layer.qkv(layer.attn_norm(x)).unflatten(-1, (3, layer.num_heads, layer.head_dim)).unbind(-3)
    q = q * layer.head_dim**-0.5  # scaled before the rotation, as fair-esm does
    return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v


def attention_output_ffn(layer: EsmLayer, x, attended):
    """Attention output projection + residual, then the feed-forward block + residual."""
    x = x + layer.out_proj(attended.flatten(-2))
    return x + layer.fc2(gelu_erf(layer.fc1(layer.ffn_norm(x))))


class ESM2(nn.Module):
    def __init__(self, cfg: Esm2Config):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(VOCAB_SIZE, cfg.embed_dim, padding_idx=PAD)
        self.layers = nn.ModuleList(EsmLayer(cfg) for _ in range(cfg.num_layers))
        self.final_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.layer_norm_eps)
        # The checkpoint's own inv_freq (rounded to fp16 in training); recomputing it drifts (MODELS §1.4).
        default = 1.0 / (10000 ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim))
        self.register_buffer("inv_freq", default)
        self.is_test_model = False

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    # -- reference: padded batch, fp32 softmax with a key padding mask, every step spelled out
    def forward_padded(self, tokens: torch.Tensor) -> torch.Tensor:
        pad = tokens.eq(PAD)
        x = self.embed_tokens(tokens)
        if self.cfg.token_dropout:
            is_mask = tokens.eq(MASK)
            x = x.masked_fill(is_mask[..., None], 0.0)
            observed = is_mask.sum(-1).to(x.dtype) / (~pad).sum(-1).to(x.dtype)
            x = x * TOKEN_DROPOUT_SCALE / (1 - observed)[:, None, None]
        x = x * (~pad)[..., None].to(x.dtype)
        cos, sin = rotary_tables(torch.arange(tokens.shape[1], device=tokens.device), self.inv_freq)
        key_pad = pad[:, None, None, :]  # [B, 1(H), 1(Lq), Lk]

        def attend(q, k, v):  # [B, L, H, D]
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k).float().masked_fill(key_pad, float("-inf"))
            probs = scores.softmax(-1).to(v.dtype)
            return torch.einsum("bhqk,bkhd->bqhd", probs, v)

        for layer in self.layers:
            x = layer(x, cos, sin, attend)
        return self.final_norm(x)

    # -- production: packed tokens, rotary positions restarting per sequence, varlen attention on GPU
    def forward_packed(self, tokens: torch.Tensor, cu_seqlens: torch.Tensor, max_seqlen: int) -> torch.Tensor:
        return self._packed(tokens, cu_seqlens, max_seqlen, attention_inputs, attention_output_ffn)

    def compiled_forward(self, compile: bool = True):
        """A `forward_packed` whose two dense halves per layer are torch.compile'd (falling back to eager where
        compiling fails), dynamic in the token count so new batch sizes do not recompile. Same arithmetic as
        `forward_packed`; `compile=False` gives the same code uncompiled (tests). Measured: fused rotary, GELU,
        LayerNorm and residuals take ESM-2 3B from ~48% to ~75% of the fp16 matmul ceiling on an H100
        (docs/BENCHMARKS.md). Its `compile_seconds()` is what the first calls took (tracing + compile)."""
        halves = [attention_inputs, attention_output_ffn]
        if compile:
            from virnucpro.models.compiled import CompiledOrEager

            halves = [CompiledOrEager(f, "ESM-2") for f in halves]

        def forward_packed(tokens, cu_seqlens, max_seqlen):
            return self._packed(tokens, cu_seqlens, max_seqlen, *halves)

        forward_packed.compile_seconds = lambda: sum(getattr(f, "first_call_seconds", 0.0) for f in halves)
        return forward_packed

    def _packed(self, tokens, cu_seqlens, max_seqlen, attn_in, attn_out) -> torch.Tensor:
        from virnucpro.models.attention import varlen_attention

        cu_seqlens = cu_seqlens.to(torch.int32)  # the varlen kernel's index type (a no-op for packed batches)
        if self.cfg.token_dropout:
            _check_no_mask_token(tokens)
        _, pos = segment_positions(cu_seqlens, tokens.shape[0])
        # Without <mask> tokens fair-esm's token-dropout factor is exactly 0.88 for every sequence.
        x = self.embed_tokens(tokens) * (TOKEN_DROPOUT_SCALE if self.cfg.token_dropout else 1.0)
        cos, sin = rotary_tables(pos, self.inv_freq)
        for layer in self.layers:
            q, k, v = attn_in(layer, x, cos, sin)
            # q is pre-scaled, so the kernel's scale is 1
            x = attn_out(layer, x, varlen_attention(q, k, v, cu_seqlens, max_seqlen, scale=1.0))
        return self.final_norm(x)


def _check_no_mask_token(tokens: torch.Tensor) -> None:
    if tokens.is_cuda:
        torch._assert_async(~tokens.eq(MASK).any(), "ESM-2 packed forward got a <mask> token")
    elif bool(tokens.eq(MASK).any()):
        raise ValueError("ESM-2 packed forward got a <mask> token (id 32); its 0.88 factor assumes none")


def segment_positions(cu_seqlens: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each packed token: its sequence index and its position inside that sequence (on device, no sync)."""
    cu = cu_seqlens.long()
    idx = torch.arange(total, device=cu.device)
    seq_of = torch.searchsorted(cu[1:], idx, right=True)
    return seq_of, idx - cu[seq_of]


# ---------------------------------------------------------------------------------------------- loading
# Our parameter names ← fair-esm names (after its prefix strip) and HF EsmModel names, per layer.
_LAYER_NAMES = {  # ours: (fair-esm, HF)
    "attn_norm": ("self_attn_layer_norm", "attention.LayerNorm"),
    "out_proj": ("self_attn.out_proj", "attention.output.dense"),
    "ffn_norm": ("final_layer_norm", "LayerNorm"),
    "fc1": ("fc1", "intermediate.dense"),
    "fc2": ("fc2", "output.dense"),
}
_QKV_NAMES = {"fairesm": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
              "hf": ("attention.self.query", "attention.self.key", "attention.self.value")}
_TOP_NAMES = {  # ours: (fair-esm, HF)
    "embed_tokens.weight": ("embed_tokens.weight", "embeddings.word_embeddings.weight"),
    "final_norm.weight": ("emb_layer_norm_after.weight", "encoder.emb_layer_norm_after.weight"),
    "final_norm.bias": ("emb_layer_norm_after.bias", "encoder.emb_layer_norm_after.bias"),
}


def external_names(cfg: Esm2Config, style: str) -> dict[str, str]:
    """ours → external parameter name for 'fairesm' or 'hf' (qkv excluded: it is split in three)."""
    col = 0 if style == "fairesm" else 1
    layer_prefix = "layers.{}." if style == "fairesm" else "encoder.layer.{}."
    names = {ours: ext[col] for ours, ext in _TOP_NAMES.items()}
    for i in range(cfg.num_layers):
        for ours, ext in _LAYER_NAMES.items():
            for p in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{p}"] = layer_prefix.format(i) + f"{ext[col]}.{p}"
    return names


def _sources(state: loading.Weights, cfg: Esm2Config, style: str, path) -> dict[str, list[str]]:
    """ours → the external tensor(s) it is made of (q/k/v: three, concatenated along the output features)."""
    sources = {}
    for name, ext in external_names(cfg, style).items():
        loading.require(ext in state, path, f"missing parameter {ext!r}: not an ESM-2 checkpoint of this shape")
        sources[name] = [ext]
    layer_prefix = "layers.{}." if style == "fairesm" else "encoder.layer.{}."
    for i in range(cfg.num_layers):
        for p in ("weight", "bias"):
            parts = [layer_prefix.format(i) + f"{n}.{p}" for n in _QKV_NAMES[style]]
            loading.require(all(n in state for n in parts), path, f"missing {parts[0]!r} (q/k/v projections)")
            sources[f"layers.{i}.qkv.{p}"] = parts
    return sources


def _stacked_shape(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    if len(shapes) == 1:
        return shapes[0]
    if any(not s or s[1:] != shapes[0][1:] for s in shapes):
        return None
    return (sum(s[0] for s in shapes),) + shapes[0][1:]


@dataclass
class Esm2Checkpoint:
    """An opened, shape-checked ESM-2 checkpoint whose tensors are not read yet."""

    path: Path
    cfg: Esm2Config
    weights: loading.Weights
    sources: dict[str, list[str]]  # our parameter → external tensor name(s)
    inv_freq: str | None  # external name of the stored rotary buffer, if any
    flagged: bool  # written by make-test-models


def _checked(path, cfg: Esm2Config, state: loading.Weights, style: str, inv_freq: str | None,
             flagged: bool) -> Esm2Checkpoint:
    sources = _sources(state, cfg, style, path)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ESM2(cfg).named_parameters()}
    for name, shape in expected.items():
        got = _stacked_shape([state.shape(n) for n in sources[name]])
        loading.require(got == shape, path, f"parameter {name} has shape {got}, expected {shape}")
    if inv_freq is not None:
        got = state.shape(inv_freq)
        loading.require(got == (cfg.head_dim // 2,), path, f"rotary inv_freq has shape {got}, expected "
                                                           f"{(cfg.head_dim // 2,)}")
    return Esm2Checkpoint(Path(path), cfg, state, sources, inv_freq, flagged)


def build_esm2(ckpt: Esm2Checkpoint, device="cpu", dtype: torch.dtype | None = torch.float32) -> ESM2:
    """Parameters straight from the (memory-mapped) file to `device` in `dtype`, one tensor at a time; the
    rotary buffer stays fp32 (fp16 positions drift, MODELS.md §1.4)."""
    device = torch.device(device)
    with torch.device("meta"):
        model = ESM2(ckpt.cfg)
    ours = {}
    for name, parts in ckpt.sources.items():
        placed = [loading.place(ckpt.weights[n], device, dtype) for n in parts]
        ours[name] = placed[0] if len(placed) == 1 else torch.cat(placed)
        del placed
    if ckpt.inv_freq is None:
        log.warning("%s: no stored rotary inv_freq; recomputing it (small drift vs the original)", ckpt.path)
        hd = ckpt.cfg.head_dim
        inv_freq = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
    else:
        inv_freq = ckpt.weights[ckpt.inv_freq]
    ours["inv_freq"] = loading.place(inv_freq, device, torch.float32)
    model.load_state_dict(ours, strict=True, assign=True)
    model.is_test_model = loading.warn_if_test_model(ckpt.path, "ESM-2", ckpt.flagged)
    return model.eval()


def open_esm2(path: str | Path) -> Esm2Checkpoint:
    """Open and shape-check a fair-esm `.pt` file or an HF model directory without reading its tensors."""
    path = Path(path)
    if path.is_dir():
        return _open_hf(path)
    if path.is_file():
        return _open_fairesm(path)
    raise ModelFormatError(path, "no such file or directory")


def load_esm2(path: str | Path, device="cpu", dtype: torch.dtype | None = torch.float32) -> ESM2:
    """Load ESM-2 from a fair-esm `.pt` file or an HF model directory onto `device`, parameters in `dtype`.

    The default (CPU, fp32) is the reference model. For the GPU pass the device and torch.float16: weights then
    go from the file to the GPU without an fp32 copy in host memory.
    """
    return build_esm2(open_esm2(path), device, dtype)


class _NamespaceStandIn:
    """What the unpickler builds instead of argparse.Namespace: a plain attribute bag, no code from the file."""


# fair-esm 2.0.0 reads cfg["model"].encoder_layers etc., i.e. an attribute object: argparse.Namespace
# from fairseq's training args (bytedance/Protenix#176 shows these files need an allow-list).
FAIRESM_ALLOW = [(_NamespaceStandIn, "argparse.Namespace")]


def _cfg_get(obj, key):
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _open_fairesm(path: Path) -> Esm2Checkpoint:
    data = loading.load_pickle_weights(path, allow=FAIRESM_ALLOW)
    loading.require(isinstance(data, dict) and "model" in data and "cfg" in data, path,
                    "not a fair-esm checkpoint (expected a dict with 'model' and 'cfg')")
    model_cfg = _cfg_get(data["cfg"], "model")
    fields = {k: _cfg_get(model_cfg, k) for k in
              ("encoder_layers", "encoder_embed_dim", "encoder_attention_heads", "token_dropout")}
    loading.require(all(fields[k] is not None for k in ("encoder_layers", "encoder_embed_dim",
                                                        "encoder_attention_heads")),
                    path, "fair-esm cfg['model'] lacks encoder_layers/encoder_embed_dim/encoder_attention_heads")
    state = data["model"]
    loading.require(isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()), path,
                    "'model' is not a state dict")
    # fair-esm's own prefix strip (pretrained._load_model_and_alphabet_core_v2)
    state = loading.Weights.of_tensors(state).renamed(
        lambda k: k.removeprefix("encoder.sentence_encoder.").removeprefix("encoder."))
    e, heads = int(fields["encoder_embed_dim"]), int(fields["encoder_attention_heads"])
    loading.require(e % heads == 0, path, "embed dim not divisible by the number of heads")
    fc1 = "layers.0.fc1.weight"
    cfg = Esm2Config(
        num_layers=int(fields["encoder_layers"]), embed_dim=e, num_heads=heads,
        ffn_dim=state.shape(fc1)[0] if fc1 in state else 4 * e,  # fair-esm: 4 * embed_dim
        token_dropout=True if fields["token_dropout"] is None else bool(fields["token_dropout"]),
    )
    inv_freq = "layers.0.self_attn.rot_emb.inv_freq"
    return _checked(path, cfg, state, "fairesm", inv_freq if inv_freq in state else None,
                    bool(_cfg_get(data["cfg"], loading.TEST_MODEL_FLAG)))


def _open_hf(directory: Path) -> Esm2Checkpoint:
    conf = loading.read_json(directory / "config.json")
    loading.require(conf.get("model_type", "esm") == "esm", directory / "config.json",
                    f"model_type is {conf.get('model_type')!r}, not 'esm'")
    loading.require(conf.get("position_embedding_type") == "rotary", directory / "config.json",
                    "not an ESM-2 config (position_embedding_type is not 'rotary')")
    loading.require(not conf.get("emb_layer_norm_before", False), directory / "config.json",
                    "emb_layer_norm_before=true is ESM-1b, not ESM-2")
    try:
        cfg = Esm2Config(
            num_layers=int(conf["num_hidden_layers"]), embed_dim=int(conf["hidden_size"]),
            num_heads=int(conf["num_attention_heads"]), ffn_dim=int(conf["intermediate_size"]),
            layer_norm_eps=float(conf.get("layer_norm_eps", 1e-5)), token_dropout=bool(conf.get("token_dropout")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(directory / "config.json", f"missing or bad ESM config field ({exc})") from exc
    loading.require(int(conf.get("vocab_size", VOCAB_SIZE)) == VOCAB_SIZE, directory / "config.json",
                    "vocab_size is not 33 (not the ESM-2 alphabet)")
    state = loading.strip_prefix(loading.load_hf_state_dict(directory), "esm.")
    # transformers 5.x keeps one model-level rotary buffer; 4.x one per layer (identical values).
    inv_freq = next((n for n in ("rotary_embeddings.inv_freq",
                                 "encoder.layer.0.attention.self.rotary_embeddings.inv_freq") if n in state), None)
    return _checked(directory, cfg, state, "hf", inv_freq, bool(conf.get(loading.TEST_MODEL_FLAG)))


def to_external_state(model: ESM2, style: str) -> dict[str, torch.Tensor]:
    """Our weights under fair-esm (after prefix strip) or HF EsmModel names (used by the test-model writer)."""
    state = model.state_dict()
    out = {ext: state[ours].clone() for ours, ext in external_names(model.cfg, style).items()}
    layer_prefix = "layers.{}." if style == "fairesm" else "encoder.layer.{}."
    for i in range(model.cfg.num_layers):
        for p in ("weight", "bias"):
            for name, part in zip(_QKV_NAMES[style], state[f"layers.{i}.qkv.{p}"].chunk(3)):
                out[layer_prefix.format(i) + f"{name}.{p}"] = part.clone()
        if style == "fairesm":
            out[f"layers.{i}.self_attn.rot_emb.inv_freq"] = state["inv_freq"].clone()
    if style == "hf":
        out["rotary_embeddings.inv_freq"] = state["inv_freq"].clone()
    return out

