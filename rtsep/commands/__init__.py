"""One module per ``rtsep`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
