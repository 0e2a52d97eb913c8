"""The run's report: one self-contained HTML file (inline CSS and SVG, no JavaScript, nothing fetched) and MultiQC
custom-content files, built from the per-sample summary JSONs (aggregate) and the per-shard embed summaries.

Outputs in ``outdir`` (written atomically):
  virnucpro_report.html              per-sample table, % viral per sample, score histogram per sample,
                                     throughput per GPU step, warnings, provenance
  virnucpro_summary_mqc.tsv          MultiQC table: one row per sample
  virnucpro_calls_mqc.tsv            MultiQC bar graph: viral / not viral / no prediction records per sample
  virnucpro_score_histogram_mqc.json MultiQC line graph: records per virus_score bin, per sample
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from virnucpro import __version__
from virnucpro.errors import InputError
from virnucpro.io.atomic import atomic_output_dir
from virnucpro.report import svg

REPORT_NAME = "virnucpro_report.html"
MQC_SUMMARY = "virnucpro_summary_mqc.tsv"
MQC_CALLS = "virnucpro_calls_mqc.tsv"
MQC_HISTOGRAM = "virnucpro_score_histogram_mqc.json"
# Embed summaries name each encoder by the frame field it embeds.
MODEL_NAMES = {"nucleotide": "DNABERT-S (nucleotide)", "protein": "ESM-2 (protein)"}
SAMPLE_KEYS = ("sample", "records", "records_viral", "percent_viral", "frames", "histograms")


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
body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}.warn{background:#fff3cd;border:1px solid #e0c36a;padding:6px 10px}
.grid{display:flex;flex-wrap:wrap;gap:10px}.note{color:#555;font-size:13px}pre{background:#f7f7f7;padding:8px;
overflow-x:auto;font-size:12px}
"""


def _fmt(x, digits: int = 2) -> str:
    if x is None:
        return "NA"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return escape(str(x))


