"""GPU embedding benchmark: full-size ESM-2 3B and DNABERT-S with random weights, through virnucpro's engine.

Run on a GPU machine from the repository root:

    PYTHONPATH=. python3 benchmarks/embed_benchmark.py --mode full --out $OUT

What it measures, all in one process so ratios hold:
  - the dense fp16 matmul ceiling (8192³, CUDA events, median), the MFU denominator
  - the engine on synthetic 500-bp-chunk frames (~158 aa, ~475 nt) and 150-bp-read frames (~48 aa, ~145 nt):
    tokens/s, sequences/s, MFU, peak memory, DNABERT-S time as a fraction of ESM-2's
  - the same ESM-2 workload through HF transformers `EsmModel` (sdpa, length-sorted padded batches, fp16)
  - optionally the ESM-2 layers under torch.compile (compile time reported)
  - the whole embed step of a shard (read TSV, pack, both models, write npz): frames/hour and GPU busy fraction
    (NVML utilisation sampled in a thread, and summed CUDA-event kernel time over wall time)
  - correctness with full-size random weights: packed fp16 vs per-sequence fp32 reference (cosine, centred
    cosine), and calls of a random 3328-wide classifier on fp16 vs fp32 features
  - DNABERT-S attention: padded SDPA + additive ALiBi (the models' path) vs FlexAttention (doc mask + ALiBi)
`--mode smoke` runs every path with 2-layer models and small workloads; `--mode tiny --device cpu` checks the
script itself on a CPU.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from virnucpro.embed import packing
from virnucpro.embed.engine import EmbeddingEngine
from virnucpro.embed.run import build_encoders
from virnucpro.models.encoders import DnabertTokenize, EsmTokenize
from virnucpro.embed.telemetry import Telemetry
from virnucpro.io.features import Features, save_features
from virnucpro.models import esm2 as esm2_mod
from virnucpro.models.classifier import MLPClassifier
from virnucpro.models.dnabert import DNABERT, DnabertConfig
from virnucpro.models.esm2 import ESM2, Esm2Config

AA = "ACDEFGHIKLMNPQRSTVWY"
LOG_LINES: list[str] = []


def say(*args):
    line = " ".join(str(a) for a in args)
    print(line, flush=True)
    LOG_LINES.append(line)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# ------------------------------------------------------------------------------------------------- sizes
SIZES = {
    "full": dict(esm=Esm2Config(36, 2560, 40, 10240), dna=DnabertConfig(4096, 768, 12, 12, 3072),
                 n500=3000, n150=9000, n_check=2048, n_shard500=3000, n_shard150=9000, dna_vocab=4096),
    "smoke": dict(esm=Esm2Config(2, 2560, 40, 10240), dna=DnabertConfig(4096, 768, 2, 12, 3072),
                  n500=400, n150=1200, n_check=128, n_shard500=400, n_shard150=1200, dna_vocab=4096),
    "tiny": dict(esm=Esm2Config(2, 64, 4, 256), dna=DnabertConfig(256, 48, 2, 4, 96),
                 n500=40, n150=80, n_check=32, n_shard500=40, n_shard150=80, dna_vocab=256),
}


@torch.no_grad()
def init_weights(model: torch.nn.Module, seed: int) -> None:
    """HF-style random init (N(0, 0.02) weights, zero biases, unit LayerNorm), generated on the model's device."""
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
            m.weight.normal_(0.0, 0.02, generator=g)
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
        elif isinstance(m, torch.nn.LayerNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()


def half_copy(model, dtype):
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.data = p.data.to(dtype)
    return m.eval()


def train_dna_tokenizer(vocab: int, seed: int, corpus=None):
    """A DNABERT-S-shaped BPE ([CLS] … [SEP]) of `vocab` tokens, trained on `corpus` (an iterable of DNA strings;
    default: random sequences from `seed`). Also used by pipeline_gpu.py."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    if corpus is None:
        rng = random.Random(seed)
        corpus = ["".join(rng.choice("ACGT") for _ in range(500)) for _ in range(3000)]
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials,
                                                        initial_alphabet=list("ACGT"), show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    return tok


class Frame:
    __slots__ = ("id", "nucleotide", "protein")

    def __init__(self, id, nucleotide, protein):
        self.id, self.nucleotide, self.protein = id, nucleotide, protein


def make_frames(n, aa_lo, aa_hi, seed, tag):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.randint(aa_lo, aa_hi)
        out.append(Frame(f"{tag}{i}_chunk_1F1", "".join(rng.choice("ACGT") for _ in range(3 * k + 1)),
                         "".join(rng.choice(AA) for _ in range(k))))
    return out


# ------------------------------------------------------------------------------------------------- ceilings
def matmul_ceiling(dev, n=8192, dtype=torch.float16):
    if dev.type != "cuda":
        return None
    sets = [(torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)) for _ in range(3)]
    for i in range(5):
        a, b = sets[i % 3]
        a @ b
    times = []
    for i in range(20):
        a, b = sets[i % 3]
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e) / 1000)
    del sets
    torch.cuda.empty_cache()
    med = statistics.median(times)
    return 2 * n**3 / med / 1e12


class NvmlSampler(threading.Thread):
    """GPU utilisation (% of time a kernel ran, per NVML's sample window) sampled every 20 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[int] = []
        self.stop_flag = threading.Event()
        self.ok = False
        try:
            import pynvml

            pynvml.nvmlInit()
            index = int(os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or 0)
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.nvml = pynvml
            self.ok = True
        except Exception as exc:  # noqa: BLE001
            say("NVML unavailable:", exc)

    def run(self):
        while self.ok and not self.stop_flag.is_set():
            self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)
            time.sleep(0.02)

    def mean(self):
        return statistics.mean(self.samples) / 100 if self.samples else None


# ------------------------------------------------------------------------------------------------- engine runs
def run_engine(engine: EmbeddingEngine, frames, every=10_000):
    parts = [frames[i:i + every] for i in range(0, len(frames), every)]
    got = {}
    engine.telemetry = Telemetry(total_frames=len(frames), num_models=len(engine.encoders), progress_every_s=1e9)
    dev = engine.device
    sync(dev)
    base = 0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    t0 = time.perf_counter()
    engine.embed_parts(parts, lambda i, f: got.__setitem__(i, f))
    sync(dev)
    wall = time.perf_counter() - t0
    feats = Features.concat([got[i] for i in range(len(parts))])
    # Peak above what was resident before the run (weights, and the benchmark's own fp32 copies): the engine's
    # working memory. The engine's whole footprint is this plus the fp16 weights.
    peak = torch.cuda.max_memory_allocated(dev) - base if dev.type == "cuda" else None
    return wall, engine.telemetry.summary(), feats, peak


def esm_flops_per_token(cfg: Esm2Config, mean_len: float) -> float:
    e, f, n = cfg.embed_dim, cfg.ffn_dim, cfg.num_layers
    return n * 2 * (4 * e * e + 2 * e * f) + 4 * e * n * mean_len


def dna_flops_per_token(cfg: DnabertConfig, mean_len: float) -> float:
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
    return n * 2 * (h * 3 * h + h * h + h * 2 * i + i * h) + 4 * h * n * mean_len


def mean_seq_len_weighted(lengths):
    """Token-weighted mean sequence length: the L in the per-token attention FLOPs."""
    lengths = np.asarray(lengths, dtype=np.float64)
    return float((lengths**2).sum() / lengths.sum())


# ------------------------------------------------------------------------------------------------- HF baseline
def hf_esm_from(model: ESM2, dev, dtype):
    from transformers import EsmConfig, EsmModel

    c = model.cfg
    cfg = EsmConfig(vocab_size=33, hidden_size=c.embed_dim, num_hidden_layers=c.num_layers,
                    num_attention_heads=c.num_heads, intermediate_size=c.ffn_dim, pad_token_id=1, mask_token_id=32,
                    layer_norm_eps=1e-5, token_dropout=True, position_embedding_type="rotary",
                    emb_layer_norm_before=False, max_position_embeddings=1026, hidden_act="gelu")
    cfg._attn_implementation = "sdpa"
    with torch.device(dev):
        hf = EsmModel(cfg, add_pooling_layer=False)
    state = esm2_mod.to_external_state(model, "hf")
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "inv_freq" not in k and "position_ids" not in k and "contact_head" not in k]:
        raise RuntimeError(f"HF weights did not map: missing {missing[:5]}, unexpected {unexpected[:5]}")
    hf = hf.to(dtype)
    return hf.eval()


