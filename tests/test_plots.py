"""Plots that read at a glance: numeric legend order, plain tick labels, no one-limit curves or one-bar
simulations, the hatch of a partial epoch not called warm-up, and the report's most informative run."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlwh.errors import DlwhError
from dlwh.ingest.loader import ingest_paths
from tests.conftest import EXAMPLES

pytest.importorskip("matplotlib")
from dlwh.analysis import plots  # noqa: E402

TRAIN_RUN = EXAMPLES / "h200-train"
BENCH = EXAMPLES / "h200-bench" / "runs"


def test_natural_order_puts_batch_16_before_128():
    labels = ["batch 128", "batch 16", "batch 2048", "batch 32", "bert 8", "batch 1024"]
    assert sorted(labels, key=plots.natural_key) == ["batch 16", "batch 32", "batch 128", "batch 1024",
                                                     "batch 2048", "bert 8"]
    configs = ["A40/cifar100/shufflenet/1024/adadelta/-/1gpu/epoch", "A40/cifar100/shufflenet/16/adadelta/-/1gpu/epoch",
               "A40/cifar100/shufflenet/128/adadelta/-/1gpu/epoch"]
    labels, shared = plots.config_labels(sorted(configs, key=plots.natural_key))
    assert list(labels.values()) == ["batch 16", "batch 128", "batch 1024"]
    assert shared == "A40/cifar100/shufflenet"


@pytest.mark.parametrize("value, text", [(3.0575, "3.06"), (100.0, "100"), (0.001, "0.001"), (0.5, "0.5"),
                                         (1e-6, "$10^{-6}$"), (2e-5, "$2\\times10^{-5}$"), (1e10, "$10^{10}$"),
                                         (25000.0, "25000"), (0.0, "0")])
def test_tick_labels_are_plain_numbers(value, text):
    assert plots.number(value) == text


def test_si_counts_and_units():
    assert [plots.si(v) for v in (4.09e9, 3e8, 61706, 12)] == ["4.09G", "300M", "61.7k", "12"]
    assert plots.time_unit(30) == (1.0, "s") and plots.time_unit(600) == (60.0, "min")
    assert plots.time_unit(3 * 3600) == (3600.0, "h")
    assert plots.energy_unit(500) == (1.0, "J") and plots.energy_unit(2e4) == (1e3, "kJ")
    assert plots.energy_unit(4e5) == (3.6e6, "kWh")


def test_narrow_ranges_get_a_linear_axis_without_offsets():
    plt = plots._plt()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [3.042, 3.059])
    plots.scale_axis(ax, "y", [3.042, 3.059])
    fig.canvas.draw()
    assert ax.get_yscale() == "linear"
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all("10" not in label and "e" not in label for label in labels), labels
    plots.scale_axis(ax, "y", [1e-6, 1e-3])
    assert ax.get_yscale() == "log"
    plt.close(fig)


@pytest.fixture(scope="module")
def h200(tmp_path_factory):
    """The committed H200 runs: the 77 s training run (partial last epoch) and three bench runs, all at 700 W.
    Ingested once for this module's tests, which only read it."""
    from dlwh.warehouse import open_warehouse

    con = open_warehouse(tmp_path_factory.mktemp("h200") / "h200.duckdb")
    runs = [TRAIN_RUN, BENCH / "resnet50-bs32", BENCH / "resnet50-bs64", BENCH / "resnet18-bs32-layers"]
    assert {r.outcome for r in ingest_paths(con, runs)} == {"loaded"}
    yield con
    con.close()


def legend_texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


@pytest.mark.slow
def test_power_plot_calls_the_partial_last_epoch_left_out_not_warm_up(h200):
    fig = plots.power_over_time(h200, "h200-train-b876d2")
    texts = legend_texts(fig)
    assert texts == ["GPU 0 NVIDIA H200 (nvidia-smi)", "GPU 0 NVIDIA H200 (nvml)", "steady epochs (training data)",
                     "warm-up epoch", "partial epoch (left out)"]
    assert "warm-up" not in fig.axes[0].get_title()
    plots._plt().close(fig)


@pytest.mark.slow
def test_one_limit_gpu_gives_no_limit_curves(h200):
    with pytest.raises(DlwhError) as err:
        plots.limit_curves(h200, "H200")
    assert str(err.value) == ("no configuration on H200 was measured at more than one power limit (measured at "
                              "700 W); record one at several limits with dlwh collect sweep")


@pytest.mark.slow
def test_report_says_one_limit_and_draws_the_most_informative_run(h200, tmp_path: Path):
    pytest.importorskip("threadpoolctl")
    from dlwh.analysis import report

    assert report.most_informative_run(h200) == (
        "h200-train-b876d2", "Of the 4 collected run(s), the one with the most steady-state time: 76.6 s long, "
        "6 steady epoch span(s) covering 54.4 s.")
    page = report.write(h200, "test.duckdb", tmp_path / "report.html").read_text()
    assert "Every run on H200 was measured at one power limit (700 W)" in page
    assert "Time and energy per epoch against the power limit" not in page and "Simulation:" not in page
    assert "<h2>A collected run: h200-train-b876d2</h2>" in page
    assert "Latest collected run" not in page
    assert "7.159e+04" not in page and "e+0" not in page


def test_simulation_with_one_limit_is_not_drawn():
    import pandas as pd

    class Sim:
        table = pd.DataFrame({"power_limit_w": [700.0], "energy_per_epoch_j": [1800.0], "time_per_epoch_s": [3.0],
                              "epochs_in_budget": [10.0]})

    with pytest.raises(DlwhError) as err:
        plots.simulation(Sim())
    assert str(err.value) == ("the simulation has one power limit (700 W): nothing to compare; give --power-limits "
                              "or record runs at other limits (dlwh collect sweep)")
