"""Span energy you can trust (0010): every estimator against hand-computed cases, window readings,
one estimate per span and device, repeated-span statistics, and span(energy=True)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from dlwh.ingest.loader import ingest_paths
from tests.runfactory import MONO0, T0, iso

HEADER = ("timestamp_utc,monotonic_ns,gpu_index,gpu_uuid,power_w,power_instant_w,power_average_w,"
          "energy_total_mj,power_limit_w,enforced_power_limit_w,clock_sm_mhz,clock_mem_mhz,clock_gr_mhz,"
          "utilization_gpu_pct,utilization_memory_pct,temperature_gpu_c,memory_used_mib")


def write_run(folder: Path, rows: list[tuple[float, float | None, float | None]], spans: list[dict],
              run_id: str = "run-s", power_avg: float | None = None) -> Path:
    """nvml.csv rows (t s, power_instant W or None, counter J or None) and spans (id, start_s, end_s)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps({
        "format": "dlwh-run", "format_version": 1, "run_id": run_id, "host": "h",
        "start_utc": iso(T0), "end_utc": iso(T0 + timedelta(seconds=rows[-1][0])),
        "monotonic_anchor": {"utc": iso(T0), "monotonic_ns": MONO0}, "timezone": "UTC",
        "command": ["x"], "exit_code": 0, "gpus": [{"index": 0, "uuid": "GPU-0", "name": "Test GPU"}]}))
    lines = [HEADER]
    for t, p, e in rows:
        lines.append(f"{iso(T0 + timedelta(seconds=t))},{MONO0 + round(t * 1e9)},0,GPU-0,"
                     f"{'' if power_avg is None else power_avg},{'' if p is None else p},,"
                     f"{'' if e is None else round(e * 1000)},700,700,1980,2619,1980,90,40,50,1000")
    (folder / "nvml.csv").write_text("\n".join(lines) + "\n")
    with (folder / "spans.jsonl").open("w") as f:
        for sp in spans:
            f.write(json.dumps({
                "span_id": sp["id"], "parent_id": sp.get("parent"), "kind": sp.get("kind", "phase"),
                "name": sp.get("name", sp["id"]),
                "start_utc": iso(T0 + timedelta(seconds=sp["start_s"])), "end_utc": iso(T0 + timedelta(seconds=sp["end_s"])),
                "start_mono_ns": MONO0 + round(sp["start_s"] * 1e9), "end_mono_ns": MONO0 + round(sp["end_s"] * 1e9),
                "attrs": sp.get("attrs", {})}) + "\n")
    return folder


def load(con, *folders: Path) -> None:
    results = ingest_paths(con, list(folders))
    assert all(r.outcome.startswith("loaded") for r in results), [r.describe() for r in results]


def estimates(con, span_id: str) -> dict:
    rows = con.execute("SELECT method, energy_j, error_j, resolved, counter_interval_s FROM span_energy_estimates "
                       "WHERE span_id = ? AND metric = 'power_instant'", [span_id]).fetchall()
    return {m: (e, err, res, civ) for m, e, err, res, civ in rows}


def step_power(t: float) -> float:
    """100 W before 0.045 s, 300 W after (the 10 ms samples at 0.04 and 0.05 read 100 and 300)."""
    return 100.0 if t < 0.045 else 300.0


def shape_case(tmp_path: Path) -> Path:
    # instant power every 10 ms on [0, 0.2]; counter every 100 ms: 1000 J, +22 J, +31 J. The
    # trapezoid of the instant power gives 21 J and 30 J over the two counter intervals.
    rows = []
    counter = {0: 1000.0, 10: 1022.0, 20: 1053.0}
    for k in range(21):
        t = k / 100
        rows.append((t, step_power(t), counter.get(k)))
    spans = [{"id": "short", "start_s": 0.02, "end_s": 0.07},     # inside one counter interval
             {"id": "across", "start_s": 0.07, "end_s": 0.15}]    # across a counter reading
    return write_run(tmp_path / "shape", rows, spans)


