"""One module per `virnucpro` command: HELP, add_arguments(parser), run(args) -> int. Keep them thin."""
