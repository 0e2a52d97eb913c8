"""Shared fixtures."""

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random-weight models in the real formats: .esm_pt, .esm_hf, .dnabert, .classifier (also ["key"])."""
    from virnucpro.models.tiny import write_test_models

    return write_test_models(tmp_path_factory.mktemp("tiny_models"))