@torch.inference_mode()
def run_hf(hf, frames, dev, budget=65536):
    toks = [np.asarray(esm2_mod.encode_protein(f.protein), np.int64) for f in frames]
    order = sorted(range(len(toks)), key=lambda i: len(toks[i]))
    batches, cur, width = [], [], 0
    for i in order:  # fair-esm get_batch_indices: padded size (max length × count) within the budget
        w = max(width, len(toks[i]))
        if cur and w * (len(cur) + 1) > budget:
            batches.append(cur)
            cur, w = [], len(toks[i])
        cur.append(i)
        width = w
    if cur:
        batches.append(cur)
    out = np.empty((len(frames), hf.config.hidden_size), np.float32)

    def one(batch):
        width = max(len(toks[i]) for i in batch)
        ids = np.full((len(batch), width), 1, np.int64)
        for r, i in enumerate(batch):
            ids[r, :len(toks[i])] = toks[i]
        ids_t = torch.from_numpy(ids)
        ids_t = ids_t.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else ids_t
        mask = ids_t.ne(1)
        h = hf(input_ids=ids_t, attention_mask=mask.long()).last_hidden_state
        res = mask.clone()
        res[:, 0] = False
        res &= ids_t.ne(2)
        pooled = (h.float() * res[..., None]).sum(1) / res.sum(1, keepdim=True)
        return pooled.to("cpu", non_blocking=True)

    one(batches[0])  # warm-up
    sync(dev)
    t0 = time.perf_counter()
    results = [(b, one(b)) for b in batches]
    sync(dev)
    wall = time.perf_counter() - t0
    for b, p in results:
        out[b] = p.numpy()
    return wall, out, len(batches)


