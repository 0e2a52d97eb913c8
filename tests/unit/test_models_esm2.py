"""ESM-2: our module against fair-esm's own ESM2 and HF's EsmModel on the same tiny weights; packed vs padded."""

import argparse
import zipfile

import pytest
import torch

from virnucpro.errors import ModelFormatError
from virnucpro.models.esm2 import (
    MASK, encode_protein, encode_proteins, load_esm2, pack_tokens, pad_tokens,
)

from oracles import fairesm_model

PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQ", "LLGV", "MSTNPKPQRKTKRNTNRRPQDVKFPGGGQIVGGVYLLPRRGPRLGVRATRKTSERSQPRG",
            "A", "WCHYFMPDE", "GGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGGG"]


@pytest.fixture(scope="module")
def esm(tiny_models):
    return load_esm2(tiny_models.esm_pt)


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_alphabet_matches_fair_esm():
    esm_pkg = pytest.importorskip("esm")
    alphabet = esm_pkg.data.Alphabet.from_architecture("ESM-1b")
    _, _, toks = alphabet.get_batch_converter()([(str(i), p) for i, p in enumerate(PROTEINS)])
    assert torch.equal(pad_tokens(encode_proteins(PROTEINS)), toks)


def test_bad_character_is_a_clear_error():
    with pytest.raises(ValueError, match=r"protein 2: character 'J' at position 3"):
        encode_proteins(["MKV", "MKJV"])
    with pytest.raises(ValueError, match="'\\*'"):
        encode_protein("MK*")
    with pytest.raises(ValueError, match="'m'"):
        encode_protein("mk")


def test_padded_forward_matches_fair_esm(tiny_models, esm):
    ref, alphabet = fairesm_model(tiny_models.esm_pt)
    _, _, toks = alphabet.get_batch_converter()([(str(i), p) for i, p in enumerate(PROTEINS)])
    with torch.no_grad():
        want = ref(toks, repr_layers=[ref.num_layers])["representations"][ref.num_layers]
        got = esm.forward_padded(toks)
    for i, p in enumerate(PROTEINS):  # compare real positions (padded rows are never used)
        n = len(p) + 2
        assert _rel(got[i, :n], want[i, :n]) < 1e-5, i
    # and the pooled feature the original computes
    assert _rel(got[0, 1:len(PROTEINS[0]) + 1].mean(0), want[0, 1:len(PROTEINS[0]) + 1].mean(0)) < 1e-5


def test_padded_forward_matches_fair_esm_with_mask_tokens(tiny_models, esm):
    # token dropout with <mask> present: the factor depends on the mask ratio per sequence
    ref, _ = fairesm_model(tiny_models.esm_pt)
    toks = pad_tokens(encode_proteins(PROTEINS[:3]))
    toks[0, 3] = MASK
    toks[2, 5:9] = MASK
    with torch.no_grad():
        want = ref(toks, repr_layers=[ref.num_layers])["representations"][ref.num_layers]
        got = esm.forward_padded(toks)
    valid = toks.ne(1)
    assert _rel(got[valid], want[valid]) < 1e-5


def test_stored_inv_freq_is_used(esm):
    # the writer stores an fp16-rounded inv_freq, like the real checkpoints; recomputing would differ
    d = esm.cfg.head_dim
    recomputed = 1.0 / (10000 ** (torch.arange(0, d, 2).float() / d))
    assert torch.equal(esm.inv_freq, recomputed.half().float())
    assert not torch.equal(esm.inv_freq, recomputed)


def test_hf_loader_gives_the_same_model(tiny_models, esm):
    hf = load_esm2(tiny_models.esm_hf)
    assert hf.cfg == esm.cfg
    a, b = esm.state_dict(), hf.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_padded_forward_matches_transformers(tiny_models, esm):
    transformers = pytest.importorskip("transformers")
    ref = transformers.EsmModel.from_pretrained(str(tiny_models.esm_hf), add_pooling_layer=False,
                                                attn_implementation="eager").eval()
    toks = pad_tokens(encode_proteins(PROTEINS))
    with torch.no_grad():
        want = ref(input_ids=toks, attention_mask=toks.ne(1).long()).last_hidden_state
        got = esm.forward_padded(toks)
    valid = toks.ne(1)
    assert _rel(got[valid], want[valid]) < 1e-5


def _packed(esm, seqs):
    tokens, cu, max_len = pack_tokens(encode_proteins(seqs))
    with torch.no_grad():
        out = esm.forward_packed(tokens, cu, max_len)
    return [out[cu[i]:cu[i + 1]] for i in range(len(seqs))]


def test_packed_matches_padded_per_sequence(esm):
    with torch.no_grad():
        singles = [esm.forward_padded(pad_tokens([encode_protein(p)]))[0] for p in PROTEINS]
    for got, want in zip(_packed(esm, PROTEINS), singles):
        assert got.shape == want.shape
        assert _rel(got, want) < 1e-5


