"""Model complexity in the warehouse: seeding from the shipped table, profiles, imports, run_complexity."""

from __future__ import annotations

import json

import pytest

from dlwh.errors import DlwhError
from dlwh.models import import_complexity_csv, read_zoo_table, seed_zoo_complexity, store_profile
from dlwh.models.complexity import LayerCount, ModelProfile
from dlwh.warehouse.db import open_warehouse


def _rows(con, sql, params=None):
    return con.execute(sql, params or []).fetchall()


def _fake_profile(**overrides) -> ModelProfile:
    """A ModelProfile as profile() returns it (built by hand: these tests need no torch)."""
    values = dict(
        model="resnet50", kind="vision", input_desc="3x224x224", batch_size=8,
        macs_total=8 * 4_089_184_256, macs_per_sample=4_089_184_256, params=25_557_032,
        fvcore_flops_per_sample=4_111_512_576,
        by_operator={"conv": 4_087_136_256, "batch_norm": 22_227_968, "linear": 2_048_000},
        layers=[LayerCount("conv1", "Conv2d", 118_013_952, 9408), LayerCount("fc", "Linear", 2_048_000, 2_049_000)],
        unsupported_ops={"aten::add": 16}, fvcore_version="0.1.5",
    )
    values.update(overrides)
    return ModelProfile(**values)


def test_open_warehouse_seeds_the_zoo(con):
    rows = _rows(con, "SELECT model, input_desc, batch_size, macs_per_sample, macs_total, params, source, "
                      "profiled_at FROM model_complexity ORDER BY model")
    shipped = {r.model: r for r in read_zoo_table()}
    assert len(rows) == len(shipped) == 24
    for model, input_desc, batch, macs, total, params, source, profiled_at in rows:
        assert (input_desc, batch, macs, total, params, source, profiled_at) == (
            shipped[model].input_desc, 1, shipped[model].macs_per_sample, shipped[model].macs_per_sample,
            shipped[model].params, "zoo", None)
    unsupported = _rows(con, "SELECT unsupported_ops FROM model_complexity WHERE model = 'resnet50'")[0][0]
    assert json.loads(unsupported) == {"aten::add": 16, "aten::max_pool2d": 1}
    assert _rows(con, "SELECT kind, default_input FROM zoo_models WHERE model = 'bert_base'") == [("text", "seq128")]
    assert _rows(con, "SELECT model FROM model_aliases WHERE alias_key = 'bertbaseuncased'") == [("bert_base",)]


def test_seeding_is_idempotent_and_refreshes_only_zoo_rows(con):
    assert seed_zoo_complexity(con) == 0
    con.execute("UPDATE model_complexity SET params = 1 WHERE model = 'lenet5'")
    con.execute("DELETE FROM model_complexity WHERE model = 'alexnet'")
    con.execute("UPDATE model_complexity SET params = 2, source = 'import' WHERE model = 'vgg11'")
    assert seed_zoo_complexity(con) == 2
    assert _rows(con, "SELECT params FROM model_complexity WHERE model = 'lenet5'") == [(61_706,)]
    assert _rows(con, "SELECT source FROM model_complexity WHERE model = 'alexnet'") == [("zoo",)]
    assert _rows(con, "SELECT params, source FROM model_complexity WHERE model = 'vgg11'") == [(2, "import")]
    assert seed_zoo_complexity(con) == 0


def test_reopening_changes_nothing_and_read_only_works(db_path):
    con = open_warehouse(db_path)
    before = _rows(con, "SELECT * FROM model_complexity ORDER BY ALL")
    con.close()
    con = open_warehouse(db_path)
    assert _rows(con, "SELECT * FROM model_complexity ORDER BY ALL") == before
    con.close()
    ro = open_warehouse(db_path, read_only=True)
    assert seed_zoo_complexity(ro) == 0  # nothing to write, so fine on a read-only connection
    assert _rows(ro, "SELECT count(*) FROM model_complexity") == [(24,)]
    ro.close()


