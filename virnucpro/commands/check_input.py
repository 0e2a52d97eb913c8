"""`virnucpro check-input`: the pipeline's launch check of its parameters and its --input, run once on the host.

Nextflow hands over the run's parameters as JSON; every problem is printed as one ``virnucpro: error:`` line and
every warning as one ``virnucpro: warning:`` line on stderr, which the pipeline shows as they are. Only when nothing
is wrong are the samples written (the JSON of `virnucpro check-samplesheet --out`) and the exit status 0.
"""

from __future__ import annotations

import argparse
import json
import sys

from virnucpro.errors import EXIT_BAD_INPUT


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--params", metavar="PARAMS.json",
                      help="the run's parameters as a JSON object (name: value), as Nextflow parsed them")
    what.add_argument("--print-help", action="store_true",
                      help="print the pipeline's --help (every parameter of nextflow_schema.json) and exit")
    p.add_argument("--out", metavar="SAMPLES.json",
                   help="write the samples of --input here: sample, files (absolute paths or URIs), format, meta")
    p.add_argument("--ignore-params", default="", metavar="NAME,...",
                   help="parameters never reported as unknown (Nextflow's validation.ignoreParams)")
    p.add_argument("--fail-unrecognised-params", action="store_true",
                   help="an unknown parameter is an error, not a warning (validation.failUnrecognisedParams)")


def run(args: argparse.Namespace) -> int:
    from virnucpro import __version__
    from virnucpro.io import pipeline_params
    from virnucpro.io.samplesheet import resolve_input, write_valid_samplesheet

    if args.print_help:
        print(pipeline_params.help_text(pipeline_params.load_schema(), __version__))
        return 0
    with open(args.params, encoding="utf-8") as fh:
        given = json.load(fh)
    ignore = tuple(name for name in args.ignore_params.split(",") if name)
    problems, warnings = pipeline_params.check_params(given, pipeline_params.load_schema(), ignore,
                                                      args.fail_unrecognised_params)
    samples = []
    if not problems:
        samples, problems, more = resolve_input(str(given["input"]))
        warnings += more
    for line in warnings:
        print(f"virnucpro: warning: {line}", file=sys.stderr)
    for line in problems:
        print(f"virnucpro: error: {line}", file=sys.stderr)
    if problems:
        return EXIT_BAD_INPUT
    if args.out:
        write_valid_samplesheet(samples, args.out)
    return 0
