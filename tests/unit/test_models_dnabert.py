"""DNABERT-S: our module against a deliberately plain MosaicBERT forward (tests/oracles.py); packed vs padded;
tokenizer behaviour; loader errors."""

import json

import pytest
import torch

from virnucpro.errors import ModelFormatError
from virnucpro.models.attention import alibi_slopes
from virnucpro.models.dnabert import load_dnabert, load_tokenizer, tokenize

from oracles import plain_mosaicbert

DNA = ["ACGTACGTTTGACCATGAAAGGGTTTCCCAAATTTGGGCCCATATATGCGC", "ACG", "TTTTTTTTTTAAAAAAAAAACCCCCGGGGG",
       "GATTACAGATTACAGATTACA", "NNNACGTNNN"]


@pytest.fixture(scope="module")
def model(tiny_models):
    return load_dnabert(tiny_models.dnabert)


@pytest.fixture(scope="module")
def tok(tiny_models):
    return load_tokenizer(tiny_models.dnabert)


def test_slopes_rule():
    assert torch.allclose(torch.tensor(alibi_slopes(8)), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    want12 = [2 ** -(i + 1) for i in range(8)] + [2 ** -0.5, 2 ** -1.5, 2 ** -2.5, 2 ** -3.5]
    assert torch.allclose(torch.tensor(alibi_slopes(12)), torch.tensor(want12))


def test_matches_plain_implementation(tiny_models, model, tok):
    state = torch.load(tiny_models.dnabert / "pytorch_model.bin", weights_only=True)
    conf = json.loads((tiny_models.dnabert / "config.json").read_text())
    for seq in DNA:
        ids = tokenize(tok, seq)
        want = plain_mosaicbert(state, conf, ids)
        with torch.no_grad():
            got = model.forward_padded(torch.tensor([ids]))[0]
        assert (got - want).abs().max() / want.abs().max() < 1e-5, seq


def test_padded_batch_matches_single(model, tok):
    enc = [tokenize(tok, s) for s in DNA]
    width = max(map(len, enc))
    ids = torch.tensor([e + [3] * (width - len(e)) for e in enc])
    mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in enc])
    with torch.no_grad():
        batch = model.forward_padded(ids, mask)
        for i, e in enumerate(enc):
            single = model.forward_padded(torch.tensor([e]))[0]
            assert (batch[i, :len(e)] - single).abs().max() < 1e-5


def _packed(model, tok, seqs):
    enc = [tokenize(tok, s) for s in seqs]
    cu = torch.tensor([0] + [sum(map(len, enc[:i + 1])) for i in range(len(enc))], dtype=torch.int32)
    with torch.no_grad():
        out = model.forward_packed(torch.tensor([t for e in enc for t in e]), cu, max(map(len, enc)))
    return [out[cu[i]:cu[i + 1]] for i in range(len(enc))]


def test_packed_matches_single_and_is_isolated(model, tok):
    packed = _packed(model, tok, DNA)
    with torch.no_grad():
        for seq, got in zip(DNA, packed):
            want = model.forward_padded(torch.tensor([tokenize(tok, seq)]))[0]
            assert (got - want).abs().max() < 1e-5
    changed = list(DNA)
    changed[0] = "G" * len(DNA[0])
    other = _packed(model, tok, changed)
    for i in range(1, len(DNA)):  # fp32 noise only (the pack's length changed); leakage would be ~1e-1
        assert (other[i] - packed[i]).abs().max() < 1e-5
    assert other[0].shape != packed[0].shape or (other[0] - packed[0]).abs().max() > 1e-2
    reordered = _packed(model, tok, DNA[::-1])[::-1]
    for a, b in zip(reordered, packed):
        assert (a - b).abs().max() < 1e-5


def test_tokenizer_unknowns_and_specials(tok):
    enc = tok.encode("ACGTNAAAacgtTTGG")
    assert enc.ids[0] == 1 and enc.ids[-1] == 2  # [CLS] ... [SEP]
    assert enc.ids.count(0) == 5  # N and the four lower-case letters, one [UNK] each
    assert enc.tokens == ["[CLS]", "A", "C", "G", "T", "[UNK]", "AAA", "[UNK]", "[UNK]", "[UNK]", "[UNK]",
                          "TT", "GG", "[SEP]"]
    # the stored fixed padding (2000) and truncation are switched off
    long = "ACGT" * 1000
    ids = tokenize(tok, long)
    assert 3 not in ids and ids[-1] == 2
    assert [tok.token_to_id(t) for t in "ACGT"] == [5, 6, 7, 8]
    assert tok.token_to_id("[PAD]") == 3 and tok.token_to_id("[MASK]") == 4


def test_bert_prefix_and_safetensors_are_accepted(tmp_path, tiny_models, model):
    from safetensors.torch import save_file

    state = torch.load(tiny_models.dnabert / "pytorch_model.bin", weights_only=True)
    d = tmp_path / "prefixed"
    d.mkdir()
    (d / "config.json").write_text((tiny_models.dnabert / "config.json").read_text())
    save_file({f"bert.{k}": v.contiguous() for k, v in state.items()}, str(d / "model.safetensors"))
    again = load_dnabert(d)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_wrong_files(tmp_path, tiny_models):
    with pytest.raises(ModelFormatError, match="directory"):
        load_dnabert(tmp_path / "nothing")
    d = tmp_path / "esm_as_dnabert"
    d.mkdir()
    (d / "config.json").write_text((tiny_models.esm_hf / "config.json").read_text())
    torch.save({"embeddings.word_embeddings.weight": torch.zeros(33, 32)}, d / "pytorch_model.bin")
    with pytest.raises(ModelFormatError, match="Wqkv|token_type"):
        load_dnabert(d)
    with pytest.raises(ModelFormatError, match="tokenizer.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="tokenizer"):
        load_tokenizer(tmp_path)
    bad = tmp_path / "badbin"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_models.dnabert / "config.json").read_text())
    (bad / "pytorch_model.bin").write_text("text, not weights")
    with pytest.raises(ModelFormatError, match="not a PyTorch checkpoint"):
        load_dnabert(bad)