def test_every_estimator_on_a_span_shorter_than_the_counter_period(tmp_path, con):
    load(con, shape_case(tmp_path))
    got = estimates(con, "short")
    # trapezoid: 100 W x 0.02 s + (100 + 300) / 2 x 0.01 s + 300 W x 0.02 s = 10 J
    assert got["trapezoid"][0] == pytest.approx(10.0)
    # counter, linear in time: 22 J x 0.05 s / 0.1 s = 11 J
    assert got["counter"][0] == pytest.approx(11.0)
    # anchored: the instant integral from 2 J to 12 J of its 21 J, rescaled to 22 J: 22 x 10 / 21
    assert got["counter_anchored"][0] == pytest.approx(22 * 10 / 21)
    # both edges in one counter interval: the bound is that interval's 22 J; not resolved
    assert got["counter"][1] == pytest.approx(22.0)
    assert got["counter_anchored"][1] == pytest.approx(22.0)
    assert got["counter"][2] is False and got["counter_anchored"][2] is False
    assert got["counter"][3] == pytest.approx(0.1)


def test_estimators_across_a_counter_reading(tmp_path, con):
    load(con, shape_case(tmp_path))
    got = estimates(con, "across")
    assert got["trapezoid"][0] == pytest.approx(300 * 0.08)
    # linear: (1022 + 31 x 0.5) - (1000 + 22 x 0.7) = 22.1 J
    assert got["counter"][0] == pytest.approx(22.1)
    # anchored: (1022 + 31 x 15 / 30) - (1000 + 22 x 12 / 21)
    assert got["counter_anchored"][0] == pytest.approx(1037.5 - (1000 + 22 * 12 / 21))
    assert got["counter"][1] == pytest.approx(22 + 31)
    best = con.execute("SELECT method, energy_j, device FROM span_energy_best WHERE span_id = 'across'").fetchall()
    assert best == [("counter", pytest.approx(22.1), "gpu:0")]


def test_a_gap_in_the_samples(tmp_path, con):
    # 200 W every 10 ms on [0, 3] but no instant samples in (1.0, 2.5): a 1.5 s gap; the counter
    # (read every 100 ms throughout) goes on counting 20 J per 100 ms
    rows = []
    for k in range(301):
        t = k / 100
        inside = 1.0 < t < 2.5
        rows.append((t, None if inside else 200.0, 5000 + 200 * t if k % 10 == 0 else None))
    rows = [r for r in rows if r[1] is not None or r[2] is not None]
    load(con, write_run(tmp_path / "gap", rows, [{"id": "g", "start_s": 0.9, "end_s": 2.6},
                                                  {"id": "before", "start_s": 0.2, "end_s": 0.8}]))
    got = estimates(con, "g")
    assert got["trapezoid"][0] == pytest.approx(200 * 0.2)  # covered time only
    gap = con.execute("SELECT gap_s FROM span_energy_estimates WHERE span_id = 'g' AND method = 'trapezoid' "
                      "AND metric = 'power_instant'").fetchone()[0]
    assert gap == pytest.approx(1.5)
    # the counter spans the gap: 200 W x 1.7 s; anchored falls back to linear inside the gap
    assert got["counter"][0] == pytest.approx(340.0)
    assert got["counter_anchored"][0] == pytest.approx(340.0)
    assert estimates(con, "before")["counter_anchored"][0] == pytest.approx(120.0)
    note = con.execute("SELECT note FROM span_energy_estimates WHERE span_id = 'g' AND method = 'trapezoid' "
                       "AND metric = 'power_instant'").fetchone()[0]
    assert "1.5 s of sample gaps inside" in note


