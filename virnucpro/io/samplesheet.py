"""Samplesheets: a CSV of samples checked against ``assets/schema_input.json``.

The rules live in the schema file only; this module reads it and applies the small part of JSON Schema 2020-12 that
the file uses (plus nf-schema's ``exists``, ``uniqueEntries`` and ``errorMessage``), so the pipeline validates its
input itself, offline, without the nf-schema plugin or a jsonschema dependency. A keyword this module does not know
stops it with a bug report instead of being skipped silently.

The sheet: a header row, then one row per sample. Columns are the schema's properties (``sample``, then ``fasta``,
``fastq``, or ``fastq_1`` with an optional ``fastq_2`` for paired reads); any other column is metadata that travels
with the sample. Cells are trimmed; blank lines are skipped; a UTF-8 byte-order mark and Windows line endings are
fine. Relative file paths are resolved against the samplesheet's folder (not the working directory), so a sheet and
its files can be moved together; URIs (``s3://``, ``gs://``, ``https://``, ...) are kept as written, for Nextflow to
stage, and are not checked here. Every problem is an ``InputError`` whose message names the sheet, the line and the
problem; the first problem found stops the check.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_open
from virnucpro.io.seqio import EMPTY_FILE, sniff_problem

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "assets" / "schema_input.json"

# The schema keywords applied below; anything else in the schema is an error in this module, not in the sheet.
_ITEM_KEYWORDS = {"type", "properties", "required", "oneOf", "errorMessage", "propertyNames", "additionalProperties",
                  "dependentRequired"}
_CELL_KEYWORDS = {"type", "pattern", "not", "format", "exists", "errorMessage", "meta", "description"}
_SHEET_KEYWORDS = {"$schema", "$id", "title", "description", "type", "minItems", "items", "uniqueEntries"}
# scheme://... : a remote file (or any file system Nextflow has a provider for), staged by Nextflow.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# A metadata column this close to a file column is more likely a misspelt file column than metadata.
_LOOKALIKE_CUTOFF = 0.85


@dataclass(frozen=True)
class Sample:
    sample: str
    files: tuple[str, ...]  # absolute paths or URIs; two for paired reads (fastq_1, fastq_2)
    format: str  # the column of the (first) file: "fasta", "fastq" or "fastq_1"; "" for a lone --input file
    meta: dict = field(default_factory=dict)  # metadata columns, in sheet order (empty cells left out)


def is_uri(value: str) -> bool:
    return bool(_URI.match(value))


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as fh:
        schema = json.load(fh)
    unknown = set(schema) - _SHEET_KEYWORDS
    unknown |= set(schema["items"]) - _ITEM_KEYWORDS
    for definition in schema["items"]["properties"].values():
        unknown |= set(definition) - _CELL_KEYWORDS
    for definition in (schema["items"].get("propertyNames"), schema["items"].get("additionalProperties")):
        if isinstance(definition, dict):
            unknown |= set(definition) - _CELL_KEYWORDS
    if unknown:
        raise NotImplementedError(f"{path}: schema keywords not implemented by samplesheet.py: {sorted(unknown)}")
    return schema


def _cell_problem(column: str, value: str, rule: dict, base: Path) -> str | None:
    """Why ``value`` breaks the column's rule, or None."""
    message = rule.get("errorMessage")
    if "pattern" in rule and not re.search(rule["pattern"], value):
        return message or f"{column} {value!r} does not match {rule['pattern']}"
    if "not" in rule and value in rule["not"].get("enum", ()):
        return message or f"{column} {value!r} is not allowed"
    if rule.get("exists") and not is_uri(value):
        path = _resolve(value, base)
        if not path.exists():
            return f"{column} file not found: {path}"
        if rule.get("format") == "file-path" and not path.is_file():
            return f"{column} is not a file: {path}"
    return None


