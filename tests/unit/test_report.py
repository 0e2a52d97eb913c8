"""virnucpro report: self-contained HTML with inline SVG, and MultiQC custom content."""

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from virnucpro.cli import main
from virnucpro.errors import InputError
from virnucpro.report.html import MQC_CALLS, MQC_HISTOGRAM, MQC_SUMMARY, REPORT_NAME, throughput_by_model

from summaries import EMBED

EDGES = [round(k / 20, 4) for k in range(21)]


def sample_summary(name, viral, not_viral, no_prediction, hist=None, threshold=0.5):
    records = viral + not_viral + no_prediction
    return {
        "format": "virnucpro.sample_summary/1", "sample": name, "virnucpro_version": "0.1.0",
        "threshold": threshold, "chunk_length": 500, "records": records, "records_viral": viral,
        "records_not_viral": not_viral, "records_no_prediction": no_prediction,
        "percent_viral": 100.0 * viral / records if records else 0.0, "percent_viral_of_scored": 0.0,
        "chunks": 10, "frames": 30, "record_length": {"median": 150},
        "histograms": {"edges": EDGES, "virus_score": hist or [0] * 20, "max_p_virus": hist or [0] * 20},
        "warnings": ["median record length 150 bp is much shorter <than> the chunk length"],
    }


@pytest.fixture
def inputs(tmp_path):
    hist = [0] * 20
    hist[2], hist[19] = 3, 4
    paths = []
    for s in (sample_summary("alpha", 4, 3, 1, hist), sample_summary("b<&>eta", 0, 2, 0),
              sample_summary("empty", 0, 0, 0)):
        p = tmp_path / f"{s['sample']}.summary.json"
        p.write_text(json.dumps(s))
        paths.append(p)
    embeds = []
    for shard in ("shard_00000", "shard_00001"):
        p = tmp_path / f"alpha.{shard}.embed.json"
        p.write_text(json.dumps(EMBED))
        embeds.append(p)
    stub = tmp_path / "x.shard_00000.embed.json"
    stub.write_text("{}")  # what a stub run writes: skipped
    versions = tmp_path / "software_versions.yml"
    versions.write_text("EMBED:\n  torch: '2.11.0'\n")
    return {"summaries": paths, "embeds": embeds + [stub], "versions": versions}


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.external = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href") and value and re.match(r"https?:|//", value):
                self.external.append(value)


def run_report(inputs, outdir):
    argv = ["report", "--summaries", *map(str, inputs["summaries"]), "--embed-summaries",
            *map(str, inputs["embeds"]), "--provenance", str(inputs["versions"]), "--outdir", str(outdir)]
    assert main(argv) == 0


def test_html_is_self_contained_names_every_sample_and_has_valid_svg(inputs, tmp_path):
    out = tmp_path / "report"
    run_report(inputs, out)
    html = (out / REPORT_NAME).read_text()
    parser = _Collect()
    parser.feed(html)
    assert "script" not in parser.tags and parser.external == []
    assert "alpha" in html and "b&lt;&amp;&gt;eta" in html and "b<&>eta" not in html and "empty" in html
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    # legend + % viral bars + one histogram per sample + throughput bars
    assert len(svgs) == 1 + 1 + 3 + 1
    for block in svgs:
        root = ET.fromstring(block)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "TEST models" in html  # the test-model flag is shown
    assert "ESM-2 (protein)" in html and "18,000" in html  # per-step throughput: 9000 tokens / 0.5 s
    assert "much shorter &lt;than&gt; the chunk length" in html
    assert "software_versions.yml" in html and "torch: &#x27;2.11.0&#x27;" in html


def test_histogram_bars_follow_the_counts(inputs, tmp_path):
    out = tmp_path / "report"
    run_report(inputs, out)
    html = (out / REPORT_NAME).read_text()
    alpha = next(b for b in re.findall(r"<svg.*?</svg>", html, re.S) if ">alpha</text>" in b and "virus_score" in b)
    rects = ET.fromstring(alpha).findall("{http://www.w3.org/2000/svg}rect")
    heights = [float(r.get("height")) for r in rects]
    assert len(heights) == 20
    assert heights[19] > heights[2] > 0 and sum(h > 0 for h in heights) == 2
    assert rects[19].get("fill") != rects[2].get("fill")  # above vs below the threshold


def test_multiqc_files_are_well_formed(inputs, tmp_path):
    out = tmp_path / "report"
    run_report(inputs, out)
    for name, plot_type in ((MQC_SUMMARY, "table"), (MQC_CALLS, "bargraph")):
        text = (out / name).read_text()
        comments = [line[2:] for line in text.splitlines() if line.startswith("#")]
        assert 'id: "virnucpro_' in "\n".join(comments)
        assert f'plot_type: "{plot_type}"' in comments
        assert any(c.startswith("section_name: ") for c in comments)
        rows = [line.split("\t") for line in text.splitlines() if not line.startswith("#")]
        assert rows[0][0] == "Sample" and len({len(r) for r in rows}) == 1
        assert sorted(r[0] for r in rows[1:]) == sorted(["alpha", "b<&>eta", "empty"])
    calls = [line.split("\t") for line in (out / MQC_CALLS).read_text().splitlines() if not line.startswith("#")]
    assert ["alpha", "4", "0", "3", "1", "0"] in calls  # summaries from before regions: viral counts as whole
    hist = json.loads((out / MQC_HISTOGRAM).read_text())
    assert hist["plot_type"] == "linegraph" and hist["id"] == "virnucpro_score_histogram"
    assert sum(hist["data"]["alpha"].values()) == 7 and len(hist["data"]) == 3


