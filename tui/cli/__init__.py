"""The ``abtop`` command line: ``main`` (the parser and dispatch), the run options, and one module
per subcommand under ``commands/``."""