def test_in_process_counter_of_a_span_is_its_best_estimate(tmp_path, con):
    folder = shape_case(tmp_path)
    with (folder / "spans.jsonl").open("a") as f:  # a span opened with energy=True on GPU-0
        f.write(json.dumps({"span_id": "ep", "parent_id": None, "kind": "epoch", "name": "epoch",
                            "start_utc": iso(T0 + timedelta(seconds=0.05)), "end_utc": iso(T0 + timedelta(seconds=0.15)),
                            "start_mono_ns": MONO0 + 50_000_000, "end_mono_ns": MONO0 + 150_000_000,
                            "attrs": {"energy_j": 27.5, "energy_gpus": ["GPU-0"]}}) + "\n")
    load(con, folder)
    best = con.execute("SELECT method, energy_j, error_j, device, tool FROM span_energy_best WHERE span_id = 'ep'").fetchone()
    assert best == ("in_process_counter", 27.5, pytest.approx(0.2 * 27.5 / 0.1), "gpu:0", "span")
    methods = {r[0] for r in con.execute("SELECT method FROM span_energy_estimates WHERE span_id = 'ep'").fetchall()}
    assert methods == {"in_process_counter", "counter", "counter_anchored", "trapezoid"}
    assert con.execute("SELECT count(*) FROM span_energy WHERE span_id = 'ep'").fetchone()[0] == 1


def test_span_energy_keeps_its_columns_and_the_trapezoid(tmp_path, con):
    load(con, shape_case(tmp_path))
    rows = con.execute("SELECT span_id, metric, energy_j FROM span_energy ORDER BY span_id").fetchall()
    assert rows == [("across", "power_instant", pytest.approx(24.0)), ("short", "power_instant", pytest.approx(10.0))]


def test_best_gives_one_energy_per_span_and_gpu_across_tools(tmp_path, con):
    # the same GPU seen by NVML and by nvidia-smi: span_energy has a row per tool, best one per span
    load(con, shape_case(tmp_path))
    con.execute("INSERT INTO sensors (sensor_id, run_id, file_sha256, kind, name, device_index, device_uuid, tool) "
                "VALUES ('smi:gpu0', 'run-s', 'x', 'gpu', 'GPU 0', 0, 'GPU-0', 'nvidia-smi')")
    con.execute("INSERT INTO samples (sensor_id, ts, metric, unit, value, duration_s, file_sha256) "
                "SELECT 'smi:gpu0', ?::TIMESTAMP + to_microseconds(k * 10000), 'power', 'W', 200, NULL, 'x' "
                "FROM range(21) t(k)", [T0.replace(tzinfo=None)])
    n_raw = con.execute("SELECT count(*) FROM span_energy").fetchone()[0]
    assert n_raw == 4  # 2 spans x (NVML power_instant + nvidia-smi power)
    best = con.execute("SELECT span_id, device, tool, method FROM span_energy_best ORDER BY span_id").fetchall()
    assert best == [("across", "gpu:0", "nvml", "counter"), ("short", "gpu:0", "nvml", "counter")]
    note = con.execute("SELECT note FROM span_energy_estimates WHERE tool = 'nvidia-smi' AND span_id = 'across'").fetchone()[0]
    assert note.startswith("power is a 1 s moving average")


def _windows(con, windows: list[tuple[float, float, float]], spans: list[tuple[str, float, float]]) -> None:
    """A powermetrics-like sensor: (mid s, window s, W) readings, and spans (id, start s, end s)."""
    t0 = T0.replace(tzinfo=None)
    con.execute("INSERT INTO runs (run_id, source, file_sha256) VALUES ('w', 'file', 'x')")
    con.execute("INSERT INTO sensors (sensor_id, run_id, file_sha256, kind, name, tool) "
                "VALUES ('pm:cpu', 'w', 'x', 'cpu', 'CPU', 'powermetrics')")
    for mid, dur, p in windows:
        con.execute("INSERT INTO samples (sensor_id, ts, metric, unit, value, duration_s, file_sha256) "
                    "VALUES ('pm:cpu', ?, 'power', 'W', ?, ?, 'x')", [t0 + timedelta(seconds=mid), p, dur])
    for sid, a, b in spans:
        con.execute("INSERT INTO spans (run_id, span_id, kind, name, start_ts, end_ts, file_sha256) "
                    "VALUES ('w', ?, 'phase', ?, ?, ?, 'x')", [sid, sid, t0 + timedelta(seconds=a), t0 + timedelta(seconds=b)])


