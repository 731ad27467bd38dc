"""The notebook API (dlwh.connect/ingest/predict/simulate): DataFrames with the library's numbers, the
library's errors, and `import dlwh` staying light."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import dlwh
from dlwh.errors import DlwhError, UsageError
from tests.conftest import EXAMPLES, ROOT

BENCH_RUN = EXAMPLES / "h200-bench" / "runs" / "resnet50-bs64"


def test_import_dlwh_and_collect_load_neither_duckdb_nor_pandas():
    code = ("import sys, dlwh, dlwh.collect\n"
            "assert 'duckdb' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)\n"
            "assert callable(dlwh.connect) and 'duckdb' not in sys.modules\n"
            "dlwh.predict\n"
            "assert 'dlwh.api' in sys.modules\n"
            "print(sorted(n for n in dir(dlwh) if not n.startswith('_')))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['api', 'collect', 'connect', 'errors', 'ingest', 'predict', 'simulate']"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'dlwh' has no attribute 'nope'"):
        dlwh.nope  # noqa: B018


@pytest.mark.slow
def test_ingest_returns_one_row_per_file_and_the_package_stays_importable(db_path, tmp_path):
    import dlwh.ingest.loader  # the attribute dlwh.ingest is now the package: it must still be callable

    bad = tmp_path / "notes.txt"
    bad.write_text("not a trace\n")
    frame = dlwh.ingest([BENCH_RUN, bad], db=db_path, tz="UTC")
    assert list(frame.columns) == ["path", "outcome", "format", "rows", "run_id", "message", "line"]
    by_format = dict(zip(frame["format"], frame["outcome"]))
    assert by_format["dlwh-manifest"] == by_format["dlwh-spans"] == by_format["dlwh-nvml"] == "loaded"
    failed = frame[frame.outcome == "failed"]
    assert failed["path"].tolist() == [str(bad)]
    assert failed["message"].tolist() == ["not a trace format dlwh knows (see docs/formats.md)"]
    assert dlwh.ingest.loader.__name__ == "dlwh.ingest.loader"

    again = dlwh.ingest(str(BENCH_RUN), db=db_path)  # one path as a string; nothing changes
    assert set(again["outcome"]) == {"unchanged"}
    with dlwh.connect(db_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM files WHERE path = ?", [str(bad)]).fetchone()[0] == 0


def test_ingest_dry_run_changes_nothing(db_path):
    frame = dlwh.ingest([BENCH_RUN], db=db_path, dry_run=True)
    assert set(frame["outcome"]) == {"would-load"} and frame["rows"].sum() > 2000
    con = dlwh.connect(db_path)
    try:
        assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    finally:
        con.close()


def test_connect_read_only_to_a_missing_warehouse(tmp_path):
    with pytest.raises(DlwhError) as err:
        dlwh.connect(tmp_path / "typo.duckbd", read_only=True)
    assert str(err.value).startswith(f"no warehouse at {tmp_path / 'typo.duckbd'}")
    assert not (tmp_path / "typo.duckbd").exists()


# -- predict and simulate on stored stand-in models with known curves ---------------------------------

pytest.importorskip("sklearn")
from tests.test_analysis_simulate import known  # noqa: E402,F401  (the fixture)


@pytest.mark.slow
def test_predict_returns_the_table_and_says_what_it_used(known):  # noqa: F811
    frame = dlwh.predict([100, 300], gpu="TESTGPU", model="resnet50", batch_size=256, epochs=2, db=known)
    # the stored linear response (test_analysis_simulate.store_linear_response): T = 100 (0.5 + 150 / L) s
    # below 300 W, P = 200 L / (0.5 L + 150) W, E = 20000 J; interval half-width 0.1 (0.05 + ln(300 / L))
    assert frame["power_limit_w"].tolist() == [100.0, 300.0]
    assert frame["time_per_epoch_s"].tolist() == pytest.approx([200, 100])
    assert frame["avg_power_w"].tolist() == pytest.approx([100, 200])
    w = 0.1 * (0.05 + np.log(3.0))
    assert frame["energy_per_epoch_j_lo"].tolist() == pytest.approx([20000 * np.exp(-w), 20000 * np.exp(-0.005)])
    assert frame["total_energy_j"].tolist() == pytest.approx([40000, 40000])
    assert frame.attrs["gpu"] == "TESTGPU" and frame.attrs["algo"]["avg_power_w"] == "physics"
    assert frame.attrs["description"] == "TESTGPU, resnet50, imagenet, batch 256"
    same = dlwh.predict("100:300:200", gpu="TESTGPU", model="resnet50", batch_size=256, db=known)
    assert same["energy_per_epoch_j"].tolist() == pytest.approx([20000, 20000])
    assert dlwh.predict(200, gpu="TESTGPU", model="resnet50", batch_size=256, db=known)["avg_power_w"].tolist() == \
        pytest.approx([160])
    assert not known.execute("SELECT 1").fetchall() == []  # the caller's connection stays open


def test_predict_errors_are_the_library_errors(known):  # noqa: F811
    with pytest.raises(UsageError) as err:
        dlwh.predict([], model="resnet50", db=known)
    assert str(err.value) == "give power_limits: W as 200, a list [150, 200, 250] or a range '100:300:25'"
    with pytest.raises(UsageError) as err:
        dlwh.predict(200, model="resnet50", macs=1e9, params=1e6, db=known)
    assert str(err.value) == "give model=NAME or macs=N with params=N, not both"
    with pytest.raises(UsageError) as err:
        dlwh.predict("100:x", model="resnet50", db=known)
    assert str(err.value) == "power limits '100:x': give W as 200, a list 150,200,250 or a range 100:300:25"


def test_simulate_returns_the_table_and_its_highlights(known):  # noqa: F811
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing out of range here
        frame = dlwh.simulate(budget_epochs=10, power_limits=[100, 200, 300], gpu="TESTGPU", model="resnet50",
                              batch_size=256, db=known)
    # the linear response: E = 20000 J at every limit (a tie), T = 200, 125, 100 s
    assert frame["energy_per_epoch_j"].tolist() == pytest.approx([20000, 20000, 20000])
    assert frame["epochs_in_budget"].tolist() == pytest.approx([10, 10, 10])
    assert frame["time_to_accuracy_s"].tolist() == pytest.approx([12 * 200, 12 * 125, 12 * 100])
    assert frame.attrs["best_cost_limit_w"] == 300.0
    assert frame.attrs["reference_limit_w"] == 300 and frame.attrs["budget_j"] == pytest.approx(200000)
    assert frame.attrs["decision"]["decided"] is False  # a tie is no choice
    assert frame.attrs["slowdown_decision"] is None


def test_simulate_without_a_model_says_which_it_chose(known):  # noqa: F811
    frame = dlwh.simulate(budget_kwh=1.0, gpu="TESTGPU", db=known)
    assert frame["power_limit_w"].tolist() == [100.0, 200.0, 300.0]
    assert frame.attrs["notes"][0] == ("no --model: simulating the configuration measured at the most limits on "
                                       "TESTGPU, imagenet/resnet50 at batch 256 (3 limits); pass --model and "
                                       "--batch-size for another")
    with pytest.raises(UsageError) as err:
        dlwh.simulate(budget_epochs=1, budget_kwh=1.0, gpu="TESTGPU", db=known)
    assert str(err.value) == "give one budget: --budget-epochs N or --budget-kwh X"


def test_a_path_is_opened_and_closed_for_the_call(known, db_path: Path):  # noqa: F811
    known.close()
    frame = dlwh.predict(200, gpu="TESTGPU", model="resnet50", batch_size=256, db=db_path)
    assert frame["time_per_epoch_s"].tolist() == pytest.approx([125])
    con = dlwh.connect(db_path)  # no lock left behind
    con.close()