def test_migrating_seeds_too_and_read_only_open_refuses_to_migrate(db_path):
    import duckdb

    from dlwh.warehouse.db import _migrations

    con = duckdb.connect(str(db_path))  # an old warehouse: schema version 2, no model tables
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)")
    for number, name, sql in _migrations():
        if number <= 2:
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [number, name])
    con.close()
    from dlwh.errors import WarehouseError

    with pytest.raises(WarehouseError, match="older than this dlwh's"):  # read-only never migrates
        open_warehouse(db_path, read_only=True)
    open_warehouse(db_path).close()  # migrating (dlwh migrate, any ingest) seeds the zoo too
    ro = open_warehouse(db_path, read_only=True)
    assert _rows(ro, "SELECT count(*) FROM model_complexity WHERE source = 'zoo'") == [(24,)]
    ro.close()


def test_store_profile_replaces_breakdowns(con):
    store_profile(con, _fake_profile())
    row = _rows(con, "SELECT macs_per_sample, macs_total, params, source, fvcore_version, unsupported_ops, "
                     "profiled_at IS NOT NULL FROM model_complexity WHERE model = 'resnet50' AND batch_size = 8")
    assert row[0][:5] == (4_089_184_256, 8 * 4_089_184_256, 25_557_032, "fvcore", "0.1.5")
    assert json.loads(row[0][5]) == {"aten::add": 16} and row[0][6]
    # the shipped batch-1 row is still there beside it
    assert _rows(con, "SELECT source FROM model_complexity WHERE model = 'resnet50' AND batch_size = 1") == [("zoo",)]
    assert _rows(con, "SELECT operator, macs, is_mac FROM model_ops ORDER BY operator") == [
        ("batch_norm", 22_227_968, False), ("conv", 4_087_136_256, True), ("linear", 2_048_000, True)]
    store_profile(con, _fake_profile(batch_size=1, macs_total=4_089_184_256, by_operator={"conv": 5},
                                     layers=[LayerCount("conv1", "Conv2d", 5, 9408)]))
    assert _rows(con, "SELECT operator, macs FROM model_ops") == [("conv", 5)]
    assert _rows(con, "SELECT layer, layer_type, macs, params FROM model_layers") == [("conv1", "Conv2d", 5, 9408)]
    assert _rows(con, "SELECT source FROM model_complexity WHERE model = 'resnet50' AND batch_size = 1") == [("fvcore",)]
    assert seed_zoo_complexity(con) == 0  # a profile is never overwritten by the shipped table


def _run(con, run_id, **tags):
    con.execute("INSERT INTO runs (run_id, source) VALUES (?, 'file')", [run_id])
    for key, value in tags.items():
        con.execute("INSERT INTO run_tags (run_id, key, value) VALUES (?, ?, ?)", [run_id, key, value])


def test_run_complexity_maps_aliases_and_batch_sizes(con):
    _run(con, "zeus-resnet", model="resnet50", batch_size="256")
    _run(con, "zeus-shufflenet", model="shufflenetv2", batch_size="128")
    _run(con, "zeus-bert", model="bert-base-uncased", batch_size="32")
    _run(con, "hf-bert", model="bert_base")
    _run(con, "unknown", model="deepspeech2", batch_size="192")
    _run(con, "untagged")
    rows = _rows(con, "SELECT run_id, model, batch_size, macs_per_sample, params, macs_per_batch, input_desc, "
                      "complexity_source FROM run_complexity ORDER BY run_id")
    zoo = {r.model: r for r in read_zoo_table()}
    assert rows == [
        ("hf-bert", "bert_base", None, zoo["bert_base"].macs_per_sample, 109_482_240, None, "seq128", "zoo"),
        ("zeus-bert", "bert_base", 32, zoo["bert_base"].macs_per_sample, 109_482_240,
         32 * zoo["bert_base"].macs_per_sample, "seq128", "zoo"),
        ("zeus-resnet", "resnet50", 256, zoo["resnet50"].macs_per_sample, 25_557_032,
         256 * zoo["resnet50"].macs_per_sample, "3x224x224", "zoo"),
        ("zeus-shufflenet", "shufflenet_v2_x1_0", 128, zoo["shufflenet_v2_x1_0"].macs_per_sample, 2_278_604,
         128 * zoo["shufflenet_v2_x1_0"].macs_per_sample, "3x224x224", "zoo"),
    ]


