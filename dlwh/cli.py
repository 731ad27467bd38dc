"""The ``dlwh`` command line: a thin layer over the library (see each ``dlwh.commands`` module)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional

import typer

app = typer.Typer(
    name="dlwh",
    help="dlwh, the deep-learning energy warehouse: record, ingest, query and predict "
    "the power and time cost of deep-learning work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # inherited by every command and sub-app
)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dlwh")
    except Exception:  # not installed (run from a checkout): the package's own number
        from dlwh import __version__

        return __version__


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"dlwh {_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_show_version, is_eager=True,
                                           help="Print dlwh's version and exit."),
) -> None:
    """dlwh, the deep-learning energy warehouse: record, ingest, query and predict the power and time cost
    of deep-learning work."""


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


def _stdout_is_devnull() -> bool:
    try:
        out, null = os.fstat(1), os.stat(os.devnull)
    except OSError:
        return False
    return (out.st_dev, out.st_ino, out.st_rdev) == (null.st_dev, null.st_ino, null.st_rdev)


def main() -> None:
    """Console-script entry point; a closed output pipe (``dlwh sql ... | head``) ends quietly, exit 0."""
    from dlwh.commands._common import quiet_broken_pipe

    was_devnull = _stdout_is_devnull()
    try:
        app()
    except BrokenPipeError:
        try:
            quiet_broken_pipe()
        except typer.Exit:
            raise SystemExit(0) from None
    except SystemExit as done:
        # outside the commands (help text, usage errors) click and rich end a closed pipe with exit 1,
        # click wrapping stdout in its PacifyFlushWrapper, rich pointing it at /dev/null: the reader
        # stopped reading, nothing failed
        if done.code == 1 and (type(sys.stdout).__name__ == "PacifyFlushWrapper"
                               or (not was_devnull and _stdout_is_devnull())):
            raise SystemExit(0) from None
        raise


if __name__ == "__main__":
    main()
