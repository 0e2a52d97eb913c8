"""virnucpro/options.py is the one home of the shared options: the Nextflow schema and config agree with it, no other
module redefines them, and errors name an option the way the user spelled it (CLI or pipeline)."""

import ast
import json
import re
from pathlib import Path

import pytest

from virnucpro import options
from virnucpro.cli import main
from virnucpro.embed.checkpoint import PartStore
from virnucpro.errors import OptionError

REPO = Path(__file__).resolve().parents[2]

# Pipeline parameter -> (its allowed values in options, or None, its default in options).
SHARED = {
    "chunk_length": (options.CHUNK_LENGTHS, options.DEFAULT_CHUNK_LENGTH),
    "precision": (options.PRECISIONS, options.DEFAULT_PRECISION),
    "device": (options.DEVICES, options.DEFAULT_DEVICE),
    "checkpoint_every": (None, options.DEFAULT_CHECKPOINT_EVERY),
    "lease_dir": (None, options.DEFAULT_LEASE_DIR),
    "shard_tokens": (None, options.SHARD_TOKENS_AUTO),
    "min_length": (None, options.DEFAULT_MIN_LENGTH),
    "threshold": (None, options.DEFAULT_THRESHOLD),
    "region_gap": (None, options.DEFAULT_REGION_GAP),
}


def _schema_properties() -> dict:
    schema = json.loads((REPO / "nextflow_schema.json").read_text())
    return {name: prop for group in schema["$defs"].values() for name, prop in group["properties"].items()}


def _config_params() -> dict:
    """nextflow.config's `params { name = literal }` defaults, as Python values."""
    block = re.search(r"^params \{\n(.*?)^\}", (REPO / "nextflow.config").read_text(), re.S | re.M).group(1)
    found = {}
    for line in block.splitlines():
        match = re.match(r"\s*(\w+)\s*=\s*('[^']*'|[\w.]+)\s*(//.*)?$", line)
        if match:
            text = match.group(2)
            words = {"null": None, "true": True, "false": False}
            found[match.group(1)] = words[text] if text in words else ast.literal_eval(text)
    return found


@pytest.mark.parametrize("name", sorted(SHARED))
def test_schema_and_config_agree_with_the_options_module(name):
    choices, default = SHARED[name]
    prop = _schema_properties()[name]
    assert prop["default"] == default, f"nextflow_schema.json {name}"
    assert _config_params()[name] == default, f"nextflow.config params.{name}"
    if choices is not None:
        assert prop["enum"] == list(choices), f"nextflow_schema.json {name} enum"


def _actions(command: str) -> dict:
    import argparse
    import importlib

    parser = argparse.ArgumentParser()
    importlib.import_module(f"virnucpro.commands.{command}").add_arguments(parser)
    return {a.dest: a for a in parser._actions}


@pytest.mark.parametrize("command, dest, choices, default", [
    ("embed", "precision", options.PRECISIONS, options.DEFAULT_PRECISION),
    ("embed", "device", options.DEVICES, options.DEFAULT_DEVICE),
    ("embed", "checkpoint_every", None, options.DEFAULT_CHECKPOINT_EVERY),
    # predict's precision default was fp32 until the pipeline's fp16 became every command's
    ("predict", "precision", options.PRECISIONS, options.DEFAULT_PRECISION),
    ("predict", "device", options.DEVICES, options.DEFAULT_DEVICE),
    ("predict", "threshold", None, options.DEFAULT_THRESHOLD),
    ("provenance", "precision", options.PRECISIONS, None),
    ("provenance", "chunk_length", options.CHUNK_LENGTHS, None),
    ("shard", "device", options.DEVICES, options.DEFAULT_DEVICE),
    ("preprocess", "min_length", None, options.DEFAULT_MIN_LENGTH),
    ("aggregate", "threshold", None, options.DEFAULT_THRESHOLD),
    ("aggregate", "min_length", None, options.DEFAULT_MIN_LENGTH),
    ("aggregate", "region_gap", None, options.DEFAULT_REGION_GAP),
])
def test_the_commands_take_their_choices_and_defaults_from_the_options_module(command, dest, choices, default):
    action = _actions(command)[dest]
    assert action.default == default
    assert (tuple(action.choices) if action.choices else None) == choices


