"""Check the three model files of a run before any GPU work: each is what it claims, and they fit together.

Cheap structural checks only, so a 5.7 GB ESM-2 checkpoint is not read: `.pt`/`.bin` files are opened
memory-mapped (only their pickle is read), safetensors by their header. The encoders' checks come from their
models/encoders.py entries. What is checked:

  ESM-2       a fair-esm `.pt` or HF directory with every parameter of the configured shape
  DNABERT-S   config.json, every parameter of the configured shape, a tokenizer.json whose ids fit the vocabulary
  classifier  the VirNucPro MLP (small, loaded fully); its input width = the encoders' widths summed; its
              chunk length, where its file name tells (`300_model.pth`, `500_model.pth`), = the run's

Every problem found is reported (one line each), not only the first, so one run of the check lists them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro.errors import ModelFormatError

# The published classifiers are named after the chunk length they were trained on (MODELS.md §3).
_CHUNK_IN_NAME = re.compile(r"^(\d+)_model\.pth$")


@dataclass
class ModelCheck:
    facts: dict = field(default_factory=dict)  # widths and sizes found, for the provenance record
    problems: list[str] = field(default_factory=list)  # "<path>: <problem>", one per problem

    @property
    def ok(self) -> bool:
        return not self.problems


def classifier_chunk_length(path: str | Path) -> int | None:
    """The chunk length a classifier file's name states (`500_model.pth` → 500), or None."""
    match = _CHUNK_IN_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def check_models(esm_path, dnabert_path, classifier_path, chunk_length: int | None = None) -> ModelCheck:
    from virnucpro.models.classifier import load_classifier
    from virnucpro.models.encoders import ENCODERS, LISTED, model_paths

    check = ModelCheck()
    paths = model_paths(esm_path, dnabert_path)
    opened = {}
    for spec in LISTED:
        opened[spec.name] = _attempt(check, lambda: spec.open(paths[spec.name]))
        if opened[spec.name] is not None:
            check.facts.update(spec.facts(opened[spec.name]))
        if spec.check is not None:
            check.problems.extend(_attempt(check, lambda: spec.check(paths[spec.name], opened[spec.name])) or [])
    classifier = _attempt(check, lambda: load_classifier(classifier_path))
    if classifier is None:
        return check
    check.facts["classifier_input_dim"] = classifier.input_dim
    if all(c is not None for c in opened.values()):
        widths = {spec.label: spec.width(opened[spec.name]) for spec in ENCODERS}  # the classifier's order
        want = sum(widths.values())
        if classifier.input_dim != want:
            check.problems.append(
                f"{classifier_path}: input width {classifier.input_dim}, but "
                + " + ".join(f"{label} ({w})" for label, w in widths.items())
                + f" features are {want} wide: these models do not fit together")
    stated = classifier_chunk_length(classifier_path)
    check.facts["classifier_chunk_length"] = stated
    if stated is not None and chunk_length is not None and stated != chunk_length:
        check.problems.append(f"{classifier_path}: the file name says it was trained on {stated}-bp chunks, "
                              f"but the chunk length is {chunk_length}")
    return check


def _attempt(check: ModelCheck, opener):
    try:
        return opener()
    except ModelFormatError as exc:
        check.problems.append(str(exc))
        return None


def print_problems(check: ModelCheck, stream=None) -> int:
    """One `virnucpro: error:` line per problem on stderr; the exit code (0 when there is none)."""
    import sys

    from virnucpro.errors import EXIT_BAD_INPUT

    for problem in check.problems:
        print(f"virnucpro: error: {problem}", file=stream or sys.stderr)
    return EXIT_BAD_INPUT if check.problems else 0
