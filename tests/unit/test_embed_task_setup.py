"""The fixed cost of an EMBED task: checksums from the run's hash cache, models loaded only after the GPU lease,
a torch.compile cache shared by the run's tasks, and the phases recorded in the summary."""

import contextlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from virnucpro.cli import main
from virnucpro.embed import checkpoint, run
from virnucpro.io.frames import Frame, write_frames_tsv


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    path = tmp_path_factory.mktemp("shard") / "shard_00000.tsv"
    write_frames_tsv(path, [Frame(f"r{i}_chunk_1F1", "ACGTTGCA" * (i + 2), "MKV" * (i + 1)) for i in range(7)])
    return path


@pytest.fixture(scope="module")
def record(tiny_models, tmp_path_factory):
    d = tmp_path_factory.mktemp("prov")
    out = d / "model_provenance.json"
    assert main(["provenance", "--esm-model", str(tiny_models.esm_pt), "--dnabert-model", str(tiny_models.dnabert),
                 "--classifier", str(tiny_models.classifier), "--precision", "fp32", "--chunk-length", "500",
                 "--hash-cache", str(d / "cache"), "--out", str(out)]) == 0
    return out


def test_embed_takes_the_model_checksums_provenance_left_in_the_hash_cache(tiny_models, shard, record, tmp_path,
                                                                          monkeypatch):
    """PROVENANCE and the EMBED tasks share one hash cache (`--hash-cache`): a task finds every model's digest there,
    the very one PROVENANCE recorded, and reads no model file to build its checkpoint key."""
    models = json.loads(record.read_text())["models"]
    model_files = {f["path"] for m in models.values() for f in m["files"]}
    hashed = []
    real = checkpoint.file_sha256
    monkeypatch.setattr(checkpoint, "file_sha256", lambda p: hashed.append(os.path.realpath(p)) or real(p))
    paths = run.model_paths(tiny_models.esm_pt, tiny_models.dnabert)
    digests = run.model_digests(paths, record.parent / "cache")
    assert sorted(digests.values()) == sorted(models[role]["sha256"] for role in ("esm", "dnabert"))
    assert main(["embed", "--frames", str(shard), "--esm-model", str(tiny_models.esm_pt), "--dnabert-model",
                 str(tiny_models.dnabert), "--out", str(tmp_path / "o.npz"), "--device", "cpu", "--precision", "fp32",
                 "--checkpoint-dir", str(tmp_path / "ckpt"), "--hash-cache", str(record.parent / "cache")]) == 0
    assert hashed and not model_files & set(hashed)  # the shard was hashed, no model file
    assert not (tmp_path / "ckpt" / ".hash-cache").exists()


def test_models_are_opened_before_and_built_after_the_lease(tiny_models, shard, tmp_path, monkeypatch):
    from virnucpro.embed import lease
    from virnucpro.models import dnabert, esm2

    events = []

    @contextlib.contextmanager
    def fake_lease(lease_dir, gpus, **_):
        events.append("lease")
        yield None  # no GPU: the CPU path

    for mod, name in ((esm2, "open_esm2"), (esm2, "build_esm2"), (dnabert, "open_dnabert"),
                      (dnabert, "build_dnabert")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _real=real, _name=name, **k: events.append(_name) or _real(*a, **k))
    monkeypatch.setattr(lease, "acquire_gpu", fake_lease)
    summary = run.embed_shard(shard, tmp_path / "out.npz", esm_model=tiny_models.esm_pt,
                              dnabert_model=tiny_models.dnabert, device="auto", precision="fp32")
    assert events == ["open_esm2", "open_dnabert", "lease", "build_esm2", "build_dnabert"]
    assert summary["host_rss_at_lease_bytes"] > 0


def test_the_lease_is_handed_back_before_the_output_is_written(tiny_models, shard, tmp_path, monkeypatch):
    """The next task may start on the GPU while this one writes its features (several GB for a big shard)."""
    from virnucpro.embed import lease
    from virnucpro.io import features

    events = []

    @contextlib.contextmanager
    def fake_lease(lease_dir, gpus, **_):
        events.append("lease")
        yield None
        events.append("released")

    real_save = features.save_features
    monkeypatch.setattr(lease, "acquire_gpu", fake_lease)
    monkeypatch.setattr(features, "save_features", lambda *a, **k: events.append("save") or real_save(*a, **k))
    run.embed_shard(shard, tmp_path / "out.npz", esm_model=tiny_models.esm_pt, dnabert_model=tiny_models.dnabert,
                    device="auto", precision="fp32")
    assert events == ["lease", "released", "save"]
    assert len(features.load_features(tmp_path / "out.npz")) == 7


