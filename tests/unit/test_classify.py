"""The original's two output files on hand-made probabilities, and `virnucpro classify` end to end."""

import numpy as np
import pytest
import torch

from virnucpro.classify.outputs import (
    format_score, prediction_lines, read_predictions, write_highestscore, write_prediction_results,
)
from virnucpro.classify.predict import predict_probs
from virnucpro.cli import main
from virnucpro.io.features import Features, load_features, save_features
from virnucpro.models.classifier import load_classifier

IDS = ["seqB_chunk_1F1", "seqB_chunk_1R2", "seqA_chunk_2F3", "seqA_chunk_1F1", "seqA_chunk_1R3", "seqB_chunk_2F2"]
PROBS = np.array([
    [0.9, 0.1],      # seqB_chunk_1: max score1 0.9 > max score2 0.4 → False
    [0.6, 0.4],
    [0.5, 0.5],      # seqA_chunk_2: a tie → virus wins (>=) in highestscore, argmax picks "others"
    [0.7, 0.3],      # seqA_chunk_1: max score1 0.7 < max score2 0.8 (from another frame) → True
    [0.2, 0.8],
    [1e-05, 0.99999],
], dtype=np.float32)


def test_prediction_results_layout(tmp_path):
    out = tmp_path / "prediction_results.txt"
    write_prediction_results(out, IDS, PROBS)
    lines = out.read_text().splitlines()
    assert lines[0] == "Sequence_ID\tPrediction\tscore1\tscore2"
    assert lines[1] == "seqB_chunk_1F1\tothers\t0.9\t0.1"
    assert lines[3] == "seqA_chunk_2F3\tothers\t0.5\t0.5"
    assert lines[5] == "seqA_chunk_1R3\tvirus\t0.2\t0.8"
    assert lines[6] == "seqB_chunk_2F2\tvirus\t1e-05\t0.99999"
    assert len(lines) == 1 + len(IDS)
    ids, probs = read_predictions(out)
    assert ids == IDS and np.array_equal(probs, PROBS)


def test_scores_are_written_as_numpy_float32_str():
    # what the original's '\t'.join(map(str, probability)) gives for a float32 softmax row
    x = torch.softmax(torch.tensor([[0.3, 2.9]]), 1).numpy()[0]
    assert format_score(x[1]) == str(x[1])
    assert float(np.float32(format_score(x[1]))) == float(x[1])
    assert format_score(np.float32(1) / np.float32(3)) == "0.33333334"


def test_prediction_lines_write_each_score_as_format_score_does():
    # the file writer formats whole columns at once; its text must be format_score's for every value
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 8, (5000, 2)).astype(np.float32)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    edges = np.array([[0, 1], [1e-05, 0.99999], [1e-45, 1], [0.5, 0.5], [0.0001, 0.9999]], np.float32)
    probs = np.concatenate([(e / e.sum(axis=1, keepdims=True)).astype(np.float32), edges])
    ids = [f"s{k}_chunk_1F1" for k in range(len(probs))]
    expected = [f"{i}\t{'virus' if p[1] > p[0] else 'others'}\t{format_score(float(p[0]))}\t"
                f"{format_score(float(p[1]))}\n" for i, p in zip(ids, probs)]
    assert prediction_lines(ids, probs) == expected
    assert "1e-05" in expected[-4] and "\t0.5\t0.5\n" in expected[-2]


def test_highestscore_file(tmp_path):
    out = tmp_path / "prediction_results_highestscore.csv"
    write_highestscore(out, IDS, PROBS)
    assert out.read_text() == (
        "Modified_ID\tIs_Virus\n"
        "seqA_chunk_1\tTrue\n"     # groups in sorted order, as pandas groupby writes them
        "seqA_chunk_2\tTrue\n"     # tie → True
        "seqB_chunk_1\tFalse\n"
        "seqB_chunk_2\tTrue\n"
    )


def test_mismatched_lengths_are_refused(tmp_path):
    with pytest.raises(ValueError):
        write_prediction_results(tmp_path / "x", IDS[:2], PROBS)
    assert not (tmp_path / "x").exists()


