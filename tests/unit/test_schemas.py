"""The schemas are valid JSON Schema draft 2020-12 and agree with each other; the image tag is the version."""

import json
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = ["nextflow_schema.json", "assets/schema_input.json"]


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_is_valid_draft_2020_12(name):
    schema = json.loads((REPO / name).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].startswith("https://raw.githubusercontent.com/virnucpro/virnucpro/main/")
    assert schema["$id"].endswith("/" + name)


def test_input_links_the_samplesheet_schema():
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    linked = schema["$defs"]["input_output_options"]["properties"]["input"]["schema"]
    assert (REPO / linked).is_file() and linked == "assets/schema_input.json"


def test_samplesheet_schema_accepts_what_check_samplesheet_accepts():
    """A standard validator agrees with virnucpro/io/samplesheet.py on rows (file existence aside)."""
    schema = json.loads((REPO / "assets/schema_input.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    good = [{"sample": "a", "fasta": "x.fa"}, {"sample": "b", "fastq_1": "r1.fq.gz", "fastq_2": "r2.fq.gz"},
            {"sample": "c", "fastq": "s3://bucket/x.fastq.gz", "batch": "b1"}]
    assert not list(validator.iter_errors(good))
    for bad in ({"sample": "a"}, {"sample": "a", "fasta": "x.fa", "fastq": "y.fq"},
                {"sample": "a", "fastq_2": "r2.fq"}, {"sample": "report", "fasta": "x.fa"},
                {"sample": "a", "fasta": "x.fa", "id": "z"}, {"sample": "a b", "fasta": "x.fa"}):
        assert list(validator.iter_errors([bad])), bad


def test_image_tag_is_the_pipeline_version():
    """process.container, manifest.version and the package version name one release."""
    import re

    from virnucpro import __version__

    config = (REPO / "nextflow.config").read_text()
    assert re.search(r"^\s*version\s*=\s*'([^']+)'", config, re.M).group(1) == __version__
    assert re.search(r"^process\.container = '([^']+)'", config, re.M).group(1) == f"virnucpro:{__version__}"