def _other_column_hint(column: str, value: str, columns: dict) -> str:
    """'; it looks like a fastq file: put it in a fastq column' when another file column's pattern fits."""
    for other, rule in columns.items():
        if other != column and rule.get("format") == "file-path" and re.search(rule.get("pattern", "$^"), value):
            return f" ({value!r} looks like a {other} file: give it in a '{other}' column)"
    return ""


def _resolve(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path)


def _location(value: str, base: Path) -> str:
    """What the pipeline stages: a URI as written, a local path made absolute."""
    return value if is_uri(value) else str(_resolve(value, base).absolute())


def _header_problem(header: list[str], items: dict) -> str | None:
    """Why the header's column names break the schema, or None; extra columns are metadata."""
    columns = items["properties"]
    names = items.get("propertyNames", {})
    file_columns = [c for c in columns if columns[c].get("format") == "file-path"]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        return f"column {repeated[0]!r} appears more than once in the header"
    for column in header:
        if column in columns:
            continue
        if items.get("additionalProperties", True) is False:
            return f"unknown column {column!r} (allowed columns: {', '.join(columns)})"
        bad_name = ("pattern" in names and not re.search(names["pattern"], column)) or \
            column in names.get("not", {}).get("enum", ())
        if bad_name:
            return f"column {column!r}: {names.get('errorMessage', 'not an allowed column name')}"
        lookalike = difflib.get_close_matches(column, file_columns, n=1, cutoff=_LOOKALIKE_CUTOFF)
        if lookalike:
            return (f"unknown column {column!r}: did you mean {lookalike[0]!r}? (file columns: "
                    f"{', '.join(file_columns)}; other columns are metadata and must not look like them)")
    missing = [c for c in items.get("required", []) if c not in header]
    if missing:
        return f"missing column {missing[0]!r} in the header"
    starts = [c for alt in items.get("oneOf", []) for c in alt["required"]] or file_columns
    if not any(c in header for c in starts):
        return f"the header needs a {', '.join(starts[:-1])} or {starts[-1]} column"
    return None


