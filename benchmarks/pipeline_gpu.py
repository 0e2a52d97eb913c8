"""The pipeline as users run it, timed on a GPU machine: `nextflow run main.nf -profile gpu`, start to finish.

    python3 benchmarks/pipeline_gpu.py models --size full --out /tmp/bench/models
    python3 benchmarks/pipeline_gpu.py inputs --workload reads --n 300000 --out /tmp/bench/reads.fa
    python3 benchmarks/pipeline_gpu.py run --input /tmp/bench/reads.fa --chunk-length 300 \
        --models /tmp/bench/models --workdir /tmp/bench/run1 --label reads [--cold] --out $OUT

`benchmarks/pipeline_gpu.sh` strings these together on the device machine (JRE and Nextflow jars carried in).

What `run` reports, all from the one run so that ratios hold:
  - the whole wall time of `nextflow run` (JVM start to exit)
  - pure embedding compute: the engine's summed CUDA-event kernel time of both models over every EMBED task
  - per EMBED task: model load, checksum, compile, lease wait, compute, write, peak host RSS (embed.json fields
    where the engine reports them; Nextflow's trace for peak RSS and the task's own run time)
  - GPU busy (`nvidia-smi dmon`, SM %) from the first EMBED start to the last EMBED end, and over the whole run
  - the fixed cost of each task: its run time minus its pure compute, as a fraction of its GPU time
  - the exposed fixed cost of each task: how long the GPU waited between the previous task's release of it and
    this task's first batch (for the first task on a GPU: from its start to its first batch); a task that stood
    by (embed/standby.py) built and warmed up while the GPU was busy, and `standby` is how long it then waited
  - memory per EMBED task, sampled every 2 s from /proc: peak RSS of its main process, and peak RSS and PSS
    summed over its process tree (main process + loader workers). Summed RSS counts a shared library page once
    per process; PSS splits each shared page between the processes that map it, so the tree's PSS is what the
    task really costs the machine

Models are random weights at full size written in the published formats (speed does not depend on values):
ESM-2 3B as a fair-esm `.pt` with fp16 tensors, a DNABERT-S directory (config.json, pytorch_model.bin, a
4096-token BPE tokenizer.json trained on the benchmark's genome), and a 3328→512→2 classifier pickled as a
whole `__main__.MLPClassifier`, like the original's train.py. They carry the test-model flag, so the pipeline
says their scores mean nothing.

Inputs are synthetic, seeded and written on the machine (no genome can be downloaded there): a bacterial-like
genome made of genes (random sense codons, both strands) and short intergenic spacers, so that reads have
stop-free frames at the rate real coding DNA gives; 150-bp reads sampled from it with 0.2% substitutions and
a share of exact duplicates (PCR/optical duplicates), and a contig set of 2-60 kb pieces of other such genomes.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
STOPS = {"TAA", "TAG", "TGA"}
SENSE = np.array([np.frombuffer((a + b + c).encode(), np.uint8) for a in "ACGT" for b in "ACGT" for c in "ACGT"
                  if a + b + c not in STOPS])
COMPLEMENT = np.zeros(256, np.uint8)
for x, y in zip(b"ACGTN", b"TGCAN"):
    COMPLEMENT[x] = y


# ------------------------------------------------------------------------------------------------ inputs
def genome(length: int, rng: np.random.Generator) -> np.ndarray:
    """Genes of 300-3000 bp of random sense codons (half on the reverse strand) between 20-300 bp spacers."""
    parts, total = [], 0
    while total < length:
        spacer = BASES[rng.integers(0, 4, rng.integers(20, 300))]
        gene = SENSE[rng.integers(0, len(SENSE), rng.integers(100, 1000))].reshape(-1)
        if rng.random() < 0.5:
            gene = COMPLEMENT[gene[::-1]]
        parts += [spacer, gene]
        total += len(spacer) + len(gene)
    return np.concatenate(parts)[:length]


def write_reads(path: Path, n: int, rng: np.random.Generator, read_len=150, dup_fraction=0.18, err=0.002):
    g = genome(5_000_000, rng)
    n_unique = int(n * (1 - dup_fraction))
    starts = rng.integers(0, len(g) - read_len, n_unique)
    reads = g[starts[:, None] + np.arange(read_len)]
    flip = rng.random(n_unique) < 0.5
    reads[flip] = COMPLEMENT[reads[flip, ::-1]]
    errors = rng.random(reads.shape) < err
    reads[errors] = BASES[rng.integers(0, 4, int(errors.sum()))]
    # Exact copies of random earlier reads, placed at random positions (duplicates are not adjacent in a run).
    order = np.concatenate([np.arange(n_unique), rng.integers(0, n_unique, n - n_unique)])
    rng.shuffle(order)
    with open(path, "wb") as fh:
        for i, r in enumerate(order):
            fh.write(b">read%d\n" % i + reads[r].tobytes() + b"\n")
    return {"reads": n, "read_length": read_len, "exact_duplicates_planted": n - n_unique}


def write_contigs(path: Path, n: int, rng: np.random.Generator):
    lengths = np.exp(rng.uniform(np.log(2000), np.log(60000), n)).astype(int)
    with open(path, "wb") as fh:
        for i, length in enumerate(lengths):
            seq = genome(int(length), rng).tobytes()
            fh.write(b">contig%d len=%d\n" % (i, length))
            for j in range(0, len(seq), 80):
                fh.write(seq[j:j + 80] + b"\n")
    return {"contigs": n, "total_bp": int(lengths.sum())}


# ------------------------------------------------------------------------------------------------ models
def write_models(out: Path, size: str, seed=0):
    import torch

    from virnucpro.models.dnabert import DNABERT, DnabertConfig, hf_names
    from virnucpro.models.esm2 import ESM2, Esm2Config, to_external_state
    from virnucpro.models import loading, tiny

    cfgs = {
        "full": (Esm2Config(36, 2560, 40, 10240), (768, 12, 12, 3072), 4096),
        "smoke": (Esm2Config(2, 2560, 40, 10240), (768, 2, 12, 3072), 4096),
    }
    esm_cfg, (hidden, layers, heads, inter), vocab = cfgs[size]
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()

    with torch.device(dev):
        esm = ESM2(esm_cfg).half()
    _randomize(esm, seed)
    state = {f"encoder.sentence_encoder.{k}": v.detach().to("cpu", torch.float16)
             for k, v in to_external_state(esm, "fairesm").items()}
    # fp16 everywhere except the rotary buffer, as in the published esm2_t36_3B_UR50D.pt
    for k in state:
        if k.endswith("inv_freq"):
            state[k] = state[k].float()
    state["encoder.lm_head.weight"] = state["encoder.sentence_encoder.embed_tokens.weight"]
    del esm
    args = argparse.Namespace(arch="esm2", encoder_layers=esm_cfg.num_layers, encoder_embed_dim=esm_cfg.embed_dim,
                              encoder_ffn_embed_dim=esm_cfg.ffn_dim, encoder_attention_heads=esm_cfg.num_heads,
                              token_dropout=True, max_positions=1024, dropout=0.0, attention_dropout=0.0)
    esm_path = out / "esm2_t36_3B_UR50D.pt"
    torch.save({"model": state, "cfg": {"model": args, loading.TEST_MODEL_FLAG: True}}, esm_path)
    del state

    dna_dir = out / "DNABERT-S"
    dna_dir.mkdir(exist_ok=True)
    tok = _train_tokenizer(vocab, seed)
    tok.save(str(dna_dir / "tokenizer.json"))
    dcfg = DnabertConfig(tok.get_vocab_size(), hidden, layers, heads, inter)
    with torch.device(dev):
        dna = DNABERT(dcfg)
    _randomize(dna, seed + 1)
    ours = dna.state_dict()
    torch.save({ext: ours[name].detach().cpu().float() for name, ext in hf_names(dcfg).items()},
               dna_dir / "pytorch_model.bin")
    (dna_dir / "config.json").write_text(json.dumps({
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": inter, "vocab_size": dcfg.vocab_size,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2, "alibi_starting_size": 512,
        "max_position_embeddings": 512, "pad_token_id": 0, "torch_dtype": "float32", loading.TEST_MODEL_FLAG: True,
    }, indent=2) + "\n")

    classifier = tiny._TrainPyMLP(hidden + esm_cfg.embed_dim, 512, 2).eval()
    setattr(classifier, loading.TEST_MODEL_FLAG, True)
    tiny.save_as_main_class(classifier, "MLPClassifier", out / "500_model.pth")
    shutil.copy(out / "500_model.pth", out / "300_model.pth")
    (out / loading.TEST_MODEL_MARKER).write_text("random full-size weights written by benchmarks/pipeline_gpu.py\n")
    sizes = {p.name: p.stat().st_size for p in out.rglob("*") if p.is_file()}
    return {"seconds": round(time.perf_counter() - t0, 1), "bytes": sizes}


def _randomize(model, seed):
    import torch

    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.normal_(0.0, 0.02, generator=g)
            elif "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()


def _train_tokenizer(vocab: int, seed: int):
    """The BPE trained on a synthetic 3 Mb genome in 1 kb pieces (no real genome can be fetched on the GPU machine)."""
    from embed_benchmark import train_dna_tokenizer  # benchmarks/ is this script's directory, so on sys.path

    g = genome(3_000_000, np.random.default_rng(seed)).tobytes().decode()
    return train_dna_tokenizer(vocab, seed, (g[i:i + 1000] for i in range(0, len(g), 1000)))


# ------------------------------------------------------------------------------------------------ the run
TRACE_CONFIG = """
trace {
    enabled = true
    raw     = true
    fields  = 'task_id,hash,name,status,exit,submit,start,complete,realtime,duration,%cpu,peak_rss,peak_vmem,workdir'
    file    = '@TRACE_FILE@'
    overwrite = true
}
"""
# SLURM-like cold start: every EMBED task starts with an empty page cache, as on a fresh node.
COLD_CONFIG = """
process { withName: 'EMBED' { beforeScript = 'sync; echo 3 > /proc/sys/vm/drop_caches || echo "cannot drop caches" >&2' } }
"""


class TreeMemory(threading.Thread):
    """Samples, every `period` s, each `virnucpro embed` process tree's RSS and PSS (/proc/<pid>/smaps_rollup);
    keeps the peaks per task work directory (the main process's cwd, which Nextflow's trace names)."""

    def __init__(self, period=2.0):
        super().__init__(daemon=True)
        self.period = period
        self.peaks: dict[str, dict] = {}
        self.stop = threading.Event()

    @staticmethod
    def _memory_kb(pid: int) -> tuple[int, int]:
        rss = pss = 0
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
        return rss, pss

    def sample(self) -> None:
        parent, cmd = {}, {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as fh:
                    parent[int(d)] = int(fh.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{d}/cmdline", "rb") as fh:
                    cmd[int(d)] = fh.read().split(b"\0")
            except (OSError, IndexError, ValueError):
                continue
        roots = [pid for pid, argv in cmd.items() if b"virnucpro" in argv and b"embed" in argv
                 and not (b"virnucpro" in cmd.get(parent.get(pid), []) and b"embed" in cmd.get(parent.get(pid), []))]
        for root in roots:
            tree, frontier = [root], [root]
            while frontier:
                frontier = [pid for pid, ppid in parent.items() if ppid in frontier]
                tree += frontier
            try:
                workdir = os.readlink(f"/proc/{root}/cwd")
                mems = [self._memory_kb(pid) for pid in tree]
            except OSError:
                continue
            peak = self.peaks.setdefault(workdir, {"main_rss_kb": 0, "tree_rss_kb": 0, "tree_pss_kb": 0,
                                                   "processes": 0})
            peak["main_rss_kb"] = max(peak["main_rss_kb"], mems[0][0])
            peak["tree_rss_kb"] = max(peak["tree_rss_kb"], sum(m[0] for m in mems))
            peak["tree_pss_kb"] = max(peak["tree_pss_kb"], sum(m[1] for m in mems))
            peak["processes"] = max(peak["processes"], len(tree))

    def run(self) -> None:
        while not self.stop.wait(self.period):
            self.sample()


def exposed_fixed_costs(tasks: list[dict]) -> None:
    """Per task `exposed_s`: seconds its GPU sat without this task's work between the previous holder's release
    and this task's first batch; for a GPU's first task, from the task's start. Needs embed.json's marks."""
    by_gpu: dict = {}
    for t in sorted(tasks, key=lambda t: t.get("active_at_epoch") or t["start"]):
        if t.get("first_batch_at_epoch") is None:
            t["exposed_s"] = None
            continue
        previous = by_gpu.get(t.get("gpu"))
        since = previous if previous is not None else t["start"]
        t["exposed_s"] = round(t["first_batch_at_epoch"] - since, 1)
        by_gpu[t.get("gpu")] = t.get("released_at_epoch")


def run_pipeline(args):
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    models = Path(args.models)
    trace_path = work / "trace.tsv"
    config = work / "bench.config"
    config.write_text(TRACE_CONFIG.replace("@TRACE_FILE@", str(trace_path)) + (COLD_CONFIG if args.cold else ""))
    cmd = [str(ROOT / "tools/nextflow/nextflow"), "run", str(ROOT / "main.nf"), "-profile", "gpu",
           "-c", str(config), "-w", str(work / "work"),
           "--input", args.input, "--chunk_length", str(args.chunk_length),
           "--esm_model", str(models / "esm2_t36_3B_UR50D.pt"), "--dnabert_model", str(models / "DNABERT-S"),
           "--classifier", str(models / f"{args.chunk_length}_model.pth"), "--outdir", str(work / "results"),
           "--skip_multiqc"]  # MultiQC is not installed on the GPU machine; it is not what this measures
    cmd += args.extra
    dmon_log = work / "dmon.txt"
    dmon = None
    if shutil.which("nvidia-smi"):  # absent on a CPU machine, where this script is only dry-run
        dmon = subprocess.Popen(["nvidia-smi", "dmon", "-s", "u", "-o", "T", "-d", "1"],
                                stdout=open(dmon_log, "w"), stderr=subprocess.STDOUT)
    memory = TreeMemory()
    memory.start()
    t0 = time.time()
    with open(work / "nextflow.out", "w") as log:
        rc = subprocess.call(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    t1 = time.time()
    memory.stop.set()
    if dmon is not None:
        time.sleep(1.5)
        dmon.send_signal(signal.SIGINT)
        dmon.wait(timeout=10)
    result = summarise(work, trace_path, dmon_log, t0, t1, rc, memory.peaks)
    result.update({"label": args.label, "cold": args.cold, "command": " ".join(cmd)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.label}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{args.label}.md").write_text(markdown(result))
    print(markdown(result))
    if rc != 0:
        print((work / "nextflow.out").read_text()[-6000:])
    return rc


def read_trace(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def read_dmon(path: Path, day: datetime.date) -> list[tuple[float, float]]:
    """(epoch seconds, SM busy %) per dmon line; dmon prints only the time of day."""
    samples = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 3 or line.startswith("#") or not re.match(r"\d\d:\d\d:\d\d", parts[0]):
            continue
        try:
            hh, mm, ss = map(int, parts[0].split(":"))
            sm = float(parts[2])
        except ValueError:
            continue
        t = datetime.datetime.combine(day, datetime.time(hh, mm, ss)).timestamp()
        samples.append((t, sm))
    return samples


def busy_between(samples, start, end):
    inside = [sm for t, sm in samples if start <= t <= end]
    return round(sum(inside) / len(inside), 1) if inside else None


def summarise(work: Path, trace_path: Path, dmon_log: Path, t0: float, t1: float, rc: int,
              memory: dict | None = None) -> dict:
    trace = read_trace(trace_path)
    embeds = [r for r in trace if r["name"].startswith("VIRNUCPRO:EMBED") and r["status"] == "COMPLETED"]
    tasks = []
    for r in embeds:
        summary = next(Path(r["workdir"]).glob("*.embed.json"), None)
        s = json.loads(summary.read_text()) if summary else {}
        compute = sum(m.get("device_seconds", 0.0) for m in s.get("models", {}).values())
        realtime = int(r["realtime"]) / 1000
        mem = (memory or {}).get(os.path.realpath(r["workdir"]), {})
        gb = lambda kb: round(kb / 2**20, 2) if kb else None  # noqa: E731
        tasks.append({
            "task": r["name"].split("(")[-1].rstrip(")"),
            "start": int(r["start"]) / 1000, "complete": int(r["complete"]) / 1000,
            "realtime_s": round(realtime, 1),
            "compute_s": round(compute, 1),
            "fixed_s": round(realtime - compute, 1),
            "fixed_fraction": round((realtime - compute) / compute, 3) if compute else None,
            "peak_rss_gb": round(int(r["peak_rss"]) / 2**30, 2) if r.get("peak_rss", "-").isdigit() else None,
            "frames": s.get("frames"),
            **{k: s.get(k) for k in ("prepare_seconds", "model_load_seconds", "model_checksum_seconds",
                                     "compile_seconds", "lease_wait_seconds", "loader_wait_seconds", "compute_seconds", "write_seconds", "classify_seconds",
                                     "classify_tail_seconds", "features_released_bytes", "peak_host_rss_bytes", "host_rss_at_lease_bytes", "total_seconds", "dedup",
                                     "parts", "compiled_esm", "gpu", "standby_seconds",
                                     "lease_to_first_batch_seconds", "active_at_epoch", "first_batch_at_epoch",
                                     "released_at_epoch")},
            "main_rss_gb": gb(mem.get("main_rss_kb")), "tree_rss_gb": gb(mem.get("tree_rss_kb")),
            "tree_pss_gb": gb(mem.get("tree_pss_kb")), "processes": mem.get("processes"),
        })
    exposed_fixed_costs(tasks)
    wall = t1 - t0
    compute = sum(t["compute_s"] for t in tasks)
    day = datetime.date.fromtimestamp(t0)
    samples = read_dmon(dmon_log, day) if dmon_log.is_file() else []
    first = min((t["start"] for t in tasks), default=t0)
    last = max((t["complete"] for t in tasks), default=t1)
    steps = {}
    for r in trace:
        step = r["name"].split(" (")[0].split(":")[-1]
        steps.setdefault(step, 0.0)
        steps[step] += int(r["realtime"]) / 1000 if r["realtime"].isdigit() else 0.0
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip() if shutil.which("nvidia-smi") else "no GPU"
    return {
        "rc": rc,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "gpu": gpu, "host": platform.node(), "cpus": os.cpu_count(),
        "wall_s": round(wall, 1),
        "embed_compute_s": round(compute, 1),
        "wall_over_compute": round(wall / compute, 3) if compute else None,
        "embed_span_s": round(last - first, 1),
        "gpu_busy_embed_span_pct": busy_between(samples, first, last),
        "gpu_busy_whole_run_pct": busy_between(samples, t0, t1),
        "embed_tasks": len(tasks),
        "dedup_tokens_saved_fraction": {
            f: round(sum(t["dedup"][f]["tokens_saved"] for t in tasks) / max(1, sum(t["dedup"][f]["tokens"] for t in tasks)), 4)
            for f in ("protein", "nucleotide") if tasks and all(t.get("dedup") for t in tasks)},
        "max_task_rss_gb": max((t["peak_rss_gb"] or 0 for t in tasks), default=None),
        "max_task_pss_gb": max((t["tree_pss_gb"] or 0 for t in tasks), default=None),
        "exposed_fixed_s": round(sum(t["exposed_s"] or 0 for t in tasks), 1),
        "tasks_on_standby": sum(1 for t in tasks if (t.get("standby_seconds") or 0) > 0),
        "task_seconds_by_step": {k: round(v, 1) for k, v in sorted(steps.items())},
        "timeline": timeline(trace, t0),
        "tasks": sorted(tasks, key=lambda t: t["start"]),
    }


def timeline(trace: list[dict], t0: float) -> list[list]:
    """Each task's submit, start and end, in seconds since the run's command started (where a run's wall time
    goes: Nextflow's start, the steps, the gaps between them)."""
    rows = []
    for r in trace:
        marks = [int(r[k]) / 1000 - t0 if r.get(k, "-").isdigit() else None for k in ("submit", "start", "complete")]
        rows.append([r["name"].removeprefix("VIRNUCPRO:"), *(None if m is None else round(m, 1) for m in marks)])
    return sorted(rows, key=lambda row: row[1] if row[1] is not None else float("inf"))


def markdown(r: dict) -> str:
    lines = [f"### {r.get('label')} ({'cold start' if r.get('cold') else 'warm'}) — {r['gpu']}, {r['date']}", "",
             "| whole run | pure embed compute | wall / compute | EMBED span | GPU busy (EMBED span / whole run) "
             "| EMBED tasks | max task RSS | max task PSS | exposed fixed cost (sum) | tasks on standby |",
             "|---|---|---|---|---|---|---|---|---|---|",
             f"| {r['wall_s']} s | {r['embed_compute_s']} s | {r['wall_over_compute']} | {r['embed_span_s']} s "
             f"| {r['gpu_busy_embed_span_pct']}% / {r['gpu_busy_whole_run_pct']}% | {r['embed_tasks']} "
             f"| {r['max_task_rss_gb']} GB | {r.get('max_task_pss_gb')} GB | {r.get('exposed_fixed_s')} s "
             f"| {r.get('tasks_on_standby')} |", "",
             "| task | frames | run time | compute | part loop | fixed (share of compute) | before lease | load | checksum "
             "| compile "
             "| lease wait | loader wait | write | classify (after last batch) | peak RSS | standby | lease → 1st batch | exposed | main RSS "
             "| tree RSS / PSS |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in r["tasks"]:
        lines.append(f"| {t['task']} | {t['frames']} | {t['realtime_s']} s | {t['compute_s']} s "
                     f"| {t.get('compute_seconds')} "
                     f"| {t['fixed_s']} s ({t['fixed_fraction']}) | {t.get('prepare_seconds')} "
                     f"| {t['model_load_seconds']} "
                     f"| {t['model_checksum_seconds']} | {t['compile_seconds']} | {t['lease_wait_seconds']} "
                     f"| {t.get('loader_wait_seconds')} "
                     f"| {t['write_seconds']} | {t.get('classify_seconds')} ({t.get('classify_tail_seconds')}) "
                     f"| {t['peak_rss_gb']} GB "
                     f"| {t.get('standby_seconds')} "
                     f"| {t.get('lease_to_first_batch_seconds')} | {t.get('exposed_s')} s | {t.get('main_rss_gb')} GB "
                     f"| {t.get('tree_rss_gb')} / {t.get('tree_pss_gb')} GB |")
    lines += ["", f"Duplicate work saved (share of tokens): {r.get('dedup_tokens_saved_fraction')}"]
    lines += ["", "Task seconds by step: " + ", ".join(f"{k} {v}" for k, v in r["task_seconds_by_step"].items()), ""]
    lines += ["Timeline (s since the command started: submitted, started, ended): "
              + "; ".join(f"{name} {a}/{b}/{c}" for name, a, b, c in r.get("timeline", [])), ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("models")
    m.add_argument("--size", choices=("full", "smoke"), default="full")
    m.add_argument("--out", required=True)
    i = sub.add_parser("inputs")
    i.add_argument("--workload", choices=("reads", "contigs"), required=True)
    i.add_argument("--n", type=int, required=True)
    i.add_argument("--seed", type=int, default=1)
    i.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--input", required=True)
    r.add_argument("--chunk-length", type=int, choices=(300, 500), required=True)
    r.add_argument("--models", required=True)
    r.add_argument("--workdir", required=True)
    r.add_argument("--label", required=True)
    r.add_argument("--cold", action="store_true")
    r.add_argument("--out", required=True)
    r.add_argument("extra", nargs="*", help="more pipeline parameters, after --")
    args = p.parse_args(argv)
    if args.cmd == "models":
        print(json.dumps(write_models(Path(args.out), args.size)))
    elif args.cmd == "inputs":
        rng = np.random.default_rng(args.seed)
        writer = write_reads if args.workload == "reads" else write_contigs
        t = time.perf_counter()
        info = writer(Path(args.out), args.n, rng)
        print(json.dumps({**info, "seconds": round(time.perf_counter() - t, 1)}))
    else:
        return run_pipeline(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
