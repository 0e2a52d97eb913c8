"""`virnucpro make-test-models`: the tiny models are deterministic, in the real layouts, and marked."""

import json

import torch

from virnucpro.cli import main
from virnucpro.models.esm2 import FAIRESM_ALLOW


def test_command_writes_the_same_models_twice(tmp_path, capsys):
    for d in ("a", "b"):
        assert main(["make-test-models", "--outdir", str(tmp_path / d)]) == 0
    assert "esm_pt" in capsys.readouterr().out
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "esm2_tiny_hf" / "model.safetensors").read_bytes() == (b / "esm2_tiny_hf" / "model.safetensors").read_bytes()
    assert (a / "dnabert_s_tiny" / "tokenizer.json").read_text() == (b / "dnabert_s_tiny" / "tokenizer.json").read_text()
    sa = torch.load(a / "dnabert_s_tiny" / "pytorch_model.bin", weights_only=True)
    sb = torch.load(b / "dnabert_s_tiny" / "pytorch_model.bin", weights_only=True)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert "random weights" in (a / "TEST_MODELS.txt").read_text()


def test_layouts_match_the_real_files(tiny_models):
    with torch.serialization.safe_globals(FAIRESM_ALLOW):
        pt = torch.load(tiny_models.esm_pt, weights_only=True)
    keys = set(pt["model"])
    assert "encoder.sentence_encoder.embed_tokens.weight" in keys
    assert "encoder.sentence_encoder.layers.0.self_attn.q_proj.weight" in keys
    assert "encoder.sentence_encoder.layers.0.self_attn.rot_emb.inv_freq" in keys
    assert "encoder.lm_head.weight" in keys
    assert {"argparse.Namespace"} == set(torch.serialization.get_unsafe_globals_in_checkpoint(tiny_models.esm_pt))
    conf = json.loads((tiny_models.esm_hf / "config.json").read_text())
    assert conf["token_dropout"] is True and conf["layer_norm_eps"] == 1e-5
    assert conf["position_embedding_type"] == "rotary" and conf["vocab_size"] == 33
    from safetensors import safe_open
    with safe_open(str(tiny_models.esm_hf / "model.safetensors"), "pt") as f:
        hf_keys = set(f.keys())
    assert "esm.encoder.layer.0.attention.self.query.weight" in hf_keys
    assert "esm.rotary_embeddings.inv_freq" in hf_keys
    bert = torch.load(tiny_models.dnabert / "pytorch_model.bin", weights_only=True)
    assert "encoder.layer.0.attention.self.Wqkv.weight" in bert and "pooler.dense.weight" in bert
    assert "encoder.layer.0.mlp.gated_layers.bias" not in bert
    dconf = json.loads((tiny_models.dnabert / "config.json").read_text())
    assert dconf["layer_norm_eps"] == 1e-12 and dconf["pad_token_id"] == 0
