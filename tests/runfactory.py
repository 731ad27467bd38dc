"""Build small dlwh run directories with known power curves, for tests."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)
MONO0 = 1_000_000_000_000


def iso(t: datetime) -> str:
    """UTC ISO time with microseconds and Z."""
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_run(folder: Path, *, run_id: str = "run-1", power=lambda s: 100.0, seconds: float = 10.0,
             interval_s: float = 0.1, spans: list[dict] | None = None, tags: dict | None = None,
             gpus: int = 1, energy_counter: bool = True, skip: tuple[float, float] | None = None) -> Path:
    """Write run.json, nvml.csv (power(t) W every interval_s, for `seconds`) and spans.jsonl.

    ``skip=(a, b)`` leaves no samples between a and b seconds (a gap). Returns the folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": "dlwh-run", "format_version": 1, "run_id": run_id, "host": "testhost",
        "start_utc": iso(T0), "end_utc": iso(T0 + timedelta(seconds=seconds)),
        "monotonic_anchor": {"utc": iso(T0), "monotonic_ns": MONO0},
        "timezone": "Europe/Berlin", "command": ["python", "train.py"], "exit_code": 0,
        "gpus": [{"index": i, "uuid": f"GPU-{i}", "name": "Test GPU"} for i in range(gpus)],
        "tags": tags or {"model": "resnet18", "batch_size": 32},
    }
    (folder / "run.json").write_text(json.dumps(manifest))
    lines = ["timestamp_utc,monotonic_ns,gpu_index,gpu_uuid,power_w,power_instant_w,power_average_w,"
             "energy_total_mj,power_limit_w,enforced_power_limit_w,clock_sm_mhz,clock_mem_mhz,clock_gr_mhz,"
             "utilization_gpu_pct,utilization_memory_pct,temperature_gpu_c,memory_used_mib"]
    n = int(round(seconds / interval_s)) + 1
    energy_mj = {g: 5_000_000.0 for g in range(gpus)}
    prev = None
    for k in range(n):
        s = k * interval_s
        if skip and skip[0] < s < skip[1]:
            continue
        for g in range(gpus):
            p = power(s)
            if prev is not None and energy_counter:
                energy_mj[g] += (p + prev[g]) / 2 * (s - prev["s"]) * 1000
            t = T0 + timedelta(seconds=s)
            mono = MONO0 + int(round(s * 1e9))
            counter = f"{energy_mj[g]:.0f}" if energy_counter else ""
            lines.append(f"{iso(t)},{mono},{g},GPU-{g},{p},,,{counter},700,700,1980,2619,1980,90,40,50,1000")
        prev = {g: power(s) for g in range(gpus)} | {"s": s}
    (folder / "nvml.csv").write_text("\n".join(lines) + "\n")
    with (folder / "spans.jsonl").open("w") as handle:
        for sp in spans or []:
            a, b = sp["start_s"], sp["end_s"]
            handle.write(json.dumps({
                "span_id": sp["id"], "parent_id": sp.get("parent"), "kind": sp.get("kind", "epoch"),
                "name": sp.get("name", sp["id"]),
                "start_utc": iso(T0 + timedelta(seconds=a)), "end_utc": iso(T0 + timedelta(seconds=b)),
                "start_mono_ns": MONO0 + int(round(a * 1e9)), "end_mono_ns": MONO0 + int(round(b * 1e9)),
                "attrs": sp.get("attrs", {}),
            }) + "\n")
    return folder
