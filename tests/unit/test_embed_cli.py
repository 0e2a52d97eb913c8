"""`virnucpro embed` end to end on a shard file with the tiny models (CPU, fp32)."""

import json

import numpy as np
import pytest

from virnucpro.cli import main
from virnucpro.embed.checkpoint import PartStore
from virnucpro.embed.reference import reference_features
from virnucpro.embed.run import checkpoint_key, model_paths
from virnucpro.io.features import Features, load_features
from virnucpro.io.frames import Frame, write_frames_tsv
from virnucpro.models.dnabert import load_dnabert, load_tokenizer
from virnucpro.models.esm2 import load_esm2

from framegen import random_frames


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    frames = random_frames(23, 21, (1, 90), ids=lambda i: f"rec{i // 6}_chunk_{i % 6}F{1 + i % 3}")
    path = tmp_path_factory.mktemp("shard") / "shard_00000.tsv"
    write_frames_tsv(path, frames)
    return path, frames


def cli(tiny_models, shard_path, out, *extra):
    return main(["embed", "--frames", str(shard_path), "--esm-model", str(tiny_models.esm_pt),
                 "--dnabert-model", str(tiny_models.dnabert), "--out", str(out), "--device", "cpu",
                 "--precision", "fp32", *extra])


@pytest.fixture(scope="module")
def first_run(tiny_models, shard, tmp_path_factory):
    d = tmp_path_factory.mktemp("embed")
    assert cli(tiny_models, shard[0], d / "out.npz", "--summary", str(d / "s.json"), "--token-budget", "300") == 0
    return load_features(d / "out.npz"), json.loads((d / "s.json").read_text())


def test_embed_cli_matches_reference(tiny_models, shard, first_run):
    feats, _ = first_run
    frames = shard[1]
    ref = reference_features(frames, load_esm2(tiny_models.esm_pt), load_dnabert(tiny_models.dnabert),
                             load_tokenizer(tiny_models.dnabert))
    assert feats.ids == [f.id for f in frames]
    assert feats["protein"].dtype == np.float32 and feats["nucleotide"].dtype == np.float32
    np.testing.assert_allclose(feats["protein"], ref["protein"], rtol=0, atol=1e-5 * np.abs(ref["protein"]).max())
    np.testing.assert_allclose(feats["nucleotide"], ref["nucleotide"], rtol=0,
                               atol=1e-5 * np.abs(ref["nucleotide"]).max())


def test_embed_summary_reports_the_run(shard, first_run):
    _, summary = first_run
    frames = shard[1]
    assert summary["frames"] == len(frames)
    assert summary["precision"] == "fp32" and summary["test_models"] is True
    assert summary["device"].startswith("cpu")
    prot = summary["models"]["protein"]
    assert prot["sequences"] == len(frames)
    assert prot["tokens"] == sum(len(f.protein) + 2 for f in frames)
    assert prot["packing_efficiency"] == 1.0 and prot["batches"] >= 2  # budget 300 forces several batches
    for field in ("tokens_per_s", "loader_wait_seconds", "wall_seconds"):
        assert summary[field] is not None


def test_embed_scores_its_frames_exactly_like_classify_on_its_features(tiny_models, shard, tmp_path):
    """--classifier scores in the embed task: the same bytes `virnucpro classify` writes from the features file,
    and without --out no features file is written at all."""
    both = ("--token-budget", "300", "--classifier", str(tiny_models.classifier))
    assert cli(tiny_models, shard[0], tmp_path / "f.npz", *both, "--predictions", str(tmp_path / "fused.tsv")) == 0
    assert main(["classify", "--features", str(tmp_path / "f.npz"), "--classifier", str(tiny_models.classifier),
                 "--out", str(tmp_path / "separate.tsv")]) == 0
    fused = (tmp_path / "fused.tsv").read_bytes()
    assert fused == (tmp_path / "separate.tsv").read_bytes()
    assert fused.count(b"\n") == len(shard[1]) + 1

    alone = tmp_path / "alone"
    alone.mkdir()
    assert main(["embed", "--frames", str(shard[0]), "--esm-model", str(tiny_models.esm_pt), "--dnabert-model",
                 str(tiny_models.dnabert), "--device", "cpu", "--precision", "fp32", *both, "--predictions",
                 str(alone / "p.tsv"), "--summary", str(alone / "s.json")]) == 0
    assert (alone / "p.tsv").read_bytes() == fused
    assert sorted(f.name for f in alone.iterdir()) == ["p.tsv", "s.json"]
    summary = json.loads((alone / "s.json").read_text())
    assert summary["output"] is None and summary["predictions"] == str(alone / "p.tsv")
    assert summary["classify_seconds"] > 0


