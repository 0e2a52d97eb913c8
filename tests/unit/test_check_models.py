"""The run's model check: readable files, widths that fit, chunk length from the classifier's name; one line per
problem, from `check-models`, `provenance` (the pipeline's gate before EMBED) and `predict`."""

import json
import shutil

import pytest
import torch

from virnucpro.cli import main
from virnucpro.models.check import check_models, classifier_chunk_length
from virnucpro.models.tiny import _TrainPyMLP, save_as_main_class


def test_tiny_models_pass_with_their_widths(tiny_models):
    check = check_models(tiny_models.esm_pt, tiny_models.dnabert, tiny_models.classifier, 500)
    assert check.ok, check.problems
    assert check.facts["esm_embed_dim"] == 32 and check.facts["dnabert_hidden_size"] == 48
    assert check.facts["classifier_input_dim"] == 80 and check.facts["classifier_chunk_length"] is None
    assert check_models(tiny_models.esm_hf, tiny_models.dnabert, tiny_models.classifier, 300).ok


def test_chunk_length_is_read_from_the_published_file_names():
    assert classifier_chunk_length("/x/300_model.pth") == 300
    assert classifier_chunk_length("500_model.pth") == 500
    assert classifier_chunk_length("classifier_tiny.pth") is None
    assert classifier_chunk_length("my_500_model.pth.bak") is None


def _classifier(path, input_dim):
    save_as_main_class(_TrainPyMLP(input_dim, 16, 2).eval(), "MLPClassifier", path)
    return path


def test_every_problem_is_listed(tiny_models, tmp_path):
    cut = tmp_path / "esm.pt"
    cut.write_bytes(tiny_models.esm_pt.read_bytes()[:4000])
    wrong = _classifier(tmp_path / "300_model.pth", 81)
    check = check_models(cut, tiny_models.dnabert, wrong, 500)
    assert len(check.problems) == 2, check.problems
    assert check.problems[0].startswith(f"{cut}: incomplete zip archive")
    assert "trained on 300-bp chunks, but --chunk-length is 500" in check.problems[1]
    # with a readable ESM-2 the width mismatch is found too
    check = check_models(tiny_models.esm_pt, tiny_models.dnabert, wrong, 500)
    assert any("input width 81, but DNABERT-S (48) + ESM-2 (32) features are 80 wide" in p for p in check.problems)
    assert len(check.problems) == 2


def test_dnabert_tokenizer_larger_than_the_vocabulary_is_a_problem(tiny_models, tmp_path):
    d = tmp_path / "dnabert"
    shutil.copytree(tiny_models.dnabert, d)
    conf = json.loads((d / "config.json").read_text())
    conf["vocab_size"] = 10
    (d / "config.json").write_text(json.dumps(conf))
    state = torch.load(d / "pytorch_model.bin", weights_only=True)
    state["embeddings.word_embeddings.weight"] = state["embeddings.word_embeddings.weight"][:10].clone()
    torch.save(state, d / "pytorch_model.bin")
    check = check_models(tiny_models.esm_pt, d, tiny_models.classifier, 500)
    assert len(check.problems) == 1 and "tokens, but the model's vocabulary has 10" in check.problems[0]


def test_check_models_cli_prints_one_line_per_problem(tiny_models, tmp_path, capsys):
    assert main(["check-models", "--esm-model", str(tiny_models.esm_pt), "--dnabert-model", str(tiny_models.dnabert),
                 "--classifier", str(tiny_models.classifier), "--chunk-length", "500"]) == 0
    assert "models ok" in capsys.readouterr().out
    wrong = _classifier(tmp_path / "500_model.pth", 90)
    code = main(["check-models", "--esm-model", str(tmp_path / "missing.pt"), "--dnabert-model",
                 str(tiny_models.dnabert), "--classifier", str(wrong), "--chunk-length", "300"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("virnucpro: error:")]
    assert code == 2
    assert len(err) == 2 and "missing.pt: no such file" in err[0] and "500-bp chunks" in err[1]


def test_provenance_refuses_bad_models_and_writes_nothing(tiny_models, tmp_path, capsys):
    wrong = _classifier(tmp_path / "c.pth", 64)
    out = tmp_path / "model_provenance.json"
    code = main(["provenance", "--esm-model", str(tiny_models.esm_pt), "--dnabert-model", str(tiny_models.dnabert),
                 "--classifier", str(wrong), "--precision", "fp16", "--chunk-length", "500",
                 "--hash-cache", str(tmp_path / "cache"), "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "input width 64" in capsys.readouterr().err
    # The hashing runs beside the checks and may have cached digests meanwhile: only true ones.
    from virnucpro.embed.checkpoint import file_sha256

    for entry in (tmp_path / "cache").glob(".hash-cache/*.json"):
        cached = json.loads(entry.read_text())
        assert cached["sha256"] == file_sha256(cached["path"])


def test_provenance_records_the_widths_and_file_times(tiny_models, tmp_path):
    out = tmp_path / "model_provenance.json"
    assert main(["provenance", "--esm-model", str(tiny_models.esm_pt), "--dnabert-model", str(tiny_models.dnabert),
                 "--classifier", str(tiny_models.classifier), "--precision", "fp16", "--chunk-length", "500",
                 "--hash-cache", str(tmp_path / "cache"), "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["checks"]["classifier_input_dim"] == 80
    esm = record["models"]["esm"]["files"][0]
    assert esm["mtime_ns"] == tiny_models.esm_pt.stat().st_mtime_ns


def test_predict_checks_models_before_any_work(tiny_models, tmp_path, capsys):
    reads = tmp_path / "reads.fa"
    reads.write_text(">r1\n" + "ACGT" * 80 + "\n")
    wrong = tmp_path / "300_model.pth"
    shutil.copy(tiny_models.classifier, wrong)
    out = tmp_path / "out"
    code = main(["predict", "--input", str(reads), "--chunk-length", "500", "--esm-model", str(tiny_models.esm_pt),
                 "--dnabert-model", str(tiny_models.dnabert), "--classifier", str(wrong), "--outdir", str(out)])
    assert code == 2 and not out.exists()
    assert "300-bp chunks" in capsys.readouterr().err


@pytest.mark.parametrize("style, named", [(None, "--chunk-length"), ("pipeline", "--chunk_length")])
def test_provenance_refuses_a_classifier_of_another_chunk_length(tiny_models, tmp_path, capsys, monkeypatch,
                                                                 style, named):
    """The pipeline's gate before EMBED: `300_model.pth` with chunk length 500 stops the run, naming the option as
    the user spelled it (a pipeline task sets VIRNUCPRO_OPTION_STYLE=pipeline)."""
    monkeypatch.delenv("VIRNUCPRO_OPTION_STYLE", raising=False)
    if style:
        monkeypatch.setenv("VIRNUCPRO_OPTION_STYLE", style)
    wrong = tmp_path / "300_model.pth"
    shutil.copy(tiny_models.classifier, wrong)
    out = tmp_path / "model_provenance.json"
    code = main(["provenance", "--esm-model", str(tiny_models.esm_pt), "--dnabert-model", str(tiny_models.dnabert),
                 "--classifier", str(wrong), "--precision", "fp16", "--chunk-length", "500", "--out", str(out)])
    assert code == 2 and not out.exists()
    assert capsys.readouterr().err.strip().endswith(f"trained on 300-bp chunks, but {named} is 500")
