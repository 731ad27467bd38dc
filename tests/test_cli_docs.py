"""The docs match the code: every command and option is documented in docs/, the README lists every
command, generated tables are current, links resolve, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from tests.conftest import ROOT, invoke

DOCS = ROOT / "docs"


def _commands(group, prefix=""):
    for name, command in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        yield full, command
        if hasattr(command, "commands"):
            yield from _commands(command, full + " ")


def _all_commands():
    from dlwh.cli import app

    return list(_commands(typer.main.get_command(app)))


def _pages() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(DOCS.glob("*.md"))}


def _mentions(text: str, words: str) -> bool:
    return re.search(re.escape(words) + r"(?![\w-])", text) is not None


def test_every_command_has_help_and_a_docs_page_that_documents_each_option():
    names = []
    pages = _pages()
    for name, command in _all_commands():
        names.append(name)
        assert (command.help or command.short_help or "").strip(), f"dlwh {name} has no help text"
        own = {page: text for page, text in pages.items() if _mentions(text, f"dlwh {name}")}
        assert own, f"no page in docs/ mentions `dlwh {name}`"
        text = "".join(own.values())
        for param in getattr(command, "params", []):
            if param.param_type_name != "option" or param.name in {"help", "db"}:
                continue
            longs = [o for o in param.opts if o.startswith("--")]
            assert any(_mentions(text, o) for o in longs), (
                f"dlwh {name} {longs[0]} is not documented in {', '.join(sorted(own))}"
            )
    assert {"ingest", "sql", "info", "fit", "predict", "simulate"} <= set(names)


def test_readme_lists_every_command():
    table = (ROOT / "README.md").read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    for name, command in _all_commands():
        if hasattr(command, "commands") and name != "collect":  # groups: their subcommands are listed
            continue
        assert f"`dlwh {name}" in table, f"README's command table lacks `dlwh {name}`"


def test_every_option_has_help():
    for name, command in _all_commands():
        for param in getattr(command, "params", []):
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), f"dlwh {name} {param.opts[0]} has no help"


def test_generated_tables_are_current():
    from dlwh import docs_gen

    assert {p.name for p in docs_gen.pages()} >= {"formats.md", "warehouse.md"}
    stale = [p.name for p in docs_gen.stale_pages()]
    assert stale == [], f"{', '.join(stale)} drifted from the code; run python -m dlwh.docs_gen"


def test_every_table_and_view_is_described():
    from dlwh import docs_gen

    objects = docs_gen.schema_objects()
    missing = [o.name for o in objects if o.name not in docs_gen.ONE_ROW_PER]
    assert missing == [], f"add a 'one row per' line for {', '.join(missing)} to dlwh.docs_gen.ONE_ROW_PER"
    gone = set(docs_gen.ONE_ROW_PER) - {o.name for o in objects}
    assert gone == set(), f"dlwh.docs_gen.ONE_ROW_PER describes {', '.join(sorted(gone))}, which no migration creates"
    assert all(o.migration != "?" for o in objects)


def test_every_format_is_in_the_formats_page():
    from dlwh import docs_gen

    text = (DOCS / "formats.md").read_text()
    names = [m.NAME for m in docs_gen.format_modules()]
    assert len(names) == len(set(names)) >= 20
    for name in names:
        assert f"| `{name}` |" in text


def test_docs_gen_check_reports_a_drifted_block(tmp_path):
    from dlwh import docs_gen

    page = tmp_path / "formats.md"
    page.write_text("x\n<!-- BEGIN GENERATED: formats -->\nold table\n<!-- END GENERATED: formats -->\ny\n")
    assert docs_gen.stale_pages(tmp_path) == [page]
    page.write_text(docs_gen.render(page.read_text()))
    assert docs_gen.stale_pages(tmp_path) == []
    assert "| `nvidia-smi-query` |" in page.read_text() and page.read_text().endswith("-->\ny\n")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    body = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", body, re.M)}


@pytest.mark.parametrize("page", ["README.md", *sorted(p.name for p in DOCS.glob("*.md"))])
def test_relative_links_resolve(page):
    path = ROOT / page if page == "README.md" else DOCS / page
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        assert linked.exists(), f"{page}: link to {target} but {linked} does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked.read_text()), f"{page}: no heading #{anchor} in {file_part or page}"


def test_readme_stays_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 200, f"README.md has {lines} lines; move reference text into docs/"


def _readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quickstart", 1)[1].split("**2.", 1)[1]
    return re.search(r"```sh\n(.+?)\n```", block, re.S).group(1).strip()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == _readme_test_command()


def test_help_runs(runner):
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    assert "ingest" in result.stdout
