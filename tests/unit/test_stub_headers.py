"""The stub blocks of modules/local/*/main.nf write table headers copied from Python: they must equal the constants
the real commands write, so a -stub run's files are headed like a real run's."""

import re
from pathlib import Path

import pytest

from virnucpro.classify.outputs import HIGHESTSCORE_HEADER, PREDICTION_HEADER
from virnucpro.io.frames import FRAME_STATS_HEADER, SHARD_HEADER
from virnucpro.preprocess.run import RECORDS_HEADER
from virnucpro.report.regions import CHUNK_COLUMNS, GFF_HEADER, REGION_COLUMNS
from virnucpro.report.rollup import RECORD_COLUMNS

MODULES = Path(__file__).resolve().parents[2] / "modules" / "local"
# (module, file the stub writes) -> the header the real command writes, with its line end.
EXPECTED = {
    ("aggregate", "aggregate/prediction_results.txt"): "\t".join(PREDICTION_HEADER) + "\n",
    ("aggregate", "aggregate/prediction_results_highestscore.csv"): "\t".join(HIGHESTSCORE_HEADER) + "\n",
    ("aggregate", "aggregate/${meta.id}.records.tsv"): "\t".join(RECORD_COLUMNS) + "\n",
    ("aggregate", "aggregate/${meta.id}.chunks.tsv"): "\t".join(CHUNK_COLUMNS) + "\n",
    ("aggregate", "aggregate/${meta.id}.viral_regions.tsv"): "\t".join(REGION_COLUMNS) + "\n",
    ("aggregate", "aggregate/${meta.id}.viral_regions.gff3"): GFF_HEADER,
    ("embed", "${prefix}.predictions.tsv"): "\t".join(PREDICTION_HEADER) + "\n",
    ("preprocess", "preprocess/records.tsv"): RECORDS_HEADER,
    ("preprocess", "preprocess/frame_stats.tsv"): FRAME_STATS_HEADER,
    ("shard", "shards/shard_00000.tsv"): SHARD_HEADER + "\n",
}
# printf lines that write something other than a table header.
NOT_HEADERS = {("provenance", "model_provenance.json")}
PRINTF = re.compile(r"printf '([^']*)'(?: '[^']*')* > (\S+)")


def stub_headers() -> dict[tuple[str, str], str]:
    found = {}
    for main in sorted(MODULES.glob("*/main.nf")):
        stub = main.read_text().split("\n    stub:\n", 1)
        assert len(stub) == 2, f"{main}: no stub block"
        for text, target in PRINTF.findall(stub[1]):
            # Groovy's '\\t' is the shell's '\t', which printf turns into a tab.
            found[(main.parent.name, target)] = text.replace("\\\\t", "\t").replace("\\\\n", "\n")
    return found


def test_every_stub_printf_is_a_known_header():
    assert set(stub_headers()) - NOT_HEADERS == set(EXPECTED)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_stub_header_equals_the_python_constant(key):
    assert stub_headers()[key] == EXPECTED[key], f"modules/local/{key[0]}/main.nf stub writes {key[1]} headed " \
                                                 "unlike the real command: copy the constant's columns"
