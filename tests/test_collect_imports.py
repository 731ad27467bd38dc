"""dlwh.collect runs on GPU nodes without duckdb, pandas, fvcore or scikit-learn; torch only lazily."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "collect" / "fakes"))
from harness import PYLIB, REPO  # noqa: E402

BLOCKER = """
import sys
BLOCKED = {"duckdb", "pandas", "fvcore", "sklearn", "scikit_learn", "statsmodels", "matplotlib"}

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test", name=name)
        return None

sys.meta_path.insert(0, Refuse())
"""


def run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{PYLIB}{os.pathsep}{REPO}")
    env.pop("DLWH_RUN_DIR", None)
    return subprocess.run([sys.executable, "-c", BLOCKER + code], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)


def test_collect_imports_and_records_with_heavy_packages_blocked(tmp_path):
    code = """
import dlwh.collect, dlwh.collect.runner, dlwh.collect.sweep, dlwh.collect.layers, dlwh.collect.__main__
import dlwh.collect.sources
from dlwh.collect import span, collect, record, record_layers, sweep, CollectOptions
try:
    import pandas
except ImportError:
    pass
else:
    raise SystemExit("the blocker does not work")
assert "torch" not in sys.modules, "torch imported eagerly"
res = collect(["true"], out="r", sources="nvml", interval_ms=20, quiet=True)
assert res.exit_code == 0
with record(out="r2", sources="nvml", quiet=True):
    with span("step", step=0):
        pass
blocked = sorted(m for m in sys.modules if m.split(".")[0] in {"duckdb", "pandas", "fvcore", "sklearn"})
assert not blocked, blocked
assert "torch" not in sys.modules
print("ok")
"""
    p = run(code, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"
    assert (tmp_path / "r2" / "spans.jsonl").exists()


def test_cli_module_imports_collect_lazily(tmp_path):
    code = """
import dlwh.commands.collect
assert "dlwh.collect.runner" not in sys.modules and "torch" not in sys.modules
print("ok")
"""
    p = run(code, tmp_path)
    assert p.returncode == 0, p.stderr
