"""Power-limit sweeps against a fake NVML (never a real GPU): set, check, record, always restore."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "collect" / "fakes"))
from harness import PYLIB, REPO, load_fake_pynvml  # noqa: E402

from dlwh.collect.sweep import SweepError, parse_limits, sweep  # noqa: E402
from dlwh.commands import collect as collect_cmd  # noqa: E402
from dlwh.errors import UsageError  # noqa: E402

PY = sys.executable
SET = "nvmlDeviceSetPowerManagementLimit"


@pytest.fixture
def nv(monkeypatch, tmp_path):
    mod = load_fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    for var in ("FAKE_NVML_GPUS", "FAKE_NVML_NO_PERMISSION", "FAKE_NVML_ENFORCED_CAP_MW", "FAKE_NVML_STATE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return mod


def sets(nv) -> list[tuple[int, int]]:
    return [(gpu, mw) for fn, gpu, mw in nv.calls if fn == SET]


def test_runs_once_per_limit_and_restores(nv, tmp_path):
    logs: list[str] = []
    res = sweep(["true"], [300, 450.5], out=tmp_path / "sw", sources="nvml", interval_ms=20,
                tags={"model": "cnn"}, log=logs.append)
    assert [r.exit_code for r in res] == [0, 0]
    assert [r.run_dir.name for r in res] == ["pl300W", "pl450.5W"]
    for r, w in zip(res, (300, 450.5)):
        m = json.loads((r.run_dir / "run.json").read_text())
        assert m["tags"]["power_limit_w"] == w and m["tags"]["model"] == "cnn"
        assert m["tags"]["enforced_power_limit_w"] == w
        assert m["tags"]["sweep_id"] == res[0].manifest["tags"]["sweep_id"]
        # the run's own NVML samples show the limit in force
        row = (r.run_dir / "nvml.csv").read_text().splitlines()[1].split(",")
        assert float(row[8]) == w and float(row[9]) == w
    assert sets(nv) == [(0, 700000), (0, 300000), (0, 450500), (0, 700000)]
    assert nv._limits == {0: 700000} and nv._init_count == 0  # restored; NVML shut down
    assert logs[-1] == "restored power limits: GPU 0 700 W"


def test_sweep_runs_redact_secrets_of_the_command_line(nv, tmp_path):
    res = sweep(["sh", "-c", "true", "sh", "--password", "hunter2-planted"], [300], out=tmp_path / "sw",
                sources="nvml", quiet=True)
    assert res[0].manifest["command"] == ["sh", "-c", "true", "sh", "--password", "***"]
    assert b"hunter2-planted" not in (res[0].run_dir / "run.json").read_bytes()


def test_out_of_range_is_refused_before_anything_runs(nv, tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(SweepError) as err:
        sweep(["touch", str(marker)], [150, 300], sources="nvml", quiet=True)
    assert str(err.value) == ("power limit 150 W is outside GPU 0's range 200-700 W (NVIDIA H200); "
                              "choose limits in that range")
    assert sets(nv) == [] and not marker.exists() and not (tmp_path / "traces").exists()


def test_no_permission_is_refused_before_anything_runs(nv, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_NO_PERMISSION", "1")
    with pytest.raises(SweepError, match="setting GPU power limits needs root; run the sweep with sudo"):
        sweep(["true"], [300], sources="nvml", quiet=True)
    assert not (tmp_path / "traces").exists()


def test_restores_after_a_failing_command(nv, tmp_path):
    res = sweep(["sh", "-c", "exit 4"], [300, 400], out=tmp_path / "sw", sources="nvml", quiet=True)
    assert [r.exit_code for r in res] == [4]  # stops at the first failure
    assert sets(nv)[-1] == (0, 700000)


def test_restores_after_an_exception(nv, tmp_path, monkeypatch):
    import dlwh.collect.sweep as sweep_mod

    def boom(*a, **k):
        raise RuntimeError("collector broke")

    monkeypatch.setattr(sweep_mod, "collect", boom)
    with pytest.raises(RuntimeError):
        sweep(["true"], [300], sources="nvml", quiet=True)
    assert sets(nv) == [(0, 700000), (0, 300000), (0, 700000)]


def test_ctrl_c_during_a_run_stops_the_sweep_and_restores(nv, tmp_path):
    # the workload sends SIGINT to the collector (this process), as Ctrl-C in a terminal would
    cmd = ["sh", "-c", f"sleep 0.3; kill -INT {os.getpid()}; sleep 20"]
    res = sweep(cmd, [300, 400, 500], out=tmp_path / "sw", sources="nvml", quiet=True)
    assert len(res) == 1 and res[0].interrupted and res[0].exit_code == -2
    assert sets(nv) == [(0, 700000), (0, 300000), (0, 700000)]
    m = json.loads((res[0].run_dir / "run.json").read_text())
    assert m["end_utc"] and m["exit_code"] == -2


def test_enforced_limit_below_request_is_tagged_and_warned(nv, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_ENFORCED_CAP_MW", "250000")
    logs: list[str] = []
    res = sweep(["true"], [300], out=tmp_path / "sw", sources="nvml", log=logs.append)
    assert res[0].manifest["tags"]["enforced_power_limit_w"] == 250.0
    assert any(line.startswith("warning: asked for 300 W, GPUs enforce 0: 250 W") for line in logs)


def test_several_gpus_and_gpu_choice(nv, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_GPUS", "2")
    sweep(["true"], [300], out=tmp_path / "a", sources="nvml", quiet=True)
    assert sets(nv) == [(0, 700000), (1, 700000), (0, 300000), (1, 300000), (0, 700000), (1, 700000)]
    nv.calls.clear()
    sweep(["true"], [300], gpus=[1], out=tmp_path / "b", sources="nvml", quiet=True)
    assert sets(nv) == [(1, 700000), (1, 300000), (1, 700000)]
    with pytest.raises(SweepError, match="no GPU with index 7"):
        sweep(["true"], [300], gpus=[7], sources="nvml", quiet=True)


def test_without_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(SweepError, match="a power-limit sweep needs NVML: nvidia-ml-py is not installed"):
        sweep(["true"], [300], quiet=True)


def test_parse_limits():
    assert parse_limits("150, 200W,250.5") == [150.0, 200.0, 250.5]
    with pytest.raises(UsageError):
        parse_limits("150,abc")
    with pytest.raises(UsageError):
        parse_limits("")


def test_cli_sweep_restores_in_a_separate_process(tmp_path):
    """The CLI path end to end: the fake NVML keeps its limits in a state file we can read."""
    state = tmp_path / "state.json"
    env = dict(os.environ, PYTHONPATH=f"{PYLIB}{os.pathsep}{REPO}", FAKE_NVML_STATE=str(state))
    p = subprocess.run([PY, "-m", "dlwh.collect", "sweep", "--power-limits", "300,400", "--source", "nvml",
                        "--out", str(tmp_path / "sw"), "--", "true"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    st = json.loads(state.read_text())
    assert [e["limit_mw"] for e in st["log"]] == [700000, 300000, 400000, 700000]
    assert st["limits_mw"] == {"0": 700000}
    assert sorted(d.name for d in (tmp_path / "sw").iterdir()) == ["pl300W", "pl400W"]


def test_cli_sweep_errors_are_one_line(nv, tmp_path):
    app = typer.Typer(add_completion=False)

    @app.callback()
    def main() -> None:
        """frame"""

    collect_cmd.register(app)
    r = CliRunner().invoke(app, ["collect", "sweep", "--power-limits", "100", "--source", "nvml", "--", "true"])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "error: power limit 100 W is outside GPU 0's range 200-700 W (NVIDIA H200); choose limits in that range"]


# -- the power limit always comes back (in-process; the CLI fault matrix is test_collect_restore_faults.py) --
UUID0 = "GPU-fd8c29ce-70ee-9f9e-54b9-5183a3f0b0f2"


def test_original_limits_are_recorded_before_the_first_change(nv, tmp_path, monkeypatch):
    from dlwh.collect import limitstate

    seen = []
    real_set = nv.nvmlDeviceSetPowerManagementLimit

    def set_limit(h, mw):
        if mw != 700000:  # a change: the record must already be on disk, in both places
            recs = limitstate.pending()
            copies = list((tmp_path / "sw").glob(".dlwh-power-limits-*.json"))
            seen.append((mw, [[(g.index, g.uuid, g.original_mw) for g in r.gpus] for r in recs], len(copies)))
        return real_set(h, mw)

    monkeypatch.setattr(nv, "nvmlDeviceSetPowerManagementLimit", set_limit)
    sweep(["true"], [300, 400], out=tmp_path / "sw", sources="nvml", quiet=True)
    assert seen == [(300000, [[(0, UUID0, 700000)]], 1), (400000, [[(0, UUID0, 700000)]], 1)]
    assert limitstate.pending() == [] and not list((tmp_path / "sw").glob(".dlwh-*"))  # gone once restored
    assert limitstate.state_dir() == Path(os.environ["XDG_STATE_HOME"]) / "dlwh"


def test_a_failed_restore_is_retried(nv, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_FAULTS", "restore:0:2:oserror")
    monkeypatch.setattr("dlwh.collect.restore.BACKOFF_S", 0.01)
    logs: list[str] = []
    sweep(["true"], [300], out=tmp_path / "sw", sources="nvml", log=logs.append)
    assert sets(nv)[-3:] == [(0, 700000)] * 3  # two failed attempts, then the one that worked
    assert nv._limits == {0: 700000} and logs[-1] == "restored power limits: GPU 0 700 W"


def test_every_gpu_is_restored_when_one_fails_and_restore_finishes_later(nv, tmp_path, monkeypatch):
    from dlwh.collect import limitstate
    from dlwh.collect.restore import restore_recorded

    monkeypatch.setenv("FAKE_NVML_GPUS", "2")
    monkeypatch.setenv("FAKE_NVML_FAULTS", "restore:0:*:oserror")
    monkeypatch.setattr("dlwh.collect.restore.BACKOFF_S", 0.01)
    logs: list[str] = []
    with pytest.raises(SweepError) as err:
        sweep(["true"], [300], out=tmp_path / "sw", sources="nvml", log=logs.append)
    [rec] = limitstate.pending()
    assert str(err.value) == (f"could not restore the original power limit of GPU(s) 0 (see above); the originals "
                              f"are recorded in {rec.paths[0]}; run: sudo dlwh collect restore")
    assert logs[-1] == (f"GPU 0 ({UUID0}) is NOT back at its original 700 W: 4 attempts failed, the last with "
                        "OSError: [Errno 5] Input/output error; once the cause is fixed run: sudo dlwh collect "
                        "restore (or: sudo nvidia-smi -i 0 -pl 700)")
    assert nv._limits == {0: 300000, 1: 700000}  # GPU 1 came back although GPU 0 failed first
    assert [g.index for g in rec.gpus] == [0]
    monkeypatch.delenv("FAKE_NVML_FAULTS")
    report = restore_recorded()
    assert report.restored == [f"GPU 0 ({UUID0}): 300 W -> 700 W"] and report.failed == []
    assert nv._limits == {0: 700000, 1: 700000} and limitstate.pending() == []


def test_sigusr1_and_sigquit_stop_the_sweep_and_restore(nv, tmp_path):
    for sig in ("USR1", "QUIT"):
        nv.calls.clear()
        cmd = ["sh", "-c", f"sleep 0.3; kill -{sig} {os.getpid()}; sleep 20"]
        res = sweep(cmd, [300, 400], out=tmp_path / sig, sources="nvml", quiet=True, grace_s=2)
        assert len(res) == 1 and res[0].interrupted
        assert sets(nv) == [(0, 700000), (0, 300000), (0, 700000)]


def test_restore_with_nothing_recorded_and_with_a_bad_record(nv, tmp_path):
    from dlwh.collect.restore import restore_recorded
    from dlwh.errors import DlwhError

    assert restore_recorded().records == 0
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(DlwhError, match=r"cannot read .*x.json as a power-limit record \(.*x.json is not a dlwh "
                                        r"power-limit record\)"):
        restore_recorded([bad])
    with pytest.raises(DlwhError, match=r"no power-limit record at .*nope.json; check the path"):
        restore_recorded([tmp_path / "nope.json"])


def test_a_stale_record_is_adopted_and_removed(nv, tmp_path, monkeypatch):
    """A record left by a killed sweep (its process gone): its originals win, and it is gone afterwards."""
    from dlwh.collect import limitstate

    nv.nvmlInit()
    nv.nvmlDeviceSetPowerManagementLimit(nv.nvmlDeviceGetHandleByIndex(0), 250000)  # left lowered
    nv.nvmlShutdown()
    nv.calls.clear()
    dead = limitstate.Record("deadbeef", [limitstate.GpuLimit(0, UUID0, 700000)], pid=2 ** 22 + 1)
    limitstate.save(dead)
    logs: list[str] = []
    sweep(["true"], [300], out=tmp_path / "sw", sources="nvml", log=logs.append)
    assert logs[0] == (f"warning: sweep deadbeef (pid {2 ** 22 + 1}, started {dead.describe().split('started ')[1]} "
                       f"did not restore GPU 0: it is at 250 W; using its recorded original 700 W "
                       f"(record {dead.paths[0]})")
    assert sets(nv)[-1] == (0, 700000) and nv._limits == {0: 700000}
    assert limitstate.pending() == []


def test_python_m_dlwh_collect_restore_on_a_node_without_the_cli(tmp_path):
    """`python -m dlwh.collect restore` (GPU nodes without typer) puts a recorded limit back."""
    from dlwh.collect import limitstate

    state = tmp_path / "nvml.json"
    state.write_text(json.dumps({"limits_mw": {"0": 300000}}))
    rec = limitstate.Record("0badc0de", [limitstate.GpuLimit(0, UUID0, 700000)], pid=2 ** 22 + 1)
    limitstate.save(rec)
    env = dict(os.environ, PYTHONPATH=f"{PYLIB}{os.pathsep}{REPO}", FAKE_NVML_STATE=str(state))
    p = subprocess.run([PY, "-m", "dlwh.collect", "restore"], env=env, capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout == f"restored GPU 0 ({UUID0}): 300 W -> 700 W\n"
    assert json.loads(state.read_text())["limits_mw"] == {"0": 700000} and limitstate.pending() == []
    p = subprocess.run([PY, "-m", "dlwh.collect", "restore"], env=env, capture_output=True, text=True, timeout=60)
    assert p.stdout == f"nothing to restore: no power-limit record of this host in {limitstate.state_dir()}\n"
