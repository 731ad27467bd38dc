"""The power-limit response's guarantees on hand-computed cases (power <= limit, time monotone in the
limit, energy = time x power x GPUs, intervals), the shipped prior, the honest errors of predict,
and the Perseus SOSP'24 format on the shared files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("scipy")

from dlwh.analysis.physics import KNOTS, PhysicsModel, Shared, response  # noqa: E402
from dlwh.analysis.response import Response  # noqa: E402
from dlwh.errors import DlwhError  # noqa: E402
from tests.conftest import invoke  # noqa: E402
from tests.test_analysis_simulate import CONFIG, known  # noqa: E402,F401  (the fixture)

LINEAR = Shared(c=1.0, d=0.0, p_static=0.0, curve=tuple(float(v) for v in KNOTS))  # r = y


def test_power_never_exceeds_the_limit_by_hand():
    # P_u = 200 W, T_u = 100 s, phi = lam = 0.5: P_hi = 300 W, P_lo = 100 W; an enforcement that
    # overshoots (cap = L + 30 W) slows the clock by that cap, but the average power is held at the limit
    over = Shared(c=1.0, d=30.0, p_static=0.0, curve=LINEAR.curve)
    t, p = response(np.array([100.0, 150.0]), 200.0, 100.0, 0.5, 0.5, over, allow=1.0)
    # 100 W: cap 130 W -> r = 130 / 300, stretch = 0.5 + 0.5 / r = 1.6538: T = 165.38 s,
    #        P = (50 + 150) / 1.6538 = 120.9 W -> held at 100 W
    # 150 W: cap 180 W -> r = 0.6, stretch = 0.5 + 0.8333: T = 133.33 s, P = (50 + 150) / 1.3333 = 150 W
    assert t == pytest.approx([100 * (0.5 + 0.5 * 300 / 130), 100 * (0.5 + 0.5 / 0.6)])
    assert p == pytest.approx([100.0, 150.0])
    # unclipped (the fit's view) the same model draws 120.9 W at 100 W
    assert response(100.0, 200.0, 100.0, 0.5, 0.5, over)[1] == pytest.approx(200 / (0.5 + 0.5 * 300 / 130))
    # where a card was seen at 1.2x its limit (the A40 at its floor), up to that is allowed, never more
    assert response(100.0, 200.0, 100.0, 0.5, 0.5, over, allow=1.2)[1] == pytest.approx(120.0)


def test_power_is_held_when_the_other_phases_alone_exceed_the_limit():
    # lam = 0.9: P_lo = 180 W above a 100 W limit; the average power is still held at the limit
    t, p = response(100.0, 200.0, 100.0, 0.5, 0.9, LINEAR, allow=1.0)
    assert p == pytest.approx(100.0)


def test_time_is_monotone_and_power_below_the_limit_over_many_responses():
    rng = np.random.default_rng(0)
    limits = np.linspace(50.0, 400.0, 71)
    for _ in range(200):
        curve = np.sort(rng.uniform(0.1, 1.0, len(KNOTS)))
        curve[-1] = 1.0
        shared = Shared(c=rng.uniform(0.8, 1.1), d=rng.uniform(-20, 40), p_static=rng.uniform(0, 80), curve=tuple(curve))
        t, p = response(limits, rng.uniform(40, 350), 100.0, rng.uniform(0.2, 0.95), rng.uniform(0.1, 0.9), shared,
                        allow=1.0)
        assert np.all(np.diff(t) <= 1e-9)          # higher limit: never slower
        assert np.all(p <= limits + 1e-9)          # never above the limit


def linear_response(k: float = 0.1) -> Response:
    model = PhysicsModel(gpu="X", shared=LINEAR, gpu_phi=0.5, gpu_lam=0.5, ref_w=300.0,
                         configs={"c": {"p_u": 200.0, "t_u": 100.0, "phi": 0.5, "lam": 0.5, "anchor_limit_w": 300.0}})
    return Response(model, "fitted", "by hand", {t: k for t in ("time_per_epoch_s", "avg_power_w", "energy_per_epoch_j")},
                    min_w=100.0, max_w=300.0)


def test_response_predict_energy_and_intervals_by_hand():
    out = linear_response().predict("c", [100.0, 200.0, 300.0], n_gpus=2)
    # T = 100 (0.5 + 150 / L) below 300 W, P = 200 L / (0.5 L + 150)
    assert out["time_per_epoch_s"].tolist() == pytest.approx([200.0, 125.0, 100.0])
    assert out["avg_power_w"].tolist() == pytest.approx([100.0, 160.0, 200.0])
    assert out["energy_per_epoch_j"].tolist() == pytest.approx((out["time_per_epoch_s"] * out["avg_power_w"] * 2).tolist())
    w = 0.1 * (0.05 + math.log(3.0))  # half-width k (s0 + ln(anchor / L)) at 100 W
    assert out.loc[0, "time_per_epoch_s_hi"] == pytest.approx(200.0 * math.exp(w))
    assert out.loc[2, "time_per_epoch_s_lo"] == pytest.approx(100.0 * math.exp(-0.005))
    assert (out["avg_power_w_hi"] <= out["power_limit_w"] + 1e-9).all()  # the bound obeys the limit too
    # bounds as monotone as the points: lower limit, never a shorter bound
    assert np.all(np.diff(out["time_per_epoch_s_lo"].to_numpy()) <= 1e-9)
    assert np.all(np.diff(out["time_per_epoch_s_hi"].to_numpy()) <= 1e-9)


def test_response_round_trips_through_json_and_refuses_damage():
    resp = linear_response()
    back = Response.from_json(json.loads(json.dumps(resp.to_json())))
    assert back.predict("c", [150.0]).equals(resp.predict("c", [150.0]))
    bad = resp.to_json()
    bad["model"]["shared"]["curve"] = list(reversed(bad["model"]["shared"]["curve"]))
    with pytest.raises(ValueError, match="non-monotone clock curve"):
        Response.from_json(bad)


def test_the_shipped_prior_loads_and_scales_to_a_new_gpu():
    from dlwh.analysis import prior as PR

    prior = PR.load()
    assert prior["format"] == "dlwh-power-limit-prior" and set(prior["gpus"]) == {"A100", "A40", "V100"}
    assert [s["file"] for s in prior["sources"]] == list(PR.SOURCES) and all(len(s["sha256"]) == 64 for s in prior["sources"])
    model, how = PR.response_for("H200", 700.0, 200.0, prior)
    glob = PhysicsModel.from_dict(prior["global"])
    assert model.ref_w == 700.0 and model.shared.d == pytest.approx(glob.shared.d * 700.0)
    assert model.shared.curve == glob.shared.curve and model.shared.c == glob.shared.c
    assert how.startswith("the shipped prior (one response fitted on A100, A40, V100 sweeps")
    t, p = model.predict("", np.arange(200.0, 701.0, 50.0), anchor=(700.0, 3.12, 611.0))
    assert np.all(np.diff(t) <= 1e-9) and np.all(p <= np.arange(200.0, 701.0, 50.0) + 1e-9)
    assert t[-1] == pytest.approx(3.12) and p[-1] == pytest.approx(611.0)


def test_a_damaged_prior_is_one_clear_error(tmp_path):
    from dlwh.analysis import prior as PR

    path = tmp_path / "prior.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(DlwhError) as err:
        PR.load(str(path))
    assert str(err.value) == (f"the power-limit prior {path} is not a dlwh-power-limit-prior v1 file; "
                              "regenerate it with python -m dlwh.analysis.prior")


def test_gpu_ranges_from_the_table():
    from dlwh.analysis.gpus import from_table

    assert from_table("A100", 300.0).max_w == 300.0 and from_table("A100", 300.0).min_w == 150.0
    sxm = from_table("A100")
    assert (sxm.max_w, sxm.source) == (400.0, "dlwh's table: A100 SXM; form factor not known, SXM assumed")
    assert from_table("H200").describe().startswith("200..700 W") and from_table("B9000") is None


@pytest.mark.parametrize("limit, message", [
    ("nan", "power limits 'nan': every limit must be a positive, finite number of W"),
    ("inf", "power limits 'inf': every limit must be a positive, finite number of W"),
    ("-5", "power limits '-5': every limit must be a positive, finite number of W"),
    ("90000", "power limit 90000 W is not a usable limit; give W between 1 and 5000, e.g. --power-limit 200 "
              "or 100:300:25"),
])
def test_unusable_limits_are_usage_errors(runner, known, db_path, limit, message):  # noqa: F811
    result = invoke(runner, "predict", "--gpu", "TESTGPU", "--model", "resnet50", "--batch-size", "256",
                    "--power-limit", limit, "--db", str(db_path))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {message}"


def test_an_unknown_model_names_the_closest(runner, known, db_path):  # noqa: F811
    pytest.importorskip("torch")
    result = invoke(runner, "predict", "--gpu", "TESTGPU", "--model", "resnt50", "--batch-size", "256",
                    "--power-limit", "200", "--db", str(db_path))
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: model 'resnt50' is neither in dlwh's zoo nor in this warehouse; "
                                            "did you mean resnet50")
    assert result.stderr.strip().endswith("or describe it with --macs N --params N (dlwh models lists the zoo)")


def test_a_limit_outside_the_range_is_flagged(runner, known, db_path):  # noqa: F811
    result = invoke(runner, "predict", "--gpu", "TESTGPU", "--model", "resnet50", "--batch-size", "256",
                    "--power-limit", "50,200", "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    assert ("warning: 50 W is OUTSIDE the TESTGPU's power-limit range 100..300 W (test): the GPU refuses it; "
            "the figure is an extrapolation") in result.stderr
    assert "200 W is OUTSIDE" not in result.stderr


def test_simulate_does_not_call_a_tie_a_choice(known):  # noqa: F811
    from dlwh.analysis.predict import Query
    from dlwh.analysis.simulate import decide, simulate

    # the stored linear response: 20000 J at every limit, no limit saves energy
    sim = simulate(known, Query(power_limits=[100.0, 200.0, 300.0], gpu="TESTGPU", model="resnet50", batch_size=256),
                   max_slowdown_pct=30)
    assert sim.decision.decided is False and sim.slowdown_decision.decided is False
    import pandas as pd

    table = pd.DataFrame({"power_limit_w": [100.0, 200.0, 300.0], "time_per_epoch_s": [200.0, 120.0, 100.0],
                          "energy_per_epoch_j": [30000.0, 16000.0, 20000.0],
                          "energy_per_epoch_j_lo": [27000.0, 15000.0, 19900.0],
                          "energy_per_epoch_j_hi": [33000.0, 17000.0, 20100.0]})
    d = decide(table, 300.0)
    # 200 W saves 20 % (90 %: 1 - 17000/20000 = 15 % .. 1 - 15000/20000 = 25 %) at 1.2x the time
    assert (d.decided, d.limit_w, d.saving_pct, d.saving_lo_pct, d.saving_hi_pct, d.slowdown) == \
        (True, 200.0, pytest.approx(20.0), pytest.approx(15.0), pytest.approx(25.0), pytest.approx(1.2))
    assert decide(table, 300.0, max_slowdown_pct=10).decided is False  # 200 W is 20 % slower
    wide = table.assign(energy_per_epoch_j_hi=[33000.0, 21000.0, 20100.0])
    assert decide(wide, 300.0).reason == ("no limit saves energy beyond the uncertainty (the saving's 90 % interval "
                                          "includes zero)")


def test_perseus_sweeps_ingest_with_energy_summed_over_gpus(shared_dir, con):
    from dlwh.ingest.loader import ingest_paths

    path = shared_dir / "datasets" / "perseus_sosp24" / "A100__zeus_global.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    [result] = ingest_paths(con, [path])
    assert (result.outcome, result.format) == ("loaded", "perseus-global")
    row = con.execute("SELECT model, dp, tp, pp, n_gpus, power_limit_w, time_per_iteration_s, energy_per_iteration_j, "
                      "avg_power_w FROM perseus_iterations WHERE line = 2").fetchone()
    # line 2: bert-huge-uncased, dp1 tp1 pp4, 300 W, 6.354814670704029 s, 6819.0174444439235 J over 4 GPUs
    assert row[:7] == ("bert-huge-uncased", 1, 1, 4, 4, 300.0, pytest.approx(6.354814670704029))
    assert row[8] == pytest.approx(6819.0174444439235 / 6.354814670704029 / 4)
    assert con.execute("SELECT count(*), count(DISTINCT config), min(work_unit), max(energy_per_epoch_j / "
                       "(time_per_epoch_s * avg_power_w * n_gpus)) FROM training_data WHERE source = 'perseus'"
                       ).fetchone() == (30, 5, "iteration", pytest.approx(1.0))


def test_perseus_stages_must_share_one_limit(con, tmp_path):
    from dlwh.ingest.loader import ingest_paths

    path = tmp_path / "A40__zeus_global.csv"
    path.write_text("model_name,partition_method,batch_size,dp,tp,pp,microbatch_size,num_microbatches,power_limit_0,"
                    "power_limit_1,time,energy,optimal_power_limit\n"
                    "m,\"custom:0,1\",8,1,1,2,4,2,300,250,1.0,500.0,300\n")
    [result] = ingest_paths(con, [path])
    assert result.outcome == "failed"
    assert "the pipeline stages do not share one positive power limit" in result.describe()
    assert con.execute("SELECT count(*) FROM perseus_iterations").fetchone() == (0,)


@pytest.mark.slow
def test_quickstart_h200_prediction_from_the_shipped_prior(runner, db_path):
    """The issue's done-when: after ingesting examples/ and dlwh fit, the H200 gets a capped,
    monotone curve from the shipped prior, a flagged out-of-range limit, and a decision."""
    pytest.importorskip("sklearn")
    from tests.conftest import EXAMPLES

    assert invoke(runner, "ingest", "-q", str(EXAMPLES / "h200-bench"), "--db", str(db_path)).exit_code in (0, 1)
    fit = invoke(runner, "fit", "--algo", "physics", "--db", str(db_path))
    assert fit.exit_code == 0, fit.stderr
    args = ["predict", "--gpu", "H200", "--model", "resnet50", "--batch-size", "128", "--db", str(db_path)]
    one = invoke(runner, *args, "--power-limit", "200")
    assert one.exit_code == 0, one.stderr
    power = [line for line in one.stdout.splitlines() if line.strip().startswith("average power")][0]
    assert float(power.split()[2]) <= 200.0 and "(90 %:" in power
    assert "response          the shipped prior" in one.stdout
    # the prior's energy error on a new GPU is no better than 'nothing changes': said, not hidden
    assert "warning: the response's energy error where it was scored" in one.stderr
    curve = invoke(runner, *args, "--power-limit", "200:700:50", "--csv")
    import io

    import pandas as pd

    frame = pd.read_csv(io.StringIO(curve.stdout))
    assert np.all(np.diff(frame["time_per_epoch_s"]) <= 1e-9)
    assert (frame["avg_power_w"] <= frame["power_limit_w"] + 1e-9).all()
    assert frame["energy_per_epoch_j"].tolist() == pytest.approx((frame["time_per_epoch_s"] * frame["avg_power_w"]).tolist())
    out = invoke(runner, *args, "--power-limit", "150")
    assert "warning: 150 W is OUTSIDE the H200's power-limit range 200..700 W" in out.stderr
    sim = invoke(runner, "simulate", "--gpu", "H200", "--model", "resnet50", "--batch-size", "128", "--no-plot",
                 "--db", str(db_path))
    assert sim.exit_code == 0, sim.stderr
    assert any(line.startswith("energy-optimal limit: ") for line in sim.stdout.splitlines())