def test_a_classifier_that_does_not_fit_the_encoders_is_refused_before_embedding(tiny_models, shard, tmp_path,
                                                                                 capsys, monkeypatch):
    import torch

    from virnucpro.embed import run as embed_run
    from virnucpro.models.classifier import MLPClassifier

    wrong = tmp_path / "wrong.pth"
    torch.save(MLPClassifier(81, 8, 2).state_dict(), wrong)
    monkeypatch.setattr(embed_run, "run_embed", lambda *a, **k: pytest.fail("embedding started"))
    assert cli(tiny_models, shard[0], tmp_path / "f.npz", "--classifier", str(wrong), "--predictions",
               str(tmp_path / "p.tsv")) == 2
    err = capsys.readouterr().err
    assert str(wrong) in err and "takes 81 features" in err and "48 (DNABERT-S) + 32 (ESM-2)" in err
    assert not list(tmp_path.glob("*.tsv")) and not list(tmp_path.glob("*.npz"))


def test_embed_needs_something_to_write(tiny_models, shard, tmp_path, capsys):
    base = ["embed", "--frames", str(shard[0]), "--esm-model", str(tiny_models.esm_pt), "--dnabert-model",
            str(tiny_models.dnabert), "--device", "cpu"]
    assert main(base) == 2
    assert "nothing to write" in capsys.readouterr().err
    assert main(base + ["--classifier", str(tiny_models.classifier)]) == 2
    assert "--classifier and --predictions go together" in capsys.readouterr().err


