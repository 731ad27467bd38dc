"""Shared test fixtures: a temp warehouse per test, the shared fixtures folder, a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True, scope="session")
def _warehouse_template_cache(tmp_path_factory):
    """New warehouses are copied from a template cached per session here, not in the user's cache."""
    import os

    old = os.environ.get("DLWH_CACHE_DIR")
    os.environ["DLWH_CACHE_DIR"] = str(tmp_path_factory.mktemp("dlwh-cache"))
    yield
    if old is None:
        os.environ.pop("DLWH_CACHE_DIR", None)
    else:
        os.environ["DLWH_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _power_limit_records(tmp_path_factory, monkeypatch):
    """Power-limit records (sweeps) go to a temp XDG_STATE_HOME, never into the user's home."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    monkeypatch.delenv("DLWH_STATE_DIR", raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh warehouse file path (not yet created) in this test's temp folder."""
    return tmp_path / "test.duckdb"


@pytest.fixture
def con(db_path: Path):
    """An open, migrated warehouse on a temp file."""
    from dlwh.warehouse import open_warehouse

    connection = open_warehouse(db_path)
    yield connection
    connection.close()


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the project (real tool outputs); skips the test where it is absent."""
    if not (SHARED / "fixtures").is_dir():
        pytest.skip(f"{SHARED}/fixtures is absent: real tool outputs are only in the full checkout layout")
    return SHARED


@pytest.fixture
def fixtures_dir(shared_dir: Path) -> Path:
    """../shared/fixtures."""
    return shared_dir / "fixtures"


@pytest.fixture
def runner() -> CliRunner:
    """A typer CLI runner (stderr kept apart from stdout)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # newer click always keeps them apart
        return CliRunner()


def invoke(runner: CliRunner, *args: str, env: dict | None = None):
    """Run `dlwh ARGS` in-process; returns the click Result."""
    from dlwh.cli import app

    return runner.invoke(app, list(args), env=env, catch_exceptions=False)
