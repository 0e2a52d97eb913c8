"""Reading weight files without executing pickled code, shared by the three model loaders.

Every `.pt`/`.bin`/`.pth` goes through `torch.load(weights_only=True)`; the only classes a file may name are
the ones a caller passes in `allow` (usually mapped to harmless stand-ins). Anything else is a
`ModelFormatError` naming the file and the classes it asked for.

Weights are read lazily so that a 5.7 GB fp16 checkpoint never needs an fp32 copy in host memory: `.pt`/`.bin`
files are memory-mapped (`torch.load(mmap=True)` reads only the pickle; tensor bytes are paged in when used) and
safetensors files are opened with `safe_open` and read one tensor at a time. `Weights` gives every tensor's
shape without reading its data (what `virnucpro check-models` needs), and `place` moves one tensor to the
device in the target dtype, so the loaders build their modules tensor by tensor on the device.
"""

from __future__ import annotations

import json
import logging
import pickle
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping
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
        raise ModelFormatError(path, _not_a_zip(path))
    check_zip_members(path)
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


ZIP_LOCAL_HEADER = b"PK\x03\x04"


def _not_a_zip(path: Path) -> str:
    """Why a file is not a readable torch.save archive, as precisely as its first bytes tell."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    if head == ZIP_LOCAL_HEADER:
        # A zip's directory is at its end: a file that starts like one but has none was cut short.
        return (f"incomplete zip archive: {size} bytes and no end-of-archive record "
                "(truncated download or copy?)")
    # Every file torch.save has written since torch 1.6 is a zip archive; a legacy tar/pickle or a text
    # file is not something we read.
    return "not a PyTorch checkpoint (expected a torch.save zip archive)"


def check_zip_members(path: Path) -> None:
    """Every member of a zip archive lies inside the file (cheap: reads only the central directory)."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFormatError(path, f"incomplete zip archive ({exc})") from exc
    for info in infos:
        # local header (30 bytes + name + extra) precedes the data; extra is not known without reading it
        end = info.header_offset + 30 + len(info.filename.encode()) + info.compress_size
        if end > size:
            raise ModelFormatError(path, f"truncated: {size} of at least {end} bytes (member {info.filename})")


def _global_name(entry) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


class Weights(Mapping):
    """Named tensors of a checkpoint, each read only when asked for; shapes are known without reading data.

    `weights[name]` returns the tensor (for a pickle: a memory-mapped tensor; for safetensors: read now);
    `weights.shape(name)` reads nothing.
    """

    def __init__(self, entries: dict[str, tuple[Callable[[], torch.Tensor], tuple[int, ...]]]):
        self._entries = entries

    @classmethod
    def of_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> "Weights":
        return cls({k: ((lambda t=t: t), tuple(t.shape)) for k, t in tensors.items()})

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._entries[name][0]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entries[name][1]

    def renamed(self, rename: Callable[[str], str]) -> "Weights":
        return Weights({rename(k): v for k, v in self._entries.items()})


_MAX_SAFETENSORS_HEADER = 100 << 20  # the format's own limit; a larger "length" means not a safetensors file


def safetensors_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors header (reads the header only), checking the file holds all the data."""
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > _MAX_SAFETENSORS_HEADER:
                raise ModelFormatError(path, "not a safetensors file (no valid header)")
            if 8 + n > size:
                raise ModelFormatError(path, f"truncated: {size} of at least {8 + n} bytes (header cut short)")
            header = json.loads(fh.read(n))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise ModelFormatError(path, f"not a readable safetensors file ({exc})") from exc
    if not isinstance(header, dict):
        raise ModelFormatError(path, "not a readable safetensors file (header is not a JSON object)")
    shapes, end = {}, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            shapes[name] = tuple(int(d) for d in entry["shape"])
            end = max(end, int(entry["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelFormatError(path, f"not a readable safetensors file (bad entry {name!r})") from exc
    if 8 + n + end > size:
        raise ModelFormatError(path, f"truncated: {size} of {8 + n + end} bytes")
    return shapes


def load_safetensors(path: str | Path) -> Weights:
    from safetensors import SafetensorError, safe_open

    shapes = safetensors_shapes(path)
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFormatError(path, f"not a readable safetensors file ({exc})") from exc
    return Weights({name: ((lambda name=name: handle.get_tensor(name)), shape) for name, shape in shapes.items()})


def load_hf_state_dict(directory: Path) -> Weights:
    """The weights of an HF model directory: model.safetensors, pytorch_model.bin, or their sharded forms."""
    loaders = {".safetensors": load_safetensors,
               ".bin": lambda p: Weights.of_tensors(_as_state_dict(p, load_pickle_weights(p)))}
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.is_file():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ModelFormatError(index, "no weight_map in the shard index")
            entries = {}
            for shard in sorted(set(weight_map.values())):
                entries.update(loaders[Path(index_name).suffixes[0]](directory / shard)._entries)
            return Weights(entries)
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).is_file():
            return loaders[Path(name).suffix](directory / name)
    raise ModelFormatError(directory, "no model.safetensors or pytorch_model.bin in this directory")


def place(tensor: torch.Tensor, device, dtype: torch.dtype | None) -> torch.Tensor:
    """One tensor on `device` in `dtype` (None: as stored), converted in a single step: an fp16 file goes to an
    fp16 GPU model without any fp32 copy, and to the fp32 CPU model with exactly the old `.float()` values."""
    return tensor.to(device=device, dtype=dtype or tensor.dtype)


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


def strip_prefix(state: Weights, prefix: str) -> Weights:
    """Remove `prefix` from every key that has it (checkpoints of wrapper models carry one)."""
    return state.renamed(lambda k: k.removeprefix(prefix))


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