def test_run_complexity_prefers_the_runs_input_then_the_default(con, tmp_path):
    f = tmp_path / "counts.csv"
    f.write_text("name,input,macs,params\nshufflenetv2,3x32x32,12000000,2278604\ndeepspeech2,seq100,5G,26M\n")
    import_complexity_csv(con, f)
    _run(con, "cifar", model="ShuffleNet-v2", input="3x32x32")
    _run(con, "imagenet", model="shufflenet_v2_x1_0")
    _run(con, "other-input", model="shufflenet_v2_x1_0", input="3x64x64")  # not counted: falls back
    _run(con, "speech", model="DeepSpeech2", batch_size="4")  # imported model, any input
    rows = dict((r[0], r[1:]) for r in _rows(
        con, "SELECT run_id, macs_per_sample, input_desc, complexity_source FROM run_complexity"))
    shipped = next(r for r in read_zoo_table() if r.model == "shufflenet_v2_x1_0").macs_per_sample
    assert rows == {
        "cifar": (12_000_000, "3x32x32", "import"),
        "imagenet": (shipped, "3x224x224", "zoo"),
        "other-input": (shipped, "3x224x224", "zoo"),
        "speech": (5_000_000_000, "seq100", "import"),
    }


def test_import_is_idempotent_and_normalises(con, tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("Name, Input ,MACS,params,notes\nMyNet,3 x 32 x 32,1.5G,\"2,500,000\",extra column\n"
                 "ResNet-50,\"(3, 64, 64)\",334e6,25557032,\nbert-base-uncased,seq=256,22e9,109482240,\n")
    first = import_complexity_csv(con, f)
    assert (first.rows, first.new, first.updated, first.unchanged) == (3, 3, 0, 0)
    again = import_complexity_csv(con, f)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)
    rows = _rows(con, "SELECT model, input_desc, batch_size, macs_per_sample, macs_total, params FROM "
                      "model_complexity WHERE source = 'import' ORDER BY model")
    assert rows == [
        ("bert_base", "seq256", 1, 22_000_000_000, 22_000_000_000, 109_482_240),
        ("mynet", "3x32x32", 1, 1_500_000_000, 1_500_000_000, 2_500_000),
        ("resnet50", "3x64x64", 1, 334_000_000, 334_000_000, 25_557_032),
    ]
    f.write_text("name,input,macs,params\nmynet,3x32x32,1.6G,2.5M\nlenet5,1x32x32,416520,61706\n")
    changed = import_complexity_csv(con, f)
    assert (changed.new, changed.updated, changed.unchanged) == (0, 2, 0)  # lenet5 was the zoo's row
    assert _rows(con, "SELECT source FROM model_complexity WHERE model = 'lenet5'") == [("import",)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,input,macs\nx,1x2,3\n", "bad.csv lacks column params; expected columns name, input, macs, params"),
        ("model,shape\nx,1\n", "bad.csv lacks columns name, input, macs, params"),
        ("name,input,macs,params\nx,1x2,3,4\ny,1x2,abc,4\n", "bad.csv line 3: macs 'abc' is not a non-negative number"),
        ("name,input,macs,params\nx,1x2,3,-4\n", "bad.csv line 2: params '-4' is not a non-negative number"),
        ("name,input,macs,params\nx,1x2,3,\n", "bad.csv line 2: params '' is not a non-negative number"),
        ("name,input,macs,params\nx,224px,3,4\n", "bad.csv line 2: input '224px' is not a shape"),
        ("name,input,macs,params\nx,3x0x4,3,4\n", "bad.csv line 2: input '3x0x4' has a zero dimension"),
        ("name,input,macs,params\n,1x2,3,4\n", "bad.csv line 2: name is empty"),
        ("name,input,macs,params\nNet,1x2,3,4\nnet,1 x 2,5,6\n", "bad.csv line 3: net at input 1x2 is already on line 2"),
        ("name,input,macs,params\n", "bad.csv has a header but no rows"),
        ("", "bad.csv is empty"),
    ],
)
def test_import_errors_name_the_line_and_change_nothing(con, tmp_path, text, message):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    before = _rows(con, "SELECT * FROM model_complexity ORDER BY ALL")
    with pytest.raises(DlwhError) as err:
        import_complexity_csv(con, f)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    assert _rows(con, "SELECT * FROM model_complexity ORDER BY ALL") == before


def test_import_missing_file(con, tmp_path):
    with pytest.raises(DlwhError, match="no such file"):
        import_complexity_csv(con, tmp_path / "nope.csv")