# ------------------------------------------------------------------------------------------------- compile
def compiled_esm_forward(model: ESM2):
    return model.compiled_forward(compile=True)


# ------------------------------------------------------------------------------------------------- references
@torch.inference_mode()
def reference_fp32(esm32, dna32, tokenizer, frames, dev, batch=32):
    """Per-sequence fp32 features through the models' padded reference forwards (length-sorted padded batches)."""
    prot = np.empty((len(frames), esm32.cfg.embed_dim), np.float32)
    nuc = np.empty((len(frames), dna32.cfg.hidden_size), np.float32)
    order = sorted(range(len(frames)), key=lambda i: len(frames[i].protein))
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        enc = [esm2_mod.encode_protein(frames[i].protein) for i in idx]
        tokens = esm2_mod.pad_tokens(enc).to(dev)
        h = esm32.forward_padded(tokens)
        for r, i in enumerate(idx):
            n = len(enc[r]) - 2
            prot[i] = h[r, 1:min(1024, n) + 1].mean(0).float().cpu().numpy()
        ids = [tokenizer.encode(frames[i].nucleotide).ids for i in idx]
        width = max(len(x) for x in ids)
        t = torch.full((len(ids), width), 3, dtype=torch.long)
        m = torch.zeros((len(ids), width), dtype=torch.long)
        for r, x in enumerate(ids):
            t[r, :len(x)] = torch.tensor(x)
            m[r, :len(x)] = 1
        h = dna32.forward_padded(t.to(dev), m.to(dev))
        for r, x in enumerate(ids):
            nuc[idx[r]] = h[r, :len(x)].mean(0).float().cpu().numpy()
    return prot, nuc


def cosines(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    mu = b.mean(0)
    ac, bc = a - mu, b - mu
    centred = (ac * bc).sum(1) / np.linalg.norm(ac, axis=1) / np.linalg.norm(bc, axis=1)
    rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)
    return float(cos.min()), float(centred.min()), float(rel.max())


