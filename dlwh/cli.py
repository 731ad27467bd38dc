"""The ``dlwh`` command line: a thin layer over the library (see each ``dlwh.commands`` module)."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="dlwh",
    help="dlwh, the deep-learning energy warehouse: record, ingest, query and predict "
    "the power and time cost of deep-learning work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its commands; order is the order of `dlwh --help`.
COMMAND_MODULES = (
    "dlwh.commands.collect",
    "dlwh.commands.ingest",
    "dlwh.commands.query",
    "dlwh.commands.models",
    "dlwh.commands.bench",
    "dlwh.commands.analysis",
    "dlwh.commands.carbon",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
