"""Every command has help text and a README mention; CI runs exactly the README's test command."""

from __future__ import annotations

import re

import typer

from tests.conftest import ROOT, invoke


def _commands(group, prefix=""):
    for name, command in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        yield full, command
        if hasattr(command, "commands"):
            yield from _commands(command, full + " ")


def test_every_command_has_help_and_a_readme_mention():
    from dlwh.cli import app

    readme = (ROOT / "README.md").read_text()
    group = typer.main.get_command(app)
    names = []
    for name, command in _commands(group):
        names.append(name)
        assert (command.help or command.short_help or "").strip(), f"dlwh {name} has no help text"
        assert f"dlwh {name}" in readme, f"README does not mention `dlwh {name}`"
    assert {"ingest", "sql", "info"} <= set(names)


def test_every_option_has_help():
    from dlwh.cli import app

    group = typer.main.get_command(app)
    for name, command in _commands(group):
        for param in getattr(command, "params", []):
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), f"dlwh {name} {param.opts[0]} has no help"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("**2.", 1)[1]
    command = re.search(r"```sh\n(.+?)\n```", block, re.S).group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == command


def test_help_runs(runner):
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    assert "ingest" in result.stdout