def test_window_readings_integrate_over_their_window(con):
    # 10 W over [0, 2], 20 W over [2, 4], nothing over [4, 6], 30 W over [6, 8]
    _windows(con, [(1.0, 2.0, 10.0), (3.0, 2.0, 20.0), (7.0, 2.0, 30.0)], [("a", 1.0, 7.0), ("b", 4.5, 5.5)])
    run = con.execute("SELECT energy_j, gap_s, n_gaps, n_samples, duration_s, avg_power_w FROM run_energy").fetchone()
    assert run == (pytest.approx(120.0), pytest.approx(2.0), 1, 3, pytest.approx(8.0), pytest.approx(20.0))
    got = dict(con.execute("SELECT span_id, energy_j FROM span_energy").fetchall())
    assert got == {"a": pytest.approx(10 * 1 + 20 * 2 + 30 * 1), "b": pytest.approx(0.0)}
    gaps = dict(con.execute("SELECT span_id, gap_s FROM span_energy").fetchall())
    assert gaps == {"a": pytest.approx(2.0), "b": pytest.approx(1.0)}
    best = con.execute("SELECT method, averaged_s, note FROM span_energy_best WHERE span_id = 'a'").fetchone()
    assert best[0] == "trapezoid" and best[1] == pytest.approx(2.0)
    assert "readings are averages over 2.0 s windows" in best[2]


def test_one_window_reading_is_its_power_times_its_window(con):
    _windows(con, [(0.5, 1.0, 7.5)], [("all", 0.0, 1.0), ("half", 0.25, 0.75)])
    assert con.execute("SELECT energy_j, n_samples FROM run_energy").fetchone() == (pytest.approx(7.5), 1)
    got = dict(con.execute("SELECT span_id, energy_j FROM span_energy").fetchall())
    assert got == {"all": pytest.approx(7.5), "half": pytest.approx(3.75)}


def test_codecarbon_m1_powermetrics_package_energy(con, fixtures_dir):
    path = fixtures_dir / "powermetrics" / "codecarbon-m1-macbookair.txt"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    load(con, path)
    # sum of P x window over the readings of each power series, straight from the samples
    want = dict(con.execute(
        "SELECT se.name, sum(value * duration_s) FROM samples s JOIN sensors se USING (sensor_id) "
        "WHERE metric = 'power' AND duration_s > 0 GROUP BY ALL").fetchall())
    got = dict(con.execute("SELECT sensor_name, energy_j FROM run_energy WHERE metric = 'power'").fetchall())
    assert got == pytest.approx(want)
    pkg = [v for k, v in got.items() if "ackage" in k]
    assert pkg and pkg[0] == pytest.approx(0.551, abs=0.0005)


def test_span_stats_and_phase_sums_by_hand(tmp_path, con):
    # 100 W constant (instant, counter consistent); steps of 0.5, 1.0 and 1.5 s, each cut in two phases
    rows = [(k / 100, 100.0, 100.0 * k / 100 if k % 10 == 0 else None) for k in range(401)]
    spans, t = [], 0.2
    for i, length in enumerate((0.5, 1.0, 1.5)):
        spans.append({"id": f"s{i}", "kind": "step", "name": "step", "start_s": t, "end_s": t + length})
        spans.append({"id": f"f{i}", "parent": f"s{i}", "name": "forward", "start_s": t, "end_s": t + 0.2})
        spans.append({"id": f"b{i}", "parent": f"s{i}", "name": "backward", "start_s": t + 0.2, "end_s": t + length})
        t += length + 0.05
    load(con, write_run(tmp_path / "stats", rows, spans))
    st = con.execute("SELECT n, mean_energy_j, energy_ci95_j, sd_energy_j, mean_power_w, power_ci95_w, methods "
                     "FROM span_stats WHERE kind = 'step'").fetchone()
    n, mean, ci, sd, power, power_ci, methods = st
    assert (n, methods) == (3, "counter")
    assert mean == pytest.approx(100.0) and sd == pytest.approx(50.0)
    assert ci == pytest.approx(4.303 * 50 / 3 ** 0.5)  # Student t, 2 degrees of freedom
    assert power == pytest.approx(100.0) and power_ci == pytest.approx(0.0, abs=1e-6)
    fwd = con.execute("SELECT mean_energy_j, energy_ci95_j FROM span_stats WHERE name = 'forward'").fetchone()
    assert fwd[0] == pytest.approx(20.0) and fwd[1] == pytest.approx(0.0, abs=1e-6)
    ps = con.execute("SELECT n, children, mean_energy_j, children_mean_energy_j, children_diff_pct "
                     "FROM span_phase_sums WHERE kind = 'step'").fetchone()
    assert ps[:2] == (3, "backward,forward")
    assert ps[2] == pytest.approx(100.0) and ps[3] == pytest.approx(100.0)
    assert ps[4] == pytest.approx(0.0, abs=1e-9)