@torch.no_grad()
def classifier_agreement(ref: np.ndarray, test: np.ndarray, seed: int):
    """Random classifier of the real width; BatchNorm statistics and output bias set from the reference
    features so the calls split about evenly (the most sensitive setting for disagreements)."""
    torch.manual_seed(seed)
    clf = MLPClassifier(ref.shape[1]).eval()
    x_ref, x_test = torch.from_numpy(ref), torch.from_numpy(test)
    h = clf.hidden_layer(x_ref)
    clf.bn1.running_mean.copy_(h.mean(0))
    clf.bn1.running_var.copy_(h.var(0) + 1e-6)
    diff = clf.logits(x_ref)
    d = diff[:, 1] - diff[:, 0]
    clf.output_layer.bias[1] -= d.median()
    p_ref, p_test = clf(x_ref), clf(x_test)
    calls_ref, calls_test = p_ref.argmax(1), p_test.argmax(1)
    agree = float((calls_ref == calls_test).double().mean())
    return {"frames": len(ref), "agreement": agree, "disagreements": int((calls_ref != calls_test).sum()),
            "virus_share": float(calls_ref.double().mean()),
            "max_score_diff": float((p_ref - p_test).abs().max())}


# ------------------------------------------------------------------------------------------------- DNABERT attention
def pad_segments(x: torch.Tensor, seq_of, pos, n_seq: int, max_seqlen: int) -> torch.Tensor:
    """Packed [T, ...] → padded [n_seq, max_seqlen, ...], zeros in the padding (the naive layout timed against)."""
    padded = x.new_zeros((n_seq, max_seqlen) + tuple(x.shape[1:]))
    padded[seq_of, pos] = x
    return padded


def dnabert_attention_compare(dev, dtype, tokenizer, frames, budget=32768):
    from virnucpro.models.attention import alibi_slopes, flex_alibi_attention
    from virnucpro.models.dnabert import alibi_bias

    toks = [np.asarray(e.ids, np.int32) for e in tokenizer.encode_batch([f.nucleotide for f in frames])]
    batch = packing.pack(toks, budget, packing.POOL_ALL)[0]
    t, hds, d = batch.num_tokens, 12, 64
    cu = torch.from_numpy(batch.cu_seqlens).to(dev)
    q, k, v = (torch.randn(t, hds, d, device=dev, dtype=dtype) for _ in range(3))
    slopes = torch.tensor(alibi_slopes(hds), device=dev)
    seq_of, pos = esm2_mod.segment_positions(cu, t)
    n_seq, L = cu.numel() - 1, batch.max_seqlen
    res = {"tokens": t, "sequences": n_seq, "max_seqlen": L}

    def padded():
        valid = torch.zeros(n_seq, L, dtype=torch.bool, device=dev)
        valid[seq_of, pos] = True
        bias = (alibi_bias(slopes, L)[None] + (~valid).float()[:, None, None, :] * -10000.0).to(dtype)
        qp, kp, vp = (pad_segments(x, seq_of, pos, n_seq, L).transpose(1, 2) for x in (q, k, v))
        out = torch.nn.functional.scaled_dot_product_attention(qp, kp, vp, attn_mask=bias)
        return out.transpose(1, 2)[seq_of, pos]

    def time_it(fn, reps=20):
        for _ in range(3):
            fn()
        sync(dev)
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(reps):
            fn()
        e.record()
        e.synchronize()
        return s.elapsed_time(e) / reps

    ref = padded()
    res["padded_sdpa_ms_incl_bias"] = time_it(padded)
    t0 = time.perf_counter()
    out, bm = flex_alibi_attention(q, k, v, cu, L, slopes)
    sync(dev)
    res["flex_first_call_s"] = time.perf_counter() - t0
    res["flex_ms_with_mask_reuse"] = time_it(lambda: flex_alibi_attention(q, k, v, cu, L, slopes, block_mask=bm))
    res["flex_ms_incl_mask_build"] = time_it(lambda: flex_alibi_attention(q, k, v, cu, L, slopes), reps=5)
    res["flex_vs_padded_max_abs_diff"] = float((out.float() - ref.float()).abs().max())
    return res