def _rows(sheet: Path):
    """(line number, cells) for each non-blank line; the header is the first."""
    if not sheet.exists():
        raise InputError(sheet, "samplesheet not found")
    if sheet.is_dir():
        raise InputError(sheet, "is a directory, expected a samplesheet .csv")
    try:
        with open(sheet, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            for cells in reader:
                if any(c.strip() for c in cells):
                    yield reader.line_num, [c.strip() for c in cells]
    except UnicodeDecodeError:
        raise InputError(sheet, "not a text CSV file (binary or not UTF-8)") from None
    except csv.Error as exc:
        raise InputError(sheet, f"malformed CSV ({exc})") from None


def read_samplesheet(sheet: str | os.PathLike, schema: dict | None = None) -> list[Sample]:
    """Validate ``sheet`` against the schema and return its samples in sheet order."""
    sheet = Path(sheet)
    schema = schema or load_schema()
    items = schema["items"]
    columns = items["properties"]
    file_columns = [c for c in columns if columns[c].get("format") == "file-path"]
    base = sheet.resolve().parent

    rows = _rows(sheet)
    first = next(rows, None)
    if first is None:
        raise InputError(sheet, "empty samplesheet: expected a header line such as 'sample,fasta'")
    header_line, header = first
    problem = _header_problem(header, items)
    if problem:
        raise InputError(sheet, f"line {header_line}: {problem}")

    samples: list[Sample] = []
    seen: dict[tuple, int] = {}
    unique = schema.get("uniqueEntries", [])
    for line, cells in rows:
        where = f"line {line}"
        if len(cells) != len(header):
            raise InputError(sheet, f"{where}: {len(cells)} fields, but the header has {len(header)}")
        row = {c: v for c, v in zip(header, cells) if v != ""}
        if "sample" in row:
            where += f" (sample {row['sample']!r})"
        for column in items.get("required", []):
            if column not in row:
                raise InputError(sheet, f"{where}: {column} is empty")
        for column, needs in items.get("dependentRequired", {}).items():
            lacking = [c for c in needs if c not in row]
            if column in row and lacking:
                raise InputError(sheet, f"{where}: {column} is given, so {lacking[0]} is needed too")
        alternatives = [alt["required"] for alt in items.get("oneOf", [])]
        if alternatives and sum(all(c in row for c in alt) for alt in alternatives) != 1:
            raise InputError(sheet, f"{where}: {items.get('errorMessage', 'row matches none or several of oneOf')}")
        for column, value in row.items():
            problem = _cell_problem(column, value, columns.get(column, {}), base)
            if problem:
                raise InputError(sheet, f"{where}: {problem}{_other_column_hint(column, value, columns)}")
        if unique:
            key = tuple(row.get(c) for c in unique)
            if key in seen:
                raise InputError(
                    sheet, f"{where}: duplicate {'/'.join(unique)} {'/'.join(map(str, key))!r} (first on line "
                    f"{seen[key]}); sample names must be unique"
                )
            seen[key] = line
        given = [c for c in file_columns if c in row]
        samples.append(Sample(
            row["sample"],
            tuple(_location(row[c], base) for c in given),
            given[0],
            {c: v for c, v in row.items() if c not in columns},
        ))

    if len(samples) < schema.get("minItems", 0):
        raise InputError(sheet, "no samples: the samplesheet has a header but no sample rows")
    return samples


def write_valid_samplesheet(samples: list[Sample], out: str | os.PathLike) -> None:
    """The checked samples as JSON (what the pipeline reads), written atomically (temp file + rename).

    ``[{"sample": ..., "files": [absolute path or URI, ...], "format": ..., "meta": {column: value}}, ...]``
    """
    records = [{"sample": s.sample, "files": list(s.files), "format": s.format, "meta": s.meta} for s in samples]
    with atomic_open(out, "w") as fh:
        json.dump(records, fh, indent=1)
        fh.write("\n")


def _file_sample(location: str, schema: dict) -> tuple[Sample, list[str]]:
    """A lone sequence file as a sample named after the file (without .gz and its extension)."""
    name = location.rstrip("/").rsplit("/", 1)[-1]
    sample = re.sub(r"\.[^.]+$", "", re.sub(r"(?i)\.gz$", "", name))
    shown_as = location if is_uri(location) else str(Path(os.path.abspath(os.path.expanduser(location))))
    rule = schema["items"]["properties"]["sample"]
    reserved = rule.get("not", {}).get("enum", [])
    problems = []
    if _cell_problem("sample", sample, rule, Path.cwd()) is not None:  # the samplesheet's rule for the column
        problems.append(f"{shown_as}: '{sample}' (from the file name) cannot be a sample name: use letters, digits, "
                        f"'.', '_', '-' and not {' or '.join(reserved)}; rename the file or use a samplesheet")
    return Sample(sample, (shown_as,), ""), problems


def resolve_input(location: str, schema: dict | None = None) -> tuple[list[Sample], list[str], list[str]]:
    """(samples, problems, warnings) of the pipeline's --input: a samplesheet (.csv) or one sequence file.

    Local sequence files are sniffed (``seqio.sniff_problem``); URIs are left for Nextflow to stage, since looking
    inside would download them twice. An empty file is an error for a lone file and a warning in a samplesheet, where
    it must not block the other samples: it runs as a sample with 0 records and is reported.
    """
    schema = schema or load_schema()
    lone = not location.lower().endswith(".csv")
    if lone:
        sample, problems = _file_sample(location, schema)
        samples = [sample]
    else:
        try:
            samples, problems = read_samplesheet(location, schema), []
        except InputError as exc:
            return [], [str(exc)], []
    warnings: list[str] = []
    for sample in samples:
        for path in (f for f in sample.files if not is_uri(f)):
            problem = sniff_problem(path)
            if problem == EMPTY_FILE and not lone:
                warnings.append(f"sample {sample.sample}: {path}: {problem}; it runs as a sample with 0 records")
            elif problem:
                problems.append(f"{path}: {problem}")
    return samples, problems, warnings
