"""examples/h200-train: a real run recorded by `dlwh collect` on an NVIDIA H200 is a valid run directory."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from dlwh.collect.check import energy_check
from dlwh.collect.clock import Anchor, parse_iso_utc_ns
from dlwh.collect.manifest import KEYS
from dlwh.collect.sources.nvml_source import COLUMNS

RUN = Path(__file__).resolve().parents[1] / "examples" / "h200-train"


def test_manifest():
    m = json.loads((RUN / "run.json").read_text())
    assert list(m) == list(KEYS)
    assert m["format"] == "dlwh-run" and m["format_version"] == 1 and m["exit_code"] == 0
    assert m["end_utc"] > m["start_utc"]
    assert m["gpus"][0]["name"] == "NVIDIA H200" and m["gpus"][0]["power_limit_w"]["max"] == 700.0
    assert [s["name"] for s in m["sources"]] == ["nvml", "nvidia-smi"]
    assert {u["name"] for u in m["unavailable_sources"]} == {"perf", "ipmi", "powermetrics"}
    assert m["command"][:2] == ["python3", "examples/train.py"]
    assert sum(p.stat().st_size for p in RUN.iterdir()) < 2_000_000


def test_files_hold_complete_lines_on_one_clock():
    m = json.loads((RUN / "run.json").read_text())
    anchor = Anchor.from_manifest(m["monotonic_anchor"])
    for name in ("nvml.csv", "nvidia-smi.csv", "spans.jsonl"):
        assert (RUN / name).read_text().endswith("\n")
    with open(RUN / "nvml.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    mono = [int(r["monotonic_ns"]) for r in rows]
    assert mono == sorted(mono) and len(rows) > 600
    for r in rows[:50]:
        # UTC = anchor + monotonic offset (this run predates whole-microsecond anchors: ±1 µs)
        want = anchor.utc_ns_of(int(r["monotonic_ns"]))
        assert abs(parse_iso_utc_ns(r["timestamp_utc"]) - want) <= 1000
    spans = [json.loads(line) for line in (RUN / "spans.jsonl").read_text().splitlines()]
    ids = {s["span_id"] for s in spans}
    assert all(s["parent_id"] is None or s["parent_id"] in ids for s in spans)
    kinds = {s["kind"] for s in spans}
    assert kinds == {"epoch", "step", "phase", "layer"}
    passes = {s["attrs"]["pass"] for s in spans if s["kind"] == "layer"}
    assert passes == {"forward", "backward"}
    assert min(s["start_mono_ns"] for s in spans) > mono[0] and max(s["end_mono_ns"] for s in spans) < mono[-1]


def test_energy_counter_and_integrated_power_agree_within_2_percent():
    (gpu,) = energy_check(RUN).values()
    assert gpu["window_s"] > 60
    assert abs(gpu["trapezoid_rel_diff"]) < 0.02
    assert abs(gpu["trapezoid_instant_rel_diff"]) < 0.02
    # the figures quoted in docs/accuracy.md
    assert round(gpu["counter_j"], 3) == 45538.481
    assert round(gpu["trapezoid_j"]) == 45475 and round(gpu["trapezoid_instant_j"]) == 45602
