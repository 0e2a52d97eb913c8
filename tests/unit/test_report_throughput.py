"""The HTML report's throughput table shows, per encoder, how many frames were copied from a duplicate."""

import copy

from virnucpro.report.html import _throughput_section, throughput_by_model

from summaries import EMBED


def with_dedup(protein_copied, nucleotide_copied):
    e = copy.deepcopy(EMBED)
    e["sample"], e["shard"] = "s", "shard_00000"
    e["dedup"] = {"protein": {"frames": 30, "copied": protein_copied},
                  "nucleotide": {"frames": 30, "copied": nucleotide_copied}}
    return e


def test_copied_frames_are_summed_over_shards_and_shown_as_a_share():
    embeds = [with_dedup(6, 5), with_dedup(0, 4)]
    steps = {s["model"]: s for s in throughput_by_model(embeds)}
    assert (steps["protein"]["copied"], steps["protein"]["dedup_frames"]) == (6, 60)
    html = _throughput_section(embeds)
    assert "duplicates copied (not embedded)" in html
    row = lambda name: html.split(name)[1].split("</tr>")[0]  # noqa: E731 - the step table's row of a model
    assert "6 (10.0%)" in row("ESM-2 (protein)") and "9 (15.0%)" in row("DNABERT-S (nucleotide)")


def test_summaries_without_dedup_show_a_dash():
    e = copy.deepcopy(EMBED)
    e["sample"], e["shard"] = "s", "shard_00000"
    html = _throughput_section([e])
    assert "duplicates copied (not embedded)" in html and "<td class=\"\">–</td>" in html
