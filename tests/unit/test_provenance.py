"""`virnucpro provenance`: model checksums, sizes and paths, test-model flag, and `virnucpro --versions`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from virnucpro import __version__
from virnucpro.cli import main
from virnucpro.embed.checkpoint import model_checksum

ROOT = Path(__file__).resolve().parents[2]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_provenance(tmp_path: Path, esm: Path, dnabert: Path, classifier: Path, *extra: str) -> dict:
    out = tmp_path / "out" / "model_provenance.json"
    code = main(["provenance", "--esm-model", str(esm), "--dnabert-model", str(dnabert), "--classifier",
                 str(classifier), "--precision", "fp16", "--chunk-length", "500",
                 "--hash-cache", str(tmp_path / "cache"), "--out", str(out), *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_checksums_sizes_and_paths_of_every_model_file(tiny_models, tmp_path):
    record = run_provenance(tmp_path, tiny_models.esm_pt, tiny_models.dnabert, tiny_models.classifier)
    assert record["precision_requested"] == "fp16" and record["chunk_length"] == 500
    assert "precision" not in record  # what was computed is in each embed.json: a CPU task computes in fp32
    assert record["virnucpro_version"] == __version__
    models = record["models"]
    assert set(models) == {"esm", "dnabert", "classifier"}

    for role, path in (("esm", tiny_models.esm_pt), ("classifier", tiny_models.classifier)):
        entry = models[role]
        assert entry["kind"] == "file"
        assert entry["sha256"] == sha256(path)
        assert entry["size"] == path.stat().st_size
        assert entry["path"] == os.path.realpath(path)
        assert [f["sha256"] for f in entry["files"]] == [sha256(path)]

    # A directory lists each of its files, with the file's own checksum; the model digest is the checkpoint key's.
    dnabert = models["dnabert"]
    inside = sorted(p for p in Path(tiny_models.dnabert).iterdir() if p.is_file() and not p.name.startswith("."))
    assert dnabert["kind"] == "directory"
    assert [f["name"] for f in dnabert["files"]] == [p.name for p in inside]
    assert {"config.json", "pytorch_model.bin"} <= {f["name"] for f in dnabert["files"]}
    for listed, path in zip(dnabert["files"], inside):
        assert listed["sha256"] == sha256(path)
        assert listed["size"] == path.stat().st_size
        assert listed["path"] == os.path.realpath(path)
    assert dnabert["size"] == sum(p.stat().st_size for p in inside)
    assert dnabert["sha256"] == model_checksum(tiny_models.dnabert, tmp_path / "other-cache")


def test_symlinked_models_resolve_to_their_target(tiny_models, tmp_path):
    """Nextflow stages models as symlinks: the record names the real file."""
    link = tmp_path / "staged.pt"
    link.symlink_to(tiny_models.esm_pt)
    record = run_provenance(tmp_path, link, tiny_models.dnabert, tiny_models.classifier)
    assert record["models"]["esm"]["path"] == os.path.realpath(tiny_models.esm_pt)
    assert record["models"]["esm"]["sha256"] == sha256(tiny_models.esm_pt)


def test_test_models_are_flagged_and_real_ones_are_not(tiny_models, tmp_path):
    flagged = run_provenance(tmp_path / "a", tiny_models.esm_pt, tiny_models.dnabert, tiny_models.classifier)
    assert all(m["test_model"] for m in flagged["models"].values())

    # The same bytes away from make-test-models' marker file: only the DNABERT-S config still carries the flag.
    plain = tmp_path / "plain"
    plain.mkdir()
    esm = plain / "esm.pt"
    esm.write_bytes(Path(tiny_models.esm_pt).read_bytes())
    classifier = plain / "classifier.pth"
    classifier.write_bytes(Path(tiny_models.classifier).read_bytes())
    dnabert = plain / "dnabert"
    dnabert.mkdir()
    for f in Path(tiny_models.dnabert).iterdir():
        if f.is_file():
            (dnabert / f.name).write_bytes(f.read_bytes())
    config = json.loads((dnabert / "config.json").read_text())
    config.pop("virnucpro_test_model", None)
    (dnabert / "config.json").write_text(json.dumps(config))
    record = run_provenance(tmp_path / "b", esm, dnabert, classifier)
    assert [m["test_model"] for m in record["models"].values()] == [False, False, False]
    assert record["models"]["esm"]["sha256"] == flagged["models"]["esm"]["sha256"]


@pytest.mark.integration
def test_missing_model_is_one_error_line_and_no_output(tiny_models, tmp_path):
    out = tmp_path / "model_provenance.json"
    missing = tmp_path / "no_such.pt"
    proc = subprocess.run(
        [str(ROOT / "bin" / "virnucpro"), "provenance", "--esm-model", str(missing), "--dnabert-model",
         str(tiny_models.dnabert), "--classifier", str(tiny_models.classifier), "--precision", "fp32",
         "--chunk-length", "300", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("virnucpro:")]
    assert len(errors) == 1 and str(missing) in errors[0], proc.stderr
    assert not out.exists()


@pytest.mark.integration
def test_versions_lists_the_software_that_decides_the_numbers():
    proc = subprocess.run([str(ROOT / "bin" / "virnucpro"), "--versions"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    versions = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert list(versions) == ["virnucpro", "python", "torch", "transformers", "numpy"]
    assert versions["virnucpro"] == __version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    import numpy
    import torch
    assert versions["torch"] == torch.__version__ and versions["numpy"] == numpy.__version__


@pytest.mark.parametrize("bad", [["--precision", "fp8"], ["--chunk-length", "400"]])
def test_precision_and_chunk_length_are_checked(tiny_models, tmp_path, bad):
    args = {"--precision": "fp16", "--chunk-length": "300"}
    args[bad[0]] = bad[1]
    with pytest.raises(SystemExit) as exc:
        main(["provenance", "--esm-model", str(tiny_models.esm_pt), "--dnabert-model", str(tiny_models.dnabert),
              "--classifier", str(tiny_models.classifier), *[x for kv in args.items() for x in kv],
              "--out", str(tmp_path / "p.json")])
    assert exc.value.code != 0


@pytest.mark.parametrize("cache", [True, False])
def test_each_model_file_is_read_once_though_hashed_beside_the_checks(tiny_models, tmp_path, monkeypatch, cache):
    from virnucpro.embed import checkpoint

    hashed = []
    real = checkpoint.file_sha256
    monkeypatch.setattr(checkpoint, "file_sha256", lambda path: hashed.append(os.path.realpath(path)) or real(path))
    out = tmp_path / "p.json"
    args = ["provenance", "--esm-model", str(tiny_models.esm_pt), "--dnabert-model", str(tiny_models.dnabert),
            "--classifier", str(tiny_models.classifier), "--precision", "fp16", "--chunk-length", "500",
            "--out", str(out)]
    assert main(args + (["--hash-cache", str(tmp_path / "cache")] if cache else [])) == 0
    record = json.loads(out.read_text())
    files = [f["path"] for m in record["models"].values() for f in m["files"]]
    assert sorted(hashed) == sorted(files)  # every file once: the background hashing filled the cache
    for m in record["models"].values():
        for f in m["files"]:
            assert f["sha256"] == sha256(Path(f["path"]))
