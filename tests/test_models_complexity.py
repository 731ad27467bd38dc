"""MAC counting with fvcore: torchvision's published GFLOPS, breakdowns, the shipped table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from dlwh.errors import DlwhError, UsageError
from tests.conftest import ROOT

# torchvision's published GFLOPS (docs, 2 decimals) and the `_ops` value in its source (3 digits).
# Both count convolution and linear MACs only, as dlwh's macs_per_sample does.
TORCHVISION_GFLOPS = {
    "resnet18": (1.81, 1.814),
    "resnet34": (3.66, 3.664),
    "resnet50": (4.09, 4.089),
    "alexnet": (0.71, 0.714),
    "vgg11": (7.61, 7.609),
    "vgg16": (15.47, 15.47),
    "mobilenet_v2": (0.30, 0.301),
    "googlenet": (1.50, 1.498),
    "shufflenet_v2_x1_0": (0.14, 0.145),
    "efficientnet_b0": (0.39, 0.386),
    "densenet121": (2.83, 2.834),
    "convnext_tiny": (4.46, 4.456),
    "vit_b_16": (17.56, 17.564),
}
CHEAP = ["lenet5", "shufflenet_v2_x1_0", "mobilenet_v2", "googlenet_mod9", "resnet18"]


@pytest.fixture(scope="module")
def profiled():
    """profile(name) at the default input, batch 1, computed once per model for this module."""
    pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    from dlwh.models import profile

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = profile(name)
        return cache[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TORCHVISION_GFLOPS))
def test_macs_match_torchvision_published_gflops(profiled, name):
    published, exact = TORCHVISION_GFLOPS[name]
    gmacs = profiled(name).macs_per_sample / 1e9
    assert abs(gmacs / published - 1) < 0.02 or round(gmacs, 2) == published, gmacs
    assert abs(gmacs / exact - 1) < 0.02, gmacs


def test_profile_breakdowns_add_up(profiled):
    from dlwh.models import MAC_OPERATORS

    p = profiled("resnet50")
    assert p.params == 25_557_032 and p.input_desc == "3x224x224" and p.batch_size == 1
    assert p.macs_total == p.macs_per_sample
    assert sum(v for op, v in p.by_operator.items() if op in MAC_OPERATORS) == p.macs_per_sample
    assert sum(p.by_operator.values()) == p.fvcore_flops_per_sample
    assert p.by_operator["batch_norm"] > 0 and p.fvcore_flops_per_sample > p.macs_per_sample
    assert sum(r.macs for r in p.layers) == p.macs_per_sample
    assert sum(r.params for r in p.layers) == p.params
    top = p.top_layers(3)
    assert top[0].layer == "conv1" and top[0].layer_type == "Conv2d" and top[0].params == 64 * 3 * 7 * 7
    # fvcore has no handler for these: they are reported, not hidden
    assert p.unsupported_ops == {"aten::add": 16, "aten::max_pool2d": 1}


@pytest.mark.slow
def test_bert_counts_attention_matmuls(profiled):
    p = profiled("bert_base")
    assert p.input_desc == "seq128" and p.params == 109_482_240
    # 12 layers x (4 projections + 2 feed-forward) linear MACs per token, pooler once
    linear = 128 * 12 * (4 * 768 * 768 + 2 * 768 * 3072) + 768 * 768
    attention = 12 * 2 * 128 * 128 * 768
    assert p.by_operator == {"linear": linear, "matmul": attention, "layer_norm": p.by_operator["layer_norm"]}
    assert p.macs_per_sample == linear + attention
    assert sum(r.macs for r in p.layers) == p.macs_per_sample
    assert {"aten::softmax", "aten::gelu", "aten::embedding"} <= set(p.unsupported_ops)


@pytest.mark.slow
def test_batch_size_scales_the_total_not_the_per_sample_count(profiled):
    from dlwh.models import profile

    p = profile("shufflenet_v2_x1_0", batch_size=3)
    assert p.batch_size == 3
    assert p.macs_per_sample == profiled("shufflenet_v2_x1_0").macs_per_sample
    assert p.macs_total == 3 * p.macs_per_sample


@pytest.mark.slow
def test_other_inputs(profiled):
    from dlwh.models import profile

    small = profile("resnet18", input_shape="3x112x112")
    assert small.input_desc == "3x112x112"
    # a quarter of the pixels: about a quarter of the MACs (the classifier and odd sizes add a little)
    assert 0.25 < small.macs_per_sample / profiled("resnet18").macs_per_sample < 0.28
    assert profile("lenet5", input_shape=(1, 28, 28)).macs_per_sample == profiled("lenet5").macs_per_sample
    short = profile("bert", seq_len=32)
    assert short.model == "bert_base" and short.input_desc == "seq32"


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("resnet18", {"seq_len": 64}, "takes an input shape"),
        ("bert_base", {"input_shape": "3x224x224"}, "takes a sequence length"),
        ("bert_base", {"seq_len": 1024}, "at most 512 tokens"),
        ("resnet18", {"batch_size": 0}, "at least 1"),
        ("resnet18", {"input_shape": "banana"}, "cannot read input"),
        ("resnet18", {"input_shape": "3x224x224", "seq_len": 5}, "not both"),
    ],
)
def test_profile_usage_errors(name, kwargs, message):
    from dlwh.models import profile

    with pytest.raises(UsageError, match=message):
        profile(name, **kwargs)


def test_profile_reports_a_shape_mismatch_in_one_line():
    pytest.importorskip("fvcore")
    from dlwh.models import profile

    with pytest.raises(DlwhError) as err:
        profile("lenet5", input_shape="3x32x32")
    assert str(err.value).startswith("lenet5 cannot run on input 3x32x32:") and "\n" not in str(err.value)


def test_profile_module_counts_any_architecture():
    torch = pytest.importorskip("torch")
    pytest.importorskip("fvcore")
    from dlwh.models import profile_module

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 100), torch.nn.ReLU(), torch.nn.Linear(100, 10))
    p = profile_module(net, (torch.zeros(4, 1, 28, 28),), model_name="mlp", input_desc="1x28x28")
    assert p.macs_per_sample == 784 * 100 + 100 * 10 and p.macs_total == 4 * p.macs_per_sample
    assert p.params == 784 * 100 + 100 + 100 * 10 + 10
    assert [r.layer for r in p.layers] == ["1", "3"]


def test_shipped_table_covers_the_zoo():
    from dlwh.models import ZOO, read_zoo_table, zoo_complexity

    rows = read_zoo_table()
    assert [r.model for r in rows] == list(ZOO)
    for r in rows:
        assert r.input_desc == ZOO[r.model].default_input_desc
        assert r.source == "fvcore" and r.fvcore_version and r.macs_per_sample > 0 and r.params > 0
    assert zoo_complexity("ResNet-50").params == 25_557_032
    assert zoo_complexity("bert-base-uncased").input_desc == "seq128"
    assert zoo_complexity("deepspeech2") is None


@pytest.mark.parametrize("name", CHEAP)
def test_shipped_table_equals_a_fresh_count(profiled, name):
    from dlwh.models import zoo_complexity

    row, fresh = zoo_complexity(name), profiled(name)
    assert (row.macs_per_sample, row.params, row.fvcore_flops_per_sample) == (
        fresh.macs_per_sample, fresh.params, fresh.fvcore_flops_per_sample)
    assert row.unsupported_ops == fresh.unsupported_ops


@pytest.mark.slow
def test_whole_shipped_table_equals_a_fresh_count(profiled):
    from dlwh.models import ZOO, zoo_complexity

    for name in ZOO:
        row, fresh = zoo_complexity(name), profiled(name)
        assert (row.macs_per_sample, row.params, row.fvcore_flops_per_sample) == (
            fresh.macs_per_sample, fresh.params, fresh.fvcore_flops_per_sample), name


@pytest.mark.slow
def test_precompute_check_and_write(tmp_path, capsys):
    pytest.importorskip("fvcore")
    from dlwh.models.precompute import main
    from dlwh.models.table import _parse

    assert main(["--check", "lenet5", "googlenet_mod9"]) == 0
    assert "2 models checked, 0 differences" in capsys.readouterr().out
    out = tmp_path / "zoo.csv"
    assert main(["--out", str(out), "lenet5"]) == 0
    (row,) = _parse(out.read_text())
    assert row.model == "lenet5" and row.macs_per_sample == 416_520 and row.params == 61_706
    assert json.loads(out.read_text().splitlines()[1].split(",", 7)[7].strip('"').replace('""', '"'))


def test_format_macs():
    from dlwh.models import format_macs

    assert format_macs(4_089_184_256) == "4.09 G"
    assert format_macs(15_470_264_320) == "15.5 G"
    assert format_macs(300_774_272) == "301 M"
    assert format_macs(416_520) == "417 K"
    assert format_macs(12) == "12 "


@pytest.mark.slow
def test_reading_the_table_seeding_and_importing_need_no_torch(tmp_path):
    """Ingest and analysis run where torch and fvcore are not installed."""
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text("name,input,macs,params\nMyNet,3x32x32,1.5G,2500000\n")
    script = textwrap.dedent(
        f"""
        import sys
        for blocked in ("torch", "fvcore"):
            sys.modules[blocked] = None  # any import of it raises ImportError
        from typer.testing import CliRunner
        from dlwh.cli import app
        from dlwh.models import read_zoo_table, normalise_name, import_complexity_csv, profile
        from dlwh.warehouse.db import open_warehouse
        from dlwh.errors import DlwhError
        assert len(read_zoo_table()) == 24 and normalise_name("ResNet-50") == "resnet50"
        con = open_warehouse({str(tmp_path / "w.duckdb")!r})
        assert con.execute("SELECT count(*) FROM model_complexity WHERE source = 'zoo'").fetchall()[0][0] == 24
        assert import_complexity_csv(con, {str(csv_file)!r}).new == 1
        con.close()
        result = CliRunner().invoke(app, ["models", "list"])
        assert result.exit_code == 0 and "25,557,032" in result.output, result.output
        try:
            profile("resnet50")
        except DlwhError as err:
            assert "pip install 'dlwh[models]'" in str(err), err
        else:
            raise AssertionError("profile ran without torch")
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
