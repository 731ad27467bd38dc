"""`dlwh models list | profile | import` on a real temp warehouse."""

from __future__ import annotations

import re

import duckdb
import pytest

from tests.conftest import invoke


def _query(db_path, sql):
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_list_shows_the_zoo_from_the_shipped_table(runner):
    result = invoke(runner, "models", "list")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "kind", "input", "params", "MACs/sample"]
    row = next(line for line in lines if line.startswith("resnet50 "))
    assert row.split() == ["resnet50", "vision", "3x224x224", "25,557,032", "4.09", "G"]
    bert = next(line for line in lines if line.startswith("bert_base "))
    assert bert.split()[:4] == ["bert_base", "text", "seq128", "109,482,240"]
    assert sum(1 for line in lines if line.startswith("googlenet_mod")) == 9


@pytest.mark.slow
def test_profile_resnet50_prints_and_stores(runner, db_path):
    pytest.importorskip("fvcore")
    result = invoke(runner, "models", "profile", "resnet50", "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "25,557,032 parameters" in out
    macs = float(re.search(r"([\d.]+) G MACs per sample", out).group(1))
    assert abs(macs - 4.09) < 0.02
    assert re.search(r"conv\s+4\.09 G\s+99\.9% of MACs", out)
    assert "batch_norm" in out and "not a MAC operator" in out
    assert "Top 10 layers by MACs" in out and re.search(r"conv1\s+Conv2d\s+118 M\s+9,408", out)
    assert "Unsupported operators (fvcore counted nothing for them): aten::add x16, aten::max_pool2d x1" in out
    assert result.stderr == ""
    assert _query(db_path, "SELECT source, batch_size, params FROM model_complexity WHERE model = 'resnet50'") == [
        ("fvcore", 1, 25_557_032)]
    assert _query(db_path, "SELECT count(*) FROM model_layers WHERE model = 'resnet50'")[0][0] > 50
    assert ("conv", True) in _query(db_path, "SELECT operator, is_mac FROM model_ops WHERE model = 'resnet50'")


@pytest.mark.slow
def test_profile_options(runner, db_path):
    pytest.importorskip("fvcore")
    result = invoke(runner, "models", "profile", "ShuffleNetV2", "--batch-size", "4", "--input", "3x32x32",
                    "--top", "2", "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    assert "shufflenet_v2_x1_0 at input 3x32x32, batch size 4" in result.stdout
    assert "Top 2 layers" in result.stdout and "2,278,604 parameters" in result.stdout
    per_sample, total = _query(db_path, "SELECT macs_per_sample, macs_total FROM model_complexity "
                                        "WHERE model = 'shufflenet_v2_x1_0' AND input_desc = '3x32x32' AND batch_size = 4")[0]
    assert total == 4 * per_sample
    bert = invoke(runner, "models", "profile", "bert-base-uncased", "--seq-len", "16", "--top", "0", "--db", str(db_path))
    assert bert.exit_code == 0, bert.stderr
    assert "bert_base at input seq16" in bert.stdout and "Top" not in bert.stdout
    assert "aten::softmax x12" in bert.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["resnet51"], 2, "error: unknown model 'resnet51'; did you mean resnet50"),
        (["resnet50", "--seq-len", "64"], 2, "error: an image model takes an input shape"),
        (["bert_base", "--input", "3x224x224"], 2, "error: a text model takes a sequence length"),
        (["resnet50", "--input", "huge"], 2, "error: cannot read input 'huge'"),
        (["resnet50", "--batch-size", "0"], 2, "error: batch size must be at least 1"),
        (["lenet5", "--input", "3x32x32"], 1, "error: lenet5 cannot run on input 3x32x32:"),
    ],
)
def test_profile_errors_are_one_line(runner, db_path, args, code, message):
    if "lenet5" in args:
        pytest.importorskip("fvcore")
    result = invoke(runner, "models", "profile", *args, "--db", str(db_path))
    assert result.exit_code == code
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    if code == 2:
        assert not db_path.exists()  # refused before the warehouse is touched


def test_import_then_again(runner, db_path, tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("name,input,macs,params\nMyNet,3x32x32,1.5G,2500000\nresnet-50,3x64x64,334000000,25557032\n")
    first = invoke(runner, "models", "import", str(f), "--db", str(db_path))
    assert first.exit_code == 0, first.stderr
    assert "imported 2 rows" in first.stdout and "(2 new, 0 updated, 0 unchanged)" in first.stdout
    again = invoke(runner, "models", "import", str(f), "--db", str(db_path))
    assert again.exit_code == 0 and "(0 new, 0 updated, 2 unchanged)" in again.stdout
    assert _query(db_path, "SELECT model, macs_per_sample FROM model_complexity WHERE source = 'import' ORDER BY 1") == [
        ("mynet", 1_500_000_000), ("resnet50", 334_000_000)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,input,macs\nx,1x2,3\n", "error: in.csv lacks column params; expected columns name, input, macs, params"),
        ("name,input,macs,params\nx,1x2,lots,4\n", "error: in.csv line 2: macs 'lots' is not a non-negative number"),
    ],
)
def test_import_errors(runner, db_path, tmp_path, text, message):
    f = tmp_path / "in.csv"
    f.write_text(text)
    result = invoke(runner, "models", "import", str(f), "--db", str(db_path))
    assert result.exit_code == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert not db_path.exists()  # validated before the warehouse is touched


def test_import_missing_file(runner, db_path, tmp_path):
    result = invoke(runner, "models", "import", str(tmp_path / "nope.csv"), "--db", str(db_path))
    assert result.exit_code != 0
    assert result.stderr.startswith("error: no such file:") and "Traceback" not in result.stderr