# ------------------------------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=sorted(SIZES), default="full")
    ap.add_argument("--out", default=os.environ.get("OUT", "bench_out"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--skip", default="", help="comma list: hf,compile,check,flex,shard")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--budget", type=int, default=None, help="token budget (default: the engine's own)")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    size = SIZES[args.mode]
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    dtype = torch.float16 if cuda else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 reference stays strict fp32
    torch.backends.cudnn.allow_tf32 = False
    R: dict = {"mode": args.mode, "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
               "cudnn": torch.backends.cudnn.version() if cuda else None}
    try:
        import transformers

        R["transformers"] = transformers.__version__
    except ImportError:
        pass
    if cuda:
        R["gpu"] = torch.cuda.get_device_name(dev)
        R["gpu_memory_gib"] = round(torch.cuda.get_device_properties(dev).total_memory / 2**30, 1)
    say("env:", json.dumps(R))

    t0 = time.perf_counter()
    R["matmul_fp16_tflops"] = matmul_ceiling(dev)
    say(f"matmul fp16 8192^3: {R['matmul_fp16_tflops']} TFLOP/s ({time.perf_counter() - t0:.1f} s)")

    # Models: fp32 masters (for the reference) and fp16 copies (for the engine), random HF-style init.
    t0 = time.perf_counter()
    with torch.device(dev):
        esm32 = ESM2(size["esm"])
        dna32 = DNABERT(size["dna"])
    init_weights(esm32, 1)
    init_weights(dna32, 2)
    esm32.eval()
    dna32.eval()
    esm = half_copy(esm32, dtype)
    dna = half_copy(dna32, dtype)
    R["esm_params"] = sum(p.numel() for p in esm.parameters())
    R["dnabert_params"] = sum(p.numel() for p in dna.parameters())
    R["fp16_weights_gib"] = round(sum(p.numel() * p.element_size() for m in (esm, dna) for p in m.parameters()) / 2**30, 2)
    tokenizer = train_dna_tokenizer(size["dna_vocab"], 3)
    say(f"models built ({time.perf_counter() - t0:.1f} s): ESM-2 {R['esm_params']:,} params, "
        f"DNABERT-S {R['dnabert_params']:,} params, DNABERT vocab {tokenizer.get_vocab_size()}")

    work = {"500bp": make_frames(size["n500"], 150, 166, 10, "a"),
            "150bp": make_frames(size["n150"], 45, 50, 11, "b")}
    for name, frames in work.items():
        e_tok = sum(len(f.protein) + 2 for f in frames)
        d_tok = sum(len(e.ids) for e in tokenizer.encode_batch([f.nucleotide for f in frames]))
        R[f"work_{name}"] = {"frames": len(frames), "esm_tokens": e_tok, "dnabert_tokens": d_tok}
        say(f"workload {name}: {len(frames)} frames, {e_tok} ESM tokens, {d_tok} DNABERT tokens")

    encoders = build_encoders({"protein": esm, "nucleotide": dna},
                              {"protein": EsmTokenize(), "nucleotide": DnabertTokenize(tokenizer)}, args.budget)
    engine = EmbeddingEngine(encoders, dev, workers=args.workers)
    R["token_budget"] = dict(zip([e.name for e in encoders], engine.budgets))
    esm_only = EmbeddingEngine(encoders[:1], dev, workers=args.workers)
    say("token budgets:", R["token_budget"])

    # Warm-up: every path once (cuDNN plans, allocator), then timed passes.
    t0 = time.perf_counter()
    run_engine(engine, work["500bp"][:200])
    run_engine(engine, work["150bp"][:400])
    say(f"warm-up {time.perf_counter() - t0:.1f} s")

    def record(label, frames, eng):
        wall, summ, feats, peak = run_engine(eng, frames)
        m = summ["models"]
        e = m.get("protein")
        d = m.get("nucleotide")
        esm_len = mean_seq_len_weighted([len(f.protein) + 2 for f in frames])
        res = {"wall_s": round(wall, 3), "frames_per_s": round(len(frames) / wall, 1),
               "work_mem_peak_gib": round(peak / 2**30, 2) if peak else None,
               "loader_wait_s": summ["loader_wait_seconds"]}
        if e:
            res["esm_tokens_per_s_device"] = e["tokens_per_s"]
            res["esm_tokens_per_s_wall"] = round(e["tokens"] / wall, 1)
            res["esm_seqs_per_s_device"] = e["sequences_per_s"]
            res["esm_device_s"] = e["device_seconds"]
            res["esm_batches"] = e["batches"]
            res["budget_fill"] = e["budget_fill"]
            if R["matmul_fp16_tflops"]:
                fl = esm_flops_per_token(size["esm"], esm_len)
                res["esm_mfu_2params"] = round(2 * R["esm_params"] * e["tokens_per_s"] / 1e12 / R["matmul_fp16_tflops"], 4)
                res["esm_mfu_with_attention"] = round(fl * e["tokens_per_s"] / 1e12 / R["matmul_fp16_tflops"], 4)
        if d:
            res["dnabert_tokens_per_s_device"] = d["tokens_per_s"]
            res["dnabert_device_s"] = d["device_seconds"]
            if e:
                res["dnabert_over_esm_time"] = round(d["device_seconds"] / e["device_seconds"], 4)
        if e and d:
            res["gpu_busy_events"] = round((e["device_seconds"] + d["device_seconds"]) / wall, 4)
        R[label] = res
        say(f"{label}: {json.dumps(res)}")
        return feats

    for name, frames in work.items():
        record(f"engine_{name}", frames, engine)
        record(f"engine_esm_only_{name}", frames, esm_only)

    eager_forward = esm.forward_packed
    compiled_active = False
    if "compile" not in skip and cuda:
        fwd = compiled_esm_forward(esm)
        t0 = time.perf_counter()
        esm.forward_packed = fwd
        compiled_active = True
        run_engine(esm_only, work["500bp"][:300])
        run_engine(esm_only, work["150bp"][:600])
        R["compile_seconds"] = round(time.perf_counter() - t0, 1)
        say(f"compile + warm-up: {R['compile_seconds']} s")
        for name, frames in work.items():
            record(f"compiled_esm_only_{name}", frames, esm_only)
            record(f"compiled_engine_{name}", frames, engine)
        from torch._dynamo.utils import counters

        R["dynamo_unique_graphs"] = int(counters["stats"].get("unique_graphs", 0))
        say("dynamo unique graphs:", R["dynamo_unique_graphs"])

    if "hf" not in skip:
        hf = hf_esm_from(esm32, dev, dtype)
        for name, frames in work.items():
            wall, hf_feats, nb = run_hf(hf, frames, dev)
            toks = R[f"work_{name}"]["esm_tokens"]
            R[f"hf_{name}"] = {"wall_s": round(wall, 3), "tokens_per_s": round(toks / wall, 1), "batches": nb}
            say(f"hf_{name}: {R[f'hf_{name}']}")
        # Same weights: HF fp16 and our packed fp16 must agree.
        _, _, ours, _ = run_engine(esm_only, work["500bp"][:64])
        _, hf_feats, _ = run_hf(hf, work["500bp"][:64], dev)
        R["hf_vs_ours_fp16"] = dict(zip(("min_cos", "min_centred_cos", "max_rel"), cosines(ours["protein"], hf_feats)))
        say("HF fp16 vs ours fp16 (same weights):", R["hf_vs_ours_fp16"])
        del hf
        torch.cuda.empty_cache() if cuda else None

    if "flex" not in skip and cuda:
        try:
            R["dnabert_attention"] = dnabert_attention_compare(dev, dtype, tokenizer, work["500bp"][:1000])
        except Exception as exc:  # noqa: BLE001 - a prototype API; record the failure and go on
            R["dnabert_attention"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        say("DNABERT attention:", R["dnabert_attention"])

    if "shard" not in skip:
        # The whole embed step of a shard: read the TSV, pack, both models, write the npz.
        for name, frames in (("500bp", work["500bp"][:size["n_shard500"]]), ("150bp", work["150bp"][:size["n_shard150"]])):
            with tempfile.TemporaryDirectory() as tmp:
                tsv = Path(tmp) / "shard.tsv"
                with open(tsv, "w") as fh:
                    fh.write("frame_id\tnucleotide\tprotein\n")
                    for f in frames:
                        fh.write(f"{f.id}\t{f.nucleotide}\t{f.protein}\n")
                sampler = NvmlSampler()
                sampler.start()
                t0 = time.perf_counter()
                try:
                    from virnucpro.io.frames import read_frames_tsv

                    read = list(read_frames_tsv(tsv))
                except ImportError:
                    with open(tsv) as fh:
                        next(fh)
                        read = [Frame(*line.rstrip("\n").split("\t")) for line in fh]
                parts = [read[i:i + 10000] for i in range(0, len(read), 10000)]
                got = {}
                engine.telemetry = Telemetry(total_frames=len(read), num_models=2, progress_every_s=1e9)
                engine.embed_parts(parts, lambda i, f: got.__setitem__(i, f))
                save_features(Path(tmp) / "out.npz", Features.concat([got[i] for i in range(len(parts))]))
                wall = time.perf_counter() - t0
                sampler.stop_flag.set()
                sampler.join()
                summ = engine.telemetry.summary()
                busy_ev = sum(m["device_seconds"] for m in summ["models"].values()) / wall
                R[f"shard_{name}"] = {"frames": len(read), "wall_s": round(wall, 3),
                                      "frames_per_hour": round(len(read) / wall * 3600),
                                      "gpu_busy_nvml": sampler.mean(), "gpu_busy_events": round(busy_ev, 4),
                                      "loader_wait_s": summ["loader_wait_seconds"],
                                      "compiled_esm": compiled_active}
                say(f"shard_{name}: {R[f'shard_{name}']}")

    if "check" not in skip:
        esm.forward_packed = eager_forward  # the correctness check covers the default path
        frames = work["500bp"][: size["n_check"] // 2] + work["150bp"][: size["n_check"] // 2]
        t0 = time.perf_counter()
        prot32, nuc32 = reference_fp32(esm32, dna32, tokenizer, frames, dev)
        say(f"fp32 reference: {time.perf_counter() - t0:.1f} s")
        _, _, feats, _ = run_engine(engine, frames)
        R["check_esm"] = dict(zip(("min_cos", "min_centred_cos", "max_rel"), cosines(feats["protein"], prot32)))
        R["check_dnabert"] = dict(zip(("min_cos", "min_centred_cos", "max_rel"), cosines(feats["nucleotide"], nuc32)))
        ref_cat = np.concatenate([nuc32, prot32], 1)
        R["check_classifier"] = classifier_agreement(ref_cat, feats.concatenated(), 5)
        say("check ESM-2 packed fp16 vs fp32:", R["check_esm"])
        say("check DNABERT-S packed fp16 vs fp32:", R["check_dnabert"])
        say("check classifier calls:", R["check_classifier"])
        if "compile" not in skip and cuda:
            esm.forward_packed = compiled_esm_forward(esm)
            _, _, feats_c, _ = run_engine(engine, frames)
            R["check_esm_compiled"] = dict(zip(("min_cos", "min_centred_cos", "max_rel"),
                                               cosines(feats_c["protein"], prot32)))
            say("check ESM-2 compiled fp16 vs fp32:", R["check_esm_compiled"])

    engine.close()
    esm_only.close()
    (out_dir / f"bench_{args.mode}.json").write_text(json.dumps(R, indent=2) + "\n")
    (out_dir / f"bench_{args.mode}.log").write_text("\n".join(LOG_LINES) + "\n")
    say("RESULT", json.dumps(R))


if __name__ == "__main__":
    main()
