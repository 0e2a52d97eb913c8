"""The loader workers stay torch-free: tokenising and packing both encoders' inputs imports no torch there."""

import numpy as np
import pytest

from virnucpro.embed import packing
from virnucpro.embed.packing import SequenceError
from virnucpro.models.encoders import DnabertTokenize, EsmTokenize
from virnucpro.embed.workers import LoaderPool
from virnucpro.models.dnabert import load_tokenizer
from virnucpro.models.esm2 import encode_protein

PROTEINS = ["MKTAYIAKQRQISFVKSHFSRQ", "MSDNELKQLLE*", "XBUZO"]
DNA = ["ACGTTGCAAGCTTGCAGGTACCAGT" * 3, "TTGACAGCTAGCTCAG"]


def test_workers_tokenise_and_pack_without_importing_torch(tiny_models):
    tokenizers = [EsmTokenize(), DnabertTokenize(load_tokenizer(tiny_models.dnabert))]
    pool = LoaderPool(tokenizers, 1)
    try:
        remote = [pool.submit(0, 0, PROTEINS[:1] + PROTEINS[2:], 64, packing.POOL_RESIDUES).get(timeout=120),
                  pool.submit(1, 0, DNA, 64, packing.POOL_ALL).get(timeout=120)]
        probe = pool.probe()
    finally:
        pool.close()
    assert [p["torch_imported"] for p in probe] == [False]
    local = LoaderPool(tokenizers, 0)
    expected = [local.submit(0, 0, PROTEINS[:1] + PROTEINS[2:], 64, packing.POOL_RESIDUES).get(),
                local.submit(1, 0, DNA, 64, packing.POOL_ALL).get()]
    for got, want in zip(remote, expected):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.tokens, w.tokens)
            np.testing.assert_array_equal(g.cu_seqlens, w.cu_seqlens)


def test_protein_ids_are_the_models_own_encoding():
    tok = EsmTokenize()
    for seq, ids in zip([PROTEINS[0], PROTEINS[2]], tok([PROTEINS[0], PROTEINS[2]])):
        assert ids.tolist() == encode_protein(seq)


def test_a_protein_outside_the_alphabet_gets_the_models_error():
    with pytest.raises(SequenceError, match=r"character '\*' at position 12 is not in the ESM-2 alphabet"):
        EsmTokenize()([PROTEINS[1]])
