"""The VirNucPro MLP and safe loading of the published whole-module `.pth` (MODELS.md §3).

Linear(in → hidden) → BatchNorm1d (running stats) → ReLU → (Dropout: identity) → Linear(hidden → 2) → softmax.
Class 0 = others, class 1 = virus. The published files pickle `__main__.MLPClassifier` itself; we read them
with weights_only=True, letting the unpickler build an empty stand-in for that class (no code from the file
runs), and copy its tensors into our own module. A plain state dict file is accepted too.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from virnucpro.errors import ModelFormatError
from virnucpro.models import loading

KEYS = ("hidden_layer.weight", "hidden_layer.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
        "bn1.running_var", "output_layer.weight", "output_layer.bias")


class MLPClassifier(nn.Module):
    """Same parameter names as the original's train.py, so its state dict loads as is."""

    def __init__(self, input_dim: int, hidden_dim: int = 512, num_class: int = 2, bn_eps: float = 1e-5):
        super().__init__()
        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim, eps=bn_eps)
        self.output_layer = nn.Linear(hidden_dim, num_class)
        self.is_test_model = False

    @property
    def input_dim(self) -> int:
        return self.hidden_layer.in_features

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(F.relu(self.bn1(self.hidden_layer(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities [N, 2] (in x's dtype, as the original computed them)."""
        return F.softmax(self.logits(x), dim=1)


class _PickledMLPStandIn(nn.Module):
    """Built by the unpickler in place of `__main__.MLPClassifier`; nn.Module's own __setstate__ fills it."""


PICKLE_ALLOW = [
    (_PickledMLPStandIn, "__main__.MLPClassifier"),
    nn.Linear,
    nn.BatchNorm1d,
    nn.Dropout,
]


def load_classifier(path: str | Path) -> MLPClassifier:
    path = Path(path)
    obj = loading.load_pickle_weights(path, allow=PICKLE_ALLOW, mmap=False)
    bn_eps = 1e-5
    if isinstance(obj, nn.Module):
        state = obj.state_dict()
        bn = getattr(obj, "bn1", None)
        bn_eps = float(getattr(bn, "eps", bn_eps))
        flagged = bool(getattr(obj, loading.TEST_MODEL_FLAG, False))
    elif isinstance(obj, dict):
        state, flagged = obj, False
    else:
        raise ModelFormatError(path, f"holds a {type(obj).__name__}, not the VirNucPro classifier")
    missing = [k for k in KEYS if k not in state]
    loading.require(not missing, path, f"not the VirNucPro classifier (missing {', '.join(missing)})")
    w1, w2 = state["hidden_layer.weight"], state["output_layer.weight"]
    loading.require(w1.ndim == 2 and w2.ndim == 2 and w2.shape == (2, w1.shape[0]), path,
                    f"unexpected layer shapes {tuple(w1.shape)} / {tuple(w2.shape)}")
    model = MLPClassifier(w1.shape[1], w1.shape[0], 2, bn_eps)
    model.load_state_dict({k: state[k].float() for k in KEYS}, strict=False)
    if "bn1.num_batches_tracked" in state:
        model.bn1.num_batches_tracked.copy_(state["bn1.num_batches_tracked"])
    model.is_test_model = loading.warn_if_test_model(path, "classifier", flagged)
    return model.eval()
