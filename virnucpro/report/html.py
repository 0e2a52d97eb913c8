"""The run's report: one self-contained HTML file (inline CSS and SVG, no JavaScript, nothing fetched) and MultiQC
custom-content files, built from the per-sample summary JSONs (aggregate) and the per-shard embed summaries.

Outputs in ``outdir`` (written atomically):
  virnucpro_report.html              banner (test models, warnings that change what scores mean), per-sample
                                     counts, top viral regions, links to the result files, score histograms,
                                     embedding throughput per step (CPU or GPU), warnings, provenance tables
  output.md                          docs/output.md, when given, so that the report's link to it works
  virnucpro_summary_mqc.tsv          MultiQC table: one row per sample
  virnucpro_calls_mqc.tsv            MultiQC bar graph: viral whole / viral partial / not viral / no prediction /
                                     too short records per sample
  virnucpro_score_histogram_mqc.json MultiQC line graph: records per virus_score bin, per sample
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from urllib.parse import quote

from virnucpro import __version__
from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_output_dir
from virnucpro.models.encoders import ENCODERS
from virnucpro.options import CHUNK_LENGTHS
from virnucpro.report import svg
from virnucpro.options import SHORT_READ_FRACTION

REPORT_NAME = "virnucpro_report.html"
MQC_SUMMARY = "virnucpro_summary_mqc.tsv"
MQC_CALLS = "virnucpro_calls_mqc.tsv"
MQC_HISTOGRAM = "virnucpro_score_histogram_mqc.json"
# Embed summaries name each encoder by its feature column: "DNABERT-S (nucleotide)", "ESM-2 (protein)".
MODEL_NAMES = {spec.name: f"{spec.label} ({spec.field})" for spec in ENCODERS}
SAMPLE_KEYS = ("sample", "records", "records_viral", "percent_viral", "frames", "histograms")
TOP_ROWS = 25  # regions in the report's top table, over all samples
DOCS_NAME = "output.md"  # the output documentation, copied beside the report when given


def load_json(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(path, "expected a JSON object")
    missing = [k for k in required if k not in data]
    if missing:
        raise InputError(path, f"not a sample summary from `virnucpro aggregate`: no {missing[0]!r}")
    return data


def load_sample_summaries(paths: list[Path]) -> list[dict]:
    summaries = []
    seen: dict[str, Path] = {}
    for path in paths:
        s = load_json(path, SAMPLE_KEYS)
        if s["sample"] in seen:
            raise InputError(path, f"sample {s['sample']!r} also summarised in {seen[s['sample']]}")
        seen[s["sample"]] = path
        summaries.append(s)
    return sorted(summaries, key=lambda s: s["sample"])


def load_embed_summaries(paths: list[Path]) -> list[dict]:
    """Embed summaries, each with 'sample' and 'shard' taken from its name (<sample>.<shard>.embed.json) when
    the JSON does not hold them. Empty files (stub runs) are skipped."""
    rows = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "embed summary not found")
        if path.stat().st_size == 0:
            continue
        data = load_json(path)
        if "models" not in data:
            continue  # e.g. the '{}' a stub run writes
        stem = path.name.removesuffix(".json").removesuffix(".embed")
        sample, _, shard = stem.rpartition(".")
        data.setdefault("sample", sample or stem)
        data.setdefault("shard", shard if sample else "")
        rows.append(data)
    return sorted(rows, key=lambda d: (str(d["sample"]), str(d["shard"])))


def throughput_by_model(embeds: list[dict]) -> list[dict]:
    """Per embedding model (one GPU step each): totals over shards, rates over summed device time."""
    steps: dict[str, dict] = {}
    for e in embeds:
        for name, m in e.get("models", {}).items():
            s = steps.setdefault(name, {"model": name, "shards": 0, "sequences": 0, "tokens": 0,
                                        "device_seconds": 0.0, "devices": set(), "precisions": set(),
                                        "copied": 0, "dedup_frames": 0})
            s["shards"] += 1
            s["sequences"] += m.get("sequences") or 0
            s["tokens"] += m.get("tokens") or 0
            s["device_seconds"] += m.get("device_seconds") or 0.0
            dedup = (e.get("dedup") or {}).get(name) or {}  # embed/dedup.py: duplicates copied, not embedded
            s["copied"] += dedup.get("copied") or 0
            s["dedup_frames"] += dedup.get("frames") or 0
            s["devices"].add(str(e.get("device", "?")))
            s["precisions"].add(str(e.get("precision", "?")))
    for s in steps.values():
        secs = s["device_seconds"]
        s["tokens_per_s"] = s["tokens"] / secs if secs else None
        s["sequences_per_s"] = s["sequences"] / secs if secs else None
    return list(steps.values())


# ----------------------------------------------------------------------------------------------------------------
# HTML

CSS = """
body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}h3{font-size:14px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}.warn{background:#fff3cd;border:1px solid #e0c36a;padding:6px 10px}
.banner{background:#f8d7da;border:2px solid #c0392b;padding:8px 12px;margin:10px 0}.banner li{margin:3px 0}
.grid{display:flex;flex-wrap:wrap;gap:10px}.note{color:#555;font-size:13px}pre{background:#f7f7f7;padding:8px;
overflow-x:auto;font-size:12px}code{font-size:12px}
"""

# One number format per kind of number, everywhere in the report.
def _count(x) -> str:
    return "NA" if x is None else f"{int(x):,}"


def _percent(x) -> str:
    return "NA" if x is None else f"{float(x):.1f}%"


def _score(x) -> str:
    return "NA" if x is None else f"{float(x):.3f}"


def _seconds(x) -> str:
    return "NA" if x is None else f"{float(x):,.1f}"


def _rate(x) -> str:
    return "NA" if x is None else f"{float(x):,.0f}"


def _text(x) -> str:
    return "NA" if x is None else escape(str(x))


def _yes_no(x) -> str:
    return "NA" if x is None else ("yes" if x else "no")


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """An HTML table of already formatted (escaped) cells; the first ``left`` columns are text (left-aligned)."""
    out = ["<table><tr>"]
    out += [f'<th class="{"l" if k < left else ""}">{escape(h)}</th>' for k, h in enumerate(header)]
    out.append("</tr>")
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="{"l" if k < left else ""}">{v}</td>' for k, v in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _device_label(device) -> str:
    """Where a step ran, in words: CPU or GPU (with its name)."""
    text = str(device or "?")
    return f"CPU {text[3:].strip()}".strip() if text.lower().startswith("cpu") else f"GPU {text}"


def _no_prediction_other(s: dict) -> int:
    """Records without a prediction for a reason other than --min-length (empty, stop codons in every frame)."""
    return (s.get("records_no_prediction") or 0) - (s.get("records_too_short") or 0)


def _banner(samples: list[dict], embeds: list[dict], provenance: list[dict]) -> str:
    """Warnings that make the scores meaningless or change what they mean, before anything else."""
    items = []
    test_models = sorted({m.get("name", role) for p in provenance for role, m in p.get("models", {}).items()
                          if m.get("test_model")})
    if test_models or any(e.get("test_models") for e in embeds):
        which = f" ({', '.join(test_models)})" if test_models else ""
        items.append(f"<b>TEST models</b>{escape(which)}: tiny random-weight models were used, so every score and "
                     "call in this report is meaningless. Use the published models for real results.")
    for s in samples:
        name = f"<b>{escape(s['sample'])}</b>: "
        length, median = s.get("chunk_length"), (s.get("record_length") or {}).get("median")
        if length is None:
            items.append(name + "chunk length unknown; the calls cannot be matched to a published model.")
        elif length not in CHUNK_LENGTHS:
            items.append(name + f"chunk length {length} bp matches no published model (300 or 500 bp): the scores "
                         "come from a model that never saw chunks of this length.")
        elif median and median < SHORT_READ_FRACTION * length:
            items.append(name + f"median record length {median:g} bp is much shorter than the {length} bp chunks "
                         "the model was trained on: calls on such short records are unreliable.")
        if s.get("threshold", 0.5) != 0.5:
            items.append(name + f"records are called viral at virus_score &ge; {s['threshold']:g}, not the "
                         "original's 0.5: the viral counts are not those the original VirNucPro would give.")
    if not items:
        return ""
    return '<div class="banner"><b>Read this first</b><ul>' + "".join(f"<li>{i}</li>" for i in items) + "</ul></div>"


def _samples_section(samples: list[dict]) -> str:
    header = ["sample", "records", "viral", "whole", "partial", "not viral", "no prediction", "too short",
              "% viral", "regions", "median length (bp)", "chunk length (bp)", "min length (bp)", "threshold"]
    rows = [[_text(s["sample"]), _count(s["records"]), _count(s["records_viral"]),
             _count(s.get("records_viral_whole")), _count(s.get("records_viral_partial")),
             _count(s.get("records_not_viral")), _count(_no_prediction_other(s)),
             _count(s.get("records_too_short", 0)), _percent(s["percent_viral"]), _count(s.get("regions")),
             _count((s.get("record_length") or {}).get("median")), _count(s.get("chunk_length")),
             _count(s.get("min_length", 0)), _score(s.get("threshold", 0.5))]
            for s in samples]

    def shares(s):
        n = s["records"] or 1
        whole = s.get("records_viral_whole", s["records_viral"])
        parts = [("viral", whole), ("partial", s.get("records_viral_partial", 0)),
                 ("not_viral", s.get("records_not_viral", 0)), ("no_prediction", _no_prediction_other(s)),
                 ("too_short", s.get("records_too_short", 0))]
        return [(c, 100.0 * v / n if s["records"] else 0.0) for c, v in parts]

    bars = svg.stacked_bars([(s["sample"], shares(s)) for s in samples], 100.0, "% of the sample's records")
    key = svg.legend([("viral", "viral, whole"), ("partial", "viral, partial"), ("not_viral", "not viral"),
                      ("no_prediction", "no prediction"), ("too_short", "too short")])
    return ("<h2>Samples</h2>" + _table(header, rows)
            + '<p class="note"><b>viral</b> = <b>whole</b> + <b>partial</b>: a viral record is whole when its one '
              "viral region holds every scored chunk, partial when the viral chunks cover only part of it (a "
              "prophage candidate, or several regions). <b>no prediction</b>: empty, or a stop codon in every frame "
              "of every chunk. <b>too short</b>: below --min_length, never classified. records = viral + not viral "
              "+ no prediction + too short.</p>"
            + "<h3>Calls per sample</h3>" + key + "<br>" + bars)


def _top_regions_section(samples: list[dict]) -> str:
    rows = sorted(((s["sample"], r) for s in samples for r in s.get("top_regions", [])),
                  key=lambda t: (-t[1]["max_chunk_score"], -t[1]["mean_chunk_score"], t[0]))[:TOP_ROWS]
    if not rows:
        return "<h2>Top viral regions</h2><p>No viral region in any sample.</p>"
    table = _table(
        ["sample", "region", "record", "record length (bp)", "start", "end", "region length (bp)", "chunks",
         "max chunk score", "mean chunk score", "call"],
        [[_text(sample), _text(r["region_id"]), _text(r["record_id"]), _count(r["record_length"]),
          _count(r["start"]), _count(r["end"]), _count(r["length"]), _count(r["n_chunks"]),
          _score(r["max_chunk_score"]), _score(r["mean_chunk_score"]), "whole" if r["whole_record"] else "partial"]
         for sample, r in rows], left=3)
    return ("<h2>Top viral regions</h2>"
            f'<p class="note">The {len(rows)} best-scoring regions over all samples, by max then mean chunk score. '
            "Coordinates are 1-based and inclusive; all regions are in each sample's "
            "<code>&lt;sample&gt;.viral_regions.tsv</code> (also GFF3 and BED).</p>" + table)


def _histograms_section(samples: list[dict]) -> str:
    plots = []
    for s in samples:
        h = s["histograms"]
        plots.append(svg.histogram(h["virus_score"], h["edges"], s.get("threshold"), s["sample"]))
    return ("<h2>Score histograms</h2>"
            '<p class="note">Records per virus_score bin (the best chunk of each record); the dashed line is the '
            "threshold, red bars are at or above it.</p>"
            '<div class="grid">' + "".join(plots) + "</div>")


def _throughput_section(embeds: list[dict]) -> str:
    if not embeds:
        return "<h2>Embedding throughput</h2><p class=\"note\">No embed summaries given.</p>"
    steps = throughput_by_model(embeds)
    step_rows = [[_text(MODEL_NAMES.get(s["model"], s["model"])),
                  _text(", ".join(sorted(_device_label(d) for d in s["devices"]))),
                  _text(", ".join(sorted(s["precisions"]))), _count(s["shards"]), _count(s["sequences"]),
                  _count(s["tokens"]), _seconds(s["device_seconds"]), _rate(s["tokens_per_s"]),
                  _rate(s["sequences_per_s"]),
                  _text(f"{_count(s['copied'])} ({100.0 * s['copied'] / s['dedup_frames']:.1f}%)"
                        if s["dedup_frames"] else "–")]
                 for s in steps]
    model_names = [s["model"] for s in steps]
    shard_rows = []
    for e in embeds:
        row = [_text(e["sample"]), _text(e["shard"]), _text(_device_label(e.get("device"))),
               _text(e.get("precision")), _yes_no(e.get("test_models")), _count(e.get("frames")),
               _seconds(e.get("wall_seconds")), _rate(e.get("frames_per_s"))]
        row += [_rate(e.get("models", {}).get(m, {}).get("tokens_per_s")) for m in model_names]
        row += [_count(e.get("parts_reused"))]
        shard_rows.append(row)
    xmax = svg._nice_max(max((e.get("frames_per_s") or 0) for e in embeds))
    bars = svg.stacked_bars([(f"{e['sample']}:{e['shard']}", [("bar", e.get("frames_per_s") or 0.0)])
                             for e in embeds], xmax, "frames per second (wall time of the embed task)")
    return ("<h2>Embedding throughput</h2>"
            '<p class="note">One step per embedding model; "ran on" says whether it ran on the CPU or a GPU.</p>'
            + _table(["step (model)", "ran on", "precision", "shards", "sequences", "tokens", "device time (s)",
                      "tokens/s", "sequences/s", "duplicates copied (not embedded)"], step_rows, left=3)
            + '<p class="note">Rates are over summed per-batch device time. Per shard:</p>'
            + _table(["sample", "shard", "ran on", "precision", "test models", "frames", "wall time (s)",
                      "frames/s"] + [f"{MODEL_NAMES.get(m, m)} tokens/s" for m in model_names]
                     + ["checkpoint parts reused"], shard_rows, left=5)
            + bars)


def _warnings_section(samples: list[dict]) -> str:
    items = [f"<li><b>{escape(s['sample'])}</b>: {escape(w)}</li>" for s in samples for w in s.get("warnings", [])]
    return "<h2>All warnings</h2>" + ("<ul>" + "".join(items) + "</ul>" if items else "<p>None.</p>")


def _files_section(samples: list[dict], docs: str | None) -> str:
    """Links to each sample's result files, relative to report/ in the results folder (<outdir>/<sample>/...)."""
    rows = []
    for s in samples:
        links = [f'<a href="../{quote(s["sample"])}/{quote(name)}">{escape(name)}</a>'
                 for key, name in (s.get("outputs") or {}).items()]
        rows.append([_text(s["sample"]), " ".join(links)])
    doc = (f' Every column and file is described in <a href="{quote(docs)}">{escape(docs)}</a> (beside this '
           "report).") if docs else ""
    return ("<h2>Result files</h2>"
            f'<p class="note">Links are relative to this report in the results folder.{doc}</p>'
            + _table(["sample", "files"], rows, left=2))


def _provenance_section(samples: list[dict], embeds: list[dict], files: list[tuple[Path, dict | None]]) -> str:
    versions = sorted({str(s.get("virnucpro_version")) for s in samples})
    torch_versions = sorted({str(e["torch"]) for e in embeds if e.get("torch")})
    rows = [["virnucpro", _text(", ".join(versions))]]
    if torch_versions:
        rows.append(["torch (embed)", _text(", ".join(torch_versions))])
    out = "<h2>Software and models</h2>" + _table(["component", "version"], rows, left=2)
    for path, record in files:
        out += f"<h3>{escape(Path(path).name)}</h3>"
        if record is None:
            out += f"<pre>{escape(Path(path).read_text(encoding='utf-8', errors='replace'))}</pre>"
            continue
        settings = [[escape(k), _text(record.get(k))]
                    for k in ("precision_requested", "chunk_length", "virnucpro_version") if k in record]
        # What the EMBED tasks computed in (a CPU task uses fp32 whatever was requested), from their summaries.
        used = sorted({str(e["precision"]) for e in embeds if e.get("precision")})
        if used:
            settings.insert(1, ["precision_used", _text(", ".join(used))])
        out += _table(["setting", "value"], settings, left=2)
        models = [[_text(m.get("name", role)), _text(m.get("kind")), _yes_no(m.get("test_model")),
                   _text(m.get("path")), f"<code>{_text(m.get('sha256'))}</code>", _count(m.get("size"))]
                  for role, m in record.get("models", {}).items()]
        out += "<br>" + _table(["model", "kind", "test model", "path", "sha256", "size (bytes)"], models, left=5)
    return out


def _read_provenance(paths: list[Path]) -> list[tuple[Path, dict | None]]:
    """Each provenance file with its parsed record when it is model_provenance.json-like JSON, else None."""
    out = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        out.append((path, data if isinstance(data, dict) and "models" in data else None))
    return out


def render_html(samples: list[dict], embeds: list[dict], provenance: list[Path], docs: str | None = None) -> str:
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    records = _read_provenance(provenance)
    body = (_banner(samples, embeds, [r for _, r in records if r]) + _samples_section(samples)
            + _top_regions_section(samples) + _files_section(samples, docs) + _histograms_section(samples)
            + _throughput_section(embeds) + _warnings_section(samples)
            + _provenance_section(samples, embeds, records))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>virnucpro report</title>"
            f"<style>{CSS}</style></head><body><h1>virnucpro report</h1>"
            f'<p class="note">{len(samples)} sample(s); virnucpro {escape(__version__)}; written {created}.</p>'
            + body + "</body></html>\n")


# ----------------------------------------------------------------------------------------------------------------
# MultiQC custom content (https://docs.seqera.io/multiqc/custom_content): a TSV whose leading '#' lines are YAML.

def _mqc_header(fields: dict) -> str:
    lines = []
    for key, value in fields.items():
        if isinstance(value, dict):
            lines.append(f"# {key}:")
            lines += [f"#     {k}: {json.dumps(v)}" for k, v in value.items()]
        else:
            lines.append(f"# {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def _tsv_cell(x) -> str:
    return "NA" if x is None else str(x).replace("\t", " ")


def multiqc_files(samples: list[dict]) -> dict[str, str]:
    summary = _mqc_header({
        "id": "virnucpro_summary",
        "section_name": "VirNucPro summary",
        "description": "Records per sample and how many were called viral (virnucpro aggregate).",
        "plot_type": "table",
        "pconfig": {"id": "virnucpro_summary_table", "title": "VirNucPro: per-sample summary"},
    })
    columns = ["Sample", "records", "viral", "viral_whole", "viral_partial", "percent_viral", "not_viral",
               "no_prediction", "too_short", "regions", "chunks", "frames", "median_length", "chunk_length",
               "min_length", "threshold"]
    summary += "\t".join(columns) + "\n"
    for s in samples:
        summary += "\t".join(_tsv_cell(v) for v in (
            s["sample"], s["records"], s["records_viral"], s.get("records_viral_whole"),
            s.get("records_viral_partial"), s["percent_viral"], s.get("records_not_viral"),
            _no_prediction_other(s), s.get("records_too_short", 0), s.get("regions"), s.get("chunks"), s["frames"],
            s.get("record_length", {}).get("median"), s.get("chunk_length"), s.get("min_length", 0),
            s.get("threshold"))) + "\n"

    calls = _mqc_header({
        "id": "virnucpro_calls",
        "section_name": "VirNucPro calls",
        "description": "Records called viral (whole record or part of it), not viral, without a prediction (no "
                       "frame to score), or too short to classify (--min_length).",
        "plot_type": "bargraph",
        "pconfig": {"id": "virnucpro_calls_plot", "title": "VirNucPro: calls per sample", "ylab": "records"},
    })
    calls += "Sample\tviral_whole\tviral_partial\tnot_viral\tno_prediction\ttoo_short\n"
    for s in samples:
        whole = s.get("records_viral_whole", s["records_viral"])  # summaries from before regions: all whole
        calls += f"{s['sample']}\t{whole}\t{s.get('records_viral_partial', 0)}\t{s.get('records_not_viral', 0)}\t" \
                 f"{_no_prediction_other(s)}\t{s.get('records_too_short', 0)}\n"

    # A line graph in TSV needs a header row whose meaning differs between MultiQC versions; JSON does not.
    edges = samples[0]["histograms"]["edges"] if samples else []
    centres = [round((a + b) / 2, 4) for a, b in zip(edges, edges[1:])]
    hist = json.dumps({
        "id": "virnucpro_score_histogram",
        "section_name": "VirNucPro score distribution",
        "description": "Records per virus_score bin (bin centres on the x axis).",
        "plot_type": "linegraph",
        "pconfig": {"id": "virnucpro_score_histogram_plot", "title": "VirNucPro: virus_score histogram",
                    "xlab": "virus_score", "ylab": "records"},
        "data": {s["sample"]: dict(zip(centres, s["histograms"]["virus_score"])) for s in samples},
    }, indent=1) + "\n"
    return {MQC_SUMMARY: summary, MQC_CALLS: calls, MQC_HISTOGRAM: hist}


def write_report(summary_paths: list[Path], embed_paths: list[Path], outdir: Path,
                 provenance: list[Path] | None = None, docs: Path | None = None) -> list[Path]:
    """Write the report files into ``outdir``; ``docs`` (docs/output.md) is copied beside them as DOCS_NAME so that
    the report's link to it works wherever the results folder goes."""
    samples = load_sample_summaries(summary_paths)
    if docs is not None and not Path(docs).is_file():
        raise InputError(docs, "output documentation not found")
    embeds = load_embed_summaries(embed_paths or [])
    provenance = [Path(p) for p in provenance or []]
    for p in provenance:
        if not p.is_file():
            raise InputError(p, "provenance file not found")
    edges = {tuple(s["histograms"]["edges"]) for s in samples}
    if len(edges) > 1:
        raise InputError(summary_paths[0], "the sample summaries use different histogram bins")
    files = {REPORT_NAME: render_html(samples, embeds, provenance, DOCS_NAME if docs else None),
             **multiqc_files(samples)}
    if docs is not None:
        files[DOCS_NAME] = Path(docs).read_text(encoding="utf-8")
    with atomic_output_dir(outdir) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
    return [Path(outdir) / name for name in files]
