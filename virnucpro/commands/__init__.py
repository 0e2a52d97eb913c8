"""One module per `virnucpro` command: add_arguments(parser), run(args) -> int; help lines in cli.COMMANDS."""