def test_no_other_module_defines_the_vocabulary():
    names = (r"(CHUNK_LENGTHS|PRECISIONS|DEVICES|DEFAULT_CHECKPOINT_EVERY|DEFAULT_LEASE_DIR|DEFAULT_GAP|"
             r"DEFAULT_REGION_GAP)")
    homes = [str(p.relative_to(REPO)) for p in (REPO / "virnucpro").rglob("*.py")
             if re.search(rf"^{names}\s*=", p.read_text(), re.M)]
    assert homes == ["virnucpro/options.py"]
    literal = re.compile(r"\b(10000|10_000)\b|[\"']fp16[\"'],\s*[\"']fp32|300,\s*500")
    for path in (REPO / "virnucpro" / "commands").glob("*.py"):
        assert not literal.search(path.read_text()), path


def test_both_spellings_of_every_option():
    assert options.cli_flag("checkpoint_every") == "--checkpoint-every"
    assert options.pipeline_flag("checkpoint_every") == "--checkpoint_every"
    assert options.pipeline_flag("num_gpus") == "--shard_gpus"
    assert options.pipeline_flag("token_budget") is None


@pytest.mark.parametrize("style, expected", [(None, "--checkpoint-every"), ("pipeline", "--checkpoint_every")])
def test_a_library_error_names_the_option_as_the_user_spelled_it(monkeypatch, style, expected):
    if style:
        monkeypatch.setenv(options.OPTION_STYLE_ENV, style)
    else:
        monkeypatch.delenv(options.OPTION_STYLE_ENV, raising=False)
    with pytest.raises(OptionError) as caught:
        PartStore.plan(100, 0)
    assert str(caught.value) == f"{expected}: must be at least 1, got 0"
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("style, tokens, gpus", [(None, "--shard-tokens", "--num-gpus"),
                                                 ("pipeline", "--shard_tokens", "--shard_gpus")])
def test_a_command_error_names_the_option_as_the_user_spelled_it(monkeypatch, tmp_path, capsys, style, tokens, gpus):
    if style:
        monkeypatch.setenv(options.OPTION_STYLE_ENV, style)
    else:
        monkeypatch.delenv(options.OPTION_STYLE_ENV, raising=False)
    base = ["shard", "--nucleotide", str(tmp_path / "n.fa"), "--protein", str(tmp_path / "p.faa"),
            "--outdir", str(tmp_path / "out")]
    assert main(base + ["--shard-tokens", "0"]) == 2
    assert capsys.readouterr().err.strip() == f"virnucpro: error: {tokens}: must be a positive number of tokens, got 0"
    assert main(base + ["--num-gpus", "0"]) == 2
    assert capsys.readouterr().err.strip() == f"virnucpro: error: {gpus}: must be at least 1, got 0"


def test_the_pipeline_sets_the_option_style_for_its_tasks():
    config = (REPO / "nextflow.config").read_text()
    env = re.search(r"^env \{\n(.*?)^\}", config, re.S | re.M).group(1)
    assert re.search(rf"^\s*{options.OPTION_STYLE_ENV}\s*=\s*'pipeline'", env, re.M)


def test_options_reach_the_modules_through_ext_args():
    """No module script builds a flag from a `val` input holding a parameter: those come from conf/modules.config."""
    for main_nf in (REPO / "modules" / "local").glob("*/main.nf"):
        text = main_nf.read_text()
        for name in SHARED:
            assert not re.search(rf"^\s*val {name}\s*$", text, re.M), (main_nf, name)
            assert f"${{params.{name}}}" not in text, (main_nf, name)
    modules_config = (REPO / "conf" / "modules.config").read_text()
    for flag in ("--chunk-length ${params.chunk_length}", "--precision ${params.precision}",
                 "--shard-tokens ${params.shard_tokens}", "--checkpoint-every ${params.checkpoint_every}"):
        assert flag in modules_config, flag