def test_report_per_phase_section(tmp_path, con):
    from dlwh.analysis.report import _table
    from dlwh.analysis.span_report import per_phase_html

    assert per_phase_html(con, _table) == ""  # no repeated spans: no section
    rows = [(k / 100, 100.0, 100.0 * k / 100 if k % 10 == 0 else None) for k in range(401)]
    spans = []
    for i in range(3):
        a = 0.2 + i
        spans.append({"id": f"s{i}", "kind": "step", "name": "step", "start_s": a, "end_s": a + 1.0})
        spans.append({"id": f"f{i}", "parent": f"s{i}", "name": "forward", "start_s": a, "end_s": a + 0.4})
    load(con, write_run(tmp_path / "rep", rows, spans))
    page = per_phase_html(con, _table, min_repeats=3)
    assert "<h2>Energy per phase (repeated spans)</h2>" in page and "<h3>run-s</h3>" in page
    assert "<td>forward</td>" in page and "<td>40</td>" in page      # 100 W x 0.4 s
    assert "<td>step</td>" in page and "<td>-60</td>" in page        # the forward phase is 40 % of each step
    assert per_phase_html(con, _table) == ""  # 3 repetitions are fewer than the default 10


def test_t_quantile_macro(con):
    got = [con.execute("SELECT dlwh_t975(?)", [nu]).fetchone()[0] for nu in (1, 2, 3, 10, 30, 1000)]
    assert got[:3] == [12.706, 4.303, 3.182]
    assert got[3] == pytest.approx(2.228, abs=0.002)
    assert got[4] == pytest.approx(2.042, abs=0.001)
    assert got[5] == pytest.approx(1.962, abs=0.001)


# -- span(energy=True) -------------------------------------------------------------------------
@pytest.fixture
def fake_nvml(monkeypatch):
    from tests.data.collect.fakes.harness import load_fake_pynvml
    import dlwh.collect.spans as spans_mod

    fake = load_fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    spans_mod._reset_counters()
    yield fake
    spans_mod._reset_counters()


def test_span_energy_true_reads_the_counter_at_both_edges(tmp_path, fake_nvml):
    from dlwh.collect import set_run_dir, span
    from dlwh.collect.spans import _energy_counters

    series = fake_nvml._SERIES
    _energy_counters()  # opened before the span: the replay starts where the fake's cursor is now
    k0 = fake_nvml._cursor.get(0, -1)  # the fake reads sample max(cursor, 0); a power read moves it on
    set_run_dir(tmp_path)
    try:
        with span("epoch", energy=True, epoch=0) as s:
            h = _energy_counters().handles[0]
            for _ in range(5):  # the fake moves one recorded sample per power read
                fake_nvml.nvmlDeviceGetPowerUsage(h)
    finally:
        set_run_dir(None)
    want = (series[k0 + 5]["energy_mj"] - series[max(k0, 0)]["energy_mj"]) / 1000
    assert s.energy_j == pytest.approx(want)
    line = json.loads((tmp_path / "spans.jsonl").read_text().splitlines()[-1])
    assert line["attrs"]["energy_j"] == pytest.approx(round(want, 3))
    assert line["attrs"]["energy_gpus"] == [fake_nvml.nvmlDeviceGetUUID(h)]
    assert line["kind"] == "epoch" and line["attrs"]["epoch"] == 0


