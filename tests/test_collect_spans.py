"""Spans: context manager, decorator, nesting, no-op, several threads and processes, sync."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

from dlwh.collect import spans
from dlwh.collect.clock import Anchor, iso_utc, parse_iso_utc_ns, take_anchor
from dlwh.collect.spans import set_run_dir, span

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _spans_off(monkeypatch):
    """Each test starts with spans off and no DLWH_* variables."""
    for var in ("DLWH_RUN_DIR", "DLWH_ANCHOR", "DLWH_LAYER_SPANS"):
        monkeypatch.delenv(var, raising=False)
    set_run_dir(None)
    spans._main_stack.clear()
    yield
    set_run_dir(None)
    spans._main_stack.clear()


def read_spans(d: Path) -> list[dict]:
    text = (d / "spans.jsonl").read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_noop_without_run_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with span("step", step=1) as s:
        pass
    assert not s._on
    assert spans.get_run_dir() is None
    assert list(tmp_path.iterdir()) == []


def test_context_manager_nesting_and_format(tmp_path):
    anchor = take_anchor()
    set_run_dir(tmp_path, anchor)
    with span("epoch", epoch=0):
        with span("step", step=3, epoch=0) as st:
            with span("forward"):
                pass
            st.set(loss=0.5)
    recs = read_spans(tmp_path)
    assert [r["name"] for r in recs] == ["forward", "step", "epoch"]
    fwd, step, epoch = recs
    assert (epoch["kind"], step["kind"], fwd["kind"]) == ("epoch", "step", "phase")
    assert epoch["parent_id"] is None
    assert step["parent_id"] == epoch["span_id"] and fwd["parent_id"] == step["span_id"]
    assert step["attrs"]["step"] == 3 and step["attrs"]["loss"] == 0.5 and step["attrs"]["pid"] == os.getpid()
    keys = ["span_id", "parent_id", "kind", "name", "start_utc", "end_utc", "start_mono_ns", "end_mono_ns", "attrs"]
    assert list(fwd) == keys
    for r in recs:
        assert r["start_mono_ns"] <= r["end_mono_ns"]
        # UTC follows from the anchor exactly (to the microsecond)
        assert r["start_utc"] == iso_utc(anchor.utc_ns_of(r["start_mono_ns"]))
        assert r["end_utc"].endswith("Z") and len(r["end_utc"]) == len("2026-11-21T10:15:01.000100Z")
    assert epoch["start_mono_ns"] <= step["start_mono_ns"] <= fwd["start_mono_ns"]
    assert fwd["end_mono_ns"] <= step["end_mono_ns"] <= epoch["end_mono_ns"]


def test_decorator_forms_and_errors(tmp_path):
    set_run_dir(tmp_path)

    @span("optimizer", kind="phase", lr=0.1)
    def opt_step(x):
        return x + 1

    @span
    def data_loading():
        return "batch"

    @span("boom")
    def fails():
        raise ValueError("x")

    assert opt_step(1) == 2 and opt_step(2) == 3
    assert data_loading() == "batch"
    with pytest.raises(ValueError):
        fails()
    recs = read_spans(tmp_path)
    assert [r["name"] for r in recs] == ["optimizer", "optimizer",
                                         "test_decorator_forms_and_errors.<locals>.data_loading", "boom"]
    assert recs[0]["attrs"]["lr"] == 0.1 and recs[0]["span_id"] != recs[1]["span_id"]
    assert recs[3]["attrs"]["error"] == "ValueError"


def test_decorator_applied_before_run_dir_is_set(tmp_path):
    @span("late")
    def f():
        return 1

    f()  # spans off: nothing
    set_run_dir(tmp_path)
    f()
    assert [r["name"] for r in read_spans(tmp_path)] == ["late"]


def test_env_run_dir_and_anchor(tmp_path, monkeypatch):
    anchor = Anchor(mono_ns=1_000_000_000, utc_ns=1_795_000_000_000_000_000)
    monkeypatch.setenv("DLWH_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("DLWH_ANCHOR", anchor.to_env())
    spans._resolved = False
    spans._writer = None
    with span("step"):
        pass
    (r,) = read_spans(tmp_path)
    assert parse_iso_utc_ns(r["start_utc"]) // 1000 == anchor.utc_ns_of(r["start_mono_ns"]) // 1000


def test_anchor_read_from_run_json(tmp_path):
    anchor = Anchor(mono_ns=5, utc_ns=1_795_000_000_123_456_000)
    (tmp_path / "run.json").write_text(json.dumps({"monotonic_anchor": anchor.to_manifest()}))
    set_run_dir(tmp_path)
    assert spans._writer.anchor == anchor


def test_threads_get_their_own_stacks(tmp_path):
    set_run_dir(tmp_path)
    barrier = threading.Barrier(4)

    def work(k):
        barrier.wait()
        for i in range(200):
            with span("step", step=i, worker=k):
                with span("forward"):
                    pass

    with span("epoch"):
        ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    recs = read_spans(tmp_path)
    assert len(recs) == 4 * 400 + 1
    by_id = {r["span_id"]: r for r in recs}
    assert len(by_id) == len(recs)
    for r in recs:
        if r["name"] == "forward":
            assert by_id[r["parent_id"]]["name"] == "step"
        if r["name"] == "step":
            assert r["parent_id"] is None  # worker threads do not inherit the main thread's spans


def _child_writes(run_dir: str, n: int) -> None:
    set_run_dir(run_dir)
    for i in range(n):
        with span("step", step=i, payload="x" * 300):
            pass


@pytest.mark.slow
def test_processes_append_whole_lines(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_child_writes, args=(str(tmp_path), 300)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    recs = read_spans(tmp_path)  # every line parses
    assert len(recs) == 1200
    assert len({r["span_id"] for r in recs}) == 1200
    assert len({r["attrs"]["pid"] for r in recs}) == 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_gets_new_ids(tmp_path):
    set_run_dir(tmp_path)
    with span("parent"):
        pid = os.fork()
        if pid == 0:  # child
            try:
                with span("child"):
                    pass
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    recs = {r["name"]: r for r in read_spans(tmp_path)}
    assert recs["child"]["parent_id"] == recs["parent"]["span_id"]
    assert recs["child"]["span_id"].split("-")[0] != recs["parent"]["span_id"].split("-")[0]


def test_sync_calls_cuda_synchronize_at_both_edges(tmp_path, monkeypatch):
    calls = []
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(
        is_available=lambda: True, synchronize=lambda: calls.append(1)))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setattr(spans, "_cuda_ok", None)
    set_run_dir(tmp_path)
    with span("forward", sync=True):
        pass
    with span("backward"):
        pass
    assert len(calls) == 2
    monkeypatch.setattr(spans, "_cuda_ok", None)


def test_sync_without_torch_is_harmless(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    set_run_dir(tmp_path)
    with span("forward", sync=True):
        pass
    assert len(read_spans(tmp_path)) == 1
    assert "torch" not in sys.modules


def test_unserialisable_attrs_become_text(tmp_path):
    set_run_dir(tmp_path)
    with span("step", shape=(2, 3), obj=object()):
        pass
    (r,) = read_spans(tmp_path)
    assert r["attrs"]["shape"] == [2, 3] and r["attrs"]["obj"].startswith("<object")


def test_span_cost_is_small(tmp_path):
    """One written span costs well under 100 µs here (reported figure: docs/performance.md)."""
    import time

    set_run_dir(tmp_path)
    n = 2000
    t0 = time.perf_counter_ns()
    for i in range(n):
        with span("step", step=i):
            pass
    per = (time.perf_counter_ns() - t0) / n
    assert per < 100_000
    set_run_dir(None)
    t0 = time.perf_counter_ns()
    for i in range(n):
        with span("step", step=i):
            pass
    assert (time.perf_counter_ns() - t0) / n < 10_000


def test_child_process_of_collector_env(tmp_path):
    """A workload started with DLWH_RUN_DIR writes into that directory (as under dlwh collect)."""
    anchor = take_anchor()
    env = dict(os.environ, DLWH_RUN_DIR=str(tmp_path), DLWH_ANCHOR=anchor.to_env(),
               PYTHONPATH=str(REPO))
    code = "from dlwh.collect import span\nwith span('epoch', epoch=1):\n    pass\n"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    (r,) = read_spans(tmp_path)
    assert r["kind"] == "epoch" and r["attrs"]["epoch"] == 1


def test_anchor_round_trips_through_the_manifest():
    a = take_anchor()
    assert a.utc_ns % 1000 == 0
    assert Anchor.from_manifest(a.to_manifest()) == a
