"""One module per CLI subcommand. Each defines NAME, HELP, add_arguments(parser) and run(args) -> int.

Modules import their heavy dependencies (torch, brevitas) inside run(), so `codesign --help`
and the cost-model commands start fast.
"""
