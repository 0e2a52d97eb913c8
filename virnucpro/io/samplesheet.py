"""Samplesheets: a CSV of samples checked against ``assets/schema_input.json``.

The rules live in the schema file only; this module reads it and applies the small part of JSON Schema 2020-12 that
the file uses (plus nf-schema's ``exists``, ``uniqueEntries`` and ``errorMessage``), so the pipeline validates its
input itself, offline, without the nf-schema plugin or a jsonschema dependency. A keyword this module does not know
stops it with a bug report instead of being skipped silently.

The sheet: a header row, then one row per sample. Columns are the schema's properties (``sample`` and ``fasta`` or
``fastq``); cells are trimmed; blank lines are skipped; a UTF-8 byte-order mark and Windows line endings are fine.
Relative file paths are resolved against the samplesheet's folder (not the working directory), so a sheet and its
files can be moved together. Every problem is an ``InputError`` whose message names the sheet, the line and the
problem; the first problem found stops the check.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_open

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "assets" / "schema_input.json"

# The schema keywords applied below; anything else in the schema is an error in this module, not in the sheet.
_ITEM_KEYWORDS = {"type", "properties", "required", "oneOf", "errorMessage"}
_CELL_KEYWORDS = {"type", "pattern", "not", "format", "exists", "errorMessage", "meta", "description"}
_SHEET_KEYWORDS = {"$schema", "$id", "title", "description", "type", "minItems", "items", "uniqueEntries"}


@dataclass(frozen=True)
class Sample:
    sample: str
    path: Path  # absolute
    format: str  # the column the file was given in: "fasta" or "fastq"


def load_schema(path: str | os.PathLike = SCHEMA_PATH) -> dict:
    with open(path, encoding="utf-8") as fh:
        schema = json.load(fh)
    unknown = set(schema) - _SHEET_KEYWORDS
    unknown |= set(schema["items"]) - _ITEM_KEYWORDS
    for definition in schema["items"]["properties"].values():
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
    if rule.get("exists"):
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
    unknown = [c for c in header if c not in columns]
    if unknown:
        raise InputError(
            sheet, f"line {header_line}: unknown column {unknown[0]!r} (allowed columns: {', '.join(columns)})"
        )
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise InputError(sheet, f"line {header_line}: column {repeated[0]!r} appears more than once in the header")
    missing = [c for c in items.get("required", []) if c not in header]
    if missing:
        raise InputError(sheet, f"line {header_line}: missing column {missing[0]!r} in the header")
    if not any(c in header for c in file_columns):
        raise InputError(sheet, f"line {header_line}: the header needs a {' or a '.join(file_columns)} column")

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
        alternatives = [alt["required"] for alt in items.get("oneOf", [])]
        if alternatives and sum(all(c in row for c in alt) for alt in alternatives) != 1:
            raise InputError(sheet, f"{where}: {items.get('errorMessage', 'row matches none or several of oneOf')}")
        for column, value in row.items():
            problem = _cell_problem(column, value, columns[column], base)
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
        column = next(c for c in file_columns if c in row)
        samples.append(Sample(row["sample"], _resolve(row[column], base).absolute(), column))

    if len(samples) < schema.get("minItems", 0):
        raise InputError(sheet, "no samples: the samplesheet has a header but no sample rows")
    return samples


def write_valid_samplesheet(samples: list[Sample], out: str | os.PathLike) -> None:
    """``sample,path,format`` with absolute paths, written atomically (temp file + rename)."""
    with atomic_open(out, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["sample", "path", "format"])
        for s in samples:
            writer.writerow([s.sample, str(s.path), s.format])
