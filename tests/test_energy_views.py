"""run_energy and span_energy against hand-computed integrals of known power curves."""

from __future__ import annotations

import pytest

from dlwh.ingest.loader import ingest_paths
from tests.runfactory import make_run

SPANS = [
    {"id": "e0", "kind": "epoch", "start_s": 0.0, "end_s": 5.0},
    {"id": "e1", "kind": "epoch", "start_s": 5.0, "end_s": 10.0},
    {"id": "s0", "parent": "e0", "kind": "step", "start_s": 0.0, "end_s": 1.234},
    {"id": "s1", "parent": "e0", "kind": "step", "start_s": 1.234, "end_s": 3.3333},
    {"id": "s2", "parent": "e0", "kind": "step", "start_s": 3.3333, "end_s": 5.0},
    {"id": "f0", "parent": "s1", "kind": "phase", "name": "forward", "start_s": 1.234, "end_s": 2.05},
    {"id": "b0", "parent": "s1", "kind": "phase", "name": "backward", "start_s": 2.05, "end_s": 3.3333},
]


def linear_energy(a: float, b: float) -> float:
    """Integral of 100 + 10 t over [a, b] in J."""
    return 100 * (b - a) + 5 * (b * b - a * a)


def _load(tmp_path, con, **kwargs):
    run = make_run(tmp_path / "run", **kwargs)
    results = ingest_paths(con, [run])
    assert all(r.outcome.startswith("loaded") or r.message == "empty file" for r in results), [
        r.describe() for r in results]
    return run


def test_run_energy_of_a_linear_ramp(tmp_path, con):
    _load(tmp_path, con, power=lambda s: 100 + 10 * s, spans=SPANS)
    row = con.execute("SELECT duration_s, energy_j, avg_power_w, peak_power_w, gap_s, n_gaps, "
                      "reported_energy_j, n_samples FROM run_energy WHERE metric = 'power'").fetchone()
    duration, energy, avg, peak, gap, n_gaps, reported, n = row
    assert duration == pytest.approx(10.0)
    assert energy == pytest.approx(linear_energy(0, 10))  # 1500 J
    assert avg == pytest.approx(150.0)
    assert peak == pytest.approx(200.0)
    assert (gap, n_gaps, n) == (0.0, 0, 101)
    assert reported == pytest.approx(1500.0, abs=1.0)  # the NVML energy counter, in J


def test_span_energy_interpolates_at_edges_and_nested_spans_add_up(tmp_path, con):
    _load(tmp_path, con, power=lambda s: 100 + 10 * s, spans=SPANS)
    got = dict(con.execute("SELECT span_id, energy_j FROM span_energy WHERE metric = 'power'").fetchall())
    for span in SPANS:
        assert got[span["id"]] == pytest.approx(linear_energy(span["start_s"], span["end_s"]), rel=1e-9)
    assert got["s0"] + got["s1"] + got["s2"] == pytest.approx(got["e0"], rel=1e-12)
    assert got["f0"] + got["b0"] == pytest.approx(got["s1"], rel=1e-12)
    assert got["e0"] + got["e1"] == pytest.approx(1500.0)


def test_quadratic_power_uses_the_trapezoid_rule(tmp_path, con):
    # power = t^2 sampled every 1 s on [0, 4]; trapezoid gives 22 J (exact integral 21.33 J)
    _load(tmp_path, con, power=lambda s: s * s, seconds=4.0, interval_s=1.0, spans=[
        {"id": "half", "start_s": 0.5, "end_s": 1.5}])
    energy = con.execute("SELECT energy_j FROM run_energy WHERE metric = 'power'").fetchone()[0]
    assert energy == pytest.approx(0.5 + 2.5 + 6.5 + 12.5)
    # On [0.5, 1.5] the piecewise-linear curve gives 0.25*0.5 ... computed by hand:
    # [0.5,1]: p from 0.5 to 1 -> (0.5+1)/2*0.5 = 0.375 ; [1,1.5]: p from 1 to 2.5 -> (1+2.5)/2*0.5 = 0.875
    half = con.execute("SELECT energy_j FROM span_energy WHERE span_id = 'half'").fetchone()[0]
    assert half == pytest.approx(1.25)


def test_long_gap_is_reported_not_bridged(tmp_path, con):
    # 100 W constant, 100 ms sampling, no samples between 3 s and 6 s: a 3.1 s step (> 1 s threshold)
    _load(tmp_path, con, power=lambda s: 100.0, skip=(3.0, 6.0), energy_counter=False, spans=[
        {"id": "all", "start_s": 0.0, "end_s": 10.0}, {"id": "in-gap", "start_s": 4.0, "end_s": 5.0}])
    energy, gap, n_gaps = con.execute(
        "SELECT energy_j, gap_s, n_gaps FROM run_energy WHERE metric = 'power'").fetchone()
    assert n_gaps == 1
    assert gap == pytest.approx(3.0, abs=1e-6)
    assert energy == pytest.approx(100 * 7.0, rel=1e-9)
    spans = {r[0]: r[1:] for r in con.execute("SELECT span_id, energy_j, gap_s FROM span_energy").fetchall()}
    assert spans["all"][0] == pytest.approx(700.0) and spans["all"][1] == pytest.approx(3.0)
    assert spans["in-gap"] == (pytest.approx(0.0), pytest.approx(1.0))
    gaps = con.execute("SELECT gap_start_ts, gap_s FROM sample_gaps").fetchall()
    assert len(gaps) == 1 and gaps[0][1] == pytest.approx(3.0)


def test_span_outside_the_samples_is_uncovered_not_extrapolated(tmp_path, con):
    _load(tmp_path, con, power=lambda s: 50.0, seconds=2.0, spans=[
        {"id": "late", "start_s": 1.5, "end_s": 3.5}])
    energy, uncovered = con.execute("SELECT energy_j, uncovered_s FROM span_energy").fetchone()
    assert energy == pytest.approx(50.0 * 0.5)
    assert uncovered == pytest.approx(1.5)


def test_two_gpus_are_two_sensors(tmp_path, con):
    _load(tmp_path, con, power=lambda s: 200.0, gpus=2, seconds=3.0)
    rows = con.execute("SELECT sensor_name, energy_j FROM run_energy WHERE metric = 'power' "
                       "ORDER BY sensor_name").fetchall()
    assert [r[0] for r in rows] == ["GPU 0 Test GPU", "GPU 1 Test GPU"]
    assert all(r[1] == pytest.approx(600.0) for r in rows)
