"""Classifier: the whole-module pickle is read without running its code and computes what its tensors say."""

import pickle
import zipfile

import pytest
import torch

from virnucpro.errors import ModelFormatError
from virnucpro.models.classifier import load_classifier
from virnucpro.models.tiny import save_as_main_class


def _raw_state(path):
    """The tensors straight out of the zip, via a stand-in for __main__.MLPClassifier (independent of our loader)."""
    class Bag(torch.nn.Module):
        pass
    allow = [(Bag, "__main__.MLPClassifier"), torch.nn.Linear, torch.nn.BatchNorm1d, torch.nn.Dropout]
    with torch.serialization.safe_globals(allow):
        return torch.load(path, weights_only=True).state_dict()


def test_pickle_names_the_original_classes(tiny_models):
    names = set(torch.serialization.get_unsafe_globals_in_checkpoint(tiny_models.classifier))
    assert names == {"__main__.MLPClassifier", "torch.nn.modules.linear.Linear",
                     "torch.nn.modules.batchnorm.BatchNorm1d", "torch.nn.modules.dropout.Dropout"}
    with pytest.raises(pickle.UnpicklingError):  # a plain weights-only load refuses it, as with the real files
        torch.load(tiny_models.classifier, weights_only=True)


def test_loaded_classifier_equals_direct_computation(tiny_models):
    model = load_classifier(tiny_models.classifier)
    s = _raw_state(tiny_models.classifier)
    x = torch.randn(7, s["hidden_layer.weight"].shape[1], generator=torch.Generator().manual_seed(0))
    h = x @ s["hidden_layer.weight"].T + s["hidden_layer.bias"]
    h = (h - s["bn1.running_mean"]) / torch.sqrt(s["bn1.running_var"] + 1e-5) * s["bn1.weight"] + s["bn1.bias"]
    logits = torch.clamp(h, min=0) @ s["output_layer.weight"].T + s["output_layer.bias"]
    want = torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)
    with torch.no_grad():
        got = model(x)
    assert torch.allclose(got, want, atol=1e-6)
    assert model.input_dim == 80  # tiny DNABERT hidden 48 + tiny ESM 32
    assert not torch.allclose(got[:, 0], got[:, 1])


def test_plain_state_dict_is_accepted(tmp_path, tiny_models):
    state = _raw_state(tiny_models.classifier)
    torch.save(state, tmp_path / "state.pth")
    a, b = load_classifier(tiny_models.classifier), load_classifier(tmp_path / "state.pth")
    x = torch.randn(3, 80)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


class Evil(torch.nn.Module):
    def __reduce__(self):
        return (print, ("pwned",))


def test_wrong_files(tmp_path, tiny_models, capsys):
    text = tmp_path / "model.pth"
    text.write_text("not a model")
    with pytest.raises(ModelFormatError, match="not a PyTorch checkpoint"):
        load_classifier(text)
    # another model's state dict
    torch.save({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ModelFormatError, match="missing hidden_layer.weight"):
        load_classifier(tmp_path / "other.pth")
    # a pickle needing an unknown class: refused before anything runs, the class named
    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ModelFormatError, match="builtins.print"):
        load_classifier(tmp_path / "evil.pth")
    assert "pwned" not in capsys.readouterr().out
    # a whole module of another class
    save_as_main_class(torch.nn.Linear(3, 2), "SomethingElse", tmp_path / "else.pth")
    with pytest.raises(ModelFormatError, match="__main__.SomethingElse"):
        load_classifier(tmp_path / "else.pth")
    # the ESM checkpoint is not a classifier
    with pytest.raises(ModelFormatError):
        load_classifier(tiny_models.esm_pt)
    assert zipfile.is_zipfile(tiny_models.classifier)


def test_marker_makes_a_warning(tiny_models, caplog):
    with caplog.at_level("WARNING"):
        assert load_classifier(tiny_models.classifier).is_test_model
    assert "test model" in caplog.text
