"""One module per `virnucpro` command: add_arguments(parser), run(args) -> int (help lines: cli.COMMANDS). Keep them thin."""