def test_summary_records_the_phases_of_the_task(tiny_models, shard, record, tmp_path):
    summary_path = tmp_path / "s.json"
    assert main(["embed", "--frames", str(shard), "--esm-model", str(tiny_models.esm_pt), "--dnabert-model",
                 str(tiny_models.dnabert), "--out", str(tmp_path / "o.npz"), "--device", "cpu", "--precision", "fp32",
                 "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "3",
                 "--hash-cache", str(record.parent / "cache"), "--summary", str(summary_path)]) == 0
    s = json.loads(summary_path.read_text())
    for field in ("model_load_seconds", "model_checksum_seconds", "compute_seconds", "write_seconds"):
        assert isinstance(s[field], float) and s[field] >= 0, field
    assert s["model_load_seconds"] > 0 and s["compute_seconds"] > 0 and s["write_seconds"] > 0
    assert s["lease_wait_seconds"] == 0.0 and s["compile_seconds"] == 0.0  # CPU: no lease, no compile
    assert s["peak_host_rss_bytes"] > 100 << 20  # torch alone is more than 100 MiB
    assert s["parts"] == 3


def test_compile_cache_dir_is_set_unless_the_user_chose_one(tmp_path, monkeypatch):
    monkeypatch.delenv(run.COMPILE_CACHE_ENV, raising=False)
    assert run.use_compile_cache(None) is None
    chosen = run.use_compile_cache(tmp_path / "cc")
    assert chosen == str(tmp_path / "cc") == os.environ[run.COMPILE_CACHE_ENV] and (tmp_path / "cc").is_dir()
    from torch._inductor.runtime.cache_dir_utils import cache_dir, triton_cache_dir

    assert cache_dir() == chosen and triton_cache_dir(0).startswith(chosen)
    monkeypatch.setenv(run.COMPILE_CACHE_ENV, str(tmp_path / "mine"))
    assert run.use_compile_cache(tmp_path / "cc") == str(tmp_path / "mine")


@pytest.mark.integration
def test_nothing_sets_the_compile_cache_variable_before_embed_does():
    """Importing torch._dynamo/_inductor writes torch's default into TORCHINDUCTOR_CACHE_DIR, which would then
    look like the user's choice: the embed command must not import them before use_compile_cache runs."""
    code = ("import os, torch\n"
            "import virnucpro.commands.embed, virnucpro.embed.failures, virnucpro.embed.lease, virnucpro.embed.run\n"
            "import virnucpro.embed.checkpoint, virnucpro.io.frames, virnucpro.models.esm2, virnucpro.models.dnabert\n"
            "print(os.environ.get('TORCHINDUCTOR_CACHE_DIR'))")
    env = {k: v for k, v in os.environ.items() if k != run.COMPILE_CACHE_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "None", out.stderr[-2000:]


_COMPILE_ONCE = textwrap.dedent("""
    import sys, torch
    from virnucpro.embed.run import use_compile_cache
    use_compile_cache(sys.argv[1])
    from torch._dynamo.utils import counters
    f = torch.compile(lambda x: torch.sin(x) * 2 + 1)
    f(torch.randn(16))
    print(counters["inductor"]["fxgraph_cache_miss"], counters["inductor"]["fxgraph_cache_hit"])
""")


@pytest.mark.integration
@pytest.mark.slow
def test_a_second_process_reuses_the_first_ones_compile(tmp_path):
    """Two tasks of a run: the second loads the compiled graph from the shared cache instead of compiling."""
    cache = tmp_path / "compile-cache"
    env = {k: v for k, v in os.environ.items() if k != run.COMPILE_CACHE_ENV}
    root = Path(__file__).resolve().parents[2]

    def once():
        out = subprocess.run([sys.executable, "-c", _COMPILE_ONCE, str(cache)], capture_output=True, text=True,
                             cwd=root, env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return [int(n) for n in out.stdout.split()]

    assert once() == [1, 0]  # first task: compiled, written to the cache
    assert any((cache / "fxgraph").rglob("*"))
    assert once() == [0, 1]  # second task: a cache hit
