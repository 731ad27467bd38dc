"""The format registry: names unique and documented, every module what FormatModule says, detection that
never raises, and each shared fixture claimed by exactly one format (of the tool whose folder holds it)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from dlwh.ingest import formats
from dlwh.ingest.loader import HEAD_BYTES
from dlwh.ingest.trace import FormatModule

ROOT = Path(__file__).resolve().parent.parent

# inputs no format should choke on: empty, blank lines, a BOM, CRLF, NULs, one long line, stray markup
ODD_HEADS = [
    "", "\n", "\r\n\r\n", "\ufeff", "\ufeff\n", "\x00\x00\x00", " " * 5000, "," * 5000, "#" * 5000 + "\n",
    "a" * 70000, "{", "[", "{}\n", "null\n", "<plist", "<?xml version='1.0'?>\n<plist>", "\"", "\"a\",\"b\n",
    "timestamp\n", "*** Sampled system activity", "==123== ", "# gpu\n#", "Instantaneous power reading:",
    "\ufffd\ufffd\ufffd\n\ufffd", "1,2,3\r\n4,5,6\r\n", "\t\t\n\t",
]


def _heads_of(folder: Path) -> list[tuple[Path, str]]:
    return [(p, p.read_bytes()[:HEAD_BYTES].decode("utf-8", errors="replace"))
            for p in sorted(folder.rglob("*")) if p.is_file()]


def test_every_registered_module_is_a_format_module_with_a_unique_name():
    modules = formats.load_formats()
    assert len(modules) == len(formats.FORMAT_MODULES) >= 21
    for module in modules:
        assert isinstance(module, FormatModule), f"{module.__name__} lacks part of FormatModule"
        assert isinstance(module.DESCRIPTION, str) and module.DESCRIPTION and "\n" not in module.DESCRIPTION
        assert isinstance(module.EXTENSIONS, tuple) and all(isinstance(e, str) and e for e in module.EXTENSIONS)
    names = [m.NAME for m in modules]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_formats_are_grouped_by_tool():
    for info in formats.list_formats():
        parts = info.module.split(".")
        assert parts[:3] == ["dlwh", "ingest", "formats"] and len(parts) == 5, info.module  # formats.<tool>.<format>
        package = importlib.import_module(".".join(parts[:4]))
        assert info.tool == getattr(package, "TOOL", parts[3]) and info.tool
    listed = formats.list_formats()
    assert [i.name for i in listed] == [m.NAME for m in formats.load_formats()]
    query = next(i for i in listed if i.name == "nvidia-smi-query")
    assert query.tool == "nvidia-smi" and ".csv" in query.extensions and "--query-gpu" in query.description


def test_every_format_is_documented():
    page = ROOT / "docs" / "formats.md"
    text = page.read_text()
    missing = [i.name for i in formats.list_formats() if f"`{i.name}`" not in text]
    assert missing == [], f"docs/formats.md does not mention {', '.join(missing)}"
    assert "## Adding a format" in text


def test_detection_never_raises_on_odd_input():
    # called directly, not through formats.detect (which steps over a sniffer that raises): a raise fails here
    for module in formats.load_formats():
        for head in ODD_HEADS:
            for name in ("x", "x.csv", "run.json", "spans.jsonl", "summary_power_a40.csv", "A40+resnet50+gpu0.csv"):
                assert module.sniff(head, Path(name)) in (True, False), (module.NAME, head[:20])


def test_detection_never_raises_on_test_data():
    for module in formats.load_formats():
        for path, head in _heads_of(ROOT / "tests" / "data"):
            assert module.sniff(head, path) in (True, False), (module.NAME, path)


def test_each_shared_fixture_is_claimed_by_exactly_one_format_of_its_tool(fixtures_dir):
    modules = formats.load_formats()
    checked = 0
    for path, head in _heads_of(fixtures_dir):
        if path.parent == fixtures_dir:  # SOURCES.md
            continue
        claimed = [m for m in modules if m.sniff(head, path)]  # a sniffer that raises fails the test
        assert len(claimed) == 1, f"{path.relative_to(fixtures_dir)} claimed by {[m.NAME for m in claimed]}"
        tool_package = claimed[0].__name__.split(".")[3]
        assert tool_package == path.parent.name.replace("-", "_"), (path.name, claimed[0].NAME)
        checked += 1
    assert checked >= 20


def test_detect_imports_formats_only_as_they_are_tried(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from pathlib import Path; from dlwh.ingest import formats; "
            "m = formats.detect('{\"format\": \"dlwh-run\"}', Path('run.json')); "
            "print(m.NAME if m else None, sorted(k for k in sys.modules if k.startswith('dlwh.ingest.formats.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.startswith("dlwh-manifest ")
    assert "dlwh.ingest.formats.perf.stat_csv" not in out and "dlwh.ingest.formats.nvprof.trace" not in out


def test_parsers_borrow_only_from_their_own_tool_and_shared_ingest_code():
    """A format module imports its own tool's modules, dlwh.ingest's shared code and dlwh's base modules;
    never another tool's parsers, dlwh.carbon, dlwh.models or dlwh.analysis."""
    import ast

    allowed = ("dlwh.errors", "dlwh._lazy", "dlwh.metrics", "dlwh.ingest.trace", "dlwh.ingest.lines",
               "dlwh.ingest.timeutil", "dlwh.ingest.intervals", "dlwh.ingest.csvread", "dlwh.timeparse",
               "dlwh.ingest.validate")
    folder = ROOT / "dlwh" / "ingest" / "formats"
    for path in sorted(folder.rglob("*.py")):
        if path.parent == folder:
            continue
        tool = path.parent.name
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if not name.startswith("dlwh"):
                    continue
                ok = name.startswith(f"dlwh.ingest.formats.{tool}") or name in allowed
                assert ok, f"{path.relative_to(ROOT)} imports {name}"


def test_a_raising_sniffer_is_stepped_over_in_use_and_raises_under_dlwh_debug(monkeypatch):
    from dlwh.ingest.formats.perf import stat_json

    def broken(head, path):
        raise ValueError("sniffer bug")

    monkeypatch.setattr(stat_json, "sniff", broken)
    head = "timestamp, power.draw [W]\n2024/10/30 18:42:33.189, 22.89 W\n"
    monkeypatch.delenv("DLWH_DEBUG", raising=False)
    assert formats.detect(head, Path("x.csv")).NAME == "nvidia-smi-query"
    monkeypatch.setenv("DLWH_DEBUG", "1")
    with pytest.raises(ValueError, match="sniffer bug"):
        formats.detect(head, Path("x.csv"))
