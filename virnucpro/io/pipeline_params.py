"""The pipeline's parameters checked against ``nextflow_schema.json``, the one place they are defined.

nf-core pipelines check their parameters with the nf-schema plugin, which Nextflow downloads at run time; this
pipeline runs offline, so ``virnucpro check-input`` applies the part of JSON Schema that the file uses (type,
enum, pattern, minimum/maximum, required, and nf-schema's ``format: *-path`` with ``exists``) to the values
Nextflow parsed (``--chunk_length 300`` arrives as the number 300, ``--save_features`` as true).

Unknown parameters follow nf-schema's convention: a warning naming the closest known parameter (a typo stays easy
to see), an error when ``validation.failUnrecognisedParams`` is set; ``validation.ignoreParams`` are never reported.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from virnucpro.io.samplesheet import is_uri

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "nextflow_schema.json"
_PATH_FORMATS = ("file-path", "directory-path", "path")


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def schema_parameters(schema: dict) -> dict[str, dict]:
    """name -> definition plus ``group`` (its section's title) and ``required``, in the schema's order."""
    result = {}
    for group_name, group in schema["$defs"].items():
        required = group.get("required", [])
        for name, definition in group["properties"].items():
            result[name] = {**definition, "group": group.get("title", group_name), "required": name in required}
    return result


def snake_name(name: str) -> str:
    """Nextflow stores ``--chunk-length`` also as ``chunkLength``; every spelling maps to ``chunk_length``."""
    return re.sub(r"([a-z0-9])([A-Z])", lambda m: f"{m[1]}_{m[2].lower()}", name.replace("-", "_"))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: inserting, deleting or substituting one character costs 1."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a):
        current = [i + 1]
        for j, cb in enumerate(b):
            current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca != cb)))
        previous = current
    return previous[len(b)]


def shown(value) -> str:
    """A value as Nextflow users write it (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _matches_type(value, kind: str) -> bool:
    if kind == "string":
        # Config files write max_memory = 224.GB and max_time = 72.h, which reach here as text; numbers pass too.
        return isinstance(value, str) or _is_number(value)
    if kind == "null":
        return value is None
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return _is_number(value)
    if kind == "boolean":
        return isinstance(value, bool)
    return False


def _path_problem(name: str, value: str, definition: dict) -> str | None:
    """A local path that is missing or of the wrong kind; a URI is left for Nextflow, which stages it."""
    if is_uri(value):
        return None
    path = Path(os.path.abspath(os.path.expanduser(value)))
    if not path.exists():
        return f"--{name}: {path}: no such file or directory"
    if definition["format"] == "file-path" and path.is_dir():
        return f"--{name}: {path}: is a directory, expected a file"
    if definition["format"] == "directory-path" and not path.is_dir():
        return f"--{name}: {path}: is not a directory"
    return None


def value_problem(name: str, value, definition: dict) -> str | None:
    """Why ``value`` breaks the parameter's definition, or None."""
    kinds = definition["type"] if isinstance(definition["type"], list) else [definition["type"]]
    if not any(_matches_type(value, kind) for kind in kinds):
        return f"--{name} must be {' or '.join(k for k in kinds if k != 'null')}, got '{shown(value)}'"
    choices = definition.get("enum")
    if choices and not any(c == value or shown(c) == shown(value) for c in choices):
        return f"--{name} must be one of {', '.join(map(shown, choices))}, got '{shown(value)}'"
    pattern = definition.get("pattern")
    if pattern and not re.fullmatch(pattern, shown(value)):
        hint = f": {definition['errorMessage']}" if definition.get("errorMessage") else ""
        return f"--{name} '{shown(value)}' does not match {pattern}{hint}"
    if "minimum" in definition and _is_number(value) and value < definition["minimum"]:
        return f"--{name} must be at least {definition['minimum']}, got {shown(value)}"
    if "maximum" in definition and _is_number(value) and value > definition["maximum"]:
        return f"--{name} must be at most {definition['maximum']}, got {shown(value)}"
    if definition.get("format") in _PATH_FORMATS and definition.get("exists"):
        return _path_problem(name, str(value), definition)
    return None


def check_params(given: dict, schema: dict, ignore: tuple[str, ...] = (), fail_unknown: bool = False
                 ) -> tuple[list[str], list[str]]:
    """(problems, warnings) for the run's parameters, one line each, in the schema's order."""
    definitions = schema_parameters(schema)
    ignored = {snake_name(name) for name in ignore}
    problems: list[str] = []
    warnings: list[str] = []
    unknown = dict.fromkeys(snake_name(name) for name in given)
    for name in (n for n in unknown if n not in definitions and n not in ignored):
        closest = min(definitions, key=lambda known: edit_distance(name, known))
        message = f"unknown parameter --{name} (closest known parameter: --{closest}; see --help)"
        if fail_unknown:
            problems.append(message)
        else:
            warnings.append(f"{message}; ignored (validation.failUnrecognisedParams = true makes this an error)")
    for name, definition in definitions.items():
        value = given.get(name)
        if value is None or value == "":
            if definition["required"]:
                problems.append(f"--{name} is required: {definition.get('description', '')}")
            continue
        problem = value_problem(name, value, definition)
        if problem:
            problems.append(problem)
    return problems, warnings


def help_text(schema: dict, version: str) -> str:
    """The pipeline's --help: usage, then every parameter of the schema by section."""
    lines = [f"virnucpro {version}: {schema['description']}", "", "Usage:",
             "  nextflow run main.nf --input <fasta|fastq|samplesheet.csv> --esm_model <path> --dnabert_model <dir> \\",
             "      --classifier <pth> --chunk_length <300|500> [-profile gpu|slurm|test] [--outdir results]"]
    last_group = None
    for name, definition in schema_parameters(schema).items():
        if definition["group"] != last_group:
            lines += ["", f"{definition['group']}:"]
            last_group = definition["group"]
        kinds = definition["type"]
        flags = ["|".join(k for k in kinds if k != "null") if isinstance(kinds, list) else kinds]
        flags += ["required"] * definition["required"] + ["hidden"] * bool(definition.get("hidden"))
        lines.append(f"  --{name:<18} [{', '.join(flags)}] {definition.get('description', '')}")
        if definition.get("enum"):
            lines.append(f"      choices: {', '.join(map(shown, definition['enum']))}")
        if definition.get("default") is not None:
            lines.append(f"      default: {shown(definition['default'])}")
        if definition.get("help_text"):
            lines.append(f"      {definition['help_text']}")
    lines += ["", "Nextflow options (one dash): -profile, -resume, -c <config>, -work-dir <dir>; see docs/install.md."]
    return "\n".join(lines)
