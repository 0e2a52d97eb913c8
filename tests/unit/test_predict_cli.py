"""`virnucpro predict` end to end on a small FASTA with the tiny models (CPU, fp32)."""

import json
import random

import numpy as np

from virnucpro.classify.outputs import read_predictions
from virnucpro.classify.predict import predict_probs
from virnucpro.cli import main
from virnucpro.embed.reference import reference_features
from virnucpro.io.frames import read_frame_pair
from virnucpro.models.classifier import load_classifier
from virnucpro.models.dnabert import load_dnabert, load_tokenizer
from virnucpro.models.esm2 import load_esm2


def test_predict_end_to_end(tiny_models, tmp_path):
    rng = random.Random(8)
    fasta = tmp_path / "in.fa"
    with open(fasta, "w") as fh:
        for i, n in enumerate([650, 300, 120, 900]):
            fh.write(f">contig{i} some description\n{''.join(rng.choice('ACGT') for _ in range(n))}\n")
    out = tmp_path / "out"
    assert main(["predict", "--input", str(fasta), "--chunk-length", "300", "--esm-model", str(tiny_models.esm_hf),
                 "--dnabert-model", str(tiny_models.dnabert), "--classifier", str(tiny_models.classifier),
                 "--outdir", str(out), "--device", "cpu"]) == 0

    lines = (out / "prediction_results.txt").read_text().splitlines()
    assert lines[0] == "Sequence_ID\tPrediction\tscore1\tscore2"
    ids, probs = read_predictions(out / "prediction_results.txt")
    pre = out / "intermediate" / "preprocess"
    frames = list(read_frame_pair(pre / "identified_nucleotide.fa", pre / "identified_protein.faa"))
    assert ids == [f.id for f in frames] and len(ids) > 0
    # Independently: plain per-sequence fp32 features → the classifier → the same scores.
    ref = reference_features(frames, load_esm2(tiny_models.esm_hf), load_dnabert(tiny_models.dnabert),
                             load_tokenizer(tiny_models.dnabert))
    want = predict_probs(load_classifier(tiny_models.classifier), ref)
    np.testing.assert_allclose(probs, want, rtol=0, atol=1e-5)
    for line, p in zip(lines[1:], probs):
        assert line.split("\t")[1] == ("virus" if p[1] > p[0] else "others")

    rows = (out / "prediction_results_highestscore.csv").read_text().splitlines()
    assert rows[0] == "Modified_ID\tIs_Virus"
    chunks = sorted({i[:-2] for i in ids})
    assert [r.split("\t")[0] for r in rows[1:]] == chunks
    assert {r.split("\t")[1] for r in rows[1:]} <= {"True", "False"}
    # The same per-sample outputs as the pipeline's AGGREGATE: every input record in the table, once.
    records = (out / "in.records.tsv").read_text().splitlines()
    assert [r.split("\t")[0] for r in records[1:]] == [f"contig{i}" for i in range(4)]
    summary = json.loads((out / "in.summary.json").read_text())
    assert summary["threshold"] == 0.5
    assert (out / "in.viral.fa").exists()