def test_span_energy_true_without_a_run_dir_and_without_nvml(monkeypatch, capsys):
    from dlwh.collect import set_run_dir, span
    import dlwh.collect.spans as spans_mod

    set_run_dir(None)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml fails
    spans_mod._reset_counters()
    try:
        with span("epoch", energy=True) as s:
            pass
        assert s.energy_j is None
        assert capsys.readouterr().err == ("dlwh: span energy is off: nvidia-ml-py is not installed "
                                           "(import of pynvml halted; None in sys.modules); pip install nvidia-ml-py\n")
        with span("epoch") as plain:
            pass
        assert plain.energy_j is None
    finally:
        spans_mod._reset_counters()


def test_energy_counters_follow_cuda_visible_devices(monkeypatch, fake_nvml):
    from dlwh.collect.nvml import EnergyCounters

    monkeypatch.setenv("FAKE_NVML_GPUS", "3")
    fake_nvml.nvmlInit()
    uuids = [fake_nvml.nvmlDeviceGetUUID(fake_nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(3)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"2,{uuids[0]}")
    c = EnergyCounters()
    try:
        assert c.indices == [2, 0] and c.uuids == [uuids[2], uuids[0]]
        assert len(c.read_mj()) == 2
    finally:
        c.close()


# -- a recorded run (examples/h200-train, NVIDIA H200) -------------------------------------------
@pytest.mark.slow
def test_recorded_h200_run_held_out_counter_readings(con):
    from benchmarks.bench_spans import HELD_SPANS, SCORE_ALL, _rows

    run = Path(__file__).resolve().parents[1] / "examples" / "h200-train"
    load(con, run)
    n_spans = con.execute("SELECT count(*) FROM spans").fetchone()[0]
    # one estimate per span and GPU, although NVML and nvidia-smi both watched GPU 0
    assert con.execute("SELECT count(*), count(DISTINCT span_id), min(device), max(device) "
                       "FROM span_energy_best").fetchone() == (n_spans, n_spans, "gpu:0", "gpu:0")
    epochs = con.execute("SELECT sum(energy_j) FROM span_energy_best WHERE kind = 'epoch'").fetchone()[0]
    assert epochs == pytest.approx(44316, abs=1)  # each tool alone; the old README query added them up
    # every other counter reading held out; spans between held-out readings scored against them
    con.execute("DELETE FROM spans")
    con.execute("""CREATE TEMP TABLE held AS SELECT sensor_id, ts, value, row_number() OVER (PARTITION BY sensor_id ORDER BY ts) AS k
        FROM (SELECT sensor_id, ts, value, row_number() OVER (PARTITION BY sensor_id ORDER BY ts) AS r
              FROM samples WHERE metric = 'energy_total') WHERE r % 2 = 0""")
    con.execute("DELETE FROM samples WHERE metric = 'energy_total' AND (sensor_id, ts) IN (SELECT sensor_id, ts FROM held)")
    for n in (1, 5):
        con.execute(HELD_SPANS, [n, f"{n}", round(n * 0.2, 1), n, n])
    got = {(r["length_s"], r["method"], r["tool"], r["metric"]): r["mape_pct"]
           for r in _rows(con, SCORE_ALL.replace("AND kind = 'phase'", "AND kind = 'held'").format(view="span_energy_estimates"))}
    assert got[(1.0, "counter", "nvml", "power_instant")] < 1.0          # measured 0.31 %
    assert got[(0.2, "counter", "nvml", "power_instant")] < 2.0          # 0.95 %
    assert got[(0.2, "counter_anchored", "nvml", "power_instant")] < got[(0.2, "trapezoid", "nvml", "power_instant")]
    assert got[(1.0, "trapezoid", "nvml", "power")] > got[(1.0, "counter", "nvml", "power_instant")]
