"""Zeus importers: summary_power_<gpu>.csv, summary_train.csv, power-limit profiles.

Real files from ../shared/datasets (skipped where absent) are checked value by value against their raw
text; small synthetic files cover --gpu, other layouts and bad input (the warehouse stays unchanged).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dlwh.ingest.loader import IngestOptions, ingest_paths
from tests.conftest import invoke

ZEUS_TABLES = ("zeus_power_summary", "zeus_train_summary", "zeus_profile_windows", "files", "runs")


@pytest.fixture
def zeus_dir(shared_dir: Path) -> Path:
    path = shared_dir / "datasets" / "zeus_nsdi23"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture
def profile_dir(shared_dir: Path) -> Path:
    path = shared_dir / "datasets" / "zeus_profile"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


def counts(con) -> dict[str, int]:
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ZEUS_TABLES}


def one(con, sql, params=()):
    return con.execute(sql, list(params)).fetchone()


# -- summary_power ----------------------------------------------------------------------------

def test_summary_power_a40_values_match_the_raw_text(con, zeus_dir, runner, db_path):
    con.close()
    result = invoke(runner, "ingest", str(zeus_dir / "summary_power_a40.csv"), "--db", str(db_path))
    assert result.exit_code == 0, result.output
    assert "zeus-summary-power" in result.output and "GPU A40 from the file name" in result.output
    from dlwh.warehouse import open_warehouse

    c = open_warehouse(db_path)
    assert one(c, "SELECT count(*), count(DISTINCT gpu) FROM zeus_power_summary") == (453, 1)
    # line 2: cifar100,shufflenetv2,1024,adadelta,100,27.130000000000003,106.88881213499654
    row = one(c, "SELECT gpu, dataset, network, model, batch_size, optimizer, power_limit_w, time_per_epoch_s, "
                 "avg_power_w FROM zeus_power_summary WHERE line = 2")
    assert row == ("A40", "cifar100", "shufflenetv2", "shufflenet_v2_x1_0", 1024, "adadelta", 100.0,
                   27.130000000000003, 106.88881213499654)
    # line 100: cifar100,shufflenetv2,8192,adadelta,300,11.085,196.52554410981296
    assert one(c, "SELECT batch_size, power_limit_w, time_per_epoch_s, avg_power_w FROM zeus_power_summary "
                  "WHERE line = 100") == (8192, 300.0, 11.085, 196.52554410981296)
    # line 454 (last): sentiment140,bert_base_uncased,8,adamw,300,6640.177555620001,181.33023291102683
    assert one(c, "SELECT dataset, model, time_per_epoch_s, avg_power_w FROM zeus_power_summary WHERE line = 454") == (
        "sentiment140", "bert_base", 6640.177555620001, 181.33023291102683)
    # the training view: energy = time x power; ImageNet throughput from its epoch size; zoo MACs
    row = one(c, "SELECT energy_per_epoch_j, macs_per_sample, params, throughput_sps, samples_per_epoch, work_unit "
                 "FROM training_data WHERE source_id = (SELECT file_sha256 || ':' || line FROM zeus_power_summary "
                 "WHERE dataset = 'imagenet' AND batch_size = 128 AND power_limit_w = 200)")
    t, p = one(c, "SELECT time_per_epoch_s, avg_power_w FROM zeus_power_summary WHERE dataset = 'imagenet' "
                  "AND batch_size = 128 AND power_limit_w = 200")
    assert row[0] == pytest.approx(t * p)
    assert row[1:3] == (4089184256.0, 25557032.0)
    assert row[3] == pytest.approx(1281167 / t)
    assert row[4:] == (1281167.0, "epoch")
    # networks outside the zoo keep NULL MACs; the view still has their rows
    assert one(c, "SELECT count(*), count(macs_per_sample) FROM training_data WHERE model = 'ncf'") == (117, 0)
    c.close()


def test_summary_power_v100_and_shufflenet_macs_scaled_to_cifar_input(con, zeus_dir):
    results = ingest_paths(con, [zeus_dir / "summary_power_v100.csv"])
    assert [r.outcome for r in results] == ["loaded"]
    assert one(con, "SELECT count(*) FROM zeus_power_summary WHERE gpu = 'V100'") == (476,)
    assert one(con, "SELECT optimizer, time_per_epoch_s, avg_power_w FROM zeus_power_summary WHERE line = 2") == (
        "adadelta", 11.276666666666666, 86.86460850784009)
    assert one(con, "SELECT batch_size, power_limit_w, time_per_epoch_s FROM zeus_power_summary WHERE line = 477") == (
        8, 250.0, 7128.479093700001)
    macs, source = one(con, "SELECT macs_per_sample, macs_source FROM zeus_workload_complexity "
                            "WHERE dataset = 'cifar100'")
    zoo = one(con, "SELECT macs_per_sample FROM model_complexity WHERE model = 'shufflenet_v2_x1_0' "
                   "AND input_desc = '3x224x224'")[0]
    assert macs == pytest.approx(zoo * 32 * 32 / (224 * 224))
    assert source == "scaled from 3x224x224 to 3x32x32"


def test_gpu_option_overrides_and_is_needed_without_the_published_name(con, zeus_dir, tmp_path, runner, db_path):
    renamed = tmp_path / "sweep.csv"
    shutil.copy(zeus_dir / "summary_power_a40.csv", renamed)
    before = counts(con)
    results = ingest_paths(con, [renamed])
    assert results[0].outcome == "failed"
    assert "does not say which GPU" in results[0].message and "--gpu" in results[0].message
    assert counts(con) == before
    con.close()
    result = invoke(runner, "ingest", str(renamed), "--gpu", "a40", "--db", str(db_path))
    assert result.exit_code == 0, result.output
    assert "GPU A40 from --gpu" in result.output


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


HEADER = "dataset,network,batch_size,optimizer,power_limit,time_per_epoch,average_power\n"


def test_synthetic_summary_columns_in_another_order(con, tmp_path):
    path = write(tmp_path / "summary_power_h100.csv",
                 "network,dataset,power_limit,batch_size,optimizer,average_power,time_per_epoch\n"
                 "resnet50,imagenet,700,256,SGD,612.5,1800\n")
    assert ingest_paths(con, [path])[0].outcome == "loaded"
    assert one(con, "SELECT gpu, model, batch_size, optimizer, power_limit_w, time_per_epoch_s, avg_power_w "
                    "FROM zeus_power_summary") == ("H100", "resnet50", 256, "sgd", 700.0, 1800.0, 612.5)


@pytest.mark.parametrize("tail, cut", [
    ("imagenet,resnet50,256,adadelta,225,98", True),
    ("imagenet,resnet50,256,adadelta,225,980,181", False),  # complete without its newline
])
def test_summary_power_cut_last_line_loads_the_rest_and_warns(con, tmp_path, tail, cut):
    body = "imagenet,resnet50,256,adadelta,200,1000.5,180\n" + tail
    [result] = ingest_paths(con, [write(tmp_path / "summary_power_a40.csv", HEADER + body)])
    rows = one(con, "SELECT count(*) FROM zeus_power_summary")[0]
    if cut:
        assert result.outcome == "loaded-with-warnings", result.describe()
        assert result.message.endswith("line 3 is cut off (the recording stopped mid-line?): skipped")
        assert rows == 1
    else:
        assert result.outcome == "loaded", result.describe()
        assert rows == 2


@pytest.mark.parametrize("body, message, line", [
    ("", "no data rows after the header", 1),
    ("imagenet,resnet50,256,adadelta,200,1000.5,180,9\n", "expected 7 fields, found 8", 2),
    ("imagenet,resnet50,256,adadelta,200,fast,180\n", "time_per_epoch 'fast' is not a number", 2),
    ("imagenet,resnet50,256,adadelta,200,1000,180\nimagenet,resnet50,256,adadelta,-5,1000,180\n", "power_limit must be positive", 3),
    ("imagenet,resnet50,25.5,adadelta,200,1000,180\n", "batch_size '25.5' is not a whole number", 2),
    ("imagenet,resnet50,256,adadelta,200,1000,180\nimagenet,resnet50,256,adadelta,200,990,181\n", "appears twice", 3),
    ("imagenet,,256,adadelta,200,1000,180\n", "network is empty", 2),
])
def test_bad_summary_power_fails_with_the_line_and_changes_nothing(con, tmp_path, zeus_body_ok, body, message, line):
    before = counts(con)
    results = ingest_paths(con, [write(tmp_path / "summary_power_a40.csv", HEADER + body)])
    assert results[0].outcome == "failed", results[0].describe()
    assert message in results[0].message
    assert results[0].line == line
    assert counts(con) == before


@pytest.fixture
def zeus_body_ok(con, tmp_path):
    """A good file loaded first: a bad one must leave it in place."""
    folder = tmp_path / "good"
    folder.mkdir()
    path = write(folder / "summary_power_v100.csv", HEADER + "squad,bert_base_uncased,32,adamw,250,3000,220\n")
    assert ingest_paths(con, [path])[0].outcome == "loaded"


def test_sniffers_do_not_claim_other_csvs(tmp_path):
    from dlwh.ingest.formats import detect

    assert detect("timestamp, name, power.draw [W]\n", tmp_path / "summary_power_a40.csv").NAME != "zeus-summary-power"
    assert detect("dataset,network,batch_size\n1,2,3\n", tmp_path / "x.csv") is None
    assert detect(HEADER, tmp_path / "x.csv").NAME == "zeus-summary-power"


# -- summary_train ------------------------------------------------------------------------------

def test_summary_train_values_and_nan_as_not_reached(con, zeus_dir):
    results = ingest_paths(con, [zeus_dir / "summary_train.csv"])
    assert results[0].outcome == "loaded" and results[0].rows == 3759
    # line 2: cifar100,shufflenetv2,1024,adadelta,1e-1,1,0.05,1
    assert one(con, "SELECT dataset, model, batch_size, optimizer, learning_rate, seed_run, target_metric, target_epoch "
                    "FROM zeus_train_summary WHERE line = 2") == (
        "cifar100", "shufflenet_v2_x1_0", 1024, "adadelta", 0.1, 1, 0.05, 1)
    # line 14: ...,0.65,nan -> never reached
    assert one(con, "SELECT target_metric, target_epoch FROM zeus_train_summary WHERE line = 14") == (0.65, None)
    # line 3760: sentiment140,bert_base_uncased,8,adamw,1e-07,9,0.852,6
    assert one(con, "SELECT learning_rate, seed_run, target_metric, target_epoch FROM zeus_train_summary "
                    "WHERE line = 3760") == (1e-07, 9, 0.852, 6)


def test_summary_train_bad_epoch(con, tmp_path):
    path = write(tmp_path / "summary_train.csv",
                 "dataset,network,batch_size,optimizer,learning_rate,run,target_metric,target_epoch\n"
                 "squad,bert_base_uncased,32,adamw,3e-5,1,85.0,2.5\n")
    result = ingest_paths(con, [path])[0]
    assert result.outcome == "failed" and "target_epoch '2.5' is not a whole number" in result.message
    assert result.line == 2
    assert counts(con)["zeus_train_summary"] == 0


# -- profiles -------------------------------------------------------------------------------------

def test_profile_four_gpus(con, profile_dir):
    path = profile_dir / "A40+resnet50+gpu0,1,2,3.csv"
    results = ingest_paths(con, [path])
    assert results[0].outcome == "loaded" and results[0].rows == 36
    assert "pass --start" in results[0].message
    # line 4: 13586431.024962232,__GlobalPowerLimitOptimizer_250,8.027751851826906,1061.59...,1071.112000003457,...
    rows = con.execute("SELECT gpu_index, energy_j, avg_power_w, elapsed_s, start_s, power_limit_w, gpu, model, n_gpus, "
                       "start_ts FROM zeus_profile_windows WHERE line = 4 ORDER BY gpu_index").fetchall()
    assert [r[1] for r in rows] == [1061.5929999947548, 1071.112000003457, 1087.7810000032187, 1058.113999992609]
    assert rows[1][2] == pytest.approx(1071.112000003457 / 8.027751851826906)
    assert rows[0][3:9] == (8.027751851826906, 13586431.024962232, 250.0, "A40", "resnet50", 4)
    assert rows[0][9] is None
    # training view: one row per window, power averaged per GPU, energy summed over the 4 GPUs
    e, p, n, unit = one(con, "SELECT energy_per_epoch_j, avg_power_w, n_gpus, work_unit FROM training_data "
                             "WHERE source = 'zeus-profile' AND power_limit_w = 250")
    assert e == pytest.approx(1061.5929999947548 + 1071.112000003457 + 1087.7810000032187 + 1058.113999992609)
    assert p == pytest.approx(e / 4 / 8.027751851826906)
    assert (n, unit) == (4, "window")


def test_profile_anchored_with_start(con, profile_dir):
    options = IngestOptions(start="2026-01-05T10:00:00Z")
    results = ingest_paths(con, [profile_dir / "A40+bert-base-uncased+gpu0.csv"], options)
    assert results[0].outcome == "loaded"
    rows = con.execute("SELECT line, start_ts FROM zeus_profile_windows ORDER BY line").fetchall()
    # line 2 starts at 13588420.801224232, line 3 at 13588434.263403984 (13.46218 s later)
    assert str(rows[0][1]) == "2026-01-05 10:00:00"
    assert str(rows[1][1]) == "2026-01-05 10:00:13.462180"
    assert one(con, "SELECT model FROM zeus_profile_windows LIMIT 1") == ("bert_base",)


def test_profile_bad_window_name(con, tmp_path):
    path = write(tmp_path / "A40+resnet50+gpu0.csv",
                 "start_time,window_name,elapsed_time,gpu0_energy\n1.0,__GlobalPowerLimitOptimizer_300,2.0,500\n"
                 "4.0,__GlobalPowerLimitOptimizer,2.0,500\n")
    before = counts(con)
    result = ingest_paths(con, [path])[0]
    assert result.outcome == "failed" and "does not end in a power limit" in result.message and result.line == 3
    assert counts(con) == before


def test_profile_reingest_replaces_rows(con, tmp_path):
    path = write(tmp_path / "A40+resnet18+gpu0.csv",
                 "start_time,window_name,elapsed_time,gpu0_energy\n1.0,__GlobalPowerLimitOptimizer_300,2.0,500\n")
    assert ingest_paths(con, [path])[0].outcome == "loaded"
    path.write_text("start_time,window_name,elapsed_time,gpu0_energy\n1.0,__GlobalPowerLimitOptimizer_300,2.0,500\n"
                    "4.0,__GlobalPowerLimitOptimizer_250,2.5,450\n")
    assert ingest_paths(con, [path])[0].outcome == "loaded"
    assert one(con, "SELECT count(*), sum(energy_j) FROM zeus_profile_windows") == (2, 950.0)


def test_other_gpu_option_reloads_the_same_file_and_no_option_keeps_it(con, zeus_dir, tmp_path):
    renamed = tmp_path / "sweep.csv"
    shutil.copy(zeus_dir / "summary_power_a40.csv", renamed)
    first = ingest_paths(con, [renamed], IngestOptions(format_options={"gpu": "A40"}))[0]
    assert first.outcome == "loaded"
    n = con.execute("SELECT count(*) FROM zeus_power_summary").fetchone()[0]
    again = ingest_paths(con, [renamed], IngestOptions(format_options={"gpu": "A40"}))[0]
    assert again.outcome == "unchanged"
    other = ingest_paths(con, [renamed], IngestOptions(format_options={"gpu": "V100"}))[0]
    assert other.outcome == "loaded" and "reloaded with --gpu V100 (was --gpu A40)" in other.message
    assert con.execute("SELECT gpu, count(*) FROM zeus_power_summary GROUP BY gpu").fetchall() == [("V100", n)]
    plain = ingest_paths(con, [renamed])[0]  # a folder ingested again without options: left as it is
    assert plain.outcome == "unchanged"
    assert con.execute("SELECT DISTINCT gpu FROM zeus_power_summary").fetchall() == [("V100",)]


@pytest.mark.parametrize("chop, cut", [(20, True), (0, False)])
def test_perseus_file_cut_mid_line_loads_the_rest_and_warns(con, tmp_path, shared_dir, chop, cut):
    source = shared_dir / "datasets" / "perseus_sosp24" / "A100__zeus_global.csv"
    if not source.is_file():
        pytest.skip(f"{source} is absent")
    lines = source.read_text().rstrip("\n").split("\n")
    text = "\n".join(lines)
    path = tmp_path / "A100__zeus_global.csv"
    path.write_text(text[:-chop] if chop else text)   # no final newline either way
    [result] = ingest_paths(con, [path])
    rows = one(con, "SELECT count(*) FROM perseus_iterations")[0]
    if cut:
        assert result.outcome == "loaded-with-warnings", result.describe()
        assert result.message.endswith(f"line {len(lines)} is cut off (the recording stopped mid-line?): skipped")
        assert rows == len(lines) - 2
    else:
        assert result.outcome == "loaded", result.describe()
        assert rows == len(lines) - 1