def test_classify_command(tmp_path, tiny_models):
    rng = np.random.default_rng(0)
    ids = [f"r{i}_chunk_1F{i % 3 + 1}" for i in range(300)]  # more than one batch of 256
    feats = Features(ids, {"nucleotide": rng.normal(size=(300, 48)).astype(np.float32),
                           "protein": rng.normal(size=(300, 32)).astype(np.float32)})
    save_features(tmp_path / "f.npz", feats)
    out = tmp_path / "pred.tsv"
    assert main(["classify", "--features", str(tmp_path / "f.npz"), "--classifier", str(tiny_models.classifier),
                 "--out", str(out)]) == 0
    got_ids, got = read_predictions(out)
    assert got_ids == ids
    want = predict_probs(load_classifier(tiny_models.classifier), load_features(tmp_path / "f.npz"))
    assert np.array_equal(got, want)
    assert np.allclose(got.sum(1), 1, atol=1e-6)
    labels = [line.split("\t")[1] for line in out.read_text().splitlines()[1:]]
    assert labels == ["virus" if p[1] > p[0] else "others" for p in got]
    assert len(set(labels)) == 2  # random inputs exercise both classes


def test_classify_command_width_mismatch(tmp_path, tiny_models, capsys):
    feats = Features(["a_chunk_1F1"], {"nucleotide": np.zeros((1, 768), np.float32),
                                       "protein": np.zeros((1, 2560), np.float32)})
    save_features(tmp_path / "f.npz", feats)
    rc = main(["classify", "--features", str(tmp_path / "f.npz"), "--classifier", str(tiny_models.classifier),
               "--out", str(tmp_path / "p.tsv")])
    assert rc == 2
    assert "3328 wide, the classifier expects 80" in capsys.readouterr().err
    assert not (tmp_path / "p.tsv").exists()


def test_scores_do_not_depend_on_the_batch_size(monkeypatch):
    """Rows are scored independently (eval-mode BatchNorm), so the batch size is a speed choice only."""
    import virnucpro.classify.predict as predict
    from virnucpro.models.classifier import MLPClassifier

    torch.manual_seed(0)
    clf = MLPClassifier(40, 16, 2).eval()
    with torch.no_grad():
        clf.bn1.running_mean.normal_()
        clf.bn1.running_var.uniform_(0.5, 2.0)
    g = np.random.default_rng(1)
    feats = Features([f"f{i}" for i in range(5000)], {"nucleotide": g.standard_normal((5000, 24), dtype=np.float32),
                                                      "protein": g.standard_normal((5000, 16), dtype=np.float32)})
    by_batch = {}
    for batch in (256, 4096, 100_000):
        monkeypatch.setattr(predict, "BATCH", batch)
        by_batch[batch] = predict_probs(clf, feats)
    assert np.array_equal(by_batch[256], by_batch[4096]) and np.array_equal(by_batch[256], by_batch[100_000])
    assert not np.allclose(by_batch[256][:, 0], by_batch[256][0, 0])  # the rows really differ


def test_features_whose_columns_are_not_the_classifier_input_are_refused():
    from virnucpro.models.classifier import MLPClassifier

    feats = Features(["a"], {"protein": np.zeros((1, 3), np.float32), "nucleotide": np.zeros((1, 2), np.float32)})
    with pytest.raises(ValueError, match="feature columns are protein, nucleotide, the classifier takes nucleotide, "
                                         "protein"):
        predict_probs(MLPClassifier(5, 4, 2).eval(), feats)


def test_scores_equal_the_classifier_on_the_whole_concatenation():
    """Scoring batch by batch, columns put side by side per batch, gives exactly the classifier's output on the
    columns concatenated whole (the way the original feeds it)."""
    from virnucpro.models.classifier import MLPClassifier

    torch.manual_seed(3)
    clf = MLPClassifier(40, 16, 2).eval()
    g = np.random.default_rng(4)
    feats = Features([f"f{i}" for i in range(9000)], {"nucleotide": g.standard_normal((9000, 24), dtype=np.float32),
                                                      "protein": g.standard_normal((9000, 16), dtype=np.float32)})
    with torch.no_grad():
        whole = np.concatenate([clf(torch.from_numpy(feats.concatenated()[i:i + 4096])).numpy()
                                for i in range(0, 9000, 4096)])
    assert np.array_equal(predict_probs(clf, feats), whole)


def test_scores_do_not_depend_on_the_thread_count():
    """The embed task scores with fewer threads once it has handed its GPU on (embed/run.py): same numbers."""
    from virnucpro.models.classifier import MLPClassifier

    torch.manual_seed(5)
    clf = MLPClassifier(3328, 512, 2).eval()
    g = np.random.default_rng(6)
    feats = Features([f"f{i}" for i in range(6000)], {"nucleotide": g.standard_normal((6000, 768), dtype=np.float32),
                                                      "protein": g.standard_normal((6000, 2560), dtype=np.float32)})
    before = torch.get_num_threads()
    try:
        by_threads = {}
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            by_threads[n] = predict_probs(clf, feats)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(by_threads[1], by_threads[2]) and np.array_equal(by_threads[1], by_threads[3])
