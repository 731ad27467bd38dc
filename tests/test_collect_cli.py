"""``dlwh collect``: exit codes, errors for people, run directories, signals, and the Python API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "collect" / "fakes"))
from harness import PYLIB, REPO, load_fake_pynvml  # noqa: E402

from dlwh.collect.manifest import KEYS  # noqa: E402
from dlwh.collect.runner import CollectOptions, collect, default_name  # noqa: E402
from dlwh.commands import collect as collect_cmd  # noqa: E402

PY = sys.executable


@pytest.fixture
def app():
    a = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @a.callback()
    def main() -> None:
        """dlwh (test frame)."""

    collect_cmd.register(a)
    return a


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(autouse=True)
def _nvml_fake(monkeypatch, tmp_path):
    """NVML from the fake (recorded H200 values); everything else as on this machine."""
    monkeypatch.setitem(sys.modules, "pynvml", load_fake_pynvml())
    monkeypatch.chdir(tmp_path)
    for var in ("DLWH_RUN_DIR", "DLWH_ANCHOR", "FAKE_NVML_INIT_ERROR"):
        monkeypatch.delenv(var, raising=False)


def manifest(d: Path) -> dict:
    return json.loads((d / "run.json").read_text())


def test_runs_command_and_exits_with_its_code(app, runner, tmp_path):
    r = runner.invoke(app, ["collect", "--out", "r1", "--source", "nvml", "--interval-ms", "20",
                            "--tag", "model=cnn", "--tag", "batch_size=64", "--", "sh", "-c", "exit 3"])
    assert r.exit_code == 3, r.output
    m = manifest(tmp_path / "r1")
    assert list(m) == list(KEYS)
    assert m["format"] == "dlwh-run" and m["format_version"] == 1
    assert m["command"] == ["sh", "-c", "exit 3"] and m["exit_code"] == 3
    assert m["end_utc"] > m["start_utc"] and m["monotonic_anchor"]["utc"] == m["start_utc"]
    assert m["tags"] == {"model": "cnn", "batch_size": 64}
    assert m["timezone"] and m["host"] and m["run_id"].startswith("r1-")
    assert m["sources"][0]["name"] == "nvml" and m["gpus"][0]["name"] == "NVIDIA H200"
    assert "recording into" in r.output and "sources used: nvml (20 ms)" in r.output


def test_default_directory_and_name(app, runner, tmp_path):
    r = runner.invoke(app, ["collect", "-q", "--source", "nvml", "--", PY, "-c", "pass"])
    assert r.exit_code == 0, r.output
    (d,) = (tmp_path / "traces").iterdir()
    assert d.name.endswith("Z-python-c") and len(d.name.split("-")[0]) == len("20261121T101500Z")
    assert r.output == ""
    assert default_name(["python3", "-u", "examples/train.py", "--epochs", "2"]) == "train"
    assert default_name(["python", "-m", "torch.distributed.run"]) == "run"
    assert default_name(["/usr/bin/sleep", "2"]) == "sleep"


def test_explicit_unavailable_source_fails_before_running(app, runner, tmp_path):
    marker = tmp_path / "ran"
    r = runner.invoke(app, ["collect", "--source", "nvml,powermetrics", "--", "touch", str(marker)])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "error: source powermetrics is unavailable: powermetrics needs macOS; run on a Mac (with sudo)"]
    assert "Traceback" not in r.output
    assert not marker.exists() and not (tmp_path / "traces").exists()


def test_unknown_source_and_bad_tag(app, runner):
    r = runner.invoke(app, ["collect", "--source", "nvml,rapl", "--", "true"])
    assert r.exit_code == 2 and r.output.startswith("error: unknown source 'rapl' in --source")
    r = runner.invoke(app, ["collect", "--tag", "model", "--", "true"])
    assert r.exit_code == 2 and "bad --tag 'model'; use key=value" in r.output


def test_command_not_found(app, runner, tmp_path):
    r = runner.invoke(app, ["collect", "--", "no-such-program-dlwh", "x"])
    assert r.exit_code == 127
    assert r.output.strip() == "error: command not found: 'no-such-program-dlwh'; check the name or your PATH"
    assert not (tmp_path / "traces").exists()
    r = runner.invoke(app, ["collect", "--"])
    assert r.exit_code != 0 and "Traceback" not in r.output


def test_out_must_be_new_or_empty(app, runner, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    r = runner.invoke(app, ["collect", "--out", "used", "--", "true"])
    assert r.exit_code == 2 and "used already exists and is not an empty directory; choose another --out" in r.output


def test_help(app, runner):
    r = runner.invoke(app, ["collect", "--help"])
    assert r.exit_code == 0 and "--interval-ms" in r.output and "sweep" in r.output
    r = runner.invoke(app, ["collect", "sweep", "--help"])
    assert r.exit_code == 0 and "--power-limits" in r.output


def test_workload_gets_run_dir_and_its_spans_land_there(tmp_path):
    code = ("import os\nfrom dlwh.collect import span\n"
            "assert os.environ['DLWH_RUN_ID']\n"
            "with span('epoch', epoch=0):\n    with span('step', step=1):\n        pass\n")
    env_pp = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{REPO}{os.pathsep}{env_pp}"
    try:
        res = collect([PY, "-c", code], out=tmp_path / "r", sources="nvml", quiet=True, layers=True)
    finally:
        os.environ["PYTHONPATH"] = env_pp
    assert res.exit_code == 0
    lines = (res.run_dir / "spans.jsonl").read_text().splitlines()
    step, epoch = (json.loads(x) for x in lines)
    assert step["parent_id"] == epoch["span_id"]
    anchor = res.manifest["monotonic_anchor"]
    assert epoch["start_mono_ns"] > anchor["monotonic_ns"]


def test_save_output(tmp_path, capfd):
    res = collect([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
                  CollectOptions(out=tmp_path / "r", sources="nvml", save_output=True, quiet=True))
    assert (res.run_dir / "stdout.log").read_text() == "out\n"
    assert (res.run_dir / "stderr.log").read_text() == "err\n"
    cap = capfd.readouterr()
    assert "out" in cap.out and "err" in cap.err


def test_sigterm_with_a_stubborn_workload_is_killed_after_grace(tmp_path):
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(30)\n"
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    t0 = time.monotonic()
    res = collect([PY, "-c", code], out=tmp_path / "r", sources="nvml", quiet=True, grace_s=0.5)
    assert time.monotonic() - t0 < 10
    assert res.exit_code == -signal.SIGKILL and res.interrupted and res.shell_exit_code == 137
    m = manifest(res.run_dir)
    assert m["exit_code"] == -9 and m["end_utc"] is not None
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


SPAN_LOOP = """
import time
from dlwh.collect import span
print('ready', flush=True)
i = 0
while True:
    with span('step', step=i, pad='x' * 200):
        time.sleep(0.001)
    i += 1
