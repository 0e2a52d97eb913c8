"""The tiny models shipped in assets/test/models (-profile test from a bare clone) are what make-test-models writes."""

import filecmp
from pathlib import Path

from virnucpro.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "assets" / "test" / "models"


def test_shipped_test_models_equal_a_fresh_make_test_models(tmp_path, capsys):
    assert main(["make-test-models", "--outdir", str(tmp_path)]) == 0
    shipped = sorted(p.relative_to(SHIPPED) for p in SHIPPED.rglob("*") if p.is_file())
    assert {"esm2_tiny.pt", "classifier_tiny.pth", "dnabert_s_tiny/pytorch_model.bin"} <= {str(p) for p in shipped}
    stale = [str(p) for p in shipped if not filecmp.cmp(SHIPPED / p, tmp_path / p, shallow=False)]
    assert not stale, f"assets/test/models is stale ({stale}): bin/virnucpro make-test-models --outdir <tmp> and copy " \
                      "the files listed in assets/test/models over"
