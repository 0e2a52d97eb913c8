import numpy as np
import pytest

from virnucpro.errors import InputError
from virnucpro.io.features import Features, load_features, save_features


def _feats(n, seed=0):
    rng = np.random.default_rng(seed)
    return Features([f"s{i}_chunk_1F{i % 3 + 1}" for i in range(n)],
                    {"nucleotide": rng.standard_normal((n, 5)).astype(np.float32),
                     "protein": rng.standard_normal((n, 7)).astype(np.float32)})


def test_round_trip_keeps_ids_order_and_values(tmp_path):
    f = _feats(11)
    save_features(tmp_path / "a.npz", f)
    g = load_features(tmp_path / "a.npz")
    assert g.ids == f.ids
    assert g.names == ("nucleotide", "protein")
    np.testing.assert_array_equal(g["nucleotide"], f["nucleotide"])
    np.testing.assert_array_equal(g["protein"], f["protein"])
    assert g.concatenated().shape == (11, 12)
    np.testing.assert_array_equal(g.concatenated()[:, :5], f["nucleotide"])


def test_the_recorded_column_order_is_the_concatenation_order(tmp_path):
    f = _feats(4)
    flipped = Features(f.ids, {"protein": f["protein"], "nucleotide": f["nucleotide"]})
    save_features(tmp_path / "a.npz", flipped)
    g = load_features(tmp_path / "a.npz")
    assert g.names == ("protein", "nucleotide")
    np.testing.assert_array_equal(g.concatenated(), np.concatenate([f["protein"], f["nucleotide"]], axis=1))


def test_a_file_without_recorded_columns_reads_nucleotide_then_protein(tmp_path):
    # What the code before the column record wrote: ids, nucleotide, protein.
    f = _feats(3)
    np.savez(tmp_path / "old.npz", ids=np.array(f.ids), protein=f["protein"], nucleotide=f["nucleotide"])
    g = load_features(tmp_path / "old.npz")
    assert g.names == ("nucleotide", "protein")
    np.testing.assert_array_equal(g.concatenated(), np.concatenate([f["nucleotide"], f["protein"]], axis=1))


def test_a_recorded_column_that_is_missing_is_an_input_error(tmp_path):
    f = _feats(2)
    np.savez(tmp_path / "bad.npz", ids=np.array(f.ids), columns=np.array(["nucleotide", "codon"]),
             nucleotide=f["nucleotide"])
    with pytest.raises(InputError, match="not a readable feature file"):
        load_features(tmp_path / "bad.npz")


def test_write_leaves_no_temp_files(tmp_path):
    save_features(tmp_path / "a.npz", _feats(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_concat_preserves_order():
    a, b = _feats(2, 1), _feats(3, 2)
    c = Features.concat([a, b])
    assert c.ids == a.ids + b.ids
    np.testing.assert_array_equal(c["protein"][2:], b["protein"])


def test_mismatched_rows_rejected():
    with pytest.raises(ValueError, match="disagree"):
        Features(["a", "b"], {"nucleotide": np.zeros((2, 3), np.float32), "protein": np.zeros((1, 3), np.float32)})


def test_garbage_file_is_a_clear_input_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(InputError, match="bad.npz"):
        load_features(bad)


def test_truncated_file_is_a_clear_input_error(tmp_path):
    good = tmp_path / "good.npz"
    save_features(good, _feats(4))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(InputError, match="cut.npz"):
        load_features(cut)
