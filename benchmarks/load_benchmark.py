"""Model-load cost of one EMBED task: time and peak host RSS of loading a full-size ESM-2 3B `.pt` (fp16 tensors).

    python benchmarks/load_benchmark.py write /tmp/esm2_3b_random.pt     # ~5.7 GB, fair-esm layout, random fp16
    /usr/bin/time -v python benchmarks/load_benchmark.py load /tmp/esm2_3b_random.pt --dtype fp16 [--legacy]

`load` builds the model as an EMBED task does after its GPU lease, on the CPU as the GPU's stand-in (fp16 there
means parameters in fp16, as they would be on the GPU), then reads one value per memory page of every parameter
so that the whole file is paged in, as the host-to-device copies would do. `--legacy` runs the path before issue 12: a fp32 model
on the host, then `.half()` of every parameter (run it from a checkout of that code). Peak RSS comes from the
kernel (ru_maxrss), also printed by `/usr/bin/time -v` as "Maximum resident set size".
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

ESM2_3B = dict(num_layers=36, embed_dim=2560, num_heads=40, ffn_dim=10240)


def write(path: str, seed: int) -> None:
    """A fair-esm checkpoint with the 3B's names and shapes, fp16 tensors, written one tensor at a time."""
    from virnucpro.models.esm2 import ESM2, Esm2Config, VOCAB_SIZE, external_names, _QKV_NAMES

    cfg = Esm2Config(**ESM2_3B)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in ESM2(cfg).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    state = {}

    def rand(shape):
        t = torch.randn(shape, generator=gen, dtype=torch.float16)
        return t * (shape[1] ** -0.5 if len(shape) == 2 else 0.1)

    for ours, ext in external_names(cfg, "fairesm").items():
        state[ext] = rand(shapes[ours])
    e = cfg.embed_dim
    for i in range(cfg.num_layers):
        for name in _QKV_NAMES["fairesm"]:
            state[f"layers.{i}.{name}.weight"] = rand((e, e))
            state[f"layers.{i}.{name}.bias"] = rand((e,))
        state[f"layers.{i}.self_attn.rot_emb.inv_freq"] = (
            1.0 / 10000 ** (torch.arange(0, cfg.head_dim, 2).float() / cfg.head_dim)).half().float()
    state = {f"encoder.sentence_encoder.{k}": v for k, v in state.items()}
    state["encoder.lm_head.weight"] = state["encoder.sentence_encoder.embed_tokens.weight"]
    for k, shape in {"dense.weight": (e, e), "dense.bias": (e,), "layer_norm.weight": (e,),
                     "layer_norm.bias": (e,), "bias": (VOCAB_SIZE,)}.items():
        state[f"encoder.lm_head.{k}"] = rand(shape)
    args = argparse.Namespace(arch="esm2", encoder_layers=cfg.num_layers, encoder_embed_dim=e,
                               encoder_ffn_embed_dim=cfg.ffn_dim, encoder_attention_heads=cfg.num_heads,
                               token_dropout=True, max_positions=1024)
    torch.save({"model": state, "cfg": {"model": args}}, path)


def load(path: str, dtype: str, legacy: bool) -> dict:
    from virnucpro.models.esm2 import load_esm2

    dt = torch.float16 if dtype == "fp16" else torch.float32
    start = time.perf_counter()
    if legacy:
        model = load_esm2(path)  # the old loader: always fp32 on the host
        with torch.no_grad():
            for p in model.parameters():
                p.data = p.data.to(dt)
    else:
        model = load_esm2(path, "cpu", dt)
    seconds = time.perf_counter() - start
    # On the GPU every byte of the file is read by the host-to-device copies; on the CPU stand-in an fp16 file
    # loaded as fp16 stays memory-mapped and unread, so read one element per page to count the same pages.
    start = time.perf_counter()
    with torch.no_grad():
        for p in model.parameters():
            p.view(-1)[::2048].sum()
    touch_seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    dtypes = sorted({str(p.dtype) for p in model.parameters()})
    return {"path": path, "legacy": legacy, "dtype": dtype, "load_seconds": round(seconds, 2),
            "read_all_pages_seconds": round(touch_seconds, 2),
            "parameters": params, "parameter_dtypes": dtypes, "inv_freq_dtype": str(model.inv_freq.dtype),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("path")
    w.add_argument("--seed", type=int, default=12)
    ld = sub.add_parser("load")
    ld.add_argument("path")
    ld.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16")
    ld.add_argument("--legacy", action="store_true", help="the pre-issue-12 path: fp32 host model, then cast")
    a = p.parse_args()
    if a.cmd == "write":
        write(a.path, a.seed)
    else:
        print(json.dumps(load(a.path, a.dtype, a.legacy)))


if __name__ == "__main__":
    main()