def test_throughput_totals_over_shards():
    steps = {s["model"]: s for s in throughput_by_model([EMBED, EMBED])}
    assert steps["protein"]["tokens"] == 18000 and steps["protein"]["tokens_per_s"] == pytest.approx(18000.0)
    assert steps["nucleotide"]["shards"] == 2 and steps["nucleotide"]["devices"] == {"NVIDIA H100"}


def test_report_without_embed_summaries(inputs, tmp_path):
    out = tmp_path / "report"
    assert main(["report", "--summaries", *map(str, inputs["summaries"]), "--outdir", str(out)]) == 0
    assert "No embed summaries given" in (out / REPORT_NAME).read_text()


def test_bad_summaries_are_refused(inputs, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not a JSON file"):
        from virnucpro.report.html import write_report
        write_report([bad], [], tmp_path / "out")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"sample": "x"}))
    with pytest.raises(InputError, match="not a sample summary"):
        write_report([other], [], tmp_path / "out")
    with pytest.raises(InputError, match="also summarised"):
        write_report([inputs["summaries"][0], inputs["summaries"][0]], [], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- regions, min length and the report's first screen -----------------------------------------------------------

def region_summary():
    s = sample_summary("pro", 3, 5, 2)
    s.update({"records": 11, "percent_viral": 100 * 3 / 11, "records_viral_whole": 1, "records_viral_partial": 2, "records_too_short": 1,
              "records_no_prediction": 3, "regions": 4, "min_length": 1000, "threshold": 0.7, "chunk_length": 500,
              "record_length": {"median": 5000},
              "outputs": {"records": "pro.records.tsv", "regions": "pro.viral_regions.tsv"},
              "top_regions": [
                  {"region_id": "c2_region_1", "record_id": "c2", "record_length": 9000, "start": 1, "end": 9000,
                   "length": 9000, "n_chunks": 18, "max_chunk_score": 0.8, "mean_chunk_score": 0.75,
                   "whole_record": True},
                  {"region_id": "c1_region_1", "record_id": "c1", "record_length": 68502, "start": 10913,
                   "end": 57568, "length": 46656, "n_chunks": 94, "max_chunk_score": 0.95, "mean_chunk_score": 0.9,
                   "whole_record": False}]})
    return s


PROVENANCE = {"precision_requested": "fp16", "chunk_length": 500, "models": {
    "esm": {"name": "ESM-2 (protein)", "kind": "file", "size": 1234567, "sha256": "ab" * 32, "test_model": True,
            "path": "/m/esm.pt"}}}


def test_report_leads_with_the_banner_then_counts_then_top_regions(tmp_path):
    summary = tmp_path / "pro.summary.json"
    summary.write_text(json.dumps(region_summary()))
    prov = tmp_path / "model_provenance.json"
    prov.write_text(json.dumps(PROVENANCE))
    docs = tmp_path / "output.md"
    docs.write_text("# virnucpro: Output\n")
    embed = dict(EMBED, device="cpu (x86_64)", precision="fp32", test_models=False)  # the CPU computes fp32
    (tmp_path / "pro.shard_00000.embed.json").write_text(json.dumps(embed))
    out = tmp_path / "report"
    assert main(["report", "--summaries", str(summary), "--embed-summaries",
                 str(tmp_path / "pro.shard_00000.embed.json"), "--provenance", str(prov), "--docs", str(docs),
                 "--outdir", str(out)]) == 0
    html = (out / REPORT_NAME).read_text()
    banner, samples, top = html.index('class="banner"'), html.index("<h2>Samples</h2>"), html.index("Top viral")
    assert banner < samples < top
    first_screen = html[banner:samples]
    assert "TEST models" in first_screen and "ESM-2 (protein)" in first_screen  # from model_provenance.json
    assert "0.7" in first_screen and "not the original" in first_screen  # a threshold that changes the calls
    # Counts: records = viral + not viral + no prediction (other than too short) + too short.
    row = re.search(r"<tr><td class=\"l\">pro</td>(.*?)</tr>", html[samples:top]).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[:8] == ["11", "3", "1", "2", "5", "2", "1", "27.3%"], cells
    # Top regions sorted by score, with coordinates and thousands separators.
    regions = re.findall(r"<td class=\"l\">(c\d_region_1)</td>", html[top:])
    assert regions == ["c1_region_1", "c2_region_1"]
    assert "10,913" in html[top:] and "57,568" in html[top:] and "0.950" in html[top:]
    # Step labels say CPU; provenance is a table, not a JSON dump.
    step_table = html.split("<h2>Embedding throughput</h2>")[1].split("</p>", 1)[1].split("</table>")[0]
    assert "<td class=\"l\">CPU (x86_64)</td>" in step_table and "GPU" not in step_table
    assert '"models"' not in html and "<td class=\"l\">ESM-2 (protein)</td>" in html and "ab" * 32 in html
    # The precision requested (model_provenance.json) and the one the EMBED tasks computed in (their summaries).
    assert re.search(r"precision_requested</td><td[^>]*>fp16<", html), html
    assert re.search(r"precision_used</td><td[^>]*>fp32<", html), html
    # Every link is relative and points where the results folder has the file (or beside the report).
    links = re.findall(r'href="([^"]+)"', html)
    assert "output.md" in links and "../pro/pro.viral_regions.tsv" in links
    assert (out / "output.md").read_text() == docs.read_text()
    calls = (out / MQC_CALLS).read_text().splitlines()
    assert "pro\t1\t2\t5\t2\t1" in calls
    table = [line.split("\t") for line in (out / MQC_SUMMARY).read_text().splitlines() if not line.startswith("#")]
    assert dict(zip(table[0], table[1]))["too_short"] == "1" and dict(zip(table[0], table[1]))["regions"] == "4"
