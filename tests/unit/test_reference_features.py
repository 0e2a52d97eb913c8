"""Reference features: the original's pooling, checked against fair-esm and a plain MosaicBERT forward."""

import json

import numpy as np
import pytest
import torch

from virnucpro.embed.reference import reference_features
from virnucpro.io.frames import Frame
from virnucpro.models.dnabert import load_dnabert, load_tokenizer, tokenize
from virnucpro.models.esm2 import load_esm2

from oracles import fairesm_model, plain_mosaicbert

FRAMES = [
    Frame("r1_chunk_1F1", "ATGAAAACCGCGTATATTGCGAAACAGCGCC", "MKTAYIAKQR"),
    Frame("r1_chunk_1R2", "GGCAACCTGTTTAAAN", "GNLF"),
    Frame("r2_chunk_1F3", "ATGTTTTGGTAA", "MFW"),
]


@pytest.fixture(scope="module")
def models(tiny_models):
    return (load_esm2(tiny_models.esm_pt), load_dnabert(tiny_models.dnabert), load_tokenizer(tiny_models.dnabert))


def test_features_follow_the_original_pooling(tiny_models, models):
    esm_pkg = pytest.importorskip("esm")

    feats = reference_features(FRAMES, *models)
    assert feats.ids == [f.id for f in FRAMES]
    assert feats["nucleotide"].dtype == np.float32 and feats["protein"].dtype == np.float32
    assert feats["nucleotide"].shape == (3, 48) and feats["protein"].shape == (3, 32)

    fair, alphabet = fairesm_model(tiny_models.esm_pt)
    state = torch.load(tiny_models.dnabert / "pytorch_model.bin", weights_only=True)
    conf = json.loads((tiny_models.dnabert / "config.json").read_text())
    conv = alphabet.get_batch_converter()
    for i, f in enumerate(FRAMES):
        hidden = plain_mosaicbert(state, conf, tokenize(models[2], f.nucleotide))
        np.testing.assert_allclose(feats["nucleotide"][i], hidden.mean(0).numpy(), rtol=0, atol=1e-5)
        # [CLS]/[SEP] are part of the mean: leaving them out gives a different vector
        assert np.abs(feats["nucleotide"][i] - hidden[1:-1].mean(0).numpy()).max() > 1e-3
        _, _, toks = conv([(f.id, f.protein)])
        with torch.no_grad():
            rep = fair(toks, repr_layers=[fair.num_layers])["representations"][fair.num_layers][0]
        np.testing.assert_allclose(feats["protein"][i], rep[1:len(f.protein) + 1].mean(0).numpy(), rtol=0, atol=1e-5)
    del esm_pkg


def test_protein_mean_stops_at_1024_residues_but_the_model_sees_all(models):
    esm, dnabert, tok = models
    rng = np.random.default_rng(1)
    protein = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 1100))
    feats = reference_features([Frame("long", "ACGT", protein)], esm, dnabert, tok)
    from virnucpro.models.esm2 import encode_protein
    with torch.no_grad():
        rep = esm.forward_padded(torch.tensor([encode_protein(protein)]))[0]
        cut = esm.forward_padded(torch.tensor([encode_protein(protein[:1024])]))[0]
    np.testing.assert_allclose(feats["protein"][0], rep[1:1025].mean(0).numpy(), atol=1e-6)
    assert np.abs(feats["protein"][0] - rep[1:1101].mean(0).numpy()).max() > 1e-4
    assert np.abs(feats["protein"][0] - cut[1:1025].mean(0).numpy()).max() > 1e-6  # not a truncated input


def test_empty_input_and_bad_protein(models):
    feats = reference_features([], *models)
    assert len(feats) == 0 and feats["nucleotide"].shape == (0, 48) and feats["protein"].shape == (0, 32)
    with pytest.raises(ValueError, match="frame bad: character 'J'"):
        reference_features([Frame("bad", "ACGT", "MJ")], *models)