"""


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_to_collector_stops_workload_and_completes_run(tmp_path, sig, code):
    """Ctrl-C / SIGTERM to `python -m dlwh.collect`: the workload stops, the run directory is whole."""
    env = dict(os.environ, PYTHONPATH=f"{PYLIB}{os.pathsep}{REPO}")
    env.pop("DLWH_RUN_DIR", None)
    out = tmp_path / "r"
    p = subprocess.Popen([PY, "-m", "dlwh.collect", "--out", str(out), "--source", "nvml", "--interval-ms", "10",
                          "--", PY, "-c", SPAN_LOOP], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"ready"
    time.sleep(0.7)
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert p.returncode == code, err
    m = manifest(out)
    assert m["end_utc"] is not None and m["exit_code"] == -sig
    for name in ("spans.jsonl", "nvml.csv"):
        text = (out / name).read_text()
        assert text.endswith("\n")
    spans = [json.loads(x) for x in (out / "spans.jsonl").read_text().splitlines()]
    assert len(spans) > 50
    rows = (out / "nvml.csv").read_text().splitlines()
    assert len(rows) > 30 and all(len(r.split(",")) == 17 for r in rows)
    assert b"dlwh/collect/" not in err  # the workload's own KeyboardInterrupt traceback is fine
    assert f"killed by signal {int(sig)}".encode() in err


def test_python_m_entry_point_reports_unavailable_sources(tmp_path):
    """`python -m dlwh.collect -- sleep` on a machine without GPU, BMC or macOS (this one)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([PY, "-m", "dlwh.collect", "--out", str(tmp_path / "r"), "--", "sleep", "0.2"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    err = p.stderr
    assert "sources used:" in err
    m = manifest(tmp_path / "r")
    names = {s["name"] for s in m["sources"]} | {u["name"] for u in m["unavailable_sources"]}
    assert names == {"nvml", "nvidia-smi", "perf", "ipmi", "powermetrics"}
    for u in m["unavailable_sources"]:
        assert f"source {u['name']} unavailable: " in err


def test_ctrl_c_before_the_command_starts(tmp_path):
    marker = tmp_path / "ran"

    def log(msg: str) -> None:
        if msg.startswith("recording into"):
            os.kill(os.getpid(), signal.SIGINT)

    res = collect(["touch", str(marker)], out=tmp_path / "r", sources="nvml", log=log)
    assert not marker.exists()
    assert res.exit_code is None and res.shell_exit_code == 130
    m = manifest(res.run_dir)
    assert m["exit_code"] is None and m["end_utc"] is not None