def test_resume_reuses_a_valid_part_and_gives_identical_output(tiny_models, shard, first_run, tmp_path):
    feats, _ = first_run
    ckpt = tmp_path / "ckpt"
    key = checkpoint_key(shard[0], model_paths(str(tiny_models.esm_pt), str(tiny_models.dnabert)), "fp32", ckpt)
    every = 10
    with PartStore(ckpt, key) as store:  # a part a killed run left behind
        store.write(1, Features(feats.ids[10:20], {n: a[10:20] for n, a in feats.columns.items()}))
    out = tmp_path / "resumed.npz"
    assert cli(tiny_models, shard[0], out, "--checkpoint-dir", str(ckpt), "--checkpoint-every", str(every),
               "--summary", str(tmp_path / "s.json")) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["parts"] == 3 and summary["parts_reused"] == 1
    assert summary["models"]["protein"]["sequences"] == len(feats) - 10  # part 1 was not recomputed
    resumed = load_features(out)
    assert resumed.ids == feats.ids
    np.testing.assert_allclose(resumed["protein"], feats["protein"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(resumed["nucleotide"], feats["nucleotide"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(resumed["protein"][10:20], feats["protein"][10:20])  # taken from the part as is


def test_bad_protein_is_one_clear_error(tiny_models, tmp_path, capsys):
    path = tmp_path / "bad.tsv"
    write_frames_tsv(path, [Frame("x_chunk_1F1", "ACGTACGTAC", "MK*")])
    out = tmp_path / "out.npz"
    assert cli(tiny_models, path, out) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'*'" in err
    assert not out.exists()


@pytest.mark.integration
def test_a_sigterm_during_embed_is_logged_as_killed_with_exit_143(tiny_models, tmp_path):
    """The embed command turns SIGTERM into one classified failure line and the conventional exit status."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from virnucpro.embed.shard import split_frames
    from virnucpro.io.frames import Frame

    frames = [Frame(f"s{i}_chunk_1F1", "ACG" * 40 + "A", "T" * 40) for i in range(3000)]
    [shard] = split_frames(frames, tmp_path, 10**9)
    root = Path(__file__).resolve().parents[2]
    p = subprocess.Popen([sys.executable, "-m", "virnucpro", "embed", "--frames", str(shard),
                          "--esm-model", str(tiny_models.esm_pt), "--dnabert-model", str(tiny_models.dnabert),
                          "--out", str(tmp_path / "out.npz"), "--device", "cpu", "--precision", "fp32"],
                         cwd=root, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in p.stderr:  # the handler is in place once embed_shard logs the shard size
        seen.append(line)
        if " 3000 frames" in line:
            break
    time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    err = "".join(seen) + p.communicate(timeout=120)[1]
    assert p.returncode == 143, err
    assert "virnucpro: failure kind=killed exit=143" in err
    assert not (tmp_path / "out.npz").exists()


def test_a_task_started_again_reuses_a_finished_attempts_output(tiny_models, shard, tmp_path, monkeypatch):
    """After a kill of Nextflow its orphaned EMBED may finish; the task started again on -resume (a new work dir)
    copies that output instead of embedding the shard again."""
    from virnucpro.embed import run as embed_run

    ckpt = tmp_path / "ckpt"
    first = tmp_path / "work1"
    first.mkdir()
    assert cli(tiny_models, shard[0], first / "x.npz", "--checkpoint-dir", str(ckpt), "--summary",
               str(first / "x.json")) == 0

    embedded = []

    def count_and_stop(*args, **kwargs):
        embedded.append(args)
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(embed_run, "embed_shard", count_and_stop)
    again = tmp_path / "work2"
    again.mkdir()
    assert cli(tiny_models, shard[0], again / "x.npz", "--checkpoint-dir", str(ckpt), "--summary",
               str(again / "x.json")) == 0
    assert embedded == []
    assert (again / "x.npz").read_bytes() == (first / "x.npz").read_bytes()
    assert (again / "x.json").read_bytes() == (first / "x.json").read_bytes()

    # Other settings are another task; an earlier output that changed since is not reused: both compute.
    assert cli(tiny_models, shard[0], again / "y.npz", "--checkpoint-dir", str(ckpt), "--summary",
               str(again / "y.json"), "--precision", "fp16") != 0
    (first / "x.npz").write_bytes(b"changed")
    assert cli(tiny_models, shard[0], tmp_path / "w3.npz", "--checkpoint-dir", str(ckpt), "--summary",
               str(tmp_path / "w3.json")) != 0
    assert len(embedded) == 2


def test_a_finished_attempt_is_reused_with_its_predictions_and_only_for_the_same_classifier(tiny_models, shard,
                                                                                           tmp_path, monkeypatch):
    import shutil

    from virnucpro.embed import run as embed_run

    ckpt, first, again = tmp_path / "ckpt", tmp_path / "work1", tmp_path / "work2"
    first.mkdir()
    again.mkdir()

    def task(workdir, classifier):
        return main(["embed", "--frames", str(shard[0]), "--esm-model", str(tiny_models.esm_pt), "--dnabert-model",
                     str(tiny_models.dnabert), "--device", "cpu", "--precision", "fp32", "--classifier",
                     str(classifier), "--predictions", str(workdir / "p.tsv"), "--summary", str(workdir / "s.json"),
                     "--checkpoint-dir", str(ckpt)])

    assert task(first, tiny_models.classifier) == 0
    monkeypatch.setattr(embed_run, "embed_shard", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("computed")))
    assert task(again, tiny_models.classifier) == 0  # reused, not computed
    assert (again / "p.tsv").read_bytes() == (first / "p.tsv").read_bytes()
    other = tmp_path / "other_classifier.pth"
    shutil.copyfile(tiny_models.classifier, other)
    assert task(tmp_path, other) != 0  # another classifier file is another task: it computes


def test_scores_taken_while_later_parts_embed_are_the_same_bytes(tiny_models, shard, tmp_path, monkeypatch):
    """The GPU path scores each batch once its rows are embedded (embed/scoring.py); forced on here on the CPU,
    with parts and batches that do not line up, the predictions are the bytes of scoring at the end."""
    import virnucpro.classify.predict as predict
    from virnucpro.embed import scoring

    early = []

    class Overlapped(scoring.RunningScores):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "overlap": True})

        def finish(self):
            early.append(len(self._futures))  # batches already submitted when the last part is in
            return super().finish()

    both = ("--token-budget", "300", "--classifier", str(tiny_models.classifier), "--checkpoint-every", "7")
    monkeypatch.setattr(predict, "BATCH", 4)
    assert cli(tiny_models, shard[0], tmp_path / "a.npz", *both, "--checkpoint-dir", str(tmp_path / "ca"),
               "--predictions", str(tmp_path / "at_end.tsv")) == 0
    monkeypatch.setattr(scoring, "RunningScores", Overlapped)
    assert cli(tiny_models, shard[0], tmp_path / "b.npz", *both, "--checkpoint-dir", str(tmp_path / "cb"),
               "--predictions", str(tmp_path / "overlapped.tsv")) == 0
    assert (tmp_path / "overlapped.tsv").read_bytes() == (tmp_path / "at_end.tsv").read_bytes()
    assert early and early[0] >= 4  # most of the 6 batches of 23 frames went before the last part
