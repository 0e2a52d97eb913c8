"""Independent implementations that tests compare the package against, shared by the tests that need them."""

import math

import pytest
import torch

from virnucpro.models.esm2 import FAIRESM_ALLOW


def plain_mosaicbert(state: dict, conf: dict, ids: list[int]) -> torch.Tensor:
    """One sequence, loops over heads, explicit ALiBi matrix; names straight from the HF state dict."""
    h, n_heads, eps = conf["hidden_size"], conf["num_attention_heads"], conf["layer_norm_eps"]
    d = h // n_heads
    L = len(ids)

    def ln(x, prefix):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * state[prefix + ".weight"] + state[prefix + ".bias"]

    def gelu(x):
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))

    # slopes written out by hand for 12 heads (MODELS.md §2.3), so the rule in the module is checked too
    assert n_heads == 12
    slopes = [2 ** -1, 2 ** -2, 2 ** -3, 2 ** -4, 2 ** -5, 2 ** -6, 2 ** -7, 2 ** -8,
              2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]
    x = state["embeddings.word_embeddings.weight"][ids] + state["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")
    for i in range(conf["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        qkv = x @ state[p + "attention.self.Wqkv.weight"].T + state[p + "attention.self.Wqkv.bias"]
        heads = []
        for hd in range(n_heads):
            q = qkv[:, hd * d:(hd + 1) * d]
            k = qkv[:, h + hd * d:h + (hd + 1) * d]
            v = qkv[:, 2 * h + hd * d:2 * h + (hd + 1) * d]
            alibi = torch.tensor([[-slopes[hd] * abs(j - r) for j in range(L)] for r in range(L)])
            scores = q @ k.T / math.sqrt(d) + alibi
            heads.append(torch.softmax(scores, dim=-1) @ v)
        attn = torch.cat(heads, dim=-1)
        attn = attn @ state[p + "attention.output.dense.weight"].T + state[p + "attention.output.dense.bias"]
        x = ln(attn + x, p + "attention.output.LayerNorm")
        g = x @ state[p + "mlp.gated_layers.weight"].T
        inter = conf["intermediate_size"]
        y = gelu(g[:, :inter]) * g[:, inter:]
        y = y @ state[p + "mlp.wo.weight"].T + state[p + "mlp.wo.bias"]
        x = ln(y + x, p + "mlp.layernorm")
    return x


def fairesm_model(path):
    """fair-esm's own ESM2 with the weights of an .esm_pt file, and its alphabet (skips without fair-esm)."""
    esm_pkg = pytest.importorskip("esm")
    from esm.model.esm2 import ESM2 as FairESM2

    # fair-esm's own loader would unpickle without an allow-list; load the file ourselves, safely
    with torch.serialization.safe_globals(FAIRESM_ALLOW):
        data = torch.load(path, weights_only=True, map_location="cpu")
    cfg = data["cfg"]["model"]
    model = FairESM2(num_layers=cfg.encoder_layers, embed_dim=cfg.encoder_embed_dim,
                     attention_heads=cfg.encoder_attention_heads,
                     alphabet=esm_pkg.data.Alphabet.from_architecture("ESM-1b"), token_dropout=cfg.token_dropout)
    # fair-esm's own prefix strip (pretrained._load_model_and_alphabet_core_v2)
    state = {k.removeprefix("encoder.sentence_encoder.").removeprefix("encoder."): v for k, v in data["model"].items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) == {"contact_head.regression.weight", "contact_head.regression.bias"}
    assert not unexpected
    return model.eval(), esm_pkg.data.Alphabet.from_architecture("ESM-1b")
