"""Reading weight files without executing pickled code, shared by the three model loaders.

Every `.pt`/`.bin`/`.pth` goes through `torch.load(weights_only=True)`; the only classes a file may name are
the ones a caller passes in `allow` (usually mapped to harmless stand-ins). Anything else is a
`ModelFormatError` naming the file and the classes it asked for.
"""

from __future__ import annotations

import json
import logging
import pickle
import zipfile
from pathlib import Path

import torch

from virnucpro.errors import ModelFormatError

log = logging.getLogger(__name__)

# Written by `virnucpro make-test-models` next to the tiny models; also set as a config flag inside them.
TEST_MODEL_MARKER = "TEST_MODELS.txt"
TEST_MODEL_FLAG = "virnucpro_test_model"


def load_pickle_weights(path: str | Path, allow=(), mmap: bool = True):
    """`torch.load` with weights_only=True and exactly the `allow`ed globals; errors become ModelFormatError."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(path, "no such file")
    if not zipfile.is_zipfile(path):
        # Every file torch.save has written since torch 1.6 is a zip archive; a legacy tar/pickle or a text
        # file is not something we read.
        raise ModelFormatError(path, "not a PyTorch checkpoint (expected a torch.save zip archive)")
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError, EOFError) as exc:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 - only used to improve the message
            names = []
        allowed = {_global_name(a) for a in allow}
        unknown = [n for n in names if n not in allowed]
        if unknown:
            problem = f"refusing to load: the file asks for classes outside the allow-list: {', '.join(unknown)}"
        else:
            problem = f"cannot be read as weights ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        raise ModelFormatError(path, problem) from exc


def _global_name(entry) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFormatError(path, f"not a readable safetensors file ({exc})") from exc


def load_hf_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """The weights of an HF model directory: model.safetensors, pytorch_model.bin, or their sharded forms."""
    for index_name, loader in (
        ("model.safetensors.index.json", load_safetensors),
        ("pytorch_model.bin.index.json", load_pickle_weights),
    ):
        index = directory / index_name
        if index.is_file():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ModelFormatError(index, "no weight_map in the shard index")
            state = {}
            for shard in sorted(set(weight_map.values())):
                state.update(_as_state_dict(directory / shard, loader(directory / shard)))
            return state
    if (directory / "model.safetensors").is_file():
        return load_safetensors(directory / "model.safetensors")
    if (directory / "pytorch_model.bin").is_file():
        path = directory / "pytorch_model.bin"
        return _as_state_dict(path, load_pickle_weights(path))
    raise ModelFormatError(directory, "no model.safetensors or pytorch_model.bin in this directory")


def _as_state_dict(path, obj) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelFormatError(path, "expected a state dict (names → tensors)")
    return dict(obj)


def read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError as exc:
        raise ModelFormatError(path, "no such file") from exc
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelFormatError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelFormatError(path, "expected a JSON object")
    return data


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove `prefix` from every key that has it (checkpoints of wrapper models carry one)."""
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def is_test_model(path: Path, flagged: bool = False) -> bool:
    """True for models written by make-test-models: a config flag, or the marker file beside/above them."""
    path = Path(path)
    places = [path, path.parent] if path.is_dir() else [path.parent]
    return flagged or any((p / TEST_MODEL_MARKER).is_file() for p in places)


def warn_if_test_model(path: Path, what: str, flagged: bool = False) -> bool:
    if is_test_model(path, flagged):
        log.warning("%s at %s is a test model (random weights): its outputs mean nothing", what, path)
        return True
    return False


def require(cond: bool, path, problem: str) -> None:
    if not cond:
        raise ModelFormatError(path, problem)