def _table(header: list[str], rows: list[list], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are text (left-aligned), the rest numbers."""
    out = ["<table><tr>"]
    out += [f'<th class="{"l" if k < left else ""}">{escape(h)}</th>' for k, h in enumerate(header)]
    out.append("</tr>")
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="{"l" if k < left else ""}">{_fmt(v)}</td>' for k, v in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _samples_section(samples: list[dict]) -> str:
    header = ["sample", "records", "viral", "% viral", "% viral of scored", "not viral", "no prediction",
              "chunks", "frames", "median length (bp)", "chunk length", "threshold"]
    rows = [[s["sample"], s["records"], s["records_viral"], float(s["percent_viral"]),
             float(s.get("percent_viral_of_scored", 0.0)), s.get("records_not_viral"),
             s.get("records_no_prediction"), s.get("chunks"), s["frames"],
             s.get("record_length", {}).get("median"), s.get("chunk_length"), float(s.get("threshold", 0.5))]
            for s in samples]
    bars = svg.stacked_bars(
        [(s["sample"], [(c, 100.0 * s.get(f"records_{c}", 0) / s["records"] if s["records"] else 0.0)
                        for c in ("viral", "not_viral", "no_prediction")]) for s in samples],
        100.0, "% of the sample's records")
    key = svg.legend([("viral", "viral"), ("not_viral", "not viral"), ("no_prediction", "no prediction")])
    return ("<h2>Samples</h2>" + _table(header, rows)
            + "<h2>% viral per sample</h2>" + key + "<br>" + bars
            + '<p class="note">A record is viral when its virus_score is at or above the threshold; records with no '
              "frame to score (empty, or a stop codon in every frame) have no prediction. See docs/output.md.</p>")


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
        return "<h2>Throughput per GPU step</h2><p class=\"note\">No embed summaries given.</p>"
    steps = throughput_by_model(embeds)
    step_rows = [[MODEL_NAMES.get(s["model"], s["model"]), ", ".join(sorted(s["devices"])),
                  ", ".join(sorted(s["precisions"])), s["shards"], s["sequences"], s["tokens"],
                  float(s["device_seconds"]), s["tokens_per_s"], s["sequences_per_s"],
                  f"{s['copied']} ({100.0 * s['copied'] / s['dedup_frames']:.1f}%)" if s["dedup_frames"] else "–"]
                 for s in steps]
    model_names = [s["model"] for s in steps]
    shard_rows = []
    for e in embeds:
        row = [e["sample"], e["shard"], e.get("device"), e.get("precision"), e.get("test_models"),
               e.get("frames"), e.get("wall_seconds"), e.get("frames_per_s")]
        row += [e.get("models", {}).get(m, {}).get("tokens_per_s") for m in model_names]
        row += [e.get("parts_reused")]
        shard_rows.append(row)
    xmax = svg._nice_max(max((e.get("frames_per_s") or 0) for e in embeds))
    bars = svg.stacked_bars([(f"{e['sample']}:{e['shard']}", [("bar", e.get("frames_per_s") or 0.0)])
                             for e in embeds], xmax, "frames per second (wall time of the embed task)")
    warn = ""
    if any(e.get("test_models") for e in embeds):
        warn = ('<p class="warn">Tiny random-weight TEST models were used for embedding: the scores in this run '
                "mean nothing.</p>")
    return ("<h2>Throughput per GPU step</h2>" + warn
            + _table(["step (model)", "device", "precision", "shards", "sequences", "tokens", "device s",
                      "tokens/s", "sequences/s", "duplicates copied (not embedded)"], step_rows, left=3)
            + '<p class="note">Rates are over summed per-batch device time. Per shard:</p>'
            + _table(["sample", "shard", "device", "precision", "test models", "frames", "wall s", "frames/s"]
                     + [f"{MODEL_NAMES.get(m, m)} tokens/s" for m in model_names] + ["checkpoint parts reused"],
                     shard_rows, left=5)
            + bars)


def _warnings_section(samples: list[dict]) -> str:
    items = [f"<li><b>{escape(s['sample'])}</b>: {escape(w)}</li>" for s in samples for w in s.get("warnings", [])]
    return "<h2>Warnings</h2>" + ("<ul>" + "".join(items) + "</ul>" if items else "<p>None.</p>")


def _provenance_section(samples: list[dict], embeds: list[dict], files: list[Path]) -> str:
    versions = sorted({str(s.get("virnucpro_version")) for s in samples})
    torch_versions = sorted({str(e["torch"]) for e in embeds if e.get("torch")})
    rows = [["virnucpro", ", ".join(versions)]]
    if torch_versions:
        rows.append(["torch (embed)", ", ".join(torch_versions)])
    out = "<h2>Software and models</h2>" + _table(["component", "version"], rows, left=2)
    for path in files:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        out += f"<h3>{escape(Path(path).name)}</h3><pre>{escape(text)}</pre>"
    return out


def render_html(samples: list[dict], embeds: list[dict], provenance: list[Path]) -> str:
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = (_samples_section(samples) + _histograms_section(samples) + _throughput_section(embeds)
            + _warnings_section(samples) + _provenance_section(samples, embeds, provenance))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>virnucpro report</title>"
            f"<style>{CSS}</style></head><body><h1>virnucpro report</h1>"
            f'<p class="note">{len(samples)} sample(s); virnucpro {escape(__version__)}; written {created}. '
            "Column definitions: docs/output.md.</p>" + body + "</body></html>\n")


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
    columns = ["Sample", "records", "viral", "percent_viral", "not_viral", "no_prediction", "chunks", "frames",
               "median_length", "chunk_length", "threshold"]
    summary += "\t".join(columns) + "\n"
    for s in samples:
        summary += "\t".join(_tsv_cell(v) for v in (
            s["sample"], s["records"], s["records_viral"], s["percent_viral"], s.get("records_not_viral"),
            s.get("records_no_prediction"), s.get("chunks"), s["frames"], s.get("record_length", {}).get("median"),
            s.get("chunk_length"), s.get("threshold"))) + "\n"

    calls = _mqc_header({
        "id": "virnucpro_calls",
        "section_name": "VirNucPro calls",
        "description": "Records called viral, not viral, or without a prediction (no frame to score).",
        "plot_type": "bargraph",
        "pconfig": {"id": "virnucpro_calls_plot", "title": "VirNucPro: calls per sample", "ylab": "records"},
    })
    calls += "Sample\tviral\tnot_viral\tno_prediction\n"
    for s in samples:
        calls += f"{s['sample']}\t{s['records_viral']}\t{s.get('records_not_viral', 0)}\t" \
                 f"{s.get('records_no_prediction', 0)}\n"

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
                 provenance: list[Path] | None = None) -> list[Path]:
    samples = load_sample_summaries(summary_paths)
    embeds = load_embed_summaries(embed_paths or [])
    provenance = [Path(p) for p in provenance or []]
    for p in provenance:
        if not p.is_file():
            raise InputError(p, "provenance file not found")
    edges = {tuple(s["histograms"]["edges"]) for s in samples}
    if len(edges) > 1:
        raise InputError(summary_paths[0], "the sample summaries use different histogram bins")
    files = {REPORT_NAME: render_html(samples, embeds, provenance), **multiqc_files(samples)}
    with atomic_output_dir(outdir) as tmp:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
    return [Path(outdir) / name for name in files]
