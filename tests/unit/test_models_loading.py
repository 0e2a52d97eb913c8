"""Loading weights straight into the compute dtype, lazily, and naming truncated files for what they are."""

import argparse
import shutil

import pytest
import torch

from virnucpro.errors import ModelFormatError
from virnucpro.models import loading
from virnucpro.models.dnabert import load_dnabert, open_dnabert
from virnucpro.models.esm2 import FAIRESM_ALLOW, load_esm2, open_esm2


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit patterns (torch.equal alone would call -0.0 and 0.0 equal)."""
    bits = {2: torch.int16, 4: torch.int32}
    return (a.dtype == b.dtype and a.shape == b.shape
            and torch.equal(a.reshape(-1).view(bits[a.element_size()]), b.reshape(-1).view(bits[b.element_size()])))


@pytest.mark.parametrize("which", ["esm_pt", "esm_hf"])
def test_esm2_fp16_load_equals_the_fp32_model_cast_to_fp16(tiny_models, which):
    ref = load_esm2(tiny_models[which])  # the fp32 CPU reference
    half = load_esm2(tiny_models[which], "cpu", torch.float16)
    ref_params, half_params = dict(ref.named_parameters()), dict(half.named_parameters())
    assert ref_params.keys() == half_params.keys()
    for name, p in ref_params.items():
        assert p.dtype == torch.float32
        assert _same_bits(half_params[name].detach(), p.detach().half()), name
    # the rotary buffer stays fp32, and exact
    assert half.inv_freq.dtype == torch.float32 and torch.equal(half.inv_freq, ref.inv_freq)


def test_dnabert_fp16_load_equals_the_fp32_model_cast_to_fp16(tiny_models):
    ref, half = load_dnabert(tiny_models.dnabert), load_dnabert(tiny_models.dnabert, "cpu", torch.float16)
    for (name, p), (_, q) in zip(ref.named_parameters(), half.named_parameters()):
        assert _same_bits(q.detach(), p.detach().half()), name
    assert half.slopes.dtype == torch.float32 and torch.equal(half.slopes, ref.slopes)


def test_an_fp16_file_loads_as_fp16_without_an_fp32_copy(tiny_models, tmp_path, monkeypatch):
    """A published-style fp16 checkpoint to an fp16 model: no tensor is ever widened to fp32 on the way."""
    with torch.serialization.safe_globals(FAIRESM_ALLOW):
        data = torch.load(tiny_models.esm_pt, weights_only=True)
    data["cfg"]["model"] = argparse.Namespace(**vars(data["cfg"]["model"]))
    data["model"] = {k: v if "inv_freq" in k else v.half() for k, v in data["model"].items()}
    path = tmp_path / "esm_fp16.pt"
    torch.save(data, path)
    widened = []
    real_to, real_float = torch.Tensor.to, torch.Tensor.float

    def spy_to(self, *args, **kwargs):
        out = real_to(self, *args, **kwargs)
        if self.dtype == torch.float16 and out.dtype == torch.float32:
            widened.append(tuple(self.shape))
        return out

    monkeypatch.setattr(torch.Tensor, "to", spy_to)
    monkeypatch.setattr(torch.Tensor, "float", lambda self: widened.append(tuple(self.shape))
                        if self.dtype == torch.float16 else real_float(self))
    model = load_esm2(path, "cpu", torch.float16)
    assert widened == []
    assert {p.dtype for p in model.parameters()} == {torch.float16}


def test_open_reads_names_and_shapes_but_no_tensor_data(tiny_models, tmp_path):
    """Checking a model must not read its weights: garbage in the data region goes unnoticed by open_*."""
    d = tmp_path / "esm_hf"
    shutil.copytree(tiny_models.esm_hf, d)
    st = d / "model.safetensors"
    raw = bytearray(st.read_bytes())
    header_end = 8 + int.from_bytes(raw[:8], "little")
    raw[header_end:] = b"\xff" * (len(raw) - header_end)  # every weight becomes NaN, sizes unchanged
    st.write_bytes(bytes(raw))
    ckpt = open_esm2(d)
    assert ckpt.cfg.embed_dim == 32
    assert torch.isnan(load_esm2(d).embed_tokens.weight).all()  # the data really was destroyed
    assert open_dnabert(tiny_models.dnabert).cfg.hidden_size == 48


def test_truncated_files_say_so(tiny_models, tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(tiny_models.esm_pt.read_bytes()[:5000])
    with pytest.raises(ModelFormatError, match="incomplete zip archive: 5000 bytes"):
        load_esm2(cut)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty file"):
        load_esm2(empty)
    d = tmp_path / "esm_hf"
    shutil.copytree(tiny_models.esm_hf, d)
    full = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(full[:len(full) // 2])
    with pytest.raises(ModelFormatError, match=f"truncated: {len(full) // 2} of {len(full)} bytes"):
        open_esm2(d)


def test_safetensors_shapes_reject_non_safetensors(tiny_models):
    with pytest.raises(ModelFormatError, match="not a safetensors file"):
        loading.safetensors_shapes(tiny_models.esm_pt)