def test_packed_is_order_and_grouping_invariant(esm):
    whole = _packed(esm, PROTEINS)
    order = [3, 0, 5, 2, 1, 4]
    shuffled = _packed(esm, [PROTEINS[i] for i in order])
    for pos, i in enumerate(order):
        assert (shuffled[pos] - whole[i]).abs().max() < 1e-5
    halves = _packed(esm, PROTEINS[:2]) + _packed(esm, PROTEINS[2:])
    for a, b in zip(halves, whole):
        assert (a - b).abs().max() < 1e-5


def test_packed_sequences_do_not_see_each_other(esm):
    base = _packed(esm, PROTEINS)
    changed = list(PROTEINS)
    changed[2] = "W" * len(PROTEINS[2])  # same length, different content
    other = _packed(esm, changed)
    for i in (0, 1, 3, 4, 5):
        assert (other[i] - base[i]).abs().max() < 1e-6
    assert (other[2] - base[2]).abs().max() > 1e-2
    # positions restart at 0: a sequence gives the same output wherever it sits in the pack
    first = _packed(esm, [PROTEINS[4]])[0]
    last = _packed(esm, PROTEINS[:4] + [PROTEINS[4]])[-1]
    assert (first - last).abs().max() < 1e-5


def test_packed_rejects_mask_token(esm):
    tokens, cu, m = pack_tokens(encode_proteins(["MKV"]))
    tokens[1] = MASK
    with pytest.raises(ValueError, match="mask"):
        esm.forward_packed(tokens, cu, m)


def test_sizes_come_from_the_checkpoint(tmp_path, tiny_models):
    data = _load_raw(tiny_models.esm_pt)
    n = data["cfg"]["model"].encoder_layers
    assert load_esm2(tiny_models.esm_pt).cfg.num_layers == n
    # drop the last layer from weights and cfg: still a valid (smaller) model
    data["cfg"]["model"].encoder_layers = n - 1
    data["model"] = {k: v for k, v in data["model"].items() if f".layers.{n - 1}." not in k}
    torch.save(data, tmp_path / "smaller.pt")
    assert len(load_esm2(tmp_path / "smaller.pt").layers) == n - 1


def _load_raw(path):
    from virnucpro.models.esm2 import FAIRESM_ALLOW
    with torch.serialization.safe_globals(FAIRESM_ALLOW):
        data = torch.load(path, weights_only=True)
    # rebuild a real Namespace so torch.save writes what the original files hold
    data["cfg"]["model"] = argparse.Namespace(**vars(data["cfg"]["model"]))
    return data


def test_wrong_files_are_model_format_errors(tmp_path, tiny_models):
    text = tmp_path / "notes.pt"
    text.write_text("hello\n")
    with pytest.raises(ModelFormatError, match="not a PyTorch checkpoint"):
        load_esm2(text)
    other = tmp_path / "other.pt"
    torch.save({"hidden_layer.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ModelFormatError, match="not a fair-esm checkpoint"):
        load_esm2(other)
    with pytest.raises(ModelFormatError, match="no such file"):
        load_esm2(tmp_path / "missing.pt")
    # a pickle that needs a class outside the allow-list: refused, and the class is named
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "cfg": {"model": zipfile.ZipInfo("x")}}, evil)
    with pytest.raises(ModelFormatError, match="zipfile.ZipInfo"):
        load_esm2(evil)
    # a DNABERT directory is not an ESM-2 directory
    with pytest.raises(ModelFormatError, match="esm"):
        load_esm2(tiny_models.dnabert)


def test_truncated_state_is_named(tmp_path, tiny_models):
    data = _load_raw(tiny_models.esm_pt)
    del data["model"]["encoder.sentence_encoder.layers.1.fc1.weight"]
    torch.save(data, tmp_path / "cut.pt")
    with pytest.raises(ModelFormatError, match="layers.1.fc1.weight"):
        load_esm2(tmp_path / "cut.pt")


def test_test_models_are_flagged(tiny_models, caplog):
    with caplog.at_level("WARNING"):
        model = load_esm2(tiny_models.esm_pt)
    assert model.is_test_model
    assert "test model" in caplog.text



def test_hf_variants_load_the_same(tmp_path, tiny_models, esm):
    """transformers 4.x per-layer inv_freq in a pytorch_model.bin, and a sharded safetensors index."""
    import json
    import shutil

    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_models.esm_hf / "model.safetensors"))
    old = tmp_path / "hf4"
    old.mkdir()
    shutil.copy(tiny_models.esm_hf / "config.json", old)
    v4 = {k: v for k, v in state.items() if k != "esm.rotary_embeddings.inv_freq"}
    for i in range(esm.cfg.num_layers):
        v4[f"esm.encoder.layer.{i}.attention.self.rotary_embeddings.inv_freq"] = state["esm.rotary_embeddings.inv_freq"]
    torch.save(v4, old / "pytorch_model.bin")
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    shutil.copy(tiny_models.esm_hf / "config.json", sharded)
    names = sorted(state)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for fname, keys in halves.items():
        save_file({k: state[k] for k in keys}, str(sharded / fname))
    index = {"weight_map": {k: f for f, keys in halves.items() for k in keys}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    for d in (old, sharded):
        other = load_esm2(d).state_dict()
        assert all(torch.equal(v, other[k]) for k, v in esm.state_dict().items()), d
