"""``abtop COMMAND``: one module per subcommand, each exposing ``register(subparsers)``."""
