"""Per-layer spans from forward and backward hooks on a torch model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from dlwh.collect import spans  # noqa: E402
from dlwh.collect.layers import record_layers  # noqa: E402
from dlwh.collect.spans import set_run_dir, span  # noqa: E402


class Block(nn.Module):
    """A residual block with in-place ops (these break module backward hooks)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.bn(self.conv(x))
        out += x
        return self.relu(out)


def model():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), Block(4),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv("DLWH_LAYER_SPANS", raising=False)
    monkeypatch.delenv("DLWH_RUN_DIR", raising=False)
    set_run_dir(None)
    spans._main_stack.clear()
    yield
    set_run_dir(None)


def read(d: Path) -> list[dict]:
    p = d / "spans.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def step(m, x):
    with span("step", step=0):
        with span("forward"):
            loss = m(x).sum()
        with span("backward"):
            loss.backward()


LEAVES = ["0", "1", "2.conv", "2.bn", "2.relu", "3", "4", "5"]


def test_forward_and_backward_span_per_layer(tmp_path):
    set_run_dir(tmp_path)
    m = model()
    rec = record_layers(m, enabled=True)
    assert rec.active
    step(m, torch.randn(2, 3, 8, 8))
    recs = read(tmp_path)
    layer = [r for r in recs if r["kind"] == "layer"]
    fwd = [r for r in layer if r["attrs"]["pass"] == "forward"]
    bwd = [r for r in layer if r["attrs"]["pass"] == "backward"]
    assert [r["name"] for r in fwd] == LEAVES
    assert {r["attrs"]["layer_type"] for r in fwd} >= {"Conv2d", "ReLU", "BatchNorm2d", "Linear"}
    # every layer whose output needs a gradient has a backward span (Flatten's output is a view of
    # the pool's, so it shares the pool's autograd node; all eight still get one)
    assert sorted(r["name"] for r in bwd) == sorted(LEAVES)
    by_id = {r["span_id"]: r for r in recs}
    for r in fwd:
        assert by_id[r["parent_id"]]["name"] == "forward"
    for r in bwd:
        assert r["start_mono_ns"] <= r["end_mono_ns"]
        assert by_id[r["parent_id"]]["name"] == "backward"
    # backward runs in reverse: the last layer starts first
    first = {r["name"]: r["start_mono_ns"] for r in bwd}
    assert first["5"] <= first["2.conv"] <= first["0"]


def test_off_by_default_and_by_env(tmp_path, monkeypatch):
    set_run_dir(tmp_path)
    m = model()
    rec = record_layers(m)
    assert not rec.active and rec.handles == []
    monkeypatch.setenv("DLWH_LAYER_SPANS", "1")
    rec = record_layers(m)
    assert rec.active and len(rec.handles) == 2 * len(LEAVES)
    rec.remove()


def test_nothing_without_run_dir():
    m = model()
    rec = record_layers(m, enabled=True)
    assert not rec.active


def test_remove_takes_hooks_off(tmp_path):
    set_run_dir(tmp_path)
    m = model()
    with record_layers(m, enabled=True) as rec:
        step(m, torch.randn(1, 3, 8, 8))
    assert rec.handles == []
    n = len(read(tmp_path))
    step(m, torch.randn(1, 3, 8, 8))
    assert all(r["kind"] != "layer" for r in read(tmp_path)[n:])


def test_all_modules_nest(tmp_path):
    set_run_dir(tmp_path)
    m = model()
    record_layers(m, enabled=True, leaves_only=False, backward=False)
    with torch.no_grad():
        m(torch.randn(1, 3, 8, 8))
    recs = {r["name"]: r for r in read(tmp_path)}
    assert recs["2.conv"]["parent_id"] == recs["2"]["span_id"]
    assert recs["2"]["parent_id"] == recs["Sequential"]["span_id"]


def test_no_grad_has_no_backward(tmp_path):
    set_run_dir(tmp_path)
    m = model()
    record_layers(m, enabled=True)
    with torch.no_grad():
        m(torch.randn(1, 3, 8, 8))
    assert {r["attrs"]["pass"] for r in read(tmp_path)} == {"forward"}
